//! The data connections' own protocol client (`dump::wire`) against real servers: logins with
//! every password method on a scratch cluster, COPY streams on the shared server, and errors.
//!
//! The login tests need a cluster whose pg_hba.conf asks for passwords (the shared server trusts
//! loopback), so they start one with the server's own `initdb`/`pg_ctl` as the `postgres` user
//! (the server refuses root). Where those are missing they say so and skip.

use std::path::{Path, PathBuf};
use std::process::Command;

use bytes::BytesMut;
use cellar_core::dump::wire::{WireConn, WireError};

use crate::common::TestDb;

/// A throwaway PostgreSQL cluster on a free port, stopped and removed on drop.
struct Cluster {
    dir: PathBuf,
    port: u16,
    bin: PathBuf,
}

/// The server's programs: `pg_config --bindir`, else Debian's newest `/usr/lib/postgresql/N/bin`.
fn pg_bin() -> Option<PathBuf> {
    let from_pg_config = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| PathBuf::from(s.trim()));
    let mut debian: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .collect();
    debian.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name()?.to_str()?.parse::<u32>().ok())
            .unwrap_or(0)
    });
    from_pg_config
        .into_iter()
        .chain(debian.into_iter().rev())
        .find(|dir| dir.join("initdb").exists() && dir.join("pg_ctl").exists())
}

/// Runs a server program as `postgres` when we are root (initdb and postgres refuse root).
fn as_server_user(program: &Path) -> Command {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

impl Cluster {
    fn start() -> Option<Self> {
        let Some(bin) = pg_bin() else {
            eprintln!(
                "SKIPPED: no initdb next to pg_config; the login tests need a scratch cluster"
            );
            return None;
        };
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let dir = std::env::temp_dir().join(format!("cellar-wire-{port}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let _ = Command::new("chown").arg("postgres").arg(&dir).status();
        let ok = as_server_user(&bin.join("initdb"))
            .args(["-U", "postgres", "--auth=trust", "-D"])
            .arg(dir.join("data"))
            .output()
            .unwrap();
        assert!(
            ok.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&ok.stderr)
        );
        // Loopback asks each test role for its method; the socket stays trusted for setup.
        let hba = "local all all trust\n\
                   host all md5_user 127.0.0.1/32 md5\n\
                   host all clear_user 127.0.0.1/32 password\n\
                   host all all 127.0.0.1/32 scram-sha-256\n";
        std::fs::write(dir.join("data/pg_hba.conf"), hba).unwrap();
        let ok = as_server_user(&bin.join("pg_ctl"))
            .arg("-D")
            .arg(dir.join("data"))
            .args(["-w", "-l"])
            .arg(dir.join("log"))
            .arg("-o")
            .arg(format!(
                "-p {port} -c listen_addresses=127.0.0.1 -k {} -c fsync=off",
                dir.display()
            ))
            .arg("start")
            .output()
            .unwrap();
        assert!(
            ok.status.success(),
            "pg_ctl start: {}",
            String::from_utf8_lossy(&ok.stderr)
        );
        let cluster = Self { dir, port, bin };
        cluster.psql(
            "SET password_encryption = 'md5'; CREATE ROLE md5_user LOGIN PASSWORD 'md5 pa:ss';
             SET password_encryption = 'scram-sha-256';
             CREATE ROLE clear_user LOGIN PASSWORD 'clear@pass';
             CREATE ROLE scram_user LOGIN PASSWORD 'sçram/p@ss wörd';
             CREATE ROLE nopass_user LOGIN;
             CREATE TABLE t AS SELECT g AS id, 'row ' || g AS v FROM generate_series(1, 1000) g;
             GRANT SELECT ON t TO PUBLIC;",
        );
        Some(cluster)
    }

    fn psql(&self, sql: &str) {
        let out = Command::new("psql")
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-U", "postgres", "-h"])
            .arg(&self.dir)
            .args(["-p", &self.port.to_string(), "-d", "postgres", "-c", sql])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn url(&self, user: &str, password: &str) -> String {
        let enc: String = password
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect();
        format!("postgres://{user}:{enc}@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = as_server_user(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn copy_all(conn: &mut WireConn, sql: &str) -> Result<Vec<u8>, WireError> {
    conn.copy_out(sql).await?;
    let mut out = BytesMut::new();
    let mut all = Vec::new();
    while conn.copy_out_next(&mut out, 4096).await? {
        all.extend_from_slice(&out.split());
    }
    all.extend_from_slice(&out);
    Ok(all)
}

#[tokio::test]
async fn every_password_method_logs_in_and_wrong_passwords_are_refused() {
    let Some(c) = Cluster::start() else { return };
    for (user, password) in [
        ("md5_user", "md5 pa:ss"),
        ("clear_user", "clear@pass"),
        ("scram_user", "sçram/p@ss wörd"),
    ] {
        let mut conn = WireConn::connect(&c.url(user, password), "cellar test")
            .await
            .unwrap_or_else(|e| panic!("{user}: {e}"));
        conn.simple_query("SELECT 1").await.unwrap();
        let data = copy_all(&mut conn, "COPY t TO STDOUT").await.unwrap();
        assert_eq!(data.iter().filter(|&&b| b == b'\n').count(), 1000, "{user}");
        assert!(data.starts_with(b"1\trow 1\n"), "{user}");

        let err = WireConn::connect(&c.url(user, "wrong"), "cellar test")
            .await
            .err()
            .unwrap_or_else(|| panic!("{user} logged in with a wrong password"));
        assert_eq!(err.code(), Some("28P01"), "{user}: {err}");
        assert!(
            !err.to_string().contains("wrong"),
            "no password in errors: {err}"
        );
    }
    // No password at all, where one is needed: said plainly, before the server's refusal.
    let url = format!("postgres://nopass_user@127.0.0.1:{}/postgres", c.port);
    let err = WireConn::connect(&url, "t").await.err().unwrap();
    assert!(err.to_string().contains("none is set"), "{err}");
}

/// A fresh database with table `t`: long rows, and escapes in every row.
async fn db_with_rows() -> TestDb {
    let db = TestDb::create();
    db.exec(
        "CREATE TABLE t AS SELECT g AS id, repeat(chr(65 + g % 26), g % 3000) AS pad, \
         E'tab\\there\\nnewline' AS esc FROM generate_series(1, 20000) g",
    )
    .await;
    db
}

#[tokio::test]
async fn copy_streams_rows_whole_and_reports_server_errors() {
    let db = db_with_rows().await;
    copy_checks(&db, &db.url).await;
}

/// The same over the server's Unix socket, which a polled COPY reads on its own finer clock.
#[tokio::test]
async fn copy_over_the_unix_socket_streams_the_same() {
    let db = db_with_rows().await;
    let Some(url) = unix_socket_url(&db).await else {
        return;
    };
    copy_checks(&db, &url).await;
    // A table big enough that the server outruns a socket holding ~200 KiB.
    db.exec(
        "CREATE TABLE big AS SELECT g, repeat('z', 200) AS pad FROM generate_series(1, 300000) g",
    )
    .await;
    let mut conn = WireConn::connect(&url, "cellar test").await.unwrap();
    let all = copy_all(&mut conn, "COPY big TO STDOUT").await.unwrap();
    assert_eq!(conn.copy_rows(), 300_000);
    let digits: usize = (1..=300_000u32).map(|g| g.to_string().len()).sum();
    assert_eq!(all.len(), digits + 300_000 * (1 + 200 + 1));
}

/// `db`'s URL through the server's Unix socket, when the server has one on this machine.
async fn unix_socket_url(db: &TestDb) -> Option<String> {
    let mut conn = WireConn::connect(&db.url, "cellar test").await.unwrap();
    let dirs = copy_all(
        &mut conn,
        "COPY (SELECT current_setting('unix_socket_directories') || ' ' || \
         current_setting('port')) TO STDOUT",
    )
    .await
    .unwrap();
    let line = String::from_utf8(dirs).unwrap();
    let (dirs, port) = line.trim().rsplit_once(' ').unwrap();
    let dir = dirs.split(',').map(str::trim).find(|d| {
        std::path::Path::new(d)
            .join(format!(".s.PGSQL.{port}"))
            .exists()
    });
    let Some(dir) = dir else {
        eprintln!("SKIPPED: the server has no Unix socket on this machine ({dirs:?})");
        return None;
    };
    let user = db.url.split("//").nth(1)?.split(['@', ':']).next()?;
    Some(format!(
        "postgres://{user}@localhost:{port}/{}?host={dir}",
        db.name
    ))
}

/// COPY streams from `url` (a connection to `db`) exactly what psql's COPY gives, errors as the
/// server said them, and the connection stays usable after each.
async fn copy_checks(db: &TestDb, url: &str) {
    let mut conn = WireConn::connect(url, "cellar test").await.unwrap();
    // Small limits make rows straddle buffers and socket reads.
    conn.copy_out("COPY t TO STDOUT").await.unwrap();
    let (mut out, mut all, mut calls) = (BytesMut::new(), Vec::new(), 0);
    while conn.copy_out_next(&mut out, 777).await.unwrap() {
        calls += 1;
        all.extend_from_slice(&out.split());
    }
    all.extend_from_slice(&out);
    assert!(calls > 1000, "{calls} buffers");
    assert_eq!(conn.copy_rows(), 20000, "one CopyData message per row");
    let expected = std::process::Command::new("psql")
        .args(["-X", "-q", "-d", &db.url, "-c", "COPY t TO STDOUT"])
        .output()
        .unwrap()
        .stdout;
    assert_eq!(all.len(), expected.len());
    assert!(all == expected, "bytes differ from psql's COPY");

    // The connection is idle again and reusable; a bad statement comes back as the server said.
    let err = copy_all(&mut conn, "COPY missing TO STDOUT")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("42P01"), "{err}");
    assert!(
        err.to_string().contains("\"missing\" does not exist"),
        "{err}"
    );
    let err = conn.simple_query("SELECT 1/0").await.unwrap_err();
    assert_eq!(err.code(), Some("22012"), "{err}");
    let again = copy_all(&mut conn, "COPY (SELECT 1) TO STDOUT")
        .await
        .unwrap();
    assert_eq!(again, b"1\n");
    assert_eq!(conn.copy_rows(), 1, "counted per COPY");

    // Rows longer than a socket read (256 KiB) straddle many reads and buffers.
    let big = copy_all(
        &mut conn,
        "COPY (SELECT g, repeat('x', 700000) FROM generate_series(1, 3) g) TO STDOUT",
    )
    .await
    .unwrap();
    assert_eq!(big.len(), 3 * (2 + 700_000 + 1));
    assert_eq!(conn.copy_rows(), 3);
    assert!(big.starts_with(b"1\txxx") && big.ends_with(b"xxx\n"));
    // A control message longer than a socket read is gathered whole (the read buffer grows).
    let err = conn
        .simple_query("DO $$BEGIN RAISE EXCEPTION '%', repeat('y', 300000); END$$")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("P0001"), "{}", &err.to_string()[..80]);
    assert!(err.to_string().contains(&"y".repeat(300000)));
    conn.simple_query("SELECT 1").await.unwrap();

    // An error part-way (division by zero at row 5000) after rows were sent.
    let err = copy_all(
        &mut conn,
        "COPY (SELECT 1 / (5000 - g) FROM generate_series(1, 10000) g) TO STDOUT",
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Some("22012"), "{err}");
    conn.simple_query("SELECT 1").await.unwrap();

    // A backend terminated mid-COPY: the server's FATAL, not a bare end of file.
    let mut victim = WireConn::connect(url, "cellar wire victim").await.unwrap();
    victim
        .copy_out("COPY (SELECT g, pg_sleep(0.001) FROM generate_series(1, 100000) g) TO STDOUT")
        .await
        .unwrap();
    let mut out = BytesMut::new();
    assert!(victim.copy_out_next(&mut out, 1).await.unwrap());
    db.exec(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name = 'cellar wire victim' AND datname = '{}'",
        db.name
    ))
    .await;
    let err = loop {
        match victim.copy_out_next(&mut out, 1 << 20).await {
            Ok(true) => out.clear(),
            Ok(false) => panic!("the COPY finished despite the termination"),
            Err(e) => break e,
        }
    };
    assert_eq!(err.code(), Some("57P01"), "{err}");
}

#[tokio::test]
async fn unreachable_servers_and_bad_urls_fail_clearly() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let err = WireConn::connect(&format!("postgres://u@127.0.0.1:{port}/db"), "t")
        .await
        .err()
        .unwrap();
    assert!(matches!(err, WireError::Io(_)), "{err}");
    let err = WireConn::connect("not a url", "t").await.err().unwrap();
    assert!(matches!(err, WireError::Config(_)), "{err}");
    let err = WireConn::connect("postgres://u@nohost.invalid/db", "t")
        .await
        .err()
        .unwrap();
    assert!(matches!(err, WireError::Io(_)), "{err}");
    let db = TestDb::create();
    let err = WireConn::connect(&format!("{}_nope", db.url), "t")
        .await
        .err()
        .unwrap();
    assert_eq!(err.code(), Some("3D000"), "{err}");
}
