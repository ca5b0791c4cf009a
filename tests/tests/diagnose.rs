//! `diagnose` names each broken dependency a test breaks (a source on a closed port or
//! dropped, a role that cannot read a table, a replaced key, a backup directory under a
//! regular file, Drive refusing, no live worker) and reports all ok on a healthy setup; no
//! detail carries a secret.

use std::path::PathBuf;
use std::sync::Arc;

use cellar_core::backup::BackupSettings;
use cellar_core::backup::catalog::{self, BackupRequest};
use cellar_core::format::KeyRing;
use cellar_core::health::diagnose::{self, DiagnoseSettings, Diagnosis, ProbeStatus, Setup};
use cellar_core::storage::DriveSettings;
use cellar_tests::TestDb;
use cellar_tests::fake_drive::{FakeDrive, FaultPlan, MY_DRIVE_FOLDER, SHARED_FOLDER};
use cellar_worker::{RunOnce, Worker, WorkerConfig};
use sqlx::PgPool;

/// A catalog with one completed backup of a small source, a key file, a fake Drive and a
/// registered worker.
struct Fixture {
    catalog_db: TestDb,
    pool: PgPool,
    source: TestDb,
    dir: tempfile::TempDir,
    key_file: PathBuf,
    key: String,
    settings: BackupSettings,
    drive: FakeDrive,
}

async fn fixture() -> Fixture {
    let source = TestDb::empty().await;
    let s = sqlx::PgPool::connect(source.url.expose()).await.unwrap();
    sqlx::raw_sql(
        "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 100) g;
         CREATE TABLE secret (id int); ALTER TABLE secret ENABLE ROW LEVEL SECURITY;",
    )
    .execute(&s)
    .await
    .unwrap();
    s.close().await;
    let (catalog_db, pool) = TestDb::catalog().await;
    let dir = tempfile::tempdir().unwrap();
    let key = KeyRing::generate_entry();
    let key_file = dir.path().join("master.key");
    std::fs::write(&key_file, &key).unwrap();
    let mut settings = cellar_tests::backup_settings(&source, &dir.path().join("backups"), &key);
    settings.encryption_key = None;
    settings.encryption_key_file = Some(key_file.clone());
    let env = settings.build(pool.clone(), &catalog_db.url).unwrap();
    let mut w = Worker::new(pool.clone(), WorkerConfig::default());
    cellar_worker::handlers::register_all(&mut w, env);
    let w = Arc::new(w);
    w.announce().await.unwrap();
    let req = BackupRequest {
        source: "src".into(),
        ..Default::default()
    };
    catalog::create(&pool, &req).await.unwrap();
    while w.run_once().await.unwrap() != RunOnce::Empty {}
    Fixture {
        catalog_db,
        pool,
        source,
        dir,
        key_file,
        key,
        settings,
        drive: FakeDrive::start().await,
    }
}

impl Fixture {
    fn drive(&self, folder: &str) -> DriveSettings {
        self.drive.settings(self.dir.path(), folder)
    }

    async fn run(&self, backup: &BackupSettings, drive: &DriveSettings) -> Diagnosis {
        let d = DiagnoseSettings {
            min_free_mib: 1,
            probe_timeout_secs: 20.0,
        };
        let setup = Setup::new(self.pool.clone(), &self.catalog_db.url, backup, drive, &d);
        let out = diagnose::run_all(&setup, "test".into()).await;
        let text = serde_json::to_string(&out).unwrap();
        assert!(!text.contains(&self.key), "the key leaked: {text}");
        assert!(
            !text.contains("PRIVATE KEY"),
            "the Drive key leaked: {text}"
        );
        out
    }
}

fn status(d: &Diagnosis, name: &str) -> ProbeStatus {
    d.probe(name)
        .unwrap_or_else(|| panic!("no probe {name}: {d:#?}"))
        .status
}

fn detail<'a>(d: &'a Diagnosis, name: &str) -> &'a str {
    &d.probe(name).unwrap().detail
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_ok_on_a_healthy_setup() {
    let f = fixture().await;
    let d = f.run(&f.settings, &f.drive(SHARED_FOLDER)).await;
    for p in &d.probes {
        assert_eq!(p.status, ProbeStatus::Ok, "{p:#?}");
        assert!(p.fix.is_none());
    }
    assert_eq!(d.status, ProbeStatus::Ok);
    let names: Vec<&str> = d.probes.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "catalog",
            "workers",
            "source src",
            "pg_dump src",
            "encryption key",
            "local storage",
            "google drive"
        ]
    );
    assert!(
        detail(&d, "source src").contains("all 2 tables readable"),
        "{d:#?}"
    );
    assert!(detail(&d, "encryption key").contains("MANIFEST"), "{d:#?}");
    // The Drive probe wrote, read and deleted its object: nothing is left behind.
    assert!(f.drive.files().is_empty(), "{:?}", f.drive.files());
    let methods: Vec<String> = f.drive.log().iter().map(|e| e.method.clone()).collect();
    assert!(methods.contains(&"DELETE".to_string()), "{methods:?}");
    // Nor in the backup directory.
    let leftovers: Vec<_> = std::fs::read_dir(f.dir.path().join("backups"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".cellar-probe"))
        .collect();
    assert!(leftovers.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_or_unreachable_source_fails_its_probe() {
    let f = fixture().await;
    let no_drive = DriveSettings::default();
    let mut s = f.settings.clone();
    s.source_url = Some("src=postgres://postgres:hunter2@127.0.0.1:1/app".into());
    let d = f.run(&s, &no_drive).await;
    assert_eq!(status(&d, "source src"), ProbeStatus::Failed);
    assert!(detail(&d, "source src").contains("127.0.0.1:1"), "{d:#?}");
    assert!(
        !serde_json::to_string(&d).unwrap().contains("hunter2"),
        "password leaked"
    );
    assert_eq!(status(&d, "pg_dump src"), ProbeStatus::Skipped);
    assert_eq!(status(&d, "google drive"), ProbeStatus::Skipped);
    assert_eq!(d.status, ProbeStatus::Failed);

    let gone = TestDb::empty().await;
    s.source_url = Some(format!("src={}", gone.url.expose()));
    let name = gone.name.clone();
    drop(gone);
    let d = f.run(&s, &no_drive).await;
    assert_eq!(status(&d, "source src"), ProbeStatus::Failed);
    assert!(detail(&d, "source src").contains(&name), "{d:#?}");
    assert!(
        d.probe("source src")
            .unwrap()
            .fix
            .as_deref()
            .unwrap()
            .contains("CELLAR_SOURCE_URL")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_that_cannot_read_every_table_fails_with_the_grants_to_run() {
    let f = fixture().await;
    let role = format!(
        "cellar_ro_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    cellar_tests::psql_admin(&format!("CREATE ROLE {role} LOGIN"));
    let s = sqlx::PgPool::connect(f.source.url.expose()).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "GRANT SELECT ON secret TO {role}"
    )))
    .execute(&s)
    .await
    .unwrap();
    let mut settings = f.settings.clone();
    let url = f
        .source
        .url
        .expose()
        .replacen("postgres@", &format!("{role}@"), 1);
    settings.source_url = Some(format!("src={url}"));
    let d = f.run(&settings, &DriveSettings::default()).await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "REVOKE ALL ON secret FROM {role}"
    )))
    .execute(&s)
    .await
    .unwrap();
    s.close().await;
    cellar_tests::psql_admin(&format!("DROP ROLE {role}"));
    let p = d.probe("source src").unwrap();
    assert_eq!(p.status, ProbeStatus::Failed, "{p:#?}");
    assert!(p.detail.contains("public.t (no SELECT)"), "{p:#?}");
    assert!(
        p.detail
            .contains("public.secret (row-level security applies)"),
        "{p:#?}"
    );
    let fix = p.fix.as_deref().unwrap();
    assert!(
        fix.contains(&format!(
            "GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}"
        )),
        "{fix}"
    );
    assert!(fix.contains("BYPASSRLS"), "{fix}");
    assert_eq!(status(&d, "pg_dump src"), ProbeStatus::Ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_key_cannot_open_the_newest_backup() {
    let f = fixture().await;
    std::fs::write(&f.key_file, KeyRing::generate_entry()).unwrap();
    let d = f.run(&f.settings, &DriveSettings::default()).await;
    let p = d.probe("encryption key").unwrap();
    assert_eq!(p.status, ProbeStatus::Failed, "{p:#?}");
    assert!(p.detail.contains("cannot be opened"), "{p:#?}");
    assert!(p.fix.as_deref().unwrap().contains("CELLAR_ENCRYPTION_KEY"));
    assert_eq!(status(&d, "local storage"), ProbeStatus::Ok);

    std::fs::remove_file(&f.key_file).unwrap();
    let d = f.run(&f.settings, &DriveSettings::default()).await;
    assert_eq!(status(&d, "encryption key"), ProbeStatus::Failed);
    assert!(
        detail(&d, "encryption key").contains("CELLAR_ENCRYPTION_KEY_FILE"),
        "{d:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_directory_that_cannot_be_created_fails() {
    let f = fixture().await;
    // Root ignores permission bits: a path through a regular file fails for everyone.
    let file = f.dir.path().join("plain-file");
    std::fs::write(&file, "not a directory").unwrap();
    let mut s = f.settings.clone();
    s.backup_dir = file.join("backups");
    let d = f.run(&s, &DriveSettings::default()).await;
    let p = d.probe("local storage").unwrap();
    assert_eq!(p.status, ProbeStatus::Failed, "{p:#?}");
    assert!(p.detail.contains("cannot create"), "{p:#?}");
    assert!(p.fix.as_deref().unwrap().contains("CELLAR_BACKUP_DIR"));

    // A threshold above the free space warns.
    let setup = Setup::new(
        f.pool.clone(),
        &f.catalog_db.url,
        &f.settings,
        &DriveSettings::default(),
        &DiagnoseSettings {
            min_free_mib: u64::MAX >> 21,
            probe_timeout_secs: 20.0,
        },
    );
    let d = diagnose::run_all(&setup, "test".into()).await;
    assert_eq!(status(&d, "local storage"), ProbeStatus::Warning, "{d:#?}");
    assert_eq!(d.status, ProbeStatus::Warning);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_drive_fails_its_probe() {
    let f = fixture().await;
    let d = f.run(&f.settings, &f.drive(MY_DRIVE_FOLDER)).await;
    let p = d.probe("google drive").unwrap();
    assert_eq!(p.status, ProbeStatus::Failed, "{p:#?}");
    assert!(p.detail.contains("writing a probe object failed"), "{p:#?}");
    assert!(p.fix.as_deref().unwrap().contains("shared drive"));

    f.drive.set_faults(FaultPlan::random(1.0, 7));
    let d = f.run(&f.settings, &f.drive(SHARED_FOLDER)).await;
    assert_eq!(status(&d, "google drive"), ProbeStatus::Failed, "{d:#?}");

    f.drive.set_faults(FaultPlan::default());
    let mut bad = f.drive(SHARED_FOLDER);
    bad.google_drive_backup_folder_id = Some("no-such-folder".into());
    let d = f.run(&f.settings, &bad).await;
    assert_eq!(status(&d, "google drive"), ProbeStatus::Failed, "{d:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_live_worker_fails_the_workers_probe() {
    let f = fixture().await;
    sqlx::query("UPDATE worker SET stopped_at = now()")
        .execute(&f.pool)
        .await
        .unwrap();
    let d = f.run(&f.settings, &DriveSettings::default()).await;
    let p = d.probe("workers").unwrap();
    assert_eq!(p.status, ProbeStatus::Failed, "{p:#?}");
    assert!(p.fix.as_deref().unwrap().contains("cellar-worker"));
}
