//! The API-key Secret of a membership: `spec.apiKey.secretName` (default `<user>-api-key`) in
//! the User's namespace, data key `api-key`, labels `usher.dev/user` and
//! `usher.dev/organisation`, owned by the User. Renewal replaces the key in one update; with a
//! positive `gracePeriod` the previous key's SHA-256 and its deadline stay beside it.

use std::collections::BTreeMap;

use k8s_openapi::{ByteString, api::core::v1::Secret, jiff::Timestamp};
use kube::{Resource, ResourceExt, api::ObjectMeta};
use usher_crds::{LABEL_ORGANISATION, LABEL_USER, User};

use super::format::ApiKey;

/// Data key of the key itself.
pub const KEY: &str = "api-key";
/// Data key of the previous key's SHA-256, during a grace period.
pub const PREVIOUS_SHA256: &str = "previous-api-key-sha256";
/// Annotation: when the current key was issued (RFC 3339).
pub const ANNOTATION_ISSUED_AT: &str = "usher.dev/issued-at";
/// Annotation: until when the previous key stays valid (RFC 3339).
pub const ANNOTATION_PREVIOUS_VALID_UNTIL: &str = "usher.dev/previous-valid-until";

/// What the controller needs from an existing key Secret (pure view).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    /// The current key, if the Secret holds a well-formed one.
    pub key: Option<ApiKey>,
    /// When it was issued.
    pub issued_at: Option<Timestamp>,
    /// The resourceVersion read.
    pub resource_version: Option<String>,
    /// True when the Secret is ours (labelled for this User).
    pub ours: bool,
}

impl Issued {
    /// Reads an existing Secret for `user`.
    pub fn read(secret: &Secret, user: &User) -> Issued {
        let key = secret
            .data
            .as_ref()
            .and_then(|d| d.get(KEY))
            .and_then(|v| std::str::from_utf8(&v.0).ok())
            .and_then(|k| ApiKey::parse(k.trim()).ok());
        Issued {
            key,
            issued_at: secret
                .annotations()
                .get(ANNOTATION_ISSUED_AT)
                .and_then(|t| t.parse().ok()),
            resource_version: secret.resource_version(),
            ours: secret.labels().get(LABEL_USER) == Some(&user.name_any()),
        }
    }
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

/// The Secret holding `key` for `user` of `organisation`; with `previous` (the replaced key)
/// and a positive `grace`, the previous key's hash and deadline are kept beside it.
pub fn secret(
    user: &User,
    organisation: &str,
    key: &ApiKey,
    issued_at: Timestamp,
    previous: Option<(&ApiKey, Timestamp)>,
    resource_version: Option<String>,
) -> Secret {
    let mut data = BTreeMap::from([(KEY.to_owned(), ByteString(key.expose().as_bytes().to_vec()))]);
    let mut annotations =
        BTreeMap::from([(ANNOTATION_ISSUED_AT.to_owned(), issued_at.to_string())]);
    if let Some((old, until)) = previous {
        data.insert(
            PREVIOUS_SHA256.to_owned(),
            ByteString(old.hash().into_bytes()),
        );
        annotations.insert(
            ANNOTATION_PREVIOUS_VALID_UNTIL.to_owned(),
            until.to_string(),
        );
    }
    Secret {
        metadata: ObjectMeta {
            name: Some(user.api_key_secret_name()),
            namespace: user.namespace(),
            labels: Some(BTreeMap::from([
                (LABEL_USER.to_owned(), user.name_any()),
                (LABEL_ORGANISATION.to_owned(), organisation.to_owned()),
            ])),
            annotations: Some(annotations),
            owner_references: user.controller_owner_ref(&()).map(|o| vec![o]),
            resource_version,
            ..Default::default()
        },
        type_: Some("Opaque".into()),
        data: Some(data),
        ..Default::default()
    }
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
        let s = secret(&user(), "acme", &key, at, None, None);
        assert_eq!(s.metadata.name.as_deref(), Some("app-api-key"));
        assert_eq!(s.labels()[LABEL_USER], "app");
        assert_eq!(s.labels()[LABEL_ORGANISATION], "acme");
        let owner = &s.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.controller),
            ("User", Some(true))
        );
        let issued = Issued::read(&s, &user());
        assert_eq!(issued.key, Some(key));
        assert_eq!(issued.issued_at, Some(at));
        assert!(issued.ours);
        assert!(!s.data.as_ref().unwrap().contains_key(PREVIOUS_SHA256));
    }

    #[test]
    fn a_grace_period_keeps_only_the_previous_hash() {
        let (old, new) = (ApiKey::generate().unwrap(), ApiKey::generate().unwrap());
        let at: Timestamp = "2026-11-27T12:00:00Z".parse().unwrap();
        let until: Timestamp = "2026-11-27T12:10:00Z".parse().unwrap();
        let s = secret(&user(), "acme", &new, at, Some((&old, until)), None);
        let data = s.data.as_ref().unwrap();
        assert_eq!(data[PREVIOUS_SHA256].0, old.hash().into_bytes());
        let raw = serde_json::to_string(&s).unwrap();
        assert!(!raw.contains(old.expose()), "the old key itself is gone");
        assert_eq!(
            s.annotations()[ANNOTATION_PREVIOUS_VALID_UNTIL],
            until.to_string()
        );
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
