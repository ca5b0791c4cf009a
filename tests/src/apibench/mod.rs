//! The API load benchmark (`src/bin/bench_api.rs`): the real `cellar-api` process over a fresh
//! catalog seeded with SQL, driven by HTTP clients and websocket subscribers in this process.
//!
//! # Layout
//! - `seed.sql`: N backups, an hour apart, with realistic fields, and the jobs that took them.
//! - [`queries`]: part (a), GraphQL queries from N concurrent clients: requests/s and latency.
//! - [`subs`]: part (b), many subscriptions held open while jobs progress: every subscriber gets
//!   the final state; fan-out latency; the API's memory and CPU.
//! - [`sys`]: `/proc` readings (CPU, RSS, open-files limit) and percentiles.
//! - [`report`]: the Markdown the binary prints.
//!
//! Correctness is checked on every response; any failure makes [`run`] return an error (the
//! smoke test `tests/tests/bench_api_smoke.rs` relies on that, never on timings).

pub mod queries;
pub mod report;
pub mod subs;
pub mod sys;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cellar_core::auth::{self, Role};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::procs::{self, Proc};
use crate::{TestDb, wait_for};

/// What to run.
#[derive(Clone, Debug)]
pub struct Config {
    /// Backups seeded into the catalog (each with its job).
    pub backups: i32,
    /// Page size of the list queries.
    pub limit: i64,
    /// Concurrency levels of part (a).
    pub clients: Vec<usize>,
    /// Seconds each scenario runs at each level.
    pub secs: f64,
    /// Part (b); `subscribers: 0` skips it.
    pub subs: subs::SubsConfig,
}

/// Everything measured.
#[derive(Clone, Debug)]
pub struct Report {
    pub config: Config,
    pub listed_backups: i64,
    pub jobs: i64,
    pub load_before: String,
    pub load_after: String,
    pub queries: Vec<queries::Outcome>,
    pub subs: Option<subs::SubsOutcome>,
    /// Where the API's log is (kept when the run fails).
    pub api_log: PathBuf,
}

/// The API under test and how to reach it.
#[derive(Clone)]
pub struct Target {
    pub url: String,
    pub token: String,
    pub http: reqwest::Client,
    pub api_pid: u32,
    /// The bench's own pool on the catalog (seeding, the worker's writes, statistics).
    pub pool: PgPool,
    pub db: String,
}

/// What the answers must contain.
#[derive(Clone, Debug)]
pub struct Expect {
    pub limit: i64,
    /// Backups `backups` lists without a filter (deleted ones are not listed).
    pub listed_backups: i64,
    pub jobs: i64,
    pub backup_ids: Arc<Vec<String>>,
}

/// CPU used so far by the API, by the catalog's Postgres backends (by pid) and by this process.
pub struct CpuSnap {
    api: Duration,
    pg: HashMap<u32, Duration>,
    me: Duration,
}

impl CpuSnap {
    /// CPU % of one core of each, from `before` to this snapshot, over `wall`.
    pub fn since(&self, before: &CpuSnap, wall: Duration) -> [f64; 3] {
        let pg: Duration = self
            .pg
            .iter()
            .map(|(pid, t)| t.saturating_sub(before.pg.get(pid).copied().unwrap_or_default()))
            .sum();
        [
            sys::percent(self.api.saturating_sub(before.api), wall),
            sys::percent(pg, wall),
            sys::percent(self.me.saturating_sub(before.me), wall),
        ]
    }
}

/// Index and sequential scans so far of `api_token`, `job` and `backup` (Postgres statistics,
/// which lag by up to a second under load).
#[derive(Clone, Copy, Debug, Default)]
pub struct Reads(pub [i64; 3]);

impl Reads {
    /// Scans per second of each table, from `before` to this snapshot.
    pub fn rate_since(&self, before: &Reads, wall: Duration) -> [f64; 3] {
        let s = wall.as_secs_f64().max(1e-9);
        std::array::from_fn(|i| (self.0[i] - before.0[i]) as f64 / s)
    }
}

impl Target {
    /// POSTs a GraphQL request; its `data`, or the errors as a message.
    pub async fn gql(&self, query: &str, vars: Value) -> Result<Value, String> {
        let resp = self
            .http
            .post(format!("{}/graphql", self.url))
            .bearer_auth(&self.token)
            .json(&json!({ "query": query, "variables": vars }))
            .send()
            .await
            .map_err(|e| format!("request: {e}"))?;
        let status = resp.status();
        let body: Value = resp.json().await.map_err(|e| format!("body: {e}"))?;
        if !status.is_success() || body.get("errors").is_some() {
            return Err(format!("HTTP {status}: {body}"));
        }
        Ok(body["data"].clone())
    }

    /// A CPU snapshot (the backends are those connected to the catalog now).
    pub async fn cpu(&self) -> CpuSnap {
        let pids: Vec<i32> = sqlx::query_scalar(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
        )
        .bind(&self.db)
        .fetch_all(&self.pool)
        .await
        .unwrap_or_default();
        CpuSnap {
            api: sys::cpu(self.api_pid),
            pg: pids
                .iter()
                .map(|p| (*p as u32, sys::cpu(*p as u32)))
                .collect(),
            me: sys::cpu(std::process::id()),
        }
    }

    /// Table scans so far (see [`Reads`]).
    pub async fn reads(&self) -> Reads {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT relname::text, coalesce(idx_scan, 0) + coalesce(seq_scan, 0)
             FROM pg_stat_user_tables WHERE relname IN ('api_token', 'job', 'backup')",
        )
        .fetch_all(&self.pool)
        .await
        .unwrap_or_default();
        let get = |n: &str| rows.iter().find(|r| r.0 == n).map_or(0, |r| r.1);
        Reads([get("api_token"), get("job"), get("backup")])
    }
}

/// Seeds a fresh catalog, starts `cellar-api` on it and runs both parts.
pub async fn run(cfg: Config) -> Result<Report, String> {
    let load_before = sys::loadavg();
    // The API under test creates the schema with its own migrations (so an older build is
    // measured with its own indexes); the catalog is seeded once it is ready.
    let db = TestDb::empty().await;
    let (api, url, log) = start_api(&db).await;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(20)
        .connect(db.url.expose())
        .await
        .map_err(|e| e.to_string())?;
    seed(&pool, cfg.backups)
        .await
        .map_err(|e| format!("seeding: {e}"))?;
    let (token, _) = auth::create_token(&pool, "bench", Role::Viewer, None)
        .await
        .map_err(|e| e.to_string())?;
    let t = Target {
        url,
        token,
        http: cellar_core::http::client(),
        api_pid: api.pid(),
        pool: pool.clone(),
        db: db.name.clone(),
    };
    let x = expect(&pool, cfg.limit).await?;
    let mut report = Report {
        config: cfg.clone(),
        listed_backups: x.listed_backups,
        jobs: x.jobs,
        load_before,
        load_after: String::new(),
        queries: Vec::new(),
        subs: None,
        api_log: log,
    };
    use queries::Scenario::*;
    for scenario in [Backups, Backup, Jobs] {
        for &c in &cfg.clients {
            report
                .queries
                .push(queries::run(&t, &x, scenario, c, cfg.secs).await?);
        }
    }
    if cfg.subs.subscribers > 0 {
        report.subs = Some(subs::run(&t, &cfg.subs).await?);
    }
    report.load_after = sys::loadavg();
    drop(api);
    Ok(report)
}

impl Report {
    /// What was wrong, if anything (the numbers are still printed).
    pub fn problems(&self) -> Vec<String> {
        let Some(s) = &self.subs else {
            return Vec::new();
        };
        let mut p = Vec::new();
        if s.finished != s.subscribers {
            p.push(format!(
                "only {} of {} subscribers saw the final state of every job they follow",
                s.finished, s.subscribers
            ));
        }
        p.extend(s.problems.iter().cloned());
        p
    }
}

/// Fills a fresh catalog with `backups` backups and their jobs (`seed.sql`), then ANALYZEs it.
pub async fn seed(pool: &PgPool, backups: i32) -> Result<(), sqlx::Error> {
    sqlx::query(include_str!("seed.sql"))
        .bind(backups)
        .execute(pool)
        .await?;
    sqlx::raw_sql("ANALYZE").execute(pool).await?;
    Ok(())
}

/// Starts the real `cellar-api` on a free port and waits until it is ready.
async fn start_api(db: &TestDb) -> (Proc, String, PathBuf) {
    let port = procs::free_port();
    let dir = std::env::temp_dir().join(format!("cellar-bench-api-{}", db.name));
    std::fs::create_dir_all(&dir).expect("log dir");
    let log = dir.join("api.log");
    let env = [
        ("DATABASE_URL", db.url.expose().to_string()),
        ("CELLAR_LISTEN", format!("127.0.0.1:{port}")),
        ("CELLAR_SOURCE_URL", format!("app={}", db.url.expose())),
    ]
    .map(|(k, v)| (k.to_string(), v));
    let api = procs::spawn("cellar-api", &env, &log);
    let url = format!("http://127.0.0.1:{port}");
    let http = cellar_core::http::client();
    wait_for(Duration::from_secs(60), "the API to be ready", || async {
        let r = http.get(format!("{url}/readyz")).send().await;
        r.is_ok_and(|r| r.status().is_success())
    })
    .await;
    (api, url, log)
}

/// The counts and ids the answers are checked against.
async fn expect(pool: &PgPool, limit: i64) -> Result<Expect, String> {
    let e = |e: sqlx::Error| e.to_string();
    let listed: i64 = sqlx::query_scalar("SELECT count(*) FROM backup WHERE state <> 'deleted'")
        .fetch_one(pool)
        .await
        .map_err(e)?;
    let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM job")
        .fetch_one(pool)
        .await
        .map_err(e)?;
    let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM backup ORDER BY id")
        .fetch_all(pool)
        .await
        .map_err(e)?;
    Ok(Expect {
        limit,
        listed_backups: listed,
        jobs,
        backup_ids: Arc::new(ids),
    })
}
