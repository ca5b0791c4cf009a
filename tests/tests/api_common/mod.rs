//! Shared by the `api_*` tests: an in-process API on port 0 over a fresh catalog, tokens of
//! every role, and small GraphQL helpers.

#![allow(dead_code)]

use cellar_api::AppState;
use cellar_core::auth::{self, Role};
use cellar_core::backup::catalog::{self, BackupRequest, Completed};
use cellar_core::backup::{BackupId, BackupType};
use cellar_tests::TestDb;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// A running API and its catalog.
pub struct Api {
    pub db: TestDb,
    pub pool: PgPool,
    pub url: String,
    pub state: AppState,
    pub stop: CancellationToken,
    pub http: reqwest::Client,
    pub viewer: String,
    pub operator: String,
    pub master: String,
}

impl Drop for Api {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The source name the test API is configured with.
pub const SOURCE: &str = "src";

impl Api {
    /// Starts an API on 127.0.0.1:0 over a fresh catalog with one token per role.
    pub async fn start() -> Self {
        let (db, pool) = TestDb::catalog().await;
        let stop = CancellationToken::new();
        let state = AppState::new(pool.clone(), vec![SOURCE.into()], false, stop.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let s = stop.clone();
        tokio::spawn(cellar_api::serve(listener, state.clone(), async move {
            s.cancelled().await
        }));
        let token = |role: Role, name: &'static str| {
            let pool = pool.clone();
            async move { auth::create_token(&pool, name, role, None).await.unwrap().0 }
        };
        Self {
            viewer: token(Role::Viewer, "viewer-1").await,
            operator: token(Role::Operator, "operator-1").await,
            master: token(Role::Master, "master-1").await,
            db,
            pool,
            url,
            state,
            stop,
            http: cellar_core::http::client(),
        }
    }

    /// POSTs a GraphQL request with `token`; returns (HTTP status, body).
    pub async fn gql(&self, token: Option<&str>, query: &str, vars: Value) -> (u16, Value) {
        let mut req = self
            .http
            .post(format!("{}/graphql", self.url))
            .json(&json!({"query": query, "variables": vars}));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.expect("the API answers");
        let status = resp.status().as_u16();
        let body = resp.json().await.unwrap_or(Value::Null);
        (status, body)
    }

    /// A client as the CLI uses it.
    pub fn client(&self, token: &str) -> cellar_cli::client::Api {
        cellar_cli::client::Api::new(&self.url, Some(token.to_string()))
    }

    /// Inserts a completed backup (as if a worker had taken it) and returns its id.
    pub async fn completed_backup(&self) -> BackupId {
        let req = BackupRequest {
            backup_type: Some(BackupType::Daily),
            source: SOURCE.into(),
            ..Default::default()
        };
        let (id, _) = catalog::create(&self.pool, &req).await.unwrap();
        catalog::mark_running(&self.pool, &id).await.unwrap();
        let done = Completed {
            key_id: "k1".into(),
            database: "src".into(),
            server_version: "17".into(),
            plain_bytes: 1000,
            stored_bytes: 500,
            object_count: 4,
            total_rows: 10,
            manifest_blake3: "0".repeat(64),
            tables: json!([{"schema": "public", "name": "t", "rows": 10}]),
            warnings: vec![],
        };
        catalog::mark_completed(&self.pool, &id, &done)
            .await
            .unwrap();
        id
    }

    /// Rows in the audit trail.
    pub async fn audit_count(&self) -> i64 {
        scalar(&self.pool, "SELECT count(*) FROM audit_event").await
    }

    /// A fingerprint of everything a mutation could change: jobs and backups.
    pub async fn fingerprint(&self) -> String {
        sqlx::query_scalar::<_, String>(
            "SELECT concat((SELECT string_agg(id || ':' || state || ':' || coalesce(cancel_requested_at::text, ''), ',' ORDER BY id) FROM job), '|',
                           (SELECT string_agg(id || ':' || state, ',' ORDER BY id) FROM backup))",
        )
        .fetch_one(&self.pool)
        .await
        .unwrap()
    }
}

/// One i64 from SQL (test-side checks only).
pub async fn scalar(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar::<_, i64>(sql)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// The first error's `extensions.code`, if any.
pub fn code(body: &Value) -> Option<&str> {
    body["errors"][0]["extensions"]["code"].as_str()
}
