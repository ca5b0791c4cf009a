//! Retention: policies and preview (every role), policy changes (masters), pins (operators and
//! masters pin; only masters unpin, since unpinning makes a backup deletable again).

use cellar_core::auth::Permission;
use cellar_core::backup::BackupType;
use cellar_core::backup::catalog::{self, BackupRow};
use cellar_core::retention::{self, Decision, Policy, store};
use chrono::Utc;
use serde_json::json;

use super::backups::parse_id;
use super::{Audit, Caller, Services};
use crate::error::ApiError;

impl Services {
    /// Every retention policy.
    pub async fn retention_policies(&self, caller: &Caller) -> Result<Vec<Policy>, ApiError> {
        caller.require(Permission::Read)?;
        Ok(retention::policies(&self.pool).await?)
    }

    /// What retention would do now with the backups of `t` (all types when `None`).
    pub async fn retention_preview(
        &self,
        caller: &Caller,
        t: Option<BackupType>,
    ) -> Result<Vec<Decision>, ApiError> {
        caller.require(Permission::Read)?;
        Ok(retention::preview(&self.pool, t, Utc::now()).await?)
    }

    /// Creates or replaces the policy of one backup type. Masters.
    pub async fn set_retention_policy(
        &self,
        caller: &Caller,
        p: Policy,
    ) -> Result<Policy, ApiError> {
        let audit = Audit {
            action: "setRetentionPolicy",
            target: Some(p.backup_type.as_str().into()),
            arguments: json!({ "input": p }),
        };
        self.mutate(caller, Permission::ManageRetention, audit, |_| async {
            store::set_policy(&self.pool, &p).await?;
            Ok((p, None))
        })
        .await
    }

    /// Pins (operators and masters) or unpins (masters) backup `id`.
    pub async fn set_pinned(
        &self,
        caller: &Caller,
        id: &str,
        pinned: bool,
    ) -> Result<BackupRow, ApiError> {
        let (action, p) = if pinned {
            ("pinBackup", Permission::PinBackup)
        } else {
            ("unpinBackup", Permission::UnpinBackup)
        };
        let audit = Audit {
            action,
            target: Some(id.into()),
            arguments: json!({ "id": id }),
        };
        self.mutate(caller, p, audit, |_| async {
            let id = parse_id(id)?;
            store::set_pinned(&self.pool, &id, pinned).await?;
            let row = catalog::get(&self.pool, &id)
                .await?
                .ok_or_else(|| ApiError::NotFound(format!("backup {id} not found")))?;
            Ok((row, None))
        })
        .await
    }
}
