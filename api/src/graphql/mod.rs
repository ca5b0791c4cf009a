//! The GraphQL schema: queries, mutations and subscriptions over [`crate::service`].
//!
//! # Layout
//! - [`query`], [`mutation`], [`subscription`]: the three roots.
//! - [`backup`], [`job`], [`health`], [`types`]: output types, each converted From a domain type.
//! - [`audit_rejected`]: audits mutations refused before any resolver runs.
//!
//! Every resolver reaches the database through [`crate::service::Services`] (no SQL here), with
//! the request's [`Caller`] from the context. Limits: depth [`MAX_DEPTH`], complexity
//! [`MAX_COMPLEXITY`]; request bodies are capped by the router.

use async_graphql::{Context, Schema};

use crate::events::Hub;
use crate::service::{Caller, Services};

pub mod audit_rejected;
pub mod backup;
pub mod health;
pub mod job;
pub mod mutation;
pub mod query;
pub mod subscription;
pub mod types;

/// Deepest selection accepted (`backup { job { backup { ... } } }` cycles otherwise).
pub const MAX_DEPTH: usize = 10;
/// Most expensive query accepted (each field 1; lists count `limit` times their selection).
pub const MAX_COMPLEXITY: usize = 5_000;

/// The schema's type.
pub type CellarSchema = Schema<query::Query, mutation::Mutation, subscription::Subscription>;

/// Builds the schema over `services`, with subscriptions fed by `hub`.
pub fn schema(services: Services, hub: std::sync::Arc<Hub>) -> CellarSchema {
    Schema::build(query::Query, mutation::Mutation, subscription::Subscription)
        .data(services)
        .data(hub)
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
        .extension(audit_rejected::AuditRejected)
        .finish()
}

/// The SDL, as committed in `api/schema.graphql`.
pub fn sdl() -> String {
    Schema::build(query::Query, mutation::Mutation, subscription::Subscription)
        .finish()
        .sdl()
}

/// The shared services.
pub(crate) fn services<'a>(ctx: &Context<'a>) -> &'a Services {
    ctx.data_unchecked::<Services>()
}

/// The request's caller (an anonymous one when none was attached).
pub(crate) fn caller<'a>(ctx: &Context<'a>) -> &'a Caller {
    static ANONYMOUS: std::sync::LazyLock<Caller> = std::sync::LazyLock::new(Caller::default);
    ctx.data_opt::<Caller>().unwrap_or(&ANONYMOUS)
}
