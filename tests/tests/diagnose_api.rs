//! `diagnose` through the API: the API enqueues a `diagnose` job, a real worker (running its
//! loop in this process) runs every probe with its own configuration, and the API returns the
//! result; `health` sees the worker live.

mod api_common;

use std::sync::Arc;
use std::time::Duration;

use api_common::Api;
use cellar_core::format::KeyRing;
use cellar_core::health::diagnose::{DiagnoseSettings, Setup};
use cellar_core::health::workers;
use cellar_core::storage::DriveSettings;
use cellar_tests::wait_for;
use cellar_worker::{Worker, WorkerConfig};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diagnose_runs_on_a_worker_and_health_sees_it() {
    let api = Api::start().await;
    let dir = tempfile::tempdir().unwrap();
    // The worker protects the test catalog itself, as source `src`.
    let settings = cellar_tests::backup_settings(&api.db, dir.path(), &KeyRing::generate_entry());
    let setup = Setup::new(
        api.pool.clone(),
        &api.db.url,
        &settings,
        &DriveSettings::default(),
        &DiagnoseSettings::default(),
    );
    let mut w = Worker::new(api.pool.clone(), WorkerConfig::default());
    w.set_registry_config(workers::config_summary(
        &["src".into()],
        &DriveSettings::default(),
    ));
    cellar_worker::handlers::register_diagnose(&mut w, setup);
    let w = Arc::new(w);
    let stop = CancellationToken::new();
    let run = tokio::spawn(Arc::clone(&w).run(stop.clone()));
    let pool = api.pool.clone();
    wait_for(Duration::from_secs(10), "the worker registers", || {
        let p = pool.clone();
        async move { !workers::list(&p).await.unwrap().is_empty() }
    })
    .await;

    let q = "mutation { diagnose(timeoutSeconds: 60) { status ranOn probes { name status detail fix } } }";
    let (status, body) = api.gql(Some(&api.operator), q, json!({})).await;
    assert_eq!(status, 200);
    let d = &body["data"]["diagnose"];
    assert!(
        d["ranOn"].as_str().unwrap().contains(&w.id().to_string()),
        "{body}"
    );
    let probe = |name: &str| -> Value {
        d["probes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {name}: {body}"))
    };
    for name in [
        "catalog",
        "workers",
        "source src",
        "pg_dump src",
        "local storage",
    ] {
        assert_eq!(probe(name)["status"], "OK", "{name}: {body}");
    }
    assert_eq!(probe("google drive")["status"], "SKIPPED", "{body}");
    assert_eq!(d["status"], "OK", "{body}");

    let (_, h) = api
        .gql(Some(&api.viewer), "{ health { status metrics { liveWorkers workers { pid live } } configuration { sources driveConfigured } } }", json!({}))
        .await;
    assert_eq!(h["data"]["health"]["metrics"]["liveWorkers"], 1, "{h}");
    assert_eq!(
        h["data"]["health"]["metrics"]["workers"][0]["live"], true,
        "{h}"
    );
    // The catalog is the source and no backup completed: critical.
    assert_eq!(h["data"]["health"]["status"], "CRITICAL", "{h}");

    // Diagnose jobs leave an audit trail with their job id.
    let last = api
        .state
        .services
        .audit_log(&api_common_master(&api).await, Some(1), None)
        .await
        .unwrap();
    assert_eq!(last.rows[0].action, "diagnose");
    assert!(last.rows[0].job_id.is_some());

    stop.cancel();
    run.await.unwrap();
    // With the worker gone, diagnose says so at once instead of waiting.
    let (_, body) = api.gql(Some(&api.master), q, json!({})).await;
    let d = &body["data"]["diagnose"];
    assert_eq!(d["status"], "FAILED", "{body}");
    assert_eq!(d["probes"][1]["name"], "workers", "{body}");
    assert_eq!(d["probes"][1]["status"], "FAILED", "{body}");
}

async fn api_common_master(api: &Api) -> cellar_api::service::Caller {
    let principal = cellar_core::auth::authenticate(&api.pool, &api.master)
        .await
        .unwrap();
    cellar_api::service::Caller {
        principal,
        addr: None,
    }
}
