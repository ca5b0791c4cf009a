//! The Prometheus text exposition (format 0.0.4), computed from the catalog on each scrape, so
//! every API replica answers the same and nothing is lost when a process restarts.
//!
//! Hand-written rather than a client crate: those keep counters in process memory, while every
//! value here is a catalog aggregate read at scrape time; the format itself is a few lines.
//! Counters derived from pruned rows (upload retries come from job rows, pruned after
//! `CELLAR_PRUNE_AFTER_HOURS`) can go down, which Prometheus treats as a counter reset.

use std::fmt::Write;

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::facts;
use crate::backup::BackupType;

/// Upper bounds of the duration histograms, in seconds (`+Inf` is added).
pub const DURATION_BUCKETS: [f64; 11] = [
    1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 10800.0, 21600.0,
];

/// Builds one exposition: `# HELP` and `# TYPE` once per family, then its samples.
#[derive(Default)]
pub struct Exposition(String);

impl Exposition {
    /// Starts a family (`kind`: counter, gauge, histogram).
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    /// One sample; label values are escaped.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            let parts: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                .collect();
            let _ = write!(self.0, "{{{}}}", parts.join(","));
        }
        let _ = writeln!(self.0, " {}", number(value));
    }

    /// The text.
    pub fn finish(self) -> String {
        self.0
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A sample value: integers without a fraction, `NaN`, `+Inf`, `-Inf`.
pub fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// The whole exposition as seen at `now`.
#[tracing::instrument(skip_all)]
pub async fn render(pool: &PgPool, now: DateTime<Utc>) -> Result<String, sqlx::Error> {
    let mut e = Exposition::default();
    backups(pool, &mut e).await?;
    restores(pool, &mut e).await?;
    state(pool, now, &mut e).await?;
    Ok(e.finish())
}

// The two outcomes of a finished backup, shared by every query that counts them. A deleted row
// keeps its `error` (only `mark_failed` sets it, `mark_running` clears it, `mark_deleted` leaves
// it alone), so a deleted backup without an error had completed and one with an error had
// failed: deleting a backup moves no counter. Macros, so the statements stay `&'static str`.
macro_rules! succeeded {
    () => {
        "(state = 'completed' OR (state = 'deleted' AND error IS NULL))"
    };
}
macro_rules! failed {
    () => {
        "(state = 'failed' OR (state = 'deleted' AND error IS NOT NULL))"
    };
}

/// One row of the per-type backup aggregates.
#[derive(sqlx::FromRow)]
struct BackupCounts {
    t: BackupType,
    ok: i64,
    failed: i64,
    plain: f64,
    stored: f64,
    failing_verification: i64,
}

/// Per backup type: outcomes, bytes of successes, and backups still held whose latest
/// verification failed. Not `query!`: the outcome predicates are shared (see `succeeded!`).
const BACKUP_COUNTS: &str = concat!(
    "SELECT backup_type AS t,
            count(*) FILTER (WHERE ",
    succeeded!(),
    ") AS ok,
            count(*) FILTER (WHERE ",
    failed!(),
    ") AS failed,
            coalesce(sum(plain_bytes) FILTER (WHERE ",
    succeeded!(),
    "), 0)::float8 AS plain,
            coalesce(sum(stored_bytes) FILTER (WHERE ",
    succeeded!(),
    "), 0)::float8 AS stored,
            count(*) FILTER (WHERE state = 'completed'
                             AND verification->>'status' = 'invalid') AS failing_verification
     FROM backup GROUP BY 1 ORDER BY 1"
);

/// The duration histogram of successful backups, per type and bucket bound `$1`.
const BACKUP_BUCKETS: &str = concat!(
    "SELECT backup_type::text, le,
            count(*) FILTER (WHERE EXTRACT(EPOCH FROM completed_at - started_at) <= le),
            count(*),
            coalesce(sum(EXTRACT(EPOCH FROM completed_at - started_at)), 0)::float8
     FROM backup CROSS JOIN unnest($1::float8[]) AS le
     WHERE ",
    succeeded!(),
    " AND started_at IS NOT NULL AND completed_at IS NOT NULL
     GROUP BY 1, 2 ORDER BY 1, 2"
);

async fn backups(pool: &PgPool, e: &mut Exposition) -> Result<(), sqlx::Error> {
    let rows: Vec<BackupCounts> = sqlx::query_as(BACKUP_COUNTS).fetch_all(pool).await?;
    e.family(
        "cellar_backups_total",
        "counter",
        "Backups finished, by type and outcome (deleting a backup changes neither).",
    );
    for r in &rows {
        e.sample(
            "cellar_backups_total",
            &[("type", r.t.as_str()), ("outcome", "success")],
            r.ok as f64,
        );
        e.sample(
            "cellar_backups_total",
            &[("type", r.t.as_str()), ("outcome", "failure")],
            r.failed as f64,
        );
    }
    e.family(
        "cellar_backup_plain_bytes_total",
        "counter",
        "Plain (uncompressed) bytes of completed backups.",
    );
    for r in &rows {
        e.sample(
            "cellar_backup_plain_bytes_total",
            &[("type", r.t.as_str())],
            r.plain,
        );
    }
    e.family(
        "cellar_backup_stored_bytes_total",
        "counter",
        "Stored (compressed, encrypted) bytes of completed backups.",
    );
    for r in &rows {
        e.sample(
            "cellar_backup_stored_bytes_total",
            &[("type", r.t.as_str())],
            r.stored,
        );
    }
    e.family(
        "cellar_backups_failing_verification",
        "gauge",
        "Backups held whose latest verification failed (a passing re-verification or a \
         deletion lowers it).",
    );
    for r in &rows {
        e.sample(
            "cellar_backups_failing_verification",
            &[("type", r.t.as_str())],
            r.failing_verification as f64,
        );
    }
    let rows: Vec<(String, f64, i64, i64, f64)> = sqlx::query_as(BACKUP_BUCKETS)
        .bind(&DURATION_BUCKETS[..])
        .fetch_all(pool)
        .await?;
    histogram(
        e,
        "cellar_backup_duration_seconds",
        "Wall time of completed backups.",
        &rows,
    );
    Ok(())
}

async fn restores(pool: &PgPool, e: &mut Exposition) -> Result<(), sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT CASE WHEN tables IS NULL THEN 'full' ELSE 'tables' END AS "t!",
                  count(*) FILTER (WHERE state = 'completed') AS "ok!",
                  count(*) FILTER (WHERE state = 'failed') AS "failed!"
           FROM restore GROUP BY 1 ORDER BY 1"#
    )
    .fetch_all(pool)
    .await?;
    e.family(
        "cellar_restores_total",
        "counter",
        "Restores finished, by type (full or tables) and outcome.",
    );
    for r in &rows {
        e.sample(
            "cellar_restores_total",
            &[("type", &r.t), ("outcome", "success")],
            r.ok as f64,
        );
        e.sample(
            "cellar_restores_total",
            &[("type", &r.t), ("outcome", "failure")],
            r.failed as f64,
        );
    }
    let buckets = sqlx::query!(
        r#"SELECT CASE WHEN tables IS NULL THEN 'full' ELSE 'tables' END AS "t!", le AS "le!",
                  count(*) FILTER (WHERE EXTRACT(EPOCH FROM completed_at - started_at) <= le) AS "n!",
                  count(*) AS "count!",
                  coalesce(sum(EXTRACT(EPOCH FROM completed_at - started_at)), 0)::float8 AS "sum!"
           FROM restore CROSS JOIN unnest($1::float8[]) AS le
           WHERE state = 'completed' AND started_at IS NOT NULL AND completed_at IS NOT NULL
           GROUP BY 1, 2 ORDER BY 1, 2"#,
        &DURATION_BUCKETS[..]
    )
    .fetch_all(pool)
    .await?;
    let rows: Vec<_> = buckets
        .into_iter()
        .map(|r| (r.t, r.le, r.n, r.count, r.sum))
        .collect();
    histogram(
        e,
        "cellar_restore_duration_seconds",
        "Wall time of completed restores.",
        &rows,
    );
    Ok(())
}

/// Writes a histogram family from `(type, le, cumulative count, count, sum)` rows ordered by
/// type then `le`.
fn histogram(e: &mut Exposition, name: &str, help: &str, rows: &[(String, f64, i64, i64, f64)]) {
    e.family(name, "histogram", help);
    let bucket = format!("{name}_bucket");
    for (i, (t, le, n, count, sum)) in rows.iter().enumerate() {
        e.sample(&bucket, &[("type", t), ("le", &number(*le))], *n as f64);
        let last = rows.get(i + 1).is_none_or(|next| &next.0 != t);
        if last {
            e.sample(&bucket, &[("type", t), ("le", "+Inf")], *count as f64);
            e.sample(&format!("{name}_sum"), &[("type", t)], *sum);
            e.sample(&format!("{name}_count"), &[("type", t)], *count as f64);
        }
    }
}

async fn state(pool: &PgPool, now: DateTime<Utc>, e: &mut Exposition) -> Result<(), sqlx::Error> {
    let f = facts::gather(pool, now, &[]).await?;
    let retries = sqlx::query_scalar!(
        r#"SELECT coalesce(sum(greatest(attempt - 1, 0)), 0)::float8 AS "n!"
           FROM job WHERE kind = 'upload'"#
    )
    .fetch_one(pool)
    .await?;
    e.family(
        "cellar_upload_retries_total",
        "counter",
        "Drive upload attempts beyond the first (retained job rows).",
    );
    e.sample("cellar_upload_retries_total", &[], retries);
    e.family(
        "cellar_last_success_timestamp_seconds",
        "gauge",
        "Unix time of the newest completed backup, per source.",
    );
    for s in &f.sources {
        if let Some(at) = s.last_success_at {
            e.sample(
                "cellar_last_success_timestamp_seconds",
                &[("source", &s.name)],
                at.timestamp() as f64,
            );
        }
    }
    e.family(
        "cellar_storage_used_bytes",
        "gauge",
        "Stored bytes of completed backups held, per location.",
    );
    e.sample(
        "cellar_storage_used_bytes",
        &[("location", "local")],
        f.totals.storage_local_bytes as f64,
    );
    e.sample(
        "cellar_storage_used_bytes",
        &[("location", "drive")],
        f.totals.storage_drive_bytes as f64,
    );
    e.family(
        "cellar_queue_depth",
        "gauge",
        "Jobs runnable now and waiting for a worker, per kind.",
    );
    for q in &f.queue {
        e.sample("cellar_queue_depth", &[("kind", &q.kind)], q.waiting as f64);
    }
    e.family(
        "cellar_queue_oldest_job_age_seconds",
        "gauge",
        "How long the oldest runnable job has waited, per kind.",
    );
    for q in &f.queue {
        e.sample(
            "cellar_queue_oldest_job_age_seconds",
            &[("kind", &q.kind)],
            q.oldest_waiting_secs.unwrap_or(0.0),
        );
    }
    e.family(
        "cellar_jobs_running",
        "gauge",
        "Jobs running now, per kind.",
    );
    for q in &f.queue {
        e.sample(
            "cellar_jobs_running",
            &[("kind", &q.kind)],
            q.running as f64,
        );
    }
    e.family(
        "cellar_workers_live",
        "gauge",
        "Worker processes seen within three lease periods.",
    );
    e.sample("cellar_workers_live", &[], f.live_workers().len() as f64);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_formats() {
        let mut e = Exposition::default();
        e.family("x_total", "counter", "a \\ b\nc");
        e.sample("x_total", &[("l", "a\"b\\c\nd")], 3.0);
        e.sample("x_total", &[], 0.5);
        assert_eq!(
            e.finish(),
            "# HELP x_total a \\\\ b\\nc\n# TYPE x_total counter\nx_total{l=\"a\\\"b\\\\c\\nd\"} 3\nx_total 0.5\n"
        );
        assert_eq!(number(f64::INFINITY), "+Inf");
        assert_eq!(number(f64::NAN), "NaN");
        assert_eq!(number(1e20), "100000000000000000000");
    }
}
