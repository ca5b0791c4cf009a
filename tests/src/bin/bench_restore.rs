//! Restore wall time: Cellar's full restore against `pg_restore -j N` of a `pg_dump -Fd` of the
//! same database, and against `pg_restore --single-transaction` (the one-transaction design),
//! indexes included in every column. Prints one Markdown row.
//!
//! `cargo run --release -p cellar-tests --bin bench_restore -- --scale 50` (pgbench data), or
//! `--sql FILE` to load another dataset.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, ensure};
use cellar_core::backup::catalog::{self as backups, BackupRequest};
use cellar_core::backup::{BackupSettings, Progress, ProgressReport, run as backup_run};
use cellar_core::format::KeyRing;
use cellar_core::restore::{RestoreRequest, catalog, run};
use cellar_tests::{TestDb, admin_url};
use clap::Parser;
use tokio_util::sync::CancellationToken;

/// Prints when each restore phase begins, to stderr.
struct PhaseClock(Instant, std::sync::Mutex<String>);

impl Progress for PhaseClock {
    fn report(&self, r: ProgressReport) {
        let mut last = self.1.lock().expect("phase");
        if *last != r.phase {
            eprintln!("{:7.2} s  {}", self.0.elapsed().as_secs_f64(), r.phase);
            *last = r.phase;
        }
    }
}

/// The database backed up and restored.
struct Source {
    name: String,
    url: cellar_core::config::DbUrl,
}

#[derive(Parser)]
struct Args {
    /// pgbench scale of the source (ignored with --sql).
    #[arg(long, default_value_t = 50)]
    scale: u32,
    /// Load this SQL file instead of pgbench data.
    #[arg(long)]
    sql: Option<PathBuf>,
    /// `-v scale=N` for the SQL file (datasets/realistic.sql reads it).
    #[arg(long, default_value_t = 1)]
    sql_scale: u32,
    /// Parallel connections for both Cellar and pg_restore.
    #[arg(long, default_value_t = 2)]
    jobs: usize,
    /// Rounds on the same source, each timing `pg_restore -j` then Cellar (alternating, so
    /// drift on a noisy machine hits both); `--single-transaction` is timed in the first only.
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// Use this existing database as the source (kept afterwards) instead of loading one:
    /// saves the minutes of generating a dataset when iterating.
    #[arg(long)]
    source: Option<String>,
}

fn sh(cmd: &mut Command) -> anyhow::Result<()> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    ensure!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

fn timed(f: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<f64> {
    let t = Instant::now();
    f()?;
    Ok(t.elapsed().as_secs_f64())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // RUST_LOG=cellar_core::restore=debug shows each object and index build with its time.
    if std::env::var_os("RUST_LOG").is_some() {
        cellar_core::telemetry::init();
    }
    // `_owned` drops a loaded source at the end; the caller's --source database is kept.
    let (_owned, source, dataset) = match &args.source {
        Some(name) => {
            let url = admin_url().with_database(name);
            let source = Source {
                name: name.clone(),
                url,
            };
            (None, source, format!("{name} (existing)"))
        }
        None => {
            let (db, dataset) = load_source(&args).await?;
            let source = Source {
                name: db.name.clone(),
                url: db.url.clone(),
            };
            (Some(db), source, dataset)
        }
    };
    sh(Command::new("psql").args(["-X", "-q", "-d", source.url.expose(), "-c", "CHECKPOINT"]))?;
    let dir = tempfile::tempdir()?;

    // pg_dump -Fd, then pg_restore -j N and pg_restore --single-transaction into new databases.
    let dump = dir.path().join("dump");
    let jobs = args.jobs.to_string();
    sh(Command::new("pg_dump")
        .args(["-Fd", "-j", &jobs, "-f"])
        .arg(&dump)
        .arg(source.url.expose()))?;
    let pg_restore_j = |db: &TestDb| {
        sh(Command::new("pg_restore")
            .args(["-j", &jobs, "-d", db.url.expose()])
            .arg(&dump))
    };
    let one_db = TestDb::empty().await;
    let single = timed(|| {
        sh(Command::new("pg_restore")
            .args(["--single-transaction", "-d", one_db.url.expose()])
            .arg(&dump))
    })?;
    drop(one_db);

    // Cellar: one backup of the same database, restored into a new database each round.
    let (catalog_db, pool) = TestDb::catalog().await;
    let settings = BackupSettings {
        source_url: Some(format!("src={}", source.url.expose())),
        backup_dir: dir.path().join("backups"),
        encryption_key: Some(KeyRing::generate_entry()),
        encryption_key_file: None,
        jobs: Some(args.jobs),
        // The product's default level (CELLAR_GZIP_LEVEL), as users restore.
        gzip_level: 3,
        split_table_mib: 64,
        files_dir: None,
        pg_dump: "pg_dump".into(),
    };
    let env = settings
        .build(pool.clone(), &catalog_db.url)
        .map_err(anyhow::Error::msg)?;
    let req = BackupRequest {
        source: "src".into(),
        ..Default::default()
    };
    let (id, _) = backups::create(&pool, &req).await?;
    let cancel = CancellationToken::new();
    backup_run::take(&env, &id, &(), &cancel).await?;

    println!(
        "| dataset | round | pg_restore -j{jobs} (-Fd) | pg_restore --single-transaction | Cellar restore -j{jobs} | Cellar / pg_restore -j{jobs} |"
    );
    println!("|---|---|---|---|---|---|");
    let mut ratios = Vec::new();
    for round in 1..=args.rounds.max(1) {
        let pr_db = TestDb::empty().await;
        let pg_restore = timed(|| pg_restore_j(&pr_db))?;
        drop(pr_db);

        let target = format!("{}_cellar{round}", source.name);
        let mut r = RestoreRequest::new(id.clone());
        r.target_database = Some(target.clone());
        let (rid, _) = catalog::create(&pool, &r).await?;
        let t = Instant::now();
        let clock = PhaseClock(t, Default::default());
        let restored = run::run(&env, rid, &clock, &cancel).await;
        eprintln!("{:7.2} s  done", t.elapsed().as_secs_f64());
        let cellar = t.elapsed().as_secs_f64();
        drop(TestDb {
            name: target.clone(),
            url: admin_url().with_database(&target),
        });
        restored?;
        let ratio = cellar / pg_restore;
        ratios.push(ratio);
        let single = match round {
            1 => format!("{single:.2} s"),
            _ => "-".into(),
        };
        println!(
            "| {dataset} | {round} | {pg_restore:.2} s | {single} | {cellar:.2} s | {ratio:.2}x |"
        );
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "median Cellar / pg_restore -j{jobs} over {} rounds: {:.2}x",
        ratios.len(),
        ratios[ratios.len() / 2]
    );
    Ok(())
}

/// A new database loaded with the dataset the arguments name, and that dataset's label.
async fn load_source(args: &Args) -> anyhow::Result<(TestDb, String)> {
    let source = TestDb::empty().await;
    let dataset = match &args.sql {
        Some(f) => {
            let scale = format!("scale={}", args.sql_scale);
            sh(Command::new("psql")
                .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-v", &scale])
                .args(["-d", source.url.expose(), "-f"])
                .arg(f))?;
            let name = f.file_name().unwrap_or_default().to_string_lossy();
            format!("{name} scale={}", args.sql_scale)
        }
        None => {
            let s = args.scale.to_string();
            sh(Command::new("pgbench").args(["-i", "-q", "-s", &s, source.url.expose()]))?;
            format!("pgbench -s {}", args.scale)
        }
    };
    Ok((source, dataset))
}
