//! Backups end to end through the worker: pagila backed up and verified; any flipped byte of any
//! stored object makes verify name that object; wrong keys and bad sources fail clearly.

use std::path::Path;
use std::sync::Arc;

use cellar_core::backup::catalog::{self, BackupRequest};
use cellar_core::backup::{BackupEnv, BackupId, BackupState, verify};
use cellar_core::format::KeyRing;
use cellar_tests::{TestDb, shared_dir};
use cellar_worker::{RunOnce, Worker, WorkerConfig};

fn load(db: &TestDb, file: &Path) {
    let out = std::process::Command::new("psql")
        .args([
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            db.url.expose(),
            "-f",
        ])
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "loading {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn run_jobs(env: BackupEnv, pool: &sqlx::PgPool) {
    let mut w = Worker::new(pool.clone(), WorkerConfig::default());
    cellar_worker::handlers::register_all(&mut w, env);
    let w = Arc::new(w);
    while w.run_once().await.unwrap() != RunOnce::Empty {}
}

async fn pagila() -> Option<TestDb> {
    let shared = shared_dir()?;
    let db = TestDb::empty().await;
    load(&db, &shared.join("datasets/pagila/pagila-schema.sql"));
    load(&db, &shared.join("datasets/pagila/pagila-data.sql"));
    Some(db)
}

async fn row_total(db: &TestDb) -> i64 {
    let pool = cellar_core::db::connect(&db.url, 2).await.unwrap();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let mut total = 0;
    for t in tables {
        let q = format!("SELECT count(*) FROM ONLY {t}");
        total += sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(q))
            .fetch_one(&pool)
            .await
            .unwrap();
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagila_backs_up_verifies_and_every_flipped_byte_is_named() {
    let Some(source) = pagila().await else { return };
    let (catalog_db, pool) = TestDb::catalog().await;
    let dir = tempfile::tempdir().unwrap();
    let key = KeyRing::generate_entry();
    let env = cellar_tests::backup_settings(&source, dir.path(), &key)
        .build(pool.clone(), &catalog_db.url)
        .unwrap();
    let req = BackupRequest {
        source: "src".into(),
        verify: true,
        ..Default::default()
    };
    let (id, _job) = catalog::create(&pool, &req).await.unwrap();
    run_jobs(env.clone(), &pool).await;

    let row = catalog::get(&pool, &id).await.unwrap().unwrap();
    assert_eq!(row.state, BackupState::Completed, "error: {:?}", row.error);
    assert_eq!(row.verification.as_ref().unwrap()["status"], "valid");
    assert_eq!(
        row.total_rows.unwrap(),
        row_total(&source).await,
        "every row of every table"
    );
    assert!(row.warnings.is_empty() || row.warnings[0].contains("large objects"));

    // Nothing readable without the key: no table name appears in any stored byte.
    let objects = env.storage.list(&format!("{id}/")).await.unwrap();
    assert!(
        objects.len() >= 4,
        "KEY, MANIFEST, schema, sequences, data: {objects:?}"
    );
    for o in &objects {
        let bytes = std::fs::read(dir.path().join(o.key.as_str())).unwrap();
        assert!(
            !bytes.windows(8).any(|w| w == b"customer"),
            "{} leaks a table name",
            o.key
        );
    }

    // Flip one byte at the start, middle and end of every object: verify names that object.
    for o in &objects {
        let path = dir.path().join(o.key.as_str());
        let original = std::fs::read(&path).unwrap();
        for at in [0, original.len() / 2, original.len() - 1] {
            let mut bad = original.clone();
            bad[at] ^= 0x01;
            std::fs::write(&path, &bad).unwrap();
            let v = verify::verify(&env, &id, &()).await.unwrap();
            assert_eq!(
                v.status, "invalid",
                "flip at {at} of {} went unnoticed",
                o.key
            );
            assert!(
                v.failures.iter().any(|f| f.object == o.key.as_str()),
                "flip at {at} of {}: failures name {:?}",
                o.key,
                v.failures
            );
        }
        std::fs::write(&path, &original).unwrap();
    }
    assert!(
        verify::verify(&env, &id, &()).await.unwrap().is_valid(),
        "restored bytes verify again"
    );

    // Another master key cannot open it, and says which key is missing.
    let other = cellar_tests::backup_settings(&source, dir.path(), &KeyRing::generate_entry())
        .build(pool.clone(), &catalog_db.url)
        .unwrap();
    let v = verify::verify(&other, &id, &()).await.unwrap();
    assert_eq!(v.failures[0].object, format!("{id}/KEY"));
    assert!(
        v.failures[0].error.contains("not in"),
        "{}",
        v.failures[0].error
    );
    assert!(
        !v.failures[0].error.contains(&key),
        "the error must not contain key material"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_selective_backup_holds_only_the_chosen_tables() {
    let source = TestDb::empty().await;
    let pool_src = cellar_core::db::connect(&source.url, 2).await.unwrap();
    sqlx::raw_sql(
        "CREATE TABLE a (id serial PRIMARY KEY, t text); CREATE TABLE \"we;ird \"\"b\"\"\" (x int);
         INSERT INTO a (t) SELECT 'row ' || g FROM generate_series(1, 1000) g;
         INSERT INTO \"we;ird \"\"b\"\"\" SELECT g FROM generate_series(1, 7) g;",
    )
    .execute(&pool_src)
    .await
    .unwrap();
    let (catalog_db, pool) = TestDb::catalog().await;
    let dir = tempfile::tempdir().unwrap();
    let env = cellar_tests::backup_settings(&source, dir.path(), &KeyRing::generate_entry())
        .build(pool.clone(), &catalog_db.url)
        .unwrap();
    let req = BackupRequest {
        source: "src".into(),
        tables: Some(vec!["\"we;ird \"\"b\"\"\"".into()]),
        verify: true,
        ..Default::default()
    };
    let (id, _) = catalog::create(&pool, &req).await.unwrap();
    run_jobs(env, &pool).await;
    let row = catalog::get(&pool, &id).await.unwrap().unwrap();
    assert_eq!(row.state, BackupState::Completed, "{:?}", row.error);
    assert_eq!((row.total_rows, row.table_count), (Some(7), Some(1)));
    assert_eq!(row.tables.unwrap()[0]["name"], "we;ird \"b\"");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_backup_leaves_no_objects_and_says_why() {
    let source = TestDb::empty().await;
    let (catalog_db, pool) = TestDb::catalog().await;
    let dir = tempfile::tempdir().unwrap();
    let env = cellar_tests::backup_settings(&source, dir.path(), &KeyRing::generate_entry())
        .build(pool.clone(), &catalog_db.url)
        .unwrap();
    let req = BackupRequest {
        source: "src".into(),
        tables: Some(vec!["public.missing".into()]),
        ..Default::default()
    };
    let (id, job) = catalog::create(&pool, &req).await.unwrap();
    run_jobs(env.clone(), &pool).await;
    let row = catalog::get(&pool, &id).await.unwrap().unwrap();
    assert_eq!(row.state, BackupState::Failed);
    assert!(
        row.error.as_deref().unwrap().contains("missing"),
        "{:?}",
        row.error
    );
    assert!(
        env.storage
            .list(&format!("{id}/"))
            .await
            .unwrap()
            .is_empty(),
        "no orphan objects"
    );
    let j = cellar_core::queue::get(&pool, job.id).await.unwrap();
    assert_eq!(
        j.state,
        cellar_core::queue::JobState::Discarded,
        "an unknown table is permanent"
    );
    assert!("../etc".parse::<BackupId>().is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attached_files_are_archived_when_asked_and_refused_when_unconfigured() {
    let source = TestDb::empty().await;
    let (catalog_db, pool) = TestDb::catalog().await;
    let dir = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    std::fs::create_dir(files.path().join("leases")).unwrap();
    std::fs::write(
        files.path().join("leases/contract.pdf"),
        vec![42u8; 2_500_000],
    )
    .unwrap();
    let mut s = cellar_tests::backup_settings(&source, dir.path(), &KeyRing::generate_entry());
    s.files_dir = Some(files.path().to_path_buf());
    let env = s.build(pool.clone(), &catalog_db.url).unwrap();
    let req = BackupRequest {
        source: "src".into(),
        include_files: true,
        verify: true,
        ..Default::default()
    };
    let (id, _) = catalog::create(&pool, &req).await.unwrap();
    run_jobs(env.clone(), &pool).await;
    let row = catalog::get(&pool, &id).await.unwrap().unwrap();
    assert_eq!(row.state, BackupState::Completed, "{:?}", row.error);
    assert_eq!(row.verification.unwrap()["status"], "valid");
    assert!(row.stored_bytes.unwrap() > 0);

    s.files_dir = None;
    let env = s.build(pool.clone(), &catalog_db.url).unwrap();
    let (id, _) = catalog::create(&pool, &req).await.unwrap();
    run_jobs(env, &pool).await;
    let row = catalog::get(&pool, &id).await.unwrap().unwrap();
    assert_eq!(row.state, BackupState::Failed);
    assert!(row.error.unwrap().contains("CELLAR_FILES_DIR is not set"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_rotation_rewraps_without_touching_data() {
    let source = TestDb::empty().await;
    let pool_src = cellar_core::db::connect(&source.url, 2).await.unwrap();
    sqlx::raw_sql(
        "CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 5000) g",
    )
    .execute(&pool_src)
    .await
    .unwrap();
    let (catalog_db, pool) = TestDb::catalog().await;
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (KeyRing::generate_entry(), KeyRing::generate_entry());
    let env_old = cellar_tests::backup_settings(&source, dir.path(), &old)
        .build(pool.clone(), &catalog_db.url)
        .unwrap();
    let (id, _) = catalog::create(
        &pool,
        &BackupRequest {
            source: "src".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    run_jobs(env_old.clone(), &pool).await;
    let data_before = std::fs::read(dir.path().join(format!("{id}/data/000003"))).unwrap();

    let both = cellar_tests::backup_settings(&source, dir.path(), &format!("{new},{old}"))
        .build(pool.clone(), &catalog_db.url)
        .unwrap();
    let report = cellar_core::backup::rotate::rotate_all(&both)
        .await
        .unwrap();
    assert_eq!(
        (report.rewrapped.len(), report.current, report.failed.len()),
        (1, 0, 0)
    );
    let again = cellar_core::backup::rotate::rotate_all(&both)
        .await
        .unwrap();
    assert_eq!((again.rewrapped.len(), again.current), (0, 1), "idempotent");

    let only_new = cellar_tests::backup_settings(&source, dir.path(), &new)
        .build(pool.clone(), &catalog_db.url)
        .unwrap();
    assert!(
        verify::verify(&only_new, &id, &())
            .await
            .unwrap()
            .is_valid(),
        "the new key alone opens it"
    );
    let v = verify::verify(&env_old, &id, &()).await.unwrap();
    assert!(
        !v.is_valid() && v.failures[0].object.ends_with("/KEY"),
        "the retired key no longer does"
    );
    let data_after = std::fs::read(dir.path().join(format!("{id}/data/000003"))).unwrap();
    assert_eq!(data_before, data_after, "data objects are not rewritten");
    let row = catalog::get(&pool, &id).await.unwrap().unwrap();
    assert_eq!(row.key_id.as_deref(), Some(new.split(':').next().unwrap()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_verification_catches_missing_and_resized_objects() {
    let source = TestDb::empty().await;
    let pool_src = cellar_core::db::connect(&source.url, 2).await.unwrap();
    sqlx::raw_sql("CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 1000) g")
        .execute(&pool_src)
        .await
        .unwrap();
    let (catalog_db, pool) = TestDb::catalog().await;
    let dir = tempfile::tempdir().unwrap();
    let env = cellar_tests::backup_settings(&source, dir.path(), &KeyRing::generate_entry())
        .build(pool.clone(), &catalog_db.url)
        .unwrap();
    let (id, _) = catalog::create(
        &pool,
        &BackupRequest {
            source: "src".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    run_jobs(env.clone(), &pool).await;
    let quick = verify::Level::Quick;
    let v = verify::verify_at(&env, &id, quick, &()).await.unwrap();
    assert_eq!((v.status.as_str(), v.level.as_str()), ("valid", "quick"));
    let data = dir.path().join(format!("{id}/data/000003"));
    let mut bytes = std::fs::read(&data).unwrap();
    bytes.push(0);
    std::fs::write(&data, &bytes).unwrap();
    let v = verify::verify_at(&env, &id, quick, &()).await.unwrap();
    assert!(
        v.failures[0].error.contains("stored size"),
        "{:?}",
        v.failures
    );
    std::fs::remove_file(&data).unwrap();
    let v = verify::verify_at(&env, &id, quick, &()).await.unwrap();
    assert!(
        v.failures[0].object.ends_with("data/000003") && v.failures[0].error.contains("not found"),
        "{:?}",
        v.failures
    );
}
