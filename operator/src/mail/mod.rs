//! Mail: the transport (`USHER_SMTP_URL`: SMTP with STARTTLS or implicit TLS, or an outbox
//! folder) and the messages Usher sends: invitations, password resets and the notice that a login joined another
//! organisation.

mod invitation;
mod notice;
mod reset;
mod text;
mod transport;

pub use invitation::{Invitation, invitation_email};
pub use notice::{AddedNotice, LockedNotice, added_notice, locked_notice};
pub use reset::{PasswordResetMail, reset_email};
pub use transport::{MailError, Mailer, SmtpOptions};
