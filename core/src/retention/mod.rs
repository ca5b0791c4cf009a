//! Retention: which backups to keep, per backup type, and deleting the rest through the queue.
//!
//! # Layout
//! - [`plan`]: the pure decision (policies, history, now) -> keep or delete, with a reason.
//! - [`store`]: policies, the history retention reads, pins.
//! - [`apply`]: enqueue `delete` jobs for what the plan deletes (each audited, actor
//!   `retention`); the `retention` job kind and when it is enqueued.

use serde::Serialize;

use crate::backup::BackupType;

pub mod apply;
pub mod plan;
pub mod store;

pub use apply::{ApplyReport, JOB_RETENTION, apply, enqueue_periodic, request};
pub use plan::{Candidate, Decision, plan};
pub use store::{policies, preview, preview_policy};

/// Why a retention operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    /// The input was refused; the message says why.
    #[error("{0}")]
    Invalid(String),
    /// No such backup.
    #[error("backup {0} not found")]
    NotFound(String),
    /// The catalog failed.
    #[error("catalog database: {0}")]
    Db(#[from] sqlx::Error),
    /// The queue refused.
    #[error(transparent)]
    Queue(#[from] crate::queue::QueueError),
}

/// The retention policy of one backup type. `None` limits are "no limit"; the `keep_*`
/// grandfather-father-son slots keep the newest backup of each of the latest N days, ISO weeks
/// and months (UTC), even past the count and age limits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Policy {
    pub backup_type: BackupType,
    /// Keep at most this many (per source).
    pub max_count: Option<u32>,
    /// Keep for at most this many days.
    pub max_age_days: Option<u32>,
    pub keep_daily: u32,
    pub keep_weekly: u32,
    pub keep_monthly: u32,
}

impl Policy {
    /// Checks the limits (the catalog's CHECK constraints, with readable messages).
    pub fn check(&self) -> Result<(), RetentionError> {
        let bad = |m: &str| Err(RetentionError::Invalid(m.into()));
        if self.max_count.is_some_and(|n| !(1..=100_000).contains(&n)) {
            return bad("maxCount must be 1 to 100000, or null for no limit");
        }
        if self
            .max_age_days
            .is_some_and(|d| !(1..=36_500).contains(&d))
        {
            return bad("maxAgeDays must be 1 to 36500, or null for no limit");
        }
        if [self.keep_daily, self.keep_weekly, self.keep_monthly]
            .iter()
            .any(|k| *k > 100_000)
        {
            return bad("keepDaily, keepWeekly and keepMonthly must be 0 to 100000");
        }
        if self.max_count.is_none()
            && self.max_age_days.is_none()
            && self.backup_type == BackupType::Safety
        {
            return bad("safety backups need a maxCount or a maxAgeDays");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
