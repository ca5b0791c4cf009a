//! The query root: reads, for every role.

use async_graphql::{Context, ID, Object, Result};
use cellar_core::backup::listing::Filter;

use super::backup::{Backup, BackupConnection};
use super::job::{Job, JobConnection};
use super::schedule::{RetentionDecision, RetentionPolicy, RetentionPolicyInput, Schedule};
use super::types::{AuditConnection, BackupStatus, BackupType, JobState, PageInfo};
use super::{caller, services};

/// Reads.
pub struct Query;

fn list_cost(limit: Option<i32>, child: usize) -> usize {
    limit.unwrap_or(20).clamp(1, 100) as usize * child + 1
}

#[Object]
impl Query {
    /// Backups, newest first. Deleted backups are listed only with `status: DELETED`.
    #[graphql(complexity = "list_cost(limit, child_complexity)")]
    async fn backups(
        &self,
        ctx: &Context<'_>,
        #[graphql(name = "type")] backup_type: Option<BackupType>,
        status: Option<BackupStatus>,
        limit: Option<i32>,
        after: Option<String>,
    ) -> Result<BackupConnection> {
        let filter = Filter {
            backup_type: backup_type.map(Into::into),
            state: status.map(Into::into),
        };
        let page = services(ctx)
            .backups(caller(ctx), filter, limit, after.as_deref())
            .await?;
        Ok(BackupConnection {
            nodes: page.rows.into_iter().map(Into::into).collect(),
            page_info: PageInfo::new(page.next),
            filter,
        })
    }

    /// One backup (NOT_FOUND when unknown).
    async fn backup(&self, ctx: &Context<'_>, id: ID) -> Result<Backup> {
        Ok(services(ctx).backup(caller(ctx), &id).await?.into())
    }

    /// One job (NOT_FOUND when unknown).
    async fn job(&self, ctx: &Context<'_>, id: ID) -> Result<Job> {
        Ok(services(ctx).job(caller(ctx), &id).await?.into())
    }

    /// Jobs, newest first.
    #[graphql(complexity = "list_cost(limit, child_complexity)")]
    async fn jobs(
        &self,
        ctx: &Context<'_>,
        kind: Option<String>,
        state: Option<JobState>,
        limit: Option<i32>,
        after: Option<String>,
    ) -> Result<JobConnection> {
        let page = services(ctx)
            .jobs(
                caller(ctx),
                kind.as_deref(),
                state.map(Into::into),
                limit,
                after.as_deref(),
            )
            .await?;
        let nodes: Vec<Job> = page.rows.into_iter().map(Into::into).collect();
        if ctx.look_ahead().field("nodes").field("backup").exists() {
            super::job::load_backups(ctx, &nodes).await?;
        }
        Ok(JobConnection {
            nodes,
            page_info: PageInfo::new(page.next),
        })
    }

    /// The audit trail, newest first (masters only).
    #[graphql(complexity = "list_cost(limit, child_complexity)")]
    async fn audit_log(
        &self,
        ctx: &Context<'_>,
        limit: Option<i32>,
        after: Option<String>,
    ) -> Result<AuditConnection> {
        let page = services(ctx)
            .audit_log(caller(ctx), limit, after.as_deref())
            .await?;
        Ok(AuditConnection {
            nodes: page.rows.into_iter().map(Into::into).collect(),
            page_info: PageInfo::new(page.next),
        })
    }

    /// Health: status with reasons, summary, metrics and configuration (every role; the rules
    /// are in docs/HEALTH.md).
    async fn health(&self, ctx: &Context<'_>) -> Result<super::health::Health> {
        Ok(services(ctx).health(caller(ctx)).await?.into())
    }

    /// Every schedule, by name, with its next fire time.
    async fn schedules(&self, ctx: &Context<'_>) -> Result<Vec<Schedule>> {
        let rows = services(ctx).schedules(caller(ctx)).await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// The retention policy of each backup type.
    async fn retention_policies(&self, ctx: &Context<'_>) -> Result<Vec<RetentionPolicy>> {
        let rows = services(ctx).retention_policies(caller(ctx)).await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// What retention would do now with every completed or failed backup of `backupType`
    /// (all types when left out), newest first: kept or deleted, and why. With `policy`: as if
    /// that policy were set for its type (only that type is previewed; nothing is saved).
    async fn retention_preview(
        &self,
        ctx: &Context<'_>,
        backup_type: Option<BackupType>,
        policy: Option<RetentionPolicyInput>,
    ) -> Result<Vec<RetentionDecision>> {
        let rows = services(ctx)
            .retention_preview(
                caller(ctx),
                backup_type.map(Into::into),
                policy.map(Into::into),
            )
            .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// Who the caller is (null without a valid token).
    async fn me(&self, ctx: &Context<'_>) -> Option<super::types::Me> {
        caller(ctx).principal.as_ref().map(|p| super::types::Me {
            name: p.name.clone(),
            role: p.role.into(),
        })
    }
}
