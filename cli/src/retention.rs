//! `cellar retention show|set|preview` (reading: every role; set: masters).

use cellar_cli::client::Api;
use cellar_cli::error::CliError;
use clap::Subcommand;
use serde_json::{Value, json};

#[derive(Subcommand, Debug)]
pub enum RetentionCommand {
    /// Shows the policy of each backup type.
    Show,
    /// Sets the policy of one backup type (limits left out mean "no limit").
    Set {
        /// manual, daily, weekly, monthly or safety.
        backup_type: String,
        /// Keep at most this many per source.
        #[arg(long)]
        max_count: Option<i32>,
        /// Keep for at most this many days.
        #[arg(long)]
        max_age_days: Option<i32>,
        /// Also keep the newest backup of each of the latest N days.
        #[arg(long, default_value_t = 0)]
        keep_daily: i32,
        /// ... of each of the latest N ISO weeks.
        #[arg(long, default_value_t = 0)]
        keep_weekly: i32,
        /// ... of each of the latest N months.
        #[arg(long, default_value_t = 0)]
        keep_monthly: i32,
    },
    /// Shows what retention would delete now, and why. With any policy option, plans as if
    /// that were the type's policy (needs --type; nothing is saved: see `retention set`).
    Preview {
        /// Only this backup type.
        #[arg(long = "type")]
        backup_type: Option<String>,
        /// Also list the backups it keeps.
        #[arg(long)]
        all: bool,
        /// Proposed: keep at most this many per source.
        #[arg(long)]
        max_count: Option<i32>,
        /// Proposed: keep for at most this many days.
        #[arg(long)]
        max_age_days: Option<i32>,
        /// Proposed: also keep the newest backup of each of the latest N days.
        #[arg(long)]
        keep_daily: Option<i32>,
        /// Proposed: ... of each of the latest N ISO weeks.
        #[arg(long)]
        keep_weekly: Option<i32>,
        /// Proposed: ... of each of the latest N months.
        #[arg(long)]
        keep_monthly: Option<i32>,
    },
}

const FIELDS: &str = "backupType maxCount maxAgeDays keepDaily keepWeekly keepMonthly";

fn policy_line(p: &Value) -> String {
    let n = |k: &str| p[k].as_i64().map_or("-".to_string(), |v| v.to_string());
    format!(
        "{:<8} maxCount {:<5} maxAgeDays {:<5} keep daily {} weekly {} monthly {}",
        p["backupType"].as_str().unwrap_or("?").to_ascii_lowercase(),
        n("maxCount"),
        n("maxAgeDays"),
        n("keepDaily"),
        n("keepWeekly"),
        n("keepMonthly"),
    )
}

pub async fn run(api: &Api, cmd: RetentionCommand, json_out: bool) -> Result<(), CliError> {
    match cmd {
        RetentionCommand::Show => {
            let q = format!("{{ retentionPolicies {{ {FIELDS} }} }}");
            let all = api.request(&q, json!({})).await?["retentionPolicies"].clone();
            if json_out {
                println!("{all}");
            } else {
                all.as_array()
                    .into_iter()
                    .flatten()
                    .for_each(|p| println!("{}", policy_line(p)));
            }
        }
        RetentionCommand::Set {
            backup_type,
            max_count,
            max_age_days,
            keep_daily,
            keep_weekly,
            keep_monthly,
        } => {
            let q = format!(
                "mutation($input: RetentionPolicyInput!) {{ setRetentionPolicy(input: $input) {{ {FIELDS} }} }}"
            );
            let input = json!({"backupType": backup_type.to_ascii_uppercase(),
                "maxCount": max_count, "maxAgeDays": max_age_days, "keepDaily": keep_daily,
                "keepWeekly": keep_weekly, "keepMonthly": keep_monthly});
            let p = api.request(&q, json!({ "input": input })).await?["setRetentionPolicy"].clone();
            if json_out {
                println!("{p}");
            } else {
                println!("{}", policy_line(&p));
            }
        }
        RetentionCommand::Preview {
            backup_type,
            all,
            max_count,
            max_age_days,
            keep_daily,
            keep_weekly,
            keep_monthly,
        } => {
            let q = "query($t: BackupType, $p: RetentionPolicyInput) { retentionPreview(\
                     backupType: $t, policy: $p) { backupId backupType source status createdAt \
                     delete reason } }";
            let t = backup_type.map(|t| t.to_ascii_uppercase());
            let proposed = [
                max_count,
                max_age_days,
                keep_daily,
                keep_weekly,
                keep_monthly,
            ]
            .iter()
            .any(Option::is_some);
            let policy = match (proposed, &t) {
                (false, _) => Value::Null,
                (true, None) => {
                    return Err(CliError::Usage(
                        "a proposed policy (--max-count, --max-age-days, --keep-*) applies to \
                         one backup type: add --type"
                            .into(),
                    ));
                }
                (true, Some(t)) => json!({"backupType": t, "maxCount": max_count,
                    "maxAgeDays": max_age_days, "keepDaily": keep_daily.unwrap_or(0),
                    "keepWeekly": keep_weekly.unwrap_or(0), "keepMonthly": keep_monthly.unwrap_or(0)}),
            };
            let vars = json!({ "t": t, "p": policy });
            let rows = api.request(q, vars).await?["retentionPreview"].clone();
            if json_out {
                println!("{rows}");
                return Ok(());
            }
            let rows = rows.as_array().cloned().unwrap_or_default();
            let doomed = rows
                .iter()
                .filter(|r| r["delete"].as_bool() == Some(true))
                .count();
            for r in rows
                .iter()
                .filter(|r| all || r["delete"].as_bool() == Some(true))
            {
                println!(
                    "{} {} ({})",
                    if r["delete"].as_bool() == Some(true) {
                        "DELETE"
                    } else {
                        "keep  "
                    },
                    r["backupId"].as_str().unwrap_or("?"),
                    r["reason"].as_str().unwrap_or("")
                );
            }
            let with = if proposed {
                " under the proposed policy (not saved)"
            } else {
                ""
            };
            println!("{doomed} of {} backups would be deleted{with}", rows.len());
        }
    }
    Ok(())
}
