//! Schedules: backups fired at the times a cron expression names, in a time zone, by every
//! worker's scheduler tick, with no leader.
//!
//! # Layout
//! - [`cron`]: [`CronExpr`] and [`TimeZoneName`]: parsed inputs, fire times, DST rules.
//! - [`catalog`]: the `schedule` table (list, upsert, enable/disable, delete, shortest interval).
//! - [`tick`]: one scheduler pass at a given `now`: claim due fires, enqueue their backups.
//!
//! Exactly once: a fire is claimed with the schedule row locked (`FOR UPDATE`), by inserting
//! `(schedule_id, fire_at)` into `schedule_fire` and moving `schedule.last_fire_at` forward, in
//! the transaction that creates the backup row and its job. Only fire times after
//! `max(fires_after, last_fire_at)` are due, so a fire never repeats, even once its job and its
//! fire row are pruned. After a down period only the latest missed fire runs.

use std::fmt;
use std::str::FromStr;

use crate::backup::BackupType;
use crate::backup::verify::Level;
use crate::dump::TableName;

pub mod catalog;
pub mod cron;
pub mod tick;

pub use self::catalog::{Schedule, shortest_interval};
pub use self::cron::{CronExpr, TimeZoneName};
pub use self::tick::{Fired, TickReport, tick};

/// Longest wait between two ticks, whatever the next fire time.
pub const MAX_TICK: std::time::Duration = std::time::Duration::from_secs(30);

/// Why a schedule operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    /// The input (or a stored row) does not parse; the message says why.
    #[error("{0}")]
    Invalid(String),
    /// The catalog failed.
    #[error("catalog database: {0}")]
    Db(#[from] sqlx::Error),
    /// Enqueueing the backup failed.
    #[error(transparent)]
    Queue(#[from] crate::queue::QueueError),
}

/// Verification after a scheduled backup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VerifyAfter {
    None,
    Quick,
    Deep,
}

impl VerifyAfter {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Quick => "quick",
            Self::Deep => "deep",
        }
    }

    /// The verification level, when there is one.
    pub fn level(self) -> Option<Level> {
        match self {
            Self::None => None,
            Self::Quick => Some(Level::Quick),
            Self::Deep => Some(Level::Deep),
        }
    }
}

impl FromStr for VerifyAfter {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "none" => Ok(Self::None),
            "quick" => Ok(Self::Quick),
            "deep" => Ok(Self::Deep),
            _ => Err(format!(
                "unknown verify level {s:?}: use none, quick or deep"
            )),
        }
    }
}

impl fmt::Display for VerifyAfter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A schedule as a client asks for it, parsed: build it with [`ScheduleInput::parse`].
#[derive(Clone, Debug)]
pub struct ScheduleInput {
    /// `[a-z0-9][a-z0-9_-]{0,62}`.
    pub name: String,
    pub cron: CronExpr,
    pub time_zone: TimeZoneName,
    /// Not `safety` (restores take those).
    pub backup_type: BackupType,
    /// A configured source's name; `None` is the default source.
    pub source: Option<String>,
    /// Canonical `schema.name` spellings; `None` is every table.
    pub tables: Option<Vec<String>>,
    pub include_files: bool,
    pub upload_to_drive: bool,
    pub verify: VerifyAfter,
    pub enabled: bool,
}

/// The raw fields of a schedule, before parsing.
#[derive(Clone, Debug, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RawSchedule {
    pub name: String,
    pub cron: String,
    pub time_zone: Option<String>,
    pub backup_type: Option<BackupType>,
    pub source: Option<String>,
    pub tables: Option<Vec<String>>,
    pub include_files: bool,
    pub upload_to_drive: bool,
    pub verify: Option<String>,
    pub enabled: Option<bool>,
}

impl ScheduleInput {
    /// Parses every field; the error names the field and what is accepted.
    pub fn parse(raw: RawSchedule) -> Result<Self, String> {
        let name_ok = {
            let b = raw.name.as_bytes();
            (1..=63).contains(&b.len())
                && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
                && b.iter().all(|c| {
                    c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_' || *c == b'-'
                })
        };
        if !name_ok {
            let shown: String = raw.name.chars().take(64).collect();
            return Err(format!(
                "name {shown:?}: use 1 to 63 of a-z, 0-9, '_' and '-', starting with a letter or digit"
            ));
        }
        let backup_type = raw.backup_type.unwrap_or(BackupType::Daily);
        if backup_type == BackupType::Safety {
            return Err("backupType: safety backups are taken by restores only".into());
        }
        let tables = match raw.tables {
            None => None,
            Some(t) if t.is_empty() || t.len() > 1000 => {
                return Err("tables: name 1 to 1000 tables, or leave it out for all".into());
            }
            Some(t) => {
                let mut out: Vec<String> = Vec::with_capacity(t.len());
                for name in &t {
                    let n = TableName::parse(name).map_err(|e| format!("tables: {e}"))?;
                    let c = n.to_string();
                    if !out.contains(&c) {
                        out.push(c);
                    }
                }
                Some(out)
            }
        };
        Ok(Self {
            name: raw.name,
            cron: raw.cron.parse()?,
            time_zone: raw.time_zone.as_deref().unwrap_or("UTC").parse()?,
            backup_type,
            source: raw.source,
            tables,
            include_files: raw.include_files,
            upload_to_drive: raw.upload_to_drive,
            verify: raw.verify.as_deref().unwrap_or("none").parse()?,
            enabled: raw.enabled.unwrap_or(true),
        })
    }
}
