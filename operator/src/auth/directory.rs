//! Who is a member of what, answered from the watch caches: the memberships (Users) of a login,
//! the organisation of a namespace, a profile's permissions, accounts, and API keys by hash.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

use k8s_openapi::{api::core::v1::Secret, jiff::Timestamp};
use kube::ResourceExt;
use serde::Serialize;
use usher_crds::{LABEL_USER, Organisation, Profile, User, login::canonical_login, rules};

use super::cache::{Cache, Entry, IndexFn, version_of};
use crate::{
    account::{Account, secret_name},
    apikey::secret::{ANNOTATION_PREVIOUS_VALID_UNTIL, KEY, PREVIOUS_SHA256},
    crypto::{hex, sha256},
};

/// An account parsed at a resourceVersion.
type Parsed = (Option<String>, Arc<Account>);

/// The caches the auth server answers from.
pub struct Directory {
    namespace: String,
    /// Accounts parsed from their Secrets, by id, with the resourceVersion they were parsed at.
    parsed: RwLock<HashMap<String, Parsed>>,
    /// Users, indexed by canonical login.
    pub users: Cache<User>,
    /// Organisations, indexed by the namespace they hold.
    pub organisations: Cache<Organisation>,
    /// Profiles.
    pub profiles: Cache<Profile>,
    /// Account Secrets, indexed by invitation token hash.
    pub accounts: Cache<Secret>,
    /// API-key Secrets as [`KeyEntry`]s, indexed by the SHA-256 of the current key and of the
    /// previous one.
    pub api_keys: Cache<Secret, KeyEntry>,
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

fn no_index<K>(_: &K) -> Vec<String> {
    Vec::new()
}

fn invitation_hashes(s: &Secret) -> Vec<String> {
    s.data
        .as_ref()
        .and_then(|d| d.get("invitation.tokenHash"))
        .and_then(|v| std::str::from_utf8(&v.0).ok())
        .filter(|h| !h.is_empty())
        .map(|h| vec![h.to_owned()])
        .unwrap_or_default()
}

fn data_text<'a>(s: &'a Secret, key: &str) -> Option<&'a str> {
    s.data
        .as_ref()?
        .get(key)
        .and_then(|v| std::str::from_utf8(&v.0).ok())
        .map(str::trim)
}

/// What authentication reads of an API-key Secret: never the key, only its SHA-256, with the
/// previous key's SHA-256 and deadline, and the User that owns it.
#[derive(Debug)]
pub struct KeyEntry {
    namespace: String,
    name: String,
    /// The `usher.dev/user` label: the User the key acts for.
    user: String,
    /// UIDs of the Users owning the Secret.
    owner_uids: Vec<String>,
    current: Option<String>,
    previous: Option<String>,
    previous_until: Option<Timestamp>,
    version: Option<u64>,
}

impl Entry for KeyEntry {
    fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
    fn version(&self) -> Option<u64> {
        self.version
    }
}

impl KeyEntry {
    fn of(s: Secret) -> KeyEntry {
        KeyEntry {
            current: data_text(&s, KEY).map(|k| hex(&sha256(k.as_bytes()))),
            previous: data_text(&s, PREVIOUS_SHA256).map(str::to_owned),
            previous_until: s
                .annotations()
                .get(ANNOTATION_PREVIOUS_VALID_UNTIL)
                .and_then(|t| t.parse().ok()),
            user: s.labels().get(LABEL_USER).cloned().unwrap_or_default(),
            owner_uids: s
                .owner_references()
                .iter()
                .filter(|o| o.kind == "User")
                .map(|o| o.uid.clone())
                .collect(),
            version: version_of(&s),
            namespace: s.metadata.namespace.unwrap_or_default(),
            name: s.metadata.name.unwrap_or_default(),
        }
    }

    fn hashes(&self) -> Vec<String> {
        self.current.iter().chain(&self.previous).cloned().collect()
    }

    /// True when `hash` is the current key's, or the previous key's within its grace period.
    fn accepts(&self, hash: &str, now: Timestamp) -> bool {
        self.current.as_deref() == Some(hash)
            || (self.previous.as_deref() == Some(hash)
                && self.previous_until.is_some_and(|until| now < until))
    }
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

    /// False when the User is locked.
    pub fn is_active(&self) -> bool {
        !self.user.spec.locked
    }

    /// The profile's permissions (none when the profile is missing).
    pub fn permissions(&self) -> Vec<String> {
        self.profile
            .as_ref()
            .map(|p| p.spec.permissions.clone())
            .unwrap_or_default()
    }
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
    /// True once TOTP is confirmed.
    pub mfa_enrolled: bool,
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
            accounts: Cache::new(invitation_hashes as IndexFn<Secret>),
            api_keys: Cache::mapped(KeyEntry::of, KeyEntry::hashes as IndexFn<KeyEntry>),
        }
    }

    /// True once every cache holds its first list.
    pub fn is_ready(&self) -> bool {
        self.users.is_ready()
            && self.organisations.is_ready()
            && self.profiles.is_ready()
            && self.accounts.is_ready()
            && self.api_keys.is_ready()
    }

    /// The account with id `id`, if it exists and reads (parsed once per resourceVersion).
    pub fn account(&self, id: &str) -> Option<Arc<Account>> {
        let secret = self.accounts.get(&self.namespace, &secret_name(id))?;
        let rv = &secret.metadata.resource_version;
        if let Some((seen, parsed)) = self
            .parsed
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            && seen == rv
        {
            return Some(parsed.clone());
        }
        match Account::from_secret(&secret) {
            Ok(a) => {
                let a = Arc::new(a);
                let mut memo = self.parsed.write().unwrap_or_else(|e| e.into_inner());
                // Accounts come and go: drop memos of deleted ones now and then.
                if memo.len() > 2 * self.accounts.len() + 64 {
                    memo.clear();
                }
                memo.insert(id.to_owned(), (rv.clone(), a.clone()));
                Some(a)
            }
            Err(e) => {
                tracing::warn!(error = %e, "skipping a damaged account");
                None
            }
        }
    }

    /// The account whose pending invitation has this token hash.
    pub fn account_by_invitation(&self, token_hash: &str) -> Option<Account> {
        self.accounts
            .find(token_hash)
            .first()
            .and_then(|s| Account::from_secret(s).ok())
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

    /// The membership an API key with this SHA-256 acts for, if the key is current (or the
    /// previous one within its grace period) and its Secret belongs to the User it names.
    pub fn key_owner(&self, key_hash: &str, now: Timestamp) -> Option<Membership> {
        for entry in self.api_keys.find(key_hash) {
            if !entry.accepts(key_hash, now) {
                continue;
            }
            let Some(user) = self.users.get(&entry.namespace, &entry.user) else {
                continue;
            };
            // Only a Secret the User owns counts: a look-alike Secret made by hand does not.
            if !entry
                .owner_uids
                .iter()
                .any(|uid| Some(uid.as_str()) == user.metadata.uid.as_deref())
            {
                continue;
            }
            if let Some(membership) = self.membership_of(user) {
                return Some(membership);
            }
        }
        None
    }

    /// The `me` body of `account` acting in `current`.
    pub fn me(&self, account: &Account, current: &Membership, enrolment_required: bool) -> Me {
        let organisations = self
            .memberships(&account.login)
            .into_iter()
            .filter(Membership::is_active)
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
            mfa_enrolled: account.totp_secret.is_some(),
            mfa_enrolment_required: enrolment_required,
        }
    }
}

#[cfg(test)]
mod tests {
    use usher_crds::{OrganisationSpec, ProfileSpec, UserSpec};

    use super::*;
    use crate::apikey::ApiKey;

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
                ..Default::default()
            },
        );
        user.metadata.namespace = Some("acme".into());
        user.metadata.uid = Some("uid-alice".into());
        d.users.apply_own_write(user.clone());
        let key = ApiKey::generate().unwrap();
        let secret =
            crate::apikey::secret::secret(&user, "acme", &key, Timestamp::now(), None, None);
        d.api_keys.apply_own_write(secret);
        (d, key, user)
    }

    #[test]
    fn a_key_is_found_by_its_hash_and_the_cache_never_holds_the_key() {
        let (d, key, _) = fixture();
        let owner = d.key_owner(&key.hash(), Timestamp::now()).unwrap();
        assert_eq!(owner.org_name(), "acme");
        assert_eq!(owner.permissions(), vec!["manageCase"]);
        // Logins are held canonical.
        assert_eq!(owner.user.spec.login, "alice@example.com");
        let held = format!("{:?}", d.api_keys.all());
        assert!(!held.contains(key.expose()), "{held}");
        let other = ApiKey::generate().unwrap();
        assert!(d.key_owner(&other.hash(), Timestamp::now()).is_none());
    }

    #[test]
    fn a_look_alike_secret_not_owned_by_the_user_does_not_authenticate() {
        let (d, _, user) = fixture();
        let key = ApiKey::generate().unwrap();
        let mut forged =
            crate::apikey::secret::secret(&user, "acme", &key, Timestamp::now(), None, None);
        forged.metadata.name = Some("forged".into());
        forged.metadata.owner_references = None;
        d.api_keys.apply_own_write(forged);
        assert!(d.key_owner(&key.hash(), Timestamp::now()).is_none());
    }
}
