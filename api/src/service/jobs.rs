//! Jobs: read, list, cancel and retry (audited).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cellar_core::audit;
use cellar_core::auth::Permission;
use cellar_core::queue::{self, JobRow, JobState};
use serde_json::json;

use super::backups::page_limit;
use super::{Audit, Caller, Services};
use crate::error::ApiError;

/// One page of jobs.
pub struct JobPage {
    pub rows: Vec<JobRow>,
    /// Pass as `after` for the next page; `None` on the last page.
    pub next: Option<String>,
}

/// Parses a job id from client input.
pub fn parse_id(s: &str) -> Result<i64, ApiError> {
    match s.trim().parse::<i64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(ApiError::InvalidInput(format!(
            "invalid job id {:?}: expected a positive integer",
            s.chars().take(40).collect::<String>()
        ))),
    }
}

fn decode_cursor(s: &str) -> Result<i64, ApiError> {
    let bad = || ApiError::InvalidInput("invalid cursor: pass a page's endCursor unchanged".into());
    let bytes = URL_SAFE_NO_PAD.decode(s).map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    text.strip_prefix("job:")
        .and_then(|n| n.parse().ok())
        .ok_or_else(bad)
}

impl Services {
    /// One job; NOT_FOUND when unknown.
    pub async fn job(&self, caller: &Caller, id: &str) -> Result<JobRow, ApiError> {
        caller.require(Permission::Read)?;
        Ok(queue::get(&self.pool, parse_id(id)?).await?)
    }

    /// One page of jobs, newest first.
    pub async fn jobs(
        &self,
        caller: &Caller,
        kind: Option<&str>,
        state: Option<JobState>,
        limit: Option<i32>,
        after: Option<&str>,
    ) -> Result<JobPage, ApiError> {
        caller.require(Permission::Read)?;
        let limit = page_limit(limit)?;
        let before = after.map(decode_cursor).transpose()?;
        let mut rows = queue::list::page(&self.pool, kind, state, limit + 1, before).await?;
        let more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        let next = rows
            .last()
            .filter(|_| more)
            .map(|r| URL_SAFE_NO_PAD.encode(format!("job:{}", r.id)));
        Ok(JobPage { rows, next })
    }

    /// Cancels a job: masters any job, operators only the jobs they started.
    pub async fn cancel_job(&self, caller: &Caller, id: &str) -> Result<JobRow, ApiError> {
        let audit = Audit {
            action: "cancelJob",
            target: Some(id.into()),
            arguments: json!({ "id": id }),
        };
        self.mutate(caller, Permission::CancelOwnJob, audit, |who| async move {
            let id = parse_id(id)?;
            if !who.role.allows(Permission::CancelAnyJob)
                && !audit::started_job(&self.pool, who.token_id, id).await?
            {
                return Err(ApiError::Forbidden(format!(
                    "your role ({}) may cancel only the jobs it started",
                    who.role
                )));
            }
            let mut conn = self.pool.acquire().await?;
            queue::cancel(&mut conn, id).await?;
            Ok((queue::get(&self.pool, id).await?, None))
        })
        .await
    }

    /// Runs a cancelled or discarded job again.
    pub async fn retry_job(&self, caller: &Caller, id: &str) -> Result<JobRow, ApiError> {
        let audit = Audit {
            action: "retryJob",
            target: Some(id.into()),
            arguments: json!({ "id": id }),
        };
        self.mutate(caller, Permission::RetryJob, audit, |_| async {
            let id = parse_id(id)?;
            let mut conn = self.pool.acquire().await?;
            queue::retry(&mut conn, id).await?;
            Ok((queue::get(&self.pool, id).await?, Some(id)))
        })
        .await
    }
}
