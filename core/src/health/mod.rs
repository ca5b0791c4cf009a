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
    /// The thresholds; `shortest_interval` is replaced by the shortest interval of the enabled
    /// schedules when there are any (`schedule::shortest_interval`).
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
    let (rules, extra) = with_schedules(pool, now, rules, &mut configuration).await;
    let mut reasons = rules::judge(&facts, &rules, &inputs.configured_sources);
    reasons.extend(extra);
    HealthReport {
        status: rules::overall(&reasons),
        reasons,
        checked_at: now,
        facts: Some(facts),
        configuration,
    }
}

/// Reads the schedules and retention policies into the configuration, and takes the shortest
/// interval of the enabled schedules for the staleness rule (the default stays when none is
/// enabled). A schedule that cannot be read is a warning, not a failure of the whole report.
async fn with_schedules(
    pool: &PgPool,
    now: DateTime<Utc>,
    mut rules: Rules,
    c: &mut Configuration,
) -> (Rules, Vec<Reason>) {
    let mut extra = Vec::new();
    let unreadable = |what: &str, e: &dyn std::fmt::Display| {
        tracing::warn!(error = %e, what, "health: cannot read the schedules");
        Reason {
            status: Status::Warning,
            code: "SCHEDULES_UNREADABLE",
            message: format!(
                "{what} cannot be read ({e}); the staleness rule assumes {} hours",
                rules::DEFAULT_SHORTEST_INTERVAL.num_hours()
            ),
        }
    };
    match crate::schedule::catalog::list(pool).await {
        Ok(list) => {
            c.schedules = list
                .iter()
                .filter_map(|s| serde_json::to_value(s).ok())
                .collect()
        }
        Err(e) => extra.push(unreadable("the schedules", &e)),
    }
    match crate::schedule::shortest_interval(pool, now).await {
        Ok(Some(d)) => {
            rules.shortest_interval = d;
            c.shortest_interval_source = "schedules";
        }
        Ok(None) => {}
        Err(e) => extra.push(unreadable("a schedule's timing", &e)),
    }
    c.shortest_interval_secs = rules.shortest_interval.num_seconds();
    match crate::retention::policies(pool).await {
        Ok(p) => {
            c.retention = p
                .iter()
                .filter_map(|p| serde_json::to_value(p).ok())
                .collect()
        }
        Err(e) => extra.push(unreadable("the retention policies", &e)),
    }
    (rules, extra)
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
