//! The dump engine's one error type, and [`redact_url`] so that no message carries a password.

use std::process::ExitStatus;

/// Everything the dump engine can fail with. Each message says what to do about it; none carries
/// a password (URLs go through [`redact_url`], pg_dump's stderr through [`redact_text`]).
#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    /// The source database could not be reached or refused the login.
    #[error("cannot connect to {url}: {source}")]
    Connect {
        /// The URL with its password replaced by `***`.
        url: String,
        /// The driver's error.
        source: sqlx::Error,
    },
    /// A data connection (our own COPY client, see `wire`) could not reach or log in.
    #[error("cannot connect to {url}: {source}")]
    DataConnect {
        /// The URL with its password replaced by `***`.
        url: String,
        /// What went wrong.
        source: super::wire::WireError,
    },
    /// A session setting on a data connection failed.
    #[error("{context}: {source}")]
    DataQuery {
        /// What was being done.
        context: &'static str,
        /// The server's or the connection's error.
        source: super::wire::WireError,
    },
    /// A catalog query or a session setting failed.
    #[error("{context}: {source}")]
    Query {
        /// What was being done, e.g. "listing tables".
        context: &'static str,
        /// The driver's error.
        source: sqlx::Error,
    },
    /// TID range scans, which the ctid-split copy relies on, arrived in PostgreSQL 14.
    #[error(
        "the source server runs PostgreSQL {version}; Cellar needs PostgreSQL 14 or newer \
         (TID range scans). Upgrade the server or back it up with pg_dump directly"
    )]
    ServerTooOld {
        /// The server's version as a string, e.g. "13.9".
        version: String,
    },
    /// A table name given by the user does not parse.
    #[error("invalid table name {input:?}: {reason}")]
    InvalidTableName {
        /// What the user typed.
        input: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A selected table does not exist in the source database.
    #[error(
        "table {name} does not exist in the source database{}",
        did_you_mean(suggestion)
    )]
    UnknownTable {
        /// The name as the user gave it, quoted where needed.
        name: String,
        /// The closest existing name, when one is close.
        suggestion: Option<String>,
    },
    /// A selected relation exists but holds no rows of its own (a view, a foreign table...).
    #[error("{name} is a {kind}, not a table: select the tables it reads from instead")]
    NotATable {
        /// The relation's name.
        name: String,
        /// What it is, in words.
        kind: &'static str,
    },
    /// Row-level security would hide rows from the dump and the role cannot switch it off.
    #[error(
        "table {table} has row-level security{forced} and role {role:?} cannot bypass it, so the \
         dump would silently miss rows. Run `ALTER ROLE {role_sql} BYPASSRLS` (as a superuser), \
         or back up as a superuser{owner_hint}"
    )]
    RowSecurity {
        /// The table, quoted where needed.
        table: String,
        /// " (FORCE)" when even the owner is subject to it, else "".
        forced: &'static str,
        /// The role the backup connects as.
        role: String,
        /// The role, quoted as an SQL identifier.
        role_sql: String,
        /// Advice about the owner, empty when FORCE makes owning the table useless.
        owner_hint: &'static str,
    },
    /// A snapshot id must look like what `pg_export_snapshot()` returns before it reaches SQL.
    #[error("invalid snapshot id {0:?}: expected hexadecimal digits and dashes")]
    InvalidSnapshotId(String),
    /// The consumer of a stream dropped its receiver: the backup is being abandoned.
    #[error("the consumer of the dump stream went away; the copy was cancelled")]
    Cancelled,
    /// A `COPY ... TO STDOUT` failed part-way.
    #[error("copying {table}: {source}")]
    Copy {
        /// The table, quoted where needed.
        table: String,
        /// The server's or the connection's error.
        source: super::wire::WireError,
    },
    /// A data connection is unusable after an earlier failure or cancellation.
    #[error("this data connection failed earlier; open a new one")]
    ConnectionBroken,
    /// pg_dump could not be started at all.
    #[error("cannot run {program}: {source}. Install the PostgreSQL client tools or set its path")]
    PgDumpSpawn {
        /// The program we tried to run.
        program: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// Reading pg_dump's output failed.
    #[error("reading pg_dump's output: {0}")]
    PgDumpIo(#[source] std::io::Error),
    /// pg_dump ran and failed; its stderr (passwords removed) says why.
    #[error("pg_dump failed ({status}): {stderr}")]
    PgDumpFailed {
        /// Its exit status.
        status: ExitStatus,
        /// Its standard error, redacted and shortened.
        stderr: String,
    },
    /// `pg_dump --version` printed something we cannot read.
    #[error("cannot read the version of {program} from {output:?}")]
    PgDumpVersion {
        /// The program.
        program: String,
        /// What it printed.
        output: String,
    },
    /// pg_dump refuses to dump servers newer than itself.
    #[error(
        "pg_dump is version {pg_dump_major} but the server is PostgreSQL {server_major}: install \
         the PostgreSQL {server_major} client tools (or newer) and point Cellar at that pg_dump"
    )]
    PgDumpTooOld {
        /// pg_dump's major version.
        pg_dump_major: u32,
        /// The server's major version.
        server_major: u32,
    },
}

/// Shorthand for the dump engine's results.
pub type Result<T, E = DumpError> = std::result::Result<T, E>;

fn did_you_mean(suggestion: &Option<String>) -> String {
    match suggestion {
        Some(s) => format!(" (did you mean {s}?)"),
        None => String::new(),
    }
}

impl DumpError {
    /// Wraps a driver error with what was being done.
    pub(crate) fn query(context: &'static str) -> impl FnOnce(sqlx::Error) -> Self {
        move |source| Self::Query { context, source }
    }
}

/// Replaces the password of a `postgres://user:password@host/db` URL, and any `password=` query
/// parameter, with `***`, so that URLs can go into logs and error messages.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.find("://") {
        Some(i) => url.split_at(i + 3),
        None => return redact_text(url),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rfind('@') {
        Some(at) => match authority[..at].find(':') {
            Some(colon) => format!("{}:***{}", &authority[..colon], &authority[at..]),
            None => authority.to_string(),
        },
        None => authority.to_string(),
    };
    format!("{scheme}{authority}{}", redact_password_params(tail))
}

/// Redacts every URL and `password=` in free text, such as pg_dump's stderr.
pub fn redact_text(text: &str) -> String {
    let redacted: Vec<String> = text
        .split(' ')
        .map(|word| match word.find("://") {
            // `redact_url` accepts a URL whose scheme was cut off: it starts at "://".
            Some(i) => format!("{}{}", &word[..i], redact_url(&word[i..])),
            None => redact_password_params(word),
        })
        .collect();
    redacted.join(" ")
}

/// `password=secret` (in a query string or a libpq keyword string) becomes `password=***`.
fn redact_password_params(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.to_ascii_lowercase().find("password=") {
        let value_start = i + "password=".len();
        out.push_str(&rest[..value_start]);
        out.push_str("***");
        let value_len = rest[value_start..]
            .find(['&', ' ', '#', '\n'])
            .unwrap_or(rest.len() - value_start);
        rest = &rest[value_start + value_len..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_the_password_of_a_url() {
        assert_eq!(
            redact_url("postgres://alice:s3cr%40t@db.example:5432/app?sslmode=require"),
            "postgres://alice:***@db.example:5432/app?sslmode=require"
        );
        assert_eq!(
            redact_url("postgres://alice:p@ss@h/db"),
            "postgres://alice:***@h/db"
        );
    }

    #[test]
    fn leaves_urls_without_password_alone() {
        let url = "postgres://postgres@127.0.0.1:5432/cellar";
        assert_eq!(redact_url(url), url);
        assert_eq!(redact_url("postgresql:///db"), "postgresql:///db");
    }

    #[test]
    fn redacts_password_parameters() {
        assert_eq!(
            redact_url("postgres://h/db?user=a&password=hunter2&x=1"),
            "postgres://h/db?user=a&password=***&x=1"
        );
        assert_eq!(
            redact_text("host=h PASSWORD=zz port=1"),
            "host=h PASSWORD=*** port=1"
        );
    }

    #[test]
    fn redacts_urls_inside_text() {
        let msg = "pg_dump: error: connection to \"postgres://bob:topsecret@h/db\" failed";
        let out = redact_text(msg);
        assert!(!out.contains("topsecret"), "{out}");
        assert!(out.contains("bob:***@h/db"), "{out}");
    }
}
