//! A resumable session's requests: chunks (PUT or POST) with the 256 KiB rule, `308` +
//! `Range`, status queries, cancel, and the faults that hit them (dropped mid-body, partial
//! acceptance).

use std::collections::HashMap;

use axum::Extension;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;

use super::api::log_entry;
use super::faults::Fault;
use super::server::{App, Kill};
use super::state::{LogEntry, State as S, error};
use super::upload::{GRANULE, store};

type Params = Query<HashMap<String, String>>;

/// `PUT /upload/drive/v3/files?upload_id=...`: a chunk or a status query.
pub async fn put(
    state: State<App>,
    kill: Extension<Kill>,
    headers: HeaderMap,
    Query(p): Params,
    body: Body,
) -> Response {
    chunk(state, kill, Method::PUT, headers, p, body).await
}

/// `DELETE` on a session: cancels it (Drive answers 499).
pub async fn cancel(State(app): State<App>, Query(p): Params) -> Response {
    let id = p.get("upload_id").cloned().unwrap_or_default();
    let gone = app.lock().sessions.remove(&id).is_some();
    let status = if gone {
        StatusCode::from_u16(499).expect("499")
    } else {
        StatusCode::NOT_FOUND
    };
    app.log(LogEntry {
        upload: Some("session".into()),
        status: status.as_u16(),
        ..log_entry(&Method::DELETE, "/upload/drive/v3/files")
    });
    status.into_response()
}

/// `bytes A-B/T`, `bytes */T`, with `*` for an unknown total.
struct ContentRange {
    span: Option<(u64, u64)>,
    total: Option<u64>,
}

fn parse_range(s: &str) -> Option<ContentRange> {
    let (span, total) = s.strip_prefix("bytes ")?.split_once('/')?;
    let total = if total == "*" {
        None
    } else {
        Some(total.parse().ok()?)
    };
    let span = match span {
        "*" => None,
        s => {
            let (a, b) = s.split_once('-')?;
            let (a, b): (u64, u64) = (a.parse().ok()?, b.parse().ok()?);
            if b < a {
                return None;
            }
            Some((a, b))
        }
    };
    Some(ContentRange { span, total })
}

pub(super) async fn chunk(
    State(app): State<App>,
    Extension(kill): Extension<Kill>,
    method: Method,
    headers: HeaderMap,
    p: HashMap<String, String>,
    body: Body,
) -> Response {
    let delay = app.lock().chunk_delay;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await; // a slow link, so a test can kill a client mid-upload
    }
    let cr = headers
        .get(header::CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let id = p.get("upload_id").cloned().unwrap_or_default();
    let object = app.lock().sessions.get(&id).map(|s| {
        let name = s.meta["name"].as_str();
        name.unwrap_or("Untitled").to_string()
    });
    let e = LogEntry {
        upload: Some("session".into()),
        object: object.clone(),
        content_range: cr.clone(),
        ..log_entry(&method, "/upload/drive/v3/files")
    };
    let begun = match app.begin(&headers, &e, true) {
        Ok(b) => b,
        Err(r) => return r,
    };
    if !app.lock().sessions.contains_key(&id) {
        app.log(LogEntry { status: 404, ..e });
        return error(StatusCode::NOT_FOUND, "notFound", "No such upload session");
    }
    let Some(range) = cr.as_deref().and_then(parse_range) else {
        app.log(LogEntry { status: 400, ..e });
        return error(
            StatusCode::BAD_REQUEST,
            "badRequest",
            "Invalid Content-Range",
        );
    };
    if begun.fault == Some(Fault::DropMidBody) {
        let got = read_some(body, &headers).await;
        let keep = got.len() / GRANULE * GRANULE;
        if let Some((a, _)) = range.span {
            let mut st = app.lock();
            if let Some(s) = st
                .sessions
                .get_mut(&id)
                .filter(|s| s.data.len() as u64 == a)
            {
                s.data.extend_from_slice(&got[..keep]);
            }
        }
        app.log(LogEntry {
            bytes_received: got.len() as u64,
            fault: begun.fault,
            ..e
        });
        return kill.now().await;
    }
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let partial = begun.fault == Some(Fault::PartialAccept);
    let answer = apply(&mut app.lock(), &id, &range, &bytes, partial);
    let fault = begun.fault.filter(|_| partial);
    app.log(LogEntry {
        bytes_received: bytes.len() as u64,
        status: answer.status().as_u16(),
        fault,
        ..e
    });
    answer
}

/// Reads about half of a body (at least what is there up to that), as a dropped connection would.
async fn read_some(body: Body, headers: &HeaderMap) -> Vec<u8> {
    let len: usize = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .unwrap_or(0);
    let mut got = Vec::new();
    let mut stream = body.into_data_stream();
    while got.len() < len / 2 {
        match stream.next().await {
            Some(Ok(b)) => got.extend_from_slice(&b),
            _ => break,
        }
    }
    got.truncate(len / 2);
    got
}

/// Applies a chunk (or a status query) to a session; answers 308, 200 (done) or 400.
fn apply(st: &mut S, id: &str, range: &ContentRange, bytes: &[u8], partial: bool) -> Response {
    let s = st.sessions.get_mut(id).expect("checked above");
    let held = s.data.len() as u64;
    if let Some((a, b)) = range.span {
        if bytes.len() as u64 != b - a + 1 {
            return error(
                StatusCode::BAD_REQUEST,
                "badRequest",
                "Content-Range does not match the body length",
            );
        }
        if a > held {
            return error(
                StatusCode::BAD_REQUEST,
                "badRequest",
                &format!("Chunk starts at {a}, the server holds {held} bytes"),
            );
        }
        let last = range.total.is_some_and(|t| b + 1 == t);
        if !last && !bytes.len().is_multiple_of(GRANULE) {
            return error(
                StatusCode::BAD_REQUEST,
                "badRequest",
                "Invalid request. The number of bytes uploaded is required to be equal or greater than 262144, except for the final request (it's recommended to be the exact multiple of 262144).",
            );
        }
        let new = &bytes[(held - a) as usize..];
        let keep = if partial {
            new.len() / 2 / GRANULE * GRANULE
        } else {
            new.len()
        };
        s.data.extend_from_slice(&new[..keep]);
    } else if !bytes.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "badRequest",
            "A status query has no body",
        );
    }
    let held = s.data.len() as u64;
    match range.total {
        Some(t) if held > t => error(
            StatusCode::BAD_REQUEST,
            "badRequest",
            "More bytes than the declared total",
        ),
        Some(t) if held == t => {
            let s = st.sessions.remove(id).expect("present");
            axum::Json(store(st, &s.meta, s.data).json()).into_response()
        }
        _ => {
            let mut r = StatusCode::PERMANENT_REDIRECT.into_response();
            if held > 0 {
                let v = format!("bytes=0-{}", held - 1);
                r.headers_mut()
                    .insert(header::RANGE, v.parse().expect("header"));
            }
            r
        }
    }
}
