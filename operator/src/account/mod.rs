//! Platform accounts: the record ([`Account`], one per canonical login, kept as a Secret in the
//! operator namespace, with what it keeps per membership: [`MembershipRecord`]) and the store every writer goes through ([`AccountStore`], whose
//! [`AccountStore::modify`] is the one optimistic update with retry that the controller, the
//! auth server and the CLI all use).

mod error;
pub mod grants;
pub mod guesses;
mod membership;
pub mod passkeys;
mod record;
mod reset;
pub mod sessions;
mod store;

pub use error::StoreError;
pub use membership::{KeyRecord, MembershipRecord, membership_key};
pub use record::{
    Account, AccountIndex, OIDC_GRANTS as GRANTS_KEY, PendingInvitation, account_id,
    digest_for_users, secret_name,
};
pub use reset::PasswordReset;
pub use store::AccountStore;
