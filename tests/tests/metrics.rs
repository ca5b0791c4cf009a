//! `/metrics`: a token is needed, the exposition parses line by line (HELP and TYPE once per
//! family, before its samples; valid names, labels and values), counters move when a backup
//! finishes and not when one is deleted, the verification gauge follows re-verification, and
//! restores and live workers are counted.

mod api_common;

use std::collections::{HashMap, HashSet};

use api_common::Api;
use cellar_core::backup::catalog::{self, BackupRequest};
use cellar_core::backup::{BackupId, BackupType, delete};
use cellar_core::health::workers;
use serde_json::json;

/// Checks every line of a text exposition (format 0.0.4) and returns the samples, keyed by
/// `name{labels}` as written.
fn parse(text: &str) -> HashMap<String, f64> {
    let mut helped = HashSet::new();
    let mut typed: HashMap<String, String> = HashMap::new();
    let mut samples = HashMap::new();
    assert!(text.ends_with('\n'), "the exposition ends with a newline");
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("HELP has a name and text");
            assert!(valid_name(name), "bad name in {line:?}");
            assert!(!help.is_empty(), "empty HELP: {line:?}");
            assert!(helped.insert(name.to_string()), "HELP twice for {name}");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE has a name and a type");
            assert!(valid_name(name), "bad name in {line:?}");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line:?}"
            );
            assert!(
                typed.insert(name.to_string(), kind.to_string()).is_none(),
                "TYPE twice for {name}"
            );
            continue;
        }
        assert!(
            !line.starts_with('#') && !line.is_empty(),
            "unexpected line {line:?}"
        );
        let (series, value) = line.rsplit_once(' ').expect("a sample has a value");
        let v: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        let name = series.split('{').next().unwrap();
        assert!(valid_name(name), "bad metric name in {line:?}");
        if let Some(labels) = series.strip_prefix(name).filter(|l| !l.is_empty()) {
            check_labels(labels, line);
        }
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| typed.get(*f).is_some_and(|k| k == "histogram"))
            })
            .unwrap_or(name);
        assert!(
            typed.contains_key(family),
            "sample before its TYPE: {line:?}"
        );
        assert!(helped.contains(family), "sample without HELP: {line:?}");
        if typed[family] == "counter" {
            assert!(name.ends_with("_total"), "counters end in _total: {name}");
        }
        assert!(
            samples.insert(series.to_string(), v).is_none(),
            "duplicate series {series}"
        );
    }
    samples
}

fn valid_name(n: &str) -> bool {
    let mut c = n.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_' || f == ':')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_' || x == ':')
}

/// `{a="x",b="y\"z"}`: names valid, values quoted with only \\, \" and \n escapes.
fn check_labels(labels: &str, line: &str) {
    let inner = labels
        .strip_prefix('{')
        .and_then(|l| l.strip_suffix('}'))
        .unwrap_or_else(|| panic!("bad label set in {line:?}"));
    let mut rest = inner;
    while !rest.is_empty() {
        let (name, after) = rest
            .split_once("=\"")
            .unwrap_or_else(|| panic!("bad label in {line:?}"));
        assert!(
            valid_name(name) && !name.contains(':'),
            "bad label name in {line:?}"
        );
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => {
                    let (_, e) = chars.next().expect("escape at the end");
                    assert!(['\\', '"', 'n'].contains(&e), "bad escape in {line:?}");
                }
                Some((i, '"')) => break i,
                Some(_) => {}
                None => panic!("unterminated label value in {line:?}"),
            }
        };
        rest = &after[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
}

async fn scrape(api: &Api, token: Option<&str>) -> (u16, String, String) {
    let mut req = api.http.get(format!("{}/metrics", api.url));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let ctype = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, ctype, resp.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_need_a_token_parse_and_count_backups() {
    let api = Api::start().await;
    assert_eq!(scrape(&api, None).await.0, 401);
    assert_eq!(scrape(&api, Some("cellar_not-a-token")).await.0, 401);

    let (status, ctype, text) = scrape(&api, Some(&api.viewer)).await;
    assert_eq!(status, 200);
    assert_eq!(ctype, "text/plain; version=0.0.4; charset=utf-8");
    let before = parse(&text);
    let ok = r#"cellar_backups_total{type="daily",outcome="success"}"#;
    assert_eq!(before.get(ok), None, "no backup yet:\n{text}");
    assert_eq!(before["cellar_workers_live"], 0.0);
    assert_eq!(
        before[r#"cellar_storage_used_bytes{location="local"}"#],
        0.0
    );

    let id = api.completed_backup().await;
    let (_, _, text) = scrape(&api, Some(&api.viewer)).await;
    let after = parse(&text);
    assert_eq!(after[ok], 1.0, "{text}");
    assert_eq!(
        after[r#"cellar_backups_total{type="daily",outcome="failure"}"#],
        0.0
    );
    assert_eq!(
        after[r#"cellar_backup_plain_bytes_total{type="daily"}"#],
        1000.0
    );
    assert_eq!(
        after[r#"cellar_backup_stored_bytes_total{type="daily"}"#],
        500.0
    );
    assert_eq!(
        after[r#"cellar_storage_used_bytes{location="local"}"#],
        500.0
    );
    assert_eq!(
        after[r#"cellar_backup_duration_seconds_count{type="daily"}"#],
        1.0
    );
    assert_eq!(
        after[r#"cellar_backup_duration_seconds_bucket{type="daily",le="+Inf"}"#],
        1.0
    );
    assert_eq!(
        after[r#"cellar_backup_duration_seconds_bucket{type="daily",le="1"}"#],
        1.0
    );
    let last = after[r#"cellar_last_success_timestamp_seconds{source="src"}"#];
    assert!(
        (last - chrono::Utc::now().timestamp() as f64).abs() < 120.0,
        "{last}"
    );
    // The backup's job is still waiting (nothing ran it): the queue shows it.
    assert_eq!(after[r#"cellar_queue_depth{kind="backup"}"#], 1.0);
    assert_eq!(after[r#"cellar_jobs_running{kind="backup"}"#], 0.0);
    assert!(after[r#"cellar_queue_oldest_job_age_seconds{kind="backup"}"#] >= 0.0);

    // A second backup moves the counter again.
    api.completed_backup().await;
    let third = parse(&scrape(&api, Some(&api.viewer)).await.2);
    assert_eq!(third[ok], 2.0);
    drop(id);
}

/// A failed daily backup of the test source, as a worker leaves one.
async fn failed_backup(api: &Api) -> BackupId {
    let req = BackupRequest {
        backup_type: Some(BackupType::Daily),
        source: api_common::SOURCE.into(),
        ..Default::default()
    };
    let (id, _) = catalog::create(&api.pool, &req).await.unwrap();
    catalog::mark_running(&api.pool, &id).await.unwrap();
    catalog::mark_failed(&api.pool, &id, "source unreachable")
        .await
        .unwrap();
    id
}

async fn samples(api: &Api) -> (HashMap<String, f64>, String) {
    let (status, _, text) = scrape(api, Some(&api.viewer)).await;
    assert_eq!(status, 200, "{text}");
    (parse(&text), text)
}

/// The series a deletion must not move: outcomes, bytes, and the duration histogram.
const COUNTERS: [&str; 5] = [
    r#"cellar_backups_total{type="daily",outcome="success"}"#,
    r#"cellar_backups_total{type="daily",outcome="failure"}"#,
    r#"cellar_backup_plain_bytes_total{type="daily"}"#,
    r#"cellar_backup_stored_bytes_total{type="daily"}"#,
    r#"cellar_backup_duration_seconds_count{type="daily"}"#,
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_backups_moves_no_counter() {
    let api = Api::start().await;
    let ok = api.completed_backup().await;
    let failed = failed_backup(&api).await;
    let (before, text) = samples(&api).await;
    let values: Vec<f64> = COUNTERS.iter().map(|c| before[*c]).collect();
    assert_eq!(values, [1.0, 1.0, 1000.0, 500.0, 1.0], "{text}");

    // Retention (or a person) deletes the failed backup, then the completed one.
    delete::mark_deleted(&api.pool, &failed).await.unwrap();
    let (after, text) = samples(&api).await;
    for c in COUNTERS {
        assert_eq!(
            after[c], before[c],
            "{c} moved after deleting a failed backup:\n{text}"
        );
    }
    delete::mark_deleted(&api.pool, &ok).await.unwrap();
    let (after, text) = samples(&api).await;
    for c in COUNTERS {
        assert_eq!(
            after[c], before[c],
            "{c} moved after deleting a completed backup:\n{text}"
        );
    }
    // What is held is a gauge and does go down.
    assert_eq!(after[r#"cellar_storage_used_bytes{location="local"}"#], 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_failing_verification_is_a_gauge_that_follows_re_verification() {
    let api = Api::start().await;
    let id = api.completed_backup().await;
    let gauge = r#"cellar_backups_failing_verification{type="daily"}"#;
    let (s, text) = samples(&api).await;
    assert!(
        text.contains("# TYPE cellar_backups_failing_verification gauge\n"),
        "{text}"
    );
    assert!(
        !text.contains("cellar_verification_failures_total"),
        "{text}"
    );
    assert_eq!(s[gauge], 0.0, "never verified");

    let verify = |status: &'static str| {
        let (pool, id) = (api.pool.clone(), id.clone());
        async move {
            catalog::set_verification(&pool, &id, &json!({ "status": status }))
                .await
                .unwrap()
        }
    };
    verify("invalid").await;
    assert_eq!(samples(&api).await.0[gauge], 1.0);
    // A re-verification that passes: the backup is no longer failing.
    verify("valid").await;
    assert_eq!(samples(&api).await.0[gauge], 0.0);
    // Failing again, then deleted: no longer held, so not counted.
    verify("invalid").await;
    assert_eq!(samples(&api).await.0[gauge], 1.0);
    delete::mark_deleted(&api.pool, &id).await.unwrap();
    assert_eq!(samples(&api).await.0[gauge], 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restores_by_type_and_outcome_and_live_workers_are_counted() {
    let api = Api::start().await;
    let id = api.completed_backup().await;
    // Finished restores as a worker leaves them (two seconds each), plus one still pending.
    sqlx::query(
        "INSERT INTO restore (backup_id, source, target_database, tables, state, started_at,
                              completed_at, error)
         SELECT $1, 'src', 'target_' || n, tables, state::restore_state,
                now() - interval '2 seconds', now(), error
         FROM (VALUES (1, NULL, 'completed', NULL), (2, NULL, 'failed', 'boom'),
                      (3, '{public.t}'::text[], 'completed', NULL),
                      (4, '{public.t}'::text[], 'completed', NULL),
                      (5, NULL, 'pending', NULL)) AS v (n, tables, state, error)",
    )
    .bind(id.as_str())
    .execute(&api.pool)
    .await
    .unwrap();
    let w = workers::Announce::this_process(
        uuid::Uuid::new_v4(),
        vec!["restore".into()],
        30.0,
        json!({}),
    );
    workers::announce(&api.pool, &w).await.unwrap();

    let (s, text) = samples(&api).await;
    let restores = |t: &str, outcome: &str| {
        s[&format!(r#"cellar_restores_total{{type="{t}",outcome="{outcome}"}}"#)]
    };
    assert_eq!(restores("full", "success"), 1.0, "{text}");
    assert_eq!(restores("full", "failure"), 1.0);
    assert_eq!(restores("tables", "success"), 2.0);
    assert_eq!(restores("tables", "failure"), 0.0);
    // Durations of completed restores only.
    assert_eq!(
        s[r#"cellar_restore_duration_seconds_count{type="full"}"#],
        1.0
    );
    assert_eq!(
        s[r#"cellar_restore_duration_seconds_count{type="tables"}"#],
        2.0
    );
    assert_eq!(
        s[r#"cellar_restore_duration_seconds_bucket{type="tables",le="1"}"#],
        0.0
    );
    assert_eq!(
        s[r#"cellar_restore_duration_seconds_bucket{type="tables",le="5"}"#],
        2.0
    );
    assert_eq!(s["cellar_workers_live"], 1.0);
}

#[test]
fn the_validator_rejects_bad_expositions() {
    for bad in [
        "x_total 1\n",                                                      // no TYPE
        "# HELP x_total h\n# TYPE x_total counter\nx_total{a=\"b} 1\n",     // unterminated
        "# HELP x h\n# TYPE x counter\nx 1\n", // counter without _total
        "# HELP x_total h\n# TYPE x_total counter\nx_total one\n", // bad value
        "# HELP x_total h\n# TYPE x_total counter\nx_total{a=\"\\t\"} 1\n", // bad escape
    ] {
        assert!(
            std::panic::catch_unwind(|| parse(bad)).is_err(),
            "accepted {bad:?}"
        );
    }
}
