//! A worker's background duties, each a loop that ends when its token fires:
//! - heartbeat: refresh held leases; stop jobs whose cancel was requested or whose lease is gone;
//!   refresh this worker's row in the registry (`cellar_core::health::workers`);
//! - listener: LISTEN for new jobs (wake the claim loop) and cancel requests (stop the job now);
//! - maintenance: rescue expired leases of any worker, prune old finished jobs.

use std::sync::Arc;
use std::time::Duration;

use cellar_core::health::workers;
use cellar_core::queue::{CHANNEL_AVAILABLE, CHANNEL_CANCEL, lease, maintenance};
use sqlx::postgres::PgListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::runtime::{StopReason, Worker};

/// Starts every duty; they stop when `stop` fires.
pub(crate) fn spawn_all(w: &Arc<Worker>, stop: &CancellationToken) -> JoinSet<()> {
    let mut set = JoinSet::new();
    set.spawn(heartbeat_loop(Arc::clone(w), stop.clone()));
    set.spawn(listen_loop(Arc::clone(w), stop.clone()));
    set.spawn(maintenance_loop(Arc::clone(w), stop.clone()));
    set
}

/// Sleeps `d` or until `stop` fires; false when stopped.
async fn pause(d: Duration, stop: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => true,
        _ = stop.cancelled() => false,
    }
}

async fn heartbeat_loop(w: Arc<Worker>, stop: CancellationToken) {
    while pause(w.cfg.heartbeat_every(), &stop).await {
        if let Err(e) = heartbeat_once(&w).await {
            tracing::warn!(error = %e, "heartbeat failed; leases expire if this persists");
        }
        registry_beat(&w).await;
    }
}

/// Refreshes this worker's registry row (announcing again when it was pruned meanwhile).
async fn registry_beat(w: &Worker) {
    let seen = match workers::beat(w.pool(), w.id()).await {
        Ok(true) => Ok(()),
        Ok(false) => w.announce().await,
        Err(e) => Err(e),
    };
    if let Err(e) = seen {
        tracing::warn!(error = %e, "worker registry heartbeat failed; health shows no live worker if this persists");
    }
}

/// One heartbeat over every held job.
pub(crate) async fn heartbeat_once(w: &Worker) -> Result<(), cellar_core::queue::QueueError> {
    let held: Vec<(i64, i32)> = {
        let running = w.running.lock().expect("running lock");
        running
            .values()
            .map(|r| (r.lease.id, r.lease.attempt))
            .collect()
    };
    if held.is_empty() {
        return Ok(());
    }
    let acks = lease::heartbeat(w.pool(), w.id(), &held).await?;
    let running = w.running.lock().expect("running lock");
    for (id, attempt) in held {
        let Some(r) = running.get(&id).filter(|r| r.lease.attempt == attempt) else {
            continue;
        };
        match acks.iter().find(|a| a.id == id) {
            None => {
                tracing::warn!(job_id = id, "lease lost: stopping the job");
                r.stop(StopReason::LeaseLost);
            }
            Some(a) if a.cancel_requested => r.stop(StopReason::Requested),
            Some(_) => {}
        }
    }
    Ok(())
}

async fn listen_loop(w: Arc<Worker>, stop: CancellationToken) {
    loop {
        let mut listener = match listen(&w).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "LISTEN failed; polling until it works again");
                if !pause(Duration::from_secs(1), &stop).await {
                    return;
                }
                continue;
            }
        };
        // Anything sent while we were not listening is picked up by a claim and a heartbeat.
        w.wake.notify_one();
        let _ = heartbeat_once(&w).await;
        loop {
            let n = tokio::select! {
                n = listener.try_recv() => n,
                _ = stop.cancelled() => return,
            };
            match n {
                Ok(Some(n)) if n.channel() == CHANNEL_CANCEL => on_cancel(&w, n.payload()),
                Ok(Some(_)) => w.wake.notify_one(),
                Ok(None) | Err(_) => break,
            }
        }
        tracing::warn!("LISTEN connection lost; reconnecting");
    }
}

async fn listen(w: &Worker) -> Result<PgListener, sqlx::Error> {
    let mut l = PgListener::connect_with(w.pool()).await?;
    l.listen_all([CHANNEL_AVAILABLE, CHANNEL_CANCEL]).await?;
    Ok(l)
}

fn on_cancel(w: &Worker, payload: &str) {
    let Ok(id) = payload.parse::<i64>() else {
        return;
    };
    if let Some(r) = w.running.lock().expect("running lock").get(&id) {
        tracing::info!(job_id = id, "cancel requested: stopping the job");
        r.stop(StopReason::Requested);
    }
}

async fn maintenance_loop(w: Arc<Worker>, stop: CancellationToken) {
    let prune_after = Duration::from_secs_f64(w.cfg.prune_after_hours.max(0.0) * 3600.0);
    let mut ticks: u64 = 0;
    while pause(w.cfg.lease() / 2, &stop).await {
        if let Err(e) = maintenance::rescue_expired(w.pool(), w.cfg.lease()).await {
            tracing::warn!(error = %e, "rescuing expired jobs failed");
        }
        ticks += 1;
        if ticks % 120 == 1 {
            match maintenance::prune_finished(w.pool(), prune_after, 10_000).await {
                Ok(n) if n > 0 => tracing::info!(pruned = n, "pruned finished jobs"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "pruning finished jobs failed"),
            }
            if let Err(e) = workers::prune(w.pool()).await {
                tracing::warn!(error = %e, "pruning the worker registry failed");
            }
        }
    }
}
