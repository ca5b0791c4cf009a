//! Following a job to its end over the `jobProgress` subscription, drawing a progress bar on
//! stderr (or one JSON line per update on stdout with `--json`).

use std::io::{IsTerminal, Write};

use cellar_cli::client::Api;
use cellar_cli::error::CliError;
use serde_json::{Value, json};

/// The fields every command shows of a job.
pub const JOB_FIELDS: &str = "id kind state attempt maxAttempts error createdAt finishedAt \
    result progress { phase percent bytesDone bytesTotal rowsDone tablesDone tablesTotal \
    throughput eta } backup { id status }";

fn mb(v: &Value) -> f64 {
    v.as_f64().unwrap_or(0.0) / 1e6
}

/// One line describing a job's progress.
pub fn line(job: &Value) -> String {
    let p = &job["progress"];
    let pct = p["percent"].as_f64().unwrap_or(0.0).clamp(0.0, 100.0);
    let filled = (pct / 5.0).round() as usize;
    let eta = p["eta"]
        .as_f64()
        .map_or(String::new(), |e| format!(" eta {e:.0}s"));
    format!(
        "job {} {:<9} [{}{}] {:>5.1}% {:<9} {:>8.1}/{:.1} MB {:>6.1} MB/s{eta}",
        job["id"].as_str().unwrap_or("?"),
        job["state"].as_str().unwrap_or("?"),
        "#".repeat(filled),
        ".".repeat(20 - filled.min(20)),
        pct,
        p["phase"].as_str().unwrap_or("-"),
        mb(&p["bytesDone"]),
        mb(&p["bytesTotal"]),
        mb(&p["throughput"]),
    )
}

/// Follows job `id` until it ends; returns its final state. A job not COMPLETED is an error
/// (exit code 1) carrying its last error.
pub async fn follow(api: &Api, id: &str, json_out: bool) -> Result<Value, CliError> {
    let query = format!("subscription($id: ID!) {{ jobProgress(id: $id) {{ {JOB_FIELDS} }} }}");
    let tty = std::io::stderr().is_terminal();
    let mut last = Value::Null;
    api.subscribe(&query, json!({ "id": id }), |data| {
        last = data["jobProgress"].clone();
        if json_out {
            println!("{last}");
        } else if tty {
            eprint!("\r{}", line(&last));
            let _ = std::io::stderr().flush();
        } else {
            eprintln!("{}", line(&last));
        }
        true
    })
    .await?;
    if tty && !json_out {
        eprintln!();
    }
    match last["state"].as_str() {
        Some("COMPLETED") => Ok(last),
        Some(state) => Err(CliError::JobFailed(format!(
            "job {id} ended {state}: {}",
            last["error"].as_str().unwrap_or("no error recorded")
        ))),
        None => Err(CliError::Unreachable(
            "the subscription ended without a job state".into(),
        )),
    }
}
