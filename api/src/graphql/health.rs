//! `health` and `diagnose` types, converted from `cellar_core::health`.

use async_graphql::{Enum, ID, Json, SimpleObject};
use cellar_core::health::diagnose::{self, Diagnosis as CoreDiagnosis};
use cellar_core::health::facts::{BackupBrief, QueueKind, SourceFacts};
use cellar_core::health::workers::WorkerRow;
use cellar_core::health::{self as core_health, HealthReport};
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::types::{BackupStatus, BackupType};

/// Overall health (docs/HEALTH.md has the rules).
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "core_health::Status")]
pub enum HealthStatus {
    Healthy,
    Warning,
    Critical,
    /// The catalog cannot be read: health cannot be judged.
    Error,
}

/// Why the status is what it is.
#[derive(SimpleObject)]
pub struct HealthReason {
    pub status: HealthStatus,
    /// Stable code for scripts, e.g. BACKUPS_STOPPED.
    pub code: String,
    pub message: String,
}

/// A backup in one line.
#[derive(SimpleObject)]
pub struct BackupBriefGql {
    pub id: ID,
    #[graphql(name = "type")]
    pub backup_type: BackupType,
    pub status: BackupStatus,
    pub at: DateTime<Utc>,
}

impl From<BackupBrief> for BackupBriefGql {
    fn from(b: BackupBrief) -> Self {
        Self {
            id: ID(b.id),
            backup_type: b.backup_type.into(),
            status: b.state.into(),
            at: b.at,
        }
    }
}

/// One source's backups (safety backups left out).
#[derive(SimpleObject)]
pub struct SourceHealth {
    pub name: String,
    pub last_backup: Option<BackupBriefGql>,
    pub last_successful_backup_id: Option<ID>,
    pub last_successful_backup_at: Option<DateTime<Utc>>,
    pub last_verified_backup_id: Option<ID>,
    pub last_verified_backup_at: Option<DateTime<Utc>>,
    /// Failed backups since the last success.
    pub failure_streak: i64,
}

impl From<SourceFacts> for SourceHealth {
    fn from(s: SourceFacts) -> Self {
        Self {
            name: s.name,
            last_backup: s.last_backup.map(Into::into),
            last_successful_backup_id: s.last_success_id.map(ID),
            last_successful_backup_at: s.last_success_at,
            last_verified_backup_id: s.last_verified_id.map(ID),
            last_verified_backup_at: s.last_verified_at,
            failure_streak: s.failure_streak,
        }
    }
}

/// The summary: per source, totals.
#[derive(SimpleObject)]
pub struct HealthSummary {
    pub sources: Vec<SourceHealth>,
    /// Backups not deleted.
    pub total_backups: i64,
    pub drive_configured: bool,
}

/// The queue, for one job kind.
#[derive(SimpleObject)]
pub struct QueueHealth {
    pub kind: String,
    pub waiting: i64,
    pub oldest_waiting_seconds: Option<f64>,
    pub running: i64,
}

impl From<QueueKind> for QueueHealth {
    fn from(q: QueueKind) -> Self {
        Self {
            kind: q.kind,
            waiting: q.waiting,
            oldest_waiting_seconds: q.oldest_waiting_secs,
            running: q.running,
        }
    }
}

/// A registered worker process.
#[derive(SimpleObject)]
pub struct WorkerInfo {
    pub id: ID,
    pub host: String,
    pub pid: i32,
    pub version: String,
    pub started_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub stopped_at: Option<DateTime<Utc>>,
    /// Seen within three of its lease periods and not stopped.
    pub live: bool,
}

fn worker(w: WorkerRow, now: DateTime<Utc>) -> WorkerInfo {
    WorkerInfo {
        id: ID(w.id.to_string()),
        live: w.is_live(now),
        host: w.host,
        pid: w.pid,
        version: w.version,
        started_at: w.started_at,
        last_seen_at: w.last_seen_at,
        stopped_at: w.stopped_at,
    }
}

/// Numbers (bytes as Float: they may exceed GraphQL's 32-bit Int).
#[derive(SimpleObject)]
pub struct HealthMetrics {
    pub backups_last_24h: i64,
    pub backups_last_week: i64,
    pub successes_last_week: i64,
    pub failures_last_week: i64,
    /// Share of the last 7 days' verifications that passed (null without any).
    pub verification_rate: Option<f64>,
    pub storage_used_local_bytes: f64,
    pub storage_used_drive_bytes: f64,
    /// Jobs runnable now, all kinds.
    pub queue_depth: i64,
    pub oldest_waiting_job_seconds: Option<f64>,
    pub queue: Vec<QueueHealth>,
    pub live_workers: i32,
    pub workers: Vec<WorkerInfo>,
}

/// How the deployment is configured, as far as health can tell.
#[derive(SimpleObject)]
pub struct HealthConfiguration {
    pub drive_configured: bool,
    /// Drive folder ids the workers report: {backup, daily, weekly, monthly}.
    pub drive_folders: Json<Value>,
    pub sources: Vec<String>,
    /// The staleness rule's interval, in seconds.
    pub shortest_schedule_interval_seconds: i64,
    /// `schedules`, or `default` (24 h) when no schedule is known.
    pub shortest_schedule_interval_source: String,
    pub schedules: Json<Vec<Value>>,
    pub retention: Json<Vec<Value>>,
}

/// The health report.
#[derive(SimpleObject)]
pub struct Health {
    pub status: HealthStatus,
    pub reasons: Vec<HealthReason>,
    pub checked_at: DateTime<Utc>,
    /// Null when the catalog cannot be read.
    pub summary: Option<HealthSummary>,
    pub metrics: Option<HealthMetrics>,
    pub configuration: HealthConfiguration,
}

impl From<HealthReport> for Health {
    fn from(r: HealthReport) -> Self {
        let c = r.configuration;
        let configuration = HealthConfiguration {
            drive_configured: c.drive_configured,
            drive_folders: Json(c.drive_folders),
            sources: c.sources,
            shortest_schedule_interval_seconds: c.shortest_interval_secs,
            shortest_schedule_interval_source: c.shortest_interval_source.into(),
            schedules: Json(c.schedules),
            retention: Json(c.retention),
        };
        let (summary, metrics) = match r.facts {
            None => (None, None),
            Some(f) => {
                let live = f.live_workers().len() as i32;
                let (depth, oldest) = (f.waiting(), f.oldest_waiting_secs());
                let t = f.totals.clone();
                let now = f.now;
                let metrics = HealthMetrics {
                    backups_last_24h: t.backups_last_24h,
                    backups_last_week: t.backups_last_week,
                    successes_last_week: t.successes_last_week,
                    failures_last_week: t.failures_last_week,
                    verification_rate: t.verification_rate(),
                    storage_used_local_bytes: t.storage_local_bytes as f64,
                    storage_used_drive_bytes: t.storage_drive_bytes as f64,
                    queue_depth: depth,
                    oldest_waiting_job_seconds: oldest,
                    queue: f.queue.into_iter().map(Into::into).collect(),
                    live_workers: live,
                    workers: f.workers.into_iter().map(|w| worker(w, now)).collect(),
                };
                let summary = HealthSummary {
                    sources: f.sources.into_iter().map(Into::into).collect(),
                    total_backups: t.total_backups,
                    drive_configured: configuration.drive_configured,
                };
                (Some(summary), Some(metrics))
            }
        };
        Self {
            status: r.status.into(),
            reasons: r
                .reasons
                .into_iter()
                .map(|x| HealthReason {
                    status: x.status.into(),
                    code: x.code.into(),
                    message: x.message,
                })
                .collect(),
            checked_at: r.checked_at,
            summary,
            metrics,
            configuration,
        }
    }
}

/// How a probe went.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "diagnose::ProbeStatus")]
pub enum ProbeStatus {
    Ok,
    /// Not checked; the detail says why.
    Skipped,
    Warning,
    Failed,
}

/// One live probe.
#[derive(SimpleObject)]
pub struct Probe {
    pub name: String,
    pub status: ProbeStatus,
    pub detail: String,
    /// What to do (null when nothing).
    pub fix: Option<String>,
}

/// The live probes' report.
#[derive(SimpleObject)]
pub struct Diagnosis {
    /// FAILED if any probe failed, else WARNING if any warned, else OK.
    pub status: ProbeStatus,
    pub probes: Vec<Probe>,
    pub checked_at: DateTime<Utc>,
    /// Where the worker-side probes ran.
    pub ran_on: String,
}

impl From<CoreDiagnosis> for Diagnosis {
    fn from(d: CoreDiagnosis) -> Self {
        Self {
            status: d.status.into(),
            probes: d
                .probes
                .into_iter()
                .map(|p| Probe {
                    name: p.name,
                    status: p.status.into(),
                    detail: p.detail,
                    fix: p.fix,
                })
                .collect(),
            checked_at: d.checked_at,
            ran_on: d.ran_on,
        }
    }
}
