//! The restore drill (verify level DRILL): pagila restored into a scratch database and compared
//! table by table; values whose text form depends on session settings; differences named;
//! cancel and leftovers leave no scratch database behind.

mod restore_support;

use cellar_core::backup::fingerprint::Fingerprint;
use cellar_core::backup::requests;
use cellar_core::backup::verify::{self, Level};
use cellar_core::format::manifest::TableRef;
use cellar_core::restore::drill;
use restore_support::*;
use tokio_util::sync::CancellationToken;

/// Drill databases left on the server by this fixture's catalog.
async fn leftovers(f: &Fixture) -> String {
    let prefix = drill::scratch_prefix(&f.pool).await.unwrap();
    databases_like(&prefix)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagila_drills_through_the_verify_job() {
    let Some(source) = pagila().await else { return };
    let f = Fixture::new(source).await;
    let id = f.backup(None).await;
    requests::verify(&f.pool, &id, Level::Drill).await.unwrap();
    f.run_jobs().await;
    let row = cellar_core::backup::catalog::get(&f.pool, &id)
        .await
        .unwrap()
        .unwrap();
    let v = row.verification.unwrap();
    assert_eq!(
        (&v["status"], &v["level"]),
        (&"valid".into(), &"drill".into()),
        "{v}"
    );
    let drill = &v["drill"];
    assert!(drill["tablesCompared"].as_u64().unwrap() >= 15, "{v}");
    assert_eq!(drill["rowsCompared"].as_i64(), row.total_rows, "{v}");
    assert_eq!(leftovers(&f).await, "", "the scratch database is dropped");
}

/// Session-dependent text forms (bytea, intervals, time zones, floats) must not make a
/// faithful restore look different: the source database has unusual defaults for all of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_whose_text_depends_on_settings_compare_equal() {
    let source = cellar_tests::TestDb::empty().await;
    let name = source.name.clone();
    psql(
        &source,
        &format!(
            "ALTER DATABASE \"{name}\" SET bytea_output = 'escape';
             ALTER DATABASE \"{name}\" SET intervalstyle = 'iso_8601';
             ALTER DATABASE \"{name}\" SET timezone = 'Asia/Kathmandu';
             ALTER DATABASE \"{name}\" SET datestyle = 'SQL, DMY';
             ALTER DATABASE \"{name}\" SET extra_float_digits = -3;"
        ),
    );
    psql(
        &source,
        "CREATE TABLE odd (id int PRIMARY KEY, b bytea, i interval, t timestamptz, d date,
                           f float8, r real, n numeric, a text[], j json, jb jsonb, s text,
                           g int GENERATED ALWAYS AS (id * 2) STORED);
         INSERT INTO odd (id, b, i, t, d, f, r, n, a, j, jb, s)
         SELECT g, decode(md5(g::text), 'hex'), make_interval(0, g, 0, g, g, g, g * 0.25),
                '2020-03-29 01:30:00+00'::timestamptz + g * interval '37 minutes',
                '1999-12-31'::date + g, pi() * g, 1.0 / 3 * g, 'NaN',
                ARRAY['a\tb', NULL, ''], '{\"k\":  1}', '{\"k\":  1}', E'x\\\\y\\nz'
         FROM generate_series(1, 500) g;
         INSERT INTO odd (id, f, r, n, s) VALUES (0, 'Infinity', '-Infinity', 'NaN', '');
         CREATE TABLE parent (id int, v text); CREATE TABLE child () INHERITS (parent);
         INSERT INTO parent VALUES (1, 'p'); INSERT INTO child VALUES (2, 'c');",
    );
    let f = Fixture::new(source).await;
    let id = f.backup(None).await;
    let v = verify::verify_at(&f.env, &id, Level::Drill, &())
        .await
        .unwrap();
    assert!(v.is_valid(), "{:?}", v.failures);
    let d = v.drill.expect("a drill report");
    assert_eq!((d.tables_compared, d.rows_compared), (3, 503), "{d:?}");
    assert_eq!(leftovers(&f).await, "");
}

/// The comparison is live: fingerprints that do not match what the restore produced are named
/// per table, with what differs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn differences_are_named_per_table() {
    let source = cellar_tests::TestDb::empty().await;
    psql(
        &source,
        "CREATE TABLE a AS SELECT g AS id FROM generate_series(1, 100) g;
         CREATE TABLE b AS SELECT g AS id FROM generate_series(1, 10) g;",
    );
    let f = Fixture::new(source).await;
    let id = f.backup(None).await;
    let v = verify::verify_at(&f.env, &id, Level::Deep, &())
        .await
        .unwrap();
    let table = |name: &str| TableRef {
        schema: "public".into(),
        name: name.into(),
    };
    let prints = vec![
        (table("a"), Fingerprint { rows: 99, sum: 0 }),
        (table("b"), Fingerprint { rows: 10, sum: 7 }),
    ];
    let cancel = CancellationToken::new();
    let v = drill::run(&f.env, &id, prints, v, &(), &cancel)
        .await
        .unwrap();
    assert_eq!(v.status, "invalid");
    let failures: Vec<(String, String)> = v
        .failures
        .iter()
        .map(|x| (x.object.clone(), x.error.clone()))
        .collect();
    assert_eq!(failures.len(), 2, "{failures:?}");
    let find = |t: &str| {
        failures
            .iter()
            .find(|(o, _)| o == t)
            .map(|(_, e)| e.clone())
    };
    assert!(
        find("table public.a")
            .unwrap()
            .contains("restored 100 rows where the backup holds 99")
    );
    assert!(find("table public.b").unwrap().contains("fingerprint"));
    assert_eq!(leftovers(&f).await, "");
}

/// A cancelled drill stops with Cancelled and drops its scratch database; a scratch database
/// left by a killed worker (no drill holds its lock) is swept by the next drill.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_and_leftovers_leave_nothing() {
    let source = cellar_tests::TestDb::empty().await;
    psql(
        &source,
        "CREATE TABLE a AS SELECT g AS id FROM generate_series(1, 50000) g",
    );
    let f = Fixture::new(source).await;
    let id = f.backup(None).await;
    let cancel = CancellationToken::new();
    cancel.cancel();
    let r = verify::verify_with(&f.env, &id, Level::Drill, &(), &cancel).await;
    assert!(
        matches!(r, Err(cellar_core::backup::BackupError::Cancelled)),
        "{r:?}"
    );
    assert_eq!(leftovers(&f).await, "");

    let prefix = drill::scratch_prefix(&f.pool).await.unwrap();
    let stale = drill::scratch_name(&prefix, &id);
    cellar_tests::psql_admin(&format!("CREATE DATABASE \"{stale}\""));
    let v = verify::verify_at(&f.env, &id, Level::Drill, &())
        .await
        .unwrap();
    assert!(v.is_valid(), "{:?}", v.failures);
    assert_eq!(leftovers(&f).await, "", "the leftover {stale} is swept");
}
