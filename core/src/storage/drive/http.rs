//! One authenticated Drive call at a time: the access token (refreshed once on a 401), the
//! retry loop for idempotent calls, and the classification of every failure where it is born.
//!
//! ```text
//! call(build):
//!     for attempt in 1..=max_attempts:
//!         send build(token)            (network error: transient)
//!         401 once: force a new token, resend
//!         2xx or an accepted status: return it
//!         classify(status, body): transient -> sleep(backoff(attempt)), retry; else fail
//! ```

use std::time::Duration;

use reqwest::{RequestBuilder, Response, StatusCode};
use serde::Deserialize;

use super::errors::{Context, classify};
use crate::storage::{RetryPolicy, StorageError};

/// The OAuth scope: full Drive, because `drive.file` cannot see a folder a person created.
pub(super) const SCOPE: &str = "https://www.googleapis.com/auth/drive";

/// Per-request timeout: generous for one chunk on a slow link, short enough to notice a hang.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

type Connector =
    <yup_oauth2::DefaultHyperClientBuilder as yup_oauth2::HyperClientBuilder>::Connector;

/// The shared HTTP side of the backend: client, authenticator, base URLs, retry policy.
pub(super) struct Api {
    http: reqwest::Client,
    auth: yup_oauth2::authenticator::Authenticator<Connector>,
    /// `https://www.googleapis.com/drive/v3` or an override.
    pub(super) api_url: String,
    /// `https://www.googleapis.com/upload/drive/v3` or an override.
    pub(super) upload_url: String,
    /// Backoff for transient failures.
    pub(super) policy: RetryPolicy,
    /// The service account's e-mail (not a secret), named in messages about sharing.
    pub(super) account: String,
    /// The storage's description, the `backend` of every error.
    pub(super) backend: String,
}

/// A failed single attempt, already classified.
pub(super) enum Fault {
    /// Worth retrying after a backoff.
    Transient(StorageError),
    /// Not worth retrying.
    Permanent(StorageError),
}

impl Fault {
    pub(super) fn into_error(self) -> StorageError {
        match self {
            Self::Transient(e) | Self::Permanent(e) => e,
        }
    }
}

impl Api {
    /// Builds the client side. Installs rustls' ring provider as the process default (reqwest
    /// is built without one, so aws-lc is never compiled).
    pub(super) async fn new(
        key: yup_oauth2::ServiceAccountKey,
        subject: Option<String>,
        api_url: String,
        upload_url: String,
        policy: RetryPolicy,
        backend: String,
    ) -> Result<Self, StorageError> {
        crate::http::install_crypto_provider();
        let account = key.client_email.clone();
        let mut builder = yup_oauth2::ServiceAccountAuthenticator::builder(key);
        if let Some(s) = subject {
            builder = builder.subject(s);
        }
        let permanent = |message: String| StorageError::Permanent {
            backend: backend.clone(),
            message,
        };
        let auth = builder
            .build()
            .await
            .map_err(|e| permanent(format!("building the service-account authenticator: {e}")))?;
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(Duration::from_secs(20))
            .build()
            .map_err(|e| permanent(format!("building the HTTP client: {}", e.without_url())))?;
        Ok(Self {
            http,
            auth,
            api_url: api_url.trim_end_matches('/').to_string(),
            upload_url: upload_url.trim_end_matches('/').to_string(),
            policy,
            account,
            backend,
        })
    }

    /// An access token; `fresh` forces a new one (after a 401). Token endpoint refusals are
    /// permanent (a revoked key, a missing delegation grant), everything else transient.
    pub(super) async fn token(&self, fresh: bool) -> Result<String, Fault> {
        let t = if fresh {
            self.auth.force_refreshed_token(&[SCOPE]).await
        } else {
            self.auth.token(&[SCOPE]).await
        };
        match t {
            Ok(t) => t.token().map(str::to_owned).ok_or_else(|| {
                Fault::Transient(self.transient("the token endpoint sent no access token".into()))
            }),
            Err(yup_oauth2::Error::AuthError(e)) => {
                Err(Fault::Permanent(StorageError::Permanent {
                    backend: self.backend.clone(),
                    message: format!(
                        "the token endpoint refused service account {}: {e}. Check that the key is \
                     current (not deleted in the Cloud console) and, with a delegation subject, \
                     that domain-wide delegation grants this client the scope {SCOPE}",
                        self.account
                    ),
                }))
            }
            Err(e) => Err(Fault::Transient(
                self.transient(format!("getting an access token: {e}")),
            )),
        }
    }

    pub(super) fn transient(&self, message: String) -> StorageError {
        StorageError::Transient {
            backend: self.backend.clone(),
            message,
        }
    }

    pub(super) fn permanent(&self, message: String) -> StorageError {
        StorageError::Permanent {
            backend: self.backend.clone(),
            message,
        }
    }

    /// One attempt: sends `build(client)` with a bearer token, refreshing it once on a 401.
    /// Returns the response whatever its status; only network failures are faults here.
    pub(super) async fn send_once<F>(&self, build: &F) -> Result<Response, Fault>
    where
        F: Fn(&reqwest::Client) -> RequestBuilder,
    {
        let mut fresh = false;
        loop {
            let token = self.token(fresh).await?;
            let sent = build(&self.http).bearer_auth(&token).send().await;
            let resp = sent.map_err(|e| {
                Fault::Transient(self.transient(format!("request failed: {}", e.without_url())))
            })?;
            if resp.status() == StatusCode::UNAUTHORIZED && !fresh {
                fresh = true;
                continue;
            }
            return Ok(resp);
        }
    }

    /// Turns a non-success response into a classified fault (reads its body).
    pub(super) async fn fault(&self, resp: Response, ctx: &Context<'_>) -> Fault {
        let status = resp.status();
        let body = resp.bytes().await.unwrap_or_default();
        classify(self, status, &body, ctx)
    }

    /// An idempotent call with retries: returns the first response that is a success or one
    /// of `accept`, or the classified error once retrying cannot help or attempts run out.
    pub(super) async fn call<F>(
        &self,
        ctx: &Context<'_>,
        accept: &[StatusCode],
        build: F,
    ) -> Result<Response, StorageError>
    where
        F: Fn(&reqwest::Client) -> RequestBuilder,
    {
        let max = self.policy.max_attempts.max(1);
        let mut attempt = 1;
        loop {
            let fault = match self.send_once(&build).await {
                Ok(r) if r.status().is_success() || accept.contains(&r.status()) => return Ok(r),
                Ok(r) => self.fault(r, ctx).await,
                Err(f) => f,
            };
            match fault {
                Fault::Transient(e) if attempt < max => {
                    let delay = self.policy.delay(attempt);
                    tracing::warn!(what = ctx.what, attempt, ?delay, error = %e, "transient Drive error, retrying");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                f => return Err(f.into_error()),
            }
        }
    }

    /// A successful response's JSON body.
    pub(super) async fn json<T: for<'de> Deserialize<'de>>(
        &self,
        resp: Response,
        what: &str,
    ) -> Result<T, StorageError> {
        let body = resp.bytes().await.map_err(|e| {
            self.transient(format!("{what}: reading the answer: {}", e.without_url()))
        })?;
        serde_json::from_slice(&body)
            .map_err(|e| self.permanent(format!("{what}: Drive answered unexpected JSON: {e}")))
    }
}
