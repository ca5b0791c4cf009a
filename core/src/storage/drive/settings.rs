//! Drive settings from the environment: the service-account key (a key file, or the seed's
//! `GOOGLE_CLOUD_*` variables), the folders, base URLs and chunk size.

use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};

use super::files::quote;
use crate::storage::RetryPolicy;

/// Google's production endpoints.
const API_URL: &str = "https://www.googleapis.com/drive/v3";
const UPLOAD_URL: &str = "https://www.googleapis.com/upload/drive/v3";
const TOKEN_URI: &str = "https://oauth2.googleapis.com/token";

/// Where backups go on Google Drive, and as whom. Drive is off unless a folder is set.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct DriveSettings {
    /// Path of a service-account JSON key (the ecosystem convention).
    #[arg(long, env = "GOOGLE_APPLICATION_CREDENTIALS")]
    pub google_application_credentials: Option<PathBuf>,
    /// Or the key's parts: project id.
    #[arg(long, env = "GOOGLE_CLOUD_PROJECT_ID")]
    pub google_cloud_project_id: Option<String>,
    /// The key's PEM private key (`\n` escapes allowed).
    #[arg(long, env = "GOOGLE_CLOUD_PRIVATE_KEY", hide_env_values = true)]
    pub google_cloud_private_key: Option<SecretString>,
    /// The service account's e-mail.
    #[arg(long, env = "GOOGLE_CLOUD_CLIENT_EMAIL")]
    pub google_cloud_client_email: Option<String>,
    /// The service account's numeric client id.
    #[arg(long, env = "GOOGLE_CLOUD_CLIENT_ID")]
    pub google_cloud_client_id: Option<String>,
    /// Domain-wide delegation: act as this user (files are owned by them).
    #[arg(long, env = "GOOGLE_DRIVE_SUBJECT")]
    pub google_drive_subject: Option<String>,
    /// The backup folder's id (the end of its URL); on a shared drive, or with delegation.
    #[arg(long, env = "GOOGLE_DRIVE_BACKUP_FOLDER_ID")]
    pub google_drive_backup_folder_id: Option<String>,
    /// Folder for daily backups (default: the backup folder).
    #[arg(long, env = "GOOGLE_DRIVE_DAILY_FOLDER_ID")]
    pub google_drive_daily_folder_id: Option<String>,
    /// Folder for weekly backups (default: the backup folder).
    #[arg(long, env = "GOOGLE_DRIVE_WEEKLY_FOLDER_ID")]
    pub google_drive_weekly_folder_id: Option<String>,
    /// Folder for monthly backups (default: the backup folder).
    #[arg(long, env = "GOOGLE_DRIVE_MONTHLY_FOLDER_ID")]
    pub google_drive_monthly_folder_id: Option<String>,
    /// Drive API base URL (tests, proxies).
    #[arg(long, env = "GOOGLE_DRIVE_API_URL", default_value = API_URL)]
    pub google_drive_api_url: String,
    /// Drive upload base URL (tests, proxies).
    #[arg(long, env = "GOOGLE_DRIVE_UPLOAD_URL", default_value = UPLOAD_URL)]
    pub google_drive_upload_url: String,
    /// Resumable chunk size in KiB, a multiple of 256: larger is faster, smaller re-sends
    /// less after a fault.
    #[arg(long, env = "GOOGLE_DRIVE_CHUNK_KIB", default_value_t = 8192)]
    pub google_drive_chunk_kib: usize,
}

/// The backup folder, and optional folders per backup type.
#[derive(Clone, Debug, Default)]
pub struct Folders {
    /// Everything else goes here.
    pub default: String,
    pub daily: Option<String>,
    pub weekly: Option<String>,
    pub monthly: Option<String>,
}

impl Folders {
    /// The folder of an object: by the backup type in its id
    /// (`cellar_backup_<date>_<time>_<type>_<suffix>/...`), else the default.
    pub fn for_key(&self, key: &str) -> &str {
        let first = key.split('/').next().unwrap_or_default();
        let folder = match first.split('_').nth(4) {
            Some("daily") => &self.daily,
            Some("weekly") => &self.weekly,
            Some("monthly") => &self.monthly,
            _ => &None,
        };
        folder.as_deref().unwrap_or(&self.default)
    }

    /// `('A' in parents or 'B' in parents)` over the distinct folders.
    pub(super) fn parents_clause(&self) -> String {
        let mut all = vec![self.default.as_str()];
        for f in [&self.daily, &self.weekly, &self.monthly]
            .into_iter()
            .flatten()
        {
            if !all.contains(&f.as_str()) {
                all.push(f);
            }
        }
        let terms: Vec<String> = all
            .iter()
            .map(|f| format!("{} in parents", quote(f)))
            .collect();
        format!("({})", terms.join(" or "))
    }
}

/// Everything [`super::DriveStorage::connect`] needs.
pub struct DriveConfig {
    /// The parsed service-account key.
    pub key: yup_oauth2::ServiceAccountKey,
    /// Delegation subject.
    pub subject: Option<String>,
    pub folders: Folders,
    pub api_url: String,
    pub upload_url: String,
    /// Resumable chunk size (rounded down to 256 KiB, at least 256 KiB).
    pub chunk_bytes: usize,
    /// Backoff for transient errors.
    pub retry: RetryPolicy,
}

impl DriveSettings {
    /// True when a backup folder is configured.
    pub fn enabled(&self) -> bool {
        self.google_drive_backup_folder_id.is_some()
    }

    /// The connection settings, or `None` when Drive is not configured. Errors name the
    /// variable to fix and never contain key material.
    pub fn config(&self) -> Result<Option<DriveConfig>, String> {
        let Some(folder) = self.google_drive_backup_folder_id.clone() else {
            return Ok(None);
        };
        if self.google_drive_chunk_kib == 0 || !self.google_drive_chunk_kib.is_multiple_of(256) {
            return Err("GOOGLE_DRIVE_CHUNK_KIB must be a positive multiple of 256".into());
        }
        Ok(Some(DriveConfig {
            key: self.key()?,
            subject: self.google_drive_subject.clone(),
            folders: Folders {
                default: folder,
                daily: self.google_drive_daily_folder_id.clone(),
                weekly: self.google_drive_weekly_folder_id.clone(),
                monthly: self.google_drive_monthly_folder_id.clone(),
            },
            api_url: self.google_drive_api_url.clone(),
            upload_url: self.google_drive_upload_url.clone(),
            chunk_bytes: self.google_drive_chunk_kib * 1024,
            retry: RetryPolicy::default(),
        }))
    }

    fn key(&self) -> Result<yup_oauth2::ServiceAccountKey, String> {
        let json = match (
            &self.google_application_credentials,
            &self.google_cloud_private_key,
        ) {
            (Some(path), _) => std::fs::read_to_string(path)
                .map_err(|e| format!("GOOGLE_APPLICATION_CREDENTIALS {}: {e}", path.display()))?,
            (None, Some(pem)) => self.key_from_parts(pem)?,
            (None, None) => {
                return Err(
                    "Drive needs a service-account key: set GOOGLE_APPLICATION_CREDENTIALS \
                            to the JSON key file, or GOOGLE_CLOUD_PRIVATE_KEY and \
                            GOOGLE_CLOUD_CLIENT_EMAIL"
                        .into(),
                );
            }
        };
        yup_oauth2::parse_service_account_key(json).map_err(|e| {
            format!(
                "the service-account key is not a valid JSON key ({}): download a new JSON key \
                 for the service account in the Cloud console",
                e.kind()
            )
        })
    }

    fn key_from_parts(&self, pem: &SecretString) -> Result<String, String> {
        let email = self.google_cloud_client_email.as_deref().ok_or(
            "GOOGLE_CLOUD_PRIVATE_KEY is set but GOOGLE_CLOUD_CLIENT_EMAIL is not: set it to the \
             service account's e-mail",
        )?;
        let pem = pem.expose_secret().replace("\\n", "\n");
        if !pem.contains("-----BEGIN PRIVATE KEY-----") {
            return Err(
                "GOOGLE_CLOUD_PRIVATE_KEY is not a PEM private key (it must contain \
                        -----BEGIN PRIVATE KEY-----)"
                    .into(),
            );
        }
        let key = serde_json::json!({
            "type": "service_account",
            "project_id": self.google_cloud_project_id,
            "private_key": pem,
            "client_email": email,
            "client_id": self.google_cloud_client_id,
            "token_uri": TOKEN_URI,
        });
        Ok(key.to_string())
    }
}
