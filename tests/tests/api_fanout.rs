//! What fan-out costs the catalog. The hub reads a job row once per NOTIFY whatever the number
//! of subscribers; the job's `backup { ... }` (which the dashboard and `cellar job watch` ask
//! for) must also be read once per update, not once per subscriber, and a page of jobs must read
//! its backups in one query, not one per job. Reads are counted from sqlx's statement events.

mod api_common;

use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use api_common::Api;
use cellar_core::backup::BackupType;
use cellar_core::backup::catalog::{self, BackupRequest};
use cellar_core::queue::{self, NewJob};
use cellar_tests::wait_for;
use serde_json::{Value, json};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::SubscriberExt;

/// `catalog::get`: one backup by id.
static ONE_BACKUP: AtomicUsize = AtomicUsize::new(0);
/// `catalog::get_many`: backups by a list of ids.
static MANY_BACKUPS: AtomicUsize = AtomicUsize::new(0);
/// The two tests count the same statements: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Text(String);

impl Visit for Text {
    fn record_str(&mut self, _: &Field, v: &str) {
        self.0.push_str(v);
    }
    fn record_debug(&mut self, _: &Field, v: &dyn std::fmt::Debug) {
        let _ = write!(self.0, "{v:?}");
    }
}

/// Counts the catalog's backup reads among the statements sqlx reports.
struct CountReads;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for CountReads {
    fn on_event(&self, e: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let mut text = Text(String::new());
        e.record(&mut text);
        if text.0.contains("FROM backup WHERE id = $1") {
            ONE_BACKUP.fetch_add(1, Ordering::SeqCst);
        } else if text.0.contains("FROM backup WHERE id = ANY($1)") {
            MANY_BACKUPS.fetch_add(1, Ordering::SeqCst);
        }
    }
}

fn count_reads() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let only_statements = tracing_subscriber::filter::Targets::new()
            .with_target("sqlx::query", tracing::Level::TRACE);
        let s = tracing_subscriber::registry()
            .with(only_statements)
            .with(CountReads);
        tracing::subscriber::set_global_default(s).expect("the only subscriber");
    });
}

fn reads() -> (usize, usize) {
    (
        ONE_BACKUP.load(Ordering::SeqCst),
        MANY_BACKUPS.load(Ordering::SeqCst),
    )
}

/// A backup and its job, as the API creates them; returns (job id, backup id).
async fn backup_job(api: &Api) -> (i64, String) {
    let req = BackupRequest {
        backup_type: Some(BackupType::Manual),
        source: api_common::SOURCE.into(),
        ..Default::default()
    };
    let (id, job) = catalog::create(&api.pool, &req).await.unwrap();
    (job.id, id.to_string())
}

const FOLLOW: &str = "subscription($id: ID!) { jobProgress(id: $id) { state progress { rowsDone } backup { id status } } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_of_one_job_share_each_updates_backup_read() {
    let _one = SERIAL.lock().await;
    count_reads();
    let api = Api::start().await;
    let (job, backup) = backup_job(&api).await;
    let kinds = ["backup".to_string()];
    let claimed = queue::lease::claim(&api.pool, uuid::Uuid::new_v4(), &kinds, 1)
        .await
        .unwrap();
    let lease = claimed[0].lease;
    const N: usize = 20;
    const UPDATES: usize = 5;
    let items = Arc::new(AtomicUsize::new(0));
    let mut followers = Vec::new();
    for _ in 0..N {
        let (client, items, backup) = (api.client(&api.viewer), items.clone(), backup.clone());
        followers.push(tokio::spawn(async move {
            let mut last = Value::Null;
            client
                .subscribe(FOLLOW, json!({ "id": job }), |d| {
                    assert_eq!(d["jobProgress"]["backup"]["id"], backup.as_str(), "{d}");
                    last = d["jobProgress"].clone();
                    items.fetch_add(1, Ordering::SeqCst);
                    true
                })
                .await
                .expect("subscription");
            last
        }));
    }
    let got = |n: usize| {
        let items = items.clone();
        move || {
            let items = items.clone();
            async move { items.load(Ordering::SeqCst) >= n }
        }
    };
    // Every subscriber has its first item (read on its own, at subscription time).
    wait_for(Duration::from_secs(20), "first items", got(N)).await;
    let before = reads();
    for step in 1..=UPDATES {
        queue::lease::set_progress(&api.pool, &lease, &json!({ "rowsDone": step }))
            .await
            .unwrap();
        wait_for(
            Duration::from_secs(20),
            "every subscriber's update",
            got(N * (1 + step)),
        )
        .await;
    }
    queue::lease::complete(&api.pool, &lease, None)
        .await
        .unwrap();
    for f in followers {
        let last = tokio::time::timeout(Duration::from_secs(20), f)
            .await
            .expect("the subscription ends with the job")
            .unwrap();
        assert_eq!(last["state"], "COMPLETED", "{last}");
    }
    assert_eq!(items.load(Ordering::SeqCst), N * (UPDATES + 2));
    let updates = UPDATES + 1;
    let backup_reads = reads().0 - before.0;
    assert!(
        (1..=updates).contains(&backup_reads),
        "{N} subscribers x {updates} updates read the backup {backup_reads} times: one read per \
         update expected, shared by every subscriber"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_of_jobs_reads_its_backups_in_one_query() {
    let _one = SERIAL.lock().await;
    count_reads();
    let api = Api::start().await;
    let mut expected = std::collections::HashMap::new();
    for _ in 0..30 {
        let (job, backup) = backup_job(&api).await;
        expected.insert(job.to_string(), Value::from(backup));
    }
    let mut conn = api.pool.acquire().await.unwrap();
    let ping = queue::enqueue(&mut conn, &NewJob::new("ping", json!({})))
        .await
        .unwrap();
    expected.insert(ping.id.to_string(), Value::Null);
    let before = reads();
    let q = "{ jobs(limit: 50) { nodes { id kind backup { id status } } } }";
    let (status, body) = api.gql(Some(&api.viewer), q, json!({})).await;
    assert_eq!(status, 200, "{body}");
    let after = reads();
    let nodes = body["data"]["jobs"]["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), expected.len(), "{body}");
    for n in nodes {
        let id = n["id"].as_str().unwrap();
        assert_eq!(n["backup"]["id"], expected[id], "{n}");
    }
    assert_eq!(
        (after.0 - before.0, after.1 - before.1),
        (0, 1),
        "(single reads, batched reads) for one page of 31 jobs"
    );
}
