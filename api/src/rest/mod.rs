//! The seed's REST routes, kept for existing crontabs: thin adapters over [`crate::service`],
//! with the same bearer-token auth and audit, and snake_case bodies.
//!
//! # Layout
//! - this file: the routes, `POST /api/backup/create` and `GET /api/backup/list`.
//! - [`health`]: `GET /api/backup/health` and `POST /api/backup/health {"action":"diagnose"}`.
//! - [`restore`]: `POST /api/backup/restore`.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use cellar_core::backup::BackupType;
use cellar_core::backup::catalog::BackupRow;
use cellar_core::backup::listing::{Filter, state_name};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::error::ApiError;
use crate::http::{ClientAddr, bearer, resolve};
use crate::service::Caller;
use crate::service::backups::CreateBackup;

pub mod health;
pub mod restore;

/// The REST routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/backup/create", post(create))
        .route("/api/backup/list", get(list))
        .route("/api/backup/restore", post(restore::post))
        .route("/api/backup/health", get(health::get).post(health::post))
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match self {
            Self::Unauthenticated => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::InvalidInput(_) => StatusCode::BAD_REQUEST,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let body = json!({
            "success": false,
            "error": { "code": self.code(), "message": self.to_string() },
        });
        (status, Json(body)).into_response()
    }
}

/// The caller of a REST request.
pub(crate) async fn caller(
    s: &AppState,
    headers: &HeaderMap,
    addr: Option<String>,
) -> Result<Caller, ApiError> {
    resolve(&s.services, bearer(headers), addr).await
}

/// `POST /api/backup/create`'s body.
#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct CreateBody {
    backup_type: Option<String>,
    tables: Option<Vec<String>>,
    include_files: bool,
    upload_to_drive: bool,
    verify_backup: bool,
    source: Option<String>,
}

/// Parses a JSON body; an empty body is the default value.
pub(crate) fn parse_body<T: serde::de::DeserializeOwned + Default>(
    body: &[u8],
) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::InvalidInput(format!("invalid JSON body: {e}")))
}

fn parse_type(t: Option<&str>) -> Result<Option<BackupType>, ApiError> {
    t.filter(|t| !t.is_empty())
        .map(|t| t.parse().map_err(ApiError::InvalidInput))
        .transpose()
}

async fn create(
    State(s): State<AppState>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let who = caller(&s, &headers, addr).await?;
    let b: CreateBody = parse_body(&body)?;
    let input = CreateBackup {
        backup_type: parse_type(b.backup_type.as_deref())?,
        tables: b.tables,
        include_files: b.include_files,
        upload_to_drive: b.upload_to_drive,
        verify_backup: b.verify_backup,
        source: b.source,
    };
    let (id, job) = s.services.create_backup(&who, input).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "success": true,
            "message": "backup enqueued",
            "backup_id": id.as_str(),
            "job_id": job.id,
            "status": "pending",
        })),
    ))
}

/// `GET /api/backup/list`'s query.
#[derive(Deserialize)]
pub struct ListQuery {
    #[serde(rename = "type")]
    backup_type: Option<String>,
    limit: Option<i32>,
}

/// A backup in the seed's snake_case shape.
pub fn backup_json(b: &BackupRow) -> Value {
    let loc = |n: &str| b.locations.get(n).and_then(Value::as_str) == Some("available");
    json!({
        "backup_id": b.id,
        "backup_type": b.backup_type.as_str(),
        "status": state_name(b.state),
        "source": b.source,
        "created_at": b.created_at,
        "completed_at": b.completed_at,
        "size_bytes": b.stored_bytes,
        "plain_bytes": b.plain_bytes,
        "table_count": b.table_count,
        "total_rows": b.total_rows,
        "verification_status": b.verification.as_ref().and_then(|v| v.get("status")).cloned(),
        "local_available": loc("local"),
        "drive_available": loc("drive"),
        "error": b.error,
    })
}

async fn list(
    State(s): State<AppState>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let who = caller(&s, &headers, addr).await?;
    let filter = Filter {
        backup_type: parse_type(q.backup_type.as_deref())?,
        state: None,
    };
    let page = s.services.backups(&who, filter, q.limit, None).await?;
    let stats = s.services.statistics(&who, filter).await?;
    Ok(Json(json!({
        "success": true,
        "backups": page.rows.iter().map(backup_json).collect::<Vec<_>>(),
        "statistics": {
            "total_backups": stats.total_backups,
            "by_type": stats.by_type,
            "by_status": stats.by_status,
        },
    })))
}
