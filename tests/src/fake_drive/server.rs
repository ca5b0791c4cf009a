//! The fake's HTTP side: an accept loop that can drop a connection mid-request (what a real
//! network does), the router, and the preamble every call goes through (bearer token, fault).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::faults::Fault;
use super::state::{LogEntry, State, error};
use super::{api, session, upload};

/// Shared by every handler.
#[derive(Clone)]
pub struct App {
    pub state: Arc<Mutex<State>>,
}

/// Closes the request's connection without an answer.
#[derive(Clone)]
pub struct Kill(CancellationToken);

impl Kill {
    /// Drops the connection: the handler future is dropped with it and never returns.
    pub async fn now(&self) -> Response {
        self.0.cancel();
        std::future::pending().await
    }
}

/// What the preamble learnt about a request.
pub struct Begun {
    /// The delegation subject of the token, if any.
    pub subject: Option<String>,
    /// A fault to act out that the preamble could not (drop mid-body, partial accept).
    pub fault: Option<Fault>,
}

impl App {
    pub fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("fake drive lock")
    }

    pub fn log(&self, e: LogEntry) {
        self.lock().log.push(e);
    }

    /// Checks the bearer token and draws a fault. Status faults are answered (and logged) here.
    pub fn begin(
        &self,
        headers: &HeaderMap,
        entry: &LogEntry,
        chunk: bool,
    ) -> Result<Begun, Response> {
        let token = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let mut st = self.lock();
        let Some(subject) = token.and_then(|t| st.tokens.get(t)).cloned() else {
            drop(st);
            self.log(LogEntry {
                status: 401,
                ..entry.clone()
            });
            return Err(error(
                StatusCode::UNAUTHORIZED,
                "authError",
                "Invalid Credentials",
            ));
        };
        let fault = st.faults.next(chunk);
        drop(st);
        let answer = match fault {
            Some(Fault::TooMany) => error(
                StatusCode::TOO_MANY_REQUESTS,
                "rateLimitExceeded",
                "Rate Limit Exceeded",
            ),
            Some(Fault::Internal) => error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "backendError",
                "Backend Error",
            ),
            Some(Fault::Unavailable) => error(
                StatusCode::SERVICE_UNAVAILABLE,
                "backendError",
                "Service Unavailable",
            ),
            Some(Fault::RateLimit403) => error(
                StatusCode::FORBIDDEN,
                "userRateLimitExceeded",
                "User Rate Limit Exceeded",
            ),
            Some(Fault::Quota) => super::upload::quota_error(),
            _ => return Ok(Begun { subject, fault }),
        };
        self.log(LogEntry {
            status: answer.status().as_u16(),
            fault,
            ..entry.clone()
        });
        Err(answer)
    }
}

fn router(app: App) -> Router {
    Router::new()
        .route("/token", post(api::token))
        .route("/drive/v3/files", get(api::list))
        .route(
            "/drive/v3/files/{id}",
            get(api::get_file).patch(api::patch).delete(api::delete),
        )
        .route(
            "/upload/drive/v3/files",
            post(upload::post).put(session::put).delete(session::cancel),
        )
        .with_state(app)
}

/// Serves until the process ends; each connection can be killed by its handler.
pub async fn serve(listener: TcpListener, app: App) {
    let router = router(app);
    loop {
        let Ok((stream, _peer)) = listener.accept().await else {
            continue;
        };
        let router = router.clone();
        tokio::spawn(async move {
            let kill = CancellationToken::new();
            let k = Kill(kill.clone());
            let svc = hyper::service::service_fn(
                move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(k.clone());
                    let req: Request = req.map(axum::body::Body::new);
                    router.clone().oneshot(req)
                },
            );
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc);
            tokio::select! {
                _ = conn => {}
                _ = kill.cancelled() => {}
            }
        });
    }
}

/// Binds 127.0.0.1:0.
pub async fn bind() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind fake drive");
    let addr = l.local_addr().expect("local addr");
    (l, addr)
}
