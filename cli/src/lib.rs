//! The `cellar` CLI's library half: a small GraphQL client for Cellar's API (HTTP for queries
//! and mutations, `graphql-transport-ws` for subscriptions), shared with the end-to-end tests.
//!
//! # Layout
//! - [`client`]: [`client::Api`]: `request` (queries, mutations) and `subscribe`.
//! - [`error`]: [`error::CliError`] and the exit codes scripts can trust.

pub mod client;
pub mod error;
