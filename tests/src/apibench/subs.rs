//! Part (b): many websocket subscriptions (graphql-transport-ws) held open on one API process
//! while jobs progress through the worker's own fenced writes.
//!
//! ```text
//! create K backups and their jobs, claim them (and a sentinel job) as a worker would
//! open S websockets: S - E follow jobProgress(job i mod K), E follow jobEvents
//! write the sentinel's progress until every subscriber is registered
//! hold them idle for a while: the API's and Postgres' CPU, reads per second
//! U times, every `interval`: write the progress of the K jobs (each write NOTIFYs), noting the
//!     time each write was acknowledged; then complete the K jobs
//! every subscriber must see the final state; fan-out latency = receive - acknowledged
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cellar_core::backup::BackupType;
use cellar_core::backup::catalog::{self, BackupRequest};
use cellar_core::queue::{self, Lease, NewJob};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::sys::{self, Percentiles};
use super::{Reads, Target};

/// The dashboard's `jobProgress` subscription (`api/assets/jobs.js`, its `FIELDS`).
pub const FOLLOW: &str = "subscription($id: ID!) { jobProgress(id: $id) {
  id kind state attempt maxAttempts cancelRequested createdAt finishedAt error
  progress { phase percent bytesDone bytesTotal rowsDone throughput eta } backup { id } } }";

/// The dashboard's `jobEvents` subscription, with the progress that identifies each write.
pub const EVENTS: &str = "subscription { jobEvents { id state job { progress { rowsDone } } } }";

/// How many subscriptions, on how many jobs, how many writes.
#[derive(Clone, Debug)]
pub struct SubsConfig {
    /// Websocket connections, one subscription each.
    pub subscribers: usize,
    /// Of which follow `jobEvents` (the rest follow `jobProgress`).
    pub events: usize,
    /// Jobs progressing at once.
    pub jobs: usize,
    /// Progress writes per job.
    pub steps: usize,
    /// Between two writes of one job (the worker throttles to 4 a second).
    pub interval: Duration,
    /// How long the open subscriptions are held before the jobs progress.
    pub hold: Duration,
}

/// What part (b) measured.
#[derive(Clone, Debug, Default)]
pub struct SubsOutcome {
    pub subscribers: usize,
    pub connect_secs: f64,
    /// Updates expected (one per write per interested subscriber) and delivered.
    pub expected: usize,
    pub delivered: usize,
    /// Subscribers that saw every job they follow reach its final state.
    pub finished: usize,
    pub progress_latency: Percentiles,
    pub events_latency: Percentiles,
    pub final_latency: Percentiles,
    /// API RSS in MiB: before connecting, with every subscription open, peak, after they closed.
    pub rss: [f64; 4],
    /// CPU % of one core (API, its Postgres backends, this process) while held idle...
    pub idle_cpu: [f64; 3],
    /// ... and while the jobs progressed.
    pub busy_cpu: [f64; 3],
    /// Catalog table scans per second (api_token, job, backup) while idle and while busy
    /// (busy: over the middle half of the writes, the worker's own writes not subtracted).
    pub idle_reads: [f64; 3],
    pub busy_reads: [f64; 3],
    /// Job writes (one NOTIFY each) per second over that same window.
    pub notify_rate: f64,
    pub busy_secs: f64,
    /// The first few subscribers that did not end well, and how.
    pub problems: Vec<String>,
}

/// One message a subscriber received: job, progress step (`rowsDone`), state, when.
type Seen = (i64, i64, String, Instant);

/// What one subscriber recorded.
struct Client {
    /// `None` for jobEvents, else the followed job.
    follows: Option<i64>,
    seen: Vec<Seen>,
    /// The subscription ended cleanly: the server's `complete` after the final state
    /// (jobProgress), or every job's final state seen (jobEvents).
    completed: bool,
    /// How it ended, for the report when it did not end well.
    end: &'static str,
}

/// Runs part (b) against `t`.
pub async fn run(t: &Target, cfg: &SubsConfig) -> Result<SubsOutcome, String> {
    let need = cfg.subscribers as u64 + 200;
    if sys::open_files_limit() < need {
        return Err(format!(
            "{} subscriptions need at least {need} open files here: raise `ulimit -n`",
            cfg.subscribers
        ));
    }
    let (leases, sentinel) = start_jobs(t, cfg.jobs).await?;
    let ids: Vec<i64> = leases.iter().map(|l| l.id).collect();
    let mut out = SubsOutcome {
        subscribers: cfg.subscribers,
        ..Default::default()
    };
    out.rss[0] = sys::rss_mib(t.api_pid).0;
    let ready = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let clients = connect_all(t, cfg, &ids, sentinel.id, &ready).await?;
    register(t, &sentinel, cfg.subscribers, &ready).await?;
    out.connect_secs = started.elapsed().as_secs_f64();
    out.rss[1] = sys::rss_mib(t.api_pid).0;

    // The reads made while subscribing reach Postgres' statistics up to 10 s late (an idle
    // backend flushes them on a timer): the idle figures cover the second half of the hold.
    tokio::time::sleep(cfg.hold / 2).await;
    let (cpu0, reads0, t0) = (t.cpu().await, t.reads().await, Instant::now());
    tokio::time::sleep(cfg.hold - cfg.hold / 2).await;
    (out.idle_cpu, out.idle_reads) = (
        t.cpu().await.since(&cpu0, t0.elapsed()),
        t.reads().await.rate_since(&reads0, t0.elapsed()),
    );

    let (cpu0, t0) = (t.cpu().await, Instant::now());
    let (acks, window) = drive(t, cfg, &leases).await?;
    let mut recorded = Vec::new();
    for c in clients {
        let c = tokio::time::timeout(Duration::from_secs(60), c)
            .await
            .map_err(|_| "a subscriber did not finish within 60 s of the last write")?
            .map_err(|e| e.to_string())??;
        recorded.push(c);
    }
    out.busy_secs = t0.elapsed().as_secs_f64();
    out.busy_cpu = t.cpu().await.since(&cpu0, t0.elapsed());
    if let Some(((a, ra), (b, rb), writes)) = window {
        out.busy_reads = rb.rate_since(&ra, b - a);
        out.notify_rate = writes as f64 / (b - a).as_secs_f64();
    }
    out.rss[2] = sys::rss_mib(t.api_pid).1;
    out.rss[3] = sys::rss_mib(t.api_pid).0;
    score(&mut out, &recorded, &ids, &acks, cfg.steps);
    queue::lease::complete(&t.pool, &sentinel, None)
        .await
        .map_err(|e| e.to_string())?;
    Ok(out)
}

/// K backups with their jobs (through the catalog, as the API creates them) and a sentinel job,
/// all claimed by one made-up worker.
async fn start_jobs(t: &Target, k: usize) -> Result<(Vec<Lease>, Lease), String> {
    let e = |e: &dyn std::fmt::Display| e.to_string();
    for _ in 0..k {
        let req = BackupRequest {
            backup_type: Some(BackupType::Manual),
            source: "app".into(),
            ..Default::default()
        };
        let (id, _) = catalog::create(&t.pool, &req).await.map_err(|x| e(&x))?;
        catalog::mark_running(&t.pool, &id)
            .await
            .map_err(|x| e(&x))?;
    }
    let mut conn = t.pool.acquire().await.map_err(|x| e(&x))?;
    queue::enqueue(&mut conn, &NewJob::new("bench.sentinel", json!({})))
        .await
        .map_err(|x| e(&x))?;
    drop(conn);
    let kinds = ["backup".to_string(), "bench.sentinel".to_string()];
    let worker = uuid::Uuid::new_v4();
    let claimed = queue::lease::claim(&t.pool, worker, &kinds, k as i64 + 1)
        .await
        .map_err(|x| e(&x))?;
    if claimed.len() != k + 1 {
        return Err(format!(
            "claimed {} jobs, expected {}",
            claimed.len(),
            k + 1
        ));
    }
    let (mut jobs, mut sentinel) = (Vec::new(), None);
    for c in claimed {
        match c.kind.as_str() {
            "backup" => jobs.push(c.lease),
            _ => sentinel = Some(c.lease),
        }
    }
    jobs.sort_by_key(|l| l.id);
    Ok((jobs, sentinel.ok_or("no sentinel job")?))
}

/// Opens every websocket (64 handshakes at a time); each subscriber then runs in its own task.
async fn connect_all(
    t: &Target,
    cfg: &SubsConfig,
    ids: &[i64],
    sentinel: i64,
    ready: &Arc<AtomicUsize>,
) -> Result<Vec<tokio::task::JoinHandle<Result<Client, String>>>, String> {
    let gate = Arc::new(Semaphore::new(64));
    let mut opening = Vec::new();
    for i in 0..cfg.subscribers {
        let follows = (i >= cfg.events).then(|| ids[i % ids.len()]);
        let (t, gate, ready) = (t.clone(), gate.clone(), ready.clone());
        let all: Vec<i64> = ids.to_vec();
        opening.push(tokio::spawn(async move {
            let permit = gate.acquire_owned().await.map_err(|e| e.to_string())?;
            let ws = open(&t, follows).await?;
            drop(permit);
            Ok::<_, String>(tokio::spawn(listen(ws, follows, all, sentinel, ready)))
        }));
    }
    let mut clients = Vec::new();
    for o in opening {
        clients.push(o.await.map_err(|e| e.to_string())??);
    }
    Ok(clients)
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Connects, authenticates (`connectionParams.token`) and subscribes.
async fn open(t: &Target, follows: Option<i64>) -> Result<Ws, String> {
    let mut req = format!("{}/graphql/ws", t.url.replacen("http", "ws", 1))
        .into_client_request()
        .map_err(|e| e.to_string())?;
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "graphql-transport-ws".parse().expect("header value"),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .map_err(|e| format!("websocket connect: {e}"))?;
    let init = json!({"type": "connection_init", "payload": {"token": t.token}});
    ws.send(Message::text(init.to_string()))
        .await
        .map_err(|e| e.to_string())?;
    let ack = ws.next().await.ok_or("closed before connection_ack")?;
    let ack = ack.map_err(|e| e.to_string())?.to_string();
    if !ack.contains("connection_ack") {
        return Err(format!("expected connection_ack, got {ack}"));
    }
    let payload = match follows {
        Some(id) => json!({"query": FOLLOW, "variables": {"id": id.to_string()}}),
        None => json!({"query": EVENTS}),
    };
    let sub = json!({"id": "1", "type": "subscribe", "payload": payload});
    ws.send(Message::text(sub.to_string()))
        .await
        .map_err(|e| e.to_string())?;
    Ok(ws)
}

/// Records every message until the subscriber has seen all it waits for.
async fn listen(
    mut ws: Ws,
    follows: Option<i64>,
    jobs: Vec<i64>,
    sentinel: i64,
    ready: Arc<AtomicUsize>,
) -> Result<Client, String> {
    let mut c = Client {
        follows,
        seen: Vec::new(),
        completed: false,
        end: "the connection ended",
    };
    let mut registered = false;
    // A lagging hub re-reads a row after a later change and may publish a final state twice.
    let mut finals = std::collections::HashSet::new();
    while let Some(msg) = ws.next().await {
        let at = Instant::now();
        let text = match msg.map_err(|e| e.to_string())? {
            Message::Text(t) => t,
            Message::Close(_) => {
                c.end = "the server closed the websocket";
                break;
            }
            _ => continue,
        };
        let m: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        match m["type"].as_str().unwrap_or_default() {
            "next" => {}
            "complete" => {
                c.completed = true;
                c.end = "the server completed the subscription";
                break;
            }
            "ping" => {
                let pong = json!({"type": "pong"}).to_string();
                ws.send(Message::text(pong))
                    .await
                    .map_err(|e| e.to_string())?;
                continue;
            }
            _ => return Err(format!("subscriber got {text}")),
        }
        let d = &m["payload"]["data"];
        let (job, progress) = match follows {
            Some(_) => (&d["jobProgress"], &d["jobProgress"]["progress"]),
            None => (&d["jobEvents"], &d["jobEvents"]["job"]["progress"]),
        };
        let id: i64 = job["id"].as_str().and_then(|s| s.parse().ok()).unwrap_or(0);
        let state = job["state"].as_str().unwrap_or_default().to_string();
        if !registered && (follows.is_some() || id == sentinel) {
            registered = true;
            ready.fetch_add(1, Ordering::Relaxed);
        }
        if !jobs.contains(&id) {
            continue;
        }
        let step = progress["rowsDone"].as_f64().unwrap_or(-1.0) as i64;
        if state == "COMPLETED" {
            finals.insert(id);
        }
        c.seen.push((id, step, state, at));
        if follows.is_none() && finals.len() == jobs.len() {
            let done = json!({"id": "1", "type": "complete"}).to_string();
            ws.send(Message::text(done))
                .await
                .map_err(|e| e.to_string())?;
            c.completed = true;
            c.end = "every final state seen";
            break;
        }
    }
    let _ = ws.close(None).await;
    Ok(c)
}

/// Writes the sentinel's progress every 100 ms until `n` subscribers are registered (a
/// jobEvents subscription has no first item to show it is live).
async fn register(
    t: &Target,
    sentinel: &Lease,
    n: usize,
    ready: &AtomicUsize,
) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut tick = 0;
    while ready.load(Ordering::Relaxed) < n {
        if Instant::now() > deadline {
            let r = ready.load(Ordering::Relaxed);
            return Err(format!(
                "only {r} of {n} subscribers registered within 120 s"
            ));
        }
        tick += 1;
        queue::lease::set_progress(&t.pool, sentinel, &json!({ "rowsDone": tick }))
            .await
            .map_err(|e| e.to_string())?;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// Two snapshots of table scans during the writes, and the writes made between them.
type Window = ((Instant, Reads), (Instant, Reads), usize);

/// The worker's writes: `steps` progress reports per job, then completion. Returns, per job,
/// the acknowledgement time of each write (index = step; `steps + 1` = completion), and the
/// table scans over the middle half of the writes.
async fn drive(
    t: &Target,
    cfg: &SubsConfig,
    leases: &[Lease],
) -> Result<(Vec<Vec<Instant>>, Option<Window>), String> {
    let mut acks = vec![vec![Instant::now(); cfg.steps + 2]; leases.len()];
    let (q1, q3) = (cfg.steps / 4, cfg.steps * 3 / 4);
    let mut first = None;
    let mut window = None;
    let total = 1_000_000_i64 * cfg.steps as i64;
    for step in 1..=cfg.steps {
        let writes = leases.iter().map(|l| {
            let done = total * step as i64 / cfg.steps as i64;
            let p = json!({"phase": "data", "percent": 100.0 * step as f64 / cfg.steps as f64,
                           "bytesDone": done, "bytesTotal": total, "rowsDone": step,
                           "tablesDone": step * 12 / cfg.steps, "tablesTotal": 12,
                           "throughput": 4.0e7, "eta": (cfg.steps - step) as f64 / 4.0});
            async move {
                queue::lease::set_progress(&t.pool, l, &p).await?;
                Ok::<_, queue::QueueError>(Instant::now())
            }
        });
        let done = futures::future::try_join_all(writes)
            .await
            .map_err(|e| e.to_string())?;
        for (job, at) in acks.iter_mut().zip(done) {
            job[step] = at;
        }
        if step == q1 && q1 < q3 {
            first = Some((Instant::now(), t.reads().await));
        } else if step == q3 {
            let writes = (q3 - q1) * leases.len();
            let last = (Instant::now(), t.reads().await);
            window = first.take().map(|f| (f, last, writes));
        }
        tokio::time::sleep(cfg.interval).await;
    }
    for (job, l) in acks.iter_mut().zip(leases) {
        queue::lease::complete(&t.pool, l, Some(json!({"bench": true})))
            .await
            .map_err(|e| e.to_string())?;
        job[cfg.steps + 1] = Instant::now();
    }
    Ok((acks, window))
}

/// Counts deliveries and final states, and computes the latencies.
fn score(
    out: &mut SubsOutcome,
    clients: &[Client],
    ids: &[i64],
    acks: &[Vec<Instant>],
    steps: usize,
) {
    let job_index = |id: i64| ids.iter().position(|j| *j == id);
    let (mut progress, mut events, mut finals) = (Vec::new(), Vec::new(), Vec::new());
    for c in clients {
        let wants: Vec<i64> = c.follows.map_or_else(|| ids.to_vec(), |id| vec![id]);
        out.expected += wants.len() * steps;
        let mut delivered = std::collections::HashSet::new();
        let mut finished = std::collections::HashSet::new();
        for (id, step, state, at) in &c.seen {
            let Some(j) = job_index(*id) else { continue };
            let (slot, into) = if state == "COMPLETED" {
                if !finished.insert(*id) {
                    continue;
                }
                (steps + 1, &mut finals)
            } else if (1..=steps as i64).contains(step) && delivered.insert((*id, *step)) {
                let into = if c.follows.is_some() {
                    &mut progress
                } else {
                    &mut events
                };
                (*step as usize, into)
            } else {
                continue;
            };
            into.push(at.saturating_duration_since(acks[j][slot]).as_secs_f64() * 1000.0);
        }
        out.delivered += delivered.len();
        if c.completed && finished.len() == wants.len() {
            out.finished += 1;
        } else if out.problems.len() < 5 {
            out.problems.push(format!(
                "a {} subscriber saw {} of {} final states and {} messages; {}",
                if c.follows.is_some() {
                    "jobProgress"
                } else {
                    "jobEvents"
                },
                finished.len(),
                wants.len(),
                c.seen.len(),
                c.end
            ));
        }
    }
    out.progress_latency = sys::percentiles(&mut progress);
    out.events_latency = sys::percentiles(&mut events);
    out.final_latency = sys::percentiles(&mut finals);
}
