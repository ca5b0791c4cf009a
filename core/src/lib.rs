//! Cellar's core: everything that is not HTTP, GraphQL or a binary's `main`.
//!
//! # Layout
//! - [`format`]: the backup format: keys, segments, frames, objects, the manifest (docs/FORMAT.md).
//! - [`storage`]: the `Storage` trait, its backends and their conformance suite.

pub mod format;
pub mod storage;
