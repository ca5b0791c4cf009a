//! `POST /api/backup/restore`: the seed's restore route, over the same service as
//! `restoreBackup` (masters only, `confirm_restore: true` required, audited).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{caller, parse_body};
use crate::AppState;
use crate::error::ApiError;
use crate::http::ClientAddr;
use crate::service::restores::RestoreInput;

/// The body, in the seed's snake_case. Unknown fields are refused so a typo such as
/// `confirm_restor` is an error rather than a silently refused restore.
#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct RestoreBody {
    backup_id: String,
    tables: Option<Vec<String>>,
    target_database: Option<String>,
    confirm_restore: bool,
    create_safety_backup: Option<bool>,
    accept_broken_references: bool,
    restore_files: bool,
}

/// Enqueues the restore; 202 with the job id.
pub async fn post(
    State(s): State<AppState>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let who = caller(&s, &headers, addr).await?;
    let b: RestoreBody = parse_body(&body)?;
    if b.backup_id.is_empty() {
        return Err(ApiError::InvalidInput("backup_id is required".into()));
    }
    let input = RestoreInput {
        backup_id: b.backup_id.clone(),
        tables: b.tables,
        target_database: b.target_database,
        confirm_restore: b.confirm_restore,
        create_safety_backup: b.create_safety_backup.unwrap_or(true),
        accept_broken_references: b.accept_broken_references,
        restore_files: b.restore_files,
    };
    let job = s.services.restore_backup(&who, input).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "success": true,
            "message": "restore enqueued",
            "backup_id": b.backup_id,
            "job_id": job.id,
            "status": "pending",
        })),
    ))
}
