//! Commands that do not go through the API: migrations, keys, tokens.

use anyhow::Context;
use cellar_cli::error::CliError;
use cellar_core::auth::{self, Role};
use cellar_core::config::CatalogArgs;
use cellar_core::format::KeyRing;
use clap::Subcommand;
use serde_json::json;
use sqlx::PgPool;

#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// Prints a new master key entry (`ID:BASE64`) for CELLAR_ENCRYPTION_KEY.
    Generate,
    /// Enqueues the re-wrapping of every backup's data key under the writing (first) key of
    /// the workers' CELLAR_ENCRYPTION_KEY; data is not rewritten.
    Rotate {
        #[command(flatten)]
        catalog: CatalogArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Creates a token and prints it once, alone on stdout (`--json`: {"token": ...}).
    Create {
        /// master, operator or viewer.
        #[arg(long)]
        role: Role,
        /// Who holds it (shown in the audit trail); one active token per name.
        #[arg(long)]
        name: String,
        /// Expire after this many days (default: never).
        #[arg(long)]
        expires_in_days: Option<u32>,
    },
    /// Lists tokens (never their secrets).
    List,
    /// Revokes the active token with this name; it stops working at once.
    Revoke { name: String },
}

async fn open(c: &CatalogArgs) -> Result<PgPool, CliError> {
    Ok(cellar_core::db::connect_and_migrate(&c.database_url, 2)
        .await
        .context("while opening the catalog database")?)
}

/// `cellar migrate`.
pub async fn migrate(c: &CatalogArgs, json: bool) -> Result<(), CliError> {
    open(c).await?.close().await;
    if json {
        println!("{}", json!({"migrated": true}));
    } else {
        println!("catalog database {} is up to date", c.database_url);
    }
    Ok(())
}

/// `cellar key generate`.
pub async fn key(command: KeyCommand, json: bool) -> Result<(), CliError> {
    if let KeyCommand::Rotate { catalog } = command {
        return rotate(&catalog, json).await;
    }
    let k = KeyRing::generate_entry();
    if json {
        println!("{}", json!({ "key": k }));
    } else {
        println!("{k}");
    }
    Ok(())
}

fn auth_error(e: auth::AuthError) -> CliError {
    match e {
        auth::AuthError::Db(d) => CliError::Other(anyhow::Error::new(d)),
        other => CliError::Usage(other.to_string()),
    }
}

/// `cellar token ...`.
pub async fn token(c: &CatalogArgs, cmd: TokenCommand, json: bool) -> Result<(), CliError> {
    let pool = open(c).await?;
    match cmd {
        TokenCommand::Create {
            role,
            name,
            expires_in_days,
        } => {
            let expires =
                expires_in_days.map(|d| chrono::Utc::now() + chrono::Duration::days(d.into()));
            let (secret, _) = auth::create_token(&pool, &name, role, expires)
                .await
                .map_err(auth_error)?;
            if json {
                println!("{}", json!({ "token": secret }));
            } else {
                println!("{secret}");
            }
        }
        TokenCommand::List => {
            let tokens = auth::list_tokens(&pool).await.context("listing tokens")?;
            if json {
                println!("{}", serde_json::to_string(&tokens).context("json")?);
            }
            for t in tokens.iter().filter(|_| !json) {
                let state = if t.revoked_at.is_some() {
                    "revoked"
                } else {
                    "active"
                };
                let used = t.last_used_at.map_or("never".into(), |u| u.to_rfc3339());
                println!("{:<24} {:<8} {:<7} last used {used}", t.name, t.role, state);
            }
        }
        TokenCommand::Revoke { name } => {
            let t = auth::revoke_token(&pool, &name).await.map_err(auth_error)?;
            if json {
                println!("{}", json!({ "revoked": t.name }));
            } else {
                println!("token {} revoked", t.name);
            }
        }
    }
    Ok(())
}

async fn rotate(c: &CatalogArgs, json: bool) -> Result<(), CliError> {
    use cellar_core::backup::JOB_ROTATE_KEYS;
    use cellar_core::queue::{self, NewJob};
    let pool = open(c).await?;
    let mut conn = pool
        .acquire()
        .await
        .context("while connecting to the catalog")?;
    let job = NewJob::new(JOB_ROTATE_KEYS, json!({})).with_dedupe_key(JOB_ROTATE_KEYS);
    let j = queue::enqueue(&mut conn, &job)
        .await
        .context("while enqueueing the key rotation")?;
    if json {
        println!("{}", json!({ "jobId": j.id, "duplicate": j.duplicate }));
    } else {
        println!("key rotation enqueued as job {}", j.id);
    }
    Ok(())
}
