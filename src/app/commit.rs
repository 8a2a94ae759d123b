//! The one ingest commit every front end shares, and the sequencer seam behind it.
//!
//! A front end (WebSocket `publish`, `POST /v1/events`, the in-process `Publisher`, later
//! OTLP) turns its input into validated [`Pending`] events and calls [`App::commit`] with
//! the [`Origin`] waiting for the answer. The [`Sequencer`] assigns seqs and makes the
//! batch part of the log; standalone ([`Local`]) that is the store's `append`, done at
//! once, while a cluster sequencer answers later (SPEC §11), so a commit either completes
//! inside the call or is collected by [`App::poll_commits`] on a later turn. Either way the
//! committed batch takes the same road: counted, handed to the hub (never the ingest call
//! itself), and acknowledged to its origin once durable under `fsync = "always"`.

use super::App;
use crate::config::FsyncPolicy;
use crate::hub::ConnId;
use crate::ingest::IngestError;
use crate::protocol::server as enc;
use crate::protocol::{ErrorCode, RequestId};
use crate::store::{Appended, Pending, Store, StoreError};
use bytes::Bytes;
use std::collections::VecDeque;
use std::sync::mpsc::SyncSender;
use std::time::Duration;

/// What the loop tells a publisher that waited for its batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishAck {
    pub accepted: usize,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
}

/// Why a publish did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishError {
    /// The batch was refused (the message names the event index and field).
    Rejected(String),
    /// The server has stopped.
    Closed,
    /// No answer within the timeout.
    Timeout,
}

impl std::fmt::Display for PublishError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PublishError::Rejected(m) => write!(f, "batch rejected: {m}"),
            PublishError::Closed => f.write_str("server stopped"),
            PublishError::Timeout => f.write_str("no answer from the server in time"),
        }
    }
}

impl std::error::Error for PublishError {}

/// Where an in-process publisher waits for its answer.
pub type PublishReply = SyncSender<Result<PublishAck, PublishError>>;

/// Who waits for a batch's commit, and how to answer it.
#[derive(Debug)]
pub enum Origin {
    /// A WebSocket `publish`: answered with `publish_ack` or `error`.
    Ws {
        conn: ConnId,
        rid: Option<RequestId>,
        deflate: bool,
    },
    /// `POST /v1/events`: answered with 202 or an error status.
    Http { conn: ConnId, keep_alive: bool },
    /// An HTTP front end with its own success answer (`POST /v1/traces`: OTLP's 200),
    /// released as the `Http` answer would be.
    HttpWith {
        conn: ConnId,
        keep_alive: bool,
        ok: crate::http::Response,
    },
    /// A `Publisher` call, answered on its channel when it asked to wait.
    Publisher(Option<PublishReply>),
}

/// Why a batch was not stored.
#[derive(Debug)]
pub enum CommitFailure {
    Invalid(IngestError),
    Store(StoreError),
}

impl CommitFailure {
    /// The protocol's error code and message for it (the one mapping for WebSocket).
    pub fn to_protocol(&self) -> (ErrorCode, String) {
        match self {
            CommitFailure::Invalid(e) => (ErrorCode::InvalidRequest, e.to_string()),
            CommitFailure::Store(e @ StoreError::Unavailable(_)) => {
                (ErrorCode::Unavailable, e.to_string())
            }
            CommitFailure::Store(e) => (ErrorCode::StorageError, e.to_string()),
        }
    }
}

/// What [`Sequencer::submit`] did with a batch.
#[derive(Debug)]
pub enum Submitted {
    /// Sequenced and appended now (the origin handed back with the result).
    Done(Origin, Result<Appended, StoreError>),
    /// Accepted for sequencing; the sequencer keeps the origin and the result comes
    /// from [`Sequencer::poll`].
    Later,
}

/// Where a sequencer that consumes a shared stream stands (cluster mode), for
/// `/healthz` and `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SequencerStatus {
    /// Connected to the backbone: batches can be submitted.
    pub connected: bool,
    /// Still materializing what the stream held before this node was current.
    pub catching_up: bool,
    /// Stream messages not yet materialized here.
    pub lag: u64,
    /// The last stream message materialized here.
    pub stream_seq: u64,
    /// Publishes waiting for the stream.
    pub in_flight: usize,
}

/// A finished commit, collected by the loop.
pub type Completion = (Origin, Result<Appended, StoreError>);

/// Assigns seqs to validated batches and makes them part of the log.
pub trait Sequencer {
    /// Submits one batch for `origin`. A sequencer that answers later keeps `origin` and
    /// returns it with the result from [`Sequencer::poll`].
    fn submit(&mut self, store: &mut dyn Store, batch: Vec<Pending>, origin: Origin) -> Submitted;
    /// Moves the commits that completed since the last call into `done`, in commit order.
    /// Batches that other nodes committed come with `Origin::Publisher(None)`.
    fn poll(&mut self, _store: &mut dyn Store, _done: &mut Vec<Completion>) {}
    /// Where a stream-consuming sequencer stands; `None` standalone.
    fn status(&self) -> Option<SequencerStatus> {
        None
    }
}

/// The standalone sequencer: the store's own counter, appended at once.
#[derive(Debug, Default)]
pub struct Local;

impl Sequencer for Local {
    fn submit(&mut self, store: &mut dyn Store, batch: Vec<Pending>, origin: Origin) -> Submitted {
        Submitted::Done(origin, store.append(batch))
    }
}

/// An answer for a committed batch, held until the batch is durable.
#[derive(Debug)]
pub enum Ack {
    Ws {
        conn: ConnId,
        frame: Bytes,
    },
    /// `close`: the request did not keep the connection alive, so it ends after this.
    Http {
        conn: ConnId,
        response: Vec<u8>,
        close: bool,
    },
}

/// Acknowledgements in release order, each with the seq that must be durable first.
#[derive(Debug, Default)]
pub(crate) struct Acks {
    /// Durable already: released at the end of this turn, in the order they were made.
    ready: Vec<Ack>,
    /// Waiting for their seq to be on disk (`fsync = "always"`), in seq order.
    held: VecDeque<(u64, Ack)>,
}

/// What [`App::commit`] tells the front end.
#[derive(Debug)]
pub enum Committed {
    /// Refused: answer the origin now (nothing was stored).
    Failed(CommitFailure),
    /// Stored; its answer is queued and released by [`App::take_acks`] this turn, or
    /// once durable. For HTTP the route answers with it at once when not held.
    Acked { held: bool, appended: Appended },
    /// Submitted to a sequencer that answers later.
    InFlight,
}

impl App {
    /// Validates nothing: `batch` comes from a front end's builder. Sequences, appends,
    /// routes and acknowledges it — the single commit for every way events arrive.
    pub fn commit(&mut self, batch: Vec<Pending>, origin: Origin) -> Committed {
        let submitted = self.sequencer.submit(&mut *self.store, batch, origin);
        match submitted {
            Submitted::Later => Committed::InFlight,
            Submitted::Done(origin, result) => self.complete(origin, result),
        }
    }

    /// [`Origin::HttpWith`] is [`Origin::Http`] with another success answer: split.
    fn http_with(origin: Origin) -> (Origin, Option<crate::http::Response>) {
        match origin {
            Origin::HttpWith {
                conn,
                keep_alive,
                ok,
            } => (Origin::Http { conn, keep_alive }, Some(ok)),
            o => (o, None),
        }
    }

    /// Collects commits a deferred sequencer finished since the last turn.
    pub fn poll_commits(&mut self) {
        let mut done = Vec::new();
        self.sequencer.poll(&mut *self.store, &mut done);
        for (origin, result) in done {
            if let Committed::Failed(e) = self.complete_later(origin, result) {
                tracing::debug!(error = ?e, "deferred commit failed");
            }
        }
    }

    /// Where the sequencer stands (cluster mode); `None` standalone.
    pub fn sequencer_status(&self) -> Option<SequencerStatus> {
        self.sequencer.status()
    }

    /// Counts a rejected batch (validation failed before any commit).
    pub fn rejected(&mut self, events: usize) {
        self.metrics.events_rejected += events as u64;
    }

    fn complete(&mut self, origin: Origin, result: Result<Appended, StoreError>) -> Committed {
        let (origin, ok) = Self::http_with(origin);
        let appended = match result {
            Ok(a) => a,
            Err(e) => {
                if matches!(
                    e,
                    StoreError::SessionLimit { .. } | StoreError::Unavailable(_)
                ) {
                    // A producer's doing, not the disk's: not an error of the server, and
                    // a flood of refusals must not flood the log at error level.
                    tracing::debug!(error = %e, "batch refused");
                } else {
                    tracing::error!(error = %e, "append failed; batch refused");
                }
                if let Origin::Publisher(Some(reply)) = &origin {
                    let _ = reply.try_send(Err(PublishError::Rejected(e.to_string())));
                }
                return Committed::Failed(CommitFailure::Store(e));
            }
        };
        self.on_committed(&appended);
        let last = appended.last_seq().unwrap_or(0);
        let held = match origin {
            Origin::Ws { conn, rid, deflate } => {
                self.scratch.clear();
                enc::encode_publish_ack(
                    &mut self.scratch,
                    appended.events.len(),
                    appended.first_seq().unwrap_or(0),
                    last,
                    rid.as_ref(),
                );
                let frame = self.encoder.control(deflate, &self.scratch);
                self.hold(Ack::Ws { conn, frame }, last)
            }
            // (`HttpWith` was split into `Http` above.)
            Origin::Http { conn, keep_alive }
            | Origin::HttpWith {
                conn, keep_alive, ..
            } => {
                let response = ok.unwrap_or_else(|| accepted_response(&appended));
                // A held answer is written after this request's turn, so it must carry
                // the connection's fate itself: `Connection: close` only through it.
                let held = if keep_alive {
                    response
                } else {
                    response.close()
                };
                let durable = self.is_durable(last);
                if durable {
                    // Answered by the route itself, in order with the request.
                    return Committed::Acked {
                        held: false,
                        appended,
                    };
                }
                self.acks.held.push_back((
                    last,
                    Ack::Http {
                        conn,
                        response: held.to_bytes(),
                        close: !keep_alive,
                    },
                ));
                true
            }
            Origin::Publisher(reply) => {
                if let Some(reply) = reply {
                    let _ = reply.try_send(Ok(PublishAck {
                        accepted: appended.events.len(),
                        first_seq: appended.first_seq(),
                        last_seq: appended.last_seq(),
                    }));
                }
                false
            }
        };
        Committed::Acked { held, appended }
    }

    /// A deferred completion: HTTP answers go through the held queue in any case, since
    /// the request's turn is over.
    fn complete_later(
        &mut self,
        origin: Origin,
        result: Result<Appended, StoreError>,
    ) -> Committed {
        let (origin, ok) = Self::http_with(origin);
        match origin {
            Origin::Http { conn, keep_alive } => {
                let (last, response) = match &result {
                    Ok(a) => {
                        self.on_committed(a);
                        let ok = ok.unwrap_or_else(|| accepted_response(a));
                        (a.last_seq().unwrap_or(0), ok)
                    }
                    Err(e) => (0, store_failure_response(e)),
                };
                let response = if keep_alive {
                    response
                } else {
                    response.close()
                };
                let ack = Ack::Http {
                    conn,
                    response: response.to_bytes(),
                    close: !keep_alive,
                };
                if result.is_ok() {
                    self.hold(ack, last);
                } else {
                    self.acks.ready.push(ack);
                }
                match result {
                    Ok(appended) => Committed::Acked {
                        held: true,
                        appended,
                    },
                    Err(e) => Committed::Failed(CommitFailure::Store(e)),
                }
            }
            Origin::Ws { conn, rid, deflate } if result.is_err() => {
                let (code, msg) = match result.as_ref().err() {
                    Some(e @ StoreError::Unavailable(_)) => (ErrorCode::Unavailable, e.to_string()),
                    Some(e) => (ErrorCode::StorageError, e.to_string()),
                    None => (ErrorCode::StorageError, String::new()),
                };
                self.scratch.clear();
                enc::encode_error(
                    &mut self.scratch,
                    code,
                    &msg,
                    None,
                    self.now_ms,
                    rid.as_ref(),
                );
                let frame = self.encoder.control(deflate, &self.scratch);
                self.acks.ready.push(Ack::Ws { conn, frame });
                match result {
                    Err(e) => Committed::Failed(CommitFailure::Store(e)),
                    Ok(_) => Committed::InFlight,
                }
            }
            origin => self.complete(origin, result),
        }
    }

    /// What every committed batch does, however it was sequenced: counted, then routed.
    fn on_committed(&mut self, appended: &Appended) {
        self.metrics.events_ingested += appended.events.len() as u64;
        self.hub.publish(&appended.events);
        if self.ingested_at.is_none() {
            self.ingested_at = Some(self.now);
        }
        let timeout = self.config.batch_timeout_ms;
        if timeout > 0 && self.batch_deadline.is_none() {
            let at = self.now + Duration::from_millis(timeout);
            self.batch_deadline = Some(at);
            self.timers.schedule(at, super::timer::Timer::BatchDeadline);
        }
    }

    fn is_durable(&self, seq: u64) -> bool {
        self.config.storage.fsync != FsyncPolicy::Always || self.store.durable_seq() >= seq
    }

    /// Queues `ack`, held until `seq` is durable under `fsync = "always"`; true when held.
    fn hold(&mut self, ack: Ack, seq: u64) -> bool {
        if !self.is_durable(seq) {
            self.acks.held.push_back((seq, ack));
            return true;
        }
        self.acks.ready.push(ack);
        false
    }

    /// Acknowledgements whose batches are now durable, in order.
    pub fn take_acks(&mut self, out: &mut Vec<Ack>) {
        out.append(&mut self.acks.ready);
        let durable = self.store.durable_seq();
        while let Some((seq, _)) = self.acks.held.front() {
            if *seq > durable {
                break;
            }
            if let Some((_, ack)) = self.acks.held.pop_front() {
                out.push(ack);
            }
        }
    }
}

/// Seconds a producer refused for `max_sessions` is told to wait: the retention timer's
/// period, the soonest the session count can go down.
const SESSION_LIMIT_RETRY_SECS: u64 = 10;

/// The HTTP answer to a batch the store refused: `503` with `Retry-After` when the refusal
/// passes (the session limit), else `500`. The one mapping of [`StoreError`] to HTTP.
pub fn store_failure_response(e: &StoreError) -> crate::http::Response {
    match e {
        StoreError::SessionLimit { .. } => crate::http::Response::error(503, &e.to_string())
            .header("Retry-After", &SESSION_LIMIT_RETRY_SECS.to_string()),
        StoreError::Unavailable(_) => {
            crate::http::Response::error(503, &e.to_string()).header("Retry-After", "1")
        }
        _ => crate::http::Response::error(500, &format!("storage error: {e}")),
    }
}

/// `202 {"accepted":N,"firstSeq":…,"lastSeq":…}`.
pub fn accepted_response(appended: &Appended) -> crate::http::Response {
    use crate::protocol::json::write_u64;
    let mut b = Vec::with_capacity(64);
    b.extend_from_slice(b"{\"accepted\":");
    write_u64(&mut b, appended.events.len() as u64);
    b.extend_from_slice(b",\"firstSeq\":");
    write_u64(&mut b, appended.first_seq().unwrap_or(0));
    b.extend_from_slice(b",\"lastSeq\":");
    write_u64(&mut b, appended.last_seq().unwrap_or(0));
    b.push(b'}');
    crate::http::Response::new(202).body("application/json", b)
}

impl App {
    /// The in-process `Publisher` front end: a raw JSON body (object, array or NDJSON)
    /// from another thread, answered on `reply` when the caller waits.
    pub fn publish_body(&mut self, body: &mut [u8], reply: Option<PublishReply>) {
        let mut buffers = std::mem::take(&mut self.buffers);
        self.ingest.now_ms = self.now_ms;
        let validated = crate::ingest::with_body(body, &mut buffers, |parsed| {
            let values = parsed?;
            let r = crate::ingest::validate(values, &mut self.ingest);
            if r.is_err() {
                self.rejected(values.len());
            }
            r
        });
        self.buffers = buffers;
        match validated {
            Ok(pending) => {
                // Answered by the commit (now, or when a deferred sequencer completes).
                let _ = self.commit(pending, Origin::Publisher(reply));
            }
            Err(e) => {
                if let Some(reply) = reply {
                    let _ = reply.try_send(Err(PublishError::Rejected(e.to_string())));
                }
            }
        }
    }
}
