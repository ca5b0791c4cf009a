//! Chaos in the surroundings: the catalog Postgres restarted mid-job (a private cluster, never
//! the shared server), the source's connections terminated mid-dump (`pg_terminate_backend`),
//! and the disk filling up during a local write (a 2 MiB tmpfs). In each: the job ends, a
//! backup is either completed and verifiable or failed with a reason and without objects, and
//! the next backup after the fault works.

use std::sync::Arc;
use std::time::Duration;

use cellar_core::backup::catalog::{self, BackupRequest};
use cellar_core::backup::{BackupEnv, BackupId, BackupState, verify};
use cellar_core::queue::JobState;
use cellar_tests::chaos::{self, Tally};
use cellar_tests::pgcluster::Cluster;
use cellar_tests::rig::{self, Rig};
use cellar_tests::wait_for;
use cellar_worker::{Worker, WorkerConfig};
use tokio_util::sync::CancellationToken;

async fn request(pool: &sqlx::PgPool) -> (BackupId, i64) {
    let req = BackupRequest {
        source: "src".into(),
        ..Default::default()
    };
    let (id, job) = catalog::create(pool, &req).await.unwrap();
    (id, job.id)
}

/// Completed and verifiable, or failed with a reason and nothing in storage. Returns the
/// outcome for the tally.
async fn settled(env: &BackupEnv, root: &std::path::Path, id: &BackupId) -> String {
    let b = catalog::get(&env.pool, id).await.unwrap().unwrap();
    match b.state {
        BackupState::Completed => {
            let v = verify::verify(env, id, &()).await.unwrap();
            assert!(v.is_valid(), "{id} listed but invalid: {:?}", v.failures);
            "completed and verified".into()
        }
        BackupState::Failed => {
            let reason = b.error.unwrap_or_default();
            assert!(!reason.is_empty());
            assert_eq!(
                chaos::object_files(root, id.as_str()),
                0,
                "{id} left objects"
            );
            format!("failed: {reason}")
        }
        s => panic!("{id} is still {s:?}"),
    }
}

/// A real worker loop in this process (fast retries); stops when the guard drops.
fn run_worker(env: &BackupEnv) -> tokio_util::sync::DropGuard {
    let cfg = WorkerConfig {
        retry_base_secs: 0.05,
        retry_max_secs: 0.2,
        poll_interval_ms: 50,
        ..WorkerConfig::default()
    };
    let mut w = Worker::new(env.pool.clone(), cfg);
    cellar_worker::handlers::register_all(&mut w, env.clone());
    let stop = CancellationToken::new();
    tokio::spawn(Arc::new(w).run(stop.clone()));
    stop.drop_guard()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_connections_terminated_mid_dump() {
    let n = chaos::trials(2);
    let rig = Rig::new(rig::source(80_000).await).await;
    let env = rig.backup_env();
    let _worker = run_worker(&env);
    let admin = cellar_core::db::connect(&cellar_tests::admin_url(), 1)
        .await
        .unwrap();
    let mut t = Tally::default();
    for _ in 0..n {
        let (id, job) = request(&rig.pool).await;
        let copying =
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND query LIKE 'COPY%'";
        wait_for(Duration::from_secs(60), "a COPY on the source", || async {
            let c: i64 = sqlx::query_scalar(copying)
                .bind(&rig.source.name)
                .fetch_one(&admin)
                .await
                .unwrap();
            c > 0 || rig.job(job).await.state.is_final()
        })
        .await;
        let killed: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
              WHERE datname = $1 AND pid <> pg_backend_pid()) t",
        )
        .bind(&rig.source.name)
        .fetch_one(&admin)
        .await
        .unwrap();
        let row = rig.until_final(job, Duration::from_secs(120)).await;
        let outcome = settled(&env, &rig.backups(), &id).await;
        t.add(format!(
            "{killed} sessions terminated; job {:?} on attempt {}; {outcome}",
            row.state, row.attempt
        ));
    }
    t.report("terminate mid-dump");
}

/// `mount -t tmpfs -o size=..` on `dir`, unmounted when dropped.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &std::path::Path, size: &str) -> Option<Self> {
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("\n!!!!!!!! SKIP: cannot mount a tmpfs (needs root) !!!!!!!!\n");
        }
        ok.then(|| Self(dir.to_path_buf()))
    }

    fn resize(&self, size: &str) {
        let st = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(st.success(), "remount");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_the_backup_cleanly_and_the_next_one_works() {
    let rig = Rig::new(rig::source(80_000).await).await;
    let root = rig.backups();
    std::fs::create_dir_all(&root).unwrap();
    let Some(fs) = Tmpfs::mount(&root, "2m") else {
        return;
    };
    let env = rig.backup_env();
    let _worker = run_worker(&env);
    let (id, job) = request(&rig.pool).await;
    let row = rig.until_final(job, Duration::from_secs(120)).await;
    assert_eq!(row.state, JobState::Discarded, "{row:?}");
    let b = catalog::get(&rig.pool, &id).await.unwrap().unwrap();
    assert_eq!(b.state, BackupState::Failed);
    let reason = b.error.unwrap_or_default();
    assert!(reason.contains("disk full"), "unclear reason: {reason}");
    assert_eq!(
        chaos::object_files(&root, id.as_str()),
        0,
        "partial objects"
    );
    assert_eq!(chaos::temp_files(&root), 0, "temp files left");
    assert!(
        chaos::backup_dirs(&root).is_empty(),
        "{:?}",
        chaos::backup_dirs(&root)
    );
    eprintln!("chaos disk full: {} attempts, {reason}", row.attempt);

    fs.resize("64m");
    let (id, job) = request(&rig.pool).await;
    let row = rig.until_final(job, Duration::from_secs(120)).await;
    assert_eq!(row.state, JobState::Completed, "{row:?}");
    assert_eq!(settled(&env, &root, &id).await, "completed and verified");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalog_restarted_mid_job() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let n = chaos::trials(2);
    let mut rig = Rig::new(rig::source(80_000).await).await;
    let url = cluster.url("cellar");
    rig.pool = cellar_core::db::connect_and_migrate(&url, 8).await.unwrap();
    rig.catalog_url = Some(url.clone());
    let env = cellar_tests::backup_settings(&rig.source, &rig.backups(), &rig.key)
        .build(rig.pool.clone(), &url)
        .unwrap();
    let mut worker = rig.worker();
    let mut t = Tally::default();
    for _ in 0..n {
        let (id, job) = request(&rig.pool).await;
        rig.until_running(job).await;
        cluster.stop();
        // The outage's length: the fault itself, not a wait for a condition.
        tokio::time::sleep(Duration::from_secs(2)).await;
        cluster.restart();
        let row = rig.until_final(job, Duration::from_secs(120)).await;
        assert!(worker.alive(), "the worker died: {}", worker.log_text());
        let outcome = settled(&env, &rig.backups(), &id).await;
        t.add(format!(
            "job {:?} on attempt {}; {outcome}",
            row.state, row.attempt
        ));
    }
    t.report("catalog restart");
    worker.kill();
    drop(rig);
    drop(cluster);
}
