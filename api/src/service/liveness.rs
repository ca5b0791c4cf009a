//! Whether a token is still active, for long-lived subscriptions: read from the catalog at
//! most once per [`TokenChecks::fresh`] per token, however many subscriptions share the token.
//!
//! Without it every open subscription re-read its token every few seconds: 1,000 dashboard or
//! `cellar job watch` subscriptions on one token cost 500 catalog reads a second while idle
//! (docs/BENCHMARKS.md, "API").

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Recent answers per token id.
pub struct TokenChecks {
    /// How long an answer is reused.
    fresh: Duration,
    seen: Mutex<HashMap<i64, (Instant, bool)>>,
}

impl TokenChecks {
    /// Answers reused for `fresh`.
    pub fn new(fresh: Duration) -> Self {
        Self {
            fresh,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Whether token `id` is active at `now`: a recent answer, or `read()`'s (then remembered).
    /// Concurrent callers that find no recent answer may each read; that happens about once
    /// per `fresh`, not once per caller.
    pub async fn active<E, Fut>(
        &self,
        id: i64,
        now: Instant,
        read: impl FnOnce() -> Fut,
    ) -> Result<bool, E>
    where
        Fut: Future<Output = Result<bool, E>>,
    {
        if let Some(active) = self.recent(id, now) {
            return Ok(active);
        }
        let active = read().await?;
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        // Forget tokens nobody asked about for a while (revoked, or their subscriptions ended).
        seen.retain(|_, (at, _)| now.saturating_duration_since(*at) < self.fresh * 10);
        seen.insert(id, (now, active));
        Ok(active)
    }

    fn recent(&self, id: i64, now: Instant) -> Option<bool> {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let (at, active) = seen.get(&id)?;
        (now.saturating_duration_since(*at) < self.fresh).then_some(*active)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn one_read_per_token_per_interval_however_many_callers() {
        let checks = TokenChecks::new(Duration::from_secs(1));
        let reads = AtomicUsize::new(0);
        let read = |answer: bool| {
            reads.fetch_add(1, Ordering::Relaxed);
            async move { Ok::<_, ()>(answer) }
        };
        let t0 = Instant::now();
        // A thousand subscriptions of token 1 checking within the interval: one read.
        for i in 0..1000 {
            let at = t0 + Duration::from_micros(i * 900);
            assert_eq!(checks.active(1, at, || read(true)).await, Ok(true));
        }
        assert_eq!(reads.load(Ordering::Relaxed), 1);
        // Another token is read on its own.
        assert_eq!(checks.active(2, t0, || read(true)).await, Ok(true));
        assert_eq!(reads.load(Ordering::Relaxed), 2);
        // Once the answer is stale it is read again, and a revocation is seen.
        let later = t0 + Duration::from_secs(1);
        assert_eq!(checks.active(1, later, || read(false)).await, Ok(false));
        assert_eq!(checks.active(1, later, || read(true)).await, Ok(false));
        assert_eq!(reads.load(Ordering::Relaxed), 3);
    }

    #[tokio::test]
    async fn a_failed_read_is_not_remembered() {
        let checks = TokenChecks::new(Duration::from_secs(1));
        let t0 = Instant::now();
        assert_eq!(
            checks.active(1, t0, || async { Err("down") }).await,
            Err("down")
        );
        assert_eq!(
            checks.active(1, t0, || async { Ok::<_, &str>(true) }).await,
            Ok(true)
        );
    }
}
