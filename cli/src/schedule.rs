//! `cellar schedule list|set|delete|enable|disable` (reading: every role; changes: masters).

use cellar_cli::client::Api;
use cellar_cli::error::CliError;
use clap::Subcommand;
use serde_json::{Value, json};

#[derive(Subcommand, Debug)]
pub enum ScheduleCommand {
    /// Lists schedules with their next fire time.
    List,
    /// Creates or replaces a schedule (by name).
    Set {
        /// 1 to 63 of a-z, 0-9, `_`, `-`.
        name: String,
        /// Five fields: minute hour day-of-month month day-of-week, e.g. "0 2 * * *".
        #[arg(long)]
        cron: String,
        /// An IANA time zone, e.g. Europe/Berlin.
        #[arg(long, default_value = "UTC")]
        time_zone: String,
        /// manual, daily, weekly or monthly.
        #[arg(long = "type", default_value = "daily")]
        backup_type: String,
        /// Only these tables (comma-separated, `schema.name`).
        #[arg(long, value_delimiter = ',')]
        tables: Option<Vec<String>>,
        /// Which configured source (default: the first).
        #[arg(long)]
        source: Option<String>,
        /// Also archive the files directory.
        #[arg(long)]
        include_files: bool,
        /// Also copy each backup to Google Drive.
        #[arg(long)]
        upload_to_drive: bool,
        /// Verification after each backup: none, quick or deep.
        #[arg(long, default_value = "none")]
        verify: String,
        /// Create it disabled.
        #[arg(long)]
        disabled: bool,
    },
    /// Deletes a schedule (its backups stay).
    Delete { name: String },
    /// Enables a schedule (fires missed while disabled are not run).
    Enable { name: String },
    /// Disables a schedule.
    Disable { name: String },
}

const FIELDS: &str = "id name cron timeZone backupType source tables includeFiles uploadToDrive \
    verify enabled nextFireAt lastFireAt";

fn line(s: &Value) -> String {
    let text = |k: &str| s[k].as_str().unwrap_or("-").to_string();
    format!(
        "{:<12} {:<16} {:<14} {:<8} {:<8} next {}",
        text("name"),
        text("cron"),
        text("timeZone"),
        text("backupType").to_ascii_lowercase(),
        if s["enabled"].as_bool() == Some(true) {
            "enabled"
        } else {
            "disabled"
        },
        text("nextFireAt"),
    )
}

fn print(v: &Value, json_out: bool) {
    if json_out {
        println!("{v}");
    } else {
        println!("{}", line(v));
    }
}

pub async fn run(api: &Api, cmd: ScheduleCommand, json_out: bool) -> Result<(), CliError> {
    match cmd {
        ScheduleCommand::List => {
            let q = format!("{{ schedules {{ {FIELDS} }} }}");
            let all = api.request(&q, json!({})).await?["schedules"].clone();
            if json_out {
                println!("{all}");
            } else {
                for s in all.as_array().into_iter().flatten() {
                    println!("{}", line(s));
                }
            }
        }
        ScheduleCommand::Set {
            name,
            cron,
            time_zone,
            backup_type,
            tables,
            source,
            include_files,
            upload_to_drive,
            verify,
            disabled,
        } => {
            let q = format!(
                "mutation($input: ScheduleInput!) {{ upsertSchedule(input: $input) {{ {FIELDS} }} }}"
            );
            let input = json!({"name": name, "cron": cron, "timeZone": time_zone,
                "backupType": backup_type.to_ascii_uppercase(), "tables": tables,
                "source": source, "includeFiles": include_files,
                "uploadToDrive": upload_to_drive, "verify": verify, "enabled": !disabled});
            print(
                &api.request(&q, json!({ "input": input })).await?["upsertSchedule"],
                json_out,
            );
        }
        ScheduleCommand::Delete { name } => {
            let q =
                format!("mutation($s: String!) {{ deleteSchedule(schedule: $s) {{ {FIELDS} }} }}");
            let s = api.request(&q, json!({ "s": name })).await?["deleteSchedule"].clone();
            if json_out {
                println!("{s}");
            } else {
                println!("deleted schedule {}", s["name"].as_str().unwrap_or("?"));
            }
        }
        ScheduleCommand::Enable { name } => enable(api, &name, true, json_out).await?,
        ScheduleCommand::Disable { name } => enable(api, &name, false, json_out).await?,
    }
    Ok(())
}

async fn enable(api: &Api, name: &str, on: bool, json_out: bool) -> Result<(), CliError> {
    let q = format!(
        "mutation($s: String!, $on: Boolean!) {{ setScheduleEnabled(schedule: $s, enabled: $on) {{ {FIELDS} }} }}"
    );
    let s = api.request(&q, json!({ "s": name, "on": on })).await?;
    print(&s["setScheduleEnabled"], json_out);
    Ok(())
}
