//! Integration tests of the dump engine against the real PostgreSQL on 127.0.0.1:5432, each test
//! in a fresh database of its own. One test binary, to link once.

mod bench;
mod catalog;
mod common;
mod consistency;
mod errors;
mod pagila;
mod wire;
