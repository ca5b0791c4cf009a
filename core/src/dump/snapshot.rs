//! The consistent instant of a backup: one connection holding a REPEATABLE READ transaction whose
//! snapshot every other connection (data copies, pg_dump) imports.

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};

use super::error::{DumpError, Result, redact_url};
use super::ident::TableName;

/// PostgreSQL 14 brought TID range scans, which make ctid-split copies cheap.
const MIN_SERVER_VERSION_NUM: i32 = 140_000;
/// How many tables one `LOCK TABLE` statement names.
const LOCK_BATCH: usize = 500;

/// The role the backup runs as, and what it may see past row-level security.
#[derive(Clone, Debug)]
pub struct RoleInfo {
    /// `current_user`.
    pub name: String,
    /// Superusers bypass row-level security.
    pub superuser: bool,
    /// Roles with BYPASSRLS bypass it too.
    pub bypass_rls: bool,
}

/// An open, exported snapshot. Keep it alive until every data connection and pg_dump has started
/// (simplest: for the whole backup); dropping it closes the transaction and the snapshot with it.
pub struct Snapshot {
    pub(super) conn: PgConnection,
    id: String,
    server_version_num: i32,
    server_version: String,
    database: String,
    pub(super) role: RoleInfo,
}

/// A connection to the source, named in `pg_stat_activity` so a DBA can tell what it is.
pub(super) async fn connect(source_url: &str, application: &str) -> Result<PgConnection> {
    let connect_err = |source| DumpError::Connect {
        url: redact_url(source_url),
        source,
    };
    let options: PgConnectOptions = source_url.parse().map_err(connect_err)?;
    options
        .application_name(application)
        .connect()
        .await
        .map_err(connect_err)
}

impl Snapshot {
    /// Opens the snapshot connection: no timeouts (a backup can take hours), a REPEATABLE READ
    /// READ ONLY transaction, `pg_export_snapshot()`. Fails on servers older than 14.
    #[tracing::instrument(skip_all, fields(url = %redact_url(source_url)))]
    pub async fn open(source_url: &str) -> Result<Self> {
        let mut conn = connect(source_url, "cellar backup snapshot").await?;
        sqlx::raw_sql(
            "SET idle_in_transaction_session_timeout = 0; SET statement_timeout = 0; \
             BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        )
        .execute(&mut conn)
        .await
        .map_err(DumpError::query("starting the snapshot transaction"))?;
        let row = sqlx::query!(
            r#"SELECT pg_export_snapshot() AS "id!",
                      current_setting('server_version_num')::int AS "version_num!",
                      current_setting('server_version') AS "version!",
                      current_database() AS "database!",
                      r.rolname AS "role!", r.rolsuper AS "superuser!", r.rolbypassrls AS "bypass_rls!"
               FROM pg_roles r WHERE r.rolname = current_user"#
        )
        .fetch_one(&mut conn)
        .await
        .map_err(DumpError::query("exporting the snapshot"))?;
        if row.version_num < MIN_SERVER_VERSION_NUM {
            return Err(DumpError::ServerTooOld {
                version: row.version,
            });
        }
        tracing::info!(snapshot = %row.id, server = %row.version, "snapshot exported");
        let role = RoleInfo {
            name: row.role,
            superuser: row.superuser,
            bypass_rls: row.bypass_rls,
        };
        Ok(Self {
            conn,
            id: row.id,
            server_version_num: row.version_num,
            server_version: row.version,
            database: row.database,
            role,
        })
    }

    /// The exported snapshot's id, for [`DataConn::connect`](super::DataConn::connect) and
    /// `pg_dump --snapshot`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// `server_version_num`, e.g. 150020; recorded in the manifest and checked against pg_dump.
    pub fn server_version_num(&self) -> i32 {
        self.server_version_num
    }

    /// The human-readable server version, e.g. "15.20 (Debian 15.20-0+deb12u1)".
    pub fn server_version(&self) -> &str {
        &self.server_version
    }

    /// The database being backed up (`current_database()`).
    pub fn database(&self) -> &str {
        &self.database
    }

    /// The role the backup runs as.
    pub fn role(&self) -> &RoleInfo {
        &self.role
    }

    /// Ends the transaction politely. Dropping the snapshot has the same effect, less politely.
    pub async fn close(mut self) -> Result<()> {
        sqlx::raw_sql("COMMIT")
            .execute(&mut self.conn)
            .await
            .map_err(DumpError::query("closing the snapshot"))?;
        self.conn
            .close()
            .await
            .map_err(DumpError::query("closing the snapshot"))
    }

    /// Takes ACCESS SHARE locks, as pg_dump does, so that nobody can DROP, TRUNCATE (which is not
    /// MVCC-safe) or ALTER the tables while they are being copied. Plain writes are not blocked.
    #[tracing::instrument(skip_all, fields(tables = tables.len()))]
    pub(super) async fn lock_tables(&mut self, tables: &[TableName]) -> Result<()> {
        for batch in tables.chunks(LOCK_BATCH) {
            let list: Vec<String> = batch.iter().map(TableName::quoted).collect();
            let sql = format!("LOCK TABLE ONLY {} IN ACCESS SHARE MODE", list.join(", "));
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut self.conn)
                .await
                .map_err(DumpError::query("locking the tables to copy"))?;
        }
        Ok(())
    }

    /// How many large objects the database holds. They are not backed up: the caller records a
    /// warning in the backup when this is not zero.
    #[tracing::instrument(skip_all)]
    pub async fn large_object_count(&mut self) -> Result<i64> {
        sqlx::query_scalar!(r#"SELECT count(*) AS "n!" FROM pg_largeobject_metadata"#)
            .fetch_one(&mut self.conn)
            .await
            .map_err(DumpError::query("counting large objects"))
    }

    /// Materialized views that hold data at the snapshot: `pg_dump --schema-only` restores them
    /// all unpopulated, so restore runs `REFRESH MATERIALIZED VIEW` on these.
    #[tracing::instrument(skip_all)]
    pub async fn populated_matviews(&mut self) -> Result<Vec<TableName>> {
        let rows = sqlx::query!(
            r#"SELECT n.nspname AS "schema!", c.relname AS "name!"
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE c.relkind = 'm' AND c.relispopulated
                 AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\_%'
                 AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                                 AND d.objid = c.oid AND d.deptype = 'e')
               ORDER BY 1, 2"#
        )
        .fetch_all(&mut self.conn)
        .await
        .map_err(DumpError::query("listing materialized views"))?;
        rows.into_iter()
            .map(|r| TableName::new(r.schema, r.name))
            .collect()
    }
}
