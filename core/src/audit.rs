//! The audit trail: one `audit_event` row per mutation the API is asked to run, allowed or not.
//!
//! Arguments are scrubbed before they are stored ([`scrub`]): values under secret-looking keys
//! become `"***"` and passwords inside URLs are replaced, so the trail can be shown to masters
//! and exported without leaking credentials.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgPool;

use crate::auth::{Principal, Role};

/// How an attempt ended; the Postgres enum `audit_outcome`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, sqlx::Type)]
#[sqlx(type_name = "audit_outcome", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Permitted and done.
    Allowed,
    /// No valid token, or a role that may not.
    Denied,
    /// Permitted, but refused or failed (bad input, conflict, internal error).
    Failed,
}

/// An attempt to record. `error_code` must be set exactly when the outcome is not `Allowed`.
#[derive(Clone, Debug)]
pub struct NewEvent<'a> {
    /// The caller, `None` without a valid token.
    pub principal: Option<&'a Principal>,
    /// The mutation or route, e.g. `createBackup`.
    pub action: &'a str,
    /// What it acted on, when it names something.
    pub target: Option<String>,
    /// The job it started, if any.
    pub job_id: Option<i64>,
    /// Its arguments (scrubbed by [`record`]).
    pub arguments: Value,
    /// How it ended.
    pub outcome: Outcome,
    /// The error code sent to the client.
    pub error_code: Option<&'a str>,
    /// The client's address.
    pub client_addr: Option<String>,
}

/// An audit event as stored.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub token_name: Option<String>,
    pub role: Option<Role>,
    pub action: String,
    pub target: Option<String>,
    pub job_id: Option<i64>,
    pub arguments: Value,
    pub outcome: Outcome,
    pub error_code: Option<String>,
    pub client_addr: Option<String>,
}

const SECRET_WORDS: [&str; 7] = [
    "token",
    "password",
    "secret",
    "passphrase",
    "credential",
    "authorization",
    "encryptionkey",
];

/// Removes secrets from `v`: values under keys that name a secret become `"***"`, and URL
/// passwords in strings are replaced (see [`crate::config::redact`]).
pub fn scrub(v: Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let lower = k.to_ascii_lowercase().replace(['_', '-'], "");
                    if SECRET_WORDS.iter().any(|w| lower.contains(w)) {
                        (k, Value::String("***".into()))
                    } else {
                        (k, scrub(v))
                    }
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(scrub).collect()),
        Value::String(s) => Value::String(crate::config::redact(&s)),
        other => other,
    }
}

fn clip(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// Writes one event (arguments scrubbed). Returns its id.
pub async fn record(pool: &PgPool, e: &NewEvent<'_>) -> Result<i64, sqlx::Error> {
    let p = e.principal;
    sqlx::query_scalar!(
        r#"INSERT INTO audit_event (token_id, token_name, role, action, target, job_id, arguments,
                                    outcome, error_code, client_addr)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id"#,
        p.map(|p| p.token_id),
        p.map(|p| p.name.as_str()),
        p.map(|p| p.role) as Option<Role>,
        clip(e.action, 64),
        e.target.as_deref().map(|t| clip(t, 256)),
        e.job_id,
        scrub(e.arguments.clone()),
        e.outcome as Outcome,
        e.error_code,
        e.client_addr.as_deref().map(|a| clip(a, 128)),
    )
    .fetch_one(pool)
    .await
}

/// Records an action Cellar took on its own (no token): `actor` (e.g. `retention`) is stored
/// as the token name, with no role, outcome allowed. Runs on `conn`, so the event commits with
/// the action it records.
pub async fn record_system(
    conn: &mut sqlx::PgConnection,
    actor: &str,
    action: &str,
    target: Option<&str>,
    job_id: Option<i64>,
    arguments: Value,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(
        r#"INSERT INTO audit_event (token_name, action, target, job_id, arguments, outcome)
           VALUES ($1, $2, $3, $4, $5, 'allowed') RETURNING id"#,
        actor,
        clip(action, 64),
        target.map(|t| clip(t, 256)),
        job_id,
        scrub(arguments),
    )
    .fetch_one(conn)
    .await
}

/// The newest events first, `limit` of them, older than event `before` when given (the cursor).
pub async fn list(
    pool: &PgPool,
    limit: i64,
    before: Option<i64>,
) -> Result<Vec<AuditEvent>, sqlx::Error> {
    sqlx::query_as!(
        AuditEvent,
        r#"SELECT id, at, token_name, role AS "role: Role", action, target, job_id, arguments,
                  outcome AS "outcome: Outcome", error_code, client_addr
           FROM audit_event WHERE $2::bigint IS NULL OR id < $2
           ORDER BY id DESC LIMIT $1"#,
        limit,
        before,
    )
    .fetch_all(pool)
    .await
}

/// True when the token `token_id` started job `job_id` (an allowed event names both). Operators
/// may cancel only such jobs.
pub async fn started_job(pool: &PgPool, token_id: i64, job_id: i64) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM audit_event
                          WHERE job_id = $2 AND token_id = $1 AND outcome = 'allowed') AS "e!""#,
        token_id,
        job_id
    )
    .fetch_one(pool)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scrub_removes_secrets_and_url_passwords() {
        let v = scrub(json!({
            "backupId": "cellar_backup_x",
            "token": "cellar_abc",
            "input": {"targetDatabase": "postgres://u:pw@h/db", "api_token": "x",
                      "tables": ["public.a"], "encryptionKey": "k"},
        }));
        let text = v.to_string();
        for leak in ["cellar_abc", "pw@", "\"x\"", "\"k\""] {
            assert!(!text.contains(leak), "{leak} in {text}");
        }
        assert_eq!(v["backupId"], "cellar_backup_x");
        assert_eq!(v["input"]["tables"][0], "public.a");
        assert_eq!(v["input"]["targetDatabase"], "postgres://u:***@h/db");
    }
}
