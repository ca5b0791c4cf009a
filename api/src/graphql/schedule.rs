//! Schedules and retention: output types converted From core's, and their inputs.

use async_graphql::{ID, InputObject, Object, SimpleObject};
use cellar_core::retention::{Decision, Policy};
use cellar_core::schedule::{RawSchedule, Schedule as Row};
use chrono::{DateTime, Utc};

use super::types::{BackupStatus, BackupType};
use crate::service::retention::RawPolicy;

/// A schedule: backups fired at the times `cron` names in `timeZone`.
pub struct Schedule(pub Row);

impl From<Row> for Schedule {
    fn from(r: Row) -> Self {
        Self(r)
    }
}

#[Object]
impl Schedule {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// Five fields: minute hour day-of-month month day-of-week.
    async fn cron(&self) -> &str {
        &self.0.cron
    }
    /// An IANA zone name.
    async fn time_zone(&self) -> &str {
        &self.0.time_zone
    }
    async fn backup_type(&self) -> BackupType {
        self.0.backup_type.into()
    }
    /// The source's name (`null`: the default source).
    async fn source(&self) -> Option<&str> {
        self.0.source.as_deref()
    }
    /// Tables backed up (`null`: all of them).
    async fn tables(&self) -> Option<&[String]> {
        self.0.tables.as_deref()
    }
    async fn include_files(&self) -> bool {
        self.0.include_files
    }
    async fn upload_to_drive(&self) -> bool {
        self.0.upload_to_drive
    }
    /// Verification after each backup: `none`, `quick` or `deep`.
    async fn verify(&self) -> &str {
        &self.0.verify
    }
    async fn enabled(&self) -> bool {
        self.0.enabled
    }
    /// The next fire time (`null` when disabled).
    async fn next_fire_at(&self) -> Option<DateTime<Utc>> {
        self.0.next_fire_at(Utc::now())
    }
    /// The latest fire time that produced a backup.
    async fn last_fire_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_fire_at
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

/// A schedule to create or replace (by name).
#[derive(InputObject)]
pub struct ScheduleInput {
    /// 1 to 63 of a-z, 0-9, `_`, `-`.
    pub name: String,
    /// Five fields, e.g. `0 2 * * *` (names, lists, ranges, steps, `L`, `W`, `#`, `@daily`).
    pub cron: String,
    /// An IANA zone name (default UTC).
    pub time_zone: Option<String>,
    /// Not SAFETY (default DAILY).
    pub backup_type: Option<BackupType>,
    /// A configured source (default: the first).
    pub source: Option<String>,
    /// Only these tables (`schema.name`); all when left out.
    pub tables: Option<Vec<String>>,
    #[graphql(default)]
    pub include_files: bool,
    #[graphql(default)]
    pub upload_to_drive: bool,
    /// `none` (default), `quick` or `deep`.
    pub verify: Option<String>,
    /// Default true.
    pub enabled: Option<bool>,
}

impl From<ScheduleInput> for RawSchedule {
    fn from(i: ScheduleInput) -> Self {
        Self {
            name: i.name,
            cron: i.cron,
            time_zone: i.time_zone,
            backup_type: i.backup_type.map(Into::into),
            source: i.source,
            tables: i.tables,
            include_files: i.include_files,
            upload_to_drive: i.upload_to_drive,
            verify: i.verify,
            enabled: i.enabled,
        }
    }
}

/// The retention policy of one backup type (null limits: no limit).
#[derive(SimpleObject)]
pub struct RetentionPolicy {
    pub backup_type: BackupType,
    /// Keep at most this many per source.
    pub max_count: Option<i32>,
    /// Keep for at most this many days.
    pub max_age_days: Option<i32>,
    /// Grandfather-father-son: keep the newest backup of each of the latest N days...
    pub keep_daily: i32,
    /// ... ISO weeks ...
    pub keep_weekly: i32,
    /// ... and months (UTC), even past maxCount and maxAgeDays.
    pub keep_monthly: i32,
}

impl From<Policy> for RetentionPolicy {
    fn from(p: Policy) -> Self {
        let i = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
        Self {
            backup_type: p.backup_type.into(),
            max_count: p.max_count.map(i),
            max_age_days: p.max_age_days.map(i),
            keep_daily: i(p.keep_daily),
            keep_weekly: i(p.keep_weekly),
            keep_monthly: i(p.keep_monthly),
        }
    }
}

/// A policy to set.
#[derive(InputObject)]
pub struct RetentionPolicyInput {
    pub backup_type: BackupType,
    /// 1 to 100000, or null for no limit.
    pub max_count: Option<i32>,
    /// 1 to 36500, or null for no limit.
    pub max_age_days: Option<i32>,
    #[graphql(default)]
    pub keep_daily: i32,
    #[graphql(default)]
    pub keep_weekly: i32,
    #[graphql(default)]
    pub keep_monthly: i32,
}

impl From<RetentionPolicyInput> for RawPolicy {
    fn from(i: RetentionPolicyInput) -> Self {
        Self {
            backup_type: i.backup_type.into(),
            max_count: i.max_count,
            max_age_days: i.max_age_days,
            keep_daily: i.keep_daily,
            keep_weekly: i.keep_weekly,
            keep_monthly: i.keep_monthly,
        }
    }
}

/// What retention would do with one backup, and why.
#[derive(SimpleObject)]
pub struct RetentionDecision {
    pub backup_id: ID,
    pub backup_type: BackupType,
    pub source: String,
    pub status: BackupStatus,
    pub created_at: DateTime<Utc>,
    /// True: retention would delete it.
    pub delete: bool,
    pub reason: String,
}

impl From<Decision> for RetentionDecision {
    fn from(d: Decision) -> Self {
        Self {
            backup_id: ID(d.id),
            backup_type: d.backup_type.into(),
            source: d.source,
            status: d.state.into(),
            created_at: d.created_at,
            delete: !d.keep,
            reason: d.reason,
        }
    }
}
