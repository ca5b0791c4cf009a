//! Health, diagnostics and metrics: what the catalog says about backups, judged by documented
//! rules (docs/HEALTH.md); live probes of every dependency; the Prometheus exposition.
//!
//! # Layout
//! - [`facts`]: one read of the catalog as seen at a given `now` (per source, totals, queue,
//!   workers).
//! - [`rules`]: [`rules::judge`]: facts to `healthy | warning | critical | error` with reasons.
//! - [`workers`]: the worker registry (announce, heartbeat, stopped, list).
//! - [`metrics`]: the Prometheus text exposition (format 0.0.4), computed from the catalog.
//! - [`diagnose`]: live probes (catalog, sources, pg_dump, key, local directory, Drive,
//!   workers), each with a status, a detail and a fix.
//!
//! [`check`] never fails: a catalog that cannot be read is the `error` status, not an `Err`.

pub mod diagnose;
pub mod facts;
pub mod metrics;
pub mod rules;
pub mod workers;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgPool;

pub use facts::Facts;
pub use rules::{Reason, Rules, Status};

/// What the caller knows about the deployment (the API: its configured source names).
#[derive(Clone, Debug, Default)]
pub struct Inputs {
    /// Sources that must be backed up; empty: every source seen in the catalog.
    pub configured_sources: Vec<String>,
    /// The caller was told Drive is configured (`GOOGLE_DRIVE_BACKUP_FOLDER_ID`).
    pub drive_configured: bool,
    /// The thresholds; `shortest_interval` is replaced by the schedules' when there are any.
    pub rules: Rules,
}

/// How the deployment is configured, as far as health can tell.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Configuration {
    /// Drive is configured (on this process or on a registered worker).
    pub drive_configured: bool,
    /// The Drive folder ids workers report (`backup`, `daily`, `weekly`, `monthly`).
    pub drive_folders: Value,
    /// The source names checked.
    pub sources: Vec<String>,
    /// The shortest schedule interval the staleness rule uses, in seconds.
    pub shortest_interval_secs: i64,
    /// Where it came from: `schedules`, or `default` (24 h) when no schedule is known.
    pub shortest_interval_source: &'static str,
    /// The schedules (empty when the catalog has none).
    pub schedules: Vec<Value>,
    /// The retention policies (empty when the catalog has none).
    pub retention: Vec<Value>,
}

/// A health report: the verdict, why, and the facts behind it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthReport {
    pub status: Status,
    pub reasons: Vec<Reason>,
    pub checked_at: DateTime<Utc>,
    /// `None` when the catalog could not be read.
    pub facts: Option<Facts>,
    pub configuration: Configuration,
}

/// Reads the catalog as seen at `now` and judges it.
#[tracing::instrument(skip_all)]
pub async fn check(pool: &PgPool, now: DateTime<Utc>, inputs: &Inputs) -> HealthReport {
    let rules = inputs.rules.clone();
    let mut configuration = Configuration {
        drive_configured: inputs.drive_configured,
        drive_folders: Value::Null,
        sources: inputs.configured_sources.clone(),
        shortest_interval_secs: rules.shortest_interval.num_seconds(),
        shortest_interval_source: "default",
        schedules: Vec::new(),
        retention: Vec::new(),
    };
    let facts = match facts::gather(pool, now, &inputs.configured_sources).await {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(error = %e, "health: the catalog cannot be read");
            return HealthReport {
                status: Status::Error,
                reasons: vec![Reason {
                    status: Status::Error,
                    code: "CATALOG_UNREADABLE",
                    message: "the catalog database cannot be read: check DATABASE_URL and \
                              that Postgres is up (the API log has the details)"
                        .into(),
                }],
                checked_at: now,
                facts: None,
                configuration,
            };
        }
    };
    worker_configuration(&facts, &mut configuration);
    let reasons = rules::judge(&facts, &rules, &inputs.configured_sources);
    HealthReport {
        status: rules::overall(&reasons),
        reasons,
        checked_at: now,
        facts: Some(facts),
        configuration,
    }
}

/// Fills Drive details from what the most recently seen worker reports about itself.
fn worker_configuration(facts: &Facts, c: &mut Configuration) {
    let Some(w) = facts.workers.first() else {
        return;
    };
    if w.config["driveConfigured"] == true {
        c.drive_configured = true;
    }
    c.drive_folders = w.config["driveFolders"].clone();
    if c.sources.is_empty()
        && let Some(names) = w.config["sources"].as_array()
    {
        c.sources = names
            .iter()
            .filter_map(|n| n.as_str().map(str::to_owned))
            .collect();
    }
}
