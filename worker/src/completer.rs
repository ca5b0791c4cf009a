//! Group commit of completions: jobs that finish while one batch is being written are written
//! together by the next, in one fenced `UPDATE`. Under load this turns one round trip per job
//! into one per batch; when idle a completion is written at once (no timer, no delay).

use std::sync::Mutex;

use cellar_core::queue::{Lease, QueueError, lease};
use serde_json::Value;
use sqlx::PgPool;
use tokio::sync::oneshot;
use uuid::Uuid;

struct Pending {
    lease: Lease,
    result: Option<Value>,
    reply: oneshot::Sender<Result<(), QueueError>>,
}

/// Batches completions of one worker's jobs.
#[derive(Default)]
pub(crate) struct Completer {
    pending: Mutex<Vec<Pending>>,
    flushing: tokio::sync::Mutex<()>,
}

/// At most this many completions per statement.
const MAX_BATCH: usize = 1000;

impl Completer {
    /// Records the completion of `lease`; returns once it is written (or refused: lease lost).
    pub(crate) async fn complete(
        &self,
        pool: &PgPool,
        worker: Uuid,
        lease: Lease,
        result: Option<Value>,
    ) -> Result<(), QueueError> {
        let (reply, answer) = oneshot::channel();
        self.pending.lock().expect("pending lock").push(Pending {
            lease,
            result,
            reply,
        });
        {
            // Whoever holds the flush lock writes everything pending, this one's included
            // unless an earlier flusher already took it.
            let _flush = self.flushing.lock().await;
            loop {
                let batch: Vec<Pending> = {
                    let mut p = self.pending.lock().expect("pending lock");
                    let n = p.len().min(MAX_BATCH);
                    p.drain(..n).collect()
                };
                if batch.is_empty() {
                    break;
                }
                flush(pool, worker, batch).await;
            }
        }
        answer.await.unwrap_or(Err(QueueError::LeaseLost {
            id: lease.id,
            attempt: lease.attempt,
        }))
    }
}

async fn flush(pool: &PgPool, worker: Uuid, batch: Vec<Pending>) {
    let done: Vec<(Lease, Option<Value>)> =
        batch.iter().map(|p| (p.lease, p.result.clone())).collect();
    match lease::complete_many(pool, worker, &done).await {
        Ok(written) => {
            let written: std::collections::HashSet<i64> = written.into_iter().collect();
            for p in batch {
                let r = if written.contains(&p.lease.id) {
                    Ok(())
                } else {
                    Err(QueueError::LeaseLost {
                        id: p.lease.id,
                        attempt: p.lease.attempt,
                    })
                };
                let _ = p.reply.send(r);
            }
        }
        Err(e) => {
            let msg = e.to_string();
            for p in batch {
                let _ = p.reply.send(Err(QueueError::Invalid(format!(
                    "completing failed: {msg}"
                ))));
            }
        }
    }
}
