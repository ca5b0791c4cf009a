//! `cellar restore BACKUP_ID` and `cellar rollback JOB_ID` (masters).

use cellar_cli::client::Api;
use cellar_cli::error::CliError;
use serde_json::{Value, json};

use crate::watch::{self, JOB_FIELDS};

/// What `cellar restore` asks for.
#[derive(clap::Args, Debug)]
pub struct RestoreArgs {
    /// The backup to restore.
    pub backup_id: String,
    /// Only these tables (comma-separated, `schema.name`); default: the whole database.
    #[arg(long, value_delimiter = ',')]
    pub tables: Option<Vec<String>>,
    /// Restore into this database on the same server (created when missing); default: the
    /// database the backup was taken from.
    #[arg(long = "target-database")]
    pub target_database: Option<String>,
    /// Confirms that the restore may replace data (required).
    #[arg(long)]
    pub yes: bool,
    /// Skip the safety backup of what will be replaced (then nothing can be rolled back).
    #[arg(long = "no-safety-backup")]
    pub no_safety_backup: bool,
    /// Let a table restore commit even if foreign keys would then point nowhere.
    #[arg(long = "accept-broken-references")]
    pub accept_broken_references: bool,
    /// Also put the backup's files archive back into the workers' CELLAR_FILES_DIR, replacing
    /// its content (the backup must include files).
    #[arg(long)]
    pub files: bool,
    /// Follow the job to its end; exit 1 unless the restore completed.
    #[arg(long)]
    pub wait: bool,
}

const RESTORE: &str = "mutation($input: RestoreBackupInput!) { restoreBackup(input: $input) { ";
const ROLLBACK: &str = "mutation($id: ID!) { rollbackRestore(jobId: $id) { ";

/// Enqueues a restore (refused by the API without `--yes`), optionally following it.
pub async fn restore(api: &Api, a: RestoreArgs, json_out: bool) -> Result<(), CliError> {
    let input = json!({
        "backupId": a.backup_id,
        "tables": a.tables,
        "targetDatabase": a.target_database,
        "confirmRestore": a.yes,
        "createSafetyBackup": !a.no_safety_backup,
        "acceptBrokenReferences": a.accept_broken_references,
        "restoreFiles": a.files,
    });
    let q = format!("{RESTORE}{JOB_FIELDS} }} }}");
    let job = api.request(&q, json!({ "input": input })).await?["restoreBackup"].clone();
    finish(
        api,
        job,
        &format!("restore of {}", a.backup_id),
        json_out,
        a.wait,
    )
    .await
}

/// Enqueues the rollback of the restore that ran as job `job_id`.
pub async fn rollback(api: &Api, job_id: &str, wait: bool, json_out: bool) -> Result<(), CliError> {
    let q = format!("{ROLLBACK}{JOB_FIELDS} }} }}");
    let job = api.request(&q, json!({ "id": job_id })).await?["rollbackRestore"].clone();
    finish(
        api,
        job,
        &format!("rollback of job {job_id}"),
        json_out,
        wait,
    )
    .await
}

async fn finish(
    api: &Api,
    job: Value,
    what: &str,
    json_out: bool,
    wait: bool,
) -> Result<(), CliError> {
    let id = job["id"].as_str().unwrap_or_default().to_string();
    if !wait {
        if json_out {
            println!("{job}");
        } else {
            println!("{what} enqueued as job {id}");
        }
        return Ok(());
    }
    if !json_out {
        println!("{what} enqueued as job {id}");
    }
    let done = watch::follow(api, &id, json_out).await?;
    if !json_out {
        println!("{what} completed: {}", done["result"]);
    }
    Ok(())
}
