//! The one API-key renewal, used by the controller (the first key, `usher.dev/renew-api-key`,
//! `rotateEvery`) and the auth server (account settings, the admin API): inside
//! `AccountStore::modify`, the new key's hash and sealed copy replace the old in the account, so
//! the old key stops at once on every replica and two renewals never both win. The controller
//! then delivers the key to its Secret.

use k8s_openapi::jiff::Timestamp;
use usher_crds::User;

use super::{delivery::previous_valid_until, format::ApiKey};
use crate::{
    account::{Account, KeyRecord, membership_key},
    crypto::RandomError,
    keys::Keys,
};

/// A new key for a membership, with its sealed copy. Made once before the account is modified,
/// so every retry of the modify writes the same key.
pub struct NewKey {
    /// The key.
    pub key: ApiKey,
    sealed: String,
}

impl NewKey {
    /// A fresh key for `user`'s membership of account `account_id`.
    pub fn generate(keys: &Keys, account_id: &str, user: &User) -> Result<NewKey, RandomError> {
        let key = ApiKey::generate()?;
        let sealed = keys
            .seal
            .seal_api_key(account_id, &membership_key(user), &key)?;
        Ok(NewKey { key, sealed })
    }
}

/// Puts `new` in place of `user`'s key in `account`, when the key recorded is still the one
/// this renewal set out to replace (`replacing`: its hash, `None` when there was none). With a
/// positive `spec.apiKey.gracePeriod` the replaced key stays valid that long. Returns false,
/// changing nothing, when another renewal replaced the key meanwhile: that key stays, and is
/// the answer.
pub fn renew(
    account: &mut Account,
    user: &User,
    new: &NewKey,
    replacing: Option<&str>,
    now: Timestamp,
) -> bool {
    let current = account.api_key(user).map(|k| k.hash.clone());
    if current.as_deref() != replacing {
        return false;
    }
    let previous_until = current.as_ref().and(previous_valid_until(user, now));
    account.membership_mut(user).api_key = Some(KeyRecord {
        hash: new.key.hash(),
        sealed: new.sealed.clone(),
        issued_at: now,
        secret_name: user.api_key_secret_name(),
        previous_hash: previous_until.and(current),
        previous_until,
    });
    true
}

/// Removes `user`'s key from `account`: it stops at once. False when there was none.
pub fn revoke(account: &mut Account, user: &User) -> bool {
    match account
        .memberships
        .get_mut(&membership_key(user))
        .and_then(|r| r.api_key.take())
    {
        Some(_) => {
            account
                .memberships
                .retain(|_, r| r.api_key.is_some() || r.sessions_revoked_at.is_some());
            true
        }
        None => false,
    }
}

/// `user`'s key as the account keeps it, unsealed (for its owner's view and for delivery).
pub fn current(keys: &Keys, account: &Account, user: &User) -> Option<(ApiKey, Timestamp)> {
    let record = account.api_key(user)?;
    let key = keys
        .seal
        .open_api_key(&account.id, &membership_key(user), &record.sealed)?;
    Some((key, record.issued_at))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use usher_crds::{ApiKeySpec, UserSpec};

    use super::*;

    fn user(grace: Option<&str>) -> User {
        let mut u = User::new(
            "app",
            UserSpec {
                login: "app@example.com".into(),
                full_name: "App".into(),
                profile: "analyst".into(),
                api_key: Some(ApiKeySpec {
                    enabled: true,
                    grace_period: grace.map(|g| g.parse().unwrap()),
                    ..Default::default()
                }),
                ..Default::default()
            },
        );
        u.metadata.namespace = Some("acme".into());
        u.metadata.uid = Some("uid-1".into());
        u
    }

    #[test]
    fn a_renewal_replaces_the_key_it_read_and_loses_to_one_that_came_first() {
        let keys = Keys::from_bytes([1; 32], [2; 32]);
        let u = user(None);
        let mut account = Account::new("app@example.com");
        let now: Timestamp = "2026-11-27T12:00:00Z".parse().unwrap();
        let first = NewKey::generate(&keys, &account.id, &u).unwrap();
        assert!(renew(&mut account, &u, &first, None, now));
        assert_eq!(current(&keys, &account, &u).unwrap().0, first.key);
        let record = account.api_key(&u).unwrap().clone();
        assert!(record.accepts(&first.key.hash(), now));
        assert!(
            !serde_json::to_string(&account.memberships)
                .unwrap()
                .contains(first.key.expose())
        );

        // Two renewals that both read `first`: the one applied second loses and changes nothing.
        let a = NewKey::generate(&keys, &account.id, &u).unwrap();
        let b = NewKey::generate(&keys, &account.id, &u).unwrap();
        assert!(renew(&mut account, &u, &a, Some(&first.key.hash()), now));
        assert!(!renew(&mut account, &u, &b, Some(&first.key.hash()), now));
        let record = account.api_key(&u).unwrap();
        assert!(record.accepts(&a.key.hash(), now));
        assert!(
            !record.accepts(&first.key.hash(), now),
            "no grace: stops at once"
        );
        assert!(!record.accepts(&b.key.hash(), now));

        assert!(revoke(&mut account, &u));
        assert!(account.api_key(&u).is_none());
        assert!(!revoke(&mut account, &u));
    }

    #[test]
    fn a_grace_period_keeps_the_replaced_key_that_long() {
        let keys = Keys::from_bytes([1; 32], [2; 32]);
        let u = user(Some("1h"));
        let mut account = Account::new("app@example.com");
        let now: Timestamp = "2026-11-27T12:00:00Z".parse().unwrap();
        let old = NewKey::generate(&keys, &account.id, &u).unwrap();
        renew(&mut account, &u, &old, None, now);
        assert_eq!(account.api_key(&u).unwrap().previous_hash, None);
        let new = NewKey::generate(&keys, &account.id, &u).unwrap();
        renew(&mut account, &u, &new, Some(&old.key.hash()), now);
        let r = account.api_key(&u).unwrap();
        assert!(r.accepts(&old.key.hash(), "2026-11-27T12:59:59Z".parse().unwrap()));
        assert!(!r.accepts(&old.key.hash(), "2026-11-27T13:00:00Z".parse().unwrap()));
    }

    #[test]
    fn a_user_made_again_under_the_same_name_inherits_no_key() {
        let keys = Keys::from_bytes([1; 32], [2; 32]);
        let u = user(None);
        let mut account = Account::new("app@example.com");
        let now: Timestamp = "2026-11-27T12:00:00Z".parse().unwrap();
        let new = NewKey::generate(&keys, &account.id, &u).unwrap();
        renew(&mut account, &u, &new, None, now);
        let mut again = u.clone();
        again.metadata.uid = Some("uid-2".into());
        assert!(account.api_key(&again).is_none());
        assert!(current(&keys, &account, &again).is_none());
    }
}
