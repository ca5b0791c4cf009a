//! The web dashboard: plain HTML, CSS and JavaScript from `api/assets/`, embedded in the binary
//! and served at `/` and `/assets/...` with a strict Content-Security-Policy (no inline script,
//! no third-party origin). The page talks to `/graphql` and `/graphql/ws` like any client.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// The policy every dashboard response carries. The page loads its scripts and styles from
/// this origin only, sets no inline script or style attribute, and talks only to this origin
/// (`connect-src 'self'` covers the same-origin websocket).
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; \
    frame-ancestors 'none'";

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

/// One embedded file.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($path:literal, $ty:expr) => {
        Asset {
            path: $path,
            content_type: $ty,
            body: include_bytes!(concat!("../assets/", $path)),
        }
    };
}

/// Everything under `/assets/`.
const ASSETS: &[Asset] = &[
    asset!("app.css", CSS),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("ui.js", JS),
    asset!("overview.js", JS),
    asset!("backups.js", JS),
    asset!("chart.js", JS),
    asset!("create.js", JS),
    asset!("restore.js", JS),
    asset!("jobs.js", JS),
    asset!("schedules.js", JS),
    asset!("schedule-form.js", JS),
    asset!("retention.js", JS),
    asset!("forms.js", JS),
    asset!("audit.js", JS),
    asset!("vendor/graphql-ws.min.js", JS),
    asset!("vendor/graphql-ws.LICENSE.md", TEXT),
];

const INDEX: &[u8] = include_bytes!("../assets/index.html");

/// The dashboard's routes; they need no state.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(index))
        .route("/assets/{*path}", get(asset))
}

fn respond(content_type: &'static str, body: &'static [u8]) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // Small files that change with the binary: always revalidate.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

async fn index() -> Response {
    respond(HTML, INDEX)
}

async fn asset(Path(path): Path<String>) -> Response {
    match ASSETS.iter().find(|a| a.path == path) {
        Some(a) => respond(a.content_type, a.body),
        None => (StatusCode::NOT_FOUND, "no such dashboard file").into_response(),
    }
}

#[cfg(test)]
mod tests;
