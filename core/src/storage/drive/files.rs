//! Drive files as objects: the File resource, `q` queries over `appProperties`, paging,
//! download with `Range`, metadata patch and delete.

use std::collections::HashMap;
use std::ops::Range;

use futures::TryStreamExt;
use reqwest::StatusCode;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::errors::{Context, Missing};
use super::http::Api;
use crate::storage::{ByteStream, StorageError};

/// The fields every call asks for (without `fields`, Drive sends only kind, id, name, mimeType).
pub(super) const FILE_FIELDS: &str =
    "id,name,size,md5Checksum,sha256Checksum,appProperties,createdTime";

/// `appProperties` key holding the object's full key.
pub(super) const PROP_KEY: &str = "cellar_key";
/// `appProperties` key holding the key's first segment (the backup id, for backup objects).
pub(super) const PROP_BACKUP: &str = "backup_id";
/// `appProperties` key holding the BLAKE3 of the stored bytes.
pub(super) const PROP_BLAKE3: &str = "blake3";

/// Files per list page: Drive's maximum.
const PAGE_SIZE: &str = "1000";

/// A Drive File, as much of it as Cellar reads.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct DriveFile {
    pub(super) id: String,
    /// int64 sent as a JSON string.
    #[serde(default, deserialize_with = "string_u64")]
    pub(super) size: Option<u64>,
    #[serde(default)]
    pub(super) sha256_checksum: Option<String>,
    #[serde(default)]
    pub(super) app_properties: HashMap<String, String>,
    /// RFC 3339; orders copies of one key (the newest wins while an overwrite completes).
    #[serde(default)]
    pub(super) created_time: String,
}

impl DriveFile {
    /// The object key it holds, if it is one of ours.
    pub(super) fn key(&self) -> Option<&str> {
        self.app_properties.get(PROP_KEY).map(String::as_str)
    }
}

fn string_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => s.parse().map(Some).map_err(serde::de::Error::custom),
        Some(Value::Number(n)) => Ok(n.as_u64()),
        Some(other) => Err(serde::de::Error::custom(format!("size {other}"))),
    }
}

/// A string literal of the query language: single quotes, `\` and `'` escaped.
pub(super) fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// `appProperties has { key='k' and value='v' }`.
pub(super) fn has_prop(key: &str, value: &str) -> String {
    format!(
        "appProperties has {{ key={} and value={} }}",
        quote(key),
        quote(value)
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Page {
    #[serde(default)]
    files: Vec<DriveFile>,
    next_page_token: Option<String>,
}

impl Api {
    /// Every file matching `q`, all pages.
    pub(super) async fn search(&self, q: &str, what: &str) -> Result<Vec<DriveFile>, StorageError> {
        let url = format!("{}/files", self.api_url);
        let fields = format!("nextPageToken,files({FILE_FIELDS})");
        let mut token: Option<String> = None;
        let mut all = Vec::new();
        loop {
            let mut query = vec![
                ("q", q),
                ("fields", fields.as_str()),
                ("pageSize", PAGE_SIZE),
                ("supportsAllDrives", "true"),
                ("includeItemsFromAllDrives", "true"),
            ];
            if let Some(t) = &token {
                query.push(("pageToken", t));
            }
            let ctx = Context {
                what,
                missing: Missing::Folder(q),
            };
            let resp = self.call(&ctx, &[], |c| c.get(&url).query(&query)).await?;
            let page: Page = self.json(resp, what).await?;
            all.extend(page.files);
            match page.next_page_token {
                Some(t) if !t.is_empty() => token = Some(t),
                _ => return Ok(all),
            }
        }
    }

    /// Streams `range` (already clamped, non-empty) of file `id` holding `key`.
    pub(super) async fn download(
        &self,
        id: &str,
        key: &str,
        range: Range<u64>,
    ) -> Result<ByteStream, StorageError> {
        let url = format!("{}/files/{id}", self.api_url);
        let header = format!("bytes={}-{}", range.start, range.end - 1);
        let what = format!("downloading {key}");
        let ctx = Context {
            what: &what,
            missing: Missing::Object(key),
        };
        let resp = self
            .call(&ctx, &[], |c| {
                c.get(&url)
                    .query(&[("alt", "media"), ("supportsAllDrives", "true")])
                    .header(reqwest::header::RANGE, &header)
            })
            .await?;
        let (backend, key) = (self.backend.clone(), key.to_string());
        let stream = resp
            .bytes_stream()
            .map_err(move |e| StorageError::Transient {
                backend: backend.clone(),
                message: format!("reading {key}: {}", e.without_url()),
            });
        Ok(Box::pin(stream))
    }

    /// Deletes file `id`; an already deleted file is fine.
    pub(super) async fn delete_file(&self, id: &str, key: &str) -> Result<(), StorageError> {
        let url = format!("{}/files/{id}", self.api_url);
        let what = format!("deleting {key}");
        let ctx = Context {
            what: &what,
            missing: Missing::Object(key),
        };
        self.call(&ctx, &[StatusCode::NOT_FOUND], |c| {
            c.delete(&url).query(&[("supportsAllDrives", "true")])
        })
        .await
        .map(drop)
    }

    /// Adds `appProperties` to file `id` (those not named keep their values).
    pub(super) async fn patch_props(
        &self,
        id: &str,
        key: &str,
        props: Value,
    ) -> Result<(), StorageError> {
        let url = format!("{}/files/{id}", self.api_url);
        let what = format!("recording the checksum of {key}");
        let ctx = Context {
            what: &what,
            missing: Missing::Object(key),
        };
        let body = serde_json::json!({ "appProperties": props });
        self.call(&ctx, &[], |c| {
            c.patch(&url)
                .query(&[("supportsAllDrives", "true"), ("fields", "id")])
                .json(&body)
        })
        .await
        .map(drop)
    }
}
