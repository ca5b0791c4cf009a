//! The retention decision: a pure function of the policies, the backup history and `now`.
//!
//! ```text
//! for each backup type and source, completed backups newest first (rank 0, 1, ...):
//!     pinned                                  -> keep
//!     used by a pending or running restore    -> keep
//!     newest verified backup of its source    -> keep (over every type)
//!     rank < maxCount and age <= maxAgeDays   -> keep
//!     newest of one of the keepDaily latest days / keepWeekly ISO weeks / keepMonthly months
//!                                             -> keep (GFS slots reach past count and age)
//!     else                                    -> delete (older than maxAgeDays, or beyond maxCount)
//! failed backups hold no data: the same count and age limits, counted among failed backups
//! of the type and source only (a failure streak never pushes out a good backup), no GFS slots.
//! pending, running and deleted backups are not decided. A type without a policy keeps all.
//! ```

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Datelike, Utc};
use serde::Serialize;

use super::Policy;
use crate::backup::{BackupState, BackupType};

/// A backup as retention sees it.
#[derive(Clone, Debug)]
pub struct Candidate {
    pub id: String,
    pub backup_type: BackupType,
    pub source: String,
    pub created_at: DateTime<Utc>,
    pub state: BackupState,
    /// Its last verification was valid.
    pub verified: bool,
    pub pinned: bool,
    /// A pending or running restore reads it.
    pub in_use: bool,
}

/// What retention does with one backup, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    pub id: String,
    pub backup_type: BackupType,
    pub source: String,
    pub created_at: DateTime<Utc>,
    pub state: BackupState,
    /// False: retention deletes it.
    pub keep: bool,
    pub reason: String,
}

/// Decides every completed or failed backup of `history`, newest first.
pub fn plan(policies: &[Policy], history: &[Candidate], now: DateTime<Utc>) -> Vec<Decision> {
    let newest_verified = newest_verified(history);
    let mut groups: HashMap<(BackupType, &str), Vec<&Candidate>> = HashMap::new();
    for c in history {
        if matches!(c.state, BackupState::Completed | BackupState::Failed) {
            groups
                .entry((c.backup_type, &c.source))
                .or_default()
                .push(c);
        }
    }
    let mut out = Vec::new();
    for ((t, _), mut group) in groups {
        group.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        let policy = policies.iter().find(|p| p.backup_type == t);
        let (done, failed): (Vec<&Candidate>, Vec<&Candidate>) = group
            .into_iter()
            .partition(|c| c.state == BackupState::Completed);
        let slots = policy.map(|p| gfs_slots(p, &done)).unwrap_or_default();
        for (rank, c) in done.iter().enumerate() {
            let protected = protection(c, &newest_verified);
            let (keep, reason) = match (protected, policy) {
                (Some(why), _) => (true, why),
                (None, None) => (
                    true,
                    format!("no retention policy for {} backups", t.as_str()),
                ),
                (None, Some(p)) => judge(p, rank, c, now, slots.get(c.id.as_str()), false),
            };
            out.push(decision(c, keep, reason));
        }
        for (rank, c) in failed.iter().enumerate() {
            let (keep, reason) = match (protection(c, &newest_verified), policy) {
                (Some(why), _) => (true, why),
                (None, None) => (
                    true,
                    format!("no retention policy for {} backups", t.as_str()),
                ),
                (None, Some(p)) => judge(p, rank, c, now, None, true),
            };
            out.push(decision(c, keep, reason));
        }
    }
    out.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
    out
}

fn decision(c: &Candidate, keep: bool, reason: String) -> Decision {
    Decision {
        id: c.id.clone(),
        backup_type: c.backup_type,
        source: c.source.clone(),
        created_at: c.created_at,
        state: c.state,
        keep,
        reason,
    }
}

/// The newest completed, verified backup of each source, over every type.
fn newest_verified(history: &[Candidate]) -> HashSet<&str> {
    let mut best: HashMap<&str, &Candidate> = HashMap::new();
    for c in history
        .iter()
        .filter(|c| c.state == BackupState::Completed && c.verified)
    {
        let e = best.entry(&c.source).or_insert(c);
        if (c.created_at, &c.id) > (e.created_at, &e.id) {
            *e = c;
        }
    }
    best.values().map(|c| c.id.as_str()).collect()
}

fn protection(c: &Candidate, newest_verified: &HashSet<&str>) -> Option<String> {
    if c.pinned {
        Some("pinned".into())
    } else if c.in_use {
        Some("used by a pending or running restore".into())
    } else if newest_verified.contains(c.id.as_str()) {
        Some(format!("the newest verified backup of source {}", c.source))
    } else {
        None
    }
}

fn judge(
    p: &Policy,
    rank: usize,
    c: &Candidate,
    now: DateTime<Utc>,
    slot: Option<&String>,
    failed: bool,
) -> (bool, String) {
    let age_days = (now - c.created_at).num_seconds() as f64 / 86_400.0;
    let in_count = p.max_count.is_none_or(|n| rank < n as usize);
    let in_age = p.max_age_days.is_none_or(|d| age_days <= f64::from(d));
    let what = if failed {
        "failed backup (holds no data)"
    } else {
        "backup"
    };
    if in_count && in_age {
        let count = p
            .max_count
            .map_or(String::new(), |n| format!(" of at most {n}"));
        return (
            true,
            format!("{what}: number {}{count}, {age_days:.1} days old", rank + 1),
        );
    }
    if let Some(slot) = slot {
        return (true, format!("grandfather-father-son: the {slot}"));
    }
    let why = if in_age {
        format!(
            "beyond the newest {} {} backups",
            p.max_count.unwrap_or(0),
            p.backup_type.as_str()
        )
    } else {
        format!(
            "older than {} days ({age_days:.1})",
            p.max_age_days.unwrap_or(0)
        )
    };
    (false, format!("{what}: {why}"))
}

/// Names the GFS bucket (day, ISO week, month) a time falls in.
type Bucket = fn(DateTime<Utc>) -> String;

/// The GFS slots of `done` (newest first): id -> "daily slot 2026-11-20" etc.
fn gfs_slots<'a>(p: &Policy, done: &[&'a Candidate]) -> HashMap<&'a str, String> {
    let mut slots = HashMap::new();
    let kinds: [(u32, &str, Bucket); 3] = [
        (p.keep_daily, "daily", |t| t.format("%Y-%m-%d").to_string()),
        (p.keep_weekly, "weekly", |t| {
            let w = t.iso_week();
            format!("{}-W{:02}", w.year(), w.week())
        }),
        (p.keep_monthly, "monthly", |t| t.format("%Y-%m").to_string()),
    ];
    for (n, name, bucket) in kinds {
        let mut seen: Vec<String> = Vec::new();
        for c in done {
            if seen.len() >= n as usize {
                break;
            }
            let b = bucket(c.created_at);
            if !seen.contains(&b) {
                slots
                    .entry(c.id.as_str())
                    .or_insert_with(|| format!("{name} slot {b}"));
                seen.push(b);
            }
        }
    }
    slots
}
