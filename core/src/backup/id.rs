//! Backup identifiers and types.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Why a backup was taken; the Postgres enum `backup_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type)]
#[sqlx(type_name = "backup_type", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum BackupType {
    Manual,
    Daily,
    Weekly,
    Monthly,
    /// Taken by a restore before it overwrites anything.
    Safety,
}

impl BackupType {
    /// The lowercase name used in ids and APIs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Manual => "manual",
            Self::Daily => "daily",
            Self::Weekly => "weekly",
            Self::Monthly => "monthly",
            Self::Safety => "safety",
        }
    }
}

impl FromStr for BackupType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "manual" => Ok(Self::Manual),
            "daily" => Ok(Self::Daily),
            "weekly" => Ok(Self::Weekly),
            "monthly" => Ok(Self::Monthly),
            "safety" => Ok(Self::Safety),
            _ => Err(format!(
                "unknown backup type {s:?}: use manual, daily, weekly, monthly or safety"
            )),
        }
    }
}

/// A backup's state; the Postgres enum `backup_state`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type)]
#[sqlx(type_name = "backup_state", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum BackupState {
    Pending,
    Running,
    Completed,
    Failed,
    Deleted,
}

/// A backup's id, e.g. `cellar_backup_2026-11-26_10-30-00_daily_3f9a`: readable, sortable by
/// time, and safe as a storage prefix (parsing refuses anything else, `../` included).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BackupId(String);

impl BackupId {
    /// A new id for a backup of `kind` started at `at`.
    pub fn generate(kind: BackupType, at: DateTime<Utc>) -> Self {
        let suffix: u32 = rand::random();
        Self(format!(
            "cellar_backup_{}_{}_{:08x}",
            at.format("%Y-%m-%d_%H-%M-%S"),
            kind.as_str(),
            suffix
        ))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 16-byte id the backup format binds every header, frame and wrapped key to
    /// (docs/FORMAT.md): derived from the readable id, so objects cannot move between backups.
    pub fn format_uuid(&self) -> uuid::Uuid {
        let hash = blake3::derive_key("cellar backup id v1", self.0.as_bytes());
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&hash[..16]);
        uuid::Builder::from_custom_bytes(bytes).into_uuid()
    }
}

impl FromStr for BackupId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let shown: String = s
            .chars()
            .take(80)
            .collect::<String>()
            .escape_debug()
            .to_string();
        let bad = || {
            format!(
                "invalid backup id {shown:?}: expected cellar_backup_YYYY-MM-DD_HH-MM-SS_TYPE_HEX"
            )
        };
        let rest = s.strip_prefix("cellar_backup_").ok_or_else(bad)?;
        let parts: Vec<&str> = rest.split('_').collect();
        let [date, time, kind, hex] = parts[..] else {
            return Err(bad());
        };
        let digits = |p: &str, shape: &str| {
            p.len() == shape.len()
                && p.chars().zip(shape.chars()).all(|(c, f)| {
                    if f == '-' {
                        c == '-'
                    } else {
                        c.is_ascii_digit()
                    }
                })
        };
        let ok = digits(date, "dddd-dd-dd")
            && digits(time, "dd-dd-dd")
            && kind.parse::<BackupType>().is_ok()
            && kind.chars().all(|c| c.is_ascii_lowercase())
            && (4..=16).contains(&hex.len())
            && hex
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c));
        if ok {
            Ok(Self(s.to_string()))
        } else {
            Err(bad())
        }
    }
}

impl TryFrom<String> for BackupId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<BackupId> for String {
    fn from(b: BackupId) -> Self {
        b.0
    }
}

impl fmt::Display for BackupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_refuse_traversal() {
        let id = BackupId::generate(BackupType::Daily, Utc::now());
        assert_eq!(id.as_str().parse::<BackupId>().unwrap(), id);
        assert!(
            "cellar_backup_2026-11-26_10-30-00_daily_3f9a"
                .parse::<BackupId>()
                .is_ok()
        );
        for bad in [
            "",
            "../etc/passwd",
            "cellar_backup_2026-11-26_10-30-00_daily_3f9a/../../x",
            "/abs/cellar_backup_2026-11-26_10-30-00_daily_3f9a",
            "cellar_backup_2026-11-26_10-30-00_daily_3f9a\0",
            "cellar_backup_2026-11-26_10-30-00_hourly_3f9a",
            "cellar_backup_2026-11-26_10-30-00_daily_XYZW",
            "cellar_backup_2026-11-26_10-30-00_DAILY_3f9a",
        ] {
            assert!(bad.parse::<BackupId>().is_err(), "{bad:?} accepted");
        }
    }
}
