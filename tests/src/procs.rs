//! Real Cellar processes for end-to-end and chaos tests: the built `cellar-api`,
//! `cellar-worker` and `cellar` binaries, started with an environment, logged to files, and
//! killed (SIGKILL) on demand or when dropped.
//!
//! The binaries are found in the running executable's profile directory (`target/debug/` for a
//! test in `target/debug/deps/`, `target/release/` for a benchmark binary there): `scripts/test`
//! builds them first (`cargo test` alone does not build other packages' binaries).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The path of binary `name` in the profile directory the running executable was built into:
/// the parent of `deps/` for a test, its own directory for a binary such as `bench_api`.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let mut dir = exe.parent().expect("the executable's directory");
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir = dir.parent().expect("target/<profile>");
    }
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the binaries first (scripts/test does: cargo build --workspace --bins)",
        path.display()
    );
    path
}

/// A child process, SIGKILLed when dropped; its stderr goes to a log file for post-mortems.
pub struct Proc {
    child: Child,
    /// Where its stderr (and stdout) goes.
    pub log: PathBuf,
}

impl Proc {
    /// The operating-system process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, then reap: the process gets no chance to clean up.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Whether it is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Its log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts binary `name` with `RUST_LOG=info` and `env` (on top of this process's environment),
/// stdout and stderr appended to `log`.
pub fn spawn(name: &str, env: &[(String, String)], log: &Path) -> Proc {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("open log");
    let out = file.try_clone().expect("clone log handle");
    let child = Command::new(bin(name))
        .env("RUST_LOG", "info")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(file))
        .spawn()
        .unwrap_or_else(|e| panic!("start {name}: {e}"));
    Proc {
        child,
        log: log.to_path_buf(),
    }
}

/// A TCP port free on 127.0.0.1 right now (for a child that must bind a known address).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind port 0")
        .port()
}
