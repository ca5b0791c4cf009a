//! The real sample database: every table's rows, the schema archive, sequences, matviews.

use std::collections::BTreeMap;
use std::process::Command;

use bytes::Bytes;
use cellar_core::dump::{PgDump, Snapshot, TableName, plan_copy};
use tokio::sync::mpsc;

use crate::common::{TestDb, copy_all, shared_dir};

/// A database loaded with pagila, or None (after a loud SKIP line) when the dataset is missing.
fn pagila() -> Option<TestDb> {
    let dir = shared_dir().join("datasets/pagila");
    if !dir.join("pagila-data.sql").exists() {
        eprintln!(
            "SKIP: pagila not found in {} (set CELLAR_SHARED_DIR)",
            dir.display()
        );
        return None;
    }
    let db = TestDb::create();
    db.load_file(&dir.join("pagila-schema.sql"));
    db.load_file(&dir.join("pagila-data.sql"));
    Some(db)
}

/// Runs pg_dump's schema dump into memory.
async fn schema_archive(
    db: &TestDb,
    snap: &Snapshot,
    selection: Option<&cellar_core::dump::Selection>,
) -> Vec<u8> {
    let (tx, mut rx) = mpsc::channel::<Bytes>(2);
    let drain = tokio::spawn(async move {
        let mut all = Vec::new();
        while let Some(b) = rx.recv().await {
            all.extend_from_slice(&b);
        }
        all
    });
    let bytes = PgDump::default()
        .dump_schema(&db.url, snap.id(), selection, tx)
        .await
        .unwrap();
    let archive = drain.await.unwrap();
    assert_eq!(bytes, archive.len() as u64);
    archive
}

/// `pg_restore --list` of an archive: fails the test if pg_restore rejects it.
fn restore_list(archive: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("schema.dump");
    std::fs::write(&path, archive).unwrap();
    let out = Command::new("pg_restore")
        .arg("--list")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pg_restore --list: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn pagila_copies_every_row_of_every_table() {
    let Some(db) = pagila() else { return };
    let mut snap = Snapshot::open(&db.url).await.unwrap();
    let tables = snap.list_tables(None).await.unwrap();
    assert!(
        tables.iter().any(|t| t.name.name() == "payment_p2022_03")
            && !tables.iter().any(|t| t.name.name() == "payment")
    );
    let tasks = plan_copy(&tables, 64 * 1024, 2);
    assert!(
        tasks.len() > tables.len(),
        "some tables must be split at 64 KiB"
    );
    let out = copy_all(&db.url, snap.id(), tasks, 2).await;
    let mut rows: BTreeMap<TableName, u64> = BTreeMap::new();
    for o in &out {
        *rows.entry(o.task.table.name.clone()).or_default() += o.stats.rows;
    }
    assert_eq!(rows.len(), tables.len());
    for (table, copied) in rows {
        assert_eq!(copied, db.count(&table).await, "{table}");
    }
    assert_eq!(snap.large_object_count().await.unwrap(), 0);
}

#[tokio::test]
async fn pagila_schema_archive_is_accepted_by_pg_restore() {
    let Some(db) = pagila() else { return };
    let mut snap = Snapshot::open(&db.url).await.unwrap();
    PgDump::default()
        .check_compatible(snap.server_version_num())
        .await
        .unwrap();
    let archive = schema_archive(&db, &snap, None).await;
    assert!(archive.starts_with(b"PGDMP"), "a custom-format archive");
    let list = restore_list(&archive);
    for entry in [
        "TABLE public actor",
        "MATERIALIZED VIEW public rental_by_category",
        "SEQUENCE public actor_actor_id_seq",
    ] {
        assert!(list.contains(entry), "{entry} missing from:\n{list}");
    }
    assert!(!list.contains("TABLE DATA"), "schema only");

    let selection = snap
        .resolve_selection(&[TableName::parse("payment").unwrap()])
        .await
        .unwrap();
    let list = restore_list(&schema_archive(&db, &snap, Some(&selection)).await);
    assert!(
        list.contains("TABLE public payment ") && list.contains("TABLE public payment_p2022_07"),
        "{list}"
    );
    assert!(
        !list.contains("TABLE public actor "),
        "selective schema has only the selection:\n{list}"
    );
}

#[tokio::test]
async fn pagila_sequences_and_matviews_are_captured() {
    let Some(db) = pagila() else { return };
    db.exec("REFRESH MATERIALIZED VIEW rental_by_category; SELECT setval('category_category_id_seq', 42, false); SELECT lo_from_bytea(0, 'blob');
        CREATE TABLE ident_t (id int GENERATED ALWAYS AS IDENTITY, s serial);
        INSERT INTO ident_t DEFAULT VALUES; INSERT INTO ident_t DEFAULT VALUES;").await;
    let mut snap = Snapshot::open(&db.url).await.unwrap();
    let seqs = snap.sequences().await.unwrap();
    let actor = seqs
        .iter()
        .find(|s| s.name.to_string() == "public.actor_actor_id_seq")
        .expect("actor's sequence");
    assert_eq!((actor.last_value, actor.is_called), (200, true));
    assert_eq!(
        actor.owned_by, None,
        "pagila's sequences are not OWNED BY their tables"
    );
    for name in ["ident_t_id_seq", "ident_t_s_seq"] {
        let seq = seqs
            .iter()
            .find(|s| s.name.name() == name)
            .unwrap_or_else(|| panic!("{name}"));
        assert_eq!((seq.last_value, seq.is_called), (2, true), "{name}");
        assert_eq!(
            seq.owned_by.as_ref().map(ToString::to_string).as_deref(),
            Some("public.ident_t"),
            "{name}"
        );
    }
    let category = seqs
        .iter()
        .find(|s| s.name.name() == "category_category_id_seq")
        .unwrap();
    assert_eq!((category.last_value, category.is_called), (42, false));
    assert_eq!(seqs.len(), 15, "{} sequences", seqs.len());
    let matviews: Vec<String> = snap
        .populated_matviews()
        .await
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(matviews, ["public.rental_by_category"]);
    assert_eq!(
        snap.large_object_count().await.unwrap(),
        1,
        "large objects are reported"
    );
}
