//! Bad input: malformed documents, unknown ids, ids with `../`, table names carrying quotes or
//! SQL, oversized and deep documents. Each gets a clear error with a code, nothing changes,
//! and the server keeps serving.

mod api_common;

use api_common::{Api, code};
use serde_json::{Value, json};

async fn expect(api: &Api, doc: &str, vars: Value, want: &str) -> Value {
    let before = api.fingerprint().await;
    let (status, body) = api.gql(Some(&api.master), doc, vars).await;
    assert!(status < 500, "{doc}: HTTP {status} {body}");
    assert_eq!(code(&body), Some(want), "{doc}: {body}");
    let message = body["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(
        !message.is_empty() && message.len() < 500,
        "{doc}: unclear message {message:?}"
    );
    assert_eq!(api.fingerprint().await, before, "{doc} changed something");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_clearly_and_changes_nothing() {
    let api = Api::start().await;
    let backup = api.completed_backup().await;
    let unknown = "cellar_backup_2020-01-01_00-00-00_manual_abcd";
    for (doc, vars, want) in [
        (
            "query($id: ID!) { backup(id: $id) { id } }",
            json!({"id": unknown}),
            "NOT_FOUND",
        ),
        (
            "query($id: ID!) { job(id: $id) { id } }",
            json!({"id": "987654"}),
            "NOT_FOUND",
        ),
        (
            "query($id: ID!) { job(id: $id) { id } }",
            json!({"id": "-1; DROP TABLE job"}),
            "INVALID_INPUT",
        ),
        (
            "query($id: ID!) { backup(id: $id) { id } }",
            json!({"id": "../../etc/passwd"}),
            "INVALID_INPUT",
        ),
        (
            "mutation($id: ID!) { deleteBackup(id: $id) { id } }",
            json!({"id": format!("{backup}/../../x")}),
            "INVALID_INPUT",
        ),
        (
            "mutation($id: ID!) { verifyBackup(id: $id) { id } }",
            json!({"id": unknown}),
            "NOT_FOUND",
        ),
        (
            "mutation($id: ID!) { restoreBackup(input: {backupId: $id}) { id } }",
            json!({"id": backup.as_str()}),
            "INVALID_INPUT",
        ),
        (
            "mutation { restoreBackup(input: {backupId: \"../../etc\", confirmRestore: true}) { id } }",
            json!({}),
            "INVALID_INPUT",
        ),
        (
            "mutation($id: ID!) { restoreBackup(input: {backupId: $id, confirmRestore: true, targetDatabase: \"x\\u0000y\"}) { id } }",
            json!({"id": backup.as_str()}),
            "INVALID_INPUT",
        ),
        (
            "mutation { rollbackRestore(jobId: \"999999\") { id } }",
            json!({}),
            "NOT_FOUND",
        ),
        (
            "mutation($id: ID!) { retryJob(id: $id) { id } }",
            json!({"id": "424242"}),
            "NOT_FOUND",
        ),
        (
            "{ backups(limit: 100000) { nodes { id } } }",
            json!({}),
            "INVALID_INPUT",
        ),
        (
            "{ backups(after: \"not-a-cursor\") { nodes { id } } }",
            json!({}),
            "INVALID_INPUT",
        ),
        (
            "mutation { createBackup(input: {source: \"../other\"}) { id } }",
            json!({}),
            "INVALID_INPUT",
        ),
        (
            "mutation { createBackup(input: {uploadToDrive: true}) { id } }",
            json!({}),
            "INVALID_INPUT",
        ),
    ] {
        expect(&api, doc, vars, want).await;
    }
    let create = "mutation($t: [String!]) { createBackup(input: {tables: $t}) { id } }";
    for tables in [
        json!(["public.users; DROP TABLE job; --"]),
        json!(["users' OR '1'='1"]),
        json!(["\"unterminated"]),
        json!(["a.b.c"]),
        json!([""]),
        json!(["x".repeat(100)]),
        json!(vec!["t"; 1001]),
    ] {
        expect(&api, create, json!({"t": tables}), "INVALID_INPUT").await;
    }
    // A quoted name is a valid identifier: accepted and stored in canonical form; the backup
    // being taken cannot be deleted (CONFLICT).
    let odd = "mutation($t: [String!]) { createBackup(input: {tables: $t}) { backup { id requestedTables } } }";
    let (_, body) = api
        .gql(
            Some(&api.master),
            odd,
            json!({"t": ["public.\"Odd \"\"Name\"\"\""]}),
        )
        .await;
    let created = &body["data"]["createBackup"]["backup"];
    assert_eq!(
        created["requestedTables"][0], "public.\"Odd \"\"Name\"\"\"",
        "{body}"
    );
    let del = "mutation($id: ID!) { deleteBackup(id: $id) { id } }";
    expect(&api, del, json!({"id": created["id"]}), "CONFLICT").await;
    assert_server_up(&api).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_oversized_and_deep_documents() {
    let api = Api::start().await;
    let before = api.fingerprint().await;
    // Syntax errors and unknown fields: GraphQL errors, not crashes. Mutations refused before
    // any resolver runs are audited all the same.
    for (doc, audited) in [
        ("{ backups { nodes { id ", None),
        ("{ nope }", None),
        ("query { backups(type: HOURLY) { nodes { id } } }", None),
        ("mutation { createBackup }", Some("createBackup")),
        (
            "mutation { createBackup(input: {backupType: HOURLY}) { id } }",
            Some("createBackup"),
        ),
        ("mutation { deleteBackup(id: ", Some("unparsableMutation")),
    ] {
        let audits = api.audit_count().await;
        let (status, body) = api.gql(Some(&api.operator), doc, json!({})).await;
        assert!(
            status < 500 && body["errors"][0]["message"].is_string(),
            "{doc}: {status} {body}"
        );
        assert_eq!(
            api.audit_count().await - audits,
            i64::from(audited.is_some()),
            "{doc}"
        );
        if let Some(action) = audited {
            let row: (String, String, Option<String>) = sqlx::query_as(
                "SELECT action, outcome::text, token_name FROM audit_event ORDER BY id DESC LIMIT 1",
            )
            .fetch_one(&api.pool)
            .await
            .unwrap();
            assert_eq!(
                row,
                (action.into(), "failed".into(), Some("operator-1".into())),
                "{doc}"
            );
        }
    }
    // Not JSON at all.
    let r = api
        .http
        .post(format!("{}/graphql", api.url))
        .bearer_auth(&api.master)
        .header("content-type", "application/json")
        .body("{\"query\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    // A 1 MiB document is refused before parsing.
    let huge = format!(
        "{{ backups {{ nodes {{ id {} }} }} }}",
        "id ".repeat(350_000)
    );
    // On a client of its own: the server answers 413 without reading the body and closes the
    // connection, which a pooled connection of the shared client would then trip over.
    let r = cellar_core::http::client()
        .post(format!("{}/graphql", api.url))
        .bearer_auth(&api.master)
        .json(&json!({"query": huge}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 413);
    // Too deep: the backup <-> job cycle.
    let deep = "{ backups { nodes { job { backup { job { backup { job { backup { job { backup { id } } } } } } } } } } }";
    let (_, body) = api.gql(Some(&api.master), deep, json!({})).await;
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("nested too deep"),
        "{body}"
    );
    // Too complex: a hundred jobs, each with its backup's every field, many times over.
    let fields =
        "id status source createdAt sizes { plainBytes storedBytes } tables { name rows } warnings";
    let wide: String = (0..8)
        .map(|i| format!("a{i}: jobs(limit: 100) {{ nodes {{ id backup {{ {fields} }} }} }} "))
        .collect();
    let (_, body) = api
        .gql(Some(&api.master), &format!("{{ {wide} }}"), json!({}))
        .await;
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("too complex"),
        "{body}"
    );
    assert_eq!(api.fingerprint().await, before);
    assert_server_up(&api).await;
}

async fn assert_server_up(api: &Api) {
    let r = api
        .http
        .get(format!("{}/readyz", api.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let (_, body) = api
        .gql(Some(&api.viewer), "{ me { name role } }", json!({}))
        .await;
    assert_eq!(body["data"]["me"]["role"], "VIEWER", "{body}");
}
