//! Restores end to end against the real Postgres: pagila into a new database and into itself
//! (then rolled back), one table while others keep their changes, foreign keys that would
//! break, failures half-way (terminated connections, cancel, a corrupted later object), wrong
//! keys and damaged objects, and a second restore of the same database. dbdiff judges.

mod restore_support;

use cellar_core::restore::run;
use cellar_core::restore::target::{Server, TargetLock};
use cellar_core::restore::{RequestError, RestoreError, RestoreRequest, RestoreState, catalog};
use cellar_tests::{TestDb, wait_for};
use restore_support::*;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagila_restores_into_a_new_database_and_into_itself_and_rolls_back() {
    let Some(source) = pagila().await else { return };
    let pristine = copy_of(&source);
    let fx = Fixture::new(source).await;
    let id = fx.backup(None).await;

    let fresh = adopt(&format!("{}_new", fx.source.name));
    let mut req = RestoreRequest::new(id.clone());
    req.target_database = Some(fresh.name.clone());
    let row = fx.restore(&req).await;
    assert_eq!(row.state, RestoreState::Completed, "{:?}", row.error);
    assert_eq!(row.safety_backup_id, None, "nothing existed to be replaced");
    dbdiff(&pristine, &fresh).unwrap();
    let populated = "SELECT ispopulated FROM pg_matviews WHERE matviewname = 'rental_by_category'";
    assert_eq!(
        query(&fresh, populated),
        query(&pristine, populated),
        "(not) populated"
    );

    psql(
        &fx.source,
        "UPDATE film SET title = 'changed'; DELETE FROM film_actor WHERE film_id < 100;
         CREATE TABLE extra (x int); INSERT INTO extra VALUES (1);
         SELECT nextval('actor_actor_id_seq'); DROP VIEW actor_info;",
    );
    let modified = copy_of(&fx.source);
    let mut req = RestoreRequest::new(id.clone());
    let row = fx.restore(&req).await;
    assert_eq!(row.state, RestoreState::Failed);
    assert!(
        row.error.as_ref().unwrap().contains("confirmRestore"),
        "{:?}",
        row.error
    );
    dbdiff(&modified, &fx.source).expect("a refused restore changes nothing");

    req.confirm = true;
    let row = fx.restore(&req).await;
    assert_eq!(row.state, RestoreState::Completed, "{:?}", row.error);
    dbdiff(&pristine, &fx.source).expect("back to the backed-up state");
    let safety = row
        .safety_backup_id
        .clone()
        .expect("a safety backup was taken");
    assert!(safety.contains("_safety_"), "{safety}");

    let (rollback, _) = catalog::rollback(&fx.pool, cellar_core::restore::RestoreId(row.id))
        .await
        .unwrap();
    fx.run_jobs().await;
    let back = fx.row(rollback).await;
    assert_eq!(back.state, RestoreState::Completed, "{:?}", back.error);
    assert_eq!(back.backup_id, safety);
    dbdiff(&modified, &fx.source).expect("rollback brings back what the restore replaced");
    let aside = format!("{}__cellar_", fx.source.name);
    assert_eq!(
        databases_like(&aside),
        "",
        "no scratch database is left behind"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_table_is_restored_while_the_others_keep_their_changes() {
    let Some(source) = pagila().await else { return };
    let pristine = copy_of(&source);
    let fx = Fixture::new(source).await;
    let id = fx.backup(None).await;
    psql(
        &fx.source,
        "UPDATE film SET rental_rate = 0; UPDATE actor SET last_name = 'Changed';
         DELETE FROM payment WHERE payment_id % 3 = 0; SELECT setval('film_film_id_seq', 5000);",
    );
    let film = "SELECT md5(string_agg(f::text, '' ORDER BY film_id)) FROM film f";
    let mut req = RestoreRequest::new(id.clone());
    req.tables = Some(vec!["film".into(), "public.payment".into()]);
    req.confirm = true;
    let row = fx.restore(&req).await;
    assert_eq!(row.state, RestoreState::Completed, "{:?}", row.error);
    assert_eq!(query(&fx.source, film), query(&pristine, film));
    let payments = "SELECT count(*) FROM payment";
    assert_eq!(
        query(&fx.source, payments),
        query(&pristine, payments),
        "every partition"
    );
    let seq = "SELECT last_value FROM film_film_id_seq";
    assert_eq!(
        query(&fx.source, seq),
        query(&pristine, seq),
        "its sequence is reset"
    );
    let actor = "SELECT count(*) FROM actor WHERE last_name = 'Changed'";
    assert_eq!(query(&fx.source, actor), "200", "actor keeps its change");
    assert!(row.safety_backup_id.is_some());

    // A language added after the backup and used by a film: restoring `language` alone would
    // leave film.language_id pointing nowhere.
    psql(
        &fx.source,
        "INSERT INTO language (language_id, name) VALUES (100, 'Klingon');
         UPDATE film SET language_id = 100 WHERE film_id = 1;",
    );
    let mut req = RestoreRequest::new(id.clone());
    req.tables = Some(vec!["language".into()]);
    req.confirm = true;
    let row = fx.restore(&req).await;
    assert_eq!(row.state, RestoreState::Failed);
    let error = row.error.unwrap();
    assert!(
        error.contains("film_language_id_fkey") && error.contains("(100)"),
        "{error}"
    );
    let klingon = "SELECT count(*) FROM language WHERE language_id = 100";
    assert_eq!(query(&fx.source, klingon), "1", "rolled back");

    req.accept_broken_references = true;
    let row = fx.restore(&req).await;
    assert_eq!(row.state, RestoreState::Completed, "{:?}", row.error);
    let warnings = row.result.unwrap()["warnings"].to_string();
    assert!(warnings.contains("film_language_id_fkey"), "{warnings}");
    assert_eq!(query(&fx.source, klingon), "0");
}

/// A source whose one big table takes long enough to COPY to be interrupted mid-way.
async fn big_source() -> TestDb {
    let db = TestDb::empty().await;
    psql(
        &db,
        "CREATE TABLE big (id int PRIMARY KEY, t text);
         INSERT INTO big SELECT g, md5(g::text) || repeat('x', 120) FROM generate_series(1, 600000) g;
         CREATE TABLE small (id serial PRIMARY KEY, v text); INSERT INTO small (v) VALUES ('a');",
    );
    db
}

/// `LIKE` pattern of the scratch databases of restores into `target` (tests run in parallel:
/// never match another test's restore).
fn scratch_pattern(target: &str) -> String {
    format!("{}\\_\\_cellar\\_restore\\_%", target.replace('_', "\\_"))
}

/// Waits until a COPY runs on the scratch database of a restore into `target`.
async fn wait_for_copy(admin: &sqlx::PgPool, target: &str) {
    let sql = "SELECT count(*) FROM pg_stat_activity WHERE datname LIKE $1
               AND query LIKE 'COPY%' AND state = 'active'";
    wait_for(Duration::from_secs(120), "a restore COPY", || async {
        let n: i64 = sqlx::query_scalar(sql)
            .bind(scratch_pattern(target))
            .fetch_one(admin)
            .await
            .unwrap();
        n > 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_that_fails_half_way_leaves_the_target_unchanged() {
    let fx = Fixture::new(big_source().await).await;
    let id = fx.backup(None).await;
    psql(
        &fx.source,
        "INSERT INTO small (v) VALUES ('after the backup'); DELETE FROM big WHERE id < 10;",
    );
    let before = copy_of(&fx.source);
    let admin = cellar_core::db::connect(&cellar_tests::admin_url(), 2)
        .await
        .unwrap();
    let mut req = RestoreRequest::new(id.clone());
    req.confirm = true;
    req.create_safety_backup = false;

    // 1. The restore's connections are terminated mid-COPY. (Parts 1 and 2 run the restore
    // directly, so their queued jobs are cancelled: the worker of part 3 must not run them.)
    let (rid, job) = catalog::create(&fx.pool, &req).await.unwrap();
    unqueue(&fx, job.id).await;
    let token = CancellationToken::new();
    let (env, t) = (fx.env.clone(), token.clone());
    let job = tokio::spawn(async move { run::run(&env, rid, &(), &t).await });
    wait_for_copy(&admin, &fx.source.name).await;
    // Every session of the build: the COPY lanes, and any index build running beside them.
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname LIKE $1 AND pid <> pg_backend_pid()",
    )
    .bind(scratch_pattern(&fx.source.name))
    .execute(&admin)
    .await
    .unwrap();
    let err = job.await.unwrap().unwrap_err();
    assert!(matches!(err, RestoreError::Transient(_)), "{err}");
    dbdiff(&before, &fx.source).expect("terminated mid-COPY: target unchanged");
    assert_eq!(fx.row(rid).await.state, RestoreState::Failed);

    // 2. The job is cancelled mid-COPY.
    let (rid, job) = catalog::create(&fx.pool, &req).await.unwrap();
    unqueue(&fx, job.id).await;
    let (env, t) = (fx.env.clone(), token.clone());
    let job = tokio::spawn(async move { run::run(&env, rid, &(), &t).await });
    wait_for_copy(&admin, &fx.source.name).await;
    token.cancel();
    let err = job.await.unwrap().unwrap_err();
    assert!(matches!(err, RestoreError::Cancelled), "{err}");
    dbdiff(&before, &fx.source).expect("cancelled: target unchanged");

    // 3. A later object is corrupted (same size, one flipped byte in its middle).
    let largest = largest_object(&fx, &id);
    let mut bytes = std::fs::read(&largest).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::write(&largest, &bytes).unwrap();
    let row = fx.restore(&req).await;
    assert_eq!(row.state, RestoreState::Failed);
    let error = row.error.unwrap();
    assert!(
        error.contains("authentication failed") && error.contains("big"),
        "{error}"
    );
    dbdiff(&before, &fx.source).expect("corrupted object: target unchanged");
    let aside = format!("{}__cellar_", fx.source.name);
    assert_eq!(databases_like(&aside), "", "scratch databases are dropped");
}

async fn unqueue(fx: &Fixture, job: i64) {
    let mut conn = fx.pool.acquire().await.unwrap();
    cellar_core::queue::cancel(&mut conn, job).await.unwrap();
}

fn largest_object(fx: &Fixture, id: &cellar_core::backup::BackupId) -> std::path::PathBuf {
    let dir = fx.dir.path().join(id.as_str()).join("data");
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_keys_and_damaged_objects_refuse_before_anything_changes() {
    let db = TestDb::empty().await;
    psql(
        &db,
        "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'one');",
    );
    let fx = Fixture::new(db).await;
    let id = fx.backup(None).await;
    psql(&fx.source, "INSERT INTO t VALUES (2, 'after');");
    let before = copy_of(&fx.source);
    let mut req = RestoreRequest::new(id.clone());
    req.confirm = true;

    let other_key = cellar_core::format::KeyRing::generate_entry();
    let other = fx.env_with_key(&other_key);
    let (rid, job) = catalog::create(&fx.pool, &req).await.unwrap();
    unqueue(&fx, job.id).await;
    let err = run::run(&other, rid, &(), &CancellationToken::new())
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("{id}/KEY")) && msg.contains("cannot be restored"),
        "{msg}"
    );
    assert!(
        !msg.contains(&fx.key) && !msg.contains(&other_key),
        "no key material"
    );
    let row = fx.row(rid).await;
    assert_eq!(
        (row.state, row.safety_backup_id),
        (RestoreState::Failed, None)
    );

    let schema = fx.dir.path().join(id.as_str()).join("data/000001");
    let original = std::fs::read(&schema).unwrap();
    let mut bad = original.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x40;
    std::fs::write(&schema, &bad).unwrap();
    let row = fx.restore(&req).await;
    let error = row.error.unwrap();
    assert!(
        error.contains("data/000001") && error.contains("authentication"),
        "{error}"
    );
    assert_eq!(
        row.safety_backup_id, None,
        "refused before the safety backup"
    );

    std::fs::write(&schema, &original[..original.len() - 1]).unwrap();
    let row = fx.restore(&req).await;
    let error = row.error.unwrap();
    assert!(
        error.contains("data/000001") && error.contains("bytes stored"),
        "{error}"
    );
    dbdiff(&before, &fx.source).expect("nothing changed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_restore_of_the_same_database_is_refused() {
    let db = TestDb::empty().await;
    psql(&db, "CREATE TABLE t (id int); INSERT INTO t VALUES (1);");
    let fx = Fixture::new(db).await;
    let id = fx.backup(None).await;
    let mut req = RestoreRequest::new(id.clone());
    req.confirm = true;
    let (first, job) = catalog::create(&fx.pool, &req).await.unwrap();
    let second = catalog::create(&fx.pool, &req).await.unwrap_err();
    assert!(matches!(second, RequestError::Conflict(_)), "{second}");
    assert!(
        second.to_string().contains(&format!("restore {first}")),
        "{second}"
    );
    // Run by hand below, not by a worker. (A cancelled job holds nothing: sweep.rs.)
    unqueue(&fx, job.id).await;

    // Another worker holds the database's lock (e.g. its row was created elsewhere).
    let server = Server::new(&fx.source.url);
    let lock = TargetLock::acquire(&fx.pool, &server.identity(&fx.source.name))
        .await
        .unwrap();
    let err = run::run(&fx.env, first, &(), &CancellationToken::new())
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("another restore is already running"),
        "{err}"
    );
    lock.release().await;
    let row = catalog::get(&fx.pool, first).await.unwrap().unwrap();
    assert_eq!(row.state, RestoreState::Failed);
    let missing = RestoreRequest::new(
        "cellar_backup_2026-01-01_00-00-00_manual_abcd"
            .parse()
            .unwrap(),
    );
    let err = catalog::create(&fx.pool, &missing).await.unwrap_err();
    assert!(matches!(err, RequestError::NotFound(_)), "{err}");
}
