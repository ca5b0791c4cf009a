//! The orchestrator probes over real HTTP: `/healthz` answers 200 whatever the catalog does;
//! `/readyz` answers 200 while the catalog answers and 503 when it does not (its database
//! dropped under a running API, or Postgres not listening at all).

mod api_common;

use std::time::{Duration, Instant};

use api_common::Api;
use cellar_tests::procs::free_port;
use serde_json::Value;
use sqlx::postgres::PgPoolOptions;
use tokio_util::sync::CancellationToken;

/// GETs `path` on `url`: (status, JSON body).
async fn probe(url: &str, path: &str) -> (u16, Value) {
    let resp = cellar_core::http::client()
        .get(format!("{url}{path}"))
        .send()
        .await
        .expect("the API answers");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("a JSON body"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_turns_503_when_the_catalog_database_is_dropped_and_healthz_stays_200() {
    let api = Api::start().await;
    let (status, body) = probe(&api.url, "/healthz").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    let (status, body) = probe(&api.url, "/readyz").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ready")));

    cellar_tests::psql_admin(&format!("DROP DATABASE \"{}\" WITH (FORCE)", api.db.name));
    let (status, body) = probe(&api.url, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "unavailable");
    assert_eq!(
        body["reason"], "catalog database unreachable",
        "no internals: {body}"
    );
    // Alive is not ready: the process still answers.
    assert_eq!(probe(&api.url, "/healthz").await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_503_when_postgres_does_not_listen() {
    // A port nothing listens on; the pool connects lazily and gives up after a second.
    let url = format!("postgres://postgres@127.0.0.1:{}/cellar", free_port());
    let pool = PgPoolOptions::new()
        .acquire_timeout(Duration::from_secs(1))
        .connect_lazy(&url)
        .unwrap();
    let stop = CancellationToken::new();
    let state = cellar_api::AppState::new(pool, vec!["src".into()], false, stop.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let s = stop.clone();
    tokio::spawn(cellar_api::serve(listener, state, async move {
        s.cancelled().await
    }));

    assert_eq!(probe(&base, "/healthz").await.0, 200);
    let started = Instant::now();
    let (status, body) = probe(&base, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "unavailable");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the probe answers within the pool's acquire timeout"
    );
    stop.cancel();
}
