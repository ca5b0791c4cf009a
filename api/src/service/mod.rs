//! The operations GraphQL and the REST routes share: each checks the caller's role first,
//! and every mutation writes one audit event whatever its outcome.
//!
//! # Layout
//! - [`Caller`]: who is asking (token and client address), resolved once per request.
//! - [`Services`]: the shared state and the audited-mutation wrapper [`Services::mutate`].
//! - [`backups`]: create, verify, delete, list, read.
//! - [`jobs`]: read, list, cancel, retry.
//! - [`admin`]: the audit log.
//! - [`health`]: health, metrics and diagnose (a `diagnose` job run by a worker).
//! - [`schedules`]: list, upsert, enable/disable, delete.
//! - [`retention`]: policies, preview, pins.
//! - [`liveness`]: whether a subscription's token is still active, read once per interval per
//!   token (not per subscription).

use std::future::Future;

use cellar_core::audit::{self, NewEvent, Outcome};
use cellar_core::auth::{Permission, Principal};
use serde_json::Value;
use sqlx::PgPool;

use crate::error::ApiError;

pub mod admin;
pub mod backups;
pub mod health;
pub mod jobs;
pub mod liveness;
pub mod restores;
pub mod retention;
pub mod schedules;

/// Who is asking: resolved from the bearer token (HTTP) or `connectionParams.token` (websocket).
#[derive(Clone, Debug, Default)]
pub struct Caller {
    /// The token's owner, `None` without a valid token.
    pub principal: Option<Principal>,
    /// The client's address, for the audit trail.
    pub addr: Option<String>,
}

impl Caller {
    /// The principal, if its role grants `p`.
    pub fn require(&self, p: Permission) -> Result<&Principal, ApiError> {
        let who = self.principal.as_ref().ok_or(ApiError::Unauthenticated)?;
        if who.role.allows(p) {
            Ok(who)
        } else {
            Err(ApiError::Forbidden(format!(
                "your role ({}) may not do this",
                who.role
            )))
        }
    }
}

/// What the operations need; cheap to clone.
#[derive(Clone)]
pub struct Services {
    /// The catalog.
    pub pool: PgPool,
    /// Names of the configured sources (never their URLs); the first is the default.
    pub sources: Vec<String>,
    /// Google Drive is configured (`GOOGLE_DRIVE_BACKUP_FOLDER_ID` set, as on the workers).
    pub drive_configured: bool,
    /// Recent token checks, shared by every open subscription.
    pub token_checks: std::sync::Arc<liveness::TokenChecks>,
}

/// What an audited mutation tells the audit trail about itself.
pub struct Audit<'a> {
    /// The mutation's name, e.g. `createBackup`.
    pub action: &'a str,
    /// What it acts on, as the caller named it.
    pub target: Option<String>,
    /// Its arguments (scrubbed before they are stored).
    pub arguments: Value,
}

impl Services {
    /// Runs a mutation: checks `p`, runs `f`, and records one audit event, denied, failed or
    /// allowed (with the job `f` started, if it returns one).
    pub async fn mutate<T, F, Fut>(
        &self,
        caller: &Caller,
        p: Permission,
        audit: Audit<'_>,
        f: F,
    ) -> Result<T, ApiError>
    where
        F: FnOnce(Principal) -> Fut,
        Fut: Future<Output = Result<(T, Option<i64>), ApiError>>,
    {
        let result = match caller.require(p) {
            Ok(who) => f(who.clone()).await,
            Err(e) => Err(e),
        };
        let (outcome, code, job_id) = match &result {
            Ok((_, job)) => (Outcome::Allowed, None, *job),
            Err(e) if e.is_denial() => (Outcome::Denied, Some(e.code()), None),
            Err(e) => (Outcome::Failed, Some(e.code()), None),
        };
        let event = NewEvent {
            principal: caller.principal.as_ref(),
            action: audit.action,
            target: audit.target,
            job_id,
            arguments: audit.arguments,
            outcome,
            error_code: code,
            client_addr: caller.addr.clone(),
        };
        if let Err(e) = audit::record(&self.pool, &event).await {
            tracing::error!(error = %e, action = audit.action, ?outcome,
                "AUDIT EVENT NOT RECORDED: the catalog refused the write");
        }
        result.map(|(t, _)| t)
    }
}
