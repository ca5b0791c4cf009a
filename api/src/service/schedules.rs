//! Schedules: list (every role), upsert, enable/disable, delete (masters, audited).

use cellar_core::auth::Permission;
use cellar_core::schedule::{RawSchedule, Schedule, ScheduleInput, catalog};
use chrono::Utc;
use serde_json::json;

use super::{Audit, Caller, Services};
use crate::error::ApiError;

impl Services {
    /// Every schedule, by name.
    pub async fn schedules(&self, caller: &Caller) -> Result<Vec<Schedule>, ApiError> {
        caller.require(Permission::Read)?;
        Ok(catalog::list(&self.pool).await?)
    }

    fn check_schedule(&self, raw: RawSchedule) -> Result<ScheduleInput, ApiError> {
        let input = ScheduleInput::parse(raw).map_err(ApiError::InvalidInput)?;
        if let Some(s) = input.source.as_ref().filter(|s| !self.sources.contains(s)) {
            let shown: String = s.chars().take(64).collect();
            return Err(ApiError::InvalidInput(format!(
                "source: unknown source {shown:?}: configured sources are {}",
                self.sources.join(", ")
            )));
        }
        if input.upload_to_drive && !self.drive_configured {
            return Err(ApiError::InvalidInput(
                "uploadToDrive: Google Drive is not configured (set GOOGLE_DRIVE_BACKUP_FOLDER_ID \
                 and the service-account key on the API and the workers)"
                    .into(),
            ));
        }
        Ok(input)
    }

    /// Creates or replaces a schedule (by name). Masters.
    pub async fn upsert_schedule(
        &self,
        caller: &Caller,
        raw: RawSchedule,
    ) -> Result<Schedule, ApiError> {
        let audit = Audit {
            action: "upsertSchedule",
            target: Some(raw.name.chars().take(64).collect()),
            arguments: json!({ "input": raw }),
        };
        self.mutate(caller, Permission::ManageSchedules, audit, |_| async {
            let input = self.check_schedule(raw)?;
            let (row, _) = catalog::upsert(&self.pool, &input, Utc::now()).await?;
            Ok((row, None))
        })
        .await
    }

    /// Enables or disables schedule `key` (name or id). Masters.
    pub async fn set_schedule_enabled(
        &self,
        caller: &Caller,
        key: &str,
        enabled: bool,
    ) -> Result<Schedule, ApiError> {
        let audit = Audit {
            action: "setScheduleEnabled",
            target: Some(key.chars().take(64).collect()),
            arguments: json!({ "schedule": key, "enabled": enabled }),
        };
        self.mutate(caller, Permission::ManageSchedules, audit, |_| async {
            let row = catalog::set_enabled(&self.pool, key, enabled, Utc::now())
                .await?
                .ok_or_else(|| not_found(key))?;
            Ok((row, None))
        })
        .await
    }

    /// Deletes schedule `key` (name or id); its backups stay. Masters.
    pub async fn delete_schedule(&self, caller: &Caller, key: &str) -> Result<Schedule, ApiError> {
        let audit = Audit {
            action: "deleteSchedule",
            target: Some(key.chars().take(64).collect()),
            arguments: json!({ "schedule": key }),
        };
        self.mutate(caller, Permission::ManageSchedules, audit, |_| async {
            let row = catalog::delete(&self.pool, key)
                .await?
                .ok_or_else(|| not_found(key))?;
            Ok((row, None))
        })
        .await
    }
}

fn not_found(key: &str) -> ApiError {
    let shown: String = key.chars().take(64).collect();
    ApiError::NotFound(format!("schedule {shown:?} not found"))
}
