//! Subscriptions outlive the request that authenticated them: a websocket checks its token once,
//! at `connection_init`. [`while_active`] re-checks the token while the subscription runs (before
//! an item when the last check is older than [`RECHECK`], and every half [`RECHECK`] when idle),
//! and ends it with `UNAUTHENTICATED`, audited, once the token is revoked or has expired. The
//! answers come from [`crate::service::liveness`]: the catalog is read about once per half
//! [`RECHECK`] per token, however many subscriptions share it, so a revocation is still seen
//! within [`RECHECK`].

use std::pin::Pin;
use std::time::{Duration, Instant};

use async_graphql::{ErrorExtensions, Result};
use cellar_core::audit::{self, NewEvent, Outcome};
use futures::{Stream, StreamExt};
use serde_json::json;

use crate::error::ApiError;
use crate::service::{Caller, Services};

/// How stale a token check may be: a revoked token stops a subscription within this time.
pub const RECHECK: Duration = Duration::from_secs(2);

struct Live<T> {
    inner: Pin<Box<dyn Stream<Item = T> + Send>>,
    tick: tokio::time::Interval,
    checked: Instant,
    svc: Services,
    who: Caller,
    action: &'static str,
}

/// `inner`, ended with an `UNAUTHENTICATED` error as soon as the caller's token stops being
/// active. `action` names the subscription in the audit event recorded then.
pub fn while_active<T: Send + 'static>(
    inner: impl Stream<Item = T> + Send + 'static,
    svc: Services,
    who: Caller,
    action: &'static str,
) -> impl Stream<Item = Result<T>> {
    let mut tick = tokio::time::interval(RECHECK / 2);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let live = Live {
        inner: Box::pin(inner),
        tick,
        checked: Instant::now(),
        svc,
        who,
        action,
    };
    futures::stream::unfold(Some(live), |st| async move {
        let mut st = st?;
        loop {
            tokio::select! {
                item = st.inner.next() => {
                    let item = item?;
                    if st.checked.elapsed() >= RECHECK && !st.still_active().await {
                        return Some((Err(denied(st.svc, st.who, st.action).await), None));
                    }
                    return Some((Ok(item), Some(st)));
                }
                _ = st.tick.tick() => {
                    if !st.still_active().await {
                        return Some((Err(denied(st.svc, st.who, st.action).await), None));
                    }
                }
            }
        }
    })
}

impl<T> Live<T> {
    async fn still_active(&mut self) -> bool {
        let Some(p) = self.who.principal.as_ref() else {
            return false;
        };
        self.checked = Instant::now();
        let pool = &self.svc.pool;
        let read = || cellar_core::auth::is_active(pool, p.token_id);
        match self
            .svc
            .token_checks
            .active(p.token_id, self.checked, read)
            .await
        {
            Ok(active) => active,
            // The catalog is unreachable: keep the stream (it carries nothing new meanwhile).
            Err(e) => {
                tracing::warn!(error = %e, "could not re-check a subscription's token");
                true
            }
        }
    }
}

/// Audits the cut-off and builds the error that ends the subscription.
async fn denied(svc: Services, who: Caller, action: &str) -> async_graphql::Error {
    let err = ApiError::Unauthenticated;
    let event = NewEvent {
        principal: who.principal.as_ref(),
        action,
        target: None,
        job_id: None,
        arguments: json!({ "ended": "the token was revoked or has expired" }),
        outcome: Outcome::Denied,
        error_code: Some(err.code()),
        client_addr: who.addr.clone(),
    };
    if let Err(e) = audit::record(&svc.pool, &event).await {
        tracing::error!(error = %e, "AUDIT EVENT NOT RECORDED: subscription cut off");
    }
    err.extend()
}
