//! `GET /api/backup/health` and `POST /api/backup/health {"action": "diagnose"}`: what exists
//! today (catalog, latest backups, queue depth), in the seed's snake_case shape.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{backup_json, caller};
use crate::AppState;
use crate::error::ApiError;
use crate::http::ClientAddr;
use crate::service::health::Health;

/// Checks this build does not make yet (they belong to the health issue).
const NOT_CHECKED: [&str; 4] = [
    "worker liveness",
    "storage free space",
    "google drive connectivity",
    "backup schedules",
];

fn summary(h: &Health) -> Value {
    json!({
        "overall_status": h.overall(),
        "health_summary": {
            "catalog_reachable": h.catalog_reachable,
            "last_successful_backup_at": h.last_success_at,
            "recent_backups": h.recent.len(),
            "recent_failures": h.recent_failures(),
            "queue_depth": h.queue_depth,
            "oldest_queued_seconds": h.oldest_queued_secs,
            "problems": h.problems(),
        },
        "checked_at": chrono::Utc::now(),
    })
}

/// `GET /api/backup/health`.
pub async fn get(
    State(s): State<AppState>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let who = caller(&s, &headers, addr).await?;
    Ok(Json(summary(&s.services.health(&who).await?)))
}

/// The body of `POST /api/backup/health`.
#[derive(Deserialize, Default)]
pub struct Action {
    action: String,
}

/// `POST /api/backup/health {"action": "diagnose"}`: the summary plus the latest backups, the
/// problems as recommendations, and what is not checked yet.
pub async fn post(
    State(s): State<AppState>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let who = caller(&s, &headers, addr).await?;
    let a: Action = super::parse_body(&body)?;
    if a.action != "diagnose" {
        return Err(ApiError::InvalidInput(
            "unknown action: the only action is \"diagnose\"".into(),
        ));
    }
    let h = s.services.health(&who).await?;
    let mut out = summary(&h);
    out["diagnosis"] = json!({
        "recent_backups": h.recent.iter().map(backup_json).collect::<Vec<_>>(),
        "recommendations": h.problems(),
        "not_checked": NOT_CHECKED,
    });
    Ok(Json(out))
}
