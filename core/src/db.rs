//! The catalog database: connecting (creating it when missing) and migrating.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};

use crate::config::DbUrl;

/// The migrations in `migrations/`, embedded in every binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// Errors opening the catalog.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The URL could not be used.
    #[error("cannot connect to {url}: {source}")]
    Connect { url: String, source: sqlx::Error },
    /// A migration failed.
    #[error("migrating the catalog database failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// Connects a pool of at most `max` connections, creating the database when it does not exist.
pub async fn connect(url: &DbUrl, max: u32) -> Result<PgPool, DbError> {
    let err = |source| DbError::Connect {
        url: url.to_string(),
        source,
    };
    let opts: PgConnectOptions = url.expose().parse().map_err(err)?;
    let opts = opts.log_statements(tracing::log::LevelFilter::Trace);
    let pool = || {
        PgPoolOptions::new()
            .max_connections(max)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(opts.clone())
    };
    match pool().await {
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("3D000") => {
            create_database(url).await.map_err(err)?;
            pool().await.map_err(err)
        }
        other => other.map_err(err),
    }
}

async fn create_database(url: &DbUrl) -> Result<(), sqlx::Error> {
    let name = url.database().unwrap_or("cellar");
    let mut conn = sqlx::PgConnection::connect(url.with_database("postgres").expose()).await?;
    let quoted = format!("\"{}\"", name.replace('"', "\"\""));
    tracing::info!(database = name, "creating the catalog database");
    // The name is quoted (embedded quotes doubled): the statement cannot be anything but CREATE DATABASE.
    let sql = sqlx::AssertSqlSafe(format!("CREATE DATABASE {quoted}"));
    match sqlx::raw_sql(sql).execute(&mut conn).await {
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P04") => Ok(()),
        other => other.map(drop),
    }
}

/// Connects and applies pending migrations.
pub async fn connect_and_migrate(url: &DbUrl, max: u32) -> Result<PgPool, DbError> {
    let pool = connect(url, max).await?;
    MIGRATOR.run(&pool).await?;
    Ok(pool)
}

/// Answers whether the catalog database responds (readiness probes, health).
pub async fn ping(pool: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::query!("SELECT 1 AS one")
        .fetch_one(pool)
        .await
        .map(drop)
}
