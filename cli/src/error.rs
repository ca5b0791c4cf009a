//! Errors of the CLI, each with an exit code scripts can rely on:
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | the job ended badly (failed, cancelled, discarded), the backup is invalid, health is not healthy, or a diagnose probe failed |
//! | 2 | bad usage or input (`INVALID_INPUT`) |
//! | 3 | not allowed (`UNAUTHENTICATED`, `FORBIDDEN`) |
//! | 4 | not found (`NOT_FOUND`) |
//! | 5 | conflicts with the current state (`CONFLICT`) |
//! | 6 | the API or database cannot be reached, or failed inside (`INTERNAL`) |

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The API refused, with its machine-readable code.
    #[error("{message} ({code})")]
    Api { code: String, message: String },
    /// The API could not be reached or answered nonsense.
    #[error("cannot talk to the API: {0}")]
    Unreachable(String),
    /// The job ended, but not well.
    #[error("{0}")]
    JobFailed(String),
    /// Bad usage.
    #[error("{0}")]
    Usage(String),
    /// Anything else (database for the direct commands, I/O).
    #[error("{0:#}")]
    Other(#[from] anyhow::Error),
}

impl CliError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Api { code, .. } => match code.as_str() {
                "INVALID_INPUT" => 2,
                "UNAUTHENTICATED" | "FORBIDDEN" => 3,
                "NOT_FOUND" => 4,
                "CONFLICT" => 5,
                _ => 6,
            },
            Self::JobFailed(_) => 1,
            Self::Usage(_) => 2,
            Self::Unreachable(_) | Self::Other(_) => 6,
        }
    }

    /// The machine-readable code, as printed with `--json`.
    pub fn code(&self) -> &str {
        match self {
            Self::Api { code, .. } => code,
            Self::JobFailed(_) => "JOB_FAILED",
            Self::Usage(_) => "INVALID_INPUT",
            Self::Unreachable(_) => "UNREACHABLE",
            Self::Other(_) => "ERROR",
        }
    }
}
