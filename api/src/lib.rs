//! Cellar's HTTP API: today the orchestrator probes; the GraphQL API, auth, audit and the
//! dashboard mount here as they land (see docs/ARCHITECTURE.md).
//!
//! # Layout
//! - [`router`]: the axum router over the shared [`AppState`].
//! - [`serve`]: runs it on a given listener until a shutdown future resolves (tests bind port 0).

use std::future::Future;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use sqlx::PgPool;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The catalog database.
    pub pool: PgPool,
}

/// The API's routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

/// `/healthz`: the process is alive.
async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `/readyz`: the catalog database answers (503 otherwise), so orchestrators route traffic only
/// to replicas that can serve it.
async fn readyz(State(s): State<AppState>) -> (StatusCode, Json<Value>) {
    match sqlx::Executor::execute(&s.pool, "SELECT 1").await {
        Ok(_) => (StatusCode::OK, Json(json!({ "status": "ready" }))),
        Err(e) => {
            tracing::warn!(error = %e, "readiness probe: catalog database unreachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "unavailable", "reason": "catalog database unreachable" })),
            )
        }
    }
}

/// Serves the API on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
