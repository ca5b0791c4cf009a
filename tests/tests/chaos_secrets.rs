//! Secrets stay secret: a backup (verified, copied to the fake Drive), a failed request and a
//! restore run through real `cellar-api` and `cellar-worker` processes at `RUST_LOG=debug`, with
//! a known master key, API token, Drive service-account key and a source password in the URL.
//! Everything the run produced is then searched for each secret: every process log line, every
//! GraphQL response, the audit trail and every catalog table (`pg_dump` of the catalog).

use std::time::Duration;

use cellar_cli::client::Api;
use cellar_core::auth::{self, Role};
use cellar_tests::fake_drive::FakeDrive;
use cellar_tests::procs::free_port;
use cellar_tests::rig::{self, Rig};
use cellar_tests::{TestDb, psql_admin, wait_for};
use serde_json::{Value, json};

const FOLLOW: &str = "subscription($id: ID!) { jobProgress(id: $id) { id state error } }";

async fn follow(api: &Api, id: &Value, out: &mut String) -> String {
    let mut last = String::new();
    let sub = api.subscribe(FOLLOW, json!({"id": id}), |d| {
        out.push_str(&d.to_string());
        last = d["jobProgress"]["state"]
            .as_str()
            .unwrap_or_default()
            .into();
        true
    });
    tokio::time::timeout(Duration::from_secs(180), sub)
        .await
        .unwrap()
        .unwrap();
    last
}

/// A role with a password, so the source URL carries one (auth is trust; the URL still does).
struct Role_(String);

impl Drop for Role_ {
    fn drop(&mut self) {
        psql_admin(&format!("DROP ROLE IF EXISTS {}", self.0));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_appears_in_logs_responses_audit_or_catalog() {
    let source = rig::source(5_000).await;
    let role = Role_(format!(
        "chaos_pw_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    ));
    let password = format!("Pw-{}", uuid::Uuid::new_v4().simple());
    psql_admin(&format!(
        "CREATE ROLE {} LOGIN SUPERUSER PASSWORD '{password}'",
        role.0
    ));
    let with_password = format!(
        "postgres://{}:{password}@127.0.0.1:5432/{}",
        role.0, source.name
    );
    let src = TestDb {
        name: source.name.clone(),
        url: with_password.parse().unwrap(),
    };
    std::mem::forget(source); // `src` drops the database
    let fake = FakeDrive::start().await;
    let mut rig = Rig::new(src).await;
    rig.use_drive(&fake);
    rig.extra.push(("RUST_LOG".into(), "debug".into()));
    let addr = format!("127.0.0.1:{}", free_port());
    let _api_proc = rig.api(&addr);
    let _worker = rig.worker();
    let url = format!("http://{addr}");
    let http = cellar_core::http::client();
    wait_for(Duration::from_secs(60), "the API", || async {
        let r = http.get(format!("{url}/readyz")).send().await;
        r.is_ok_and(|r| r.status().is_success())
    })
    .await;
    let (token, _) = auth::create_token(&rig.pool, "secrets", Role::Master, None)
        .await
        .unwrap();
    let api = Api::new(&url, Some(token.clone()));
    let mut responses = String::new();
    let ask = async |doc: &str, vars: Value, out: &mut String| {
        let r = api.request(doc, vars).await;
        out.push_str(&format!("{r:?}"));
        r
    };

    let create = "mutation { createBackup(input: {verifyBackup: true, uploadToDrive: true}) { id backup { id } } }";
    let r = ask(create, json!({}), &mut responses).await.unwrap();
    let backup = r["createBackup"]["backup"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        follow(&api, &r["createBackup"]["id"], &mut responses).await,
        "COMPLETED"
    );
    let drive = "query($id: ID!) { backup(id: $id) { storage { driveAvailable } } }";
    wait_for(Duration::from_secs(120), "the Drive copy", || async {
        let r = api.request(drive, json!({"id": backup})).await.unwrap();
        r["backup"]["storage"]["driveAvailable"] == true
    })
    .await;
    let target = format!("{}_secret_restore", rig.source.name);
    let restore = "mutation($b: ID!, $t: String) { restoreBackup(input: {backupId: $b, targetDatabase: $t, confirmRestore: true}) { id } }";
    let r = ask(restore, json!({"b": backup, "t": target}), &mut responses)
        .await
        .unwrap();
    let state = follow(&api, &r["restoreBackup"]["id"], &mut responses).await;
    psql_admin(&format!(
        "DROP DATABASE IF EXISTS \"{target}\" WITH (FORCE)"
    ));
    assert_eq!(state, "COMPLETED");
    // Failures too: a source that does not exist, a database name that cannot exist.
    let bad = "mutation { createBackup(input: {source: \"nope\"}) { id } }";
    let _ = ask(bad, json!({}), &mut responses).await;
    let long = "x".repeat(80);
    let _ = ask(restore, json!({"b": backup, "t": long}), &mut responses).await;
    for q in [
        "{ backups { nodes { id error warnings verification { status } storage { localAvailable driveAvailable } } } }",
        "{ jobs { nodes { id kind state error args result progress { phase } } } }",
        "{ auditLog { nodes { action arguments outcome errorCode } } }",
    ] {
        let _ = ask(q, json!({}), &mut responses).await;
    }

    let catalog = std::process::Command::new("pg_dump")
        .args(["--data-only", "-d", rig.catalog.url.expose()])
        .output()
        .unwrap();
    assert!(catalog.status.success());
    let catalog = String::from_utf8_lossy(&catalog.stdout).into_owned();
    let creds = std::fs::read_to_string(rig.dir.path().join("fake-drive-key.json")).unwrap();
    let private_key: Value = serde_json::from_str(&creds).unwrap();
    let pem = private_key["private_key"].as_str().unwrap();
    let pem_line = pem.lines().nth(5).unwrap().to_string();
    let master = rig.key.split_once(':').unwrap().1.to_string();
    let logs = rig.logs();
    assert!(logs.lines().count() > 50, "debug logs were captured");
    assert!(catalog.contains(&backup) && responses.contains(&backup));
    for (what, secret) in [
        ("master key", master.as_str()),
        ("API token", token.as_str()),
        ("API token body", &token["cellar_".len()..]),
        ("Drive private key", pem_line.as_str()),
        ("source password", password.as_str()),
    ] {
        for (place, text) in [
            ("logs", &logs),
            ("GraphQL responses", &responses),
            ("catalog", &catalog),
        ] {
            assert!(!text.contains(secret), "the {what} appears in the {place}");
        }
    }
    eprintln!(
        "chaos secrets: 5 secrets absent from {} log lines, {} bytes of responses, {} bytes of catalog",
        logs.lines().count(),
        responses.len(),
        catalog.len()
    );
}
