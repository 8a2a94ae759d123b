//! Hostile clients against the real binary (SPEC §8, "Hostile clients"): control-frame
//! floods and the backlogs they leave, trickled and unfinished HTTP requests, too many
//! connections in the HTTP phase, the descriptor limit, many sessions, many
//! subscriptions, unread history, and numbers no f64 holds.
//!
//! Each attack runs beside a well-behaved watcher (`common::Watcher`) whose heartbeat
//! round trip must stay short, and is judged on what a user of the server would see:
//! its memory, its CPU, the answer or the close code the attacker gets, and whether the
//! others are still served. Every figure goes into the failure message, so one run shows
//! the whole picture. The box is shared and the server is a debug build: bounds are
//! loose enough for that and still far below what the attacks cost an unprotected loop.

mod common;
use common::*;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// One attack at a time: each test measures a server's CPU and a watcher's round trip,
/// which a second attack running on the same two cores would disturb. Tests in one
/// binary run in parallel by default, so each holds this lock for its whole run.
static ONE_ATTACK_AT_A_TIME: Mutex<()> = Mutex::new(());

fn alone() -> MutexGuard<'static, ()> {
    // A test that failed while holding the lock poisons it; the next one may still run.
    ONE_ATTACK_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What a watcher's heartbeat round trip may cost while an attack runs.
const RTT_MEDIAN: Duration = Duration::from_millis(50);
const RTT_MAX: Duration = Duration::from_millis(250);
/// KiB in a MiB (RSS figures are in KiB).
const MIB: u64 = 1024;

// ───────────────────────────── reporting ─────────────────────────────

/// Every figure an attack produced and every bound it broke.
struct Report {
    attack: &'static str,
    figures: Vec<String>,
    broken: Vec<String>,
}

impl Report {
    fn new(attack: &'static str) -> Report {
        Report {
            attack,
            figures: Vec::new(),
            broken: Vec::new(),
        }
    }

    fn figure(&mut self, f: impl Into<String>) {
        self.figures.push(f.into());
    }

    /// Records `what` as broken unless `ok`.
    fn expect(&mut self, ok: bool, what: impl Into<String>) {
        if !ok {
            self.broken.push(what.into());
        }
    }

    fn rss(&mut self, growth_kb: u64, bound_mib: u64) {
        self.figure(format!("RSS growth {:.1} MiB", growth_kb as f64 / 1024.0));
        self.expect(
            growth_kb < bound_mib * MIB,
            format!(
                "RSS grew by {:.1} MiB (bound {bound_mib} MiB)",
                growth_kb as f64 / 1024.0
            ),
        );
    }

    fn rtt(&mut self, rtt: &Rtt) {
        self.figure(rtt.summary());
        if let Err(e) = rtt.check(RTT_MEDIAN, RTT_MAX) {
            self.broken.push(format!(
                "{e} (bounds: median < {RTT_MEDIAN:?}, max < {RTT_MAX:?})"
            ));
        }
    }

    fn finish(self) {
        assert!(
            self.broken.is_empty(),
            "{}: {}\n  figures: {}",
            self.attack,
            self.broken.join("; "),
            self.figures.join("; ")
        );
        eprintln!("{}: ok — {}", self.attack, self.figures.join("; "));
    }
}

// ───────────────────────────── raw sockets ─────────────────────────────

fn sock_addr(s: &TestServer) -> SocketAddr {
    s.addr.parse().expect("server address")
}

/// Reads server frames from a raw connection, with a deadline on every wait and without
/// moving the buffer on each frame (a flood's answers can be megabytes).
struct Frames {
    stream: TcpStream,
    buf: Vec<u8>,
    pos: usize,
    /// How the connection ended, once it did: "EOF" or the error.
    ended: Option<String>,
}

impl Frames {
    fn new(raw: Raw) -> Frames {
        Frames {
            stream: raw.stream,
            buf: raw.buf,
            pos: 0,
            ended: None,
        }
    }

    /// The next server frame `(opcode, payload)`; `None` at the deadline or the end.
    fn next(&mut self, deadline: Instant) -> Option<(u8, Vec<u8>)> {
        loop {
            if let Some((op, payload, used)) = parse_server_frame(&self.buf[self.pos..]) {
                self.pos += used;
                return Some((op, payload));
            }
            if self.ended.is_some() {
                return None;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            if self.pos > 0 {
                self.buf.drain(..self.pos);
                self.pos = 0;
            }
            let _ = self
                .stream
                .set_read_timeout(Some(left.min(Duration::from_millis(200))));
            let mut tmp = [0u8; 65536];
            match self.stream.read(&mut tmp) {
                Ok(0) => self.ended = Some("EOF".into()),
                Ok(n) => self.buf.extend_from_slice(&tmp[..n]),
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(e) => self.ended = Some(e.to_string()),
            }
        }
    }

    /// The next JSON text message before the deadline (other frames skipped).
    fn next_json(&mut self, deadline: Instant) -> Option<Value> {
        while let Some((op, p)) = self.next(deadline) {
            if op == 0x1 {
                return serde_json::from_slice(&p).ok();
            }
        }
        None
    }
}

/// One unmasked server frame at the start of `b`: opcode, payload, bytes used.
fn parse_server_frame(b: &[u8]) -> Option<(u8, Vec<u8>, usize)> {
    let (&b0, &b1) = (b.first()?, b.get(1)?);
    let (head, len): (usize, usize) = match b1 & 0x7f {
        126 => (4, u16::from_be_bytes([*b.get(2)?, *b.get(3)?]) as usize),
        127 => (
            10,
            u64::from_be_bytes(b.get(2..10)?.try_into().ok()?) as usize,
        ),
        n => (2, n as usize),
    };
    let payload = b.get(head..head.checked_add(len)?)?;
    Some((b0 & 0x0f, payload.to_vec(), head + len))
}

/// What came back on a flooded connection.
#[derive(Default)]
struct Replies {
    pongs: u64,
    texts: u64,
    last_pong: Vec<u8>,
    close: Option<u16>,
}

impl Replies {
    fn describe(&self, ended: &Option<String>) -> String {
        format!(
            "read back {} pongs, {} text frames, close {}, connection {}",
            self.pongs,
            self.texts,
            self.close.map_or("none".into(), |c| c.to_string()),
            ended.as_deref().unwrap_or("still open")
        )
    }
}

/// Reads what the server sent until `done` holds, a close frame, the end, or `within`.
fn read_replies(f: &mut Frames, within: Duration, done: impl Fn(&Replies) -> bool) -> Replies {
    let deadline = Instant::now() + within;
    let mut r = Replies::default();
    while let Some((op, p)) = f.next(deadline) {
        match op {
            0xA => {
                r.pongs += 1;
                r.last_pong = p;
            }
            0x1 | 0x2 => r.texts += 1,
            0x8 => {
                r.close = (p.len() >= 2).then(|| u16::from_be_bytes([p[0], p[1]]));
                break;
            }
            _ => {}
        }
        if done(&r) {
            break;
        }
    }
    r
}

/// A masked ping frame with this payload.
fn ping(payload: &[u8]) -> Vec<u8> {
    let key = [0x0f, 0x1e, 0x2d, 0x3c];
    let mut f = vec![0x89, 0x80 | payload.len() as u8];
    f.extend_from_slice(&key);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    f
}

/// Writes `count` empty masked pings in 60 KB writes and never reads. Stops when all
/// are written, the socket fails (the server closed it), or `budget` runs out (the
/// server stopped reading). Returns the pings written and why it stopped.
fn ping_flood(stream: &mut TcpStream, count: usize, budget: Duration) -> (usize, String) {
    const PER_WRITE: usize = 10_000;
    let block = ping(b"").repeat(PER_WRITE);
    let frame = block.len() / PER_WRITE;
    let total = count * frame;
    let deadline = Instant::now() + budget;
    let _ = stream.set_write_timeout(Some(Duration::from_millis(100)));
    let mut written = 0usize;
    while written < total {
        if Instant::now() >= deadline {
            return (
                written / frame,
                format!("stopped after {budget:?}: the server stopped reading"),
            );
        }
        // Always restart at a frame boundary of the block: it repeats every frame.
        let off = written % block.len();
        let end = block.len().min(off + (total - written));
        match stream.write(&block[off..end]) {
            Ok(0) => return (written / frame, "socket closed".into()),
            Ok(n) => written += n,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut
                    || e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return (written / frame, format!("write failed: {e}")),
        }
    }
    (count, "all written".into())
}

/// Upgrades, subscribes to `session` and waits for its `session_info`.
fn raw_subscriber(addr: &str, session: &str) -> Frames {
    let mut f = Frames::new(Raw::upgrade(addr));
    let sub = json!({"type": "subscribe_session", "sessionId": session}).to_string();
    f.stream
        .write_all(&masked_text(sub.as_bytes()))
        .expect("send subscribe");
    let deadline = Instant::now() + WAIT;
    loop {
        let v = f
            .next_json(deadline)
            .expect("session_info before the flood");
        if v["type"] == "session_info" {
            return f;
        }
    }
}

/// How a plain HTTP exchange on a raw socket ended.
struct Answer {
    bytes: Vec<u8>,
    /// "EOF", an error, or "timeout".
    ended: String,
    after: Duration,
}

impl Answer {
    fn status_line(&self) -> String {
        let line = self.bytes.split(|b| *b == b'\r').next().unwrap_or_default();
        String::from_utf8_lossy(line).to_string()
    }

    fn status(&self) -> Option<u16> {
        let line = self.status_line();
        let mut it = line.split_whitespace();
        (it.next()? == "HTTP/1.1").then_some(())?;
        it.next()?.parse().ok()
    }

    fn closed(&self) -> bool {
        self.ended != "timeout"
    }

    fn describe(&self) -> String {
        let shown = if self.bytes.is_empty() {
            "nothing".to_string()
        } else {
            format!("{:?}", self.status_line())
        };
        format!("{shown}, then {} after {:?}", self.ended, self.after)
    }
}

/// Reads from `s` until EOF, an error, `deadline`, or `stop` holds on what came.
fn read_answer(
    s: &mut TcpStream,
    t0: Instant,
    deadline: Instant,
    stop: fn(&[u8]) -> bool,
) -> Answer {
    let mut bytes = Vec::new();
    let mut tmp = [0u8; 65536];
    let ended = loop {
        if stop(&bytes) {
            break "stopped reading".to_string();
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break "timeout".to_string();
        }
        let _ = s.set_read_timeout(Some(left));
        match s.read(&mut tmp) {
            Ok(0) => break "EOF".to_string(),
            Ok(n) => bytes.extend_from_slice(&tmp[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => break e.to_string(),
        }
    };
    Answer {
        bytes,
        ended,
        after: t0.elapsed(),
    }
}

fn never(_: &[u8]) -> bool {
    false
}

fn head_complete(b: &[u8]) -> bool {
    b.windows(4).any(|w| w == b"\r\n\r\n")
}

/// True when nothing at all has arrived on `s` (checked without waiting).
fn nothing_arrived(s: &TcpStream) -> bool {
    let _ = s.set_nonblocking(true);
    let mut one = [0u8; 1];
    let quiet = matches!(s.peek(&mut one), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
    let _ = s.set_nonblocking(false);
    quiet
}

/// A connection that sends the start of a request head and nothing more.
fn slowloris(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
    s.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\n")?;
    Ok(s)
}

/// The status of a WebSocket upgrade answered within `within` (Err: no answer).
fn upgrade_status(addr: SocketAddr, within: Duration) -> Result<u16, String> {
    let t0 = Instant::now();
    let mut s = TcpStream::connect_timeout(&addr, within).map_err(|e| e.to_string())?;
    let req = format!(
        "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let a = read_answer(&mut s, t0, t0 + within, head_complete);
    a.status().ok_or_else(|| a.describe())
}

/// Retries an upgrade until it is answered 101, for at most `within`.
fn upgrade_within(addr: SocketAddr, within: Duration) -> Result<Duration, String> {
    let t0 = Instant::now();
    let mut last = String::new();
    while t0.elapsed() < within {
        let left = within.saturating_sub(t0.elapsed());
        match upgrade_status(addr, left) {
            Ok(101) => return Ok(t0.elapsed()),
            Ok(code) => last = format!("HTTP {code}"),
            Err(e) => last = e,
        }
        std::thread::sleep(Duration::from_millis(20)); // between bounded retries
    }
    Err(format!("no 101 within {within:?} (last answer: {last})"))
}

/// One timed HTTP exchange (fresh connection, `Connection: close`).
fn timed_http(s: &TestServer, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>, Duration) {
    let t0 = Instant::now();
    let (status, _, b) = s.http(method, path, &[], body);
    (status, b, t0.elapsed())
}

/// `POST /v1/events` with a JSON body on a fresh connection: the status and the round
/// trip, or why there was no answer within `within`.
fn post_within(addr: SocketAddr, body: &[u8], within: Duration) -> Result<(u16, Duration), String> {
    let t0 = Instant::now();
    let mut c = TcpStream::connect_timeout(&addr, within).map_err(|e| e.to_string())?;
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    c.write_all(head.as_bytes()).map_err(|e| e.to_string())?;
    c.write_all(body).map_err(|e| e.to_string())?;
    let a = read_answer(&mut c, t0, t0 + within, head_complete);
    match a.status() {
        Some(st) => Ok((st, a.after)),
        None => Err(format!("no answer: {}", a.describe())),
    }
}

/// Posts NDJSON lines `{"type":"T","sessionId":"<prefix><i>"}` for `range`,
/// `per_body` lines a request.
fn post_one_event_sessions(
    s: &TestServer,
    prefix: &str,
    range: std::ops::Range<usize>,
    per_body: usize,
) {
    let ids: Vec<usize> = range.collect();
    for chunk in ids.chunks(per_body) {
        let body: String = chunk
            .iter()
            .map(|i| format!("{{\"type\":\"T\",\"sessionId\":\"{prefix}{i}\"}}\n"))
            .collect();
        let (st, _, b) = s.http(
            "POST",
            "/v1/events",
            &[("Content-Type", "application/x-ndjson")],
            body.as_bytes(),
        );
        assert_eq!(st, 202, "ingest: {}", String::from_utf8_lossy(&b));
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

// ───────────────────────────── control-frame floods ─────────────────────────────

/// 2,000,000 empty pings on one connection that never reads: with the default rate
/// limit (control frames count against it) the flooder is closed with 1008 long before
/// the end, its unanswered pongs never pile up, and the watcher notices nothing.
#[test]
fn ping_flood_is_bounded() {
    let _alone = alone();
    let s = TestServer::start("");
    let watcher = Watcher::start(&s.addr, None);
    let mem = RssPeak::start(&s);
    let mut f = Frames::new(Raw::upgrade(&s.addr));
    let (sent, why) = ping_flood(&mut f.stream, 2_000_000, Duration::from_secs(10));
    let replies = read_replies(&mut f, Duration::from_secs(3), |_| false);
    let growth = mem.growth_kb();
    let rtt = watcher.stop();

    let mut r = Report::new("ping flood, default rate limits");
    r.figure(format!("{sent} pings written ({why})"));
    r.figure(replies.describe(&f.ended));
    r.expect(
        replies.close == Some(1008),
        format!(
            "the flooder was not closed with 1008 ({})",
            replies.describe(&f.ended)
        ),
    );
    r.rss(growth, 64);
    r.rtt(&rtt);
    r.finish();
}

/// The same flood with rate limits off: nothing closes the flooder, so only coalesced
/// pongs (RFC 6455 §5.5.3: answering the most recent ping is enough) keep memory flat.
/// The last ping still gets its pong, and once the flooder is gone the memory is back.
#[test]
fn ping_flood_without_rate_limits_is_bounded() {
    let _alone = alone();
    let s = TestServer::start("[rate_limit]\nenabled = false\n");
    let watcher = Watcher::start(&s.addr, None);
    let mem = RssPeak::start(&s);
    let before_kb = mem.baseline_kb;
    let mut f = Frames::new(Raw::upgrade(&s.addr));
    let (sent, why) = ping_flood(&mut f.stream, 2_000_000, Duration::from_secs(10));
    let last_sent = f.stream.write_all(&ping(b"last-ping")).is_ok();
    let replies = read_replies(&mut f, Duration::from_secs(5), |r| {
        r.last_pong == b"last-ping"
    });
    let growth = mem.growth_kb();
    let ended = f.ended.clone();
    drop(f);
    let t0 = Instant::now();
    let mut ws_conns = f64::NAN;
    while t0.elapsed() < WAIT {
        ws_conns = s.metric("tracecast_websocket_connections", &[]);
        if ws_conns <= 1.0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20)); // polling a gauge
    }
    let after_kb = s.rss_now_kb();
    let rtt = watcher.stop();

    let mut r = Report::new("ping flood, rate limits off");
    r.figure(format!("{sent} pings written ({why})"));
    r.figure(replies.describe(&ended));
    r.expect(
        last_sent && replies.last_pong == b"last-ping",
        format!(
            "the last ping got no pong within 5 s ({}; last pong {:?})",
            replies.describe(&ended),
            String::from_utf8_lossy(&replies.last_pong)
        ),
    );
    r.expect(
        replies.close.is_none(),
        "the flooder was closed although limits are off",
    );
    r.rss(growth, 64);
    r.expect(
        ws_conns <= 1.0,
        format!("the flooder was not reaped within {WAIT:?} (websocket_connections {ws_conns})"),
    );
    r.figure(format!(
        "RSS {:.1} MiB before, {:.1} MiB after the flooder left",
        before_kb as f64 / 1024.0,
        after_kb as f64 / 1024.0
    ));
    r.expect(
        after_kb <= before_kb + 32 * MIB,
        "RSS did not fall back to within 32 MiB of its pre-attack value",
    );
    r.rtt(&rtt);
    r.finish();
}

/// Counts the events a subscriber receives (delivered, and reported dropped) until
/// `want`, the connection ends, or 3 s after `published` is set (25 s at most).
fn read_events(
    c: &mut Client,
    want: usize,
    published: &std::sync::atomic::AtomicBool,
) -> (usize, usize, Option<String>) {
    use tungstenite::Message;
    let (mut delivered, mut dropped) = (0usize, 0usize);
    let hard = Instant::now() + Duration::from_secs(25);
    let mut soft: Option<Instant> = None;
    while delivered + dropped < want {
        let now = Instant::now();
        if published.load(std::sync::atomic::Ordering::Relaxed) && soft.is_none() {
            soft = Some(now + Duration::from_secs(3));
        }
        if now >= hard || soft.is_some_and(|d| now >= d) {
            return (delivered, dropped, Some("no more within the bound".into()));
        }
        let v: Value = match c.ws.read() {
            Ok(Message::Text(t)) => serde_json::from_str(t.as_str()).unwrap_or(Value::Null),
            Ok(Message::Close(f)) => return (delivered, dropped, Some(format!("closed: {f:?}"))),
            Ok(_) => continue,
            Err(tungstenite::Error::Io(e))
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                continue
            }
            Err(e) => return (delivered, dropped, Some(format!("error: {e}"))),
        };
        match v["type"].as_str() {
            Some("trace_batch") => delivered += v["events"].as_array().map_or(0, Vec::len),
            Some("events_dropped") => dropped += v["count"].as_u64().unwrap_or(0) as usize,
            _ => {}
        }
    }
    (delivered, dropped, None)
}

/// Eight subscribers of "s" flood pings and never read, so each holds a backlog of
/// pongs and event frames; meanwhile a publisher posts 200 batches to "s". Ingest keeps
/// its pace, a reading subscriber of "s" gets every event (or is told what was
/// dropped), and a watcher on another session notices nothing.
#[test]
fn control_backlog_does_not_stall_fanout() {
    let _alone = alone();
    const FLOODERS: usize = 8;
    const BATCHES: usize = 200;
    const PER_BATCH: usize = 50;
    let s = TestServer::start("[rate_limit]\nenabled = false\n");
    let watcher = Watcher::start(&s.addr, Some("other"));
    let mut reader = s.client();
    reader.subscribe("s");
    let published = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reading = {
        let published = published.clone();
        std::thread::spawn(move || read_events(&mut reader, BATCHES * PER_BATCH, &published))
    };
    let mem = RssPeak::start(&s);
    // Every flooder subscribes before any floods, so the subscriptions are all in place.
    let subscribers: Vec<Frames> = (0..FLOODERS)
        .map(|_| raw_subscriber(&s.addr, "s"))
        .collect();
    let flooders: Vec<_> = subscribers
        .into_iter()
        .map(|mut f| {
            std::thread::spawn(move || {
                let out = ping_flood(&mut f.stream, 200_000, Duration::from_secs(10));
                (out, f) // keep the socket open until the test is done with it
            })
        })
        .collect();

    let mut times = Vec::with_capacity(BATCHES);
    let mut refused = Vec::new();
    let publishing = Instant::now();
    for b in 0..BATCHES {
        if publishing.elapsed() > Duration::from_secs(12) {
            refused.push(format!("only {b} of {BATCHES} batches posted within 12 s"));
            break;
        }
        let batch: Vec<Value> = (0..PER_BATCH)
            .map(|i| event("s", "agent-1", "TASK_START", b * PER_BATCH + i))
            .collect();
        let body = Value::Array(batch).to_string();
        match post_within(sock_addr(&s), body.as_bytes(), Duration::from_secs(5)) {
            Ok((202, took)) => times.push(took),
            Ok((st, took)) => {
                times.push(took);
                refused.push(format!("batch {b}: HTTP {st}"));
            }
            Err(e) => {
                times.push(Duration::from_secs(5));
                refused.push(format!("batch {b}: {e}"));
            }
        }
    }
    published.store(true, std::sync::atomic::Ordering::Relaxed);
    let floods: Vec<_> = flooders
        .into_iter()
        .filter_map(|h| h.join().ok())
        .map(|(out, _f)| out)
        .collect();
    let (delivered, dropped, reader_end) =
        reading
            .join()
            .unwrap_or((0, 0, Some("reader thread panicked".into())));
    let growth = mem.growth_kb();
    let rtt = watcher.stop();

    let mut r = Report::new("pong backlog on 8 subscribers vs fan-out");
    let pings: usize = floods.iter().map(|(n, _)| n).sum();
    r.figure(format!(
        "{pings} pings written by {} flooders ({})",
        floods.len(),
        floods.first().map_or("", |(_, w)| w.as_str())
    ));
    let (med, max) = (
        median(times.clone()),
        times.iter().max().copied().unwrap_or_default(),
    );
    r.figure(format!(
        "POST round trip median {}, max {}",
        ms(med),
        ms(max)
    ));
    r.expect(
        refused.is_empty(),
        format!("publishes refused: {refused:?}"),
    );
    r.expect(
        med < Duration::from_millis(50),
        format!("POST median {} (bound 50 ms)", ms(med)),
    );
    r.figure(format!(
        "reading subscriber: {delivered} delivered, {dropped} reported dropped{}",
        reader_end.map_or(String::new(), |e| format!(", then {e}"))
    ));
    r.expect(
        delivered + dropped == BATCHES * PER_BATCH,
        format!(
            "the reading subscriber of \"s\" saw {} of {} events (delivered or reported dropped)",
            delivered + dropped,
            BATCHES * PER_BATCH
        ),
    );
    r.rss(growth, 64);
    r.rtt(&rtt);
    r.finish();
}

// ───────────────────────────── slow and unfinished HTTP ─────────────────────────────

/// Four chunked POSTs with ~900 KB of a valid-so-far JSON array each, then one byte
/// every 2 ms per connection for 3 s. The body deadline is far (60 s), so only
/// incremental decoding keeps the server from re-reading 900 KB per byte.
#[test]
fn chunked_trickle_does_not_spin() {
    let _alone = alone();
    let s = TestServer::start("max_message_size = 1048576\nhttp_body_timeout_ms = 60000\n");
    let watcher = Watcher::start(&s.addr, None);
    let mut array = b"[".to_vec();
    let mut n = 0;
    while array.len() < 900 * 1024 {
        array.extend_from_slice(
            format!("{{\"type\":\"T\",\"sessionId\":\"c\",\"n\":{n}}},").as_bytes(),
        );
        n += 1;
    }
    let mut chunked = Vec::with_capacity(array.len() + 1024);
    for c in array.chunks(16 * 1024) {
        chunked.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        chunked.extend_from_slice(c);
        chunked.extend_from_slice(b"\r\n");
    }
    let mut conns: Vec<TcpStream> = (0..4)
        .map(|_| {
            let mut c = TcpStream::connect(&s.addr).expect("connect");
            c.write_all(
                b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
            )
            .expect("head");
            c.write_all(&chunked).expect("900 KB of chunks");
            c
        })
        .collect();
    // Each trickled byte is one byte of a chunk holding a space: still a valid prefix.
    let trickle = b"1\r\n \r\n".repeat(400);
    let cpu = CpuWindow::start(&s);
    let t0 = Instant::now();
    let mut i = 0;
    let mut write_errors = 0;
    while t0.elapsed() < Duration::from_secs(3) && i < trickle.len() {
        for c in &mut conns {
            if c.write_all(&trickle[i..i + 1]).is_err() {
                write_errors += 1;
            }
        }
        i += 1;
        std::thread::sleep(Duration::from_millis(2)); // the trickle's pace: the attack
    }
    let (pct, span) = cpu.pct();
    let answered = conns.iter().filter(|c| !nothing_arrived(c)).count();
    let rtt = watcher.stop();

    let mut r = Report::new("chunked trickle");
    r.figure(format!(
        "{} KB of chunks then {i} bytes trickled per connection",
        chunked.len() / 1024
    ));
    r.figure(format!("server CPU {pct:.1} % of a core over {span:?}"));
    r.expect(
        pct < 30.0,
        format!("server CPU {pct:.1} % during the trickle (bound 30 %)"),
    );
    r.expect(
        answered == 0 && write_errors == 0,
        format!(
            "the trickle did not run: {answered} connections answered early, {write_errors} write errors"
        ),
    );
    r.rtt(&rtt);
    r.finish();
}

/// Sixty connections that never finish their head, and one POST that never finishes its
/// body: each gets `408` and is closed once its deadline (1 s) passes.
#[test]
fn slowloris_head_times_out() {
    let _alone = alone();
    let s = TestServer::start("http_header_timeout_ms = 1000\nhttp_body_timeout_ms = 1000\n");
    let addr = sock_addr(&s);
    let t0 = Instant::now();
    let mut heads: Vec<TcpStream> = (0..60).map(|_| slowloris(addr).expect("connect")).collect();
    let mut body = TcpStream::connect(addr).expect("connect");
    body.write_all(
        b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n[{\"type\":\"",
    )
    .expect("partial body");
    let deadline = t0 + Duration::from_secs(3);

    let mut r = Report::new("slowloris head and body");
    let answers: Vec<Answer> = heads
        .iter_mut()
        .map(|c| read_answer(c, t0, deadline, never))
        .collect();
    let good = answers
        .iter()
        .filter(|a| a.status() == Some(408) && a.closed())
        .count();
    r.figure(format!(
        "{good} of 60 unfinished heads got 408 + close within 3 s"
    ));
    if let Some(bad) = answers
        .iter()
        .find(|a| a.status() != Some(408) || !a.closed())
    {
        r.expect(false, format!("an unfinished head got {}", bad.describe()));
    }
    let a = read_answer(&mut body, t0, deadline, never);
    r.figure(format!("unfinished body: {}", a.describe()));
    r.expect(
        a.status() == Some(408) && a.closed(),
        format!("the unfinished body got {}", a.describe()),
    );
    r.finish();
}

/// With `max_http_connections = 50`, 80 unfinished heads: the 51st and later are told
/// 503 at once; a WebSocket client connected before is served throughout; once the
/// slow ones are gone a new WebSocket client gets in within a second.
#[test]
fn http_phase_is_bounded() {
    let _alone = alone();
    let s = TestServer::start("max_http_connections = 50\nhttp_header_timeout_ms = 30000\n");
    let addr = sock_addr(&s);
    let watcher = Watcher::start(&s.addr, None);
    let mut lorises: Vec<TcpStream> = (0..80).map(|_| slowloris(addr).expect("connect")).collect();
    let t0 = Instant::now();
    let mut r = Report::new("80 slow heads, max_http_connections = 50");
    let mut refused = 0;
    let deadline = t0 + Duration::from_secs(2);
    for (i, c) in lorises.iter_mut().enumerate().skip(50) {
        let a = read_answer(c, t0, deadline, head_complete);
        if a.status() == Some(503) {
            refused += 1;
        } else {
            r.expect(
                false,
                format!("slow head #{} got {} (want 503)", i + 1, a.describe()),
            );
        }
    }
    let waiting = lorises
        .iter()
        .take(50)
        .filter(|c| nothing_arrived(c))
        .count();
    r.figure(format!(
        "{refused} of the last 30 got 503; {waiting} of the first 50 still wait"
    ));
    r.expect(
        refused == 30,
        format!("{refused} of 30 over-limit heads got 503"),
    );
    r.expect(
        waiting == 50,
        format!("only {waiting} of the first 50 heads are still waiting"),
    );
    drop(lorises);
    let fresh = upgrade_within(addr, Duration::from_secs(1));
    r.figure(format!(
        "new WebSocket client after the slow heads left: {fresh:?}"
    ));
    r.expect(fresh.is_ok(), format!("no new WebSocket client: {fresh:?}"));
    r.rtt(&watcher.stop());
    r.finish();
}

/// Under `ulimit -n 200`, 300 unfinished heads: past the descriptor limit a new client
/// is still answered (503 from the reserved descriptor, or 200) within 2 s instead of
/// waiting unseen in the backlog; once the slow heads are gone, WebSocket clients get in.
#[test]
fn file_limit_reserve_answers_503() {
    let _alone = alone();
    let s = TestServer::start_with_prefix("ulimit -n 200", "http_header_timeout_ms = 30000\n");
    let addr = sock_addr(&s);
    let mut lorises = Vec::new();
    let mut refused = 0;
    for _ in 0..300 {
        match slowloris(addr) {
            Ok(c) => lorises.push(c),
            Err(_) => refused += 1,
        }
    }
    let t0 = Instant::now();
    let mut r = Report::new("300 slow heads under ulimit -n 200");
    let health = match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
        Ok(mut c) => {
            let _ = c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            read_answer(&mut c, t0, t0 + Duration::from_secs(2), head_complete)
        }
        Err(e) => Answer {
            bytes: Vec::new(),
            ended: e.to_string(),
            after: t0.elapsed(),
        },
    };
    let told_503 = lorises.iter().filter(|c| !nothing_arrived(c)).count();
    r.figure(format!(
        "{} slow heads connected ({refused} refused at connect), {told_503} answered",
        lorises.len()
    ));
    r.figure(format!("/healthz: {}", health.describe()));
    r.expect(
        matches!(health.status(), Some(200 | 503)),
        format!("/healthz at the descriptor limit got {}", health.describe()),
    );
    drop(lorises);
    let fresh = upgrade_within(addr, Duration::from_secs(5));
    r.figure(format!(
        "WebSocket client after the slow heads left: {fresh:?}"
    ));
    r.expect(
        fresh.is_ok(),
        format!("no WebSocket client after the flood: {fresh:?}"),
    );
    r.finish();
}

// ───────────────────────────── many sessions ─────────────────────────────

/// 200,000 one-event sessions in the durable log cost at most 400 bytes each; `/metrics`
/// keeps counters instead of walking them; `/v1/sessions` answers a page at a time with
/// a `next` cursor, and following it pages on without repeats.
#[test]
fn many_sessions_memory_is_small() {
    let _alone = alone();
    const SESSIONS: usize = 200_000;
    let s = TestServer::start("");
    // One warm-up body, so buffers sized by the first request are not counted.
    post_one_event_sessions(&s, "w", 0..5000, 5000);
    let before_kb = s.rss_now_kb();
    post_one_event_sessions(&s, "s", 0..SESSIONS, 5000);
    let after_kb = s.rss_now_kb();
    let per_session = after_kb.saturating_sub(before_kb) as f64 * 1024.0 / SESSIONS as f64;

    let mut r = Report::new("200,000 one-event sessions");
    r.figure(format!(
        "RSS {:.1} → {:.1} MiB: {per_session:.0} bytes per session",
        before_kb as f64 / 1024.0,
        after_kb as f64 / 1024.0
    ));
    r.expect(
        per_session <= 400.0,
        format!("{per_session:.0} bytes per session (bound 400)"),
    );

    let metrics: Vec<Duration> = (0..20)
        .map(|_| timed_http(&s, "GET", "/metrics", b""))
        .map(|(st, _, d)| if st == 200 { d } else { Duration::MAX })
        .collect();
    let slowest = metrics.iter().max().copied().unwrap_or_default();
    r.figure(format!("GET /metrics ×20: slowest {}", ms(slowest)));
    r.expect(
        slowest < Duration::from_millis(50),
        format!("GET /metrics took {} (bound 50 ms each)", ms(slowest)),
    );
    let gauge = s.metric("tracecast_sessions", &[]);
    r.expect(
        gauge as usize == SESSIONS + 5000,
        format!("tracecast_sessions = {gauge}, want {}", SESSIONS + 5000),
    );

    // The default page, then two more through the cursor.
    let mut seen = std::collections::HashSet::new();
    let mut pages: Vec<Vec<Value>> = Vec::new();
    let mut path = "/v1/sessions".to_string();
    for page in 0..3 {
        let (st, body, took) = timed_http(&s, "GET", &path, b"");
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let items = v["sessions"].as_array().cloned().unwrap_or_default();
        r.figure(format!(
            "page {page}: {st}, {} sessions, {}",
            items.len(),
            ms(took)
        ));
        r.expect(
            st == 200 && took < Duration::from_millis(50),
            format!("{path} answered {st} in {} (bound 50 ms)", ms(took)),
        );
        r.expect(
            !items.is_empty() && items.len() <= 1000,
            format!("{path}: {} sessions on a page (want 1..=1000)", items.len()),
        );
        let repeats = items
            .iter()
            .filter(|i| !seen.insert(i["id"].as_str().unwrap_or_default().to_string()))
            .count();
        r.expect(
            repeats == 0,
            format!("{path}: {repeats} sessions seen on an earlier page"),
        );
        let next = match &v["next"] {
            Value::String(c) => c.clone(),
            Value::Number(n) => n.to_string(),
            other => {
                r.expect(false, format!("{path}: no `next` cursor (got {other})"));
                break;
            }
        };
        pages.push(items);
        path = format!("/v1/sessions?after={}&limit=1000", pct(&next));
    }
    // "Increasing": by id, or (cursor over creation order) by lastSeq.
    let all: Vec<&Value> = pages.iter().flatten().collect();
    let by_id = all
        .windows(2)
        .all(|w| w[0]["id"].as_str() < w[1]["id"].as_str());
    let by_seq = all
        .windows(2)
        .all(|w| w[0]["lastSeq"].as_u64() < w[1]["lastSeq"].as_u64());
    r.expect(
        all.len() >= 2 && (by_id || by_seq),
        "pages are not in increasing order (neither by id nor by lastSeq)",
    );
    r.finish();
}

/// Undo `Transfer-Encoding: chunked` (a streamed answer may use it).
fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&b[..eol]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        b = &b[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(b.get(..size)?);
        b = b.get(size + 2..)?;
    }
}

/// A plain HTTP client asking for a huge session list gets an HTTP answer — a status
/// line and a complete body — never WebSocket frame bytes. Small limits put the cap on
/// a connection's unsendable replies (a few hundred KB here, ~66 MB by default) below
/// the ~5 MB list, as 600,000 sessions would with the defaults: an answer that size must
/// be streamed or refused over HTTP, not cut off with a WebSocket close frame.
#[test]
fn http_never_receives_websocket_bytes() {
    let _alone = alone();
    let s = TestServer::start(
        "max_message_size = 65536\nmax_event_bytes = 1024\nhistorical_data_limit = 100\n\
         [backpressure]\nhigh_water_mark = 16384\nlow_water_mark = 4096\n",
    );
    post_one_event_sessions(&s, "s", 0..50_000, 1500);
    let t0 = Instant::now();
    let mut c = TcpStream::connect(&s.addr).expect("connect");
    c.write_all(b"GET /v1/sessions?limit=100000 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("request");
    let a = read_answer(&mut c, t0, t0 + WAIT, never);
    let mut r = Report::new("GET /v1/sessions?limit=100000 over plain HTTP");
    r.figure(format!("{} bytes: {}", a.bytes.len(), a.describe()));
    r.expect(
        a.bytes.first() != Some(&0x88),
        format!(
            "the answer starts with WebSocket close-frame bytes {:02x?}",
            &a.bytes[..a.bytes.len().min(16)]
        ),
    );
    r.expect(
        matches!(a.status(), Some(200 | 400)),
        format!("no HTTP 200/400 status line: {}", a.describe()),
    );
    if a.status() == Some(200) {
        let split = a.bytes.windows(4).position(|w| w == b"\r\n\r\n");
        let body = split.map(|p| {
            let (head, body) = (&a.bytes[..p], &a.bytes[p + 4..]);
            let chunked = String::from_utf8_lossy(head)
                .to_ascii_lowercase()
                .contains("transfer-encoding: chunked");
            if chunked {
                dechunk(body).unwrap_or_default()
            } else {
                body.to_vec()
            }
        });
        let parsed: Option<Value> = body.and_then(|b| serde_json::from_slice(&b).ok());
        let n = parsed
            .as_ref()
            .and_then(|v| v["sessions"].as_array())
            .map(Vec::len);
        r.figure(format!("200 with {n:?} sessions"));
        r.expect(
            n.is_some_and(|n| n > 0),
            "the 200 answer is not a complete session list",
        );
    }
    r.finish();
}

// ───────────────────────────── unread answers, many subscriptions ─────────────────────

/// A client asks five times for the history of a 10,000-event session and never reads:
/// once its socket is full the server waits for it (under 20 % of a core), and the five
/// answers are all there when it finally reads.
#[test]
fn unread_history_does_not_spin() {
    let _alone = alone();
    let s = TestServer::start("");
    for b in 0..10 {
        let batch: Vec<Value> = (0..1000)
            .map(|i| event("h", "agent-1", "TASK_START", b * 1000 + i))
            .collect();
        post_batch(&s, &batch);
    }
    let mut f = Frames::new(Raw::upgrade(&s.addr));
    let reqs: Vec<u8> = (0..5)
        .flat_map(|i| {
            let m = json!({"type": "request_history", "sessionId": "h",
                "timeRange": {"start": 0, "end": 9_999_999_999_999i64}, "requestId": i});
            masked_text(m.to_string().as_bytes())
        })
        .collect();
    f.stream.write_all(&reqs).expect("requests");
    // The first second lets the server fill the socket; the window starts after it.
    std::thread::sleep(Duration::from_secs(1));
    let cpu = CpuWindow::start(&s);
    std::thread::sleep(Duration::from_secs(2)); // the measured window itself
    let (pct, span) = cpu.pct();

    let mut r = Report::new("five unread 10,000-event histories");
    r.figure(format!("server CPU {pct:.1} % of a core over {span:?}"));
    r.expect(
        pct < 20.0,
        format!("server CPU {pct:.1} % while nobody reads (bound 20 %)"),
    );
    // Then read: every answer must complete.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (mut last, mut events) = (std::collections::HashSet::new(), 0usize);
    while last.len() < 5 {
        let Some(v) = f.next_json(deadline) else {
            break;
        };
        if v["type"] == "historical_data" {
            events += v["traces"].as_array().map_or(0, Vec::len);
            if v["chunkInfo"]["isLast"] == true {
                last.insert(v["requestId"].to_string());
            }
        }
    }
    r.figure(format!(
        "{} answers complete, {events} events read",
        last.len()
    ));
    r.expect(
        last.len() == 5 && events == 50_000,
        format!(
            "after reading: {} of 5 answers complete, {events} of 50000 events",
            last.len()
        ),
    );
    r.finish();
}

/// One client sends 5,000 `subscribe_session` for distinct sessions without waiting:
/// the first 1,000 are answered `session_info`, the rest an error naming
/// `max_subscriptions_per_connection`, all within 5 s, the watcher undisturbed.
#[test]
fn many_subscriptions_are_bounded_and_linear() {
    let _alone = alone();
    const N: usize = 5000;
    const CAP: usize = 1000;
    let s = TestServer::start(
        "max_subscriptions_per_connection = 1000\n[rate_limit]\nenabled = false\n",
    );
    let watcher = Watcher::start(&s.addr, None);
    let mut f = Frames::new(Raw::upgrade(&s.addr));
    let frames: Vec<u8> = (0..N)
        .flat_map(|i| {
            let m = json!({"type": "subscribe_session", "sessionId": format!("sub-{i}"), "requestId": i});
            masked_text(m.to_string().as_bytes())
        })
        .collect();
    let mut w = f.stream.try_clone().expect("clone");
    let t0 = Instant::now();
    let writer = std::thread::spawn(move || w.write_all(&frames).is_ok());
    let deadline = t0 + Duration::from_secs(10);
    let (mut infos, mut errors, mut late_info, mut unnamed) = (0, 0, 0, Vec::new());
    let mut done_at = None;
    while infos + errors < N {
        let Some(v) = f.next_json(deadline) else {
            break;
        };
        match v["type"].as_str() {
            Some("session_info") => {
                infos += 1;
                if v["requestId"].as_u64().is_none_or(|id| id as usize >= CAP) {
                    late_info += 1;
                }
            }
            Some("error") => {
                errors += 1;
                let m = v["error"]["message"].as_str().unwrap_or_default();
                if !m.contains("max_subscriptions_per_connection") && unnamed.len() < 2 {
                    unnamed.push(v.to_string());
                }
            }
            _ => {}
        }
        done_at = Some(t0.elapsed());
    }
    let wrote = writer.join().unwrap_or(false);
    let rtt = watcher.stop();

    let mut r = Report::new("5,000 subscriptions on one connection, cap 1,000");
    r.figure(format!(
        "{infos} session_info, {errors} errors, last reply after {:?}",
        done_at.unwrap_or_default()
    ));
    r.expect(wrote, "the subscribes could not all be written");
    r.expect(
        infos == CAP && late_info == 0,
        format!("{infos} session_info ({late_info} beyond the first {CAP}); want exactly the first {CAP}"),
    );
    r.expect(
        errors == N - CAP,
        format!("{errors} errors, want {}", N - CAP),
    );
    r.expect(
        unnamed.is_empty(),
        format!("errors not naming max_subscriptions_per_connection: {unnamed:?}"),
    );
    r.expect(
        infos + errors == N && done_at.is_some_and(|d| d < Duration::from_secs(5)),
        format!(
            "{} of {N} replies, the last after {:?} (bound 5 s)",
            infos + errors,
            done_at.unwrap_or_default()
        ),
    );
    r.rtt(&rtt);
    r.finish();
}

// ───────────────────────────── numbers ─────────────────────────────

/// Numbers outside f64 inside `data` are kept byte for byte; a known numeric field out
/// of range is refused with a message that says so, not as malformed JSON.
#[test]
fn out_of_range_numbers_are_kept_or_named() {
    let _alone = alone();
    let s = TestServer::start("");
    let mut r = Report::new("out-of-range numbers");
    let (st, ack) = s.post_events(
        r#"{"type":"T","sessionId":"n","data":{"big":123456789012345678901234567890,"huge":1e999999}}"#,
    );
    r.figure(format!("POST with big numbers in data: {st} {ack}"));
    r.expect(
        st == 202,
        format!("big numbers inside data: {st} {ack} (want 202)"),
    );
    let (hs, _, body) = s.http("GET", "/v1/history?sessionId=n", &[], b"");
    let text = String::from_utf8_lossy(&body).to_string();
    r.figure(format!("history: {hs} {}", text.trim()));
    r.expect(
        hs == 200 && text.contains("123456789012345678901234567890") && text.contains("1e999999"),
        format!(
            "the stored event does not keep the numbers as sent: {hs} {}",
            text.trim()
        ),
    );
    let (st, err) = s.post_events(r#"{"type":"T","sessionId":"n","timestamp":1e999999}"#);
    let msg = err["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    r.figure(format!("timestamp 1e999999: {st} {msg:?}"));
    r.expect(
        st == 400
            && msg.contains("timestamp")
            && msg.contains("out of range")
            && !msg.contains("malformed"),
        format!("timestamp 1e999999: {st} {err} (want 400 naming `timestamp`, `out of range`)"),
    );
    r.finish();
}
