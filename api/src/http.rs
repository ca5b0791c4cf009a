//! GraphQL over HTTP and websockets: the caller is resolved from the bearer token (HTTP) or
//! from `connectionParams.token` (websocket `connection_init`), then attached to the request.

use async_graphql::Data;
use async_graphql::http::ALL_WEBSOCKET_PROTOCOLS;
use async_graphql_axum::{GraphQLProtocol, GraphQLResponse, GraphQLWebSocket};
use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequestParts, State, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::response::{Html, IntoResponse, Response};
use serde_json::Value;

use crate::AppState;
use crate::error::ApiError;
use crate::service::{Caller, Services};

/// The peer's address, when the server was started with connect info.
pub struct ClientAddr(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let addr = parts
            .extensions
            .get::<ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip().to_string());
        Ok(Self(addr))
    }
}

/// The token of an `Authorization: Bearer ...` header, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// Resolves the caller of `token`. An unknown, revoked or expired token is an anonymous caller
/// (its mutations are denied and audited as such); a database failure is an error.
pub async fn resolve(
    services: &Services,
    token: Option<&str>,
    addr: Option<String>,
) -> Result<Caller, ApiError> {
    let principal = match token {
        Some(t) => cellar_core::auth::authenticate(&services.pool, t).await?,
        None => None,
    };
    if token.is_some() && principal.is_none() {
        tracing::info!(client = ?addr, "request with an unknown, revoked or expired token");
    }
    Ok(Caller { principal, addr })
}

/// A websocket refused at `connection_init` leaves an audit event (never the token itself).
async fn audit_refused_websocket(services: &Services, caller: &Caller, had: bool, e: &ApiError) {
    let event = cellar_core::audit::NewEvent {
        principal: None,
        action: "websocket",
        target: None,
        job_id: None,
        arguments: serde_json::json!({ "token": if had { "unknown, revoked or expired" } else { "none" } }),
        outcome: cellar_core::audit::Outcome::Denied,
        error_code: Some(e.code()),
        client_addr: caller.addr.clone(),
    };
    if let Err(err) = cellar_core::audit::record(&services.pool, &event).await {
        tracing::error!(error = %err, "AUDIT EVENT NOT RECORDED: websocket refused");
    }
}

fn error_response(e: ApiError) -> GraphQLResponse {
    let e = async_graphql::Error::from(e).into_server_error(Default::default());
    async_graphql::Response::from_errors(vec![e]).into()
}

/// `POST /graphql`. The body is read through axum's `Bytes` so that the router's body limit
/// applies (413 beyond [`crate::MAX_BODY_BYTES`]), then parsed as a GraphQL JSON request.
pub async fn graphql(
    State(s): State<AppState>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req: async_graphql::Request = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            let msg = format!("the body must be a JSON GraphQL request: {e}");
            let mut r = error_response(ApiError::InvalidInput(msg)).into_response();
            *r.status_mut() = axum::http::StatusCode::BAD_REQUEST;
            return r;
        }
    };
    let resp = match resolve(&s.services, bearer(&headers), addr).await {
        Ok(caller) => s.schema.execute(req.data(caller)).await.into(),
        Err(e) => error_response(e),
    };
    resp.into_response()
}

/// `GET /graphql`: GraphiQL, wired to the websocket endpoint for subscriptions.
pub async fn graphiql() -> Html<&'static str> {
    Html(include_str!("graphiql.html"))
}

fn params_token(params: &Value) -> Option<String> {
    if let Some(t) = params.get("token").and_then(Value::as_str) {
        return Some(t.to_string());
    }
    let auth = params
        .get("Authorization")
        .or_else(|| params.get("authorization"))?
        .as_str()?;
    let (scheme, token) = auth.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_string())
}

/// `GET /graphql/ws`: subscriptions over `graphql-transport-ws` or the legacy `graphql-ws`.
/// The token comes from `connectionParams.token` (or an `Authorization` entry there, or the
/// upgrade request's header); without a valid one the connection is refused at init.
pub async fn graphql_ws(
    State(s): State<AppState>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    protocol: GraphQLProtocol,
    upgrade: WebSocketUpgrade,
) -> Response {
    let header_token = bearer(&headers).map(str::to_string);
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |stream| {
            let services = s.services.clone();
            GraphQLWebSocket::new(stream, s.schema.clone(), protocol)
                .on_connection_init(move |params| async move {
                    let token = params_token(&params).or(header_token);
                    let caller = resolve(&services, token.as_deref(), addr).await?;
                    if caller.principal.is_none() {
                        let refused = ApiError::Unauthenticated;
                        audit_refused_websocket(&services, &caller, token.is_some(), &refused)
                            .await;
                        return Err(refused.into());
                    }
                    let mut data = Data::default();
                    data.insert(caller);
                    Ok(data)
                })
                .serve()
        })
        .into_response()
}
