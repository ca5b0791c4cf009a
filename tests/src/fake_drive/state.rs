//! The fake's state: files, upload sessions, issued tokens, folders, the request log.

use std::collections::{BTreeMap, HashMap};

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use md5::Md5;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::faults::FaultPlan;

/// How a folder behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FolderKind {
    /// On a shared drive: service accounts may own files there.
    SharedDrive,
    /// In someone's My Drive: a service account gets storageQuotaExceeded (without delegation).
    MyDrive,
}

/// A stored file.
#[derive(Clone, Debug)]
pub struct StoredFile {
    pub id: String,
    pub name: String,
    pub parents: Vec<String>,
    pub props: HashMap<String, String>,
    pub data: Bytes,
    pub created: String,
    /// Computed once when stored, as Drive does.
    pub md5: String,
    pub sha256: String,
}

impl StoredFile {
    /// The File resource, all fields (the client always asks for `fields`).
    pub fn json(&self) -> Value {
        json!({
            "kind": "drive#file",
            "id": self.id,
            "name": self.name,
            "mimeType": "application/octet-stream",
            "parents": self.parents,
            "size": self.data.len().to_string(),
            "md5Checksum": self.md5,
            "sha256Checksum": self.sha256,
            "appProperties": self.props,
            "createdTime": self.created,
        })
    }
}

impl StoredFile {
    /// A file holding `data`, its checksums computed.
    pub fn new(
        id: String,
        name: String,
        parents: Vec<String>,
        props: HashMap<String, String>,
        data: Bytes,
        created: String,
    ) -> Self {
        let md5 = hex(&Md5::digest(&data));
        let sha256 = hex(&Sha256::digest(&data));
        Self {
            id,
            name,
            parents,
            props,
            data,
            created,
            md5,
            sha256,
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A resumable upload in progress.
#[derive(Debug)]
pub struct Session {
    /// The metadata it was opened with.
    pub meta: Value,
    /// Bytes received and kept so far.
    pub data: Vec<u8>,
}

/// One request, as the tests read it.
#[derive(Clone, Debug)]
pub struct LogEntry {
    pub method: String,
    pub path: String,
    /// `uploadType`, or `session` for a chunk/status request.
    pub upload: Option<String>,
    /// The file name a session request writes (the object key), when the session is known.
    pub object: Option<String>,
    pub content_range: Option<String>,
    /// Body bytes the server read.
    pub bytes_received: u64,
    /// The status answered (0: connection dropped).
    pub status: u16,
    /// The fault injected, if any.
    pub fault: Option<super::faults::Fault>,
}

impl LogEntry {
    /// `(start, end)` (end exclusive) of a chunk request's `Content-Range: bytes A-B/T`;
    /// `None` for status queries and every other request.
    pub fn span(&self) -> Option<(u64, u64)> {
        let cr = self.content_range.as_deref()?.strip_prefix("bytes ")?;
        let (a, b) = cr.split_once('/')?.0.split_once('-')?;
        Some((a.parse().ok()?, b.parse::<u64>().ok()? + 1))
    }
}

/// Everything behind the fake's lock.
#[derive(Default)]
pub struct State {
    pub files: BTreeMap<String, StoredFile>,
    pub sessions: HashMap<String, Session>,
    pub folders: HashMap<String, FolderKind>,
    /// access token -> delegation subject (if the JWT had `sub`).
    pub tokens: HashMap<String, Option<String>>,
    pub log: Vec<LogEntry>,
    pub faults: FaultPlan,
    /// Largest page `files.list` returns (Drive: 1000), small in tests to exercise paging.
    pub max_page: usize,
    /// Added before answering each session request (a slow link); zero by default.
    pub chunk_delay: std::time::Duration,
    /// Gives every file a distinct, increasing createdTime.
    pub clock: u64,
    pub base_url: String,
}

impl State {
    pub fn next_id(&mut self) -> String {
        self.clock += 1;
        format!("f{:08}{:08x}", self.clock, rand::random::<u32>())
    }

    /// A createdTime strictly after every earlier one.
    pub fn now(&mut self) -> String {
        self.clock += 1;
        let t = chrono::DateTime::from_timestamp_millis(1_795_000_000_000 + self.clock as i64)
            .expect("valid time");
        t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
    }
}

/// Drive's error shape.
pub fn error(code: StatusCode, reason: &str, message: &str) -> Response {
    let domain = if reason.contains("RateLimit") || reason == "storageQuotaExceeded" {
        "usageLimits"
    } else {
        "global"
    };
    let body = json!({"error": {"code": code.as_u16(), "message": message,
        "errors": [{"domain": domain, "reason": reason, "message": message}]}});
    (code, Json(body)).into_response()
}
