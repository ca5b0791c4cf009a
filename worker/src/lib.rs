//! Cellar's worker runtime: claims jobs from the Postgres queue (`cellar_core::queue`), runs
//! the handler registered for each job's kind, keeps their leases alive, and records outcomes.
//!
//! # Layout
//! - [`config`]: the worker's settings (`CELLAR_WORKER_*`, `CELLAR_LEASE_SECS`, ...).
//! - [`handler`]: the [`Handler`] trait, the [`JobContext`] a handler gets, [`JobError`].
//! - [`runtime`]: [`Worker`]: the claim loop, `run_once()` for tests, graceful shutdown.
//! - [`keeper`]: background duties: heartbeats, the cancel listener, rescue and pruning.
//! - [`scheduler`]: the scheduler tick (schedules and periodic retention), beside the keeper.
//!
//! Why not apalis: see `docs/ARCHITECTURE.md` ("Worker runtime"). In short, apalis 1.0's
//! custom backend is a fetch stream plus an ack sink; lease fencing on `(id, attempt,
//! locked_by)`, per-job heartbeats that carry cancellation, and release-without-charge on
//! shutdown would all live outside it, so it would add a dependency tree and no semantics.

mod completer;
pub mod config;
pub mod handler;
pub mod handlers;
pub mod keeper;
pub mod runtime;
pub mod scheduler;

pub use config::WorkerConfig;
pub use handler::{Handler, JobContext, JobError, JobOutput};
pub use runtime::{RunOnce, Worker};
