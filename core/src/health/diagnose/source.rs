//! Source probes: each source database is reachable, its role can read every table, and
//! pg_dump is new enough for its server.

use sqlx::{Connection, PgConnection};

use super::{Probe, Setup};
use crate::config::Source;
use crate::dump::PgDump;

/// A table the dump role cannot read, and why.
struct Unreadable {
    table: String,
    schema: String,
    why: &'static str,
}

/// Two probes per source (`source NAME`, `pg_dump NAME`); one failed probe when the sources
/// cannot even be parsed.
pub(super) async fn probes(setup: &Setup) -> Vec<Probe> {
    let sources = match &setup.sources {
        Ok(s) => s,
        Err(e) => {
            return vec![Probe::failed(
                "sources",
                e.clone(),
                "Set CELLAR_SOURCE_URL to one postgres:// URL or to name=url entries \
                 separated by commas.",
            )];
        }
    };
    let all = sources.iter().map(|s| one(s, &setup.pg_dump));
    futures::future::join_all(all).await.concat()
}

async fn one(s: &Source, pg_dump: &PgDump) -> Vec<Probe> {
    let name = format!("source {}", s.name);
    let dump_name = format!("pg_dump {}", s.name);
    let mut conn = match PgConnection::connect(s.url.expose()).await {
        Ok(c) => c,
        Err(e) => {
            let fix = "Check that the server in CELLAR_SOURCE_URL is running and accepts \
                       connections from this host, that the database exists, and that the \
                       user and password are right.";
            return vec![
                Probe::failed(name, format!("cannot connect to {}: {e}", s.url), fix),
                dump_only(&dump_name, pg_dump).await,
            ];
        }
    };
    let role = sqlx::query!(
        r#"SELECT current_user AS "user!", r.rolsuper AS "is_super!", r.rolbypassrls AS "bypass!",
                  current_setting('server_version_num')::int AS "version!"
           FROM pg_roles r WHERE r.rolname = current_user"#
    )
    .fetch_one(&mut conn)
    .await;
    let role = match role {
        Ok(r) => r,
        Err(e) => {
            return vec![Probe::failed(
                name,
                format!("connected, but cannot read the role: {e}"),
                "Check the role in CELLAR_SOURCE_URL can log in and read pg_catalog.",
            )];
        }
    };
    let mut out =
        vec![tables_probe(&name, &mut conn, &role.user, role.is_super || role.bypass).await];
    out.push(dump_probe(&dump_name, pg_dump, role.version).await);
    let _ = conn.close().await;
    out
}

async fn tables_probe(name: &str, conn: &mut PgConnection, user: &str, bypass: bool) -> Probe {
    let rows = sqlx::query!(
        r#"SELECT n.nspname AS "schema!", c.relname AS "table!",
                  has_schema_privilege(n.oid, 'USAGE') AS "usage!",
                  has_table_privilege(c.oid, 'SELECT') AS "select!",
                  c.relrowsecurity AS "rls!", c.relforcerowsecurity AS "force_rls!",
                  pg_has_role(c.relowner, 'USAGE') AS "owner!"
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
             AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp%'
           ORDER BY 1, 2"#
    )
    .fetch_all(&mut *conn)
    .await;
    let rows = match rows {
        Ok(r) => r,
        Err(e) => {
            return Probe::failed(
                name,
                format!("cannot list tables: {e}"),
                "Check the role can read pg_catalog.",
            );
        }
    };
    let total = rows.len();
    let bad: Vec<Unreadable> = rows
        .into_iter()
        .filter_map(|r| {
            let why = if !r.usage {
                "no USAGE on its schema"
            } else if !r.select {
                "no SELECT"
            } else if r.rls && !bypass && (!r.owner || r.force_rls) {
                "row-level security applies"
            } else {
                return None;
            };
            Some(Unreadable {
                table: format!("{}.{}", r.schema, r.table),
                schema: r.schema,
                why,
            })
        })
        .collect();
    if bad.is_empty() {
        return Probe::ok(
            name,
            format!("connected as {user}; all {total} tables readable"),
        );
    }
    let listed: Vec<String> = bad
        .iter()
        .take(5)
        .map(|u| format!("{} ({})", u.table, u.why))
        .collect();
    let more = if bad.len() > 5 {
        format!(" and {} more", bad.len() - 5)
    } else {
        String::new()
    };
    let mut schemas: Vec<&str> = bad.iter().map(|u| u.schema.as_str()).collect();
    schemas.dedup();
    let rls = bad.iter().any(|u| u.why == "row-level security applies");
    let fix = format!(
        "As the tables' owner or a superuser run: GRANT USAGE ON SCHEMA {s} TO {user}; GRANT \
         SELECT ON ALL TABLES IN SCHEMA {s} TO {user};{rls}",
        s = schemas.join(", "),
        rls = if rls {
            format!(" and, for row-level security, ALTER ROLE {user} BYPASSRLS;")
        } else {
            String::new()
        }
    );
    Probe::failed(
        name,
        format!(
            "connected as {user}, but {} of {total} tables cannot be dumped: {}{more}",
            bad.len(),
            listed.join(", ")
        ),
        &fix,
    )
}

async fn dump_probe(name: &str, pg_dump: &PgDump, server_num: i32) -> Probe {
    let server = server_num / 10000;
    match pg_dump.version().await {
        Ok(v) if v as i32 >= server => Probe::ok(name, format!("pg_dump {v} for server {server}")),
        Ok(v) => Probe::failed(
            name,
            format!("pg_dump {v} is older than the server ({server}): it refuses to dump it"),
            &format!(
                "Install the PostgreSQL {server} client tools (or newer) and point \
                 CELLAR_PG_DUMP at that pg_dump."
            ),
        ),
        Err(e) => failed_to_run(name, e),
    }
}

/// pg_dump runs, when the server's version is unknown.
async fn dump_only(name: &str, pg_dump: &PgDump) -> Probe {
    match pg_dump.version().await {
        Ok(v) => Probe::skipped(
            name,
            format!("pg_dump {v} runs; compatibility not checked: the source is unreachable"),
        ),
        Err(e) => failed_to_run(name, e),
    }
}

fn failed_to_run(name: &str, e: crate::dump::DumpError) -> Probe {
    Probe::failed(
        name,
        format!("pg_dump cannot be run: {e}"),
        "Install the PostgreSQL client tools, or set CELLAR_PG_DUMP to pg_dump's full path.",
    )
}
