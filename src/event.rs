//! The accepted, sequenced trace event: the one value every layer after ingest shares.
//!
//! An [`Event`] is built once, at ingest, and never re-serialized: `json` holds the exact
//! bytes every subscriber, history reader and the log receive (the producer's object with
//! `seq`, and any server-assigned `id` / `timestamp`, added). The other fields are the few
//! facts routing, indexing and the binary protocol need without parsing `json` again.
//! Events travel as [`EventRef`] (an `Arc`), so a batch, the memory ring and every
//! subscriber's frame refer to the same allocation.

use bytes::Bytes;
use std::sync::Arc;

/// One stored event. Cheap to share through [`EventRef`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Server-assigned, strictly increasing across the whole server, never reused.
    pub seq: u64,
    /// Epoch milliseconds: the producer's `timestamp`, or the receive time.
    pub timestamp: i64,
    /// `sessionId` (or its alias `swarmId`).
    pub session: Arc<str>,
    /// `agentId`, when the event has one.
    pub agent: Option<Arc<str>>,
    /// `type`.
    pub kind: Arc<str>,
    /// The delivered JSON object, complete (`{"seq":…,…}`), UTF-8.
    pub json: Bytes,
}

/// The shared handle to an [`Event`].
pub type EventRef = Arc<Event>;
