//! Part (a): GraphQL queries over HTTP from N concurrent clients for a fixed time, each response
//! checked, each latency recorded.
//!
//! ```text
//! for each scenario (backups pages with statistics, backup(id), jobs pages):
//!     one untimed full walk: every page, counts and order checked against the catalog
//!     N clients, each: loop until the deadline { send; time until the body is parsed; check }
//!     requests/s, p50/p95/p99/max, and the CPU of the API, its Postgres backends and this process
//! ```

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::sys::{self, Percentiles};
use super::{Expect, Target};

/// The dashboard's backups page (`api/assets/backups.js`) with the CLI's statistics.
pub const BACKUPS: &str = "query($after: String, $limit: Int) {
  backups(limit: $limit, after: $after) {
    nodes { id backupType status source createdAt completedAt error
            sizes { storedBytes plainBytes } verification { status level }
            storage { localAvailable driveAvailable } }
    pageInfo { endCursor hasNextPage }
    statistics { totalBackups byType byStatus } } }";

/// One backup as `cellar backup show` and the dashboard's detail read it.
pub const BACKUP: &str = "query($id: ID!) {
  backup(id: $id) { id backupType status source createdAt completedAt tableCount totalRows
    sizes { plainBytes storedBytes } tables { schema name rows }
    verification { status level summary { totalRecords tablesWithData totalTables } }
    storage { localAvailable driveAvailable } warnings error } }";

/// The dashboard's jobs list (`api/assets/jobs.js`, its `FIELDS`), paged.
pub const JOBS: &str = "query($after: String, $limit: Int) {
  jobs(limit: $limit, after: $after) {
    nodes { id kind state attempt maxAttempts cancelRequested createdAt finishedAt error
            progress { phase percent bytesDone bytesTotal throughput eta } backup { id } }
    pageInfo { endCursor hasNextPage } } }";

/// Which query a scenario sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// `backups` pages (with `after`) and statistics.
    Backups,
    /// `backup(id)` of random ids.
    Backup,
    /// `jobs` pages (with `after`).
    Jobs,
}

impl Scenario {
    /// How the report names it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Backups => "backups (page + statistics)",
            Self::Backup => "backup(id)",
            Self::Jobs => "jobs (page)",
        }
    }
}

/// One scenario at one concurrency.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub scenario: Scenario,
    pub clients: usize,
    pub requests: usize,
    pub rps: f64,
    pub latency: Percentiles,
    /// CPU as % of one core over the run: the API, its Postgres backends, this process.
    pub cpu: [f64; 3],
}

/// Runs `scenario` with `clients` clients for `secs` seconds (after the untimed walk).
pub async fn run(
    t: &Target,
    x: &Expect,
    scenario: Scenario,
    clients: usize,
    secs: f64,
) -> Result<Outcome, String> {
    if scenario != Scenario::Backup {
        walk(t, x, scenario).await?;
    }
    let cpu0 = t.cpu().await;
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (t, x) = (t.clone(), x.clone());
        tasks.push(tokio::spawn(async move {
            client(&t, &x, scenario, c, deadline).await
        }));
    }
    let mut ms = Vec::new();
    for task in tasks {
        ms.extend(task.await.map_err(|e| e.to_string())??);
    }
    let wall = start.elapsed();
    let cpu = t.cpu().await.since(&cpu0, wall);
    Ok(Outcome {
        scenario,
        clients,
        requests: ms.len(),
        rps: ms.len() as f64 / wall.as_secs_f64(),
        latency: sys::percentiles(&mut ms),
        cpu,
    })
}

/// One client's loop; returns its latencies in milliseconds.
async fn client(
    t: &Target,
    x: &Expect,
    scenario: Scenario,
    seed: usize,
    deadline: Instant,
) -> Result<Vec<f64>, String> {
    let mut ms = Vec::new();
    let mut after: Option<String> = None;
    let mut pick = seed.wrapping_mul(7919);
    while Instant::now() < deadline {
        let sent = Instant::now();
        match scenario {
            Scenario::Backup => {
                pick = (pick + 104_729) % x.backup_ids.len();
                let id = &x.backup_ids[pick];
                let d = t.gql(BACKUP, json!({ "id": id })).await?;
                ms.push(sent.elapsed().as_secs_f64() * 1000.0);
                if d["backup"]["id"].as_str() != Some(id) {
                    return Err(format!("backup({id}) answered {}", d["backup"]["id"]));
                }
            }
            Scenario::Backups | Scenario::Jobs => {
                let (query, field) = list_of(scenario);
                let vars = json!({ "after": after, "limit": x.limit });
                let d = t.gql(query, vars).await?;
                ms.push(sent.elapsed().as_secs_f64() * 1000.0);
                after = check_page(&d[field], x, scenario)?;
            }
        }
    }
    Ok(ms)
}

fn list_of(s: Scenario) -> (&'static str, &'static str) {
    match s {
        Scenario::Jobs => (JOBS, "jobs"),
        _ => (BACKUPS, "backups"),
    }
}

/// Checks one page; returns the cursor of the next (None after the last page).
fn check_page(page: &Value, x: &Expect, s: Scenario) -> Result<Option<String>, String> {
    let nodes = page["nodes"].as_array().ok_or("a page without nodes")?;
    let more = page["pageInfo"]["hasNextPage"].as_bool() == Some(true);
    if more && nodes.len() != x.limit as usize || nodes.is_empty() {
        return Err(format!(
            "a page of {} nodes (limit {})",
            nodes.len(),
            x.limit
        ));
    }
    if s == Scenario::Backups {
        let total = page["statistics"]["totalBackups"].as_i64();
        if total != Some(x.listed_backups) {
            return Err(format!(
                "totalBackups {total:?}, expected {}",
                x.listed_backups
            ));
        }
    }
    Ok(page["pageInfo"]["endCursor"]
        .as_str()
        .filter(|_| more)
        .map(str::to_string))
}

/// Walks every page once: the ids must be exactly the catalog's, newest first.
async fn walk(t: &Target, x: &Expect, s: Scenario) -> Result<(), String> {
    let (query, field) = list_of(s);
    let mut seen: Vec<(String, String)> = Vec::new();
    let mut after = None;
    loop {
        let d = t
            .gql(query, json!({ "after": after, "limit": x.limit }))
            .await?;
        after = check_page(&d[field], x, s)?;
        for n in d[field]["nodes"].as_array().into_iter().flatten() {
            let key = n["createdAt"].as_str().unwrap_or_default().to_string();
            seen.push((key, n["id"].as_str().unwrap_or_default().to_string()));
        }
        if after.is_none() {
            break;
        }
    }
    let expected = match s {
        Scenario::Jobs => x.jobs,
        _ => x.listed_backups,
    };
    if seen.len() as i64 != expected {
        return Err(format!(
            "{}: walked {} rows, expected {expected}",
            s.name(),
            seen.len()
        ));
    }
    let mut ids: Vec<&String> = seen.iter().map(|(_, id)| id).collect();
    ids.sort();
    ids.dedup();
    if ids.len() != seen.len() {
        return Err(format!("{}: a walk returned a row twice", s.name()));
    }
    if s == Scenario::Backups && seen.windows(2).any(|w| w[0] < w[1]) {
        return Err("backups: a walk was not newest first".into());
    }
    Ok(())
}
