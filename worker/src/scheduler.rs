//! The scheduler tick, a duty beside the keeper's: every worker that enables it fires due
//! schedules (`cellar_core::schedule::tick`: each fire claimed exactly once, no leader) and
//! enqueues the periodic retention pass (`cellar_core::retention::enqueue_periodic`).
//!
//! ```text
//! loop until stopped:
//!     report = tick(now)            -- fires due schedules, returns the next fire time
//!     enqueue_periodic(now, period) -- one retention pass per period over all workers
//!     sleep until min(next fire time, now + 30 s)
//! ```

use std::sync::Arc;
use std::time::Duration;

use cellar_core::{retention, schedule};
use chrono::Utc;
use tokio_util::sync::CancellationToken;

use crate::keeper::pause;
use crate::runtime::Worker;

/// Runs ticks until `stop` fires.
pub(crate) async fn run(w: Arc<Worker>, default_source: String, stop: CancellationToken) {
    loop {
        let wait = tick_once(&w, &default_source).await;
        if !pause(wait, &stop).await {
            return;
        }
    }
}

/// One tick; returns how long to wait before the next.
async fn tick_once(w: &Worker, default_source: &str) -> Duration {
    let now = Utc::now();
    let next = match schedule::tick(w.pool(), now, default_source).await {
        Ok(r) => r.next_fire_at,
        Err(e) => {
            tracing::warn!(error = %e, "scheduler tick failed; trying again");
            None
        }
    };
    match retention::enqueue_periodic(w.pool(), now, w.cfg.retention_every()).await {
        Ok(Some(job)) => tracing::info!(job_id = job, "periodic retention pass enqueued"),
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "enqueueing the retention pass failed"),
    }
    let until_next = next
        .and_then(|t| (t - Utc::now()).to_std().ok())
        .unwrap_or(schedule::MAX_TICK);
    // A little past the fire time, so the tick at it sees it as due.
    (until_next + Duration::from_millis(50)).min(schedule::MAX_TICK)
}
