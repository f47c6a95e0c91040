//! Who is a member of what, answered from the watch caches: the memberships (Users) of a login,
//! the organisation of a namespace, a profile's permissions, accounts (by id, by invitation
//! token hash, by API-key hash).

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

use k8s_openapi::{api::core::v1::Secret, jiff::Timestamp};
use kube::ResourceExt;
use serde::Serialize;
use usher_crds::{Organisation, Profile, User, login::canonical_login, rules};

use super::session::Acting;
use crate::account::{Account, AccountIndex, secret_name};
use crate::runtime::cache::{Cache, IndexFn, no_index};

/// An account parsed at a resourceVersion.
type Parsed = (Option<String>, Arc<Account>);

/// The caches the auth server answers from.
pub struct Directory {
    namespace: String,
    /// Accounts parsed from their Secrets, by Secret name, with the resourceVersion they were
    /// parsed at.
    parsed: RwLock<HashMap<String, Parsed>>,
    /// Users, indexed by canonical login.
    pub users: Cache<User>,
    /// Organisations, indexed by the namespace they hold.
    pub organisations: Cache<Organisation>,
    /// Profiles.
    pub profiles: Cache<Profile>,
    /// Account Secrets of the operator namespace, indexed by invitation token hash
    /// ([`invitation_ix`]) and by the hashes of the API keys they record ([`key_ix`]): an API
    /// key authenticates only from here, never from a Secret in an organisation's namespace.
    pub accounts: Cache<Secret>,
}

fn user_logins(u: &User) -> Vec<String> {
    vec![u.spec.login.clone()]
}

/// Logins are held in canonical form (the webhook insists on it; this covers objects made
/// while it was away), so requests never canonicalise.
fn canonical_user(mut u: User) -> User {
    if let Ok(c) = canonical_login(&u.spec.login) {
        u.spec.login = c;
    }
    u
}

fn org_namespaces(o: &Organisation) -> Vec<String> {
    vec![o.namespace_name()]
}

/// The index key of an invitation token hash.
pub fn invitation_ix(hash: &str) -> String {
    format!("invitation:{hash}")
}

/// The index key of an API-key hash.
pub fn key_ix(hash: &str) -> String {
    format!("api-key:{hash}")
}

/// The index key of a password reset token hash.
pub fn reset_ix(hash: &str) -> String {
    format!("reset:{hash}")
}

/// The index key of a recorded session id.
pub fn session_ix(id: &str) -> String {
    format!("session:{id}")
}

/// The index key of a passkey user handle.
pub fn passkey_ix(user: &str) -> String {
    format!("passkey:{user}")
}

/// An account Secret's index keys: its invitation and reset token hashes, its keys' hashes,
/// its recorded sessions and its passkeys' user handle.
fn account_ix(s: &Secret) -> Vec<String> {
    let index = AccountIndex::of(s);
    (index.invitation_hash.iter().map(|h| invitation_ix(h)))
        .chain(index.reset_hash.iter().map(|h| reset_ix(h)))
        .chain(index.key_hashes.iter().map(|h| key_ix(h)))
        .chain(index.session_ids.iter().map(|id| session_ix(id)))
        .chain(index.passkey_user.iter().map(|u| passkey_ix(u)))
        .collect()
}

/// One membership of an account: the User, its organisation and its profile.
#[derive(Clone)]
pub struct Membership {
    /// The User resource.
    pub user: Arc<User>,
    /// Its organisation.
    pub organisation: Arc<Organisation>,
    /// Its profile, if it exists.
    pub profile: Option<Arc<Profile>>,
}

impl Membership {
    /// The organisation's name.
    pub fn org_name(&self) -> String {
        self.organisation.name_any()
    }

    /// What a session acting through this membership records of it.
    pub fn acting(&self) -> Acting<'_> {
        Acting {
            organisation: self
                .organisation
                .metadata
                .name
                .as_deref()
                .unwrap_or_default(),
            user_uid: self.user.metadata.uid.as_deref().unwrap_or_default(),
        }
    }

    /// True when a session recorded as acting through `acting` acts through this very User:
    /// one deleted and made again under the same name is another membership.
    pub fn is(&self, acting: Acting<'_>) -> bool {
        let own = self.acting();
        own.organisation == acting.organisation && own.user_uid == acting.user_uid
    }

    /// False when the User is locked.
    pub fn is_active(&self) -> bool {
        !self.user.spec.locked
    }

    /// True when a person may sign in to (or switch to) this membership: not locked, and not a
    /// service user (which authenticates with its API key only).
    pub fn can_sign_in(&self) -> bool {
        self.is_active() && !self.user.is_service()
    }

    /// The profile's permissions (none when the profile is missing).
    pub fn permissions(&self) -> Vec<String> {
        self.profile
            .as_ref()
            .map(|p| p.spec.permissions.clone())
            .unwrap_or_default()
    }
}

/// What `/api/v1/me` shows of a person's organisations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sees {
    /// The person, signed in: every organisation they may sign in to.
    EveryMembership,
    /// A key (or a token) of one membership: that membership alone. Its organisation may not
    /// learn which others the person belongs to.
    OneMembership,
}

/// `GET /api/v1/me`, and the body of login and organisation switch.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Me {
    /// The login.
    pub login: String,
    /// The full name in the current organisation.
    pub full_name: String,
    /// The current organisation.
    pub organisation: String,
    /// The profile in it.
    pub profile: String,
    /// Its permissions.
    pub permissions: Vec<String>,
    /// Every organisation this login may switch to.
    pub organisations: Vec<OrgEntry>,
    /// True once a second factor is enrolled: TOTP confirmed, or a passkey.
    pub mfa_enrolled: bool,
    /// True once TOTP is confirmed.
    pub totp_enrolled: bool,
    /// How many passkeys the person has.
    pub passkeys: usize,
    /// True when the current organisation requires TOTP, the person has none and the grace
    /// period is over: only enrolment is open until they enroll.
    pub mfa_enrolment_required: bool,
}

/// One organisation in [`Me::organisations`].
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrgEntry {
    /// Its name (what `POST /api/v1/me/organisation` takes).
    pub name: String,
    /// Its display name.
    pub display_name: String,
    /// The profile there.
    pub profile: String,
}

impl Directory {
    /// Empty caches; the account caches cover `namespace`.
    pub fn new(namespace: &str) -> Directory {
        Directory {
            namespace: namespace.to_owned(),
            parsed: RwLock::default(),
            users: Cache::mapped(canonical_user, user_logins as IndexFn<User>),
            organisations: Cache::new(org_namespaces as IndexFn<Organisation>),
            profiles: Cache::new(no_index::<Profile> as IndexFn<Profile>),
            accounts: Cache::new(account_ix as IndexFn<Secret>),
        }
    }

    /// Changes seen by the caches so far: an answer computed from them at one generation is
    /// out of date at another.
    pub fn generation(&self) -> u64 {
        self.users.generation()
            + self.organisations.generation()
            + self.profiles.generation()
            + self.accounts.generation()
    }

    /// True once every cache holds its first list.
    pub fn is_ready(&self) -> bool {
        self.users.is_ready()
            && self.organisations.is_ready()
            && self.profiles.is_ready()
            && self.accounts.is_ready()
    }

    /// The fingerprint of `user`'s API key: the one its account records (in force from the
    /// moment it is written, before the controller reports it), else the one in its status.
    pub fn key_fingerprint(&self, user: &User) -> Option<String> {
        let recorded = canonical_login(&user.spec.login)
            .ok()
            .and_then(|login| self.account(&crate::account::account_id(&login)))
            .and_then(|a| {
                let m = a.memberships.get(&crate::account::membership_key(user))?;
                (m.uid == user.uid().unwrap_or_default()).then(|| {
                    m.api_key
                        .as_ref()
                        .map(|k| crate::apikey::fingerprint(&k.hash))
                })?
            });
        recorded.or_else(|| {
            user.status
                .as_ref()
                .and_then(|s| s.api_key.as_ref())
                .and_then(|k| k.fingerprint.clone())
        })
    }

    /// The account with id `id`, if it exists and reads (parsed once per resourceVersion).
    pub fn account(&self, id: &str) -> Option<Arc<Account>> {
        self.parse(
            self.accounts
                .get(&self.namespace, &secret_name(id))?
                .as_ref(),
        )
    }

    /// The account an account Secret holds, parsed once per resourceVersion.
    fn parse(&self, secret: &Secret) -> Option<Arc<Account>> {
        let name = secret.metadata.name.as_deref().unwrap_or_default();
        let rv = &secret.metadata.resource_version;
        if let Some((seen, parsed)) = self
            .parsed
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            && seen == rv
        {
            return Some(parsed.clone());
        }
        match Account::from_secret(secret) {
            Ok(a) => {
                let a = Arc::new(a);
                let mut memo = self.parsed.write().unwrap_or_else(|e| e.into_inner());
                // Accounts come and go: drop memos of deleted ones now and then.
                if memo.len() > 2 * self.accounts.len() + 64 {
                    memo.clear();
                }
                memo.insert(name.to_owned(), (rv.clone(), a.clone()));
                Some(a)
            }
            Err(e) => {
                tracing::warn!(error = %e, "skipping a damaged account");
                None
            }
        }
    }

    /// The account whose passkeys carry user handle `user`.
    pub fn account_by_passkey_user(&self, user: &str) -> Option<Arc<Account>> {
        let secret = self.accounts.find(&passkey_ix(user)).into_iter().next()?;
        self.parse(secret.as_ref())
    }

    /// The account whose pending invitation has this token hash.
    pub fn account_by_invitation(&self, token_hash: &str) -> Option<Account> {
        self.accounts
            .find(&invitation_ix(token_hash))
            .first()
            .and_then(|s| Account::from_secret(s).ok())
    }

    /// The account whose password reset link has this token hash.
    pub fn account_by_reset(&self, token_hash: &str) -> Option<Arc<Account>> {
        let secret = self
            .accounts
            .find(&reset_ix(token_hash))
            .into_iter()
            .next()?;
        self.parse(&secret)
    }

    /// The account that recorded session `id`.
    pub fn account_by_session(&self, id: &str) -> Option<Arc<Account>> {
        let secret = self.accounts.find(&session_ix(id)).into_iter().next()?;
        self.parse(&secret)
    }

    /// The organisation holding `namespace`.
    fn organisation_of(&self, namespace: &str) -> Option<Arc<Organisation>> {
        rules::organisation_of(namespace, &self.organisations.find(namespace)).cloned()
    }

    /// The membership `user` is: none while it is being deleted, or while it duplicates an
    /// older User of its organisation with the same login.
    fn membership_of(&self, user: Arc<User>) -> Option<Membership> {
        if !rules::is_live(&user) {
            return None;
        }
        if rules::duplicate_of(&user, &self.users.find(&user.spec.login)).is_some() {
            return None;
        }
        let organisation = self.organisation_of(&user.namespace()?)?;
        let profile = self.profiles.get("", &user.spec.profile);
        Some(Membership {
            user,
            organisation,
            profile,
        })
    }

    /// Every membership of `login` (locked ones too), one per organisation (a newer User that
    /// duplicates an older one's login there does not count), ordered by organisation name.
    pub fn memberships(&self, login: &str) -> Vec<Membership> {
        let mut out: Vec<Membership> = self
            .users
            .find(login)
            .into_iter()
            .filter_map(|u| self.membership_of(u))
            .collect();
        out.sort_by_key(Membership::org_name);
        out
    }

    /// The Users of namespace `namespace` not being deleted, by login then name: the
    /// Organisation > Users table.
    pub fn users_in(&self, namespace: &str) -> Vec<Arc<User>> {
        let mut users: Vec<Arc<User>> = self
            .users
            .all()
            .into_iter()
            .filter(|u| u.metadata.namespace.as_deref() == Some(namespace))
            .filter(|u| rules::is_live(u))
            .collect();
        users.sort_by(|a, b| (&a.spec.login, a.name_any()).cmp(&(&b.spec.login, b.name_any())));
        users
    }

    /// The membership of `login` in organisation `org`.
    pub fn membership(&self, login: &str, org: &str) -> Option<Membership> {
        self.memberships(login)
            .into_iter()
            .find(|m| m.org_name() == org)
    }

    /// The account and membership an API key with this SHA-256 acts for: the account records
    /// the key (current, or the previous one within its grace period) for a membership whose
    /// User still exists (same UID), still has this login, and still has `spec.apiKey.enabled`.
    pub fn key_owner(&self, key_hash: &str, now: Timestamp) -> Option<(Arc<Account>, Membership)> {
        for secret in self.accounts.find(&key_ix(key_hash)) {
            let Some(account) = self.parse(secret.as_ref()) else {
                continue;
            };
            for (membership, record) in &account.memberships {
                if !record
                    .api_key
                    .as_ref()
                    .is_some_and(|k| k.accepts(key_hash, now))
                {
                    continue;
                }
                let Some((ns, name)) = membership.split_once('/') else {
                    continue;
                };
                let Some(user) = self.users.get(ns, name) else {
                    continue;
                };
                if user.metadata.uid.as_deref() != Some(record.uid.as_str())
                    || user.spec.login != account.login
                    || !user.api_key_enabled()
                {
                    continue;
                }
                if let Some(m) = self.membership_of(user) {
                    return Some((account.clone(), m));
                }
            }
        }
        None
    }

    /// The `me` body of `account` acting in `current`.
    pub fn me(
        &self,
        account: &Account,
        current: &Membership,
        enrolment_required: bool,
        sees: Sees,
    ) -> Me {
        let organisations = match sees {
            Sees::EveryMembership => self.memberships(&account.login),
            Sees::OneMembership => vec![current.clone()],
        }
        .into_iter()
        .filter(Membership::can_sign_in)
        .map(|m| OrgEntry {
            display_name: m.organisation.spec.display_name.clone(),
            profile: m.user.spec.profile.clone(),
            name: m.org_name(),
        })
        .collect();
        Me {
            login: account.login.clone(),
            full_name: current.user.spec.full_name.clone(),
            organisation: current.org_name(),
            profile: current.user.spec.profile.clone(),
            permissions: current.permissions(),
            organisations,
            mfa_enrolled: account.mfa_enrolled(),
            totp_enrolled: account.totp_secret.is_some(),
            passkeys: account.passkeys.keys.len(),
            mfa_enrolment_required: enrolment_required,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use usher_crds::{ApiKeySpec, OrganisationSpec, ProfileSpec, UserSpec};

    use super::*;
    use crate::{
        apikey::{
            ApiKey,
            renew::{NewKey, renew},
        },
        keys::Keys,
    };

    fn fixture() -> (Directory, ApiKey, User) {
        let d = Directory::new("usher-system");
        let mut org = Organisation::new(
            "acme",
            OrganisationSpec {
                display_name: "ACME".into(),
                ..Default::default()
            },
        );
        org.metadata.resource_version = Some("1".into());
        d.organisations.apply_own_write(org);
        d.profiles.apply_own_write(Profile::new(
            "analyst",
            ProfileSpec {
                description: None,
                permissions: vec!["manageCase".into()],
            },
        ));
        let mut user = User::new(
            "alice",
            UserSpec {
                login: "Alice@Example.COM".into(),
                full_name: "Alice".into(),
                profile: "analyst".into(),
                api_key: Some(ApiKeySpec {
                    enabled: true,
                    ..Default::default()
                }),
                ..Default::default()
            },
        );
        user.metadata.namespace = Some("acme".into());
        user.metadata.uid = Some("uid-alice".into());
        d.users.apply_own_write(user.clone());
        let keys = Keys::from_bytes([1; 32], [2; 32]);
        let mut account = Account::new("alice@example.com");
        let new = NewKey::generate(&keys, &account.id, &user).unwrap();
        renew(&mut account, &user, &new, None, Timestamp::now());
        d.accounts
            .apply_own_write(account.to_secret("usher-system"));
        (d, new.key, user)
    }

    #[test]
    fn a_key_is_found_by_its_hash_in_the_account_which_never_holds_the_key() {
        let (d, key, _) = fixture();
        let (account, owner) = d.key_owner(&key.hash(), Timestamp::now()).unwrap();
        assert_eq!(account.login, "alice@example.com");
        assert_eq!(owner.org_name(), "acme");
        assert_eq!(owner.permissions(), vec!["manageCase"]);
        // Logins are held canonical.
        assert_eq!(owner.user.spec.login, "alice@example.com");
        let held = format!("{:?}", d.accounts.all());
        assert!(!held.contains(key.expose()), "{held}");
        let other = ApiKey::generate().unwrap();
        assert!(d.key_owner(&other.hash(), Timestamp::now()).is_none());
    }

    #[test]
    fn a_recorded_key_stops_when_its_user_is_disabled_made_again_or_moved() {
        let (d, key, user) = fixture();
        let mut disabled = user.clone();
        disabled.spec.api_key = None;
        d.users.apply_own_write(disabled);
        assert!(d.key_owner(&key.hash(), Timestamp::now()).is_none());
        let mut again = user.clone();
        again.metadata.uid = Some("uid-other".into());
        d.users.apply_own_write(again);
        assert!(d.key_owner(&key.hash(), Timestamp::now()).is_none());
        let mut moved = user.clone();
        moved.spec.login = "mallory@example.com".into();
        d.users.apply_own_write(moved);
        assert!(d.key_owner(&key.hash(), Timestamp::now()).is_none());
        d.users.apply_own_write(user);
        assert!(d.key_owner(&key.hash(), Timestamp::now()).is_some());
    }
}
