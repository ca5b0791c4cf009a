//! Cellar's HTTP API: GraphQL (queries, mutations, subscriptions), the seed's REST routes, and
//! the orchestrator probes (`/healthz`, `/readyz`, open) and Prometheus `/metrics`, all else
//! behind API tokens, every mutation audited; and the web dashboard (`/`, open: it is only a
//! client of the same API).
//!
//! # Layout
//! - [`router`]: the axum router over the shared [`AppState`]; [`serve`] runs it on a given
//!   listener until a shutdown future resolves (tests bind port 0).
//! - [`service`]: the operations GraphQL and REST share (role checks, audit).
//! - [`graphql`]: the schema; [`http`]: GraphQL over HTTP and websockets, token resolution.
//! - [`rest`]: the REST compatibility routes.
//! - [`dashboard`]: the web dashboard at `/` (embedded HTML, CSS and JavaScript).
//! - [`events`]: the one LISTEN per process feeding every subscription.
//! - [`error`]: the error type and its machine-readable codes.

use std::future::Future;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

pub mod dashboard;
pub mod error;
pub mod events;
pub mod graphql;
pub mod http;
pub mod rest;
pub mod service;

pub use graphql::{CellarSchema, sdl};
pub use service::Services;

/// Largest request body accepted (GraphQL documents included): a few kilobytes is plenty for
/// any real query; anything larger is refused with 413 before it is parsed.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// Role checks, audit and the core calls.
    pub services: Services,
    /// The GraphQL schema.
    pub schema: CellarSchema,
    /// The job event fan-out (one LISTEN).
    pub hub: Arc<events::Hub>,
}

impl AppState {
    /// Builds the state and starts the job event listener (stopped by `stop`). `sources` are
    /// the configured source names, the default first; `drive_configured` says whether the
    /// workers have Google Drive (so `uploadToDrive` can be accepted).
    pub fn new(
        pool: PgPool,
        sources: Vec<String>,
        drive_configured: bool,
        stop: CancellationToken,
    ) -> Self {
        assert!(
            !sources.is_empty(),
            "at least one source must be configured"
        );
        let services = Services {
            pool: pool.clone(),
            sources,
            drive_configured,
            token_checks: Arc::new(service::liveness::TokenChecks::new(
                graphql::live_auth::RECHECK / 2,
            )),
        };
        let hub = events::Hub::start(pool, stop);
        let schema = graphql::schema(services.clone(), Arc::clone(&hub));
        Self {
            services,
            schema,
            hub,
        }
    }
}

/// The API's routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/graphql", get(http::graphiql).post(http::graphql))
        .route("/graphql/ws", get(http::graphql_ws))
        .merge(rest::routes())
        .merge(dashboard::routes())
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// `/healthz`: the process is alive.
async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `/readyz`: the catalog database answers (503 otherwise), so orchestrators route traffic only
/// to replicas that can serve it.
async fn readyz(State(s): State<AppState>) -> (StatusCode, Json<Value>) {
    match cellar_core::db::ping(&s.services.pool).await {
        Ok(()) => (StatusCode::OK, Json(json!({ "status": "ready" }))),
        Err(e) => {
            tracing::warn!(error = %e, "readiness probe: catalog database unreachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "unavailable", "reason": "catalog database unreachable" })),
            )
        }
    }
}

/// `/metrics`: the Prometheus exposition (text format 0.0.4). Needs a bearer API token of any
/// role (Prometheus: `authorization: {credentials: <viewer token>}`), like every other read:
/// it names sources and job kinds.
async fn metrics(
    State(s): State<AppState>,
    http::ClientAddr(addr): http::ClientAddr,
    headers: axum::http::HeaderMap,
) -> Result<([(axum::http::header::HeaderName, &'static str); 1], String), error::ApiError> {
    let who = http::resolve(&s.services, http::bearer(&headers), addr).await?;
    let text = s.services.metrics(&who).await?;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    ))
}

/// Serves the API on `listener` until `shutdown` resolves. Client addresses reach the audit
/// trail through connect info.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
