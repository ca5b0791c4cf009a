//! Drive's error answers, classified where they are born (the table in
//! `shared/notes/google-drive.md`): retry 429, every 5xx and the rate-limit 403s; fail fast
//! on everything else, with a message that says what to change.

use reqwest::StatusCode;
use serde::Deserialize;

use super::http::{Api, Fault};
use crate::storage::StorageError;

/// What a failed call was about: its description, and what a 404 means for it.
pub(super) struct Context<'a> {
    /// e.g. "uploading db/KEY", for messages.
    pub(super) what: &'a str,
    /// What a 404 means.
    pub(super) missing: Missing<'a>,
}

/// The meaning of a 404 for one call.
pub(super) enum Missing<'a> {
    /// The object is gone: not-found (e.g. deleted between listing and reading).
    Object(&'a str),
    /// The configured folder: a configuration error.
    Folder(&'a str),
}

#[derive(Deserialize, Default)]
struct Envelope {
    #[serde(default)]
    error: Body,
}

#[derive(Deserialize, Default)]
struct Body {
    #[serde(default)]
    message: String,
    #[serde(default)]
    errors: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    #[serde(default)]
    reason: String,
}

/// Reasons of a 403 that mean "slow down", not "forbidden".
const RATE_LIMIT_REASONS: [&str; 2] = ["rateLimitExceeded", "userRateLimitExceeded"];

/// Classifies a non-success answer.
pub(super) fn classify(api: &Api, status: StatusCode, body: &[u8], ctx: &Context<'_>) -> Fault {
    let env: Envelope = serde_json::from_slice(body).unwrap_or_default();
    let reason = env.error.errors.first().map_or("", |i| i.reason.as_str());
    let mut drive_says: String = env.error.message.chars().take(300).collect();
    if drive_says.is_empty() {
        drive_says = "no details".into();
    }
    let plain = format!("{}: Drive answered {status} ({drive_says})", ctx.what);
    let rate_limited = status == StatusCode::FORBIDDEN && RATE_LIMIT_REASONS.contains(&reason);
    if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() || rate_limited {
        return Fault::Transient(api.transient(plain));
    }
    let message = match (status, reason) {
        (StatusCode::FORBIDDEN, "storageQuotaExceeded") => quota_message(api, ctx),
        (StatusCode::FORBIDDEN, _) => format!(
            "{plain}. Service account {} may not do this: share the backup folder (or its shared \
             drive) with it as Content manager, or Editor at least",
            api.account
        ),
        (StatusCode::NOT_FOUND, _) => match ctx.missing {
            Missing::Object(key) => return Fault::Permanent(StorageError::NotFound(key.into())),
            Missing::Folder(folder) => format!(
                "{plain}. Folder {folder} does not exist or is not shared with service account \
                 {}: check GOOGLE_DRIVE_BACKUP_FOLDER_ID (the id at the end of the folder's URL) \
                 and share the folder with that address",
                api.account
            ),
        },
        (StatusCode::UNAUTHORIZED, _) => format!(
            "{plain}. Drive refused a fresh access token for {}: check that the Drive API is \
             enabled in the key's Cloud project",
            api.account
        ),
        _ => plain,
    };
    Fault::Permanent(api.permanent(message))
}

/// The service-account quota trap, explained.
fn quota_message(api: &Api, ctx: &Context<'_>) -> String {
    format!(
        "{}: Drive refused the upload with storageQuotaExceeded: service accounts have no \
         storage quota of their own, so service account {} cannot own files in a My Drive \
         folder, even one shared with it. Fix: put GOOGLE_DRIVE_BACKUP_FOLDER_ID on a shared \
         drive and add the service account as a member (Content manager), or use domain-wide \
         delegation (GOOGLE_DRIVE_SUBJECT = a user's e-mail) so files are owned by that user",
        ctx.what, api.account
    )
}
