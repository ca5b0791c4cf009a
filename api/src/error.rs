//! The one error type at the API's edge. Each variant has a machine-readable code (sent as
//! `extensions.code` in GraphQL, and in REST bodies); internal details are logged, never sent.

use async_graphql::ErrorExtensions;
use cellar_core::auth::AuthError;
use cellar_core::backup::requests::RequestError;
use cellar_core::queue::QueueError;

/// What went wrong, as a client should see it.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No token, or one that is unknown, revoked or expired.
    #[error("authentication required: send a valid token (Authorization: Bearer ...)")]
    Unauthenticated,
    /// The token's role may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The thing asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The input was refused; the message says why.
    #[error("{0}")]
    InvalidInput(String),
    /// The request conflicts with the current state (e.g. deleting a running backup).
    #[error("{0}")]
    Conflict(String),
    /// Something failed inside; the detail is logged under the returned message's reference.
    #[error("internal error; see the API log")]
    Internal(String),
}

impl ApiError {
    /// The machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthenticated => "UNAUTHENTICATED",
            Self::Forbidden(_) => "FORBIDDEN",
            Self::NotFound(_) => "NOT_FOUND",
            Self::InvalidInput(_) => "INVALID_INPUT",
            Self::Conflict(_) => "CONFLICT",
            Self::Internal(_) => "INTERNAL",
        }
    }

    /// An internal error: `detail` is logged here and replaced by a generic message.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        let detail = cellar_core::config::redact(&detail.to_string());
        tracing::error!(error = %detail, "internal error serving an API request");
        Self::Internal(detail)
    }

    /// True for authentication and authorization refusals (audited as `denied`).
    pub fn is_denial(&self) -> bool {
        matches!(self, Self::Unauthenticated | Self::Forbidden(_))
    }
}

impl ErrorExtensions for ApiError {
    fn extend(&self) -> async_graphql::Error {
        async_graphql::Error::new(self.to_string()).extend_with(|_, e| e.set("code", self.code()))
    }
}

impl From<ApiError> for async_graphql::Error {
    fn from(e: ApiError) -> Self {
        e.extend()
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        Self::internal(e)
    }
}

impl From<QueueError> for ApiError {
    fn from(e: QueueError) -> Self {
        match e {
            QueueError::NotFound(id) => Self::NotFound(format!("job {id} not found")),
            QueueError::WrongState { .. } => Self::Conflict(e.to_string()),
            QueueError::Invalid(m) => Self::Conflict(m),
            QueueError::LeaseLost { .. } | QueueError::Db(_) => Self::internal(e),
        }
    }
}

impl From<RequestError> for ApiError {
    fn from(e: RequestError) -> Self {
        match e {
            RequestError::NotFound(_) => Self::NotFound(e.to_string()),
            RequestError::WrongState { .. } => Self::Conflict(e.to_string()),
            RequestError::Queue(q) => q.into(),
        }
    }
}

impl From<cellar_core::schedule::ScheduleError> for ApiError {
    fn from(e: cellar_core::schedule::ScheduleError) -> Self {
        use cellar_core::schedule::ScheduleError as S;
        match e {
            S::Invalid(m) => Self::InvalidInput(m),
            S::Db(d) => Self::internal(d),
            S::Queue(q) => q.into(),
        }
    }
}

impl From<cellar_core::retention::RetentionError> for ApiError {
    fn from(e: cellar_core::retention::RetentionError) -> Self {
        use cellar_core::retention::RetentionError as R;
        match e {
            R::Invalid(m) => Self::InvalidInput(m),
            R::NotFound(_) => Self::NotFound(e.to_string()),
            R::Db(d) => Self::internal(d),
            R::Queue(q) => q.into(),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::InvalidName(_) | AuthError::ExpiryInPast => {
                Self::InvalidInput(e.to_string())
            }
            AuthError::NameTaken(_) => Self::Conflict(e.to_string()),
            AuthError::NotFound(_) => Self::NotFound(e.to_string()),
            AuthError::Db(d) => Self::internal(d),
        }
    }
}

impl From<cellar_core::restore::RequestError> for ApiError {
    fn from(e: cellar_core::restore::RequestError) -> Self {
        use cellar_core::restore::RequestError as R;
        match e {
            R::Invalid(m) => Self::InvalidInput(m),
            R::NotFound(m) => Self::NotFound(m),
            R::Conflict(m) => Self::Conflict(m),
            R::Db(d) => Self::internal(d),
            R::Queue(q) => q.into(),
        }
    }
}
