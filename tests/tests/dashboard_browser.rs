//! The dashboard in a real browser: starts `cellar-api` and `cellar-worker` on a fresh catalog
//! and source, creates a master and a viewer token, and runs `tests/browser` (playwright-core
//! driving Debian's headless `chromium`): sign in, a backup followed to 100 %, listed and
//! verified, the restore confirmation, a viewer without restore, a refused token, a phone
//! (`dashboard.test.mjs`); then schedules, retention and pins edited by a master, pins by an
//! operator, none of it editable by a viewer (`manage.test.mjs`), checked here in SQL after.
//! Screenshots land in `tests/browser/artifacts/`.
//!
//! Needs `chromium` (or `CHROMIUM=/path`), `node` and `npm ci` in `tests/browser`; without
//! them the test prints a loud SKIP, except under CI (`.ci/run` installs them), where it fails.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cellar_core::auth::{self, Role};
use cellar_core::format::KeyRing;
use cellar_tests::{TestDb, wait_for};

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("browser")
}

/// Chromium's path, when it and the test's npm packages are installed; a loud skip otherwise.
fn prerequisites() -> Option<PathBuf> {
    let chromium = std::env::var_os("CHROMIUM").map(PathBuf::from).or_else(|| {
        ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
            .map(PathBuf::from)
            .into_iter()
            .find(|p| p.exists())
    });
    let node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let modules = browser_dir().join("node_modules/playwright-core").is_dir();
    let missing: Vec<&str> = [
        (
            chromium.is_none(),
            "chromium (apt-get install chromium, or set CHROMIUM)",
        ),
        (!node, "node"),
        (
            !modules,
            "tests/browser/node_modules (cd tests/browser && npm ci)",
        ),
    ]
    .into_iter()
    .filter_map(|(gone, what)| gone.then_some(what))
    .collect();
    if missing.is_empty() {
        return chromium;
    }
    let msg = format!(
        "SKIP dashboard browser tests: missing {}",
        missing.join(", ")
    );
    assert!(std::env::var("CI").is_err(), "{msg}: required under CI");
    eprintln!("\n!!!!!!!! {msg} !!!!!!!!\n");
    None
}

fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().and_then(Path::parent).unwrap().join(name);
    assert!(
        path.exists(),
        "{} is missing: build the binaries first (scripts/test does)",
        path.display()
    );
    path
}

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(name: &str, env: &[(&str, String)], log: &Path) -> Proc {
    let file = std::fs::File::create(log).unwrap();
    let child = Command::new(bin(name))
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .unwrap();
    Proc(child)
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
        "INSERT INTO item SELECT g, md5(g::text) FROM generate_series(1, 50000) g",
    ] {
        sqlx::query(sql).execute(&pool).await.unwrap();
    }
    pool.close().await;
    db
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_in_headless_chromium() {
    let Some(chromium) = prerequisites() else {
        return;
    };
    let (catalog, pool) = TestDb::catalog().await;
    let src = source().await;
    let dir = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let env = [
        ("DATABASE_URL", catalog.url.expose().to_string()),
        ("CELLAR_SOURCE_URL", format!("src={}", src.url.expose())),
        ("CELLAR_LISTEN", listen.clone()),
        (
            "CELLAR_BACKUP_DIR",
            dir.path().join("backups").display().to_string(),
        ),
        ("CELLAR_ENCRYPTION_KEY", KeyRing::generate_entry()),
        ("CELLAR_BACKUP_JOBS", "2".into()),
    ];
    let _api = spawn("cellar-api", &env, &dir.path().join("api.log"));
    let _worker = spawn("cellar-worker", &env, &dir.path().join("worker.log"));
    let url = format!("http://{listen}");
    let http = cellar_core::http::client();
    wait_for(Duration::from_secs(30), "the API to be ready", || async {
        let r = http.get(format!("{url}/readyz")).send().await;
        r.is_ok_and(|r| r.status().is_success())
    })
    .await;
    let token = |role, name| {
        let pool = pool.clone();
        async move { auth::create_token(&pool, name, role, None).await.unwrap().0 }
    };
    let master = token(Role::Master, "browser-master").await;
    let viewer = token(Role::Viewer, "browser-viewer").await;

    let operator = token(Role::Operator, "browser-operator").await;

    let artifacts = browser_dir().join("artifacts");
    // In order: the first file starts on an empty catalog.
    for file in ["dashboard.test.mjs", "manage.test.mjs"] {
        let out = tokio::process::Command::new("node")
            .args(["--test", "--test-reporter=spec", file])
            .current_dir(browser_dir())
            .env("CELLAR_DASH_URL", &url)
            .env("CELLAR_MASTER_TOKEN", &master)
            .env("CELLAR_OPERATOR_TOKEN", &operator)
            .env("CELLAR_VIEWER_TOKEN", &viewer)
            .env("CHROMIUM", &chromium)
            .env("CELLAR_ARTIFACTS", &artifacts)
            .output();
        let out = tokio::time::timeout(Duration::from_secs(240), out)
            .await
            .unwrap_or_else(|_| panic!("{file} took over 4 minutes"))
            .unwrap();
        let report = String::from_utf8_lossy(&out.stdout);
        println!("{report}\n{}", String::from_utf8_lossy(&out.stderr));
        assert!(
            out.status.success(),
            "browser tests in {file} failed (screenshots in {}, logs in {}):\n{report}",
            artifacts.display(),
            dir.keep().display()
        );
    }
    catalog_after_manage(&pool).await;
}

/// What manage.test.mjs did, read back from the catalog in SQL: the changes it saw on screen
/// are stored, and each is audited under the token that made it.
async fn catalog_after_manage(pool: &sqlx::PgPool) {
    let (cron, enabled): (String, bool) =
        sqlx::query_as("SELECT cron, enabled FROM schedule WHERE name = 'daily'")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!((cron.as_str(), enabled), ("30 5 * * *", false));
    let gone: i64 =
        sqlx::query_scalar("SELECT count(*) FROM schedule WHERE name = 'browser-nightly'")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(gone, 0);
    let policy: (Option<i32>, Option<i32>) = sqlx::query_as(
        "SELECT max_count, max_age_days FROM retention_policy WHERE backup_type = 'weekly'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(policy, (Some(1), Some(30)));
    let pinned: Vec<String> =
        sqlx::query_scalar("SELECT backup_type::text FROM backup WHERE pinned")
            .fetch_all(pool)
            .await
            .unwrap();
    assert_eq!(pinned, ["weekly"]);
    let audit: Vec<(String, String)> = sqlx::query_as(
        "SELECT action, token_name FROM audit_event
         WHERE outcome = 'allowed' AND action IN ('upsertSchedule', 'setScheduleEnabled',
             'deleteSchedule', 'setRetentionPolicy', 'pinBackup', 'unpinBackup')
         ORDER BY id",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let got: Vec<(&str, &str)> = audit.iter().map(|(a, t)| (&a[..], &t[..])).collect();
    let m = "browser-master";
    let want = [
        ("upsertSchedule", m),
        ("setScheduleEnabled", m),
        ("upsertSchedule", m),
        ("deleteSchedule", m),
        ("setRetentionPolicy", m),
        ("pinBackup", m),
        ("unpinBackup", m),
        ("pinBackup", "browser-operator"),
    ];
    assert_eq!(got, want);
}
