//! A fake Google Drive v3 on 127.0.0.1 that answers as `shared/notes/google-drive.md` says, with
//! fault injection and a request log, so the real Drive client is tested without Google.
//!
//! # Layout
//! - [`server`]: accept loop (connections can be dropped mid-body), router, token and fault preamble.
//! - [`api`]: token endpoint, files.list (`q`, paging), files.get (`alt=media`, `Range`), patch, delete.
//! - [`upload`]: multipart uploads and the start of resumable sessions.
//! - [`session`]: session chunks (256 KiB rule, `308` + `Range`, status queries, cancel).
//! - [`query`]: the `q` parser.
//! - [`faults`]: [`FaultPlan`]: a schedule or a seeded random rate of [`Fault`]s.
//! - [`resends`]: reading the log for the bytes each fault made the client send again.
//! - [`state`]: files, sessions, folders, tokens, the [`LogEntry`] log.

// Handlers answer early with an HTTP response as their error: boxing it buys nothing here.
#![allow(clippy::result_large_err)]

pub mod api;
pub mod faults;
pub mod query;
pub mod resends;
pub mod server;
pub mod session;
pub mod state;
pub mod upload;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cellar_core::storage::{DriveSettings, DriveStorage, RetryPolicy};
use serde_json::json;

pub use self::faults::{Fault, FaultPlan};
pub use self::resends::{Resend, resends};
use self::server::App;
use self::state::State;
pub use self::state::{FolderKind, LogEntry, StoredFile};

/// A throwaway RSA key (see tests/fixtures/README.md): signs JWTs for the fake, nothing else.
const TEST_KEY: &str = include_str!("../../fixtures/fake-drive-key.pem");

/// The service account the tests use (it exists nowhere).
pub const ACCOUNT: &str = "cellar-test@cellar-fake.iam.gserviceaccount.com";
/// A folder on a shared drive.
pub const SHARED_FOLDER: &str = "shared-folder-1";
/// A folder in a person's My Drive: a service account gets storageQuotaExceeded there.
pub const MY_DRIVE_FOLDER: &str = "my-drive-folder-1";

/// A running fake Drive.
pub struct FakeDrive {
    /// Where it listens.
    pub addr: SocketAddr,
    app: App,
}

impl FakeDrive {
    /// Starts a fake with [`SHARED_FOLDER`] and [`MY_DRIVE_FOLDER`]; serves until the process ends.
    pub async fn start() -> Self {
        let (listener, addr) = server::bind().await;
        let mut st = State {
            max_page: 1000,
            base_url: format!("http://{addr}"),
            ..State::default()
        };
        st.folders
            .insert(SHARED_FOLDER.into(), FolderKind::SharedDrive);
        st.folders
            .insert(MY_DRIVE_FOLDER.into(), FolderKind::MyDrive);
        let app = App {
            state: Arc::new(Mutex::new(st)),
        };
        tokio::spawn(server::serve(listener, app.clone()));
        Self { addr, app }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.app.lock())
    }

    /// Adds a folder.
    pub fn add_folder(&self, id: &str, kind: FolderKind) {
        self.with(|s| s.folders.insert(id.into(), kind));
    }

    /// Replaces the fault plan (request numbering restarts).
    pub fn set_faults(&self, plan: FaultPlan) {
        self.with(|s| s.faults = plan);
    }

    /// Delays every session request by `d` (a slow link, so a client can be killed mid-upload).
    pub fn set_chunk_delay(&self, d: Duration) {
        self.with(|s| s.chunk_delay = d);
    }

    /// Caps list pages, to exercise paging.
    pub fn set_max_page(&self, n: usize) {
        self.with(|s| s.max_page = n.max(1));
    }

    /// Every request so far.
    pub fn log(&self) -> Vec<LogEntry> {
        self.with(|s| s.log.clone())
    }

    /// Forgets the log.
    pub fn clear_log(&self) {
        self.with(|s| s.log.clear());
    }

    /// Expires every open upload session (they answer 404 from now on).
    pub fn expire_sessions(&self) {
        self.with(|s| s.sessions.clear());
    }

    /// Bytes held by each open session.
    pub fn session_sizes(&self) -> Vec<usize> {
        self.with(|s| s.sessions.values().map(|x| x.data.len()).collect())
    }

    /// Every stored file.
    pub fn files(&self) -> Vec<StoredFile> {
        self.with(|s| s.files.values().cloned().collect())
    }

    /// Writes a service-account key whose `token_uri` is this fake, under `dir`.
    pub fn write_key(&self, dir: &Path) -> PathBuf {
        let key = json!({
            "type": "service_account",
            "project_id": "cellar-fake",
            "private_key_id": "0000",
            "private_key": TEST_KEY,
            "client_email": ACCOUNT,
            "client_id": "100000000000000000000",
            "auth_uri": format!("{}/auth", self.url()),
            "token_uri": format!("{}/token", self.url()),
        });
        let path = dir.join("fake-drive-key.json");
        std::fs::write(&path, key.to_string()).expect("write test key");
        path
    }

    /// Settings pointing at this fake, the key written under `dir`.
    pub fn settings(&self, dir: &Path, folder: &str) -> DriveSettings {
        DriveSettings {
            google_application_credentials: Some(self.write_key(dir)),
            google_drive_backup_folder_id: Some(folder.into()),
            google_drive_api_url: format!("{}/drive/v3", self.url()),
            google_drive_upload_url: format!("{}/upload/drive/v3", self.url()),
            google_drive_chunk_kib: 1024,
            ..DriveSettings::default()
        }
    }

    /// A Drive storage on `folder` with `chunk_kib` chunks and millisecond backoff.
    pub async fn storage(&self, dir: &Path, folder: &str, chunk_kib: usize) -> DriveStorage {
        let mut s = self.settings(dir, folder);
        s.google_drive_chunk_kib = chunk_kib;
        let mut cfg = s.config().expect("drive config").expect("drive enabled");
        cfg.retry = fast_retry();
        DriveStorage::connect(cfg).await.expect("connect")
    }
}

/// Backoff for tests: same shape, milliseconds instead of seconds.
pub fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 10,
        base_delay: Duration::from_millis(2),
        max_delay: Duration::from_millis(20),
    }
}
