//! Back-Channel Logout 1.0, the pure part: which apps must hear that a session ended, the
//! outbox that keeps what is due until each app answered (the `usher-oidc-logouts` Secret of the
//! accounts namespace: it outlives every process and every account), the logout token's claims,
//! and when to try again.
//!
//! The controller's leader alone sends (`controller::logouts`): it already is the one process
//! that watches every account and User, and the one that may write Events on OIDCClients.

use std::{collections::BTreeMap, time::Duration};

use k8s_openapi::{
    ByteString, api::core::v1::Secret, apimachinery::pkg::apis::meta::v1::ObjectMeta,
    jiff::Timestamp,
};
use serde::{Deserialize, Serialize};
use usher_crds::User;

use crate::account::{Account, grants::Grant};

/// The outbox Secret, in the accounts namespace.
pub const SECRET_NAME: &str = "usher-oidc-logouts";
const DATA_KEY: &str = "due";
/// Most logouts the outbox keeps; past this the oldest is dropped (counted, logged, an Event).
pub const MAX_DUE: usize = 2000;
/// The event a logout token carries (Back-Channel Logout 1.0, §2.4).
pub const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// How long a logout token is valid.
const TOKEN_LIFETIME_S: i64 = 120;
/// First wait after a failure, doubled per failure in a row, up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_secs(2);
/// Longest wait between two attempts.
pub const MAX_RETRY: Duration = Duration::from_secs(300);

/// One logout due: app `client_id` must hear that session `sid` of account `sub` ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Due {
    /// The client to tell.
    pub client_id: String,
    /// The session that ended (the `sid` of its ID tokens).
    pub sid: String,
    /// The account (the `sub` of its ID tokens).
    pub sub: String,
    /// The issuer its tokens named.
    pub issuer: String,
    /// When it became due: it is dropped once older than the retry bound.
    pub since: Timestamp,
}

impl Due {
    fn same(&self, other: &Due) -> bool {
        self.client_id == other.client_id && self.sid == other.sid && self.sub == other.sub
    }
}

/// The logouts not yet delivered, as stored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outbox {
    /// Oldest first.
    pub due: Vec<Due>,
    /// The resourceVersion read (`None`: not stored yet).
    pub resource_version: Option<String>,
}

/// The outbox Secret cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("Secret {SECRET_NAME} is damaged: {0}")]
pub struct DamagedOutbox(serde_json::Error);

impl Outbox {
    /// The outbox a stored Secret holds.
    pub fn from_secret(secret: &Secret) -> Result<Outbox, DamagedOutbox> {
        let due = match secret.data.as_ref().and_then(|d| d.get(DATA_KEY)) {
            Some(b) => serde_json::from_slice(&b.0).map_err(DamagedOutbox)?,
            None => Vec::new(),
        };
        Ok(Outbox {
            due,
            resource_version: secret.metadata.resource_version.clone(),
        })
    }

    /// The Secret that stores it in `namespace` (preconditioned on the version read).
    pub fn to_secret(&self, namespace: &str) -> Secret {
        let json = serde_json::to_vec(&self.due).unwrap_or_default();
        Secret {
            metadata: ObjectMeta {
                name: Some(SECRET_NAME.into()),
                namespace: Some(namespace.into()),
                resource_version: self.resource_version.clone(),
                ..Default::default()
            },
            type_: Some("Opaque".into()),
            data: Some(BTreeMap::from([(DATA_KEY.into(), ByteString(json))])),
            ..Default::default()
        }
    }

    /// Adds each of `new` not due already (one logout per client and session); past
    /// [`MAX_DUE`] the oldest go. Returns how many were added, and those dropped.
    pub fn enqueue(&mut self, new: impl IntoIterator<Item = Due>) -> (usize, Vec<Due>) {
        let mut added = 0;
        for d in new {
            if !self.due.iter().any(|x| x.same(&d)) {
                self.due.push(d);
                added += 1;
            }
        }
        let over = self.due.len().saturating_sub(MAX_DUE);
        (added, self.due.drain(..over).collect())
    }

    /// Takes `d` out (delivered, or given up); true when it was there.
    pub fn remove(&mut self, d: &Due) -> bool {
        let before = self.due.len();
        self.due.retain(|x| !x.same(d));
        before != self.due.len()
    }
}

/// What one account's grants call for.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Sweep {
    /// The logouts due (one per client and session whose grants ended after tokens were
    /// issued), for clients `tells` says have a back-channel endpoint.
    pub due: Vec<Due>,
    /// The grants that ended: to take out of the account once their logouts are in the outbox.
    pub ended: Vec<String>,
}

/// Sweeps `account`: each grant that ended by [`Account::grant_ended`] (its membership is the
/// one of `users` with the grant's User UID, if any) goes; a logout is due for those that
/// issued tokens to a client that `tells` (has a back-channel endpoint). Expired grants are
/// left alone: their apps' tokens expired with them, and the next grant written drops them.
pub fn sweep(
    account: &Account,
    users: &[&User],
    tells: impl Fn(&str) -> bool,
    default_issuer: &str,
    now: Timestamp,
) -> Sweep {
    let mut out = Sweep::default();
    for g in account.grants.iter().filter(|g| g.expires_at > now) {
        let user = users
            .iter()
            .copied()
            .find(|u| u.metadata.uid.as_deref() == Some(g.user_uid.as_str()));
        if !account.grant_ended(g, user) {
            continue;
        }
        out.ended.push(g.id.clone());
        if g.issued_tokens() && tells(&g.client_id) {
            let d = due_of(account, g, default_issuer, now);
            if !out.due.iter().any(|x| x.same(&d)) {
                out.due.push(d);
            }
        }
    }
    out
}

fn due_of(account: &Account, g: &Grant, default_issuer: &str, now: Timestamp) -> Due {
    Due {
        client_id: g.client_id.clone(),
        sid: g.session.clone(),
        sub: account.id.clone(),
        issuer: if g.issuer.is_empty() {
            default_issuer.to_owned()
        } else {
            g.issuer.clone()
        },
        since: now,
    }
}

/// The claims of a logout token (Back-Channel Logout 1.0, §2.4): never a `nonce`.
#[derive(Debug, Serialize, Deserialize)]
pub struct LogoutClaims {
    /// The issuer.
    pub iss: String,
    /// The account.
    pub sub: String,
    /// The client.
    pub aud: String,
    /// Issued at (Unix s).
    pub iat: i64,
    /// Expires at (Unix s).
    pub exp: i64,
    /// Unique per token.
    pub jti: String,
    /// The session that ended.
    pub sid: String,
    /// `{EVENT: {}}`.
    pub events: serde_json::Value,
}

/// The claims of the logout token for `d`, issued at `now_s` (Unix s) with id `jti`.
pub fn claims(d: &Due, now_s: i64, jti: String) -> LogoutClaims {
    LogoutClaims {
        iss: d.issuer.clone(),
        sub: d.sub.clone(),
        aud: d.client_id.clone(),
        iat: now_s,
        exp: now_s + TOKEN_LIFETIME_S,
        jti,
        sid: d.sid.clone(),
        events: serde_json::json!({ EVENT: {} }),
    }
}

/// How long to wait after `failures` failures in a row (≥ 1) to one app.
pub fn retry_after(failures: u32) -> Duration {
    FIRST_RETRY
        .saturating_mul(1 << failures.saturating_sub(1).min(16))
        .min(MAX_RETRY)
}

/// True when `d` has waited longer than `keep`: it is given up.
pub fn too_old(d: &Due, now: Timestamp, keep: Duration) -> bool {
    let keep = k8s_openapi::jiff::SignedDuration::try_from(keep)
        .unwrap_or(k8s_openapi::jiff::SignedDuration::MAX);
    now.duration_since(d.since) > keep
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::account::grants::tests::grant;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    fn user(uid: &str, locked: bool) -> User {
        let mut u = User::new(
            "alice",
            usher_crds::UserSpec {
                login: "alice@example.com".into(),
                full_name: "Alice".into(),
                profile: "p".into(),
                locked,
                ..Default::default()
            },
        );
        u.metadata.namespace = Some("acme-users".into());
        u.metadata.uid = Some(uid.into());
        u
    }

    fn account_with(grants: Vec<Grant>) -> Account {
        let mut a = Account::new("alice@example.com");
        a.grants = grants;
        a
    }

    fn redeemed(id: &str, client: &str, sid: &str) -> Grant {
        let mut g = grant(id);
        g.client_id = client.into();
        g.session = sid.into();
        g.code = None;
        g.refresh_hash = Some("h".into());
        g.issuer = "https://id.example".into();
        g.expires_at = at(86_400);
        g
    }

    #[test]
    fn a_signed_out_session_ends_its_grants_and_each_app_that_got_tokens_is_due_once() {
        let mut unredeemed = grant("g4");
        unredeemed.session = "s1".into();
        let mut a = account_with(vec![
            redeemed("g1", "acme.app", "s1"),
            redeemed("g2", "acme.app", "s1"),
            redeemed("g3", "acme.other", "s1"),
            unredeemed,
            redeemed("g5", "acme.app", "s2"),
        ]);
        a.end_session("s1", at(90_000).as_millisecond(), at(10));
        let alice = user("u", false);
        let s = sweep(&a, &[&alice], |c| c != "acme.other", "x", at(10));
        assert_eq!(s.ended, ["g1", "g2", "g3", "g4"]);
        assert_eq!(s.due.len(), 1, "one logout per client and session: {s:?}");
        assert_eq!(
            (s.due[0].client_id.as_str(), s.due[0].sid.as_str()),
            ("acme.app", "s1")
        );
        assert_eq!(s.due[0].issuer, "https://id.example");
        assert_eq!(s.due[0].sub, a.id);
        // Nothing else ended: sweeping again after the grants went finds nothing.
        a.grants.retain(|g| !s.ended.contains(&g.id));
        assert_eq!(
            sweep(&a, &[&alice], |_| true, "x", at(11)),
            Sweep::default()
        );
    }

    #[test]
    fn a_locked_deleted_or_replaced_membership_ends_its_grants_and_expiry_does_not() {
        let a = account_with(vec![redeemed("g1", "acme.app", "s1")]);
        let tells = |_: &str| true;
        assert!(
            sweep(&a, &[&user("u", false)], tells, "x", at(1))
                .ended
                .is_empty()
        );
        assert_eq!(
            sweep(&a, &[&user("u", true)], tells, "x", at(1)).ended,
            ["g1"]
        );
        assert_eq!(sweep(&a, &[], tells, "x", at(1)).ended, ["g1"], "gone");
        assert_eq!(
            sweep(&a, &[&user("another", false)], tells, "x", at(1)).ended,
            ["g1"],
            "a User of the same name made again is another membership"
        );
        let mut deleting = user("u", false);
        deleting.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at(0)));
        assert_eq!(sweep(&a, &[&deleting], tells, "x", at(1)).ended, ["g1"]);
        assert!(
            sweep(&a, &[], tells, "x", at(86_400)).ended.is_empty(),
            "expired: nothing to tell"
        );
    }

    #[test]
    fn kill_session_and_revocations_end_grants_that_began_before_them_only() {
        let alice = user("u", false);
        let mut a = account_with(vec![redeemed("g1", "acme.app", "s1")]);
        a.grants[0].session_iat = at(5).as_millisecond();
        a.membership_mut(&alice).sessions_revoked_at = Some(at(4));
        assert!(sweep(&a, &[&alice], |_| true, "x", at(6)).ended.is_empty());
        a.membership_mut(&alice).sessions_revoked_at = Some(at(5));
        assert_eq!(sweep(&a, &[&alice], |_| true, "x", at(6)).ended, ["g1"]);
        let mut b = account_with(vec![redeemed("g1", "acme.app", "s1")]);
        b.end_all_sessions(at(1));
        assert_eq!(sweep(&b, &[&alice], |_| true, "x", at(6)).ended, ["g1"]);
        let mut c = account_with(vec![redeemed("g1", "acme.app", "s1")]);
        crate::account::grants::end(&mut c.grants, at(1), |_| true);
        assert_eq!(sweep(&c, &[&alice], |_| true, "x", at(6)).due.len(), 1);
    }

    #[test]
    fn the_outbox_keeps_one_logout_per_client_and_session_and_is_bounded() {
        let d = |i: usize| Due {
            client_id: "acme.app".into(),
            sid: format!("s{i}"),
            sub: "a".into(),
            issuer: "i".into(),
            since: at(0),
        };
        let mut o = Outbox::default();
        assert_eq!(o.enqueue([d(0), d(0), d(1)]).0, 2);
        assert_eq!(o.enqueue([d(1)]).0, 0);
        let back = Outbox::from_secret(&o.to_secret("ns")).unwrap();
        assert_eq!(back.due, o.due);
        assert!(o.remove(&d(0)));
        assert!(!o.remove(&d(0)));
        let (_, dropped) = o.enqueue((2..MAX_DUE + 3).map(d));
        assert_eq!(o.due.len(), MAX_DUE);
        assert_eq!(dropped, [d(1), d(2)], "the oldest go first");
    }

    #[test]
    fn a_logout_token_says_who_which_session_and_the_event_and_never_a_nonce() {
        let d = Due {
            client_id: "acme.app".into(),
            sid: "s1".into(),
            sub: "acct".into(),
            issuer: "https://id.example".into(),
            since: at(0),
        };
        let c = serde_json::to_value(claims(&d, 100, "j".into())).unwrap();
        assert_eq!(c["aud"], "acme.app");
        assert_eq!(c["sid"], "s1");
        assert_eq!(c["sub"], "acct");
        assert_eq!(c["iss"], "https://id.example");
        assert_eq!(c["exp"], 220);
        assert_eq!(c["events"][EVENT], serde_json::json!({}));
        assert!(c.get("nonce").is_none());
    }

    #[test]
    fn retries_back_off_to_five_minutes_and_old_logouts_are_given_up() {
        assert_eq!(retry_after(1), Duration::from_secs(2));
        assert_eq!(retry_after(3), Duration::from_secs(8));
        assert_eq!(retry_after(40), MAX_RETRY);
        let d = Due {
            client_id: "c".into(),
            sid: "s".into(),
            sub: "a".into(),
            issuer: "i".into(),
            since: at(0),
        };
        let day = Duration::from_secs(86_400);
        assert!(!too_old(&d, at(86_400), day));
        assert!(too_old(&d, at(86_401), day));
    }
}
