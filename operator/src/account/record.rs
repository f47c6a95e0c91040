//! The account record: one per canonical login, stored as the Secret `account-<id>` in the
//! operator namespace (labelled `usher.dev/account=<id>`), and its mapping to and from that
//! Secret (pure). The controller writes the invitation and session-revocation fields; the auth
//! server writes the password and TOTP fields; data keys it does not know are kept as they are.

use std::{collections::BTreeMap, fmt};

use k8s_openapi::{
    ByteString, api::core::v1::Secret, apimachinery::pkg::apis::meta::v1::ObjectMeta,
    jiff::Timestamp,
};
use usher_crds::LABEL_ACCOUNT;

use usher_crds::User;

use super::{
    grants::Grant,
    guesses::Guesses,
    membership::{KeyRecord, MembershipRecord, membership_key},
    passkeys::Passkeys,
    reset::PasswordReset,
    sessions::SessionRecord,
};
use crate::crypto::{hex, sha256};

const LOGIN: &str = "login";
const PASSWORD_HASH: &str = "passwordHash";
const ACTIVATED_AT: &str = "activatedAt";
const SESSIONS_REVOKED_AT: &str = "sessionsRevokedAt";
const MFA_ENROLLED_AT: &str = "mfaEnrolledAt";
const INVITATION_TOKEN_HASH: &str = "invitation.tokenHash";
const INVITATION_EXPIRES_AT: &str = "invitation.expiresAt";
const INVITATION_SENT_AT: &str = "invitation.sentAt";
const INVITATION_ISSUED_BY: &str = "invitation.issuedBy";
const TOTP_SECRET: &str = "totp.secret";
const TOTP_PENDING: &str = "totp.pendingSecret";
const TOTP_LAST_STEP: &str = "totp.lastStep";
const LOCKED_UNTIL: &str = "throttle.lockedUntil";
const LAST_ORGANISATION: &str = "lastOrganisation";
const GUESSES: &str = "guesses";
const SESSIONS_ENDED: &str = "sessions.ended";
const MEMBERSHIPS: &str = "memberships";
const SESSIONS_ACTIVE: &str = "sessions.active";
/// The data key of the OIDC grants (the controller sweeps only accounts that have one).
pub const OIDC_GRANTS: &str = "oidc.grants";
const PASSKEYS: &str = "passkeys";
const PASSKEYS_USER: &str = "passkeys.user";
const PASSKEYS_SPENT: &str = "passkeys.spent";
const RESET_REQUESTED_AT: &str = "reset.requestedAt";
const RESET_TOKEN_HASH: &str = "reset.tokenHash";
const RESET_EXPIRES_AT: &str = "reset.expiresAt";
const RESET_SENT_AT: &str = "reset.sentAt";
const RESET_SENT_RECENT: &str = "reset.sentRecent";
const KNOWN: &[&str] = &[
    OIDC_GRANTS,
    PASSKEYS,
    PASSKEYS_USER,
    PASSKEYS_SPENT,
    MEMBERSHIPS,
    SESSIONS_ACTIVE,
    RESET_REQUESTED_AT,
    RESET_TOKEN_HASH,
    RESET_EXPIRES_AT,
    RESET_SENT_AT,
    RESET_SENT_RECENT,
    TOTP_SECRET,
    TOTP_PENDING,
    TOTP_LAST_STEP,
    LOCKED_UNTIL,
    LAST_ORGANISATION,
    GUESSES,
    SESSIONS_ENDED,
    LOGIN,
    PASSWORD_HASH,
    ACTIVATED_AT,
    SESSIONS_REVOKED_AT,
    MFA_ENROLLED_AT,
    INVITATION_TOKEN_HASH,
    INVITATION_EXPIRES_AT,
    INVITATION_SENT_AT,
    INVITATION_ISSUED_BY,
];

/// Most ended sessions remembered per account.
pub const MAX_ENDED_SESSIONS: usize = 500;

/// The account id of a canonical login: 20 hex digits of its SHA-256.
pub fn account_id(login: &str) -> String {
    hex(&sha256(login.as_bytes()))[..20].to_owned()
}

/// A digest of what an account Secret says but its OpenID Connect grants (and its metadata but
/// name, labels and UID): two versions with the same digest differ only in what no User's
/// reconcile reads.
pub fn digest_for_users(secret: &Secret) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let m = &secret.metadata;
    for part in [m.name.as_deref(), m.uid.as_deref()] {
        ctx.update(part.unwrap_or_default().as_bytes());
        ctx.update(&[0]);
    }
    for (k, v) in m.labels.iter().flatten() {
        ctx.update(k.as_bytes());
        ctx.update(&[1]);
        ctx.update(v.as_bytes());
        ctx.update(&[0]);
    }
    // A passkey's use moves its counter and the answered challenges: only whether there are
    // passkeys concerns Users (their status says whether MFA is enrolled).
    for (k, v) in secret
        .data
        .iter()
        .flatten()
        .filter(|(k, _)| *k != OIDC_GRANTS && *k != PASSKEYS_SPENT)
    {
        if k == PASSKEYS {
            ctx.update(k.as_bytes());
            ctx.update(&[2]);
            continue;
        }
        ctx.update(k.as_bytes());
        ctx.update(&[1]);
        ctx.update(&(v.0.len() as u64).to_be_bytes());
        ctx.update(&v.0);
    }
    let mut out = [0; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// The Secret name of an account.
pub fn secret_name(id: &str) -> String {
    format!("account-{id}")
}

/// The invitation currently valid for an account (at most one: issuing replaces it).
#[derive(Clone, PartialEq, Eq)]
pub struct PendingInvitation {
    /// Hex SHA-256 of the token.
    pub token_hash: String,
    /// When the link stops working.
    pub expires_at: Timestamp,
    /// When the email was accepted by the mail server; `None` means issued but not (known to
    /// be) sent, which after a crash means the token is lost and a new one must be issued.
    pub sent_at: Option<Timestamp>,
    /// The membership (`namespace/name`) whose organisation the email named.
    pub issued_by: String,
}

/// Never shows the token's hash.
impl fmt::Debug for PendingInvitation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingInvitation")
            .field("expires_at", &self.expires_at)
            .field("sent_at", &self.sent_at)
            .field("issued_by", &self.issued_by)
            .finish_non_exhaustive()
    }
}

/// A platform account.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Account {
    /// [`account_id`] of the login.
    pub id: String,
    /// The canonical login.
    pub login: String,
    /// Argon2id PHC string, set when the invitation is accepted.
    pub password_hash: Option<String>,
    /// The invitation in force, while the account is not activated.
    pub invitation: Option<PendingInvitation>,
    /// When the password was first set.
    pub activated_at: Option<Timestamp>,
    /// Every session started before this (to the millisecond) is invalid: "Sign out
    /// everywhere", a password change or reset, an MFA reset, `usher account kill-sessions`.
    pub sessions_revoked_at: Option<Timestamp>,
    /// When TOTP enrolment was confirmed.
    pub mfa_enrolled_at: Option<Timestamp>,
    /// The confirmed TOTP secret, sealed with the MFA key (see `auth::keys`).
    pub totp_secret: Option<String>,
    /// A TOTP secret shown for enrolment and not yet confirmed, sealed likewise.
    pub totp_pending: Option<String>,
    /// The last TOTP step accepted: a code for this step or an earlier one is a replay.
    pub totp_last_step: Option<u64>,
    /// Too many failed logins: refused until then (a soft lock; `usher account unlock` ends it).
    pub locked_until: Option<Timestamp>,
    /// The organisation the person last signed in to or switched to: where a sign-in that
    /// names none lands.
    pub last_organisation: Option<String>,
    /// Failed attempts per factor in a row, and the lock past the limit.
    pub guesses: Guesses,
    /// Sessions ended by logout or organisation switch: session id → when it would have
    /// expired anyway (entries past that are dropped on the next write).
    pub sessions_ended: BTreeMap<String, i64>,
    /// Each membership's API key and Kill Session time, by `namespace/name` of its User.
    pub memberships: BTreeMap<String, MembershipRecord>,
    /// The sessions people and admins can see (at most `sessions::MAX_SESSIONS`).
    pub sessions: Vec<SessionRecord>,
    /// What the sessions gave OpenID Connect apps (at most `grants::MAX_GRANTS`).
    pub grants: Vec<Grant>,
    /// The passkeys, their user handle and the challenges answered.
    pub passkeys: Passkeys,
    /// A password reset in progress.
    pub reset: PasswordReset,
    /// Fields of other writers, kept untouched.
    pub other: BTreeMap<String, ByteString>,
    /// The resourceVersion read; updates are preconditioned on it.
    pub resource_version: Option<String>,
    /// The Secret's UID: an account deleted and made again under the same login has another,
    /// so a session issued for the old one never counts for the new one.
    pub uid: Option<String>,
}

impl fmt::Debug for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Account")
            .field("id", &self.id)
            .field("login", &self.login)
            .field("activated", &self.activated_at.is_some())
            .field("invitation_pending", &self.invitation.is_some())
            .finish_non_exhaustive()
    }
}

/// An account Secret that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("account Secret {name} is damaged: field {field} is not valid")]
pub struct DamagedAccount {
    name: String,
    field: &'static str,
}

impl Account {
    /// A new account for a canonical login.
    pub fn new(login: &str) -> Account {
        Account {
            id: account_id(login),
            login: login.to_owned(),
            ..Default::default()
        }
    }

    /// True once a password was set through the invitation.
    pub fn is_activated(&self) -> bool {
        self.password_hash.is_some() && self.activated_at.is_some()
    }

    /// Replaces the password hash `verified` (checked at a sign-in) with `stronger` (the same
    /// password under today's parameters), unless the password changed meanwhile: a rehash
    /// written late must not undo a password change or reset. True when it changed.
    pub fn rehash(&mut self, verified: &str, stronger: &str) -> bool {
        if self.password_hash.as_deref() != Some(verified) {
            return false;
        }
        self.password_hash = Some(stronger.to_owned());
        true
    }

    /// Ends every session of the account now (to the millisecond) and forgets their records.
    pub fn end_all_sessions(&mut self, now: Timestamp) {
        self.sessions_revoked_at = Some(now);
        self.sessions.clear();
        self.sessions_ended.clear();
    }

    /// True when a session that started at `iat` (Unix milliseconds) was ended by an
    /// account-wide revocation.
    pub fn revoked_since(&self, iat: i64) -> bool {
        self.sessions_revoked_at
            .is_some_and(|at| iat <= at.as_millisecond())
    }

    /// True when a second factor is enrolled: TOTP confirmed, or a passkey.
    pub fn mfa_enrolled(&self) -> bool {
        self.totp_secret.is_some() || self.passkeys.any()
    }

    /// Removes the TOTP enrolment (confirmed or pending) and its replay state.
    pub fn forget_totp(&mut self) {
        self.totp_secret = None;
        self.totp_pending = None;
        self.totp_last_step = None;
        self.mfa_enrolled_at = None;
    }

    /// What this account keeps about `user`'s membership, when it was kept for that very User
    /// (same UID).
    pub fn membership(&self, user: &User) -> Option<&MembershipRecord> {
        self.memberships
            .get(&membership_key(user))
            .filter(|r| Some(r.uid.as_str()) == user.metadata.uid.as_deref())
    }

    /// True when `grant`'s session or membership ended (THE rule, for the auth server refusing
    /// its tokens and the controller telling its app): the grant ended on its own, its session
    /// was signed out or revoked (account-wide, or by Kill Session in its organisation), or
    /// `user` (the User of its organisation with this login, if any) is another membership
    /// (UID), being deleted, locked or a service user. Reaching its lifetime is no end: it
    /// expires.
    pub fn grant_ended(&self, grant: &Grant, user: Option<&User>) -> bool {
        let membership_ended = match user {
            None => true,
            Some(u) => {
                u.metadata.uid.as_deref() != Some(grant.user_uid.as_str())
                    || u.metadata.deletion_timestamp.is_some()
                    || u.spec.locked
                    || u.is_service()
                    || self
                        .membership(u)
                        .and_then(|r| r.sessions_revoked_at)
                        .is_some_and(|at| grant.session_iat <= at.as_millisecond())
            }
        };
        grant.ended_at.is_some()
            || self.revoked_since(grant.session_iat)
            || self.sessions_ended.contains_key(&grant.session)
            || membership_ended
    }

    /// Records that session `sid` ended (it would have expired at `expires_ms` anyway),
    /// forgetting the ended sessions that expired by `now`. Past [`MAX_ENDED_SESSIONS`] ended
    /// within one lifetime, every session ends instead (the safe way to forget them).
    pub fn end_session(&mut self, sid: &str, expires_ms: i64, now: Timestamp) {
        let now_ms = now.as_millisecond();
        self.sessions_ended.retain(|_, until| *until > now_ms);
        super::sessions::remove(&mut self.sessions, sid);
        if self.sessions_ended.len() >= MAX_ENDED_SESSIONS {
            self.end_all_sessions(now);
        } else {
            self.sessions_ended.insert(sid.to_owned(), expires_ms);
        }
    }

    /// The record of `user`'s membership to change, made (or made anew, for a User of the same
    /// name with another UID) when needed.
    pub fn membership_mut(&mut self, user: &User) -> &mut MembershipRecord {
        let uid = user.metadata.uid.clone().unwrap_or_default();
        let record = self.memberships.entry(membership_key(user)).or_default();
        if record.uid != uid {
            *record = MembershipRecord {
                uid,
                ..Default::default()
            };
        }
        record
    }

    /// The API key recorded for `user`'s membership.
    pub fn api_key(&self, user: &User) -> Option<&KeyRecord> {
        self.membership(user).and_then(|r| r.api_key.as_ref())
    }

    /// When sessions acting in `user`'s organisation were last ended: the later of the
    /// account-wide revocation and this membership's Kill Session.
    pub fn sessions_revoked_for(&self, user: &User) -> Option<Timestamp> {
        let own = self.membership(user).and_then(|r| r.sessions_revoked_at);
        own.into_iter().chain(self.sessions_revoked_at).max()
    }

    /// Reads an account Secret.
    pub fn from_secret(secret: &Secret) -> Result<Account, DamagedAccount> {
        let name = secret.metadata.name.clone().unwrap_or_default();
        let data = secret.data.clone().unwrap_or_default();
        let text = |key: &'static str| -> Result<Option<String>, DamagedAccount> {
            data.get(key)
                .map(|v| {
                    String::from_utf8(v.0.clone()).map_err(|_| DamagedAccount {
                        name: name.clone(),
                        field: key,
                    })
                })
                .transpose()
        };
        let time = |key: &'static str| -> Result<Option<Timestamp>, DamagedAccount> {
            text(key)?
                .filter(|s| !s.is_empty())
                .map(|s| {
                    s.parse().map_err(|_| DamagedAccount {
                        name: name.clone(),
                        field: key,
                    })
                })
                .transpose()
        };
        // A JSON field: absent or empty is the default.
        fn json<T: serde::de::DeserializeOwned + Default>(
            raw: Option<String>,
            name: &str,
            field: &'static str,
        ) -> Result<T, DamagedAccount> {
            match raw.filter(|s| !s.is_empty()) {
                None => Ok(T::default()),
                Some(s) => serde_json::from_str(&s).map_err(|_| DamagedAccount {
                    name: name.to_owned(),
                    field,
                }),
            }
        }
        let login = text(LOGIN)?.ok_or(DamagedAccount {
            name: name.clone(),
            field: LOGIN,
        })?;
        let invitation = match (text(INVITATION_TOKEN_HASH)?, time(INVITATION_EXPIRES_AT)?) {
            (Some(token_hash), Some(expires_at)) if !token_hash.is_empty() => {
                Some(PendingInvitation {
                    token_hash,
                    expires_at,
                    sent_at: time(INVITATION_SENT_AT)?,
                    issued_by: text(INVITATION_ISSUED_BY)?.unwrap_or_default(),
                })
            }
            _ => None,
        };
        Ok(Account {
            id: account_id(&login),
            password_hash: text(PASSWORD_HASH)?.filter(|s| !s.is_empty()),
            activated_at: time(ACTIVATED_AT)?,
            sessions_revoked_at: time(SESSIONS_REVOKED_AT)?,
            mfa_enrolled_at: time(MFA_ENROLLED_AT)?,
            totp_secret: text(TOTP_SECRET)?.filter(|s| !s.is_empty()),
            totp_pending: text(TOTP_PENDING)?.filter(|s| !s.is_empty()),
            totp_last_step: text(TOTP_LAST_STEP)?
                .filter(|s| !s.is_empty())
                .map(|s| {
                    s.parse().map_err(|_| DamagedAccount {
                        name: name.clone(),
                        field: TOTP_LAST_STEP,
                    })
                })
                .transpose()?,
            locked_until: time(LOCKED_UNTIL)?,
            last_organisation: text(LAST_ORGANISATION)?.filter(|s| !s.is_empty()),
            guesses: json(text(GUESSES)?, &name, GUESSES)?,
            sessions_ended: json(text(SESSIONS_ENDED)?, &name, SESSIONS_ENDED)?,
            memberships: json(text(MEMBERSHIPS)?, &name, MEMBERSHIPS)?,
            sessions: json(text(SESSIONS_ACTIVE)?, &name, SESSIONS_ACTIVE)?,
            grants: json(text(OIDC_GRANTS)?, &name, OIDC_GRANTS)?,
            passkeys: Passkeys {
                user: text(PASSKEYS_USER)?.filter(|s| !s.is_empty()),
                keys: json(text(PASSKEYS)?, &name, PASSKEYS)?,
                spent: json(text(PASSKEYS_SPENT)?, &name, PASSKEYS_SPENT)?,
            },
            reset: PasswordReset {
                requested_at: time(RESET_REQUESTED_AT)?,
                token_hash: text(RESET_TOKEN_HASH)?.filter(|s| !s.is_empty()),
                expires_at: time(RESET_EXPIRES_AT)?,
                sent_at: time(RESET_SENT_AT)?,
                sent_recent: json(text(RESET_SENT_RECENT)?, &name, RESET_SENT_RECENT)?,
            },
            invitation,
            uid: secret.metadata.uid.clone(),
            other: data
                .into_iter()
                .filter(|(k, _)| !KNOWN.contains(&k.as_str()))
                .collect(),
            resource_version: secret.metadata.resource_version.clone(),
            login,
        })
    }

    /// The Secret for this account, with the resourceVersion precondition when known.
    pub fn to_secret(&self, namespace: &str) -> Secret {
        let mut data = self.other.clone();
        let mut put = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                data.insert(k.to_owned(), ByteString(v.into_bytes()));
            }
        };
        put(LOGIN, Some(self.login.clone()));
        put(PASSWORD_HASH, self.password_hash.clone());
        put(ACTIVATED_AT, self.activated_at.map(|t| t.to_string()));
        put(
            SESSIONS_REVOKED_AT,
            self.sessions_revoked_at.map(|t| t.to_string()),
        );
        put(MFA_ENROLLED_AT, self.mfa_enrolled_at.map(|t| t.to_string()));
        put(TOTP_SECRET, self.totp_secret.clone());
        put(TOTP_PENDING, self.totp_pending.clone());
        put(TOTP_LAST_STEP, self.totp_last_step.map(|s| s.to_string()));
        put(LOCKED_UNTIL, self.locked_until.map(|t| t.to_string()));
        put(LAST_ORGANISATION, self.last_organisation.clone());
        if !self.guesses.is_empty() {
            put(GUESSES, serde_json::to_string(&self.guesses).ok());
        }
        if !self.sessions_ended.is_empty() {
            put(
                SESSIONS_ENDED,
                serde_json::to_string(&self.sessions_ended).ok(),
            );
        }
        if !self.memberships.is_empty() {
            put(MEMBERSHIPS, serde_json::to_string(&self.memberships).ok());
        }
        if !self.sessions.is_empty() {
            put(SESSIONS_ACTIVE, serde_json::to_string(&self.sessions).ok());
        }
        if !self.grants.is_empty() {
            put(OIDC_GRANTS, serde_json::to_string(&self.grants).ok());
        }
        put(PASSKEYS_USER, self.passkeys.user.clone());
        if !self.passkeys.keys.is_empty() {
            put(PASSKEYS, serde_json::to_string(&self.passkeys.keys).ok());
        }
        if !self.passkeys.spent.is_empty() {
            put(
                PASSKEYS_SPENT,
                serde_json::to_string(&self.passkeys.spent).ok(),
            );
        }
        put(
            RESET_REQUESTED_AT,
            self.reset.requested_at.map(|t| t.to_string()),
        );
        put(RESET_TOKEN_HASH, self.reset.token_hash.clone());
        put(
            RESET_EXPIRES_AT,
            self.reset.expires_at.map(|t| t.to_string()),
        );
        put(RESET_SENT_AT, self.reset.sent_at.map(|t| t.to_string()));
        if !self.reset.sent_recent.is_empty() {
            put(
                RESET_SENT_RECENT,
                serde_json::to_string(&self.reset.sent_recent).ok(),
            );
        }
        if let Some(inv) = &self.invitation {
            put(INVITATION_TOKEN_HASH, Some(inv.token_hash.clone()));
            put(INVITATION_EXPIRES_AT, Some(inv.expires_at.to_string()));
            put(INVITATION_SENT_AT, inv.sent_at.map(|t| t.to_string()));
            put(INVITATION_ISSUED_BY, Some(inv.issued_by.clone()));
        }
        Secret {
            metadata: ObjectMeta {
                name: Some(secret_name(&self.id)),
                namespace: Some(namespace.to_owned()),
                labels: Some(BTreeMap::from([(
                    LABEL_ACCOUNT.to_owned(),
                    self.id.clone(),
                )])),
                resource_version: self.resource_version.clone(),
                uid: self.uid.clone(),
                ..Default::default()
            },
            type_: Some("Opaque".into()),
            data: Some(data),
            ..Default::default()
        }
    }
}

/// What readers that do not decode the whole account look up in its Secret (the auth server's
/// indexes, the controller's "whose account changed"), read by the same data keys as
/// [`Account::from_secret`]; a damaged field yields nothing for that field only.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct AccountIndex {
    /// The login the account belongs to.
    pub login: Option<String>,
    /// The pending invitation's token hash.
    pub invitation_hash: Option<String>,
    /// The pending password reset's token hash.
    pub reset_hash: Option<String>,
    /// The hashes of every API key it records (current, and previous within grace).
    pub key_hashes: Vec<String>,
    /// The ids of its recorded sessions.
    pub session_ids: Vec<String>,
    /// The user handle its passkeys carry.
    pub passkey_user: Option<String>,
}

/// A non-empty text field of an account Secret, without decoding the rest.
fn data_text<'a>(secret: &'a Secret, key: &str) -> Option<&'a str> {
    secret
        .data
        .as_ref()?
        .get(key)
        .and_then(|v| std::str::from_utf8(&v.0).ok())
        .filter(|s| !s.is_empty())
}

impl AccountIndex {
    /// The login an account Secret belongs to, read alone (what the controller's waker needs on
    /// every account change, without parsing the memberships and sessions).
    pub fn login_of(secret: &Secret) -> Option<String> {
        data_text(secret, LOGIN).map(str::to_owned)
    }

    /// Reads the index fields of an account Secret.
    pub fn of(secret: &Secret) -> AccountIndex {
        let text = |key: &str| data_text(secret, key);
        let memberships: BTreeMap<String, MembershipRecord> = text(MEMBERSHIPS)
            .and_then(|j| serde_json::from_str(j).ok())
            .unwrap_or_default();
        let sessions: Vec<SessionRecord> = text(SESSIONS_ACTIVE)
            .and_then(|j| serde_json::from_str(j).ok())
            .unwrap_or_default();
        AccountIndex {
            login: AccountIndex::login_of(secret),
            invitation_hash: text(INVITATION_TOKEN_HASH).map(str::to_owned),
            reset_hash: text(RESET_TOKEN_HASH).map(str::to_owned),
            key_hashes: memberships
                .values()
                .filter_map(|m| m.api_key.as_ref())
                .flat_map(|k| k.hashes().map(str::to_owned))
                .collect(),
            session_ids: sessions.into_iter().map(|r| r.id).collect(),
            passkey_user: text(PASSKEYS_USER).map(str::to_owned),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn a_late_rehash_never_undoes_a_password_change() {
        let mut a = Account::new("alice@example.com");
        a.password_hash = Some("$argon2id$old-params$old".into());
        // A password change lands between the sign-in and its rehash.
        a.password_hash = Some("$argon2id$new-password".into());
        assert!(!a.rehash("$argon2id$old-params$old", "$argon2id$stronger$old"));
        assert_eq!(a.password_hash.as_deref(), Some("$argon2id$new-password"));
        // Nothing changed meanwhile: the stronger hash replaces the verified one.
        assert!(a.rehash("$argon2id$new-password", "$argon2id$stronger$new"));
        assert_eq!(a.password_hash.as_deref(), Some("$argon2id$stronger$new"));
    }

    #[test]
    fn round_trips_through_a_secret_keeping_other_writers_fields() {
        let mut a = Account::new("alice@example.com");
        a.password_hash = Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into());
        a.activated_at = Some(ts("2026-11-27T10:00:00Z"));
        a.invitation = Some(PendingInvitation {
            token_hash: "ab".repeat(32),
            expires_at: ts("2026-11-28T10:00:00Z"),
            sent_at: None,
            issued_by: "acme/alice".into(),
        });
        a.totp_secret = Some("sealed".into());
        a.totp_last_step = Some(58_800_000);
        a.locked_until = Some(ts("2026-11-27T10:15:00Z"));
        a.last_organisation = Some("acme".into());
        a.guesses.failed(
            crate::account::guesses::Factor::Code,
            ts("2026-11-27T10:16:00Z"),
        );
        a.sessions_ended.insert("c2lk".into(), 1_764_000_000_000);
        a.sessions.push(SessionRecord::new(
            "c2lk",
            "acme",
            ts("2026-11-27T10:00:00.250Z"),
            ts("2026-11-28T10:00:00Z"),
            "Mozilla/5.0",
            "203.0.113.9",
        ));
        a.reset = PasswordReset {
            requested_at: Some(ts("2026-11-27T10:01:00Z")),
            token_hash: Some("cd".repeat(32)),
            expires_at: Some(ts("2026-11-27T11:01:00Z")),
            sent_at: None,
            sent_recent: vec![ts("2026-11-27T09:01:00Z")],
        };
        a.memberships.insert(
            "acme/alice".into(),
            MembershipRecord {
                uid: "uid-1".into(),
                sessions_revoked_at: Some(ts("2026-11-27T10:20:00.5Z")),
                api_key: None,
            },
        );
        a.other
            .insert("someone.else".into(), ByteString(b"kept".to_vec()));
        a.resource_version = Some("42".into());
        a.uid = Some("c0ffee".into());
        let secret = a.to_secret("usher-system");
        assert_eq!(
            secret.metadata.name.as_deref(),
            Some(secret_name(&a.id).as_str())
        );
        assert_eq!(
            secret.metadata.labels.as_ref().unwrap()[LABEL_ACCOUNT],
            a.id
        );
        assert_eq!(Account::from_secret(&secret).unwrap(), a);
    }

    #[test]
    fn the_index_reads_what_the_record_wrote() {
        let mut a = Account::new("alice@example.com");
        a.invitation = Some(PendingInvitation {
            token_hash: "ab".repeat(32),
            expires_at: ts("2026-11-28T10:00:00Z"),
            sent_at: None,
            issued_by: "acme/alice".into(),
        });
        a.reset.token_hash = Some("cd".repeat(32));
        a.sessions.push(SessionRecord::new(
            "c2lk",
            "acme",
            ts("2026-11-27T10:00:00Z"),
            ts("2026-11-28T10:00:00Z"),
            "Mozilla/5.0",
            "203.0.113.9",
        ));
        a.memberships.insert(
            "acme/alice".into(),
            MembershipRecord {
                uid: "uid-1".into(),
                sessions_revoked_at: None,
                api_key: Some(KeyRecord {
                    hash: "ee".repeat(32),
                    sealed: "sealed".into(),
                    issued_at: ts("2026-11-27T10:00:00Z"),
                    secret_name: "alice-api-key".into(),
                    previous_hash: Some("ff".repeat(32)),
                    previous_until: Some(ts("2026-11-27T11:00:00Z")),
                }),
            },
        );
        let index = AccountIndex::of(&a.to_secret("usher-system"));
        assert_eq!(
            index,
            AccountIndex {
                login: Some("alice@example.com".into()),
                invitation_hash: Some("ab".repeat(32)),
                reset_hash: Some("cd".repeat(32)),
                key_hashes: vec!["ee".repeat(32), "ff".repeat(32)],
                session_ids: vec!["c2lk".into()],
                passkey_user: None,
            }
        );
        // A fresh account has nothing to be found by but its login.
        let fresh = AccountIndex::of(&Account::new("bob@example.com").to_secret("usher-system"));
        assert_eq!(fresh.login.as_deref(), Some("bob@example.com"));
        assert!(fresh.invitation_hash.is_none() && fresh.key_hashes.is_empty());
    }

    #[test]
    fn the_id_is_stable_and_differs_per_login() {
        assert_eq!(
            account_id("alice@example.com"),
            account_id("alice@example.com")
        );
        assert_ne!(
            account_id("alice@example.com"),
            account_id("bob@example.com")
        );
        assert_eq!(account_id("alice@example.com").len(), 20);
    }

    #[test]
    fn debug_never_shows_hashes() {
        let mut a = Account::new("alice@example.com");
        a.password_hash = Some("$argon2id$secret-hash".into());
        let shown = format!("{a:?}");
        assert!(!shown.contains("argon2id"), "{shown}");
    }

    #[test]
    fn a_damaged_secret_is_an_error_naming_the_field_not_its_value() {
        let mut s = Account::new("alice@example.com").to_secret("usher-system");
        s.data
            .as_mut()
            .unwrap()
            .insert(ACTIVATED_AT.into(), ByteString(b"yesterday".to_vec()));
        let e = Account::from_secret(&s).unwrap_err().to_string();
        assert!(e.contains("activatedAt") && !e.contains("yesterday"), "{e}");
    }

    #[test]
    fn only_a_change_of_grants_leaves_the_digest_for_users_alone() {
        let mut a = Account::new("alice@example.com");
        a.password_hash = Some("$argon2id$x".into());
        let before = digest_for_users(&a.to_secret("ns"));
        let mut refreshed = a.clone();
        refreshed.resource_version = Some("42".into());
        refreshed
            .grants
            .push(crate::account::grants::tests::grant("g"));
        assert_eq!(digest_for_users(&refreshed.to_secret("ns")), before);
        let mut enrolled = a.clone();
        enrolled.mfa_enrolled_at = Some(ts("2026-11-27T10:00:00Z"));
        assert_ne!(digest_for_users(&enrolled.to_secret("ns")), before);
    }

    #[test]
    fn a_first_passkey_wakes_users_and_its_use_does_not() {
        use crate::account::passkeys::PasskeyRecord;
        let mut a = Account::new("alice@example.com");
        let before = digest_for_users(&a.to_secret("ns"));
        a.passkeys.user = Some("5c6a0c52-0d6c-4f34-9f7e-2b2d39a3a1f0".into());
        a.passkeys
            .add(PasskeyRecord {
                id: "k".into(),
                name: "Laptop".into(),
                created_at: ts("2026-11-27T10:00:00Z"),
                last_used_at: None,
                credential: serde_json::json!({"counter": 1}),
            })
            .unwrap();
        let with_key = digest_for_users(&a.to_secret("ns"));
        assert_ne!(with_key, before, "mfaEnrolled changes");
        // Round trip, and an index of the user handle.
        let back = Account::from_secret(&a.to_secret("ns")).unwrap();
        assert_eq!(back.passkeys, a.passkeys);
        assert_eq!(
            AccountIndex::of(&a.to_secret("ns")).passkey_user.as_deref(),
            Some("5c6a0c52-0d6c-4f34-9f7e-2b2d39a3a1f0")
        );
        a.passkeys
            .used(
                "k",
                serde_json::json!({"counter": 2}),
                ts("2026-11-28T10:00:00Z"),
            )
            .unwrap();
        a.passkeys.spend("c", 1, 0).unwrap();
        assert_eq!(
            digest_for_users(&a.to_secret("ns")),
            with_key,
            "a sign-in wakes nobody"
        );
        assert!(a.mfa_enrolled());
    }
}
