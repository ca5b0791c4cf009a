//! The authorization matrix: every query and mutation x (no token, a revoked token, viewer,
//! operator, master). No unauthorized call succeeds or changes anything, and every mutation
//! attempt, allowed or not, leaves exactly one audit event saying who and how it ended.

mod api_common;

use api_common::{Api, code};
use cellar_core::auth::{self, Permission, Role};
use cellar_core::queue::{self, NewJob};
use serde_json::{Value, json};

struct Op {
    name: &'static str,
    mutation: bool,
    needs: Permission,
    doc: &'static str,
    vars: Value,
}

fn ops(backup: &str, job: i64, cancelled_job: i64) -> Vec<Op> {
    let op = |name, mutation, needs, doc, vars| Op {
        name,
        mutation,
        needs,
        doc,
        vars,
    };
    vec![
        op(
            "backups",
            false,
            Permission::Read,
            "{ backups { nodes { id } statistics { totalBackups } } }",
            json!({}),
        ),
        op(
            "backup",
            false,
            Permission::Read,
            "query($id: ID!) { backup(id: $id) { id status } }",
            json!({"id": backup}),
        ),
        op(
            "job",
            false,
            Permission::Read,
            "query($id: ID!) { job(id: $id) { id state } }",
            json!({"id": job}),
        ),
        op(
            "jobs",
            false,
            Permission::Read,
            "{ jobs { nodes { id } } }",
            json!({}),
        ),
        op(
            "health",
            false,
            Permission::Read,
            "{ health { status reasons { code } metrics { liveWorkers } } }",
            json!({}),
        ),
        op(
            "diagnose",
            true,
            Permission::Diagnose,
            "mutation { diagnose(timeoutSeconds: 5) { status probes { name status } } }",
            json!({}),
        ),
        op(
            "auditLog",
            false,
            Permission::ReadAudit,
            "{ auditLog { nodes { id } } }",
            json!({}),
        ),
        op(
            "createBackup",
            true,
            Permission::CreateBackup,
            "mutation { createBackup(input: {backupType: MANUAL}) { id backup { id } } }",
            json!({}),
        ),
        op(
            "verifyBackup",
            true,
            Permission::VerifyBackup,
            "mutation($id: ID!) { verifyBackup(id: $id, level: DEEP) { id } }",
            json!({"id": backup}),
        ),
        op(
            "cancelJob",
            true,
            Permission::CancelAnyJob,
            "mutation($id: ID!) { cancelJob(id: $id) { id state } }",
            json!({"id": job}),
        ),
        op(
            "retryJob",
            true,
            Permission::RetryJob,
            "mutation($id: ID!) { retryJob(id: $id) { id state } }",
            json!({"id": cancelled_job}),
        ),
        op(
            "restoreBackup",
            true,
            Permission::Restore,
            "mutation($id: ID!) { restoreBackup(input: {backupId: $id, targetDatabase: \"cellar_authz_restore_target\", confirmRestore: true}) { id } }",
            json!({"id": backup}),
        ),
        op(
            "deleteBackup",
            true,
            Permission::DeleteBackup,
            "mutation($id: ID!) { deleteBackup(id: $id) { id } }",
            json!({"id": backup}),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_by_every_role() {
    let api = Api::start().await;
    let backup = api.completed_backup().await;
    let mut conn = api.pool.acquire().await.unwrap();
    let job = queue::enqueue(&mut conn, &NewJob::new("ping", json!({})))
        .await
        .unwrap()
        .id;
    let cancelled = queue::enqueue(&mut conn, &NewJob::new("ping", json!({})))
        .await
        .unwrap()
        .id;
    queue::cancel(&mut conn, cancelled).await.unwrap();
    let (revoked, _) = auth::create_token(&api.pool, "gone", Role::Master, None)
        .await
        .unwrap();
    auth::revoke_token(&api.pool, "gone").await.unwrap();

    let callers: [(&str, Option<&str>, Option<Role>); 5] = [
        ("no token", None, None),
        ("revoked master", Some(&revoked), None),
        ("viewer", Some(&api.viewer), Some(Role::Viewer)),
        ("operator", Some(&api.operator), Some(Role::Operator)),
        ("master", Some(&api.master), Some(Role::Master)),
    ];
    for (who, token, role) in callers {
        for op in ops(backup.as_str(), job, cancelled) {
            check(&api, who, token, role, &op).await;
        }
    }
}

async fn check(api: &Api, who: &str, token: Option<&str>, role: Option<Role>, op: &Op) {
    let (audits, before) = (api.audit_count().await, api.fingerprint().await);
    let (status, body) = api.gql(token, op.doc, op.vars.clone()).await;
    let ctx = format!("{} by {who}: {body}", op.name);
    assert_eq!(status, 200, "{ctx}");
    let allowed = role.is_some_and(|r| r.allows(op.needs));
    let c = code(&body);
    if allowed {
        assert!(!matches!(c, Some("UNAUTHENTICATED" | "FORBIDDEN")), "{ctx}");
        assert!(body["data"][op.name].is_object(), "{ctx}");
    } else {
        let expected = if role.is_none() {
            "UNAUTHENTICATED"
        } else {
            "FORBIDDEN"
        };
        assert_eq!(c, Some(expected), "{ctx}");
        assert!(
            body["data"].is_null() || body["data"][op.name].is_null(),
            "{ctx}"
        );
        assert_eq!(
            api.fingerprint().await,
            before,
            "a refused {ctx} changed something"
        );
    }
    let audited = api.audit_count().await - audits;
    assert_eq!(audited, i64::from(op.mutation), "audit events for {ctx}");
    if op.mutation {
        let last = api
            .state
            .services
            .audit_log(&master(api).await, Some(1), None)
            .await
            .unwrap();
        let e = &last.rows[0];
        assert_eq!(e.action, op.name, "{ctx}");
        let outcome = if allowed { "allowed" } else { "denied" };
        assert_eq!(serde_json::to_value(e.outcome).unwrap(), outcome, "{ctx}");
        assert_eq!(e.role, role, "{ctx}");
        assert_eq!(e.client_addr.as_deref(), Some("127.0.0.1"), "{ctx}");
    }
}

async fn master(api: &Api) -> cellar_api::service::Caller {
    cellar_api::http::resolve(&api.state.services, Some(&api.master), None)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_cancel_only_the_jobs_they_started() {
    let api = Api::start().await;
    let mut conn = api.pool.acquire().await.unwrap();
    let foreign = queue::enqueue(&mut conn, &NewJob::new("ping", json!({})))
        .await
        .unwrap()
        .id;
    let create = "mutation { createBackup(input: {}) { id } }";
    let (_, own) = api.gql(Some(&api.operator), create, json!({})).await;
    let own = own["data"]["createBackup"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let cancel = "mutation($id: ID!) { cancelJob(id: $id) { state } }";

    let (_, body) = api
        .gql(Some(&api.operator), cancel, json!({"id": foreign}))
        .await;
    assert_eq!(code(&body), Some("FORBIDDEN"), "{body}");
    assert_eq!(
        queue::get(&api.pool, foreign).await.unwrap().state,
        queue::JobState::Available
    );
    let (_, body) = api
        .gql(Some(&api.operator), cancel, json!({"id": own}))
        .await;
    assert_eq!(body["data"]["cancelJob"]["state"], "CANCELLED", "{body}");
    let (_, body) = api
        .gql(Some(&api.master), cancel, json!({"id": foreign}))
        .await;
    assert_eq!(body["data"]["cancelJob"]["state"], "CANCELLED", "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_routes_use_the_same_auth_and_audit() {
    let api = Api::start().await;
    let post = |token: Option<String>| {
        let mut r = api
            .http
            .post(format!("{}/api/backup/create", api.url))
            .json(&json!({"backup_type": "daily"}));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        async move { r.send().await.unwrap() }
    };
    let before = api.audit_count().await;
    assert_eq!(post(None).await.status().as_u16(), 401);
    let r = post(Some(api.viewer.clone())).await;
    assert_eq!(r.status().as_u16(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "FORBIDDEN");
    let r = post(Some(api.operator.clone())).await;
    assert_eq!(r.status().as_u16(), 202);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["backup_id"].as_str().unwrap().contains("_daily_"),
        "{body}"
    );
    assert_eq!(api.audit_count().await - before, 3);

    let list = |token: &str| {
        api.http
            .get(format!("{}/api/backup/list?type=daily&limit=5", api.url))
            .bearer_auth(token)
    };
    let body: Value = list(&api.viewer)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["statistics"]["total_backups"], 1, "{body}");
    assert_eq!(body["backups"][0]["status"], "pending", "{body}");
    for path in ["/api/backup/health"] {
        let r = api
            .http
            .get(format!("{}{path}", api.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 401);
        let body: Value = api
            .http
            .get(format!("{}{path}", api.url))
            .bearer_auth(&api.viewer)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            body["overall_status"], "critical",
            "no backup completed yet: {body}"
        );
        assert_eq!(body["reasons"][0]["code"], "NO_SUCCESSFUL_BACKUP", "{body}");
        assert_eq!(
            body["health_summary"]["sources"][0]["name"], "src",
            "{body}"
        );
    }
    let diagnose = |token: &str| {
        api.http
            .post(format!("{}/api/backup/health", api.url))
            .bearer_auth(token)
            .json(&json!({"action": "diagnose"}))
    };
    let r = diagnose(&api.viewer).send().await.unwrap();
    assert_eq!(
        r.status().as_u16(),
        403,
        "diagnose is for operators and masters"
    );
    let body: Value = diagnose(&api.operator)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // No worker runs here: the API reports that, and what it could not probe without one.
    let probes = body["diagnosis"]["probes"].as_array().unwrap();
    assert_eq!(body["diagnosis"]["status"], "failed", "{body}");
    assert_eq!(probes[0]["name"], "catalog", "{body}");
    assert_eq!(probes[1]["status"], "failed", "{body}");
    let skipped = probes.iter().filter(|p| p["status"] == "skipped").count();
    assert_eq!(skipped, 4, "{body}");
    let r = api
        .http
        .post(format!("{}/api/backup/health", api.url))
        .bearer_auth(&api.viewer)
        .json(&json!({"action": "rm -rf"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
}

/// The seed's `POST /api/backup/restore`: masters only, `confirm_restore` required, unknown
/// fields refused, every attempt audited, and an accepted one enqueues a restore job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_restore_route() {
    let api = Api::start().await;
    let backup = api.completed_backup().await;
    let post = |token: &str, body: Value| {
        let r = api
            .http
            .post(format!("{}/api/backup/restore", api.url))
            .bearer_auth(token)
            .json(&body);
        async move {
            let r = r.send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        }
    };
    let target = format!("{}_rest_restore", api.db.name);
    let body = json!({"backup_id": backup.as_str(), "target_database": target});
    let before = api.audit_count().await;
    let (status, out) = post(&api.operator, body.clone()).await;
    assert_eq!(
        (status, out["error"]["code"].as_str()),
        (403, Some("FORBIDDEN")),
        "{out}"
    );
    let (status, out) = post(&api.master, body.clone()).await;
    assert_eq!(
        (status, out["error"]["code"].as_str()),
        (400, Some("INVALID_INPUT")),
        "{out}"
    );
    assert!(out.to_string().contains("confirmRestore"), "{out}");
    let typo = json!({"backup_id": backup.as_str(), "confirm_restor": true});
    let (status, out) = post(&api.master, typo).await;
    assert_eq!(status, 400, "{out}");
    let unknown = json!({"backup_id": "cellar_backup_2020-01-01_00-00-00_manual_abcd",
                         "confirm_restore": true});
    let (status, out) = post(&api.master, unknown).await;
    assert_eq!(
        (status, out["error"]["code"].as_str()),
        (404, Some("NOT_FOUND")),
        "{out}"
    );
    let mut ok = body;
    ok["confirm_restore"] = json!(true);
    let (status, out) = post(&api.master, ok).await;
    assert_eq!(status, 202, "{out}");
    let job_id = out["job_id"].as_i64().expect("job id");
    let job = cellar_core::queue::get(&api.pool, job_id).await.unwrap();
    assert_eq!(job.kind, cellar_core::restore::JOB_RESTORE);
    // The body with an unknown field is refused while parsing, before the service sees it;
    // the four others are audited, allowed or not.
    assert_eq!(api.audit_count().await - before, 4);
}
