//! The NATS client thread: async-nats in a single-threaded tokio runtime of its own.
//!
//! SPEC §1 keeps the loop free of any async runtime; the only well-kept NATS JetStream
//! client is async, so it gets a thread. It talks to the loop only through channels:
//! publishes and consumer restarts come in on an unbounded tokio channel the loop can
//! send on without blocking; consumed batches, failures and duplicates go out on a bounded
//! tokio channel the loop drains with `try_recv`, each followed by `mio::Waker::wake`. The
//! thread decodes stream messages itself, so the loop only appends and fans out.

use super::wire;
use crate::model::Pending;
use async_nats::jetstream::{self, consumer::pull::OrderedConfig, consumer::DeliverPolicy};
use bytes::Bytes;
use futures_util::StreamExt;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Batches consumed but not yet taken by the loop, at most.
const TO_LOOP: usize = 256;
/// How long a publish may wait for JetStream's ack before its producer is told to retry.
const ACK_TIMEOUT: Duration = Duration::from_secs(5);
/// How long JetStream remembers message ids for deduplication (at most the max age).
const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);
/// Pause before recreating a consumer after an error or a restart request.
const RETRY: Duration = Duration::from_millis(500);

/// What the loop asks of the thread.
pub(super) enum ToNats {
    Publish {
        token: u64,
        msg_id: String,
        payload: Bytes,
    },
    /// Consume again from this stream seq (a local append failed and is retried).
    Restart { from: u64 },
}

/// What the thread tells the loop.
pub(super) enum FromNats {
    /// One stream message, decoded; `token` when this node published it.
    Batch {
        stream_seq: u64,
        token: Option<u64>,
        events: Result<Vec<Pending>, wire::WireError>,
    },
    /// The publish failed (NATS unreachable, no ack in time); nothing acknowledged.
    Failed { token: u64, error: String },
    /// JetStream had this message id already, as stream message `stream_seq`.
    Duplicate { token: u64, stream_seq: u64 },
}

/// State the loop reads without a message.
#[derive(Debug, Default)]
pub(super) struct Shared {
    /// The client holds a connection to NATS.
    pub nats_up: AtomicBool,
    /// The stream exists and is configured.
    pub stream_ready: AtomicBool,
    /// The stream's last seq as last learned (stream info, consumer pending counts).
    pub head: AtomicU64,
    /// `head` was learned from the server at least once.
    pub head_known: AtomicBool,
    /// The oldest message the stream still held when the consumer was last created:
    /// anything before it is gone, so a node that never read it is not behind by it.
    pub first: AtomicU64,
}

impl Shared {
    pub fn connected(&self) -> bool {
        self.nats_up.load(Ordering::Acquire) && self.stream_ready.load(Ordering::Acquire)
    }
    fn raise_head(&self, seq: u64) {
        self.head.fetch_max(seq, Ordering::AcqRel);
        self.head_known.store(true, Ordering::Release);
    }
}

/// Where to connect and what the stream looks like.
#[derive(Debug, Clone)]
pub(super) struct Settings {
    pub url: String,
    pub stream: String,
    pub subject_prefix: String,
    pub max_bytes: i64,
    pub max_age: Duration,
}

pub(super) struct Handle {
    pub tx: mpsc::UnboundedSender<ToNats>,
    pub rx: mpsc::Receiver<FromNats>,
    pub shared: Arc<Shared>,
}

/// Starts the thread; it consumes from stream seq `from` on.
pub(super) fn spawn(
    settings: Settings,
    waker: Arc<mio::Waker>,
    from: u64,
) -> std::io::Result<Handle> {
    let (tx, cmds) = mpsc::unbounded_channel();
    let (out, rx) = mpsc::channel(TO_LOOP);
    let shared = Arc::new(Shared::default());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let link = Link {
        out,
        waker,
        shared: shared.clone(),
        ids: Arc::default(),
        reconnected: Arc::default(),
    };
    // Off the loop's pinned core, like every helper thread: sharing it cost fan-out a
    // third of its rate (docs/PERFORMANCE.md, cluster mode).
    crate::affinity::spawn_helper("tracecast-nats", move || {
        runtime.block_on(run(settings, cmds, link, from))
    })?;
    Ok(Handle { tx, rx, shared })
}

/// The thread's way back to the loop, shared by its tasks.
#[derive(Clone)]
struct Link {
    out: mpsc::Sender<FromNats>,
    waker: Arc<mio::Waker>,
    shared: Arc<Shared>,
    /// Message ids this node published and has not yet seen consumed, with their tokens.
    ids: Arc<Mutex<HashMap<String, u64>>>,
    /// Signalled on every reconnect: the consumer is recreated at once from where it
    /// stood instead of waiting for its missed heartbeats (seconds) to notice.
    reconnected: Arc<tokio::sync::Notify>,
}

impl Link {
    async fn send(&self, m: FromNats) {
        if self.out.send(m).await.is_ok() {
            let _ = self.waker.wake();
        }
    }
    fn take_id(&self, id: &str) -> Option<u64> {
        self.ids.lock().ok()?.remove(id)
    }
}

async fn run(s: Settings, mut cmds: mpsc::UnboundedReceiver<ToNats>, link: Link, from: u64) {
    let events = link.clone();
    let options = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(2))
        .ping_interval(Duration::from_secs(5))
        .reconnect_delay_callback(|n| Duration::from_millis((50u64 << n.min(5)).min(1000)))
        .event_callback(move |ev| {
            let link = events.clone();
            async move {
                match ev {
                    async_nats::Event::Connected => {
                        tracing::info!("cluster: connected to NATS");
                        link.shared.nats_up.store(true, Ordering::Release);
                        link.reconnected.notify_waiters();
                    }
                    async_nats::Event::Disconnected | async_nats::Event::Closed => {
                        tracing::warn!(
                            "cluster: NATS unreachable; ingest answers 503 until it is back"
                        );
                        link.shared.nats_up.store(false, Ordering::Release);
                    }
                    other => tracing::info!(event = %other, "cluster: NATS event"),
                }
                let _ = link.waker.wake();
            }
        });
    let client = match options.connect(s.url.as_str()).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, url = %s.url, "cluster: cannot use the NATS url");
            return;
        }
    };
    let js = jetstream::ContextBuilder::new()
        .timeout(ACK_TIMEOUT)
        .build(client);
    ensure_stream(&js, &s, &link).await;
    let (restart_tx, restart_rx) = watch::channel(from);
    tokio::spawn(consume(
        js.clone(),
        s.stream.clone(),
        from,
        restart_rx,
        link.clone(),
    ));
    let subject = format!("{}.events", s.subject_prefix);
    while let Some(cmd) = cmds.recv().await {
        match cmd {
            ToNats::Publish {
                token,
                msg_id,
                payload,
            } => {
                if let Ok(mut ids) = link.ids.lock() {
                    ids.insert(msg_id.clone(), token);
                }
                tokio::spawn(publish(
                    js.clone(),
                    subject.clone(),
                    msg_id,
                    token,
                    payload,
                    link.clone(),
                ));
            }
            ToNats::Restart { from } => {
                let _ = restart_tx.send(from);
            }
        }
    }
    tracing::debug!("cluster: the loop is gone; NATS thread stops");
}

/// Creates the stream, or brings its retention in line with the local one, retrying
/// until NATS answers.
async fn ensure_stream(js: &jetstream::Context, s: &Settings, link: &Link) {
    let config = jetstream::stream::Config {
        name: s.stream.clone(),
        subjects: vec![format!("{}.>", s.subject_prefix)],
        max_bytes: s.max_bytes,
        max_age: s.max_age,
        // JetStream refuses a duplicate window longer than the stream's max age.
        duplicate_window: if s.max_age.is_zero() {
            DUPLICATE_WINDOW
        } else {
            DUPLICATE_WINDOW.min(s.max_age)
        },
        storage: jetstream::stream::StorageType::File,
        ..Default::default()
    };
    let mut warned = false;
    loop {
        match js.get_or_create_stream(config.clone()).await {
            Ok(mut stream) => {
                let info = stream.info().await.ok().cloned();
                if let Some(info) = info {
                    let c = &info.config;
                    if c.max_bytes != config.max_bytes || c.max_age != config.max_age {
                        let mut want = c.clone();
                        want.max_bytes = config.max_bytes;
                        want.max_age = config.max_age;
                        match js.update_stream(want).await {
                            Ok(_) => tracing::info!(
                                stream = %s.stream,
                                max_bytes = config.max_bytes,
                                max_age_ms = config.max_age.as_millis() as u64,
                                "cluster: stream retention set to follow [storage] retention"
                            ),
                            Err(e) => {
                                tracing::warn!(error = %e, "cluster: could not update the stream's retention")
                            }
                        }
                    }
                    link.shared.raise_head(info.state.last_sequence);
                }
                link.shared.stream_ready.store(true, Ordering::Release);
                let _ = link.waker.wake();
                tracing::info!(stream = %s.stream, "cluster: stream ready");
                return;
            }
            Err(e) => {
                if !warned {
                    tracing::warn!(error = %e, stream = %s.stream, "cluster: stream not available yet; retrying");
                    warned = true;
                }
                tokio::time::sleep(RETRY).await;
            }
        }
    }
}

async fn publish(
    js: jetstream::Context,
    subject: String,
    msg_id: String,
    token: u64,
    payload: Bytes,
    link: Link,
) {
    let message = jetstream::message::PublishMessage::build()
        .payload(payload)
        .message_id(&msg_id);
    let result = match js.send_publish(subject, message).await {
        Ok(ack) => ack.await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match result {
        Ok(ack) if ack.duplicate => {
            if let Some(token) = link.take_id(&msg_id) {
                link.send(FromNats::Duplicate {
                    token,
                    stream_seq: ack.sequence,
                })
                .await;
            }
        }
        // Answered when the consumer brings the message back (it is in the stream now).
        Ok(_) => {}
        Err(error) => {
            // Absent: the consumer saw the message after all, and answered it.
            if link.take_id(&msg_id).is_some() {
                link.send(FromNats::Failed { token, error }).await;
            }
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Consumes the stream in order forever, from `from`, recreating the ordered consumer
/// after errors and when the loop asks for a restart.
async fn consume(
    js: jetstream::Context,
    stream: String,
    mut from: u64,
    mut restart: watch::Receiver<u64>,
    link: Link,
) {
    loop {
        match consume_once(&js, &stream, &mut from, &mut restart, &link).await {
            Ok(()) => {}
            Err(e) => tracing::warn!(error = %e, from, "cluster: consumer stopped; recreating"),
        }
        tokio::time::sleep(RETRY).await;
    }
}

async fn consume_once(
    js: &jetstream::Context,
    stream: &str,
    from: &mut u64,
    restart: &mut watch::Receiver<u64>,
    link: &Link,
) -> Result<(), BoxError> {
    let mut st = js.get_stream(stream).await?;
    let info = st.info().await?;
    let (first, last) = (info.state.first_sequence, info.state.last_sequence);
    link.shared.first.store(first, Ordering::Release);
    link.shared.raise_head(last);
    let _ = link.waker.wake();
    if *from < first && last >= first && *from + 1 < first {
        tracing::warn!(
            wanted = *from,
            first,
            "cluster: the stream no longer holds messages {}..{}; this node starts from {first} \
             and its history lacks what the stream dropped",
            *from,
            first - 1
        );
    }
    let deliver_policy = if *from <= 1 {
        DeliverPolicy::All
    } else {
        DeliverPolicy::ByStartSequence {
            start_sequence: *from,
        }
    };
    let consumer = st
        .create_consumer(OrderedConfig {
            deliver_policy,
            ..Default::default()
        })
        .await?;
    let mut messages = consumer.messages().await?;
    loop {
        tokio::select! {
            m = messages.next() => {
                let Some(m) = m else { return Ok(()) };
                let m = m?;
                let (stream_seq, pending) = {
                    let info = m.info()?;
                    (info.stream_sequence, info.pending)
                };
                link.shared.raise_head(stream_seq + pending);
                let token = m
                    .headers
                    .as_ref()
                    .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
                    .and_then(|id| link.take_id(id.as_str()));
                let events = wire::decode(&m.payload);
                *from = stream_seq + 1;
                link.send(FromNats::Batch { stream_seq, token, events }).await;
            }
            _ = link.reconnected.notified() => {
                tracing::info!(from = *from, "cluster: reconnected; consumer recreated");
                return Ok(());
            }
            changed = restart.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                *from = *restart.borrow_and_update();
                return Ok(());
            }
        }
    }
}
