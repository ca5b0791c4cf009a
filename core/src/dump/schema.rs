//! The schema, as `pg_dump --schema-only -Fc` inside the backup's snapshot, streamed like data.

use std::path::PathBuf;
use std::process::Stdio;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

use super::catalog::Selection;
use super::copy::{BUFFER_BYTES, check_snapshot_id};
use super::error::{DumpError, Result, redact_text, redact_url};

/// How much of pg_dump's stderr goes into an error message.
const MAX_STDERR_BYTES: usize = 4096;

/// The pg_dump binary to use. Hosts with several PostgreSQL versions keep one pg_dump per major
/// version (`/usr/lib/postgresql/NN/bin/pg_dump`), and pg_dump must not be older than the server.
#[derive(Clone, Debug)]
pub struct PgDump {
    program: PathBuf,
    /// Its major version, asked once per process (a worker asks before every backup).
    major: std::sync::Arc<tokio::sync::OnceCell<u32>>,
}

impl Default for PgDump {
    /// `pg_dump` from `PATH`.
    fn default() -> Self {
        Self::new("pg_dump")
    }
}

impl PgDump {
    /// A specific pg_dump binary.
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Self {
            program: program.into(),
            major: Default::default(),
        }
    }

    /// The program, so restore can find pg_restore beside it.
    pub fn program(&self) -> &std::path::Path {
        &self.program
    }

    /// pg_dump's major version, from `pg_dump --version` ("pg_dump (PostgreSQL) 15.20 ...").
    #[tracing::instrument(skip_all, fields(program = %self.program.display()))]
    pub async fn version(&self) -> Result<u32> {
        let output = Command::new(&self.program)
            .arg("--version")
            .output()
            .await
            .map_err(|source| self.spawn_err(source))?;
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        parse_major(&text).ok_or_else(|| DumpError::PgDumpVersion {
            program: self.program.display().to_string(),
            output: text,
        })
    }

    /// Fails unless this pg_dump can dump a server of `server_version_num` (its major version must
    /// be at least the server's: older ones refuse, or miss newer features).
    pub async fn check_compatible(&self, server_version_num: i32) -> Result<()> {
        let major = *self.major.get_or_try_init(|| self.version()).await?;
        check_major(major, server_version_num)
    }

    /// Streams `pg_dump --schema-only -Fc --snapshot=<id>` into `tx` in ~1 MiB buffers and returns
    /// the archive's size. With a selection, only its relations' definitions are dumped (`-t` per
    /// relation, quoted so the pattern matches the name literally): a selective backup restores
    /// into a database that may already hold the other tables.
    #[tracing::instrument(skip_all, fields(url = %redact_url(source_url), snapshot = snapshot_id))]
    pub async fn dump_schema(
        &self,
        source_url: &str,
        snapshot_id: &str,
        selection: Option<&Selection>,
        tx: mpsc::Sender<Bytes>,
    ) -> Result<u64> {
        check_snapshot_id(snapshot_id)?;
        let (url, password) = split_password(source_url);
        let mut cmd = Command::new(&self.program);
        cmd.args(["--schema-only", "--format=custom", "--no-password"]);
        cmd.arg(format!("--snapshot={snapshot_id}"))
            .arg("--dbname")
            .arg(&url);
        for relation in selection.map(Selection::relations).unwrap_or_default() {
            cmd.arg("--table").arg(relation.quoted());
        }
        if let Some(password) = password {
            cmd.env("PGPASSWORD", password); // not on the command line, where `ps` shows it
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|source| self.spawn_err(source))?;
        let stderr = child
            .stderr
            .take()
            .map(|mut e| tokio::spawn(async move { read_to_string(&mut e).await }));
        let stdout = child.stdout.take();
        let bytes = match stdout {
            Some(mut out) => forward(&mut out, &tx).await,
            None => Ok(0),
        };
        finish(child, bytes, stderr).await
    }

    fn spawn_err(&self, source: std::io::Error) -> DumpError {
        DumpError::PgDumpSpawn {
            program: self.program.display().to_string(),
            source,
        }
    }
}

/// Waits for pg_dump and turns a non-zero exit into an error carrying its (redacted) stderr.
async fn finish(
    mut child: Child,
    bytes: Result<u64>,
    stderr: Option<tokio::task::JoinHandle<String>>,
) -> Result<u64> {
    if bytes.is_err() {
        let _ = child.kill().await; // the consumer left, or reading failed: pg_dump must not linger
    }
    let status = child.wait().await.map_err(DumpError::PgDumpIo)?;
    let stderr = match stderr {
        Some(handle) => handle.await.unwrap_or_default(),
        None => String::new(),
    };
    let bytes = bytes?;
    if !status.success() {
        return Err(DumpError::PgDumpFailed {
            status,
            stderr: redact_text(stderr.trim()),
        });
    }
    if !stderr.trim().is_empty() {
        tracing::warn!(stderr = %redact_text(stderr.trim()), "pg_dump wrote to stderr");
    }
    Ok(bytes)
}

/// Copies `out` into `tx` in ~1 MiB buffers.
async fn forward(out: &mut (impl AsyncRead + Unpin), tx: &mpsc::Sender<Bytes>) -> Result<u64> {
    let mut total = 0u64;
    let mut buf = BytesMut::with_capacity(BUFFER_BYTES);
    loop {
        let n = out.read_buf(&mut buf).await.map_err(DumpError::PgDumpIo)?;
        if buf.len() >= BUFFER_BYTES || (n == 0 && !buf.is_empty()) {
            total += buf.len() as u64;
            tx.send(buf.split().freeze())
                .await
                .map_err(|_| DumpError::Cancelled)?;
            buf.reserve(BUFFER_BYTES);
        }
        if n == 0 {
            return Ok(total);
        }
    }
}

async fn read_to_string(r: &mut (impl AsyncRead + Unpin)) -> String {
    let mut raw = Vec::new();
    let _ = r.read_to_end(&mut raw).await;
    raw.truncate(MAX_STDERR_BYTES);
    String::from_utf8_lossy(&raw).into_owned()
}

fn parse_major(version_output: &str) -> Option<u32> {
    let number = version_output
        .split_whitespace()
        .find(|w| w.starts_with(|c: char| c.is_ascii_digit()))?;
    number
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

fn check_major(pg_dump_major: u32, server_version_num: i32) -> Result<()> {
    let server_major = u32::try_from(server_version_num / 10_000).unwrap_or(0);
    match pg_dump_major >= server_major {
        true => Ok(()),
        false => Err(DumpError::PgDumpTooOld {
            pg_dump_major,
            server_major,
        }),
    }
}

/// Moves the password out of a `scheme://user:password@host/...` URL, percent-decoded for
/// PGPASSWORD. Any other URL comes back unchanged.
pub(crate) fn split_password(url: &str) -> (String, Option<String>) {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return (url.to_string(), None);
    };
    let rest = &url[scheme_end..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let Some(at) = authority.rfind('@') else {
        return (url.to_string(), None);
    };
    let Some(colon) = authority[..at].find(':') else {
        return (url.to_string(), None);
    };
    let password = percent_decode(&authority[colon + 1..at]);
    let stripped = format!(
        "{}{}{}",
        &url[..scheme_end + colon],
        &authority[at..],
        &rest[authority.len()..]
    );
    (stripped, Some(password))
}

fn percent_decode(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        let hex = |c: Option<u8>| c.and_then(|c| (c as char).to_digit(16));
        match b {
            b'%' => {
                let (hi, lo) = (bytes.next(), bytes.next());
                match (hex(hi), hex(lo)) {
                    (Some(h), Some(l)) => out.push((h * 16 + l) as u8),
                    _ => out.extend([Some(b), hi, lo].into_iter().flatten()),
                }
            }
            _ => out.push(b),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pg_dump_versions() {
        assert_eq!(
            parse_major("pg_dump (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)\n"),
            Some(15)
        );
        assert_eq!(parse_major("pg_dump (PostgreSQL) 17beta1\n"), Some(17));
        assert_eq!(parse_major("pg_dump (PostgreSQL) 9.6.24\n"), Some(9));
        assert_eq!(parse_major("nonsense"), None);
    }

    #[test]
    fn pg_dump_must_not_be_older_than_the_server() {
        assert!(check_major(15, 150_020).is_ok());
        assert!(check_major(16, 150_020).is_ok());
        let err = check_major(14, 150_020).unwrap_err().to_string();
        assert!(err.contains("PostgreSQL 15 client tools"), "{err}");
    }

    #[test]
    fn moves_the_password_out_of_the_url() {
        assert_eq!(
            split_password("postgres://al:p%40ss@h:5432/db?sslmode=disable"),
            (
                "postgres://al@h:5432/db?sslmode=disable".to_string(),
                Some("p@ss".to_string())
            )
        );
        assert_eq!(
            split_password("postgres://al@h/db"),
            ("postgres://al@h/db".to_string(), None)
        );
        assert_eq!(
            split_password("postgresql:///db"),
            ("postgresql:///db".to_string(), None)
        );
    }
}
