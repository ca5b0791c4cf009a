//! Judging the facts: documented rules (docs/HEALTH.md), each giving a status and a reason.
//! The rules are a pure function of the facts, which carry their own `now`.
//!
//! ```text
//! for each configured source (all sources seen when none is configured):
//!     no success ever                         -> critical NO_SUCCESSFUL_BACKUP
//!     last success older than 2 x interval    -> critical BACKUPS_STOPPED
//!     >= 3 failures since the last success    -> warning  FAILURE_STREAK
//! verifications last 7 days pass < 90%        -> warning  LOW_VERIFICATION_RATE
//! jobs wait and no worker is live             -> warning  NO_LIVE_WORKER
//! oldest runnable job waited > 15 min         -> warning  QUEUE_STALLED (with live workers)
//! overall = the worst reason, healthy when none; the catalog unreadable -> error
//! ```

use std::fmt;

use chrono::Duration;
use serde::Serialize;

use super::facts::Facts;

/// Overall health, worst last.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Backups are fresh, verified and flowing.
    Healthy,
    /// Something needs attention soon.
    Warning,
    /// Backups are not being taken: act now.
    Critical,
    /// Health cannot be judged (the catalog cannot be read).
    Error,
}

impl Status {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Healthy => "healthy",
            Self::Warning => "warning",
            Self::Critical => "critical",
            Self::Error => "error",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One finding: how bad, a stable code for scripts, and a sentence for people.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Reason {
    pub status: Status,
    pub code: &'static str,
    pub message: String,
}

/// The thresholds. [`Rules::default`] is what the service uses; tests may tighten them.
#[derive(Clone, Debug)]
pub struct Rules {
    /// The shortest schedule interval: backups are overdue after twice this.
    pub shortest_interval: Duration,
    /// Consecutive failures of a source that make a warning.
    pub failure_streak: i64,
    /// Lowest acceptable share of passing verifications over the last week.
    pub min_verification_rate: f64,
    /// A runnable job waiting longer than this (with live workers) makes a warning.
    pub queue_stalled_after: Duration,
}

/// The schedule interval assumed when no schedule is known: the seed's daily backup.
pub const DEFAULT_SHORTEST_INTERVAL: Duration = Duration::hours(24);

impl Default for Rules {
    fn default() -> Self {
        Self {
            shortest_interval: DEFAULT_SHORTEST_INTERVAL,
            failure_streak: 3,
            min_verification_rate: 0.9,
            queue_stalled_after: Duration::minutes(15),
        }
    }
}

/// The worst status among `reasons` (healthy when there are none).
pub fn overall(reasons: &[Reason]) -> Status {
    reasons
        .iter()
        .map(|r| r.status)
        .max()
        .unwrap_or(Status::Healthy)
}

fn hours(d: Duration) -> String {
    let h = d.num_minutes() as f64 / 60.0;
    if h >= 48.0 {
        format!("{:.1} days", h / 24.0)
    } else {
        format!("{h:.1} hours")
    }
}

/// Judges `facts` against `rules`. `configured` names the sources that must be backed up;
/// when empty, every source seen in the catalog is (except restore targets, `target:*`).
pub fn judge(facts: &Facts, rules: &Rules, configured: &[String]) -> Vec<Reason> {
    let mut out = Vec::new();
    let due = rules.shortest_interval * 2;
    let judged = facts.sources.iter().filter(|s| {
        if configured.is_empty() {
            !s.name.starts_with("target:")
        } else {
            configured.contains(&s.name)
        }
    });
    for s in judged {
        match s.last_success_at {
            None => out.push(Reason {
                status: Status::Critical,
                code: "NO_SUCCESSFUL_BACKUP",
                message: format!("source {}: no backup has ever completed", s.name),
            }),
            Some(at) if facts.now - at > due => out.push(Reason {
                status: Status::Critical,
                code: "BACKUPS_STOPPED",
                message: format!(
                    "source {}: the last successful backup completed {} ago, more than twice \
                     the shortest schedule interval ({})",
                    s.name,
                    hours(facts.now - at),
                    hours(rules.shortest_interval)
                ),
            }),
            Some(_) => {}
        }
        if s.failure_streak >= rules.failure_streak {
            out.push(Reason {
                status: Status::Warning,
                code: "FAILURE_STREAK",
                message: format!(
                    "source {}: the last {} backups failed",
                    s.name, s.failure_streak
                ),
            });
        }
    }
    if let Some(rate) = facts.totals.verification_rate()
        && rate < rules.min_verification_rate
    {
        out.push(Reason {
            status: Status::Warning,
            code: "LOW_VERIFICATION_RATE",
            message: format!(
                "{} of {} verifications in the last 7 days passed ({:.0}%, below {:.0}%)",
                facts.totals.verified_valid_last_week,
                facts.totals.verified_last_week,
                rate * 100.0,
                rules.min_verification_rate * 100.0
            ),
        });
    }
    queue_rules(facts, rules, &mut out);
    out
}

fn queue_rules(facts: &Facts, rules: &Rules, out: &mut Vec<Reason>) {
    let waiting = facts.waiting();
    if waiting == 0 {
        return;
    }
    if facts.live_workers().is_empty() {
        out.push(Reason {
            status: Status::Warning,
            code: "NO_LIVE_WORKER",
            message: format!(
                "{waiting} jobs are waiting and no worker is live: start cellar-worker"
            ),
        });
    } else if let Some(secs) = facts.oldest_waiting_secs()
        && secs > rules.queue_stalled_after.num_seconds() as f64
    {
        out.push(Reason {
            status: Status::Warning,
            code: "QUEUE_STALLED",
            message: format!(
                "a runnable job has waited {:.0} minutes although workers are live: are they \
                 all busy, or do none run its kind?",
                secs / 60.0
            ),
        });
    }
}
