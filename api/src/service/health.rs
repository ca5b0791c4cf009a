//! Health, diagnose and metrics for the API: thin over `cellar_core::health`.
//!
//! Diagnose needs a worker's configuration, so the API runs only what it can itself (the
//! catalog and the worker registry) and hands the rest to a worker as a `diagnose` job, waiting
//! for its result with a deadline. Without a live worker, the worker-side probes are reported
//! skipped, with the way to run them directly.

use std::time::Duration;

use cellar_core::auth::Permission;
use cellar_core::health::diagnose::{
    Diagnosis, JOB_DIAGNOSE, Probe, ProbeStatus, catalog_probe, workers_probe,
};
use cellar_core::health::{self, HealthReport, Inputs, Rules};
use cellar_core::queue::{self, JobRow, JobState, NewJob};
use chrono::Utc;
use serde_json::json;

use super::{Audit, Caller, Services};
use crate::error::ApiError;

/// How long `diagnose` waits for a worker by default, and at most.
pub const DIAGNOSE_WAIT: Duration = Duration::from_secs(45);
/// The longest wait a caller may ask for.
pub const DIAGNOSE_WAIT_MAX: Duration = Duration::from_secs(300);

/// The probes only a worker can run, reported skipped when none can.
const WORKER_PROBES: [&str; 4] = ["sources", "encryption key", "local storage", "google drive"];

impl Services {
    /// The health report (every role). Never an error for a broken catalog: that is the
    /// report's `error` status.
    pub async fn health(&self, caller: &Caller) -> Result<HealthReport, ApiError> {
        caller.require(Permission::Read)?;
        let inputs = Inputs {
            configured_sources: self.sources.clone(),
            drive_configured: self.drive_configured,
            rules: Rules::default(),
        };
        Ok(health::check(&self.pool, Utc::now(), &inputs).await)
    }

    /// The Prometheus exposition (every role: a scrape uses a viewer token).
    pub async fn metrics(&self, caller: &Caller) -> Result<String, ApiError> {
        caller.require(Permission::Read)?;
        Ok(health::metrics::render(&self.pool, Utc::now()).await?)
    }

    /// Runs the live probes (operators and masters; audited). `wait` bounds how long a
    /// worker gets to answer.
    pub async fn diagnose(
        &self,
        caller: &Caller,
        wait: Option<f64>,
    ) -> Result<Diagnosis, ApiError> {
        let wait = match wait {
            None => DIAGNOSE_WAIT,
            Some(s) if s > 0.0 && s <= DIAGNOSE_WAIT_MAX.as_secs_f64() => {
                Duration::from_secs_f64(s)
            }
            Some(s) => {
                return Err(ApiError::InvalidInput(format!(
                    "timeoutSeconds must be above 0 and at most {}, got {s}",
                    DIAGNOSE_WAIT_MAX.as_secs()
                )));
            }
        };
        let audit = Audit {
            action: "diagnose",
            target: None,
            arguments: json!({ "timeoutSeconds": wait.as_secs_f64() }),
        };
        self.mutate(caller, Permission::Diagnose, audit, |_| {
            self.run_diagnose(wait)
        })
        .await
    }

    async fn run_diagnose(&self, wait: Duration) -> Result<(Diagnosis, Option<i64>), ApiError> {
        let catalog = catalog_probe(&self.pool).await;
        let workers = workers_probe(&self.pool).await;
        let ran_on = "cellar-api (catalog and registry only)".to_string();
        if catalog.status == ProbeStatus::Failed || workers.status == ProbeStatus::Failed {
            let mut probes = vec![catalog, workers];
            probes.extend(WORKER_PROBES.iter().map(|n| {
                Probe::skipped(
                    *n,
                    "not run: no live worker to run it; `cellar diagnose --direct` runs every \
                     probe with a worker's configuration",
                )
            }));
            return Ok((Diagnosis::new(probes, ran_on), None));
        }
        let job = self.enqueue_diagnose().await?;
        let Some(row) = self.wait_for_job(job, wait).await? else {
            let mut c = self.pool.acquire().await?;
            let _ = queue::cancel(&mut c, job).await;
            let probe = Probe::new(
                "workers",
                ProbeStatus::Failed,
                format!(
                    "live workers are registered, but none ran the diagnose job within {:.0} s",
                    wait.as_secs_f64()
                ),
                Some(
                    "The workers are busy (raise CELLAR_WORKER_CONCURRENCY or wait) or cannot reach the catalog; check their logs, or run `cellar diagnose --direct` on a worker host.",
                ),
            );
            return Ok((Diagnosis::new(vec![catalog, probe], ran_on), Some(job)));
        };
        let result = row.result.clone().unwrap_or_default();
        match serde_json::from_value::<Diagnosis>(result) {
            Ok(d) if row.state == JobState::Completed => Ok((d, Some(job))),
            _ => {
                let why = row
                    .errors
                    .last()
                    .and_then(|e| e["error"].as_str())
                    .unwrap_or("no result");
                let probe = Probe::new(
                    "workers",
                    ProbeStatus::Failed,
                    format!("the diagnose job ended {:?}: {why}", row.state),
                    Some(
                        "Check the worker's log for this job id; run `cellar diagnose --direct` on a worker host.",
                    ),
                );
                Ok((Diagnosis::new(vec![catalog, probe], ran_on), Some(job)))
            }
        }
    }

    async fn enqueue_diagnose(&self) -> Result<i64, ApiError> {
        let mut job = NewJob::new(JOB_DIAGNOSE, json!({}));
        job.max_attempts = 1;
        job.priority = 10;
        let mut c = self.pool.acquire().await?;
        Ok(queue::enqueue(&mut c, &job).await?.id)
    }

    /// The job's row once it has finished, or `None` at the deadline (polled: diagnose is
    /// rare, and the row is one primary-key read).
    async fn wait_for_job(&self, id: i64, wait: Duration) -> Result<Option<JobRow>, ApiError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let row = queue::get(&self.pool, id).await?;
            if row.finished_at.is_some() {
                return Ok(Some(row));
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(None);
            }
            tokio::time::sleep_until(
                deadline.min(tokio::time::Instant::now() + Duration::from_millis(100)),
            )
            .await;
        }
    }
}

/// The REST/CLI name of a diagnose probe status.
pub fn probe_status(s: ProbeStatus) -> &'static str {
    match s {
        ProbeStatus::Ok => "ok",
        ProbeStatus::Skipped => "skipped",
        ProbeStatus::Warning => "warning",
        ProbeStatus::Failed => "failed",
    }
}
