//! End to end with the real processes: `cellar-api` and `cellar-worker` binaries on a fresh
//! catalog. A backup is created over GraphQL, followed over a websocket subscription to its
//! end, listed, restored into a new database (dbdiff against the source), deleted; the `cellar` CLI binary is checked for its exit codes.
//!
//! The binaries are found next to this test's directory (`target/debug/`): `scripts/test`
//! builds them first (`cargo test` alone does not build other packages' binaries).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cellar_core::auth::{self, Role};
use cellar_core::format::KeyRing;
use cellar_tests::{TestDb, wait_for};
use serde_json::{Value, json};

fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().and_then(Path::parent).unwrap().join(name);
    assert!(
        path.exists(),
        "{} is missing: build the binaries first (scripts/test does: cargo build --workspace --bins)",
        path.display()
    );
    path
}

/// A child process killed when dropped; its log goes to a file for post-mortems.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(name: &str, env: &[(&str, String)], log: &Path) -> Proc {
    let file = std::fs::File::create(log).unwrap();
    let mut cmd = Command::new(bin(name));
    cmd.envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(file);
    Proc(cmd.spawn().unwrap())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn source() -> TestDb {
    let db = TestDb::empty().await;
    let pool = cellar_core::db::connect(&db.url, 1).await.unwrap();
    for sql in [
        "CREATE TABLE item (id int PRIMARY KEY, label text NOT NULL)",
        "INSERT INTO item SELECT g, md5(g::text) FROM generate_series(1, 20000) g",
    ] {
        sqlx::query(sql).execute(&pool).await.unwrap();
    }
    pool.close().await;
    db
}

fn cli(url: &str, token: Option<&str>, args: &[&str]) -> (i32, String) {
    let mut cmd = Command::new(bin("cellar"));
    cmd.args(args)
        .env("CELLAR_URL", url)
        .env_remove("CELLAR_TOKEN");
    if let Some(t) = token {
        cmd.env("CELLAR_TOKEN", t);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
    )
}

const FOLLOW: &str = "subscription($id: ID!) { jobProgress(id: $id) { id state attempt \
    progress { phase percent bytesDone bytesTotal rowsDone tablesDone tablesTotal throughput eta } } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_over_graphql_followed_live_listed_and_deleted() {
    let (catalog, pool) = TestDb::catalog().await;
    let src = source().await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://127.0.0.1:{}", free_port());
    let env = [
        ("DATABASE_URL", catalog.url.expose().to_string()),
        ("CELLAR_SOURCE_URL", format!("src={}", src.url.expose())),
        (
            "CELLAR_LISTEN",
            url.trim_start_matches("http://").to_string(),
        ),
        (
            "CELLAR_BACKUP_DIR",
            dir.path().join("backups").display().to_string(),
        ),
        ("CELLAR_ENCRYPTION_KEY", KeyRing::generate_entry()),
        ("CELLAR_BACKUP_JOBS", "2".into()),
    ];
    let _api = spawn("cellar-api", &env, &dir.path().join("api.log"));
    let _worker = spawn("cellar-worker", &env, &dir.path().join("worker.log"));
    let http = cellar_core::http::client();
    wait_for(Duration::from_secs(30), "the API to be ready", || async {
        let r = http.get(format!("{url}/readyz")).send().await;
        r.is_ok_and(|r| r.status().is_success())
    })
    .await;
    let (token, _) = auth::create_token(&pool, "e2e", Role::Master, None)
        .await
        .unwrap();
    let api = cellar_cli::client::Api::new(&url, Some(token.clone()));

    let create = "mutation { createBackup(input: {backupType: MANUAL, verifyBackup: true, source: \"src\"}) { id backup { id } } }";
    let job = api.request(create, json!({})).await.unwrap()["createBackup"].clone();
    let backup_id = job["backup"]["id"].as_str().unwrap().to_string();
    let updates = follow(&api, &job["id"]).await;
    let last = updates.last().unwrap();
    assert_eq!(
        last["state"],
        "COMPLETED",
        "{updates:?}\nlogs in {}",
        dir.path().display()
    );
    assert_eq!(last["progress"]["phase"], "done", "{last}");
    assert!(
        updates.len() >= 2,
        "a state change before the end: {updates:?}"
    );

    let list = "{ backups { nodes { id status verification { status summary { totalRecords totalTables } } \
                storage { localAvailable driveAvailable } sizes { storedBytes } } statistics { totalBackups byType byStatus } } }";
    let page = api.request(list, json!({})).await.unwrap()["backups"].clone();
    let b = &page["nodes"][0];
    assert_eq!(b["id"], backup_id.as_str(), "{page}");
    assert_eq!(b["status"], "COMPLETED");
    assert_eq!(b["verification"]["status"], "valid", "{b}");
    assert_eq!(b["verification"]["summary"]["totalRecords"], 20000.0, "{b}");
    assert_eq!(b["storage"]["localAvailable"], true);
    assert_eq!(page["statistics"]["byType"], json!({"manual": 1}), "{page}");

    check_cli_exit_codes(&url, &token, &backup_id);
    restore_into_a_new_database(&api, (&url, &token), &backup_id, &src).await;

    let delete = "mutation($id: ID!) { deleteBackup(id: $id) { id } }";
    let job = api.request(delete, json!({"id": backup_id})).await.unwrap()["deleteBackup"].clone();
    let updates = follow(&api, &job["id"]).await;
    assert_eq!(updates.last().unwrap()["state"], "COMPLETED", "{updates:?}");
    let show = "query($id: ID!) { backup(id: $id) { status storage { localAvailable } } }";
    let b = api.request(show, json!({"id": backup_id})).await.unwrap()["backup"].clone();
    assert_eq!(
        b,
        json!({"status": "DELETED", "storage": {"localAvailable": false}})
    );
    assert!(
        !dir.path()
            .join("backups")
            .join(&backup_id)
            .join("MANIFEST")
            .exists()
    );
}

/// A restore into a new database: refused over GraphQL without confirmRestore and by the CLI
/// without --yes, then run by `cellar restore --yes --wait --json` (one JSON line per progress
/// update) to its end; the result equals the source.
async fn restore_into_a_new_database(
    api: &cellar_cli::client::Api,
    (url, token): (&str, &str),
    backup_id: &str,
    src: &TestDb,
) {
    let target = format!("{}_restored", src.name);
    let restore = "mutation($input: RestoreBackupInput!) { restoreBackup(input: $input) { id } }";
    let input = json!({"backupId": backup_id, "targetDatabase": target});
    let refused = api.request(restore, json!({"input": input})).await;
    assert!(
        format!("{refused:?}").contains("confirmRestore"),
        "{refused:?}"
    );
    let args = ["--json", "restore", backup_id, "--target-database", &target];
    assert_eq!(cli(url, Some(token), &args).0, 2, "without --yes");
    let (code, out) = cli(
        url,
        Some(token),
        &[&args[..], &["--yes", "--wait"]].concat(),
    );
    let done: Value = serde_json::from_str(out.lines().last().unwrap_or("null")).unwrap();
    let result = match cellar_tests::shared_dir() {
        Some(shared) => std::process::Command::new(shared.join("tools/dbdiff"))
            .args([&src.name, &target])
            .output()
            .map(|o| {
                (
                    o.status.success(),
                    String::from_utf8_lossy(&o.stdout).into_owned(),
                )
            }),
        None => Ok((true, "dbdiff skipped".into())),
    };
    cellar_tests::psql_admin(&format!(
        "DROP DATABASE IF EXISTS \"{target}\" WITH (FORCE)"
    ));
    assert_eq!((code, &done["state"]), (0, &json!("COMPLETED")), "{out}");
    assert!(out.lines().count() > 1, "progress lines expected: {out}");
    let (same, report) = result.unwrap();
    assert!(same, "restored database differs from the source: {report}");
}

async fn follow(api: &cellar_cli::client::Api, id: &Value) -> Vec<Value> {
    let mut seen = Vec::new();
    let sub = api.subscribe(FOLLOW, json!({"id": id}), |d| {
        seen.push(d["jobProgress"].clone());
        true
    });
    tokio::time::timeout(Duration::from_secs(120), sub)
        .await
        .unwrap()
        .unwrap();
    seen
}

fn check_cli_exit_codes(url: &str, token: &str, backup_id: &str) {
    let (code, out) = cli(url, Some(token), &["--json", "backup", "list"]);
    assert_eq!(code, 0, "{out}");
    let page: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(page["nodes"][0]["id"], backup_id);
    assert_eq!(cli(url, None, &["backup", "list"]).0, 3, "no token");
    assert_eq!(
        cli(url, Some(token), &["backup", "show", "../../etc/passwd"]).0,
        2
    );
    let unknown = "cellar_backup_2020-01-01_00-00-00_manual_abcd";
    assert_eq!(cli(url, Some(token), &["backup", "show", unknown]).0, 4);
    assert_eq!(
        cli("http://127.0.0.1:9", Some(token), &["backup", "list"]).0,
        6
    );
    let (code, out) = cli(url, Some(token), &["--json", "job", "show", "1"]);
    assert_eq!(code, 0, "{out}");
}
