//! Cellar's core: everything that is not HTTP, GraphQL or a binary's `main`.
//!
//! # Layout
//! - [`storage`]: the `Storage` trait, its backends and their conformance suite.

pub mod storage;
