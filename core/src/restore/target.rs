//! The server and database a restore writes into: connections, what the database is like, and
//! the advisory lock that lets only one restore touch a database at a time.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};

use super::RestoreError;
use crate::config::DbUrl;
use crate::dump::quote_ident;

/// First key of the restore advisory locks (`CELR`), so they cannot collide with other users'.
const LOCK_NAMESPACE: i32 = 0x4345_4c52;

/// The server of a configured source: restores reach every database on it through that URL.
#[derive(Clone, Debug)]
pub struct Server {
    url: DbUrl,
}

impl Server {
    /// The server `url` points at (its database part is replaced per connection).
    pub fn new(url: &DbUrl) -> Self {
        Self { url: url.clone() }
    }

    /// The URL of database `db` on this server.
    pub fn url(&self, db: &str) -> DbUrl {
        self.url.with_database(db)
    }

    /// `host:port/db` without credentials: names a database across workers for the lock.
    pub fn identity(&self, db: &str) -> String {
        let rest = self.url.expose().split_once("://").map_or("", |(_, r)| r);
        let authority = rest.split(['/', '?']).next().unwrap_or_default();
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        format!("{host}/{db}")
    }

    /// A connection to `db`, named in `pg_stat_activity`, with no statement timeout.
    pub async fn connect(&self, db: &str) -> Result<PgConnection, RestoreError> {
        let url = self.url(db);
        let err = |e: sqlx::Error| RestoreError::from(e).context(&format!("connecting to {url}"));
        let opts: PgConnectOptions = url.expose().parse().map_err(err)?;
        let mut conn = opts
            .application_name("cellar restore")
            .connect()
            .await
            .map_err(err)?;
        sqlx::raw_sql("SET statement_timeout = 0; SET idle_in_transaction_session_timeout = 0")
            .execute(&mut conn)
            .await?;
        Ok(conn)
    }

    /// A connection to a database other than `avoid` (renames and drops need one): `postgres`,
    /// else `template1`.
    pub async fn maintenance(&self, avoid: &[&str]) -> Result<PgConnection, RestoreError> {
        let db = ["postgres", "template1"]
            .into_iter()
            .find(|d| !avoid.contains(d))
            .expect("two candidates, at most one avoided per name");
        self.connect(db).await
    }
}

/// What a database on the server is like, for creating its replacement in its image.
#[derive(Clone, Debug)]
pub struct DatabaseInfo {
    pub owner: String,
    pub encoding: String,
    pub collate: String,
    pub ctype: String,
    pub icu_locale: Option<String>,
    pub allow_connections: bool,
}

/// The database `name`, if it exists.
pub async fn database_info(
    conn: &mut PgConnection,
    name: &str,
) -> Result<Option<DatabaseInfo>, RestoreError> {
    let row = sqlx::query!(
        r#"SELECT pg_get_userbyid(datdba) AS "owner!", pg_encoding_to_char(encoding) AS "encoding!",
                  datcollate AS "collate!", datctype AS "ctype!",
                  CASE WHEN datlocprovider = 'i' THEN daticulocale END AS icu_locale,
                  datallowconn AS "allow!"
           FROM pg_database WHERE datname = $1"#,
        name
    )
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(|r| DatabaseInfo {
        owner: r.owner,
        encoding: r.encoding,
        collate: r.collate,
        ctype: r.ctype,
        icu_locale: r.icu_locale,
        allow_connections: r.allow,
    }))
}

/// `CREATE DATABASE name` from template0, in the image of `like` (owner, encoding, locale).
pub fn create_database_sql(name: &str, like: Option<&DatabaseInfo>) -> String {
    let mut sql = format!("CREATE DATABASE {} TEMPLATE template0", quote_ident(name));
    if let Some(l) = like {
        let lit = |s: &str| format!("'{}'", s.replace('\'', "''"));
        sql.push_str(&format!(
            " OWNER {} ENCODING {} LC_COLLATE {} LC_CTYPE {}",
            quote_ident(&l.owner),
            lit(&l.encoding),
            lit(&l.collate),
            lit(&l.ctype)
        ));
        if let Some(icu) = &l.icu_locale {
            sql.push_str(&format!(" LOCALE_PROVIDER icu ICU_LOCALE {}", lit(icu)));
        }
    }
    sql
}

/// True when the database holds any relation outside the system schemas.
pub async fn has_relations(conn: &mut PgConnection) -> Result<bool, RestoreError> {
    Ok(sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                          WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
                            AND n.nspname NOT IN ('pg_catalog', 'information_schema')
                            AND n.nspname NOT LIKE 'pg\_toast%') AS "exists!""#
    )
    .fetch_one(&mut *conn)
    .await?)
}

/// Which database a connection is on, on which server (start time and port tell servers apart).
async fn whereabouts<'c, E>(conn: E) -> Result<(String, Option<i32>, DateTime<Utc>), RestoreError>
where
    E: sqlx::Executor<'c, Database = sqlx::Postgres>,
{
    let r = sqlx::query!(
        r#"SELECT current_database() AS "db!", inet_server_port() AS port,
                  pg_postmaster_start_time() AS "started!""#
    )
    .fetch_one(conn)
    .await?;
    Ok((r.db, r.port, r.started))
}

/// Refuses to restore into Cellar's own catalog database: it would replace the catalog (and
/// terminate Cellar's own connections) while the restore runs.
pub async fn refuse_catalog(pool: &PgPool, target: &mut PgConnection) -> Result<(), RestoreError> {
    if whereabouts(pool).await? == whereabouts(&mut *target).await? {
        return Err(RestoreError::Permanent(
            "the target database is Cellar's own catalog database: restore into another database"
                .into(),
        ));
    }
    Ok(())
}

/// An advisory lock on the catalog, one per target database, held on a connection of its own
/// for the whole restore. Dropping it closes that connection, which releases the lock even if
/// the restore is cancelled half-way.
pub struct TargetLock {
    conn: PgConnection,
    identity: String,
}

impl TargetLock {
    /// Takes the lock for `identity` ([`Server::identity`]) or fails at once, clearly.
    pub async fn acquire(pool: &PgPool, identity: &str) -> Result<Self, RestoreError> {
        Self::try_acquire(pool, identity).await?.ok_or_else(|| {
            RestoreError::Permanent(format!(
                "another restore is already running on database {identity}: wait for it to finish"
            ))
        })
    }

    /// Takes the lock for `identity` if it is free; `None` when someone holds it.
    pub async fn try_acquire(pool: &PgPool, identity: &str) -> Result<Option<Self>, RestoreError> {
        let mut conn = pool.acquire().await?.detach();
        let got = sqlx::query_scalar!(
            r#"SELECT pg_try_advisory_lock($1, hashtext($2)) AS "got!""#,
            LOCK_NAMESPACE,
            identity
        )
        .fetch_one(&mut conn)
        .await?;
        Ok(got.then(|| Self {
            conn,
            identity: identity.to_string(),
        }))
    }

    /// Releases the lock now, before returning (dropping releases it too, but only once the
    /// server notices the closed connection).
    pub async fn release(mut self) {
        let _ = sqlx::query_scalar!(
            r#"SELECT pg_advisory_unlock($1, hashtext($2)) AS "released!""#,
            LOCK_NAMESPACE,
            self.identity
        )
        .fetch_one(&mut self.conn)
        .await;
        let _ = self.conn.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_has_no_credentials() {
        let url: DbUrl = "postgres://al:secret@db.example:5433/shop?sslmode=disable"
            .parse()
            .unwrap();
        assert_eq!(Server::new(&url).identity("other"), "db.example:5433/other");
    }

    #[test]
    fn replacements_are_created_in_the_targets_image() {
        let like = DatabaseInfo {
            owner: "o\"wner".into(),
            encoding: "UTF8".into(),
            collate: "C.UTF-8".into(),
            ctype: "it's".into(),
            icu_locale: None,
            allow_connections: true,
        };
        assert_eq!(
            create_database_sql("a\"b", Some(&like)),
            "CREATE DATABASE \"a\"\"b\" TEMPLATE template0 OWNER \"o\"\"wner\" ENCODING 'UTF8' \
             LC_COLLATE 'C.UTF-8' LC_CTYPE 'it''s'"
        );
        assert_eq!(
            create_database_sql("x", None),
            "CREATE DATABASE \"x\" TEMPLATE template0"
        );
    }
}
