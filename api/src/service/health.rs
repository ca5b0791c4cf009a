//! What the health routes can say today: the catalog answers, the latest backups, the queue's
//! depth. Schedules, worker liveness, storage space and Drive belong to the health issue.

use cellar_core::auth::Permission;
use cellar_core::backup::BackupState;
use cellar_core::backup::catalog::BackupRow;
use cellar_core::backup::listing::{self, Filter};
use chrono::{DateTime, Utc};

use super::{Caller, Services};
use crate::error::ApiError;

/// A completed backup older than this makes the service `degraded`.
pub const STALE_AFTER_HOURS: i64 = 26;
/// A runnable job waiting longer than this suggests no worker is running.
pub const QUEUE_STUCK_SECS: f64 = 300.0;

/// The facts health is judged on.
#[derive(Debug, Default)]
pub struct Health {
    pub catalog_reachable: bool,
    /// The newest backups (up to 10).
    pub recent: Vec<BackupRow>,
    /// The newest completed backup's completion time.
    pub last_success_at: Option<DateTime<Utc>>,
    pub queue_depth: i64,
    pub oldest_queued_secs: Option<f64>,
}

impl Health {
    /// Failures among the recent backups.
    pub fn recent_failures(&self) -> usize {
        self.recent
            .iter()
            .filter(|b| b.state == BackupState::Failed)
            .count()
    }

    /// Problems found, as sentences; empty when healthy.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if !self.catalog_reachable {
            p.push("the catalog database does not answer".to_string());
            return p;
        }
        match self.last_success_at {
            None => p.push("no backup has completed yet".to_string()),
            Some(at) if (Utc::now() - at).num_hours() >= STALE_AFTER_HOURS => p.push(format!(
                "the last completed backup is {} hours old",
                (Utc::now() - at).num_hours()
            )),
            Some(_) => {}
        }
        if self.recent_failures() > 0 {
            p.push(format!(
                "{} of the last {} backups failed",
                self.recent_failures(),
                self.recent.len()
            ));
        }
        if self
            .oldest_queued_secs
            .is_some_and(|s| s > QUEUE_STUCK_SECS)
        {
            p.push("jobs have waited over 5 minutes: is a worker running?".to_string());
        }
        p
    }

    /// `healthy`, `degraded` or `unhealthy`.
    pub fn overall(&self) -> &'static str {
        match (self.catalog_reachable, self.problems().is_empty()) {
            (false, _) => "unhealthy",
            (true, true) => "healthy",
            (true, false) => "degraded",
        }
    }
}

impl Services {
    /// Gathers the health facts (an unreachable catalog is a fact, not an error).
    pub async fn health(&self, caller: &Caller) -> Result<Health, ApiError> {
        caller.require(Permission::Read)?;
        if cellar_core::db::ping(&self.pool).await.is_err() {
            return Ok(Health::default());
        }
        let recent = listing::page(&self.pool, Filter::default(), 10, None).await?;
        let done = Filter {
            state: Some(BackupState::Completed),
            ..Filter::default()
        };
        let last = listing::page(&self.pool, done, 1, None).await?;
        let (queue_depth, oldest_queued_secs) =
            cellar_core::queue::control::depth(&self.pool).await?;
        Ok(Health {
            catalog_reachable: true,
            last_success_at: last.first().and_then(|b| b.completed_at),
            recent,
            queue_depth,
            oldest_queued_secs,
        })
    }
}
