//! Cellar's core: everything that is not HTTP, GraphQL or a binary's `main`.
//!
//! # Layout
//! - [`dump`]: reads a source database at one snapshot: schema (pg_dump), table data (parallel
//!   COPY, ctid-split), sequence values.
//! - [`storage`]: the `Storage` trait, its backends and their conformance suite.

pub mod dump;
pub mod storage;
