//! The fake's metadata calls: token, files.list (with `q` and paging), files.get (metadata or
//! `alt=media` with `Range`), files.update of appProperties, files.delete.

use std::collections::HashMap;

use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use base64::Engine;
use base64::alphabet::URL_SAFE;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde_json::{Value, json};

use super::query::{self, Candidate};
use super::server::{App, Kill};
use super::state::{FolderKind, LogEntry, State as S, StoredFile, error};

type Params = Query<HashMap<String, String>>;

pub(super) fn log_entry(method: &Method, path: &str) -> LogEntry {
    LogEntry {
        method: method.to_string(),
        path: path.to_string(),
        upload: None,
        object: None,
        content_range: None,
        bytes_received: 0,
        status: 0,
        fault: None,
    }
}

fn flag(p: &HashMap<String, String>, name: &str) -> bool {
    p.get(name).is_some_and(|v| v == "true")
}

/// Whether a file is visible to a request (shared-drive items need `supportsAllDrives`).
fn visible(st: &S, f: &StoredFile, all_drives: bool) -> bool {
    let shared = f
        .parents
        .iter()
        .any(|p| st.folders.get(p) == Some(&FolderKind::SharedDrive));
    all_drives || !shared
}

/// `POST /token`: the JWT bearer grant, checked structurally (RS256, claims, audience).
pub async fn token(State(app): State<App>, Form(form): Form<HashMap<String, String>>) -> Response {
    let aud = format!("{}/token", app.lock().base_url);
    match check_grant(&form, &aud) {
        Ok(sub) => {
            let t = format!("fake-token-{:016x}", rand::random::<u64>());
            app.lock().tokens.insert(t.clone(), sub);
            Json(json!({"access_token": t, "token_type": "Bearer", "expires_in": 3600}))
                .into_response()
        }
        Err(why) => {
            let body = json!({"error": "invalid_grant", "error_description": why});
            (StatusCode::BAD_REQUEST, Json(body)).into_response()
        }
    }
}

fn check_grant(form: &HashMap<String, String>, aud: &str) -> Result<Option<String>, String> {
    if form.get("grant_type").map(String::as_str)
        != Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
    {
        return Err("unsupported grant_type".into());
    }
    let jwt = form.get("assertion").ok_or("no assertion")?;
    let parts: Vec<&str> = jwt.split('.').collect();
    let [h, c, sig] = parts[..] else {
        return Err("a JWT has three parts".into());
    };
    // Google accepts base64url with or without padding (yup-oauth2 pads).
    let cfg = GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    let b64 = GeneralPurpose::new(&URL_SAFE, cfg);
    let decode = |s: &str| b64.decode(s).map_err(|e| format!("base64url: {e}"));
    let header: Value = serde_json::from_slice(&decode(h)?).map_err(|e| e.to_string())?;
    let claims: Value = serde_json::from_slice(&decode(c)?).map_err(|e| e.to_string())?;
    if header["alg"] != "RS256" {
        return Err("alg must be RS256".into());
    }
    if decode(sig)?.len() < 256 {
        return Err("signature too short for RSA-2048".into());
    }
    if claims["aud"] != aud || !claims["iss"].is_string() || !claims["exp"].is_number() {
        return Err(format!("claims must carry iss, exp and aud = {aud}"));
    }
    let scope = claims["scope"].as_str().unwrap_or_default();
    if !scope
        .split(' ')
        .any(|s| s == "https://www.googleapis.com/auth/drive")
    {
        return Err("scope must include https://www.googleapis.com/auth/drive".into());
    }
    Ok(claims["sub"].as_str().map(str::to_owned))
}

/// `GET /drive/v3/files`.
pub async fn list(
    State(app): State<App>,
    Extension(kill): Extension<Kill>,
    headers: HeaderMap,
    Query(p): Params,
) -> Response {
    let e = log_entry(&Method::GET, "/drive/v3/files");
    let begun = match app.begin(&headers, &e, false) {
        Ok(b) => b,
        Err(r) => return r,
    };
    if begun.fault.is_some() {
        app.log(LogEntry {
            fault: begun.fault,
            ..e
        });
        return kill.now().await;
    }
    let answer = list_page(&app.lock(), &p);
    app.log(LogEntry {
        status: answer.status().as_u16(),
        ..e
    });
    answer
}

fn list_page(st: &S, p: &HashMap<String, String>) -> Response {
    let q = match p.get("q").map(|q| query::parse(q)).transpose() {
        Ok(q) => q,
        Err(why) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid",
                &format!("Invalid Value: q: {why}"),
            );
        }
    };
    let all_drives = flag(p, "supportsAllDrives") && flag(p, "includeItemsFromAllDrives");
    let hits: Vec<&StoredFile> = st
        .files
        .values()
        .filter(|f| {
            let c = Candidate {
                name: &f.name,
                parents: &f.parents,
                trashed: false,
                props: &f.props,
            };
            visible(st, f, all_drives) && q.as_ref().is_none_or(|q| q.matches(&c))
        })
        .collect();
    let start: usize = match p.get("pageToken").map(|t| t.parse()).transpose() {
        Ok(s) => s.unwrap_or(0),
        Err(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid",
                "Invalid Value: pageToken",
            );
        }
    };
    let size = p
        .get("pageSize")
        .and_then(|s| s.parse().ok())
        .unwrap_or(100usize);
    let size = size.clamp(1, 1000).min(st.max_page);
    let full = p.get("fields").is_some_and(|f| f.contains("appProperties"));
    let files: Vec<Value> = hits.iter().skip(start).take(size).map(|f| {
        let j = f.json();
        if full { j } else { json!({"kind": j["kind"], "id": j["id"], "name": j["name"], "mimeType": j["mimeType"]}) }
    }).collect();
    let mut body = json!({"kind": "drive#fileList", "files": files});
    if start + size < hits.len() {
        body["nextPageToken"] = json!((start + size).to_string());
    }
    Json(body).into_response()
}

fn not_found(id: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "notFound",
        &format!("File not found: {id}."),
    )
}

/// `GET /drive/v3/files/{id}`: metadata, or the bytes with `alt=media` (and `Range`).
pub async fn get_file(
    State(app): State<App>,
    Extension(kill): Extension<Kill>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(p): Params,
) -> Response {
    let e = log_entry(&Method::GET, &format!("/drive/v3/files/{id}"));
    let begun = match app.begin(&headers, &e, false) {
        Ok(b) => b,
        Err(r) => return r,
    };
    if begun.fault.is_some() {
        app.log(LogEntry {
            fault: begun.fault,
            ..e
        });
        return kill.now().await;
    }
    let file = {
        let st = app.lock();
        st.files
            .get(&id)
            .filter(|f| visible(&st, f, flag(&p, "supportsAllDrives")))
            .cloned()
    };
    let answer = match file {
        None => not_found(&id),
        Some(f) if p.get("alt").is_some_and(|a| a == "media") => media(&f, &headers),
        Some(f) => Json(f.json()).into_response(),
    };
    app.log(LogEntry {
        status: answer.status().as_u16(),
        ..e
    });
    answer
}

fn media(f: &StoredFile, headers: &HeaderMap) -> Response {
    let size = f.data.len() as u64;
    let Some(range) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return (StatusCode::OK, f.data.clone()).into_response();
    };
    let parsed = range
        .strip_prefix("bytes=")
        .and_then(|r| r.split_once('-'))
        .and_then(|(a, b)| {
            let a: u64 = a.parse().ok()?;
            let b: u64 = if b.is_empty() {
                size.saturating_sub(1)
            } else {
                b.parse().ok()?
            };
            Some((a, b.min(size.saturating_sub(1))))
        });
    match parsed {
        Some((a, b)) if a < size && a <= b => {
            let body = f.data.slice(a as usize..=b as usize);
            let cr = format!("bytes {a}-{b}/{size}");
            (
                StatusCode::PARTIAL_CONTENT,
                [(header::CONTENT_RANGE, cr)],
                body,
            )
                .into_response()
        }
        _ => error(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "requestedRangeNotSatisfiable",
            "Request range not satisfiable",
        ),
    }
}

/// `PATCH /drive/v3/files/{id}`: merges `appProperties` (null removes one).
pub async fn patch(
    State(app): State<App>,
    Extension(kill): Extension<Kill>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(p): Params,
    Json(body): Json<Value>,
) -> Response {
    let e = log_entry(&Method::PATCH, &format!("/drive/v3/files/{id}"));
    let begun = match app.begin(&headers, &e, false) {
        Ok(b) => b,
        Err(r) => return r,
    };
    if begun.fault.is_some() {
        app.log(LogEntry {
            fault: begun.fault,
            ..e
        });
        return kill.now().await;
    }
    let answer = {
        let mut st = app.lock();
        let shown = st
            .files
            .get(&id)
            .is_some_and(|f| visible(&st, f, flag(&p, "supportsAllDrives")));
        match st.files.get_mut(&id).filter(|_| shown) {
            None => not_found(&id),
            Some(f) => {
                for (k, v) in body["appProperties"].as_object().into_iter().flatten() {
                    match v.as_str() {
                        Some(v) => f.props.insert(k.clone(), v.to_string()),
                        None => f.props.remove(k),
                    };
                }
                Json(f.json()).into_response()
            }
        }
    };
    app.log(LogEntry {
        status: answer.status().as_u16(),
        ..e
    });
    answer
}

/// `DELETE /drive/v3/files/{id}`.
pub async fn delete(
    State(app): State<App>,
    Extension(kill): Extension<Kill>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(p): Params,
) -> Response {
    let e = log_entry(&Method::DELETE, &format!("/drive/v3/files/{id}"));
    let begun = match app.begin(&headers, &e, false) {
        Ok(b) => b,
        Err(r) => return r,
    };
    if begun.fault.is_some() {
        app.log(LogEntry {
            fault: begun.fault,
            ..e
        });
        return kill.now().await;
    }
    let answer = {
        let mut st = app.lock();
        let shown = st
            .files
            .get(&id)
            .is_some_and(|f| visible(&st, f, flag(&p, "supportsAllDrives")));
        match shown {
            true => {
                st.files.remove(&id);
                StatusCode::NO_CONTENT.into_response()
            }
            false => not_found(&id),
        }
    };
    app.log(LogEntry {
        status: answer.status().as_u16(),
        ..e
    });
    answer
}
