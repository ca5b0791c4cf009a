//! Cellar's core: everything that is not HTTP, GraphQL or a binary's `main`.
//!
//! # Layout
//! - [`auth`]: API tokens (stored hashed) and roles.
//! - [`audit`]: the audit trail of API mutations, secrets scrubbed.
//! - [`backup`]: taking and verifying backups: orchestration over dump, format and storage.
//! - `bufpool`: COPY buffers recycled from compressed segments back to the lanes.
//! - [`config`]: configuration from the environment, shared by the binaries (clap groups).
//! - [`db`]: connecting to the catalog database (creating it when missing) and migrating it.
//! - [`queue`]: the Postgres job queue (enqueue, claim, heartbeat, fenced writes, rescue).
//! - [`storage`]: the `Storage` trait, its backends and their conformance suite.
//! - [`http`]: the HTTP client (rustls with the ring provider installed).
//! - [`format`]: the backup format: segments, gzip, AES-256-GCM frames, keys, the manifest.
//! - [`restore`]: restoring a whole database (built aside, swapped in) or chosen tables (one
//!   transaction), after a safety backup.
//! - [`health`]: health judged from the catalog, live diagnose probes, Prometheus metrics,
//!   the worker registry.
//! - [`dump`]: reading a source database at one snapshot: schema, parallel COPY, sequences.
//! - [`schedule`]: cron schedules in time zones, fired exactly once by every worker's tick.
//! - [`retention`]: per-type retention policies, the keep/delete plan, deletes through the queue.
//! - [`sweep`]: backups and restores whose job was cancelled or discarded, finished as failed.
//! - [`telemetry`]: tracing set-up (human or JSON logs).

pub mod audit;
pub mod auth;
pub mod backup;
pub(crate) mod bufpool;
pub mod config;
pub mod db;
pub mod dump;
pub mod format;
pub mod health;
pub mod http;
pub mod queue;
pub mod restore;
pub mod retention;
pub mod schedule;
pub mod storage;
pub mod sweep;
pub mod telemetry;
