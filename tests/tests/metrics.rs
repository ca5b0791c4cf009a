//! `/metrics`: a token is needed, the exposition parses line by line (HELP and TYPE once per
//! family, before its samples; valid names, labels and values), and counters move when a
//! backup finishes.

mod api_common;

use std::collections::{HashMap, HashSet};

use api_common::Api;

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
