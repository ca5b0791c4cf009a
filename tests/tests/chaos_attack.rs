//! Attackers and hostile input: tokens revoked or expiring while a websocket is open, bad
//! websocket tokens, malformed Authorization headers (all denied and audited); backup ids with
//! `../`, absolute paths and NUL; schema, table and column names with quotes, semicolons and
//! unicode, backed up and restored faithfully. (`api_authz.rs` holds the role matrix and
//! `api_input.rs` the oversized and deep documents.)

mod api_common;

use std::time::Duration;

use api_common::{Api, code, scalar};
use cellar_core::auth::{self, Role};
use cellar_core::backup::BackupState;
use cellar_core::backup::catalog::{self, BackupRequest};
use cellar_core::queue::{self, NewJob};
use cellar_core::restore::{RestoreRequest, RestoreState, catalog as restores};
use cellar_tests::chaos::fingerprint;
use cellar_tests::rig::Rig;
use cellar_tests::{TestDb, wait_for};
use cellar_worker::{JobContext, JobError, JobOutput, RunOnce, Worker, WorkerConfig};
use serde_json::json;

const EVENTS: &str = "subscription { jobEvents { id state } }";

/// Subscribes to jobEvents with `token` in the background; the task returns how it ended.
fn listen(api: &Api, token: &str) -> tokio::task::JoinHandle<String> {
    let client = cellar_cli::client::Api::new(&api.url, Some(token.to_string()));
    tokio::spawn(async move {
        match client.subscribe(EVENTS, json!({}), |_| true).await {
            Ok(()) => "completed".into(),
            Err(e) => e.to_string(),
        }
    })
}

async fn ping(api: &Api) {
    let mut conn = api.pool.acquire().await.unwrap();
    queue::enqueue(&mut conn, &NewJob::new("ping", json!({})))
        .await
        .unwrap();
    let mut w = Worker::new(api.pool.clone(), WorkerConfig::default());
    w.register("ping", |_ctx: JobContext| async {
        Ok::<JobOutput, JobError>(None)
    });
    let w = std::sync::Arc::new(w);
    while w.run_once().await.unwrap() != RunOnce::Empty {}
}

async fn denied_events(api: &Api, action: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM audit_event WHERE action = $1 AND outcome = 'denied'
           AND error_code = 'UNAUTHENTICATED'",
    )
    .bind(action)
    .fetch_one(&api.pool)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_websockets_end_when_their_token_is_revoked_or_expires() {
    let api = Api::start().await;
    let (victim, _) = auth::create_token(&api.pool, "victim", Role::Master, None)
        .await
        .unwrap();
    let soon = chrono::Utc::now() + chrono::Duration::seconds(3);
    let (brief, _) = auth::create_token(&api.pool, "brief", Role::Viewer, Some(soon))
        .await
        .unwrap();
    let (revoked, expiring) = (listen(&api, &victim), listen(&api, &brief));
    wait_for(
        Duration::from_secs(10),
        "two live subscriptions",
        || async { api.state.hub.subscribers() >= 2 },
    )
    .await;
    ping(&api).await;
    auth::revoke_token(&api.pool, "victim").await.unwrap();
    let end = tokio::time::timeout(Duration::from_secs(15), revoked).await;
    let end = end.expect("a revoked token's websocket must end").unwrap();
    assert!(
        end.contains("UNAUTHENTICATED") || end.contains("authentic"),
        "{end}"
    );
    let end = tokio::time::timeout(Duration::from_secs(15), expiring).await;
    let end = end.expect("an expired token's websocket must end").unwrap();
    assert!(
        end.contains("UNAUTHENTICATED") || end.contains("authentic"),
        "{end}"
    );
    assert_eq!(
        denied_events(&api, "jobEvents").await,
        2,
        "both cut-offs audited"
    );

    // The dead tokens cannot open a new websocket or run a mutation; neither can junk.
    for bad in [
        victim.as_str(),
        brief.as_str(),
        "cellar_x",
        "not-a-token",
        "\u{0}\u{1}",
    ] {
        let end = listen(&api, bad).await.unwrap();
        assert!(
            end.contains("authentic") || end.contains("UNAUTH"),
            "{bad:?}: {end}"
        );
    }
    assert_eq!(denied_events(&api, "websocket").await, 5);
    let before = api.audit_count().await;
    let cancel = "mutation { cancelJob(id: \"1\") { id } }";
    for header in [
        "Bearer",
        "Bearer  ",
        "Basic dXNlcjpwYXNz",
        &format!("Token {}", api.master),
    ] {
        let body: serde_json::Value = api
            .http
            .post(format!("{}/graphql", api.url))
            .header("Authorization", header)
            .json(&json!({"query": cancel}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(code(&body), Some("UNAUTHENTICATED"), "{header}: {body}");
    }
    for t in [&victim, &brief] {
        let (_, body) = api.gql(Some(t), cancel, json!({})).await;
        assert_eq!(code(&body), Some("UNAUTHENTICATED"), "{body}");
    }
    assert_eq!(
        api.audit_count().await,
        before + 6,
        "every refused mutation audited"
    );
    let leaked = scalar(
        &api.pool,
        "SELECT count(*) FROM audit_event WHERE arguments::text LIKE '%cellar_%'",
    )
    .await;
    assert_eq!(leaked, 0, "no token text in the audit trail");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_ids_with_traversal_absolute_paths_or_nul_are_refused() {
    let api = Api::start().await;
    let real = api.completed_backup().await;
    let before = api.fingerprint().await;
    let ids = [
        "../../etc/passwd".to_string(),
        "/etc/passwd".into(),
        format!("/{real}"),
        format!("{real}\u{0}"),
        format!("{real}/../x"),
        format!("..\\{real}"),
        format!("{real}%2F..%2F"),
        "cellar_backup_2026-11-26_10-30-00_daily_3f9a/..".into(),
    ];
    let docs = [
        "query($id: ID!) { backup(id: $id) { id } }",
        "mutation($id: ID!) { verifyBackup(id: $id) { id } }",
        "mutation($id: ID!) { deleteBackup(id: $id) { id } }",
        "mutation($id: ID!) { restoreBackup(input: {backupId: $id, confirmRestore: true}) { id } }",
    ];
    for id in &ids {
        for doc in docs {
            let (_, body) = api.gql(Some(&api.master), doc, json!({"id": id})).await;
            assert_eq!(code(&body), Some("INVALID_INPUT"), "{id:?} {doc}: {body}");
            let msg = body["errors"][0]["message"].as_str().unwrap_or_default();
            assert!(!msg.contains('\0'), "the NUL is escaped in {msg:?}");
        }
    }
    assert_eq!(
        api.fingerprint().await,
        before,
        "nothing was enqueued or changed"
    );
}

/// Names that break naive quoting.
const HOSTILE: &str = r#"
CREATE SCHEMA "Sch""ema; DROP TABLE x;--";
CREATE TABLE "Sch""ema; DROP TABLE x;--"."Tä""ble;'--ü 表" (
  "i""d" int PRIMARY KEY, "na;me" text, "ünï ""côdé""" text, "$1" text);
INSERT INTO "Sch""ema; DROP TABLE x;--"."Tä""ble;'--ü 表"
  SELECT g, 'v' || g || E'\t;\\''"', 'ü' || g, NULL FROM generate_series(1, 300) g;
CREATE TABLE public."a.b" (x int);
INSERT INTO public."a.b" VALUES (1), (2);
CREATE TABLE public."Robert'); DROP TABLE students;--" (x text);
INSERT INTO public."Robert'); DROP TABLE students;--" VALUES ('bobby');
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_identifiers_are_backed_up_and_restored_faithfully() {
    let source = TestDb::empty().await;
    let pool = cellar_core::db::connect(&source.url, 1).await.unwrap();
    sqlx::raw_sql(HOSTILE).execute(&pool).await.unwrap();
    pool.close().await;
    let rig = Rig::new(source).await;
    let env = rig.backup_env();
    let mut w = Worker::new(rig.pool.clone(), WorkerConfig::default());
    cellar_worker::handlers::register_all(&mut w, env.clone());
    let w = std::sync::Arc::new(w);
    let selective = vec![
        r#""Sch""ema; DROP TABLE x;--"."Tä""ble;'--ü 表""#.to_string(),
        r#"public."a.b""#.to_string(),
    ];
    let run = async |req: BackupRequest| {
        let (id, _) = catalog::create(&rig.pool, &req).await.unwrap();
        while w.run_once().await.unwrap() != RunOnce::Empty {}
        let row = catalog::get(&rig.pool, &id).await.unwrap().unwrap();
        assert_eq!(row.state, BackupState::Completed, "{:?}", row.error);
        id
    };
    let restore = async |r: RestoreRequest| {
        let (rid, _) = restores::create(&rig.pool, &r).await.unwrap();
        while w.run_once().await.unwrap() != RunOnce::Empty {}
        let row = restores::get(&rig.pool, rid).await.unwrap().unwrap();
        assert_eq!(row.state, RestoreState::Completed, "{:?}", row.error);
    };
    let full = run(BackupRequest {
        source: "src".into(),
        verify: true,
        ..Default::default()
    })
    .await;
    let part = run(BackupRequest {
        source: "src".into(),
        tables: Some(selective),
        verify: true,
        ..Default::default()
    })
    .await;

    // The whole backup into a new database: identical, names included.
    let name = format!("{}_hostile", rig.source.name);
    let target = TestDb {
        url: cellar_tests::admin_url().with_database(&name),
        name: name.clone(),
    };
    let mut r = RestoreRequest::new(full);
    r.target_database = Some(name.clone());
    r.confirm = true;
    restore(r).await;
    let want = fingerprint(&rig.source).await;
    assert_eq!(fingerprint(&target).await, want);

    // The two chosen tables back into it after damage; the third keeps its change.
    let pool = cellar_core::db::connect(&target.url, 1).await.unwrap();
    sqlx::raw_sql(DAMAGE).execute(&pool).await.unwrap();
    pool.close().await;
    let mut r = RestoreRequest::new(part);
    r.target_database = Some(name);
    r.confirm = true;
    restore(r).await;
    let got = fingerprint(&target).await;
    let robert = |p: &str| {
        p.lines()
            .filter(|x| x.contains("Robert"))
            .collect::<String>()
    };
    let others = |p: &str| {
        p.lines()
            .filter(|x| !x.contains("Robert"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(others(&got), others(&want), "the chosen tables came back");
    assert_ne!(
        robert(&got),
        robert(&want),
        "an unchosen table was restored"
    );
}

/// Changes to all three tables of the restored copy.
const DAMAGE: &str = r#"
DELETE FROM "Sch""ema; DROP TABLE x;--"."Tä""ble;'--ü 表" WHERE "i""d" % 2 = 0;
UPDATE public."a.b" SET x = x + 10;
UPDATE public."Robert'); DROP TABLE students;--" SET x = 'changed';
"#;
