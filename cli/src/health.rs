//! `cellar health` and `cellar diagnose` (through the API, or `--direct` in-process with a
//! worker's configuration). Exit 1 when health is not `healthy` / when a probe failed.

use cellar_cli::client::Api;
use cellar_cli::error::CliError;
use cellar_core::backup::BackupSettings;
use cellar_core::config::CatalogArgs;
use cellar_core::health::diagnose::{self, DiagnoseSettings, Setup};
use cellar_core::storage::DriveSettings;
use serde_json::{Value, json};

const HEALTH: &str = "query { health { status checkedAt reasons { status code message }
    summary { totalBackups driveConfigured sources { name failureStreak lastSuccessfulBackupAt
      lastVerifiedBackupAt lastBackup { id type status at } } }
    metrics { backupsLast24h backupsLastWeek successesLastWeek failuresLastWeek verificationRate
      storageUsedLocalBytes storageUsedDriveBytes queueDepth oldestWaitingJobSeconds liveWorkers
      queue { kind waiting oldestWaitingSeconds running } }
    configuration { driveConfigured driveFolders sources shortestScheduleIntervalSeconds
      shortestScheduleIntervalSource schedules retention } } }";

/// `cellar health`.
pub async fn health(api: &Api, json_out: bool) -> Result<(), CliError> {
    let h = api.request(HEALTH, json!({})).await?["health"].clone();
    let status = h["status"].as_str().unwrap_or("?").to_ascii_lowercase();
    if json_out {
        println!("{h}");
    } else {
        println!("health: {status}");
        for r in h["reasons"].as_array().into_iter().flatten() {
            println!(
                "  - [{}] {}",
                r["code"].as_str().unwrap_or("?"),
                r["message"].as_str().unwrap_or("")
            );
        }
        for s in h["summary"]["sources"].as_array().into_iter().flatten() {
            println!(
                "source {}: last success {}, last verified {}, failure streak {}",
                s["name"].as_str().unwrap_or("?"),
                s["lastSuccessfulBackupAt"].as_str().unwrap_or("never"),
                s["lastVerifiedBackupAt"].as_str().unwrap_or("never"),
                s["failureStreak"]
            );
        }
        let m = &h["metrics"];
        if !m.is_null() {
            println!(
                "backups: {} in 24 h, {} in 7 days ({} ok, {} failed); verification rate {}; \
                 queue {} waiting; {} live workers",
                m["backupsLast24h"],
                m["backupsLastWeek"],
                m["successesLastWeek"],
                m["failuresLastWeek"],
                rate(&m["verificationRate"]),
                m["queueDepth"],
                m["liveWorkers"]
            );
        }
    }
    if status == "healthy" {
        Ok(())
    } else {
        Err(CliError::JobFailed(format!("health is {status}")))
    }
}

fn rate(v: &Value) -> String {
    v.as_f64()
        .map_or("n/a".into(), |r| format!("{:.0}%", r * 100.0))
}

/// `cellar diagnose` through the API.
pub async fn diagnose_api(api: &Api, timeout: Option<f64>, json_out: bool) -> Result<(), CliError> {
    let q = "mutation($t: Float) { diagnose(timeoutSeconds: $t) { status checkedAt ranOn
             probes { name status detail fix } } }";
    let d = api.request(q, json!({ "t": timeout })).await?["diagnose"].clone();
    report(&d, json_out)
}

/// The worker's configuration, for `cellar diagnose --direct`.
#[derive(clap::Args, Debug)]
pub struct DirectArgs {
    #[command(flatten)]
    pub catalog: CatalogArgs,
    #[command(flatten)]
    pub backup: BackupSettings,
    #[command(flatten)]
    pub drive: DriveSettings,
    #[command(flatten)]
    pub diagnose: DiagnoseSettings,
}

/// `cellar diagnose --direct`: every probe in this process, with the worker's variables.
pub async fn diagnose_direct(args: &DirectArgs, json_out: bool) -> Result<(), CliError> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(std::time::Duration::from_secs_f64(
            args.diagnose.probe_timeout_secs.clamp(0.1, 600.0),
        ))
        .connect_lazy(args.catalog.database_url.expose())
        .map_err(|e| {
            CliError::Usage(format!(
                "DATABASE_URL: {}",
                cellar_core::config::redact(&e.to_string())
            ))
        })?;
    let setup = Setup::new(
        pool,
        &args.catalog.database_url,
        &args.backup,
        &args.drive,
        &args.diagnose,
    );
    let d = diagnose::run_all(&setup, "cellar diagnose --direct".into()).await;
    let v = serde_json::to_value(&d).map_err(|e| CliError::Other(e.into()))?;
    report(&v, json_out)
}

fn report(d: &Value, json_out: bool) -> Result<(), CliError> {
    let status = d["status"].as_str().unwrap_or("?").to_ascii_lowercase();
    if json_out {
        println!("{d}");
    } else {
        println!(
            "diagnose: {status} (ran on {})",
            d["ranOn"].as_str().unwrap_or("?")
        );
        for p in d["probes"].as_array().into_iter().flatten() {
            let st = p["status"].as_str().unwrap_or("?").to_ascii_lowercase();
            println!(
                "[{st:^7}] {}: {}",
                p["name"].as_str().unwrap_or("?"),
                p["detail"].as_str().unwrap_or("")
            );
            if let Some(fix) = p["fix"].as_str() {
                println!("          fix: {fix}");
            }
        }
    }
    if status == "failed" {
        Err(CliError::JobFailed("a probe failed".into()))
    } else {
        Ok(())
    }
}
