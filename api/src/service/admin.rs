//! Masters' views: the audit log.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cellar_core::audit::{self, AuditEvent};
use cellar_core::auth::Permission;

use super::backups::page_limit;
use super::{Caller, Services};
use crate::error::ApiError;

/// One page of audit events.
pub struct AuditPage {
    pub rows: Vec<AuditEvent>,
    /// Pass as `after` for the next page; `None` on the last page.
    pub next: Option<String>,
}

impl Services {
    /// The newest audit events first.
    pub async fn audit_log(
        &self,
        caller: &Caller,
        limit: Option<i32>,
        after: Option<&str>,
    ) -> Result<AuditPage, ApiError> {
        caller.require(Permission::ReadAudit)?;
        let limit = page_limit(limit)?;
        let before = match after {
            None => None,
            Some(c) => Some(
                URL_SAFE_NO_PAD
                    .decode(c)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .and_then(|t| t.strip_prefix("audit:").and_then(|n| n.parse().ok()))
                    .ok_or_else(|| ApiError::InvalidInput("invalid cursor".into()))?,
            ),
        };
        let mut rows = audit::list(&self.pool, limit + 1, before).await?;
        let more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        let next = rows
            .last()
            .filter(|_| more)
            .map(|r| URL_SAFE_NO_PAD.encode(format!("audit:{}", r.id)));
        Ok(AuditPage { rows, next })
    }
}
