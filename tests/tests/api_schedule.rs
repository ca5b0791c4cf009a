//! Schedules, retention and pins over GraphQL: who may do what, clear INVALID_INPUT errors,
//! every mutation audited.

mod api_common;

use api_common::{Api, code, scalar};
use serde_json::{Value, json};

const UPSERT: &str = "mutation($i: ScheduleInput!) { upsertSchedule(input: $i) { name cron \
    timeZone backupType verify enabled nextFireAt } }";

async fn ok(api: &Api, token: &str, doc: &str, vars: Value) -> Value {
    let (_, body) = api.gql(Some(token), doc, vars).await;
    assert!(body["errors"].is_null(), "{doc}: {body}");
    body["data"].clone()
}

async fn refused(api: &Api, token: &str, doc: &str, vars: Value, want: &str) -> String {
    let (_, body) = api.gql(Some(token), doc, vars).await;
    assert_eq!(code(&body), Some(want), "{doc}: {body}");
    body["errors"][0]["message"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_are_read_by_all_and_changed_by_masters_with_clear_errors() {
    let api = Api::start().await;
    let d = ok(
        &api,
        &api.viewer,
        "{ schedules { name cron enabled nextFireAt } }",
        json!({}),
    )
    .await;
    let names: Vec<&str> = d["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["daily", "monthly", "weekly"]);
    assert!(d["schedules"][0]["nextFireAt"].is_string());

    let good = json!({"i": {"name": "nightly", "cron": "30 1 * * *", "timeZone": "Europe/Berlin",
                            "backupType": "DAILY", "verify": "quick"}});
    refused(&api, &api.operator, UPSERT, good.clone(), "FORBIDDEN").await;
    let d = ok(&api, &api.master, UPSERT, good).await;
    assert_eq!(d["upsertSchedule"]["timeZone"], "Europe/Berlin");
    assert_eq!(d["upsertSchedule"]["verify"], "quick");

    for (input, says) in [
        (json!({"name": "x", "cron": "0 2 * *"}), "5 fields"),
        (json!({"name": "x", "cron": "0 25 * * *"}), "invalid cron"),
        (
            json!({"name": "x", "cron": "0 2 * * *", "timeZone": "Mars/Base"}),
            "unknown time zone",
        ),
        (
            json!({"name": "x", "cron": "0 2 * * *", "tables": ["a.b.c"]}),
            "tables",
        ),
        (
            json!({"name": "x", "cron": "0 2 * * *", "backupType": "SAFETY"}),
            "safety",
        ),
        (
            json!({"name": "x", "cron": "0 2 * * *", "source": "nope"}),
            "unknown source",
        ),
        (
            json!({"name": "x", "cron": "0 2 * * *", "uploadToDrive": true}),
            "Drive",
        ),
        (json!({"name": "X Y", "cron": "0 2 * * *"}), "name"),
    ] {
        let m = refused(
            &api,
            &api.master,
            UPSERT,
            json!({"i": input}),
            "INVALID_INPUT",
        )
        .await;
        assert!(m.contains(says), "{says}: {m}");
    }

    let toggle = "mutation($s: String!, $on: Boolean!) { setScheduleEnabled(schedule: $s, enabled: $on) { enabled nextFireAt } }";
    let d = ok(
        &api,
        &api.master,
        toggle,
        json!({"s": "weekly", "on": false}),
    )
    .await;
    assert_eq!(
        d["setScheduleEnabled"],
        json!({"enabled": false, "nextFireAt": null})
    );
    refused(
        &api,
        &api.master,
        toggle,
        json!({"s": "hourly", "on": true}),
        "NOT_FOUND",
    )
    .await;
    let del = "mutation($s: String!) { deleteSchedule(schedule: $s) { name } }";
    refused(
        &api,
        &api.operator,
        del,
        json!({"s": "nightly"}),
        "FORBIDDEN",
    )
    .await;
    ok(&api, &api.master, del, json!({"s": "nightly"})).await;

    let audited = scalar(
        &api.pool,
        "SELECT count(*) FROM audit_event WHERE action IN ('upsertSchedule', 'setScheduleEnabled', 'deleteSchedule')",
    )
    .await;
    // 2 upserts + 8 refused upserts + 2 toggles + 2 deletes.
    assert_eq!(audited, 14);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_policies_preview_and_pins() {
    let api = Api::start().await;
    let d = ok(
        &api,
        &api.viewer,
        "{ retentionPolicies { backupType maxCount maxAgeDays } }",
        json!({}),
    )
    .await;
    let safety = d["retentionPolicies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["backupType"] == "SAFETY")
        .unwrap()
        .clone();
    assert_eq!(
        safety,
        json!({"backupType": "SAFETY", "maxCount": 10, "maxAgeDays": 14})
    );

    let set = "mutation($i: RetentionPolicyInput!) { setRetentionPolicy(input: $i) { backupType maxCount keepMonthly } }";
    let input = json!({"i": {"backupType": "DAILY", "maxCount": 1, "maxAgeDays": 30}});
    refused(&api, &api.operator, set, input.clone(), "FORBIDDEN").await;
    ok(&api, &api.master, set, input).await;
    let m = refused(
        &api,
        &api.master,
        set,
        json!({"i": {"backupType": "DAILY", "maxCount": -1}}),
        "INVALID_INPUT",
    )
    .await;
    assert!(m.contains("maxCount"), "{m}");
    let m = refused(
        &api,
        &api.master,
        set,
        json!({"i": {"backupType": "DAILY", "maxCount": 0}}),
        "INVALID_INPUT",
    )
    .await;
    assert!(m.contains("maxCount"), "{m}");

    // Two completed daily backups, one two months old: it is deleted unless pinned.
    let older = api.completed_backup().await;
    let newer = api.completed_backup().await;
    sqlx::query("UPDATE backup SET created_at = created_at - interval '2 months' WHERE id = $1")
        .bind(older.as_str())
        .execute(&api.pool)
        .await
        .unwrap();
    let preview = "{ retentionPreview(backupType: DAILY) { backupId delete reason } }";
    let d = ok(&api, &api.viewer, preview, json!({})).await;
    let doomed: Vec<&str> = d["retentionPreview"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["delete"] == true)
        .map(|r| r["backupId"].as_str().unwrap())
        .collect();
    assert_eq!(doomed, [older.as_str()], "{d}");
    let _ = newer;

    // A proposed policy is previewed without being saved; a bad one is refused like a save.
    let propose =
        "query($p: RetentionPolicyInput) { retentionPreview(policy: $p) { backupId delete } }";
    let lenient = json!({"p": {"backupType": "DAILY", "maxCount": 5, "maxAgeDays": 90}});
    let d = ok(&api, &api.viewer, propose, lenient).await;
    let rows = d["retentionPreview"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{d}");
    assert!(rows.iter().all(|r| r["delete"] == false), "{d}");
    let d = ok(&api, &api.viewer, preview, json!({})).await;
    assert_eq!(
        d["retentionPreview"][1]["delete"], true,
        "the stored policy changed: {d}"
    );
    let zero = json!({"p": {"backupType": "DAILY", "maxCount": 0}});
    let m = refused(&api, &api.viewer, propose, zero, "INVALID_INPUT").await;
    assert!(m.contains("maxCount"), "{m}");

    let pin = "mutation($id: ID!) { pinBackup(id: $id) { id pinned } }";
    let unpin = "mutation($id: ID!) { unpinBackup(id: $id) { id pinned } }";
    refused(
        &api,
        &api.viewer,
        pin,
        json!({"id": older.as_str()}),
        "FORBIDDEN",
    )
    .await;
    let d = ok(&api, &api.operator, pin, json!({"id": older.as_str()})).await;
    assert_eq!(d["pinBackup"]["pinned"], true);
    let d = ok(&api, &api.viewer, preview, json!({})).await;
    assert!(
        d["retentionPreview"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["delete"] == false),
        "{d}"
    );
    let del = "mutation($id: ID!) { deleteBackup(id: $id) { id } }";
    let m = refused(
        &api,
        &api.master,
        del,
        json!({"id": older.as_str()}),
        "CONFLICT",
    )
    .await;
    assert!(m.contains("pinned"), "{m}");
    refused(
        &api,
        &api.operator,
        unpin,
        json!({"id": older.as_str()}),
        "FORBIDDEN",
    )
    .await;
    ok(&api, &api.master, unpin, json!({"id": older.as_str()})).await;
    refused(
        &api,
        &api.master,
        pin,
        json!({"id": "cellar_backup_2020-01-01_00-00-00_daily_abcd"}),
        "NOT_FOUND",
    )
    .await;
    refused(
        &api,
        &api.master,
        pin,
        json!({"id": "../etc"}),
        "INVALID_INPUT",
    )
    .await;
}
