//! The cluster [`Sequencer`]: the loop's side of the NATS thread.
//!
//! `submit` encodes a batch and hands it to the thread, keeping the origin under a token;
//! `poll` drains what the thread consumed, appends each stream message to the local log
//! at its derived seqs ([`super::seq_of`]) and completes the origin that waited for it (a
//! batch another node published completes with `Origin::Publisher(None)`, which only fans
//! out). Nothing here blocks: sends are to an unbounded channel, receives are `try_recv`.

use super::client::{self, FromNats, Settings, ToNats};
use super::{seq_of, stream_seq_of, wire, ClusterError, SEQ_STRIDE};
use crate::app::commit::{Completion, Origin, Sequencer, SequencerStatus, Submitted};
use crate::config::Config;
use crate::store::{Appended, Pending, Store, StoreError};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// Publishes waiting for the stream at most; past it producers are told to retry.
pub const MAX_IN_FLIGHT: usize = 1024;

/// The loop-side cluster sequencer.
pub struct ClusterSequencer {
    nats: client::Handle,
    /// Origins of this node's publishes, by token.
    waiting: HashMap<u64, Origin>,
    /// Origins whose message came back while a failed append is retried, by stream seq.
    parked: BTreeMap<u64, Origin>,
    next_token: u64,
    /// Message ids are `<node_id>-<boot ms>-<token>`: unique across restarts, so JetStream's
    /// deduplication only ever merges real retries.
    id_prefix: String,
    /// The last stream message materialized here.
    materialized: u64,
    /// Set while a failed append is being retried: messages before it comes back are
    /// dropped (the consumer was restarted from it).
    retry_from: Option<u64>,
    /// The stream's head when this node first learned it: current once materialized.
    start_head: Option<u64>,
    caught_up: bool,
    scratch: Vec<u8>,
}

impl std::fmt::Debug for ClusterSequencer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterSequencer")
            .field("materialized", &self.materialized)
            .field("in_flight", &self.waiting.len())
            .finish()
    }
}

impl ClusterSequencer {
    /// Starts the NATS thread for `config.cluster`, consuming from just after what `store`
    /// already holds. Checks the data dir first (see [`super::check_data_dir`]).
    pub fn start(
        config: &Config,
        store: &dyn Store,
        waker: Arc<mio::Waker>,
    ) -> Result<ClusterSequencer, ClusterError> {
        let c = &config.cluster;
        super::check_names(&c.stream, &c.subject_prefix)?;
        let next = store.next_seq();
        if config.storage.persist {
            super::check_data_dir(std::path::Path::new(&config.data_dir), &c.stream, next)?;
        }
        let materialized = if next > 1 { stream_seq_of(next - 1) } else { 0 };
        let settings = Settings {
            url: c.nats_url.clone(),
            stream: c.stream.clone(),
            subject_prefix: c.subject_prefix.clone(),
            max_bytes: i64::try_from(config.storage.retention_bytes).unwrap_or(i64::MAX),
            max_age: Duration::from_millis(config.storage.retention_ms),
        };
        let nats = client::spawn(settings, waker, materialized + 1).map_err(ClusterError::Io)?;
        let node = if c.node_id.is_empty() {
            format!("{}-{}", hostname(), config.port)
        } else {
            c.node_id.clone()
        };
        tracing::info!(
            node = %node,
            stream = %c.stream,
            from = materialized + 1,
            "cluster: consuming the stream"
        );
        Ok(ClusterSequencer::new(nats, &node, materialized))
    }

    fn new(nats: client::Handle, node: &str, materialized: u64) -> ClusterSequencer {
        ClusterSequencer {
            nats,
            waiting: HashMap::new(),
            parked: BTreeMap::new(),
            next_token: 0,
            id_prefix: format!("{node}-{}", crate::app::wall_ms()),
            materialized,
            retry_from: None,
            start_head: None,
            caught_up: false,
            scratch: Vec::new(),
        }
    }

    /// How far this node has come through the stream: what it materialized, or, when
    /// the stream dropped messages it never read, the last of those (it cannot read them,
    /// so they do not keep it catching up).
    fn position(&self) -> u64 {
        let first = self.nats.shared.first.load(Ordering::Acquire);
        self.materialized.max(first.saturating_sub(1))
    }

    fn unavailable(why: &str) -> StoreError {
        StoreError::Unavailable(why.to_string())
    }

    fn materialize(
        &mut self,
        store: &mut dyn Store,
        stream_seq: u64,
        origin: Origin,
        events: Result<Vec<Pending>, wire::WireError>,
        done: &mut Vec<Completion>,
    ) {
        if stream_seq > self.materialized + 1 {
            tracing::warn!(
                missing_from = self.materialized + 1,
                missing_to = stream_seq - 1,
                "cluster: stream messages gone before this node read them; history here lacks them"
            );
        }
        let events = match events {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(stream_seq, error = %e, "cluster: unreadable stream message skipped");
                self.materialized = stream_seq;
                done.push((origin, Err(StoreError::Invalid(e.to_string()))));
                return;
            }
        };
        match store.append_at(events, seq_of(stream_seq, 0)) {
            Ok(appended) => {
                self.materialized = stream_seq;
                done.push((origin, Ok(appended)));
            }
            Err(e @ (StoreError::SessionLimit { .. } | StoreError::Invalid(_))) => {
                // The same on every retry: skipped, loudly, so the node does not stall.
                tracing::error!(stream_seq, error = %e, "cluster: stream message not stored here");
                self.materialized = stream_seq;
                done.push((origin, Err(e)));
            }
            Err(e) => {
                tracing::error!(stream_seq, error = %e, "cluster: append failed; retrying from the stream");
                self.parked.insert(stream_seq, origin);
                self.retry_from = Some(stream_seq);
                let _ = self.nats.tx.send(ToNats::Restart { from: stream_seq });
            }
        }
    }
}

impl Sequencer for ClusterSequencer {
    fn submit(&mut self, _: &mut dyn Store, batch: Vec<Pending>, origin: Origin) -> Submitted {
        if !self.nats.shared.connected() {
            let e = Self::unavailable("the NATS backbone is unreachable");
            return Submitted::Done(origin, Err(e));
        }
        if self.waiting.len() >= MAX_IN_FLIGHT {
            let e = Self::unavailable("too many publishes waiting for the stream");
            return Submitted::Done(origin, Err(e));
        }
        if batch.len() as u64 >= SEQ_STRIDE {
            let e = StoreError::Invalid(format!(
                "a batch holds at most {} events in cluster mode",
                SEQ_STRIDE - 1
            ));
            return Submitted::Done(origin, Err(e));
        }
        self.scratch.clear();
        if let Err(e) = wire::encode(&batch, &mut self.scratch) {
            return Submitted::Done(origin, Err(StoreError::Invalid(e.to_string())));
        }
        self.next_token += 1;
        let token = self.next_token;
        let publish = ToNats::Publish {
            token,
            msg_id: format!("{}-{token}", self.id_prefix),
            payload: bytes::Bytes::copy_from_slice(&self.scratch),
        };
        if self.nats.tx.send(publish).is_err() {
            let e = Self::unavailable("the NATS thread stopped");
            return Submitted::Done(origin, Err(e));
        }
        self.waiting.insert(token, origin);
        Submitted::Later
    }

    fn poll(&mut self, store: &mut dyn Store, done: &mut Vec<Completion>) {
        while let Ok(m) = self.nats.rx.try_recv() {
            match m {
                FromNats::Batch {
                    stream_seq,
                    token,
                    events,
                } => {
                    let origin = token
                        .and_then(|t| self.waiting.remove(&t))
                        .or_else(|| self.parked.remove(&stream_seq))
                        .unwrap_or(Origin::Publisher(None));
                    if let Some(from) = self.retry_from {
                        if stream_seq != from {
                            if !matches!(origin, Origin::Publisher(None)) {
                                self.parked.insert(stream_seq, origin);
                            }
                            continue;
                        }
                        self.retry_from = None;
                    }
                    if stream_seq <= self.materialized {
                        // Delivered again (a consumer recreated behind us): already here.
                        done.push((origin, Ok(Appended { events: Vec::new() })));
                        continue;
                    }
                    self.materialize(store, stream_seq, origin, events, done);
                }
                FromNats::Failed { token, error } => {
                    if let Some(origin) = self.waiting.remove(&token) {
                        tracing::debug!(%error, "cluster: publish failed");
                        done.push((origin, Err(Self::unavailable(&error))));
                    }
                }
                FromNats::Duplicate { token, stream_seq } => {
                    if let Some(origin) = self.waiting.remove(&token) {
                        tracing::debug!(stream_seq, "cluster: duplicate publish, stored once");
                        done.push((origin, Ok(Appended { events: Vec::new() })));
                    }
                }
            }
        }
        let shared = &self.nats.shared;
        if self.start_head.is_none() && shared.head_known.load(Ordering::Acquire) {
            self.start_head = Some(shared.head.load(Ordering::Acquire));
        }
        if !self.caught_up && self.start_head.is_some_and(|h| self.position() >= h) {
            self.caught_up = true;
            tracing::info!(
                stream_seq = self.materialized,
                "cluster: caught up with the stream"
            );
        }
    }

    fn status(&self) -> Option<SequencerStatus> {
        let shared = &self.nats.shared;
        let head = shared.head.load(Ordering::Acquire);
        Some(SequencerStatus {
            connected: shared.connected(),
            catching_up: !self.caught_up,
            lag: head.saturating_sub(self.position()),
            stream_seq: self.materialized,
            in_flight: self.waiting.len(),
        })
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "tracecast".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StorageConfig;
    use crate::store::{EventLog, MemoryStore};
    use std::sync::atomic::Ordering;
    use tokio::sync::mpsc;

    struct Thread {
        cmds: mpsc::UnboundedReceiver<ToNats>,
        out: mpsc::Sender<FromNats>,
        shared: Arc<client::Shared>,
    }

    /// A sequencer whose "thread" is this test: it reads the commands and writes replies.
    fn sequencer() -> (ClusterSequencer, Thread) {
        let (tx, cmds) = mpsc::unbounded_channel();
        let (out, rx) = mpsc::channel(64);
        let shared = Arc::new(client::Shared::default());
        shared.nats_up.store(true, Ordering::Release);
        shared.stream_ready.store(true, Ordering::Release);
        let handle = client::Handle {
            tx,
            rx,
            shared: shared.clone(),
        };
        (
            ClusterSequencer::new(handle, "n", 0),
            Thread { cmds, out, shared },
        )
    }

    fn ev(n: usize) -> Pending {
        let mut json_tail = vec![b' '; crate::model::SEQ_HEADROOM];
        json_tail.extend_from_slice(format!("\"n\":{n}}}").as_bytes());
        Pending {
            timestamp: n as i64,
            session: Arc::from("s"),
            agent: None,
            kind: Arc::from("T"),
            json_tail,
            headroom: crate::model::SEQ_HEADROOM,
        }
    }

    fn reply() -> (
        Origin,
        std::sync::mpsc::Receiver<Result<crate::app::PublishAck, crate::app::PublishError>>,
    ) {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        (Origin::Publisher(Some(tx)), rx)
    }

    fn published(t: &mut Thread) -> (u64, bytes::Bytes) {
        match t.cmds.try_recv() {
            Ok(ToNats::Publish { token, payload, .. }) => (token, payload),
            _ => panic!("expected a publish"),
        }
    }

    #[test]
    fn a_publish_is_answered_when_its_message_comes_back_at_stream_derived_seqs() {
        let (mut seq, mut t) = sequencer();
        let mut store = MemoryStore::new(&StorageConfig::default());
        let (origin, answer) = reply();
        assert!(matches!(
            seq.submit(&mut store, vec![ev(1), ev(2)], origin),
            Submitted::Later
        ));
        let (token, payload) = published(&mut t);
        // Another node's batch lands first, as stream message 7; ours is message 8.
        let theirs = FromNats::Batch {
            stream_seq: 7,
            token: None,
            events: Ok(vec![ev(9)]),
        };
        let ours = FromNats::Batch {
            stream_seq: 8,
            token: Some(token),
            events: wire::decode(&payload),
        };
        t.out.try_send(theirs).ok();
        t.out.try_send(ours).ok();
        let mut done = Vec::new();
        seq.poll(&mut store, &mut done);
        assert_eq!(done.len(), 2);
        let seqs: Vec<Vec<u64>> = done
            .iter()
            .map(|(_, r)| r.as_ref().unwrap().events.iter().map(|e| e.seq).collect())
            .collect();
        assert_eq!(seqs, vec![vec![700_000], vec![800_000, 800_001]]);
        assert!(
            matches!(done[0].0, Origin::Publisher(None)),
            "another node's batch"
        );
        assert!(
            matches!(done[1].0, Origin::Publisher(Some(_))),
            "ours, with its origin"
        );
        drop(answer);
        // Delivered again (a recreated consumer): not stored twice.
        t.out
            .try_send(FromNats::Batch {
                stream_seq: 8,
                token: None,
                events: Ok(vec![ev(1)]),
            })
            .ok();
        done.clear();
        seq.poll(&mut store, &mut done);
        assert!(done[0].1.as_ref().unwrap().events.is_empty());
        assert_eq!(store.next_seq(), 800_002);
        assert_eq!(seq.status().unwrap().stream_seq, 8);
    }

    #[test]
    fn without_nats_or_past_the_bound_producers_are_told_to_retry() {
        let (mut seq, mut t) = sequencer();
        let mut store = MemoryStore::new(&StorageConfig::default());
        t.shared.nats_up.store(false, Ordering::Release);
        let (origin, _a) = reply();
        match seq.submit(&mut store, vec![ev(1)], origin) {
            Submitted::Done(_, Err(StoreError::Unavailable(m))) => {
                assert!(m.contains("unreachable"), "{m}")
            }
            other => panic!("{other:?}"),
        }
        t.shared.nats_up.store(true, Ordering::Release);
        for _ in 0..MAX_IN_FLIGHT {
            let (origin, _a) = reply();
            assert!(matches!(
                seq.submit(&mut store, vec![ev(1)], origin),
                Submitted::Later
            ));
        }
        let (origin, _a) = reply();
        assert!(matches!(
            seq.submit(&mut store, vec![ev(1)], origin),
            Submitted::Done(_, Err(StoreError::Unavailable(_)))
        ));
        // A failed publish hands its origin back with the retryable error.
        let (token, _) = published(&mut t);
        t.out
            .try_send(FromNats::Failed {
                token,
                error: "no ack".into(),
            })
            .ok();
        let mut done = Vec::new();
        seq.poll(&mut store, &mut done);
        assert!(matches!(done[..], [(_, Err(StoreError::Unavailable(_)))]));
        assert_eq!(seq.status().unwrap().in_flight, MAX_IN_FLIGHT - 1);
    }

    #[test]
    fn a_node_is_catching_up_until_it_reaches_the_head_it_found() {
        let (mut seq, t) = sequencer();
        let mut store = MemoryStore::new(&StorageConfig::default());
        t.shared.head.store(2, Ordering::Release);
        t.shared.head_known.store(true, Ordering::Release);
        let mut done = Vec::new();
        seq.poll(&mut store, &mut done);
        let s = seq.status().unwrap();
        assert!(s.catching_up && s.lag == 2, "{s:?}");
        for n in 1..=2 {
            t.out
                .try_send(FromNats::Batch {
                    stream_seq: n,
                    token: None,
                    events: Ok(vec![ev(1)]),
                })
                .ok();
        }
        seq.poll(&mut store, &mut done);
        let s = seq.status().unwrap();
        assert!(!s.catching_up && s.lag == 0, "{s:?}");
    }
}
