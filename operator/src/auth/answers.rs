//! Forward-auth answers to API keys, kept while nothing they were made from changes: the hot
//! path of `/api/v1/verify` is a key's checksum and hash and one map lookup. An answer is stamped
//! with the caches' generation when its computation began (`Directory::generation`): any change
//! to a User, Organisation, Profile or account since makes it stale, and it is computed again.
//! A previous key kept by a grace period carries its deadline.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

use axum::http::{HeaderName, HeaderValue};
use k8s_openapi::jiff::Timestamp;

/// Most answers kept; past that the map starts again empty (a flood of distinct valid keys is
/// bounded by the keys that exist).
const MAX_ANSWERS: usize = 100_000;

/// What `/api/v1/verify` answers to one valid key.
#[derive(Debug)]
pub struct KeyAnswer {
    /// The caches' generation the answer was computed at.
    pub generation: u64,
    /// When a previous key stops working (its grace period); `None` for the current key.
    pub until: Option<Timestamp>,
    /// The identity headers.
    pub headers: [(HeaderName, HeaderValue); 5],
    /// The membership's permissions, for `?permission=`.
    pub permissions: Vec<String>,
    /// The membership's organisation, for `?organisation=`.
    pub organisation: String,
}

/// The kept answers, by key hash.
#[derive(Default)]
pub struct KeyAnswers {
    map: RwLock<HashMap<String, Arc<KeyAnswer>>>,
}

impl KeyAnswers {
    /// The answer for the key with hash `hash`, when it was computed at `generation` and is
    /// still in force at `now`.
    pub fn get(&self, hash: &str, generation: u64, now: Timestamp) -> Option<Arc<KeyAnswer>> {
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        map.get(hash)
            .filter(|a| a.generation == generation && a.until.is_none_or(|u| now < u))
            .cloned()
    }

    /// Keeps `answer` for the key with hash `hash`.
    pub fn put(&self, hash: String, answer: KeyAnswer) {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_ANSWERS {
            map.clear();
        }
        map.insert(hash, Arc::new(answer));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn answer(generation: u64, until: Option<Timestamp>) -> KeyAnswer {
        let h = || {
            (
                HeaderName::from_static("x-a"),
                HeaderValue::from_static("v"),
            )
        };
        KeyAnswer {
            generation,
            until,
            headers: [h(), h(), h(), h(), h()],
            permissions: vec![],
            organisation: "acme".into(),
        }
    }

    #[test]
    fn an_answer_holds_for_its_generation_and_until_its_deadline() {
        let answers = KeyAnswers::default();
        let now: Timestamp = "2026-12-01T12:00:00Z".parse().unwrap();
        let later: Timestamp = "2026-12-01T13:00:00Z".parse().unwrap();
        answers.put("h".into(), answer(7, None));
        assert!(answers.get("h", 7, now).is_some());
        assert!(answers.get("h", 8, now).is_none(), "something changed");
        assert!(answers.get("other", 7, now).is_none());
        answers.put("p".into(), answer(7, Some(later)));
        assert!(answers.get("p", 7, now).is_some());
        assert!(
            answers.get("p", 7, later).is_none(),
            "the grace period is over"
        );
    }
}
