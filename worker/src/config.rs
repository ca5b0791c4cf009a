//! Worker settings from the environment. Every worker of a deployment must use the same
//! `CELLAR_LEASE_SECS`: a worker rescues jobs whose heartbeat is older than its own lease.

use std::time::Duration;

/// How a worker claims, heartbeats, retries and shuts down.
#[derive(clap::Args, Clone, Debug)]
pub struct WorkerConfig {
    /// Jobs run at once by this process.
    #[arg(long, env = "CELLAR_WORKER_CONCURRENCY", default_value_t = 4)]
    pub concurrency: usize,
    /// Seconds without a heartbeat after which a running job is rescued (same on every worker).
    #[arg(long, env = "CELLAR_LEASE_SECS", default_value_t = 30.0)]
    pub lease_secs: f64,
    /// Fallback poll interval, in milliseconds, behind LISTEN/NOTIFY wake-ups.
    #[arg(long, env = "CELLAR_POLL_INTERVAL_MS", default_value_t = 1000)]
    pub poll_interval_ms: u64,
    /// Seconds running jobs get to finish on shutdown before they are released.
    #[arg(long, env = "CELLAR_SHUTDOWN_GRACE_SECS", default_value_t = 30.0)]
    pub shutdown_grace_secs: f64,
    /// First retry delay in seconds; doubles per attempt, with jitter.
    #[arg(long, env = "CELLAR_RETRY_BASE_SECS", default_value_t = 5.0)]
    pub retry_base_secs: f64,
    /// Longest retry delay in seconds.
    #[arg(long, env = "CELLAR_RETRY_MAX_SECS", default_value_t = 1800.0)]
    pub retry_max_secs: f64,
    /// Finished jobs older than this many hours are pruned.
    #[arg(long, env = "CELLAR_PRUNE_AFTER_HOURS", default_value_t = 24.0 * 30.0)]
    pub prune_after_hours: f64,
    /// Run the scheduler tick (schedules, periodic retention) in this process. Every worker may:
    /// fires are claimed exactly once without a leader.
    #[arg(long, env = "CELLAR_SCHEDULER", default_value_t = true, action = clap::ArgAction::Set)]
    pub scheduler: bool,
    /// Minutes between periodic retention passes (besides the one after each backup).
    #[arg(long, env = "CELLAR_RETENTION_EVERY_MINUTES", default_value_t = 60.0)]
    pub retention_every_minutes: f64,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            concurrency: 4,
            lease_secs: 30.0,
            poll_interval_ms: 1000,
            shutdown_grace_secs: 30.0,
            retry_base_secs: 5.0,
            retry_max_secs: 1800.0,
            prune_after_hours: 24.0 * 30.0,
            // Off for embedded and test workers; the binary's flag defaults to on.
            scheduler: false,
            retention_every_minutes: 60.0,
        }
    }
}

impl WorkerConfig {
    /// The lease period.
    pub fn lease(&self) -> Duration {
        Duration::from_secs_f64(self.lease_secs.max(0.1))
    }

    /// How often held leases are refreshed: four times per lease period.
    pub fn heartbeat_every(&self) -> Duration {
        self.lease() / 4
    }

    /// The period of retention passes enqueued by the scheduler tick.
    pub fn retention_every(&self) -> Duration {
        Duration::from_secs_f64(self.retention_every_minutes.max(1.0) * 60.0)
    }

    /// The fallback poll interval.
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms.max(10))
    }

    /// Delay before attempt `attempt + 1` after attempt `attempt` failed:
    /// `min(base * 2^(attempt-1), max)`, then +-20% jitter so failures do not retry in lockstep.
    pub fn backoff(&self, attempt: i32) -> Duration {
        let exp = self.retry_base_secs * 2f64.powi(attempt.clamp(1, 30) - 1);
        let secs = exp.min(self.retry_max_secs);
        let jitter = 0.8 + 0.4 * rand::random::<f64>();
        Duration::from_secs_f64((secs * jitter).max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let c = WorkerConfig {
            retry_base_secs: 2.0,
            retry_max_secs: 60.0,
            ..Default::default()
        };
        for (attempt, nominal) in [(1, 2.0), (2, 4.0), (3, 8.0), (10, 60.0), (1000, 60.0)] {
            let d = c.backoff(attempt).as_secs_f64();
            assert!(
                d >= nominal * 0.8 - 1e-9 && d <= nominal * 1.2 + 1e-9,
                "{attempt}: {d}"
            );
        }
    }
}
