//! The Secret that delivers a membership's API key to apps: `spec.apiKey.secretName` (default
//! `<user>-api-key`) in the User's namespace, data key `api-key`, labels `usher.dev/user` and
//! `usher.dev/organisation`, owned by the User. It never authenticates by itself: the key works
//! because its hash is in the account (see `account::KeyRecord`); the controller writes this
//! Secret from there, and puts it right when anyone changes it.

use std::collections::BTreeMap;

use k8s_openapi::{ByteString, api::core::v1::Secret, jiff::Timestamp};
use kube::{Resource, ResourceExt, api::ObjectMeta};
use usher_crds::{LABEL_ORGANISATION, LABEL_USER, User};

use super::format::ApiKey;
use crate::account::KeyRecord;

/// Data key of the key itself.
pub const KEY: &str = "api-key";
/// Annotation: when the key was issued (RFC 3339), for apps that want to know.
pub const ANNOTATION_ISSUED_AT: &str = "usher.dev/issued-at";

/// True when `secret` was made by Usher for `user`: it has the User (by UID) as its controller.
/// Usher never writes over a Secret that is not.
pub fn is_ours(secret: &Secret, user: &User) -> bool {
    let uid = user.metadata.uid.as_deref();
    secret
        .owner_references()
        .iter()
        .any(|o| o.kind == "User" && o.controller == Some(true) && Some(o.uid.as_str()) == uid)
}

/// The key a Secret holds, if it holds a well-formed one.
pub fn key_in(secret: &Secret) -> Option<ApiKey> {
    secret
        .data
        .as_ref()?
        .get(KEY)
        .and_then(|v| std::str::from_utf8(&v.0).ok())
        .and_then(|k| ApiKey::parse(k.trim()).ok())
}

/// True when a key issued at `issued_at` is due for rotation at `now` (pure).
pub fn rotation_due(
    issued_at: Option<Timestamp>,
    every: Option<std::time::Duration>,
    now: Timestamp,
) -> bool {
    match (issued_at, every) {
        (Some(at), Some(every)) => {
            let every = k8s_openapi::jiff::SignedDuration::try_from(every).unwrap_or_default();
            at.checked_add(every).is_ok_and(|due| due <= now)
        }
        _ => false,
    }
}

/// Until when a key replaced at `now` stays valid: `None` when `spec.apiKey.gracePeriod` is
/// zero or unset (it stops at once).
pub fn previous_valid_until(user: &User, now: Timestamp) -> Option<Timestamp> {
    let grace = user
        .spec
        .api_key
        .as_ref()
        .and_then(|k| k.grace_period)
        .map(|d| d.get())
        .filter(|g| !g.is_zero())?;
    let grace = k8s_openapi::jiff::SignedDuration::try_from(grace).ok()?;
    Some(now.checked_add(grace).unwrap_or(now))
}

/// The Secret delivering `key` (issued at `issued_at`) for `user` of `organisation`.
pub fn secret(user: &User, organisation: &str, key: &ApiKey, issued_at: Timestamp) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(user.api_key_secret_name()),
            namespace: user.namespace(),
            labels: Some(BTreeMap::from([
                (LABEL_USER.to_owned(), user.name_any()),
                (LABEL_ORGANISATION.to_owned(), organisation.to_owned()),
            ])),
            annotations: Some(BTreeMap::from([(
                ANNOTATION_ISSUED_AT.to_owned(),
                issued_at.to_string(),
            )])),
            owner_references: user.controller_owner_ref(&()).map(|o| vec![o]),
            ..Default::default()
        },
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([(
            KEY.to_owned(),
            ByteString(key.expose().as_bytes().to_vec()),
        )])),
        ..Default::default()
    }
}

/// What the controller keeps of a Secret labelled `usher.dev/user` (anyone may label theirs so,
/// anywhere): Usher's labels, the issued-at annotation and the owners, and of its data only the
/// names, with in place of the key its SHA-256 (`sha256:<hex>`, empty when it holds no
/// well-formed key). A Secret then costs a few hundred bytes, however big, and no key lives in
/// the controller's memory.
pub fn digest(mut secret: Secret) -> Secret {
    let hash = key_in(&secret).map(|k| format!("{DIGEST}{}", k.hash()));
    secret.data = secret.data.map(|data| {
        data.into_keys()
            .map(|name| {
                let value = if name == KEY {
                    hash.clone().unwrap_or_default()
                } else {
                    String::new()
                };
                (name, ByteString(value.into_bytes()))
            })
            .collect()
    });
    secret.string_data = None;
    let m = &mut secret.metadata;
    m.managed_fields = None;
    m.annotations = m.annotations.take().map(|a| {
        a.into_iter()
            .filter(|(k, _)| k == ANNOTATION_ISSUED_AT)
            .collect()
    });
    m.labels = m.labels.take().map(|l| {
        l.into_iter()
            .filter(|(k, _)| k == LABEL_USER || k == LABEL_ORGANISATION)
            .collect()
    });
    secret
}

/// Marks the key's hash in a [`digest`].
const DIGEST: &str = "sha256:";

/// The hash of the key a [`digest`] records.
fn digested_hash(secret: &Secret) -> Option<&str> {
    let value = secret.data.as_ref()?.get(KEY)?;
    std::str::from_utf8(&value.0).ok()?.strip_prefix(DIGEST)
}

/// True when `existing` (a [`digest`]) delivers the key of `record` to `user` of
/// `organisation` exactly as [`secret`] writes it: that key and nothing else, the labels, the
/// annotation and the owner. Any change by someone else (another key, extra data, a dropped
/// label) makes it false, and the controller writes the Secret again.
pub fn delivers(existing: &Secret, user: &User, organisation: &str, record: &KeyRecord) -> bool {
    let only_the_key = existing.data.as_ref().is_some_and(|d| d.len() == 1)
        && digested_hash(existing) == Some(record.hash.as_str());
    only_the_key
        && is_ours(existing, user)
        && existing.labels().get(LABEL_USER) == Some(&user.name_any())
        && existing
            .labels()
            .get(LABEL_ORGANISATION)
            .map(String::as_str)
            == Some(organisation)
        && existing.annotations().get(ANNOTATION_ISSUED_AT) == Some(&record.issued_at.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use usher_crds::UserSpec;

    fn user() -> User {
        let mut u = User::new(
            "app",
            UserSpec {
                login: "app@example.com".into(),
                full_name: "App".into(),
                profile: "analyst".into(),
                ..Default::default()
            },
        );
        u.metadata.namespace = Some("acme".into());
        u.metadata.uid = Some("uid-1".into());
        u
    }

    #[test]
    fn the_secret_is_labelled_owned_and_reads_back() {
        let key = ApiKey::generate().unwrap();
        let at: Timestamp = "2026-11-27T12:00:00Z".parse().unwrap();
        let s = secret(&user(), "acme", &key, at);
        assert_eq!(s.metadata.name.as_deref(), Some("app-api-key"));
        assert_eq!(s.labels()[LABEL_USER], "app");
        assert_eq!(s.labels()[LABEL_ORGANISATION], "acme");
        let owner = &s.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.controller),
            ("User", Some(true))
        );
        assert_eq!(key_in(&s), Some(key));
        assert!(is_ours(&s, &user()));
        let mut other = user();
        other.metadata.uid = Some("uid-2".into());
        assert!(!is_ours(&s, &other), "another User of the same name");
    }

    #[test]
    fn any_change_to_a_delivered_secret_is_noticed() {
        let key = ApiKey::generate().unwrap();
        let at: Timestamp = "2026-11-27T12:00:00.250Z".parse().unwrap();
        let record = KeyRecord {
            hash: key.hash(),
            sealed: String::new(),
            issued_at: at,
            secret_name: "app-api-key".into(),
            previous_hash: None,
            previous_until: None,
        };
        let mut live = secret(&user(), "acme", &key, at);
        live.metadata.resource_version = Some("9".into());
        live.metadata.uid = Some("secret-uid".into());
        let seen = |s: &Secret| digest(s.clone());
        assert!(delivers(&seen(&live), &user(), "acme", &record));
        assert!(!delivers(&seen(&live), &user(), "globex", &record));
        let mut overwritten = live.clone();
        overwritten.data.as_mut().unwrap().insert(
            KEY.into(),
            ByteString(ApiKey::generate().unwrap().expose().as_bytes().to_vec()),
        );
        assert!(!delivers(&seen(&overwritten), &user(), "acme", &record));
        let mut extra = live.clone();
        extra
            .data
            .as_mut()
            .unwrap()
            .insert("other".into(), ByteString(b"x".to_vec()));
        assert!(!delivers(&seen(&extra), &user(), "acme", &record));
        let mut unowned = live.clone();
        unowned.metadata.owner_references = None;
        assert!(!delivers(&seen(&unowned), &user(), "acme", &record));
        // A value that only looks like a digest is no key.
        let mut forged = live.clone();
        forged.data.as_mut().unwrap().insert(
            KEY.into(),
            ByteString(format!("sha256:{}", record.hash).into_bytes()),
        );
        assert!(!delivers(&seen(&forged), &user(), "acme", &record));
    }

    #[test]
    fn the_digest_keeps_no_key_and_nothing_big() {
        let key = ApiKey::generate().unwrap();
        let at: Timestamp = "2026-11-27T12:00:00Z".parse().unwrap();
        let mut s = secret(&user(), "acme", &key, at);
        s.data
            .as_mut()
            .unwrap()
            .insert("junk".into(), ByteString(vec![b'x'; 1 << 20]));
        s.metadata
            .annotations
            .as_mut()
            .unwrap()
            .insert("big".into(), "y".repeat(100_000));
        let d = digest(s);
        let text = serde_json::to_string(&d).unwrap();
        assert!(text.len() < 2_000, "{} bytes", text.len());
        assert!(!text.contains(key.expose()));
        assert_eq!(digested_hash(&d), Some(key.hash().as_str()));
    }

    #[test]
    fn rotation_is_due_exactly_at_issue_plus_period() {
        let at: Timestamp = "2026-11-27T12:00:00Z".parse().unwrap();
        let day = Some(std::time::Duration::from_secs(86_400));
        assert!(!rotation_due(
            Some(at),
            day,
            "2026-11-28T11:59:59Z".parse().unwrap()
        ));
        assert!(rotation_due(
            Some(at),
            day,
            "2026-11-28T12:00:00Z".parse().unwrap()
        ));
        assert!(!rotation_due(
            Some(at),
            None,
            "2030-01-01T00:00:00Z".parse().unwrap()
        ));
    }
}
