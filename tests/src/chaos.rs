//! Shared by the `chaos_*` tests: trial counts, reproducible seeds, database fingerprints and
//! the checks every fault scenario ends with (nothing stuck, nothing half-listed, no orphans).
//!
//! Trial counts come from `CELLAR_CHAOS_TRIALS` (small by default so CI stays fast;
//! `scripts/chaos` sets 20). Seeds come from `CELLAR_CHAOS_SEED` (default: random), and every
//! trial prints the seed that reproduces it.

use std::collections::BTreeMap;
use std::path::Path;

use rand::SeedableRng;
use rand::rngs::StdRng;
use sqlx::PgPool;

use crate::TestDb;

/// How many trials a scenario runs: `CELLAR_CHAOS_TRIALS`, else `default`.
pub fn trials(default: usize) -> usize {
    std::env::var("CELLAR_CHAOS_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The base seed of a scenario: `CELLAR_CHAOS_SEED`, else random; printed so a failure can be
/// replayed with `CELLAR_CHAOS_SEED=<seed>`.
pub fn base_seed(scenario: &str) -> u64 {
    let seed = std::env::var("CELLAR_CHAOS_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(rand::random::<u32>) as u64;
    eprintln!("chaos {scenario}: CELLAR_CHAOS_SEED={seed}");
    seed
}

/// A generator for trial `n` of a scenario seeded with `base`.
pub fn rng(base: u64, n: usize) -> StdRng {
    StdRng::seed_from_u64(base.wrapping_mul(1_000_003).wrapping_add(n as u64))
}

/// What a trial observed, for the counts printed at the end (and copied to RELIABILITY.md).
#[derive(Default, Debug)]
pub struct Tally(BTreeMap<String, usize>);

impl Tally {
    /// Counts one `outcome`.
    pub fn add(&mut self, outcome: impl Into<String>) {
        *self.0.entry(outcome.into()).or_default() += 1;
    }

    /// Prints `chaos <scenario>: <outcome> x <n>, ...` to stderr (visible with --nocapture).
    pub fn report(&self, scenario: &str) {
        let parts: Vec<String> = self.0.iter().map(|(k, v)| format!("{k} x{v}")).collect();
        eprintln!("chaos {scenario}: {}", parts.join(", "));
    }
}

/// A fingerprint of every user table's rows in `db` (one line per table: schema, name, row count and an md5 of the
/// sorted rows), plus its sequences' values: equal fingerprints mean the same data.
pub async fn fingerprint(db: &TestDb) -> String {
    let pool = cellar_core::db::connect(&db.url, 1)
        .await
        .expect("connect for fingerprint");
    let print = fingerprint_pool(&pool).await;
    pool.close().await;
    print
}

/// [`fingerprint`] over an open pool.
pub async fn fingerprint_pool(pool: &PgPool) -> String {
    let tables: Vec<(String, String)> = sqlx::query_as(
        "SELECT n.nspname::text, c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
           AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1, 2",
    )
    .fetch_all(pool)
    .await
    .expect("list tables");
    let mut out = String::new();
    for (schema, name) in tables {
        let q = format!(
            "SELECT count(*)::text || ':' || coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '') FROM {}.{} t",
            quote(&schema),
            quote(&name)
        );
        let v: String = sqlx::query_scalar(sqlx::AssertSqlSafe(q))
            .fetch_one(pool)
            .await
            .expect("fingerprint a table");
        out.push_str(&format!("{schema}.{name}={v}\n"));
    }
    let seqs: Vec<(String, Option<i64>)> = sqlx::query_as(
        "SELECT schemaname || '.' || sequencename, last_value FROM pg_sequences ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .expect("sequences");
    for (s, v) in seqs {
        out.push_str(&format!("{s}@{v:?}\n"));
    }
    out
}

/// An identifier quoted for SQL (test-side only; the product uses `dump::quote_ident`).
pub fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// Top-level entries of a local backup directory (one per backup id), the temp directory
/// excluded.
pub fn backup_dirs(root: &Path) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut v: Vec<String> = rd
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != ".tmp")
        .collect();
    v.sort();
    v
}

/// Files under `root/.tmp` (in-progress writes; left behind only by a killed writer).
pub fn temp_files(root: &Path) -> usize {
    std::fs::read_dir(root.join(".tmp")).map_or(0, |rd| rd.count())
}

/// Files under `root/<id>/`, recursively (0 when the directory is gone).
pub fn object_files(root: &Path, id: &str) -> usize {
    fn walk(p: &Path) -> usize {
        std::fs::read_dir(p).map_or(0, |rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| match e.file_type() {
                    Ok(t) if t.is_dir() => walk(&e.path()),
                    _ => 1,
                })
                .sum()
        })
    }
    walk(&root.join(id))
}
