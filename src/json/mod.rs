//! JSON on the ground floor: the one writer, the one raw scanner and the shared tape.
//!
//! Every layer speaks JSON — client messages in, server messages out, event bytes
//! stored, time-travel states, conditions probing stored events — and each used to
//! carry its own escaper or its own little scanner. They live here instead, below
//! everything: this module depends on nothing else in the crate, so any layer may use
//! it without tying itself to another.
//!
//! - [`write`]: appending JSON (escaped strings, integers, floats, keys) to a `Vec<u8>`.
//! - [`scan`]: reading an object's bytes in place: whitespace, string and value ends,
//!   top-level field splits, and path probes (`data.metrics.latency`) that classify the
//!   value found without allocating.
//! - [`tape`]: simd-json's tape and its reusable buffers, shared by the client-message
//!   parser and ingest, and the tape-to-JSON writer.

pub mod numbers;
pub mod scan;
pub mod tape;
pub mod write;

pub use scan::{probe, JsonStr, Number, Value};
pub use tape::{span, Events, JsonBuffers, Masked};
