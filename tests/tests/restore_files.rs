//! `restoreFiles`: the attached-files archive put back into `CELLAR_FILES_DIR` with the
//! database (full and table restores), saved by the safety backup and rolled back; refused
//! clearly when it cannot be done; a damaged archive changes neither the files nor the database.

mod restore_support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use cellar_core::backup::BackupId;
use cellar_core::backup::catalog::{self as backups, BackupRequest};
use cellar_core::restore::target::TargetLock;
use cellar_core::restore::{RequestError, RestoreId, RestoreRequest, RestoreState, catalog};
use cellar_tests::{TestDb, file_tree as tree};
use restore_support::*;

/// A source with one table and a files directory holding an app's uploads.
async fn fixture() -> (Fixture, tempfile::TempDir) {
    let db = TestDb::empty().await;
    psql(
        &db,
        "CREATE TABLE lease (id int PRIMARY KEY, tenant text);
         INSERT INTO lease VALUES (1, 'Ada'), (2, 'Grace');",
    );
    let files = tempfile::tempdir().unwrap();
    let up = files.path();
    std::fs::create_dir_all(up.join("tenants/7")).unwrap();
    let pdf: Vec<u8> = (0..3_000_000u32)
        .map(|i| i.wrapping_mul(2_654_435_761) as u8)
        .collect();
    std::fs::write(up.join("tenants/7/lease.pdf"), pdf).unwrap();
    std::fs::write(up.join("logo.png"), b"logo v1").unwrap();
    std::fs::write(up.join("tab\tand newline\n.txt"), b"odd name").unwrap();
    std::fs::set_permissions(up.join("logo.png"), PermissionsExt::from_mode(0o640)).unwrap();
    let mut fx = Fixture::new(db).await;
    fx.env.files_dir = Some(up.to_path_buf());
    (fx, files)
}

async fn backup_with_files(fx: &Fixture) -> BackupId {
    let req = BackupRequest {
        source: "src".into(),
        include_files: true,
        ..Default::default()
    };
    let (id, _) = backups::create(&fx.pool, &req).await.unwrap();
    fx.run_jobs().await;
    let row = backups::get(&fx.pool, &id).await.unwrap().unwrap();
    assert!(row.error.is_none(), "{:?}", row.error);
    id
}

/// A confirmed full restore of `id` with its files.
fn files_restore(id: &BackupId) -> RestoreRequest {
    let mut req = RestoreRequest::new(id.clone());
    req.confirm = true;
    req.files = true;
    req
}

/// The app changes its data and its files after the backup.
fn change(fx: &Fixture, files: &Path) {
    psql(
        &fx.source,
        "UPDATE lease SET tenant = 'changed'; INSERT INTO lease VALUES (3, 'new');",
    );
    std::fs::write(files.join("logo.png"), b"logo v2").unwrap();
    std::fs::remove_file(files.join("tenants/7/lease.pdf")).unwrap();
    std::fs::create_dir(files.join("tenants/9")).unwrap();
    std::fs::write(files.join("tenants/9/deed.pdf"), b"added later").unwrap();
}

fn rows(fx: &Fixture) -> String {
    query(
        &fx.source,
        "SELECT string_agg(id || ':' || tenant, ',' ORDER BY id) FROM lease",
    )
}

fn leftovers(files: &Path) -> Vec<String> {
    std::fs::read_dir(files)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".cellar-"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_come_back_with_the_database_and_roll_back_with_it() {
    let (fx, files) = fixture().await;
    let original = tree(files.path());
    let original_rows = rows(&fx);
    let id = backup_with_files(&fx).await;
    change(&fx, files.path());
    let changed = tree(files.path());
    let changed_rows = rows(&fx);

    let req = files_restore(&id);
    let row = fx.restore(&req).await;
    assert_eq!(row.state, RestoreState::Completed, "{:?}", row.error);
    assert!(row.files);
    assert_eq!(tree(files.path()), original, "the files are as backed up");
    assert_eq!(rows(&fx), original_rows);
    let result = row.result.unwrap();
    assert_eq!(result["files"]["files"], 3, "{result}");
    assert!(leftovers(files.path()).is_empty());
    let safety: BackupId = row.safety_backup_id.unwrap().parse().unwrap();
    let safety_row = backups::get(&fx.pool, &safety).await.unwrap().unwrap();
    assert!(
        safety_row.include_files,
        "the safety backup saved the files it replaced"
    );

    let (rollback, _) = catalog::rollback(&fx.pool, RestoreId(row.id))
        .await
        .unwrap();
    fx.run_jobs().await;
    let back = fx.row(rollback).await;
    assert_eq!(back.state, RestoreState::Completed, "{:?}", back.error);
    assert!(back.files, "the rollback restores the files too");
    assert_eq!(
        tree(files.path()),
        changed,
        "rollback brings the replaced files back"
    );
    assert_eq!(rows(&fx), changed_rows);

    // A table restore with files: the other tables untouched, the files replaced.
    psql(
        &fx.source,
        "CREATE TABLE other (x int); INSERT INTO other VALUES (42);",
    );
    let mut req = files_restore(&id);
    req.tables = Some(vec!["public.lease".into()]);
    let row = fx.restore(&req).await;
    assert_eq!(row.state, RestoreState::Completed, "{:?}", row.error);
    assert_eq!(tree(files.path()), original);
    assert_eq!(rows(&fx), original_rows);
    assert_eq!(query(&fx.source, "SELECT x FROM other"), "42");
    assert!(leftovers(files.path()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn impossible_files_restores_are_refused_and_change_nothing() {
    let (mut fx, files) = fixture().await;
    let without = fx.backup(None).await;
    let mut req = RestoreRequest::new(without.clone());
    req.confirm = true;
    req.files = true;
    let err = catalog::create(&fx.pool, &req).await.unwrap_err();
    assert!(
        matches!(&err, RequestError::Invalid(m) if m.contains("holds no files archive")),
        "{err}"
    );

    let with = backup_with_files(&fx).await;
    change(&fx, files.path());
    let (changed, changed_rows) = (tree(files.path()), rows(&fx));

    // A worker without CELLAR_FILES_DIR has nowhere to put them.
    fx.env.files_dir = None;
    let req = files_restore(&with);
    let row = fx.restore(&req).await;
    assert_eq!(row.state, RestoreState::Failed);
    assert!(
        row.error.as_ref().unwrap().contains("CELLAR_FILES_DIR"),
        "{:?}",
        row.error
    );
    assert_eq!(rows(&fx), changed_rows, "the database is unchanged");
    fx.env.files_dir = Some(files.path().to_path_buf());

    // Another restore holds the directory, or left its set-aside originals in it: refused
    // before anything (no safety backup taken).
    let held = TargetLock::acquire(&fx.pool, &format!("files:{}", files.path().display()))
        .await
        .unwrap();
    let req = files_restore(&with);
    let row = fx.restore(&req).await;
    assert_eq!(row.state, RestoreState::Failed);
    assert!(
        row.error
            .as_ref()
            .unwrap()
            .contains("another restore is restoring files"),
        "{:?}",
        row.error
    );
    assert_eq!(row.safety_backup_id, None);
    held.release().await;
    let foreign = files.path().join(".cellar-old-999");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("set-aside.txt"), b"another restore's original").unwrap();
    let row = fx.restore(&req).await;
    assert!(
        row.error
            .as_ref()
            .unwrap()
            .contains("restore 999 left unfinished work"),
        "{:?}",
        row.error
    );
    assert_eq!(rows(&fx), changed_rows);
    std::fs::remove_dir_all(&foreign).unwrap();
    assert_eq!(tree(files.path()), changed, "the files are unchanged");

    // Into a database that does not exist: no safety backup could hold the files.
    let mut req = RestoreRequest::new(with.clone());
    req.files = true;
    req.target_database = Some(format!("{}_new", fx.source.name));
    let row = fx.restore(&req).await;
    assert_eq!(row.state, RestoreState::Failed);
    assert!(
        row.error.as_ref().unwrap().contains("no safety backup"),
        "{:?}",
        row.error
    );
    assert_eq!(databases_like(&format!("{}_new", fx.source.name)), "");

    // A damaged archive: found while it is extracted aside; database and files unchanged.
    let object = std::fs::read_dir(fx.dir.path().join(with.as_str()).join("data"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .max()
        .unwrap();
    let mut bytes = std::fs::read(&object).unwrap();
    let at = bytes.len() - 100;
    bytes[at] ^= 1;
    std::fs::write(&object, &bytes).unwrap();
    let req = files_restore(&with);
    let row = fx.restore(&req).await;
    assert_eq!(row.state, RestoreState::Failed);
    let error = row.error.unwrap();
    assert!(
        error.contains("files archive")
            && error.contains(object.file_name().unwrap().to_str().unwrap()),
        "{error}"
    );
    assert_eq!(tree(files.path()), changed, "the files are unchanged");
    assert_eq!(rows(&fx), changed_rows, "the database is unchanged");
    assert!(leftovers(files.path()).is_empty());
    assert_eq!(databases_like(&format!("{}__cellar_", fx.source.name)), "");
}
