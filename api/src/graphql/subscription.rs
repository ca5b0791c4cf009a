//! The subscription root, fed by the process's one [`Hub`] (a single LISTEN, fanned out).

use std::sync::Arc;

use async_graphql::{Context, ID, Result, Subscription as SubscriptionRoot};
use cellar_core::auth::Permission;
use cellar_core::queue;
use futures::Stream;
use tokio::sync::broadcast::{Receiver, error::RecvError};

use super::job::{Job, JobEvent};
use super::live_auth::while_active;
use super::{caller, services};
use crate::events::{Hub, Update};
use crate::service::Services;
use crate::service::jobs::parse_id;

/// Live updates.
pub struct Subscription;

type Follow = (Option<Update>, Receiver<Update>, Services);

/// The next row of job `id`: a pending one first, then the hub's; on lag, a fresh read.
async fn next_row(id: i64, st: &mut Follow) -> Option<Update> {
    if let Some(row) = st.0.take() {
        return Some(row);
    }
    loop {
        match st.1.recv().await {
            Ok(u) if u.row.id == id => return Some(u),
            Ok(_) => {}
            Err(RecvError::Lagged(_)) => {
                return queue::get(&st.2.pool, id).await.ok().map(Update::from);
            }
            Err(RecvError::Closed) => return None,
        }
    }
}

#[SubscriptionRoot]
impl Subscription {
    /// The job's state and progress now, then on every change, until it ends (the last item
    /// is its final state). NOT_FOUND for an unknown job.
    /// Ends with UNAUTHENTICATED if the token is revoked or expires meanwhile.
    async fn job_progress(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> Result<impl Stream<Item = Result<Job>>> {
        let (svc, who) = (services(ctx).clone(), caller(ctx).clone());
        who.require(Permission::Read)?;
        let id = parse_id(&id)?;
        // Subscribe before reading, so no change between the read and the subscription is lost.
        let rx = ctx.data_unchecked::<Arc<Hub>>().subscribe();
        let first = svc.job(&who, &id.to_string()).await?;
        let start: Option<Follow> = Some((Some(Update::from(first)), rx, svc.clone()));
        let rows = futures::stream::unfold(start, move |st| async move {
            let mut st = st?;
            let u = next_row(id, &mut st).await?;
            let more = !u.row.state.is_final();
            Some((Job::from(u), more.then_some(st)))
        });
        Ok(while_active(rows, svc, who, "jobProgress"))
    }

    /// Every job's state and progress changes (optionally of one kind), as they happen.
    /// Ends with UNAUTHENTICATED if the token is revoked or expires meanwhile.
    async fn job_events(
        &self,
        ctx: &Context<'_>,
        kind: Option<String>,
    ) -> Result<impl Stream<Item = Result<JobEvent>>> {
        let (svc, who) = (services(ctx).clone(), caller(ctx).clone());
        who.require(Permission::Read)?;
        let rx = ctx.data_unchecked::<Arc<Hub>>().subscribe();
        let events = futures::stream::unfold(rx, move |mut rx| {
            let kind = kind.clone();
            async move {
                loop {
                    match rx.recv().await {
                        Ok(u) if kind.as_ref().is_none_or(|k| *k == u.row.kind) => {
                            return Some((JobEvent(u), rx));
                        }
                        Ok(_) => {}
                        Err(RecvError::Lagged(n)) => {
                            tracing::warn!(missed = n, "a jobEvents subscriber fell behind");
                        }
                        Err(RecvError::Closed) => return None,
                    }
                }
            }
        });
        Ok(while_active(events, svc, who, "jobEvents"))
    }
}
