//! API tokens and roles: who may do what.
//!
//! A token is `cellar_` followed by 32 random bytes in unpadded base64url. It is shown once, when
//! created; the catalog keeps only its BLAKE3 hash (`api_token.token_hash`), so reading the
//! catalog does not give anyone a working token. Looking a token up is one statement that also
//! refreshes `last_used_at` (at most once a minute, to keep reads cheap).

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::Serialize;
use sqlx::PgPool;

/// What a token may do; the Postgres enum `api_role`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, sqlx::Type)]
#[sqlx(type_name = "api_role", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, including restores, deletes, tokens and the audit log.
    Master,
    /// Create and verify backups, cancel the jobs it started, run diagnose, read.
    Operator,
    /// Read only.
    Viewer,
}

/// Things a caller may be allowed to do. Checked by the API before anything else happens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permission {
    /// Read backups, jobs, progress and health.
    Read,
    /// Create a backup.
    CreateBackup,
    /// Verify a backup.
    VerifyBackup,
    /// Cancel a job this caller started (operators) or any job (masters).
    CancelOwnJob,
    /// Cancel anyone's job.
    CancelAnyJob,
    /// Run a cancelled or discarded job again.
    RetryJob,
    /// Delete a backup's objects.
    DeleteBackup,
    /// Restore a backup (and roll a restore back).
    Restore,
    /// Read the audit trail.
    ReadAudit,
    /// Run the live `diagnose` probes (they write and delete small probe objects).
    Diagnose,
    /// Create, list and revoke tokens.
    ManageTokens,
}

impl Role {
    /// The lowercase name, as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Master => "master",
            Self::Operator => "operator",
            Self::Viewer => "viewer",
        }
    }

    /// True when this role grants `p`. Masters may do everything.
    pub fn allows(self, p: Permission) -> bool {
        use Permission as P;
        match self {
            Self::Master => true,
            Self::Operator => matches!(
                p,
                P::Read | P::CreateBackup | P::VerifyBackup | P::CancelOwnJob | P::Diagnose
            ),
            Self::Viewer => p == P::Read,
        }
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "master" => Ok(Self::Master),
            "operator" => Ok(Self::Operator),
            "viewer" => Ok(Self::Viewer),
            _ => Err(format!(
                "unknown role {s:?}: use master, operator or viewer"
            )),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An authenticated caller: which token, whose, with what role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// The token's row id (audit events point at it).
    pub token_id: i64,
    /// The token's name.
    pub name: String,
    /// Its role.
    pub role: Role,
}

/// A token as listed (never the secret, never the hash).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenInfo {
    pub id: i64,
    pub name: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Errors of token management.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The name is not usable.
    #[error("invalid token name {0:?}: use 1-63 letters, digits, '_', '.', '@' or '-'")]
    InvalidName(String),
    /// An active token already has that name.
    #[error("an active token named {0:?} exists: revoke it first or pick another name")]
    NameTaken(String),
    /// No active token has that name.
    #[error("no active token named {0:?}")]
    NotFound(String),
    /// The expiry is not in the future.
    #[error("the expiry must be in the future")]
    ExpiryInPast,
    /// The database failed.
    #[error("catalog database error: {0}")]
    Db(#[from] sqlx::Error),
}

const TOKEN_PREFIX: &str = "cellar_";

/// The stored form of a token: lowercase hex BLAKE3 of its text.
pub fn hash_token(token: &str) -> String {
    blake3::hash(token.as_bytes()).to_hex().to_string()
}

fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    format!("{TOKEN_PREFIX}{b64}")
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    (1..=63).contains(&name.len())
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.@-".contains(c))
}

/// Creates a token and returns its secret text (to show once) and its row.
pub async fn create_token(
    pool: &PgPool,
    name: &str,
    role: Role,
    expires_at: Option<DateTime<Utc>>,
) -> Result<(String, TokenInfo), AuthError> {
    if !valid_name(name) {
        return Err(AuthError::InvalidName(name.chars().take(80).collect()));
    }
    if expires_at.is_some_and(|e| e <= Utc::now()) {
        return Err(AuthError::ExpiryInPast);
    }
    let secret = new_secret();
    let row = sqlx::query_as!(
        TokenInfo,
        r#"INSERT INTO api_token (name, role, token_hash, expires_at) VALUES ($1, $2, $3, $4)
           RETURNING id, name, role AS "role: Role", created_at, last_used_at, expires_at,
                     revoked_at"#,
        name,
        role as Role,
        hash_token(&secret),
        expires_at,
    )
    .fetch_one(pool)
    .await;
    match row {
        Ok(row) => Ok((secret, row)),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            Err(AuthError::NameTaken(name.to_string()))
        }
        Err(e) => Err(e.into()),
    }
}

/// The caller a token text belongs to, if it is known, not revoked and not expired.
pub async fn authenticate(pool: &PgPool, token: &str) -> Result<Option<Principal>, sqlx::Error> {
    if !token.starts_with(TOKEN_PREFIX) || token.len() > 128 {
        return Ok(None);
    }
    sqlx::query_file_as!(Principal, "src/auth/authenticate.sql", hash_token(token))
        .fetch_optional(pool)
        .await
}

/// Every token, newest first (revoked ones included, for the record).
pub async fn list_tokens(pool: &PgPool) -> Result<Vec<TokenInfo>, sqlx::Error> {
    sqlx::query_as!(
        TokenInfo,
        r#"SELECT id, name, role AS "role: Role", created_at, last_used_at, expires_at, revoked_at
           FROM api_token ORDER BY id DESC"#
    )
    .fetch_all(pool)
    .await
}

/// Revokes the active token named `name`; it stops working at once.
pub async fn revoke_token(pool: &PgPool, name: &str) -> Result<TokenInfo, AuthError> {
    sqlx::query_as!(
        TokenInfo,
        r#"UPDATE api_token SET revoked_at = now() WHERE name = $1 AND revoked_at IS NULL
           RETURNING id, name, role AS "role: Role", created_at, last_used_at, expires_at,
                     revoked_at"#,
        name
    )
    .fetch_optional(pool)
    .await?
    .ok_or_else(|| AuthError::NotFound(name.chars().take(80).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_grant_what_the_issue_says() {
        use Permission as P;
        let all = [
            P::Read,
            P::CreateBackup,
            P::VerifyBackup,
            P::CancelOwnJob,
            P::CancelAnyJob,
            P::RetryJob,
            P::DeleteBackup,
            P::Restore,
            P::ReadAudit,
            P::ManageTokens,
        ];
        assert!(all.iter().all(|&p| Role::Master.allows(p)));
        let op: Vec<_> = all.iter().filter(|&&p| Role::Operator.allows(p)).collect();
        assert_eq!(
            op,
            [
                &P::Read,
                &P::CreateBackup,
                &P::VerifyBackup,
                &P::CancelOwnJob
            ]
        );
        let viewer: Vec<_> = all.iter().filter(|&&p| Role::Viewer.allows(p)).collect();
        assert_eq!(viewer, [&P::Read]);
    }

    #[test]
    fn secrets_are_random_prefixed_and_hashed() {
        let (a, b) = (new_secret(), new_secret());
        assert_ne!(a, b);
        assert!(a.starts_with("cellar_") && a.len() == 7 + 43);
        assert_eq!(hash_token(&a).len(), 64);
        assert_ne!(hash_token(&a), hash_token(&b));
    }

    #[test]
    fn names_are_checked() {
        for ok in ["ci", "alice@example.com", "backup-cron_1.2"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in [
            "",
            "-x",
            "a b",
            "x'; DROP TABLE api_token; --",
            &"a".repeat(64),
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
