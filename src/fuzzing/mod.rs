//! The bodies of the fuzz targets, one module per parser.
//!
//! Each `run(data)` is a plain function: `fuzz/fuzz_targets/*.rs` call it under libFuzzer,
//! and `tests/fuzz_corpus.rs` replays every committed corpus file through it on stable
//! Rust, so a crash once found stays fixed. A body may only return; any panic is a bug:
//! either a parser that crashed, or a property the body asserts about what the parser
//! produced (a round trip, a verdict that does not depend on how bytes were split, a
//! forged token refused). Each body's module documentation lists its properties.

pub mod client_message;
pub mod condition;
pub mod config;
pub mod frame;
pub mod http_head;
pub mod ingest_body;
pub mod jwt;
pub mod log_record;
