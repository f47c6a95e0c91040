//! Time as Usher stores it.

use k8s_openapi::jiff::Timestamp;

/// Now, truncated to whole seconds: the API server stores `Time` that way, so comparing a
/// finer value with a stored one would never be equal and status would be rewritten forever.
pub fn now() -> Timestamp {
    Timestamp::from_second(Timestamp::now().as_second()).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// Now in Unix milliseconds (session clocks).
pub fn now_ms() -> i64 {
    Timestamp::now().as_millisecond()
}

#[cfg(test)]
mod tests {
    #[test]
    fn now_has_whole_seconds() {
        assert_eq!(super::now().subsec_nanosecond(), 0);
    }
}
