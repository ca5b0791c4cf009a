//! Chaos around the API processes: a `cellar-api` SIGKILLed and restarted while subscriptions
//! are open (clients reconnect and see the final state), and two APIs with three workers at
//! once (every job runs once; subscribers on either API see every job's every state).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cellar_cli::client::Api;
use cellar_core::auth::{self, Role};
use cellar_core::queue::JobState;
use cellar_tests::chaos::{self, Tally};
use cellar_tests::procs::free_port;
use cellar_tests::rig::{self, Rig};
use cellar_tests::wait_for;
use serde_json::{Value, json};

const CREATE: &str = "mutation { createBackup(input: {source: \"src\"}) { id backup { id } } }";
const FOLLOW: &str = "subscription($id: ID!) { jobProgress(id: $id) { id state attempt } }";
const EVENTS: &str = "subscription { jobEvents { id state attempt } }";

async fn ready(url: &str) {
    let http = cellar_core::http::client();
    wait_for(Duration::from_secs(60), "the API to be ready", || async {
        let r = http.get(format!("{url}/readyz")).send().await;
        r.is_ok_and(|r| r.status().is_success())
    })
    .await;
}

async fn token(rig: &Rig) -> String {
    auth::create_token(&rig.pool, "chaos", Role::Master, None)
        .await
        .unwrap()
        .0
}

/// Follows job `id` to its final state, reconnecting whenever the connection drops; returns the
/// last state seen and how many connections it took.
async fn follow_reconnecting(api: Api, id: Value) -> (String, usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut connections = 0;
    loop {
        connections += 1;
        let mut last = String::new();
        let r = api
            .subscribe(FOLLOW, json!({"id": id}), |d| {
                last = d["jobProgress"]["state"]
                    .as_str()
                    .unwrap_or_default()
                    .into();
                true
            })
            .await;
        if r.is_ok() && matches!(last.as_str(), "COMPLETED" | "DISCARDED" | "CANCELLED") {
            return (last, connections);
        }
        assert!(Instant::now() < deadline, "never saw the end: {r:?}");
        // Reconnect pacing while the API is down (a client's backoff), not a wait on a condition.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_see_the_final_state_across_an_api_restart() {
    let n = chaos::trials(2);
    let mut rig = Rig::new(rig::source(80_000).await).await;
    let addr = format!("127.0.0.1:{}", free_port());
    let url = format!("http://{addr}");
    let mut api_proc = rig.api(&addr);
    let _worker = rig.worker();
    ready(&url).await;
    let api = Api::new(&url, Some(token(&rig).await));
    let mut t = Tally::default();
    for _ in 0..n {
        let job = api.request(CREATE, json!({})).await.unwrap()["createBackup"]["id"].clone();
        let followers: Vec<_> = (0..3)
            .map(|_| tokio::spawn(follow_reconnecting(api.clone(), job.clone())))
            .collect();
        let id: i64 = job.as_str().unwrap().parse().unwrap();
        rig.until_running(id).await;
        api_proc.kill();
        api_proc = rig.api(&addr);
        ready(&url).await;
        for f in followers {
            let (last, connections) = f.await.unwrap();
            assert_eq!(last, "COMPLETED");
            t.add(format!(
                "final state seen after {connections} connection(s)"
            ));
        }
        assert_eq!(rig.job(id).await.state, JobState::Completed);
    }
    t.report("api restart");
}

/// Collects `jobEvents` from one API into `seen` (job id -> states) until `stop` is set.
fn collect(
    api: Api,
    seen: Arc<Mutex<BTreeMap<String, BTreeSet<String>>>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let _ = api
            .subscribe(EVENTS, json!({}), |d| {
                let e = &d["jobEvents"];
                let id = e["id"].as_str().unwrap_or_default().to_string();
                let state = e["state"].as_str().unwrap_or_default().to_string();
                seen.lock().unwrap().entry(id).or_default().insert(state);
                true
            })
            .await;
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_apis_three_workers_every_job_once_every_event_everywhere() {
    let jobs = 2 * chaos::trials(2) + 2;
    let mut rig = Rig::new(rig::source(5_000).await).await;
    let urls: Vec<String> = (0..2)
        .map(|_| format!("127.0.0.1:{}", free_port()))
        .collect();
    let _apis: Vec<_> = urls.iter().map(|a| rig.api(a)).collect();
    let urls: Vec<String> = urls.iter().map(|a| format!("http://{a}")).collect();
    for u in &urls {
        ready(u).await;
    }
    let tok = token(&rig).await;
    let clients: Vec<Api> = urls
        .iter()
        .map(|u| Api::new(u, Some(tok.clone())))
        .collect();
    let seen: Vec<_> = (0..2)
        .map(|_| Arc::new(Mutex::new(BTreeMap::new())))
        .collect();
    let _subs: Vec<_> = (0..2)
        .map(|i| collect(clients[i].clone(), Arc::clone(&seen[i])))
        .collect();
    let workers: Vec<_> = (0..3).map(|_| rig.worker()).collect();
    // Both subscriptions are live once both see a warm-up job's events (a job created before a
    // subscription was up is missed by design: `jobEvents` starts now).
    let mut warm = Vec::new();
    let live = |id: String| {
        let seen = &seen;
        async move {
            seen.iter().all(|s| {
                s.lock()
                    .unwrap()
                    .get(&id)
                    .is_some_and(|st| st.contains("COMPLETED"))
            })
        }
    };
    loop {
        let r = clients[0].request(CREATE, json!({})).await.unwrap();
        let id = r["createBackup"]["id"].as_str().unwrap().to_string();
        warm.push(id.clone());
        rig.until_final(id.parse().unwrap(), Duration::from_secs(60))
            .await;
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(3) && !live(id.clone()).await {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if live(id).await {
            break;
        }
        assert!(warm.len() < 10, "the subscriptions never came up");
    }

    let mut ids = Vec::new();
    for i in 0..jobs {
        let r = clients[i % 2].request(CREATE, json!({})).await.unwrap();
        ids.push(r["createBackup"]["id"].as_str().unwrap().to_string());
    }
    for id in ids.iter().chain(&warm) {
        let row = rig
            .until_final(id.parse().unwrap(), Duration::from_secs(180))
            .await;
        assert_eq!(row.state, JobState::Completed, "{row:?}");
        assert_eq!(row.attempt, 1, "job {id} ran more than once: {row:?}");
    }
    wait_for(
        Duration::from_secs(30),
        "every final state on both APIs",
        || async {
            seen.iter().all(|s| {
                let s = s.lock().unwrap();
                ids.iter()
                    .all(|id| s.get(id).is_some_and(|st| st.contains("COMPLETED")))
            })
        },
    )
    .await;
    for s in &seen {
        let s = s.lock().unwrap();
        for id in &ids {
            let states = &s[id];
            assert!(
                states.contains("RUNNING") && states.contains("COMPLETED"),
                "{id}: {states:?}"
            );
        }
    }
    // Only the jobs created once both subscriptions were live: the warm-up jobs may have
    // started before one API's subscription came up, so that API never saw them RUNNING.
    let after_warmup = |s: &Mutex<BTreeMap<String, BTreeSet<String>>>| {
        let s = s.lock().unwrap();
        ids.iter()
            .map(|id| (id.clone(), s[id].clone()))
            .collect::<BTreeMap<_, _>>()
    };
    let (a, b) = (after_warmup(&seen[0]), after_warmup(&seen[1]));
    assert_eq!(a, b, "the two APIs saw different events");
    let claimed_by: BTreeSet<String> = workers
        .iter()
        .filter(|w| w.log_text().contains("backup"))
        .map(|w| w.log.display().to_string())
        .collect();
    eprintln!(
        "chaos two APIs: {} jobs, each run once; both APIs saw the same {} (job, state) pairs; {} workers logged backup work",
        ids.len(),
        a.values().map(BTreeSet::len).sum::<usize>(),
        claimed_by.len()
    );
}
