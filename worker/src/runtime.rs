//! The worker: claim loop, job execution, outcome recording, graceful shutdown.
//!
//! ```text
//! loop until shutdown:
//!     wait for a free slot
//!     claim up to (free slots) runnable jobs in one statement
//!     none? wait for a NOTIFY wake-up, the poll interval, or shutdown
//!     spawn each job: run its handler, then record the outcome (fenced)
//! on shutdown: stop claiming; give running jobs the grace period; then cancel them and
//! release their leases without charging an attempt
//! ```

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cellar_core::health::workers;
use cellar_core::queue::{ClaimedJob, Lease, QueueError, lease};
use chrono::Utc;
use sqlx::PgPool;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::completer::Completer;
use crate::config::WorkerConfig;
use crate::handler::{Handler, JobContext, JobError, JobOutput};
use crate::keeper;

/// Why a running job's token fired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum StopReason {
    None = 0,
    Requested = 1,
    Shutdown = 2,
    LeaseLost = 3,
}

pub(crate) struct Running {
    pub(crate) lease: Lease,
    pub(crate) token: CancellationToken,
    reason: Arc<AtomicU8>,
}

impl Running {
    /// Fires the job's token, remembering the first reason.
    pub(crate) fn stop(&self, why: StopReason) {
        let _ = self
            .reason
            .compare_exchange(0, why as u8, Ordering::SeqCst, Ordering::SeqCst);
        self.token.cancel();
    }
}

fn reason_of(r: &AtomicU8) -> StopReason {
    match r.load(Ordering::SeqCst) {
        1 => StopReason::Requested,
        2 => StopReason::Shutdown,
        3 => StopReason::LeaseLost,
        _ => StopReason::None,
    }
}

/// What one [`Worker::run_once`] step did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunOnce {
    /// Ran this many jobs to their end.
    Ran(usize),
    /// Nothing was runnable.
    Empty,
}

/// A worker process's runtime. Its identity is fresh and random per instance, so a restarted
/// process never holds (or can write to) the jobs of the one it replaces.
pub struct Worker {
    id: Uuid,
    pool: PgPool,
    pub(crate) cfg: WorkerConfig,
    handlers: HashMap<String, Arc<dyn Handler>>,
    pub(crate) running: Mutex<HashMap<i64, Running>>,
    pub(crate) wake: Notify,
    completer: Completer,
    /// What this worker tells the registry about its configuration (no secrets).
    pub(crate) registry_config: serde_json::Value,
}

impl Worker {
    /// A worker with no handlers yet.
    pub fn new(pool: PgPool, cfg: WorkerConfig) -> Self {
        Self {
            id: Uuid::new_v4(),
            pool,
            cfg,
            handlers: HashMap::new(),
            running: Mutex::new(HashMap::new()),
            wake: Notify::new(),
            completer: Completer::default(),
            registry_config: serde_json::json!({}),
        }
    }

    /// Registers the handler for `kind`; the worker claims only kinds it has handlers for.
    pub fn register(&mut self, kind: &str, handler: impl Handler) -> &mut Self {
        self.handlers.insert(kind.to_string(), Arc::new(handler));
        self
    }

    /// Sets what the worker registry shows about this worker's configuration (source names,
    /// Drive folders: see `cellar_core::health::workers::config_summary`).
    pub fn set_registry_config(&mut self, config: serde_json::Value) -> &mut Self {
        self.registry_config = config;
        self
    }

    /// Registers this worker in the registry (`worker` table), as `run` does at start; tests
    /// that step a worker by hand call it to make the worker count as live.
    pub async fn announce(&self) -> Result<(), sqlx::Error> {
        let a = workers::Announce::this_process(
            self.id,
            self.kinds(),
            self.cfg.lease_secs,
            self.registry_config.clone(),
        );
        workers::announce(&self.pool, &a).await
    }

    /// This process's identity (`locked_by` of the jobs it runs).
    pub fn id(&self) -> Uuid {
        self.id
    }

    /// The catalog pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    fn kinds(&self) -> Vec<String> {
        self.handlers.keys().cloned().collect()
    }

    /// Claims what is runnable (up to the concurrency) and runs it to the end, without the
    /// background heartbeat: for tests and tools that step the worker by hand.
    pub async fn run_once(self: &Arc<Self>) -> Result<RunOnce, QueueError> {
        let jobs = lease::claim(
            &self.pool,
            self.id,
            &self.kinds(),
            self.cfg.concurrency as i64,
        )
        .await?;
        if jobs.is_empty() {
            return Ok(RunOnce::Empty);
        }
        let n = jobs.len();
        let mut set = JoinSet::new();
        for job in jobs {
            let me = Arc::clone(self);
            set.spawn(async move { me.execute(job).await });
        }
        while set.join_next().await.is_some() {}
        Ok(RunOnce::Ran(n))
    }

    /// Runs until `shutdown` fires, then shuts down gracefully (see the module docs).
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        tracing::info!(worker = %self.id, kinds = ?self.kinds(), "worker started");
        if let Err(e) = self.announce().await {
            tracing::warn!(error = %e, "registering in the worker registry failed; the heartbeat retries");
        }
        let background = CancellationToken::new();
        let mut duties = keeper::spawn_all(&self, &background);
        let slots = Arc::new(Semaphore::new(self.cfg.concurrency.max(1)));
        let mut inflight = JoinSet::new();
        self.claim_loop(&slots, &mut inflight, &shutdown).await;
        self.drain(&mut inflight).await;
        background.cancel();
        while duties.join_next().await.is_some() {}
        if let Err(e) = workers::stopped(&self.pool, self.id).await {
            tracing::warn!(error = %e, "marking this worker stopped in the registry failed");
        }
        tracing::info!(worker = %self.id, "worker stopped");
    }

    async fn claim_loop(
        self: &Arc<Self>,
        slots: &Arc<Semaphore>,
        inflight: &mut JoinSet<()>,
        shutdown: &CancellationToken,
    ) {
        let kinds = self.kinds();
        loop {
            while inflight.try_join_next().is_some() {}
            let first = tokio::select! {
                p = Arc::clone(slots).acquire_owned() => p.expect("semaphore is never closed"),
                _ = shutdown.cancelled() => return,
            };
            let free = slots.available_permits() + 1;
            let jobs = match lease::claim(&self.pool, self.id, &kinds, free as i64).await {
                Ok(jobs) => jobs,
                Err(e) => {
                    tracing::warn!(error = %e, "claiming jobs failed; retrying after the poll interval");
                    Vec::new()
                }
            };
            if jobs.is_empty() {
                drop(first);
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(self.cfg.poll_interval()) => {}
                    _ = shutdown.cancelled() => return,
                }
                continue;
            }
            let mut first = Some(first);
            for job in jobs {
                let permit = first.take().unwrap_or_else(|| {
                    Arc::clone(slots)
                        .try_acquire_owned()
                        .expect("claimed at most the free slots")
                });
                let me = Arc::clone(self);
                inflight.spawn(async move {
                    me.execute(job).await;
                    drop(permit);
                });
            }
        }
    }

    /// Lets running jobs finish within the grace period, then stops and releases them.
    async fn drain(&self, inflight: &mut JoinSet<()>) {
        let grace = Duration::from_secs_f64(self.cfg.shutdown_grace_secs.max(0.0));
        let all_done = async { while inflight.join_next().await.is_some() {} };
        if tokio::time::timeout(grace, all_done).await.is_ok() {
            return;
        }
        tracing::warn!("shutdown grace period over: stopping and releasing running jobs");
        for r in self.running.lock().expect("running lock").values() {
            r.stop(StopReason::Shutdown);
        }
        let stopped = async { while inflight.join_next().await.is_some() {} };
        if tokio::time::timeout(Duration::from_secs(5), stopped)
            .await
            .is_err()
        {
            inflight.abort_all();
            let leases: Vec<Lease> = self
                .running
                .lock()
                .expect("running lock")
                .values()
                .map(|r| r.lease)
                .collect();
            for l in leases {
                let _ = lease::release(&self.pool, &l, Utc::now()).await;
            }
        }
    }

    /// Runs one claimed job and records its outcome.
    #[tracing::instrument(skip_all, fields(job_id = job.lease.id, kind = %job.kind, attempt = job.lease.attempt))]
    async fn execute(self: &Arc<Self>, job: ClaimedJob) {
        let lease = job.lease;
        let token = CancellationToken::new();
        let reason = Arc::new(AtomicU8::new(0));
        let running = Running {
            lease,
            token: token.clone(),
            reason: Arc::clone(&reason),
        };
        self.running
            .lock()
            .expect("running lock")
            .insert(lease.id, running);
        let handler = Arc::clone(&self.handlers[&job.kind]);
        let ctx = JobContext::new(job, token, self.pool.clone());
        let outcome = match tokio::spawn(handler.run(ctx)).await {
            Ok(r) => r,
            Err(e) if e.is_panic() => Err(JobError::Retry(format!(
                "handler panicked: {}",
                panic_text(e)
            ))),
            Err(_) => Err(JobError::Cancelled),
        };
        self.running.lock().expect("running lock").remove(&lease.id);
        self.record(&lease, outcome, reason_of(&reason)).await;
    }

    /// Writes the outcome, fenced on the lease. A database hiccup is retried briefly; if it
    /// persists the lease expires and the rescuer returns the job.
    async fn record(&self, l: &Lease, outcome: Result<JobOutput, JobError>, why: StopReason) {
        for attempt in 0..5u32 {
            match self.write_outcome(l, &outcome, why).await {
                Ok(()) => return,
                Err(QueueError::LeaseLost { .. }) => {
                    tracing::warn!(job_id = l.id, "outcome not recorded: the lease was lost");
                    return;
                }
                Err(e) => {
                    tracing::warn!(job_id = l.id, error = %e, "recording outcome failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                }
            }
        }
    }

    async fn write_outcome(
        &self,
        l: &Lease,
        outcome: &Result<JobOutput, JobError>,
        why: StopReason,
    ) -> Result<(), QueueError> {
        let p = &self.pool;
        match (outcome, why) {
            (Ok(out), _) => self.completer.complete(p, self.id, *l, out.clone()).await,
            (Err(JobError::LeaseLost), _) | (Err(_), StopReason::LeaseLost) => Ok(()),
            (Err(_), StopReason::Shutdown) => lease::release(p, l, Utc::now()).await,
            (Err(e), StopReason::Requested) => {
                lease::cancelled(p, l, &format!("cancelled on request ({e})")).await
            }
            (Err(JobError::Snooze(d)), _) => {
                let at = Utc::now() + chrono::Duration::from_std(*d).unwrap_or_default();
                lease::release(p, l, at).await
            }
            (Err(JobError::Cancelled), _) => lease::cancelled(p, l, "cancelled").await,
            (Err(JobError::Permanent(m)), _) => lease::fail(p, l, m, None).await.map(drop),
            (Err(e), _) => {
                let delay = self.cfg.backoff(l.attempt);
                let at = Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default();
                let state = lease::fail(p, l, &e.to_string(), Some(at)).await?;
                tracing::warn!(job_id = l.id, error = %e, ?state, retry_in = ?delay, "job failed");
                Ok(())
            }
        }
    }
}

fn panic_text(e: tokio::task::JoinError) -> String {
    let p = e.into_panic();
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-text panic".into())
}
