//! Subscriptions over both websocket protocols, token checks at connection time, and the
//! listener reconnect: a job that ends while the API's LISTEN connection is down is still
//! reported, from the re-read after the reconnect.

mod api_common;

use std::sync::Arc;
use std::time::Duration;

use api_common::Api;
use cellar_core::queue::{self, NewJob};
use cellar_tests::wait_for;
use cellar_worker::{JobContext, JobError, JobOutput, RunOnce, Worker, WorkerConfig};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const FOLLOW: &str = "subscription($id: ID!) { jobProgress(id: $id) { id state attempt } }";

fn ping_worker(api: &Api) -> Arc<Worker> {
    let mut w = Worker::new(api.pool.clone(), WorkerConfig::default());
    w.register("ping", |_ctx: JobContext| async {
        Ok::<JobOutput, JobError>(None)
    });
    Arc::new(w)
}

async fn enqueue(api: &Api) -> i64 {
    let mut conn = api.pool.acquire().await.unwrap();
    queue::enqueue(&mut conn, &NewJob::new("ping", json!({})))
        .await
        .unwrap()
        .id
}

/// Follows job `id` with the CLI's client (graphql-transport-ws) in the background.
fn follow(api: &Api, id: i64) -> tokio::task::JoinHandle<Vec<Value>> {
    let client = api.client(&api.viewer);
    tokio::spawn(async move {
        let mut seen = Vec::new();
        client
            .subscribe(FOLLOW, json!({"id": id}), |d| {
                seen.push(d["jobProgress"].clone());
                true
            })
            .await
            .expect("subscription");
        seen
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transport_ws_follows_a_job_to_its_end() {
    let api = Api::start().await;
    let id = enqueue(&api).await;
    let seen = follow(&api, id);
    // The first item is the job as it is now; wait for it before running the job.
    wait_for(Duration::from_secs(10), "a subscriber", || async {
        api.state.hub.subscribers() > 0
    })
    .await;
    assert_eq!(ping_worker(&api).run_once().await.unwrap(), RunOnce::Ran(1));
    let seen = tokio::time::timeout(Duration::from_secs(20), seen)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seen.first().unwrap()["state"], "AVAILABLE", "{seen:?}");
    assert_eq!(seen.last().unwrap()["state"], "COMPLETED", "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_graphql_ws_protocol_and_token_checks() {
    let api = Api::start().await;
    let id = enqueue(&api).await;
    let connect = |proto: &'static str| {
        let mut req = format!("{}/graphql/ws", api.url.replacen("http", "ws", 1))
            .into_client_request()
            .unwrap();
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", proto.parse().unwrap());
        async move { tokio_tungstenite::connect_async(req).await.unwrap().0 }
    };
    // No token: the connection is refused at init, on both protocols.
    for proto in ["graphql-transport-ws", "graphql-ws"] {
        let mut ws = connect(proto).await;
        ws.send(Message::text(
            json!({"type": "connection_init", "payload": {}}).to_string(),
        ))
        .await
        .unwrap();
        let refusal = ws.next().await.unwrap().unwrap().to_string();
        assert!(
            refusal.contains("authentication required"),
            "{proto}: {refusal}"
        );
    }
    // The legacy protocol (subscriptions-transport-ws): start / data / complete.
    let mut ws = connect("graphql-ws").await;
    let init = json!({"type": "connection_init", "payload": {"token": api.viewer}});
    ws.send(Message::text(init.to_string())).await.unwrap();
    let start =
        json!({"id": "1", "type": "start", "payload": {"query": FOLLOW, "variables": {"id": id}}});
    let mut states = Vec::new();
    let mut started = false;
    while let Some(msg) = tokio::time::timeout(Duration::from_secs(20), ws.next())
        .await
        .unwrap()
    {
        let m: Value = serde_json::from_str(&msg.unwrap().to_string()).unwrap_or(Value::Null);
        match m["type"].as_str().unwrap_or_default() {
            "connection_ack" => ws.send(Message::text(start.to_string())).await.unwrap(),
            "data" => {
                states.push(m["payload"]["data"]["jobProgress"]["state"].clone());
                if !started {
                    started = true;
                    ping_worker(&api).run_once().await.unwrap();
                }
            }
            "complete" => break,
            _ => {}
        }
    }
    assert_eq!(states.first().unwrap(), "AVAILABLE", "{states:?}");
    assert_eq!(states.last().unwrap(), "COMPLETED", "{states:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_final_state_during_a_listener_outage_is_not_missed() {
    let api = Api::start().await;
    let id = enqueue(&api).await;
    let seen = follow(&api, id);
    wait_for(Duration::from_secs(10), "a subscriber", || async {
        api.state.hub.subscribers() > 0
    })
    .await;
    // Cut the API's LISTEN connection, and finish the job while it is down: its NOTIFY is lost.
    let kill = "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                WHERE datname = current_database() AND query LIKE 'LISTEN%'";
    let killed: i64 = sqlx::query_scalar(kill).fetch_one(&api.pool).await.unwrap();
    assert!(killed >= 1, "the API's listener connection was found");
    assert_eq!(ping_worker(&api).run_once().await.unwrap(), RunOnce::Ran(1));
    let seen = tokio::time::timeout(Duration::from_secs(20), seen)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seen.last().unwrap()["state"], "COMPLETED", "{seen:?}");
    assert!(api.state.hub.reconnects() >= 1);
}
