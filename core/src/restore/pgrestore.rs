//! `pg_restore` of the backup's schema archive (DDL only, never rows), one section at a time:
//! `pre-data` (types, tables, functions...) before the data, `post-data` (indexes, constraints,
//! triggers, rules) after it, with `-j` parallel workers.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::Command;

use super::RestoreError;
use crate::config::{DbUrl, redact};
use crate::dump::{PgDump, split_password};

/// How much of pg_restore's stderr goes into an error message.
const MAX_STDERR: usize = 4096;

/// The pg_restore beside the configured pg_dump (hosts with several PostgreSQL versions keep one
/// of each per major version in the same directory), or `pg_restore` from `PATH`.
pub fn program(pg_dump: &PgDump) -> PathBuf {
    match pg_dump.program().parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join("pg_restore"),
        _ => PathBuf::from("pg_restore"),
    }
}

/// A schema section of the archive.
#[derive(Clone, Copy, Debug)]
pub enum Section {
    /// Everything that must exist before rows are loaded.
    PreData,
    /// Indexes, constraints, triggers, rules: built after the rows.
    PostData,
}

impl Section {
    fn arg(self) -> &'static str {
        match self {
            Section::PreData => "--section=pre-data",
            Section::PostData => "--section=post-data",
        }
    }
}

/// Runs `pg_restore --section=... --exit-on-error [-j jobs] [-L list] -d url archive`. The
/// password goes through `PGPASSWORD`, never the command line. Killed if the restore is
/// cancelled (dropped).
#[tracing::instrument(skip_all, fields(section = ?section, jobs))]
pub async fn run(
    program: &Path,
    archive: &Path,
    url: &DbUrl,
    section: Section,
    jobs: usize,
    list: Option<&Path>,
) -> Result<(), RestoreError> {
    let (url_no_pw, password) = split_password(url.expose());
    let mut cmd = Command::new(program);
    cmd.arg(section.arg())
        .args(["--exit-on-error", "--no-password"])
        .arg(format!("--jobs={}", jobs.max(1)));
    if let Some(list) = list {
        cmd.arg("--use-list").arg(list);
    }
    cmd.arg("--dbname").arg(&url_no_pw).arg(archive);
    if let Some(p) = password {
        cmd.env("PGPASSWORD", p);
    }
    // Index builds get more memory than the server's default, which speeds up sorts and GIN
    // builds of the (not yet visible) database; an operator's own PGOPTIONS wins.
    if std::env::var_os("PGOPTIONS").is_none() {
        cmd.env(
            "PGOPTIONS",
            "-c maintenance_work_mem=256MB -c synchronous_commit=off",
        );
    }
    cmd.stdout(Stdio::null());
    output(cmd, program, &format!("({section:?})")).await?;
    Ok(())
}

/// `pg_restore -l archive`: the table of contents, one entry per line.
pub async fn toc(program: &Path, archive: &Path) -> Result<Vec<u8>, RestoreError> {
    let mut cmd = Command::new(program);
    cmd.arg("--list").arg(archive);
    text_of(cmd, program, "--list").await
}

/// `pg_restore --verbose --section=... --file=- archive`: the section's SQL, each entry headed by
/// its dump id and dependencies. No database is involved.
pub async fn script(
    program: &Path,
    archive: &Path,
    section: Section,
) -> Result<Vec<u8>, RestoreError> {
    let mut cmd = Command::new(program);
    cmd.args(["--verbose", section.arg(), "--file=-"])
        .arg(archive);
    text_of(cmd, program, section.arg()).await
}

/// The program's stdout, in the archive's encoding (bytes: not necessarily UTF-8).
async fn text_of(mut cmd: Command, program: &Path, what: &str) -> Result<Vec<u8>, RestoreError> {
    cmd.stdout(Stdio::piped());
    output(cmd, program, what).await
}

/// Runs `cmd` (stdout as the caller set it up) and returns its stdout; a failure carries the
/// start of its stderr, secrets redacted. Killed if the caller is dropped (a cancel).
async fn output(mut cmd: Command, program: &Path, what: &str) -> Result<Vec<u8>, RestoreError> {
    cmd.stdin(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let out = cmd
        .output()
        .await
        .map_err(|e| RestoreError::Permanent(format!("cannot run {}: {e}", program.display())))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let cut: String = stderr.trim().chars().take(MAX_STDERR).collect();
        return Err(RestoreError::Permanent(format!(
            "pg_restore {what} failed with {}: {}",
            out.status,
            redact(cut.trim())
        )));
    }
    Ok(out.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pg_restore_is_found_beside_pg_dump() {
        let p = program(&PgDump::new("/usr/lib/postgresql/15/bin/pg_dump"));
        assert_eq!(p, PathBuf::from("/usr/lib/postgresql/15/bin/pg_restore"));
        assert_eq!(program(&PgDump::default()), PathBuf::from("pg_restore"));
    }
}
