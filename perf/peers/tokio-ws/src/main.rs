//! tokio + tokio-tungstenite peer for the tracecast benchmark: the live job of
//! perf/peers/node-ws/server.js, written the way a Rust developer reaching for the usual
//! async stack would, so the comparison is against good tokio code.
//!
//! - One `tokio::sync::broadcast` channel per session. A publish is validated whole, each
//!   event gets `"seq"` spliced in as its first field (the raw text is kept, as Node
//!   keeps the publisher's order), and every 50 events become one `trace_batch` frame
//!   serialized once; subscribers receive clones of the same `Bytes`.
//! - Each connection is one task: it reads client messages and forwards its sessions'
//!   frames to the socket (`select!`). A subscriber that falls more than the channel's
//!   capacity behind gets an `events_dropped` notice for what it lost (broadcast's
//!   `Lagged`), the equivalent of the other servers' drop-oldest backpressure.
//! - `connection`, `session_info` + `initial_traces` (last 100 events),
//!   `unsubscribe_session`, `publish_ack`, `heartbeat_response`; no deflate.
//! - A current-thread runtime: one core, as tracecast's loop and Node's event loop.
//!
//! Usage: tokio-ws-peer [PORT]   (BATCH_SIZE, CHANNEL_FRAMES in the environment)

use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

const RECENT: usize = 100;
const MAX_EVENT_BYTES: usize = 65536;

struct Session {
    id_json: String,
    tx: broadcast::Sender<Frame>,
    recent: VecDeque<String>,
    event_count: u64,
    last_seq: u64,
    first_ts: Option<i64>,
    last_ts: Option<i64>,
}

/// One encoded batch, shared by every receiver.
#[derive(Clone)]
struct Frame {
    text: Utf8Bytes,
}

struct State {
    seq: u64,
    next_client: u64,
    batch: usize,
    channel: usize,
    sessions: HashMap<String, Session>,
}

impl State {
    fn session(&mut self, id: &str) -> &mut Session {
        let channel = self.channel;
        self.sessions
            .entry(id.to_owned())
            .or_insert_with(|| Session {
                id_json: serde_json::to_string(id).unwrap_or_default(),
                tx: broadcast::channel(channel).0,
                recent: VecDeque::with_capacity(RECENT),
                event_count: 0,
                last_seq: 0,
                first_ts: None,
                last_ts: None,
            })
    }
}

type Shared = Rc<RefCell<State>>;

#[derive(Deserialize)]
struct ClientMsg<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<&'a str>,
    #[serde(rename = "sessionId", borrow)]
    session_id: Option<&'a str>,
    #[serde(borrow)]
    events: Option<Vec<&'a RawValue>>,
    #[serde(rename = "requestId", borrow)]
    request_id: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct EventHead<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<&'a str>,
    #[serde(rename = "sessionId", borrow)]
    session_id: Option<std::borrow::Cow<'a, str>>,
    seq: Option<serde::de::IgnoredAny>,
    timestamp: Option<i64>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn text(s: String) -> Message {
    Message::Text(s.into())
}

fn error(code: &str, message: &str, request_id: Option<&RawValue>) -> Message {
    let rid = request_id
        .map(|r| format!(",\"requestId\":{}", r.get()))
        .unwrap_or_default();
    text(format!(
        "{{\"type\":\"error\",\"error\":{{\"code\":\"{code}\",\"message\":{}}}{rid},\"timestamp\":{}}}",
        serde_json::to_string(message).unwrap_or_default(),
        now_ms()
    ))
}

/// Validates and stores a publish, sends its frames; the reply for the publisher.
fn publish(state: &Shared, events: &[&RawValue], request_id: Option<&RawValue>) -> Message {
    if events.is_empty() {
        return error("invalid_message", "publish needs events", request_id);
    }
    let now = now_ms();
    let mut heads = Vec::with_capacity(events.len());
    for (i, e) in events.iter().enumerate() {
        let raw = e.get();
        let head: EventHead = match serde_json::from_str(raw) {
            Ok(h) if raw.starts_with('{') => h,
            _ => {
                return error(
                    "invalid_message",
                    &format!("event {i}: must be an object"),
                    request_id,
                )
            }
        };
        let bad = match (&head.kind, &head.session_id) {
            (Some(k), _) if k.is_empty() || k.len() > 64 => Some("type"),
            (None, _) => Some("type"),
            (_, Some(s)) if s.is_empty() || s.len() > 256 => Some("sessionId"),
            (_, None) => Some("sessionId"),
            _ if head.seq.is_some() => Some("seq (assigned by the server)"),
            _ if raw.len() > MAX_EVENT_BYTES => Some("too large"),
            _ => None,
        };
        if let Some(bad) = bad {
            return error("invalid_message", &format!("event {i}: {bad}"), request_id);
        }
        heads.push(head);
    }
    let mut st = state.borrow_mut();
    let first_seq = st.seq + 1;
    let batch = st.batch;
    // Events of one publish, grouped per session in order, become frames of `batch`.
    let mut pending: Vec<(String, Vec<String>)> = Vec::new();
    for (e, head) in events.iter().zip(&heads) {
        st.seq += 1;
        let n = st.seq;
        let raw = e.get().trim();
        let body = raw.get(1..).unwrap_or("}").trim_start();
        let ts = head.timestamp.unwrap_or(now);
        let line = match (head.timestamp.is_some(), body.starts_with('}')) {
            (true, true) => format!("{{\"seq\":{n}}}"),
            (true, false) => format!("{{\"seq\":{n},{body}"),
            (false, true) => format!("{{\"seq\":{n},\"timestamp\":{now}}}"),
            (false, false) => format!("{{\"seq\":{n},\"timestamp\":{now},{body}"),
        };
        let sid = head.session_id.as_deref().unwrap_or_default();
        let s = st.session(sid);
        if s.recent.len() == RECENT {
            s.recent.pop_front();
        }
        s.recent.push_back(line.clone());
        s.event_count += 1;
        s.last_seq = n;
        s.first_ts.get_or_insert(ts);
        s.last_ts = Some(ts);
        match pending.iter_mut().find(|(id, _)| id == sid) {
            Some((_, lines)) => lines.push(line),
            None => pending.push((sid.to_owned(), vec![line])),
        }
    }
    let last_seq = st.seq;
    for (sid, lines) in pending {
        let s = st.session(&sid);
        for chunk in lines.chunks(batch) {
            let frame = format!(
                "{{\"type\":\"trace_batch\",\"sessionId\":{},\"events\":[{}],\"compression\":\"none\",\"timestamp\":{now}}}",
                s.id_json,
                chunk.join(",")
            );
            // No receivers is not an error: nobody is subscribed.
            let _ = s.tx.send(Frame {
                text: Utf8Bytes::from(frame),
            });
        }
    }
    let rid = request_id
        .map(|r| format!(",\"requestId\":{}", r.get()))
        .unwrap_or_default();
    text(format!(
        "{{\"type\":\"publish_ack\",\"count\":{},\"firstSeq\":{first_seq},\"lastSeq\":{last_seq}{rid}}}",
        events.len()
    ))
}

async fn connection(state: Shared, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let Ok(ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    let (mut sink, mut source) = ws.split();
    let client_id = {
        let mut st = state.borrow_mut();
        st.next_client += 1;
        st.next_client
    };
    let batch = state.borrow().batch;
    let hello = format!(
        "{{\"type\":\"connection\",\"clientId\":\"c-{client_id}\",\"serverInfo\":{{\"version\":\"0.0.0-tokio-peer\",\
         \"capabilities\":[\"publish\",\"subscribe_session\"],\"limits\":{{\"maxMessageSize\":1048576,\
         \"batchSize\":{batch},\"maxEventBytes\":{MAX_EVENT_BYTES}}},\"auth\":false,\"binaryProtocol\":false}},\"timestamp\":{}}}",
        now_ms()
    );
    if sink.send(text(hello)).await.is_err() {
        return;
    }
    // This connection's subscriptions: session id and its receiver.
    let mut subs: Vec<(String, broadcast::Receiver<Frame>)> = Vec::new();
    loop {
        // Wait for a client message or a frame of any subscribed session.
        let ev = {
            let next_frame = async {
                match subs.as_mut_slice() {
                    [] => std::future::pending().await,
                    [(_, rx)] => (0, rx.recv().await),
                    many => {
                        let futs = many
                            .iter_mut()
                            .enumerate()
                            .map(|(i, (_, rx))| Box::pin(async move { (i, rx.recv().await) }));
                        futures_util::future::select_all(futs).await.0
                    }
                }
            };
            tokio::select! {
                m = source.next() => Ev::Msg(m),
                (i, r) = next_frame => Ev::Frame(i, r),
            }
        };
        match ev {
            Ev::Msg(msg) => {
                let data = match msg {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                    Some(Ok(_)) => continue,
                };
                let reply = match serde_json::from_str::<ClientMsg>(data.as_str()) {
                    Err(_) => error("invalid_message", "not a JSON object", None),
                    Ok(m) => match m.kind {
                        Some("publish") => publish(&state, m.events.as_deref().unwrap_or_default(), m.request_id),
                        Some("subscribe_session") => match m.session_id {
                            Some(sid) if !sid.is_empty() => {
                                let (info, initial) = subscribe(&state, sid, &mut subs);
                                if sink.feed(text(info)).await.is_err() {
                                    return;
                                }
                                text(initial)
                            }
                            _ => error("invalid_request", "sessionId required", m.request_id),
                        },
                        Some("unsubscribe_session") => {
                            let sid = m.session_id.unwrap_or_default();
                            subs.retain(|(id, _)| id != sid);
                            text(format!(
                                "{{\"type\":\"unsubscribed\",\"sessionId\":{}}}",
                                serde_json::to_string(sid).unwrap_or_default()
                            ))
                        }
                        Some("heartbeat") => text(format!(
                            "{{\"type\":\"heartbeat_response\",\"timestamp\":{},\"clientMetrics\":{{}}}}",
                            now_ms()
                        )),
                        other => error(
                            "unknown_message_type",
                            &format!("unknown type {}", other.unwrap_or("(none)")),
                            m.request_id,
                        ),
                    },
                };
                if sink.send(reply).await.is_err() {
                    return;
                }
            }
            Ev::Frame(i, first) => {
                let Some((sid, rx)) = subs.get_mut(i) else {
                    continue;
                };
                match first {
                    Ok(f) => {
                        // Everything ready now goes out with one flush.
                        let mut more = rx.try_recv_or_lagged().unwrap_or_default();
                        if sink.feed(Message::Text(f.text)).await.is_err() {
                            return;
                        }
                        for f in more.drain(..) {
                            if sink.feed(Message::Text(f.text)).await.is_err() {
                                return;
                            }
                        }
                        if sink.flush().await.is_err() {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(lost)) => {
                        let note = format!(
                            "{{\"type\":\"events_dropped\",\"sessionId\":{},\"frames\":{lost}}}",
                            serde_json::to_string(sid.as_str()).unwrap_or_default()
                        );
                        if sink.send(text(note)).await.is_err() {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        subs.remove(i);
                    }
                }
            }
        }
    }
}

enum Ev {
    Msg(Option<Result<Message, tokio_tungstenite::tungstenite::Error>>),
    Frame(usize, Result<Frame, broadcast::error::RecvError>),
}

/// Subscribes and returns `session_info` and `initial_traces`.
fn subscribe(
    state: &Shared,
    sid: &str,
    subs: &mut Vec<(String, broadcast::Receiver<Frame>)>,
) -> (String, String) {
    let mut st = state.borrow_mut();
    let s = st.session(sid);
    subs.retain(|(id, _)| id != sid);
    subs.push((sid.to_owned(), s.tx.subscribe()));
    let ts = |t: Option<i64>| t.map_or("null".into(), |t| t.to_string());
    let info = format!(
        "{{\"type\":\"session_info\",\"session\":{{\"id\":{},\"eventCount\":{},\"firstTimestamp\":{},\"lastTimestamp\":{},\"lastSeq\":{}}}}}",
        s.id_json,
        s.event_count,
        ts(s.first_ts),
        ts(s.last_ts),
        s.last_seq
    );
    let traces: Vec<&str> = s.recent.iter().map(String::as_str).collect();
    let initial = format!(
        "{{\"type\":\"initial_traces\",\"sessionId\":{},\"traces\":[{}]}}",
        s.id_json,
        traces.join(",")
    );
    (info, initial)
}

/// Draining a receiver after it woke: everything ready now (so one wake writes many
/// frames with one flush), or the number of frames lost to lag.
trait Drain {
    fn try_recv_or_lagged(&mut self) -> Result<Vec<Frame>, u64>;
}

impl Drain for broadcast::Receiver<Frame> {
    fn try_recv_or_lagged(&mut self) -> Result<Vec<Frame>, u64> {
        let mut out = Vec::new();
        loop {
            match self.try_recv() {
                Ok(f) => out.push(f),
                Err(broadcast::error::TryRecvError::Lagged(n)) => return Err(n),
                Err(_) => return Ok(out),
            }
        }
    }
}

fn main() {
    let port: u16 = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("PORT").ok())
        .and_then(|p| p.parse().ok())
        .unwrap_or(8091);
    let env = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let state: Shared = Rc::new(RefCell::new(State {
        seq: 0,
        next_client: 0,
        batch: env("BATCH_SIZE", 50),
        channel: env("CHANNEL_FRAMES", 1024),
        sessions: HashMap::new(),
    }));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
        eprintln!("tokio-ws peer listening on ws://127.0.0.1:{port}/ws");
        loop {
            if let Ok((stream, _)) = listener.accept().await {
                tokio::task::spawn_local(connection(state.clone(), stream));
            }
        }
    });
}
