//! `cellar job show|watch|cancel`.

use cellar_cli::client::Api;
use cellar_cli::error::CliError;
use clap::Subcommand;
use serde_json::json;

use crate::watch::{self, JOB_FIELDS};

#[derive(Subcommand, Debug)]
pub enum JobCommand {
    /// Shows a job.
    Show { id: String },
    /// Follows a job to its end with a live progress bar; exit 1 unless it completed.
    Watch { id: String },
    /// Cancels a job (operators: only jobs they started).
    Cancel { id: String },
}

pub async fn run(api: &Api, cmd: JobCommand, json_out: bool) -> Result<(), CliError> {
    match cmd {
        JobCommand::Show { id } => {
            let q = format!("query($id: ID!) {{ job(id: $id) {{ {JOB_FIELDS} }} }}");
            let job = api.request(&q, json!({ "id": id })).await?["job"].clone();
            if json_out {
                println!("{job}");
            } else {
                println!("{}", watch::line(&job));
                if let Some(e) = job["error"].as_str() {
                    println!("last error: {e}");
                }
            }
        }
        JobCommand::Watch { id } => {
            let job = watch::follow(api, &id, json_out).await?;
            if !json_out {
                println!("job {id} completed");
            }
            drop(job);
        }
        JobCommand::Cancel { id } => {
            let q = "mutation($id: ID!) { cancelJob(id: $id) { id state cancelRequested } }";
            let job = api.request(q, json!({ "id": id })).await?["cancelJob"].clone();
            if json_out {
                println!("{job}");
            } else {
                println!(
                    "job {id}: {} (cancel requested)",
                    job["state"].as_str().unwrap_or("?")
                );
            }
        }
    }
    Ok(())
}
