//! Waiting for what can be observed: a check polled until it answers, never a fixed sleep.

use std::{
    future::Future,
    time::{Duration, Instant},
};

/// How often a check is polled.
const EVERY: Duration = Duration::from_millis(100);

/// Polls `check` until it returns `Some`, for at most `timeout`; `None` when it never did.
pub async fn poll<T, F, Fut>(timeout: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(EVERY.min(timeout)).await;
    }
}

/// As [`poll`], for a check that blocks (outside an async runtime).
pub fn poll_blocking<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(EVERY.min(timeout));
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{poll, poll_blocking};

    #[tokio::test]
    async fn poll_returns_the_first_answer_or_none_at_the_deadline() {
        let mut n = 0;
        let third = poll(Duration::from_secs(5), || {
            n += 1;
            let v = n;
            async move { (v == 3).then_some(v) }
        })
        .await;
        assert_eq!(third, Some(3));
        let never = poll(Duration::from_millis(250), || async { None::<()> }).await;
        assert_eq!(never, None);
    }

    #[test]
    fn poll_blocking_too() {
        let mut n = 0;
        assert_eq!(
            poll_blocking(Duration::from_secs(5), || {
                n += 1;
                (n == 2).then_some(n)
            }),
            Some(2)
        );
        assert_eq!(
            poll_blocking(Duration::from_millis(150), || None::<()>),
            None
        );
    }
}
