//! `GET /api/backup/health` and `POST /api/backup/health {"action": "diagnose"}`, in the
//! seed's snake_case shape, over the same services as GraphQL.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use cellar_core::backup::listing::state_name;
use cellar_core::health::HealthReport;
use cellar_core::health::diagnose::Diagnosis;
use serde::Deserialize;
use serde_json::{Value, json};

use super::caller;
use crate::AppState;
use crate::error::ApiError;
use crate::http::ClientAddr;
use crate::service::health::probe_status;

fn health_json(h: &HealthReport) -> Value {
    let reasons: Vec<Value> = h
        .reasons
        .iter()
        .map(|r| json!({"status": r.status.as_str(), "code": r.code, "message": r.message}))
        .collect();
    let c = &h.configuration;
    let mut out = json!({
        "success": true,
        "overall_status": h.status.as_str(),
        "reasons": reasons,
        "checked_at": h.checked_at,
        "configuration": {
            "drive_configured": c.drive_configured,
            "drive_folders": c.drive_folders,
            "sources": c.sources,
            "shortest_schedule_interval_seconds": c.shortest_interval_secs,
            "shortest_schedule_interval_source": c.shortest_interval_source,
            "schedules": c.schedules,
            "retention": c.retention,
        },
    });
    let Some(f) = &h.facts else { return out };
    let t = &f.totals;
    let sources: Vec<Value> = f
        .sources
        .iter()
        .map(|s| {
            json!({
                "name": s.name,
                "last_backup": s.last_backup.as_ref().map(|b| json!({
                    "backup_id": b.id, "backup_type": b.backup_type.as_str(),
                    "status": state_name(b.state), "created_at": b.at,
                })),
                "last_successful_backup_id": s.last_success_id,
                "last_successful_backup_at": s.last_success_at,
                "last_verified_backup_id": s.last_verified_id,
                "last_verified_backup_at": s.last_verified_at,
                "failure_streak": s.failure_streak,
            })
        })
        .collect();
    out["health_summary"] = json!({
        "sources": sources,
        "total_backups": t.total_backups,
        "drive_configured": c.drive_configured,
    });
    let queue: Vec<Value> = f
        .queue
        .iter()
        .map(|q| {
            json!({
                "kind": q.kind, "waiting": q.waiting,
                "oldest_waiting_seconds": q.oldest_waiting_secs, "running": q.running,
            })
        })
        .collect();
    out["metrics"] = json!({
        "backups_last_24h": t.backups_last_24h,
        "backups_last_week": t.backups_last_week,
        "successes_last_week": t.successes_last_week,
        "failures_last_week": t.failures_last_week,
        "verification_rate": t.verification_rate(),
        "storage_used_local_bytes": t.storage_local_bytes,
        "storage_used_drive_bytes": t.storage_drive_bytes,
        "queue_depth": f.waiting(),
        "oldest_waiting_job_seconds": f.oldest_waiting_secs(),
        "queue": queue,
        "live_workers": f.live_workers().len(),
    });
    out
}

fn diagnosis_json(d: &Diagnosis) -> Value {
    let probes: Vec<Value> = d
        .probes
        .iter()
        .map(|p| {
            json!({
                "name": p.name, "status": probe_status(p.status), "detail": p.detail, "fix": p.fix,
            })
        })
        .collect();
    json!({
        "status": probe_status(d.status),
        "probes": probes,
        "checked_at": d.checked_at,
        "ran_on": d.ran_on,
    })
}

/// `GET /api/backup/health`.
pub async fn get(
    State(s): State<AppState>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let who = caller(&s, &headers, addr).await?;
    Ok(Json(health_json(&s.services.health(&who).await?)))
}

/// The body of `POST /api/backup/health`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Action {
    #[serde(default)]
    action: String,
    /// How long a worker gets to run the probes, in seconds.
    timeout_seconds: Option<f64>,
}

/// `POST /api/backup/health {"action": "diagnose"}`: the health report plus `diagnosis`, the
/// live probes (operators and masters).
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
    let d = s.services.diagnose(&who, a.timeout_seconds).await?;
    let mut out = health_json(&s.services.health(&who).await?);
    out["diagnosis"] = diagnosis_json(&d);
    Ok(Json(out))
}
