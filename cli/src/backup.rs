//! `cellar backup create|list|show|verify|delete`.

use cellar_cli::client::Api;
use cellar_cli::error::CliError;
use clap::Subcommand;
use serde_json::{Value, json};

use crate::watch::{self, JOB_FIELDS};

#[derive(Subcommand, Debug)]
pub enum BackupCommand {
    /// Enqueues a backup; a worker takes it.
    Create {
        /// manual, daily, weekly or monthly.
        #[arg(long = "type", default_value = "manual")]
        backup_type: String,
        /// Only these tables (comma-separated, `schema.name`).
        #[arg(long, value_delimiter = ',')]
        tables: Option<Vec<String>>,
        /// Which configured source (default: the first).
        #[arg(long)]
        source: Option<String>,
        /// Verify right after the backup.
        #[arg(long)]
        verify: bool,
        /// Follow the job to its end; exit 1 unless the backup completed.
        #[arg(long)]
        wait: bool,
    },
    /// Lists backups, newest first.
    List {
        #[arg(long = "type")]
        backup_type: Option<String>,
        /// pending, running, completed, failed or deleted.
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: i32,
    },
    /// Shows one backup in full.
    Show { id: String },
    /// Enqueues a verification (deep: every byte); exit 1 if the backup is invalid (--wait).
    Verify {
        id: String,
        #[arg(long, default_value = "deep")]
        level: String,
        #[arg(long)]
        wait: bool,
    },
    /// Deletes a backup's stored objects (masters).
    Delete {
        id: String,
        #[arg(long)]
        wait: bool,
    },
    /// Pins a backup: retention never deletes it (operators and masters).
    Pin { id: String },
    /// Unpins a backup: retention may delete it again (masters).
    Unpin { id: String },
}

const BACKUP_FIELDS: &str = "id backupType status source requestedTables createdAt completedAt \
    sizes { plainBytes storedBytes } tableCount totalRows tables { schema name rows } \
    verification { status level summary { totalRecords tablesWithData totalTables } \
    failures { object error } } storage { localAvailable driveAvailable } warnings error";

fn upper(s: &str) -> String {
    s.to_ascii_uppercase()
}

pub async fn run(api: &Api, cmd: BackupCommand, json_out: bool) -> Result<(), CliError> {
    match cmd {
        BackupCommand::Create {
            backup_type,
            tables,
            source,
            verify,
            wait,
        } => {
            let q = format!(
                "mutation($input: CreateBackupInput!) {{ createBackup(input: $input) {{ {JOB_FIELDS} }} }}"
            );
            let input = json!({"backupType": upper(&backup_type), "tables": tables,
                               "source": source, "verifyBackup": verify});
            let job = api.request(&q, json!({ "input": input })).await?["createBackup"].clone();
            let backup_id = job["backup"]["id"].as_str().unwrap_or("?").to_string();
            report_enqueued(&job, &format!("backup {backup_id}"), json_out, wait);
            if wait {
                follow_then_show(api, &job, &backup_id, json_out).await?;
            }
        }
        BackupCommand::List {
            backup_type,
            status,
            limit,
        } => list(api, backup_type, status, limit, json_out).await?,
        BackupCommand::Show { id } => {
            let b = show(api, &id).await?;
            println!("{}", serde_json::to_string_pretty(&b).unwrap_or_default());
        }
        BackupCommand::Verify { id, level, wait } => {
            let q = format!(
                "mutation($id: ID!, $level: VerifyLevel!) {{ verifyBackup(id: $id, level: $level) {{ {JOB_FIELDS} }} }}"
            );
            let job = api
                .request(&q, json!({"id": id, "level": upper(&level)}))
                .await?["verifyBackup"]
                .clone();
            report_enqueued(&job, &format!("verification of {id}"), json_out, wait);
            if wait {
                let done =
                    watch::follow(api, job["id"].as_str().unwrap_or_default(), json_out).await?;
                let status = done["result"]["status"].as_str().unwrap_or("unknown");
                if !json_out {
                    println!("backup {id} is {status}");
                }
                if status != "valid" {
                    return Err(CliError::JobFailed(format!(
                        "backup {id} is {status}: {}",
                        done["result"]["failures"]
                    )));
                }
            }
        }
        BackupCommand::Delete { id, wait } => {
            let q = format!("mutation($id: ID!) {{ deleteBackup(id: $id) {{ {JOB_FIELDS} }} }}");
            let job = api.request(&q, json!({ "id": id })).await?["deleteBackup"].clone();
            report_enqueued(&job, &format!("deletion of {id}"), json_out, wait);
            if wait {
                watch::follow(api, job["id"].as_str().unwrap_or_default(), json_out).await?;
                if !json_out {
                    println!("backup {id} deleted");
                }
            }
        }
        BackupCommand::Pin { id } => pin(api, &id, true, json_out).await?,
        BackupCommand::Unpin { id } => pin(api, &id, false, json_out).await?,
    }
    Ok(())
}

async fn pin(api: &Api, id: &str, on: bool, json_out: bool) -> Result<(), CliError> {
    let field = if on { "pinBackup" } else { "unpinBackup" };
    let q = format!("mutation($id: ID!) {{ {field}(id: $id) {{ id pinned }} }}");
    let b = api.request(&q, json!({ "id": id })).await?[field].clone();
    if json_out {
        println!("{b}");
    } else {
        let state = if b["pinned"].as_bool() == Some(true) {
            "pinned"
        } else {
            "unpinned"
        };
        println!("backup {id} {state}");
    }
    Ok(())
}

fn report_enqueued(job: &Value, what: &str, json_out: bool, wait: bool) {
    if json_out && !wait {
        println!("{job}");
    } else if !json_out {
        println!(
            "{what} enqueued as job {}",
            job["id"].as_str().unwrap_or("?")
        );
    }
}

async fn follow_then_show(
    api: &Api,
    job: &Value,
    backup_id: &str,
    json_out: bool,
) -> Result<(), CliError> {
    let followed = watch::follow(api, job["id"].as_str().unwrap_or_default(), json_out).await;
    let b = show(api, backup_id).await?;
    if !json_out {
        println!("{}", serde_json::to_string_pretty(&b).unwrap_or_default());
    }
    followed?;
    if b["status"] != "COMPLETED" {
        return Err(CliError::JobFailed(format!(
            "backup {backup_id} did not complete: {}",
            b["error"].as_str().unwrap_or("no error recorded")
        )));
    }
    Ok(())
}

async fn show(api: &Api, id: &str) -> Result<Value, CliError> {
    let q = format!("query($id: ID!) {{ backup(id: $id) {{ {BACKUP_FIELDS} }} }}");
    Ok(api.request(&q, json!({ "id": id })).await?["backup"].clone())
}

async fn list(
    api: &Api,
    backup_type: Option<String>,
    status: Option<String>,
    limit: i32,
    json_out: bool,
) -> Result<(), CliError> {
    let q = "query($t: BackupType, $s: BackupStatus, $l: Int) { backups(type: $t, status: $s, limit: $l) { \
             nodes { id backupType status createdAt sizes { storedBytes } verification { status } } \
             pageInfo { endCursor hasNextPage } statistics { totalBackups byType byStatus } } }";
    let vars = json!({"t": backup_type.as_deref().map(upper), "s": status.as_deref().map(upper), "l": limit});
    let page = api.request(q, vars).await?["backups"].clone();
    if json_out {
        println!("{page}");
        return Ok(());
    }
    for b in page["nodes"].as_array().into_iter().flatten() {
        let size = b["sizes"]["storedBytes"]
            .as_f64()
            .map_or("-".into(), |s| format!("{:.1} MB", s / 1e6));
        println!(
            "{}  {:<9} {:>10}  verified: {}",
            b["id"].as_str().unwrap_or("?"),
            b["status"].as_str().unwrap_or("?"),
            size,
            b["verification"]["status"].as_str().unwrap_or("-")
        );
    }
    println!("{} backups in all", page["statistics"]["totalBackups"]);
    Ok(())
}
