//! The fake's upload creation: multipart, and the start of a resumable session (the
//! session's chunks are in `session`).

use std::collections::HashMap;

use axum::Extension;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::Value;

use super::api::log_entry;
use super::server::{App, Kill};
use super::session;
use super::state::{FolderKind, LogEntry, Session, State as S, StoredFile, error};

/// Drive's granule: every chunk but the last is a multiple of it.
pub const GRANULE: usize = 256 * 1024;

type Params = Query<HashMap<String, String>>;

pub fn quota_error() -> Response {
    error(
        StatusCode::FORBIDDEN,
        "storageQuotaExceeded",
        "Service Accounts do not have storage quota. Leverage shared drives \
         (https://developers.google.com/workspace/drive/api/guides/about-shareddrives), or use \
         OAuth delegation (http://support.google.com/a/answer/7281227) instead.",
    )
}

/// Checks a new file's metadata: parent folder, shared drive or quota, property sizes.
fn check_meta(
    st: &S,
    meta: &Value,
    p: &HashMap<String, String>,
    subject: &Option<String>,
) -> Result<(), Response> {
    let parent = meta["parents"][0].as_str().unwrap_or_default();
    let all_drives = p.get("supportsAllDrives").is_some_and(|v| v == "true");
    match st.folders.get(parent) {
        Some(FolderKind::SharedDrive) if all_drives => {}
        Some(FolderKind::MyDrive) if subject.is_some() => {}
        Some(FolderKind::MyDrive) => return Err(quota_error()),
        _ => {
            return Err(error(
                StatusCode::NOT_FOUND,
                "notFound",
                &format!("File not found: {parent}."),
            ));
        }
    }
    for (k, v) in meta["appProperties"].as_object().into_iter().flatten() {
        if k.len() + v.as_str().map_or(0, str::len) > 124 {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "invalid",
                "The size of the property exceeds the 124-byte limit",
            ));
        }
    }
    Ok(())
}

pub(super) fn store(st: &mut S, meta: &Value, data: Vec<u8>) -> StoredFile {
    let props = meta["appProperties"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
        .collect();
    let f = StoredFile::new(
        st.next_id(),
        meta["name"].as_str().unwrap_or("Untitled").to_string(),
        vec![meta["parents"][0].as_str().unwrap_or_default().to_string()],
        props,
        Bytes::from(data),
        st.now(),
    );
    st.files.insert(f.id.clone(), f.clone());
    f
}

/// `POST /upload/drive/v3/files`: multipart, a resumable start, or a chunk sent with POST.
pub async fn post(
    state: State<App>,
    kill: Extension<Kill>,
    headers: HeaderMap,
    Query(p): Params,
    body: Body,
) -> Response {
    if p.contains_key("upload_id") {
        return session::chunk(state, kill, Method::POST, headers, p, body).await;
    }
    let State(app) = state;
    let kind = p.get("uploadType").cloned().unwrap_or_default();
    let e = LogEntry {
        upload: Some(kind.clone()),
        ..log_entry(&Method::POST, "/upload/drive/v3/files")
    };
    let begun = match app.begin(&headers, &e, false) {
        Ok(b) => b,
        Err(r) => return r,
    };
    if begun.fault.is_some() {
        app.log(LogEntry {
            fault: begun.fault,
            ..e
        });
        return kill.0.now().await;
    }
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let e = LogEntry {
        bytes_received: bytes.len() as u64,
        ..e
    };
    let answer = match kind.as_str() {
        "multipart" => multipart(&app, &headers, &p, &bytes, &begun.subject),
        "resumable" => start(&app, &p, &bytes, &begun.subject),
        _ => error(
            StatusCode::BAD_REQUEST,
            "invalid",
            "Invalid Value: uploadType",
        ),
    };
    app.log(LogEntry {
        status: answer.status().as_u16(),
        ..e
    });
    answer
}

fn multipart(
    app: &App,
    headers: &HeaderMap,
    p: &HashMap<String, String>,
    body: &[u8],
    subject: &Option<String>,
) -> Response {
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let Some(boundary) = ctype.strip_prefix("multipart/related; boundary=") else {
        return error(
            StatusCode::BAD_REQUEST,
            "badContent",
            "Content-Type must be multipart/related",
        );
    };
    let Some((meta, data)) = split_multipart(body, boundary) else {
        return error(
            StatusCode::BAD_REQUEST,
            "badContent",
            "Malformed multipart body",
        );
    };
    let Ok(meta) = serde_json::from_slice::<Value>(meta) else {
        return error(
            StatusCode::BAD_REQUEST,
            "parseError",
            "Metadata is not JSON",
        );
    };
    let mut st = app.lock();
    if let Err(r) = check_meta(&st, &meta, p, subject) {
        return r;
    }
    axum::Json(store(&mut st, &meta, data.to_vec()).json()).into_response()
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
}

/// `--B\r\n<headers>\r\n\r\n<json>\r\n--B\r\n<headers>\r\n\r\n<data>\r\n--B--`.
fn split_multipart<'a>(body: &'a [u8], boundary: &str) -> Option<(&'a [u8], &'a [u8])> {
    let delim = format!("\r\n--{boundary}");
    let first = format!("--{boundary}\r\n");
    if !body.starts_with(first.as_bytes()) {
        return None;
    }
    let meta_start = find(body, b"\r\n\r\n", 0)? + 4;
    let meta_end = find(body, delim.as_bytes(), meta_start)?;
    let data_start = find(body, b"\r\n\r\n", meta_end + 2)? + 4;
    let closing = format!("{delim}--");
    let tail = body.len().checked_sub(closing.len() + 2)?;
    let data_end = (data_start..=tail)
        .rev()
        .find(|&i| body[i..].starts_with(closing.as_bytes()))?;
    Some((&body[meta_start..meta_end], &body[data_start..data_end]))
}

fn start(
    app: &App,
    p: &HashMap<String, String>,
    body: &[u8],
    subject: &Option<String>,
) -> Response {
    let Ok(meta) = serde_json::from_slice::<Value>(body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "parseError",
            "Metadata is not JSON",
        );
    };
    let mut st = app.lock();
    if let Err(r) = check_meta(&st, &meta, p, subject) {
        return r;
    }
    let id = format!("up{:016x}", rand::random::<u64>());
    st.sessions.insert(
        id.clone(),
        Session {
            meta,
            data: Vec::new(),
        },
    );
    let uri = format!(
        "{}/upload/drive/v3/files?uploadType=resumable&upload_id={id}",
        st.base_url
    );
    (StatusCode::OK, [(header::LOCATION, uri)]).into_response()
}
