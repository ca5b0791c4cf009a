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

/// A policy as a client sends it, before it is checked.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RawPolicy {
    pub backup_type: BackupType,
    pub max_count: Option<i32>,
    pub max_age_days: Option<i32>,
    pub keep_daily: i32,
    pub keep_weekly: i32,
    pub keep_monthly: i32,
}

impl RawPolicy {
    /// The domain policy; negative numbers are refused with the field's name (the ranges are
    /// checked by `Policy::check` when it is stored).
    fn parse(&self) -> Result<Policy, ApiError> {
        let n = |name: &str, v: i32| {
            u32::try_from(v)
                .map_err(|_| ApiError::InvalidInput(format!("{name} must not be negative")))
        };
        Ok(Policy {
            backup_type: self.backup_type,
            max_count: self.max_count.map(|v| n("maxCount", v)).transpose()?,
            max_age_days: self.max_age_days.map(|v| n("maxAgeDays", v)).transpose()?,
            keep_daily: n("keepDaily", self.keep_daily)?,
            keep_weekly: n("keepWeekly", self.keep_weekly)?,
            keep_monthly: n("keepMonthly", self.keep_monthly)?,
        })
    }
}

impl Services {
    /// Every retention policy.
    pub async fn retention_policies(&self, caller: &Caller) -> Result<Vec<Policy>, ApiError> {
        caller.require(Permission::Read)?;
        Ok(retention::policies(&self.pool).await?)
    }

    /// What retention would do now with the backups of `t` (all types when `None`), under the
    /// stored policies or, with `proposed`, as if it were its type's policy (nothing is saved).
    pub async fn retention_preview(
        &self,
        caller: &Caller,
        t: Option<BackupType>,
        proposed: Option<RawPolicy>,
    ) -> Result<Vec<Decision>, ApiError> {
        caller.require(Permission::Read)?;
        let Some(raw) = proposed else {
            return Ok(retention::preview(&self.pool, t, Utc::now()).await?);
        };
        if t.is_some_and(|t| t != raw.backup_type) {
            return Err(ApiError::InvalidInput(
                "backupType: it differs from policy.backupType; leave it out".into(),
            ));
        }
        let p = raw.parse()?;
        Ok(retention::preview_policy(&self.pool, &p, Utc::now()).await?)
    }

    /// Creates or replaces the policy of one backup type. Masters.
    pub async fn set_retention_policy(
        &self,
        caller: &Caller,
        raw: RawPolicy,
    ) -> Result<Policy, ApiError> {
        let audit = Audit {
            action: "setRetentionPolicy",
            target: Some(raw.backup_type.as_str().into()),
            arguments: json!({ "input": raw }),
        };
        self.mutate(caller, Permission::ManageRetention, audit, |_| async {
            let p = raw.parse()?;
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
