//! Failures a person can act on, and never a password in them.

use bytes::Bytes;
use cellar_core::dump::{DumpError, PgDump, Snapshot};
use tokio::sync::mpsc;

use crate::common::{TestDb, server_url};

#[tokio::test]
async fn connection_errors_do_not_leak_the_password() {
    let err = Snapshot::open("postgres://postgres:supersecret@127.0.0.1:1/nowhere")
        .await
        .err()
        .unwrap();
    let msg = err.to_string();
    assert!(matches!(err, DumpError::Connect { .. }), "{msg}");
    assert!(
        !msg.contains("supersecret") && msg.contains("postgres:***@127.0.0.1:1/nowhere"),
        "{msg}"
    );
}

#[tokio::test]
async fn pg_dump_failures_carry_its_stderr_without_the_password() {
    let db = TestDb::create();
    // Trust authentication ignores the password; pg_dump gets it through PGPASSWORD anyway.
    let url = db.url.replacen("postgres@", "postgres:supersecret@", 1);
    assert!(url.starts_with(&server_url().replacen("postgres@", "postgres:supersecret@", 1)));
    let (tx, _rx) = mpsc::channel::<Bytes>(1);
    let err = PgDump::default()
        .dump_schema(&url, "00000003-0000001B-1", None, tx)
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, DumpError::PgDumpFailed { .. }), "{msg}");
    assert!(
        msg.contains("snapshot") && !msg.contains("supersecret"),
        "{msg}"
    );
}

#[tokio::test]
async fn a_missing_pg_dump_is_reported_as_such() {
    let err = PgDump::new("/nonexistent/pg_dump")
        .version()
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("cannot run /nonexistent/pg_dump"),
        "{err}"
    );
}
