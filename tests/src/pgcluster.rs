//! A private PostgreSQL 15 cluster in a temp directory, on a free port, that a test may stop
//! and start at will (the shared server on 5432 must never be restarted: others use it).
//! Needs root (initdb runs as `postgres` through `runuser`); [`Cluster::start`] returns `None`,
//! loudly, where that is impossible.

use std::path::Path;
use std::process::Command;

use cellar_core::config::DbUrl;

const BIN: &str = "/usr/lib/postgresql/15/bin";

/// A running (or stopped) private cluster, stopped and deleted when dropped.
pub struct Cluster {
    dir: tempfile::TempDir,
    /// Its TCP port on 127.0.0.1.
    pub port: u16,
}

impl Cluster {
    /// initdb + start, trust auth, fsync off. `None` (after a loud message) if that fails.
    pub fn start() -> Option<Self> {
        let dir = tempfile::Builder::new()
            .prefix("cellar-pgcluster-")
            .tempdir()
            .ok()?;
        let chown = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir.path())
            .status();
        let data = dir.path().join("data");
        let init = as_postgres(
            &format!("{BIN}/initdb"),
            &[
                "-D",
                path(&data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        if !chown.is_ok_and(|s| s.success()) || !init {
            eprintln!("\n!!!!!!!! SKIP: cannot initdb a private cluster (needs root) !!!!!!!!\n");
            return None;
        }
        let c = Self {
            port: crate::procs::free_port(),
            dir,
        };
        assert!(c.ctl("start"), "pg_ctl start failed: {}", c.log());
        Some(c)
    }

    /// A URL for `database` on this cluster.
    pub fn url(&self, database: &str) -> DbUrl {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
            .parse()
            .expect("url")
    }

    /// `pg_ctl stop -m fast` (sessions are disconnected, like a server restart).
    pub fn stop(&self) {
        assert!(self.ctl("stop"), "pg_ctl stop failed: {}", self.log());
    }

    /// `pg_ctl start` again on the same port.
    pub fn restart(&self) {
        assert!(self.ctl("start"), "pg_ctl start failed: {}", self.log());
    }

    /// The server's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    fn ctl(&self, action: &str) -> bool {
        let data = self.dir.path().join("data");
        let log = self.dir.path().join("server.log");
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            self.port,
            path(self.dir.path())
        );
        let mut args = vec!["-D", path(&data), "-l", path(&log), "-w", "-m", "fast"];
        args.extend(["-o", &opts, action]);
        as_postgres(&format!("{BIN}/pg_ctl"), &args)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = as_postgres(
            &format!("{BIN}/pg_ctl"),
            &["-D", path(&data), "-w", "-m", "immediate", "stop"],
        );
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

fn as_postgres(program: &str, args: &[&str]) -> bool {
    Command::new("runuser")
        .args(["-u", "postgres", "--", program])
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}
