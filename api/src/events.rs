//! Live job events: ONE Postgres `LISTEN cellar_job_event` per API process, fanned out in memory
//! to every subscription through a tokio broadcast channel.
//!
//! ```text
//! loop:
//!     connect a listener, LISTEN cellar_job_event
//!     if the previous connection was lost: re-read every job that is unfinished or finished
//!         since shortly before the loss, and publish them (so no final state is missed)
//!     for each notification {id, ...}: when anyone subscribes, read the job row once and
//!         publish it (one read per event, however many subscribers), with an empty slot for
//!         its backup that the first subscriber asking for `backup { ... }` fills for all
//!     on a lost connection or error: note the time, back off, start again
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cellar_core::backup::catalog::BackupRow;
use cellar_core::queue::{self, CHANNEL_EVENT, JobRow};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// Jobs re-read after a reconnect, at most.
const RESYNC_LIMIT: i64 = 2_000;
/// How far before the detected loss the re-read reaches (clock skew, detection delay).
const RESYNC_MARGIN_SECS: i64 = 60;

/// A job's backup, read at most once for one version of the job row and shared by everyone
/// holding that version (every subscriber of one published update, or one page's nodes).
pub type BackupSlot = Arc<tokio::sync::OnceCell<Option<BackupRow>>>;

/// One published version of a job row. Cheap to clone: every subscriber gets the same row and
/// the same [`BackupSlot`], so N subscribers asking for the job's backup cost one read, not N.
#[derive(Clone)]
pub struct Update {
    pub row: Arc<JobRow>,
    pub backup: BackupSlot,
}

impl From<JobRow> for Update {
    fn from(row: JobRow) -> Self {
        Self {
            row: Arc::new(row),
            backup: BackupSlot::default(),
        }
    }
}

/// The fan-out point: subscriptions receive every published job row.
pub struct Hub {
    tx: broadcast::Sender<Update>,
    reconnects: AtomicU64,
}

#[derive(Deserialize)]
struct Payload {
    id: i64,
}

impl Hub {
    /// Starts the listener task on `pool`; it stops when `stop` is cancelled.
    pub fn start(pool: PgPool, stop: CancellationToken) -> Arc<Hub> {
        let (tx, _) = broadcast::channel(4096);
        let hub = Arc::new(Hub {
            tx,
            reconnects: AtomicU64::new(0),
        });
        tokio::spawn(Arc::clone(&hub).run(pool, stop));
        hub
    }

    /// A receiver of every job row published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Update> {
        self.tx.subscribe()
    }

    /// Live subscriptions (receivers) right now.
    pub fn subscribers(&self) -> usize {
        self.tx.receiver_count()
    }

    /// How many times the listener connection was re-established (for tests and metrics).
    pub fn reconnects(&self) -> u64 {
        self.reconnects.load(Ordering::Relaxed)
    }

    async fn run(self: Arc<Self>, pool: PgPool, stop: CancellationToken) {
        let mut lost_at: Option<DateTime<Utc>> = None;
        let mut backoff = Duration::from_millis(100);
        while !stop.is_cancelled() {
            match self.session(&pool, &stop, &mut lost_at).await {
                Ok(()) => backoff = Duration::from_millis(100),
                Err(e) => {
                    tracing::warn!(error = %e, "job event listener failed; reconnecting");
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
            // The oldest loss not yet re-read from is kept when reconnecting keeps failing.
            lost_at.get_or_insert_with(Utc::now);
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = stop.cancelled() => return,
            }
        }
    }

    /// One listener connection's life. Returns when it is lost (Ok) or fails (Err).
    async fn session(
        &self,
        pool: &PgPool,
        stop: &CancellationToken,
        lost_at: &mut Option<DateTime<Utc>>,
    ) -> Result<(), sqlx::Error> {
        let mut listener = PgListener::connect_with(pool).await?;
        listener.listen(CHANNEL_EVENT).await?;
        if let Some(at) = lost_at.take() {
            self.reconnects.fetch_add(1, Ordering::Relaxed);
            if let Err(e) = self.resync(pool, at).await {
                *lost_at = Some(at);
                return Err(e);
            }
        }
        loop {
            let n = tokio::select! {
                n = listener.try_recv() => n?,
                _ = stop.cancelled() => return Ok(()),
            };
            let Some(n) = n else {
                tracing::warn!("job event listener lost its connection");
                return Ok(());
            };
            if self.tx.receiver_count() == 0 {
                continue;
            }
            match serde_json::from_str::<Payload>(n.payload()) {
                Ok(p) => self.publish(pool, p.id).await,
                Err(e) => tracing::warn!(error = %e, "unreadable job event payload"),
            }
        }
    }

    async fn publish(&self, pool: &PgPool, id: i64) {
        match queue::get(pool, id).await {
            Ok(row) => {
                let _ = self.tx.send(row.into());
            }
            Err(queue::QueueError::NotFound(_)) => {}
            Err(e) => tracing::warn!(error = %e, job_id = id, "could not read an updated job"),
        }
    }

    async fn resync(&self, pool: &PgPool, lost_at: DateTime<Utc>) -> Result<(), sqlx::Error> {
        let since = lost_at - chrono::Duration::seconds(RESYNC_MARGIN_SECS);
        let rows = match queue::list::changed_since(pool, since, RESYNC_LIMIT).await {
            Ok(rows) => rows,
            Err(queue::QueueError::Db(e)) => return Err(e),
            Err(e) => return Err(sqlx::Error::Protocol(e.to_string())),
        };
        tracing::info!(
            jobs = rows.len(),
            "re-read jobs after the listener reconnected"
        );
        for r in rows {
            let _ = self.tx.send(r.into());
        }
        Ok(())
    }
}
