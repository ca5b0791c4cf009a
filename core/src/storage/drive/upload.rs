//! The two upload protocols: multipart (one request, small objects) and resumable (a session
//! URI, chunks of a multiple of 256 KiB, `308` + `Range` for what the server confirms).

use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, LOCATION};
use serde_json::Value;

use super::errors::{Context, Missing};
use super::files::{DriveFile, FILE_FIELDS};
use super::http::{Api, Fault};

/// What a chunk PUT or a status query learnt.
pub(super) enum Reply {
    /// The server holds bytes `0..n`; the next chunk starts at `n`.
    Confirmed(u64),
    /// The upload is complete: the new file.
    Done(DriveFile),
    /// The session is unknown or expired (404/410): the upload starts over.
    Expired,
}

/// `Range: bytes=0-N` of a 308: the server holds `N + 1` bytes; no header means none.
pub(super) fn confirmed(range: Option<&str>) -> Option<u64> {
    let Some(r) = range else { return Some(0) };
    let last = r.trim().strip_prefix("bytes=0-")?;
    last.parse::<u64>().ok().map(|n| n + 1)
}

impl Api {
    /// Opens a resumable session for a file with `meta`; returns the session URI.
    pub(super) async fn start_session(
        &self,
        meta: &Value,
        folder: &str,
        what: &str,
    ) -> Result<String, crate::storage::StorageError> {
        let url = format!("{}/files", self.upload_url);
        let ctx = Context {
            what,
            missing: Missing::Folder(folder),
        };
        let resp = self
            .call(&ctx, &[], |c| {
                c.post(&url)
                    .query(&[
                        ("uploadType", "resumable"),
                        ("supportsAllDrives", "true"),
                        ("fields", FILE_FIELDS),
                    ])
                    .json(meta)
            })
            .await?;
        let location = resp.headers().get(LOCATION).and_then(|v| v.to_str().ok());
        location.map(str::to_owned).ok_or_else(|| {
            self.permanent(format!("{what}: Drive opened a session without a Location"))
        })
    }

    /// Sends `bytes` at `offset` of the session (`total` once known: the last chunk).
    pub(super) async fn put_chunk(
        &self,
        uri: &str,
        offset: u64,
        bytes: Bytes,
        total: Option<u64>,
        what: &str,
    ) -> Result<Reply, Fault> {
        let total_s = total.map_or("*".to_string(), |t| t.to_string());
        let range = if bytes.is_empty() {
            format!("bytes */{total_s}")
        } else {
            let last = offset + bytes.len() as u64 - 1;
            format!("bytes {offset}-{last}/{total_s}")
        };
        let build = |c: &reqwest::Client| {
            c.put(uri)
                .header(CONTENT_RANGE, &range)
                .header(CONTENT_LENGTH, bytes.len())
                .body(bytes.clone())
        };
        self.session_reply(&build, what).await
    }

    /// Asks the session what it holds (after a dropped connection or a 5xx).
    pub(super) async fn query_status(
        &self,
        uri: &str,
        total: Option<u64>,
        what: &str,
    ) -> Result<Reply, Fault> {
        self.put_chunk(uri, 0, Bytes::new(), total, what).await
    }

    async fn session_reply<F>(&self, build: &F, what: &str) -> Result<Reply, Fault>
    where
        F: Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    {
        let resp = self.send_once(build).await?;
        let status = resp.status();
        if status == StatusCode::PERMANENT_REDIRECT {
            let range = resp.headers().get("range").and_then(|v| v.to_str().ok());
            return confirmed(range).map(Reply::Confirmed).ok_or_else(|| {
                Fault::Permanent(self.permanent(format!("{what}: unreadable Range {range:?}")))
            });
        }
        if matches!(status, StatusCode::NOT_FOUND | StatusCode::GONE) {
            return Ok(Reply::Expired);
        }
        if status.is_success() {
            let file = self.json(resp, what).await.map_err(Fault::Transient)?;
            return Ok(Reply::Done(file));
        }
        let ctx = Context {
            what,
            missing: Missing::Object(what),
        };
        Err(self.fault(resp, &ctx).await)
    }

    /// Cancels a session (best effort: an abandoned one expires by itself after a week).
    pub(super) async fn cancel_session(&self, uri: &str) {
        if let Err(f) = self.send_once(&|c: &reqwest::Client| c.delete(uri)).await {
            tracing::debug!(error = %f.into_error(), "could not cancel an upload session");
        }
    }

    /// Uploads a small object in one multipart request, retried (the bytes are in memory).
    pub(super) async fn multipart(
        &self,
        meta: &Value,
        bytes: Bytes,
        folder: &str,
        what: &str,
    ) -> Result<DriveFile, crate::storage::StorageError> {
        let boundary = format!("cellar-{:016x}", rand::random::<u64>());
        let mut body = Vec::with_capacity(bytes.len() + 512);
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{meta}\r\n\
                 --{boundary}\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(&bytes);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let body = Bytes::from(body);
        let url = format!("{}/files", self.upload_url);
        let ctype = format!("multipart/related; boundary={boundary}");
        let ctx = Context {
            what,
            missing: Missing::Folder(folder),
        };
        let resp = self
            .call(&ctx, &[], |c| {
                c.post(&url)
                    .query(&[
                        ("uploadType", "multipart"),
                        ("supportsAllDrives", "true"),
                        ("fields", FILE_FIELDS),
                    ])
                    .header(CONTENT_TYPE, &ctype)
                    .body(body.clone())
            })
            .await?;
        self.json(resp, what).await
    }
}

#[cfg(test)]
mod tests {
    use super::confirmed;

    #[test]
    fn range_of_a_308() {
        assert_eq!(confirmed(None), Some(0));
        assert_eq!(confirmed(Some("bytes=0-42")), Some(43));
        assert_eq!(confirmed(Some("bytes=0-262143")), Some(262_144));
        assert_eq!(confirmed(Some("bytes=5-9")), None);
        assert_eq!(confirmed(Some("garbage")), None);
    }
}
