//! Configuration from the environment (12-factor), as clap argument groups the binaries flatten
//! into their own `#[derive(Parser)]` structs. Every variable is documented in `.env.sample`.

use std::fmt;
use std::str::FromStr;

/// The catalog database used when `DATABASE_URL` is not set: the local Postgres.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/cellar";

/// A Postgres connection URL. `Display` and `Debug` hide the password, so a URL can be logged.
#[derive(Clone, PartialEq, Eq)]
pub struct DbUrl(String);

impl DbUrl {
    /// The full URL, password included: only for connecting.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The database name the URL points at (the path), if any.
    pub fn database(&self) -> Option<&str> {
        let rest = self.0.split_once("://")?.1;
        let path = rest.split_once('/')?.1;
        let name = path.split(['?', '#']).next()?;
        (!name.is_empty()).then_some(name)
    }

    /// The same server with another database name (for creating or dropping databases).
    pub fn with_database(&self, name: &str) -> DbUrl {
        let (scheme, rest) = self.0.split_once("://").unwrap_or(("postgres", &self.0));
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let query = path
            .split_once('?')
            .map(|(_, q)| format!("?{q}"))
            .unwrap_or_default();
        DbUrl(format!("{scheme}://{authority}/{name}{query}"))
    }
}

impl FromStr for DbUrl {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if !(s.starts_with("postgres://") || s.starts_with("postgresql://")) {
            return Err(format!(
                "not a Postgres URL ({}): expected postgres://user@host:port/database",
                redact(s)
            ));
        }
        Ok(DbUrl(s.to_string()))
    }
}

/// Replaces the password of a URL (and of any URL inside a message) with `***`.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c.is_whitespace() || c == '/')
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match (authority.rfind('@'), authority.find(':')) {
            (Some(at), Some(colon)) if colon < at => {
                out.push_str(&authority[..colon]);
                out.push_str(":***");
                out.push_str(&authority[at..]);
            }
            _ => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

impl fmt::Display for DbUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact(&self.0))
    }
}

impl fmt::Debug for DbUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DbUrl({self})")
    }
}

/// The service's own database: queue, catalog, audit.
#[derive(clap::Args, Clone, Debug)]
pub struct CatalogArgs {
    /// Postgres URL of Cellar's own database (created and migrated on start when missing).
    #[arg(long = "database-url", env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL,
          hide_env_values = true, hide_default_value = false)]
    pub database_url: DbUrl,
}

/// One database Cellar protects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    /// The name backups refer to it by.
    pub name: String,
    /// How to connect to it.
    pub url: DbUrl,
}

/// Parses `CELLAR_SOURCE_URL`: one URL, or comma-separated `name=url` entries (a bare URL is
/// named after its database). The first is the default source.
pub fn parse_sources(s: &str) -> Result<Vec<Source>, String> {
    let mut out: Vec<Source> = Vec::new();
    for entry in s.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, url) = match entry.split_once('=') {
            Some((n, u)) if !n.contains("://") => (Some(n.trim().to_string()), u),
            _ => (None, entry),
        };
        let url: DbUrl = url.parse()?;
        let name = match name {
            Some(n) => n,
            None => url.database().unwrap_or("default").to_string(),
        };
        if name.is_empty()
            || name.len() > 63
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(format!(
                "source name {name:?}: use 1-63 letters, digits, '_' or '-'"
            ));
        }
        if out.iter().any(|o| o.name == name) {
            return Err(format!("source name {name:?} is configured twice"));
        }
        out.push(Source { name, url });
    }
    if out.is_empty() {
        return Err("no source database configured".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_everywhere() {
        assert_eq!(
            redact("failed: postgres://bob:s3cret@db:5432/app and postgresql://a:b@h/x"),
            "failed: postgres://bob:***@db:5432/app and postgresql://a:***@h/x"
        );
        assert_eq!(redact("postgres://bob@db/app"), "postgres://bob@db/app");
        let u: DbUrl = "postgres://u:pw@h:1/db?sslmode=disable".parse().unwrap();
        assert!(!format!("{u} {u:?}").contains("pw"));
        assert_eq!(u.database(), Some("db"));
        assert_eq!(
            u.with_database("other").expose(),
            "postgres://u:pw@h:1/other?sslmode=disable"
        );
    }

    #[test]
    fn parses_sources() {
        let s = parse_sources("postgres://h/app").unwrap();
        assert_eq!(s[0].name, "app");
        let s = parse_sources("main=postgres://h/app, reports=postgres://h/rep").unwrap();
        assert_eq!(
            (s[0].name.as_str(), s[1].name.as_str()),
            ("main", "reports")
        );
        assert!(
            parse_sources("a=postgres://h/x,a=postgres://h/y")
                .unwrap_err()
                .contains("twice")
        );
        assert!(
            parse_sources("mysql://h/x")
                .unwrap_err()
                .contains("not a Postgres URL")
        );
        assert!(parse_sources(" , ").is_err());
        assert!(parse_sources("bad name=postgres://h/x").is_err());
    }
}
