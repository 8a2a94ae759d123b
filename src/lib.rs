//! tracecast: a single-threaded `mio` daemon that ingests trace events, stores them in an
//! append-only log, and fans them out to many WebSocket subscribers.
//!
//! The crate is laid out by layer. Everything except [`server`] is a pure core: bytes or
//! values in, bytes or decisions out, testable without a socket. [`server`] is the thin
//! shell that owns the `mio::Poll`, the sockets and the clock, and calls into the cores.
//!
//! - [`json`]: the ground floor every layer shares: the one JSON writer, the one raw
//!   scanner over stored event bytes, simd-json's tape and its reusable buffers.
//! - [`event`], [`model`]: the values layers hand each other: the accepted, sequenced
//!   event; the validated event awaiting its seq; a session's summary.
//! - [`http`], [`ws`]: the two wire codecs on the one port (request heads, frames).
//! - [`protocol`]: client messages in, server messages out (JSON and binary).
//! - [`ingest`]: validation and sequencing of published events.
//! - [`timetravel`]: a session's state at an instant, folded from its events.
//! - [`hub`]: subscriptions, agent filters, per-turn batching, encode-once fan-out.
//! - [`store`]: where accepted events live (memory ring, durable log) and the reads on them.
//! - [`auth`], [`limits`]: credentials, scopes and rate limits.
//! - [`config`], [`metrics`], [`cli`]: operating the daemon.
//! - [`cluster`]: cluster mode, many processes on one NATS JetStream stream (its client
//!   thread behind the `cluster` feature).
#![forbid(unsafe_code)]

pub mod affinity;
pub mod app;
pub mod auth;
pub mod cli;
pub mod cluster;
pub mod condition;
pub mod config;
pub mod event;
#[doc(hidden)]
pub mod fuzzing;
pub mod hash;
pub mod http;
pub mod hub;
pub mod ingest;
pub mod json;
pub mod limits;
pub mod metrics;
pub mod model;
pub mod otlp;
pub mod protocol;
pub mod server;
pub mod store;
pub mod timetravel;
pub mod ws;
