//! Test harness: starts the real `tracecast` binary on an ephemeral port and talks to it
//! with real clients over real sockets. Every wait is bounded; nothing sleeps to
//! synchronise.
#![allow(dead_code)]

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

/// The default bound on any wait in a test.
pub const WAIT: Duration = Duration::from_secs(10);

/// A running server process.
pub struct TestServer {
    pub child: Child,
    pub addr: String,
    pub dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    logs: Arc<Mutex<Vec<String>>>,
    lines: Receiver<String>,
}

impl TestServer {
    /// Starts a server with the given extra TOML (appended to a minimal file), a fresh
    /// data directory, and `port = 0`.
    pub fn start(extra_toml: &str) -> TestServer {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().to_path_buf();
        let mut s = Self::start_in(&dir, extra_toml, &[]);
        s._tmp = Some(tmp);
        s
    }

    /// Starts a server on an existing data directory (restart tests), with extra env vars.
    pub fn start_in(dir: &Path, extra_toml: &str, env: &[(&str, &str)]) -> TestServer {
        Self::launch(dir, extra_toml, env, None)
    }

    /// Writes the config and spawns the server (through `sh -c '<prefix>; exec …'` when a
    /// shell prefix is given), then waits for its "listening" line.
    fn launch(
        dir: &Path,
        extra_toml: &str,
        env: &[(&str, &str)],
        shell_prefix: Option<&str>,
    ) -> TestServer {
        let config = dir.join("tracecast.toml");
        let data = dir.join("data");
        let toml = format!(
            "port = 0\ndata_dir = {:?}\n{}\n",
            data.display().to_string(),
            extra_toml
        );
        std::fs::write(&config, toml).expect("write config");
        let mut cmd = match shell_prefix {
            None => Command::new(env!("CARGO_BIN_EXE_tracecast")),
            Some(prefix) => {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(format!("{prefix}; exec \"$0\" \"$@\""))
                    .arg(env!("CARGO_BIN_EXE_tracecast"));
                c
            }
        };
        cmd.args(["serve", "--config"])
            .arg(&config)
            .args(["--log-format", "json"])
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn tracecast");
        let stderr = child.stderr.take().expect("stderr");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        {
            let logs = logs.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    logs.lock().unwrap().push(line.clone());
                    let _ = tx.send(line);
                }
            });
        }
        let deadline = Instant::now() + WAIT;
        let addr = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.contains("listening") => {
                    let v: Value = serde_json::from_str(&line).expect("json log line");
                    break v["fields"]["addr"]
                        .as_str()
                        .expect("addr field")
                        .to_string();
                }
                Ok(_) => {}
                Err(_) => {
                    let _ = child.kill();
                    panic!(
                        "server did not start; logs:\n{}",
                        logs.lock().unwrap().join("\n")
                    );
                }
            }
        };
        TestServer {
            child,
            addr,
            dir: dir.to_path_buf(),
            _tmp: None,
            logs,
            lines: rx,
        }
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// Everything the server logged so far.
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    /// Waits for a log line containing `needle`.
    pub fn wait_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        if let Some(l) = self
            .logs
            .lock()
            .unwrap()
            .iter()
            .find(|l| l.contains(needle))
        {
            return l.clone();
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.contains(needle) => return l,
                Ok(_) => {}
                Err(_) => panic!("no log line with {needle:?}; logs:\n{}", self.logs()),
            }
        }
    }

    /// Sends SIGTERM and waits (bounded) for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        self.wait_exit()
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                return s;
            }
            assert!(Instant::now() < deadline, "server did not exit in time");
            std::thread::sleep(Duration::from_millis(10)); // polling a process, not syncing
        }
    }

    /// Peak RSS (VmHWM) and current RSS of the server, in KiB.
    pub fn rss_kb(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        (field("VmHWM:"), field("VmRSS:"))
    }

    /// A plain HTTP/1.1 request; returns (status, headers, body).
    pub fn http(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, String, Vec<u8>) {
        http(&self.addr, method, path, headers, body)
    }

    pub fn post_events(&self, body: &str) -> (u16, Value) {
        let (status, _, b) = self.http(
            "POST",
            "/v1/events",
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        );
        (status, serde_json::from_slice(&b).unwrap_or(Value::Null))
    }

    pub fn client(&self) -> Client {
        Client::connect(&self.ws_url())
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal blocking HTTP/1.1 client (`Connection: close`).
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).expect("read response");
    parse_response(&resp)
}

pub fn parse_response(resp: &[u8]) -> (u16, String, Vec<u8>) {
    let split = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("response head");
    let head = String::from_utf8_lossy(&resp[..split]).to_string();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    (status, head, resp[split + 4..].to_vec())
}

/// A WebSocket client (tungstenite) with bounded receive helpers.
pub struct Client {
    pub ws: WebSocket<MaybeTlsStream<TcpStream>>,
    /// The `connection` message received right after the upgrade.
    pub hello: Value,
}

impl Client {
    pub fn connect(url: &str) -> Client {
        Self::connect_request(url.into_client_request_compat())
    }

    pub fn connect_request(req: tungstenite::http::Request<()>) -> Client {
        let (ws, _resp) = tungstenite::connect(req).expect("websocket connect");
        if let MaybeTlsStream::Plain(s) = ws.get_ref() {
            s.set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
        }
        let mut c = Client {
            ws,
            hello: Value::Null,
        };
        c.hello = c.recv_type("connection");
        c
    }

    pub fn send(&mut self, v: Value) {
        self.ws.send(Message::text(v.to_string())).expect("send");
    }

    pub fn send_text(&mut self, s: &str) {
        self.ws.send(Message::text(s.to_string())).expect("send");
    }

    /// Next JSON text message within `timeout` (pings are answered by tungstenite).
    pub fn try_recv(&mut self, timeout: Duration) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.ws.read() {
                Ok(Message::Text(t)) => {
                    return Some(serde_json::from_str(t.as_str()).expect("server sent JSON"))
                }
                Ok(Message::Binary(b)) => {
                    return Some(Value::String(format!("<binary {} bytes>", b.len())))
                }
                Ok(_) => {}
                Err(tungstenite::Error::Io(e))
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(e) => panic!("websocket error: {e}"),
            }
            if Instant::now() >= deadline {
                return None;
            }
        }
    }

    pub fn recv(&mut self) -> Value {
        self.try_recv(WAIT)
            .expect("a message within the wait bound")
    }

    /// Skips messages until one of type `ty` arrives.
    pub fn recv_type(&mut self, ty: &str) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(v) = self.try_recv(left) else {
                panic!("no {ty} message within the wait bound")
            };
            if v["type"] == ty {
                return v;
            }
        }
    }

    /// Collects events from `trace_batch` frames until `n` have arrived; returns them
    /// and the number of frames they came in.
    pub fn recv_events(&mut self, n: usize) -> (Vec<Value>, usize) {
        let mut events = Vec::new();
        let mut frames = 0;
        let deadline = Instant::now() + WAIT;
        while events.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(v) = self.try_recv(left) else {
                panic!("only {} of {n} events arrived", events.len())
            };
            if v["type"] == "trace_batch" {
                frames += 1;
                events.extend(v["events"].as_array().expect("events").iter().cloned());
            }
        }
        (events, frames)
    }

    /// Waits for the server to close; returns the close code.
    pub fn recv_close(&mut self) -> Option<u16> {
        self.recv_close_reason().map(|(code, _)| code)
    }

    pub fn subscribe(&mut self, session: &str) -> (Value, Value) {
        self.send(serde_json::json!({"type": "subscribe_session", "sessionId": session}));
        let info = self.recv_type("session_info");
        let initial = self.recv_type("initial_traces");
        (info, initial)
    }
}

trait IntoRequestCompat {
    fn into_client_request_compat(self) -> tungstenite::http::Request<()>;
}

impl IntoRequestCompat for &str {
    fn into_client_request_compat(self) -> tungstenite::http::Request<()> {
        use tungstenite::client::IntoClientRequest;
        self.into_client_request().expect("request")
    }
}

/// A realistic ~250-byte trace event.
pub fn event(session: &str, agent: &str, kind: &str, n: usize) -> Value {
    serde_json::json!({
        "type": kind,
        "sessionId": session,
        "agentId": agent,
        "traceId": format!("trace-{n:08}"),
        "spanId": format!("span-{n:08}"),
        "data": {"taskId": format!("task-{}", n % 17), "tool": "web.search", "n": n},
        "metadata": {"model": "planner-v2", "region": "eu-west"}
    })
}

/// A raw TCP WebSocket connection for frame-level tests: upgrade by hand, then write
/// arbitrary bytes.
pub struct Raw {
    pub stream: TcpStream,
    pub buf: Vec<u8>,
    /// The first header byte of the frame `next_frame` returned last (FIN, RSV bits).
    pub last_b0: u8,
}

impl Raw {
    pub fn upgrade(addr: &str) -> Raw {
        Self::upgrade_with(addr, "")
    }

    /// Upgrades with extra request header lines (each ending in `\r\n`); returns the
    /// connection and the 101 response head.
    pub fn upgrade_with(addr: &str, extra_headers: &str) -> Raw {
        Self::upgrade_head(addr, extra_headers).0
    }

    pub fn upgrade_head(addr: &str, extra_headers: &str) -> (Raw, String) {
        let mut stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let req = format!(
            "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra_headers}\r\n"
        );
        stream.write_all(req.as_bytes()).unwrap();
        let mut raw = Raw {
            stream,
            buf: Vec::new(),
            last_b0: 0,
        };
        let head = raw.read_until(b"\r\n\r\n");
        assert!(
            head.starts_with(b"HTTP/1.1 101"),
            "no 101: {}",
            String::from_utf8_lossy(&head)
        );
        (raw, String::from_utf8_lossy(&head).to_string())
    }

    fn fill(&mut self, deadline: Instant) -> bool {
        let mut tmp = [0u8; 65536];
        loop {
            match self.stream.read(&mut tmp) {
                Ok(0) => return false,
                Ok(n) => {
                    self.buf.extend_from_slice(&tmp[..n]);
                    return true;
                }
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    if Instant::now() >= deadline {
                        return false;
                    }
                }
                Err(_) => return false,
            }
        }
    }

    fn read_until(&mut self, pat: &[u8]) -> Vec<u8> {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(p) = self.buf.windows(pat.len()).position(|w| w == pat) {
                return self.buf.drain(..p + pat.len()).collect();
            }
            assert!(
                self.fill(deadline),
                "connection ended before {:?}",
                String::from_utf8_lossy(pat)
            );
        }
    }

    /// Writes one client frame (masked unless `masked` is false).
    pub fn frame(&mut self, b0: u8, payload: &[u8], masked: bool) {
        let mut f = vec![b0];
        let m = if masked { 0x80 } else { 0 };
        if payload.len() < 126 {
            f.push(m | payload.len() as u8);
        } else if payload.len() < 65536 {
            f.push(m | 126);
            f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        } else {
            f.push(m | 127);
            f.extend_from_slice(&(payload.len() as u64).to_be_bytes());
        }
        if masked {
            let key = [0x12, 0x34, 0x56, 0x78];
            f.extend_from_slice(&key);
            f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        } else {
            f.extend_from_slice(payload);
        }
        self.stream.write_all(&f).unwrap();
    }

    /// Reads the next server frame: (opcode, payload). `None` when the socket closed.
    pub fn next_frame(&mut self) -> Option<(u8, Vec<u8>)> {
        let deadline = Instant::now() + WAIT;
        loop {
            if self.buf.len() >= 2 {
                let op = self.buf[0] & 0x0f;
                let len7 = (self.buf[1] & 0x7f) as usize;
                let (hlen, len) = match len7 {
                    126 if self.buf.len() >= 4 => {
                        (4, u16::from_be_bytes([self.buf[2], self.buf[3]]) as usize)
                    }
                    127 if self.buf.len() >= 10 => (
                        10,
                        u64::from_be_bytes(self.buf[2..10].try_into().unwrap()) as usize,
                    ),
                    126 | 127 => (usize::MAX, 0),
                    n => (2, n),
                };
                if hlen != usize::MAX && self.buf.len() >= hlen + len {
                    self.last_b0 = self.buf[0];
                    let payload = self.buf[hlen..hlen + len].to_vec();
                    self.buf.drain(..hlen + len);
                    return Some((op, payload));
                }
            }
            if !self.fill(deadline) {
                return None;
            }
        }
    }

    /// Skips frames until a close frame; returns its code.
    pub fn close_code(&mut self) -> Option<u16> {
        while let Some((op, p)) = self.next_frame() {
            if op == 0x8 {
                return (p.len() >= 2).then(|| u16::from_be_bytes([p[0], p[1]]));
            }
        }
        None
    }
}

// ───────────────────────────── t-sec helpers ─────────────────────────────
// Credentials at the upgrade, close reasons, metrics scraping, hand-made frames.

/// Seconds since the Unix epoch, for `exp` / `nbf` claims.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Percent-encodes everything but RFC 3986 unreserved characters (for `?token=`).
pub fn pct(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A hand-made upgrade request to `path` (which may carry a query) with extra headers.
/// Returns the status and head, and the open stream when the answer was 101.
pub fn raw_upgrade(addr: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String, Option<Raw>) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    // The server may answer and close before reading everything (429/503 at accept).
    let _ = stream.write_all(req.as_bytes());
    let mut raw = Raw {
        stream,
        buf: Vec::new(),
        last_b0: 0,
    };
    let deadline = Instant::now() + WAIT;
    while !raw.buf.windows(4).any(|w| w == b"\r\n\r\n") {
        if !raw.fill(deadline) {
            break;
        }
    }
    let Some(end) = raw.buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        panic!(
            "no response head to the upgrade: {:?}",
            String::from_utf8_lossy(&raw.buf)
        );
    };
    let head: Vec<u8> = raw.buf.drain(..end + 4).collect();
    let head = String::from_utf8_lossy(&head).to_string();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    (status, head, (status == 101).then_some(raw))
}

impl Raw {
    /// Reads server frames until a JSON text frame arrives; `None` when the socket ends.
    pub fn next_json(&mut self) -> Option<Value> {
        while let Some((op, p)) = self.next_frame() {
            match op {
                0x1 => return Some(serde_json::from_slice(&p).expect("server sent JSON")),
                0x8 => return None,
                _ => {}
            }
        }
        None
    }

    /// Skips frames until a close frame; returns its code and reason.
    pub fn close_reason(&mut self) -> Option<(u16, String)> {
        while let Some((op, p)) = self.next_frame() {
            if op == 0x8 && p.len() >= 2 {
                return Some((
                    u16::from_be_bytes([p[0], p[1]]),
                    String::from_utf8_lossy(&p[2..]).to_string(),
                ));
            }
        }
        None
    }
}

/// One masked client text frame, as bytes (to write many in one go).
pub fn masked_text(payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x81];
    if payload.len() < 126 {
        f.push(0x80 | payload.len() as u8);
    } else {
        f.push(0x80 | 126);
        f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    }
    let key = [0x5a, 0x13, 0x77, 0xc4];
    f.extend_from_slice(&key);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    f
}

impl Client {
    /// Connects to `url` with extra request headers (credentials at the upgrade).
    pub fn connect_with(url: &str, headers: &[(&str, &str)]) -> Client {
        let mut req = url.into_client_request_compat();
        for (k, v) in headers {
            req.headers_mut().insert(
                tungstenite::http::HeaderName::from_bytes(k.as_bytes()).expect("header name"),
                tungstenite::http::HeaderValue::from_str(v).expect("header value"),
            );
        }
        Self::connect_request(req)
    }

    /// Waits for the server's close frame; returns its code and reason.
    pub fn recv_close_reason(&mut self) -> Option<(u16, String)> {
        let deadline = Instant::now() + WAIT;
        loop {
            match self.ws.read() {
                Ok(Message::Close(f)) => {
                    return f.map(|f| (u16::from(f.code), f.reason.to_string()))
                }
                Ok(_) => {}
                Err(tungstenite::Error::Io(e))
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                    return None
                }
                Err(e) => panic!("websocket error while waiting for close: {e}"),
            }
            assert!(Instant::now() < deadline, "server did not close in time");
        }
    }
}

impl TestServer {
    /// The value of one un-labelled sample in `/metrics` (sent with `headers`).
    pub fn metric(&self, name: &str, headers: &[(&str, &str)]) -> f64 {
        let (status, _, body) = self.http("GET", "/metrics", headers, b"");
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let text = String::from_utf8_lossy(&body).to_string();
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
    }
}

// ---------------------------------------------------------------------------------------
// t-store: helpers for durability, history, time-travel and resume tests.
// ---------------------------------------------------------------------------------------

/// Starts the binary on `dir` expecting it NOT to come up: waits (bounded) for it to exit
/// and returns the status and everything it wrote to stderr.
pub fn start_expect_exit(dir: &Path, extra_toml: &str) -> (std::process::ExitStatus, String) {
    let config = dir.join("tracecast.toml");
    let data = dir.join("data");
    let toml = format!(
        "port = 0\ndata_dir = {:?}\n{}\n",
        data.display().to_string(),
        extra_toml
    );
    std::fs::write(&config, toml).expect("write config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_tracecast"))
        .args(["serve", "--config"])
        .arg(&config)
        .args(["--log-format", "json"])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tracecast");
    let mut stderr = child.stderr.take().expect("stderr");
    // Read on a thread so a server that wrongly starts cannot hang the test.
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            break s;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("server kept running although it should have refused to start");
        }
        std::thread::sleep(Duration::from_millis(10)); // polling a process, not syncing
    };
    (status, reader.join().unwrap_or_default())
}

/// The segment files of a server's log, sorted by name (= by first seq).
pub fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join("data"))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "log"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// `GET /v1/history` for a whole session (or a query suffix): the NDJSON events and the
/// `X-Total-Count` header.
pub fn http_history(s: &TestServer, query: &str) -> (Vec<Value>, u64) {
    let (status, head, body) = s.http("GET", &format!("/v1/history?{query}"), &[], b"");
    assert_eq!(
        status,
        200,
        "history: {head} {}",
        String::from_utf8_lossy(&body)
    );
    let total = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("x-total-count")
                .then(|| v.trim().parse().ok())?
        })
        .expect("X-Total-Count header");
    let events = String::from_utf8_lossy(&body)
        .lines()
        .map(|l| serde_json::from_str(l).expect("NDJSON line"))
        .collect();
    (events, total)
}

/// The `seq` of each event.
pub fn seqs_of(events: &[Value]) -> Vec<u64> {
    events
        .iter()
        .map(|e| e["seq"].as_u64().expect("seq"))
        .collect()
}

/// Posts a batch over HTTP, asserts 202, returns the acknowledged seqs in order.
pub fn post_batch(s: &TestServer, events: &[Value]) -> Vec<u64> {
    let (st, ack) = s.post_events(&Value::Array(events.to_vec()).to_string());
    assert_eq!(st, 202, "{ack}");
    let (first, last) = (ack["firstSeq"].as_u64(), ack["lastSeq"].as_u64());
    let (first, last) = (first.expect("firstSeq"), last.expect("lastSeq"));
    assert_eq!(last + 1 - first, events.len() as u64, "{ack}");
    (first..=last).collect()
}

// ---------------------------------------------------------------------------------------
// t-hostile: a server under a lowered limit, a latency watcher, the server's CPU and
// memory, and bounded polling.
// ---------------------------------------------------------------------------------------

impl TestServer {
    /// Starts a server like [`TestServer::start`], but through
    /// `sh -c '<shell_prefix>; exec "$0" "$@"' <binary> serve …`, so the shell can lower a
    /// limit for the server alone (`ulimit -n 200`). `exec` keeps the pid the server's, so
    /// `/proc/<pid>` and `rss_kb` still describe it.
    pub fn start_with_prefix(shell_prefix: &str, extra_toml: &str) -> TestServer {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut s = Self::launch(tmp.path(), extra_toml, &[], Some(shell_prefix));
        s._tmp = Some(tmp);
        s
    }

    /// The server's CPU time so far (utime + stime, every thread), in seconds.
    pub fn cpu_seconds(&self) -> f64 {
        proc_cpu_seconds(self.child.id())
    }

    /// Current RSS (VmRSS) in KiB.
    pub fn rss_now_kb(&self) -> u64 {
        self.rss_kb().1
    }
}

/// utime + stime of a process from `/proc/<pid>/stat`, in seconds (0 when it is gone).
pub fn proc_cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name may hold spaces and parentheses: count fields after the last ')'.
    let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
        return 0.0;
    };
    let mut it = after.split_ascii_whitespace().skip(11);
    let utime: u64 = it.next().and_then(|v| v.parse().ok()).unwrap_or(0);
    let stime: u64 = it.next().and_then(|v| v.parse().ok()).unwrap_or(0);
    (utime + stime) as f64 / clock_ticks()
}

/// `getconf CLK_TCK` (USER_HZ), read once; 100 when it cannot be asked.
pub fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .filter(|t: &f64| *t > 0.0)
            .unwrap_or(100.0)
    })
}

/// Server CPU over a window, as % of one core.
pub struct CpuWindow {
    pid: u32,
    cpu0: f64,
    t0: Instant,
}

impl CpuWindow {
    pub fn start(s: &TestServer) -> CpuWindow {
        CpuWindow {
            pid: s.child.id(),
            cpu0: proc_cpu_seconds(s.child.id()),
            t0: Instant::now(),
        }
    }

    /// CPU % of one core since `start`, and the window's length.
    pub fn pct(&self) -> (f64, Duration) {
        let used = proc_cpu_seconds(self.pid) - self.cpu0;
        let span = self.t0.elapsed();
        (100.0 * used / span.as_secs_f64().max(1e-3), span)
    }
}

/// Samples the server's RSS every 20 ms on a thread, so a peak between two readings of
/// `VmRSS` is not missed even when `VmHWM` was already set higher at start-up.
pub struct RssPeak {
    pub baseline_kb: u64,
    stop: Arc<std::sync::atomic::AtomicBool>,
    handle: std::thread::JoinHandle<u64>,
    pid: u32,
    hwm0: u64,
}

fn proc_status_kb(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

impl RssPeak {
    pub fn start(s: &TestServer) -> RssPeak {
        use std::sync::atomic::{AtomicBool, Ordering};
        let pid = s.child.id();
        let (hwm0, baseline_kb) = s.rss_kb();
        let stop = Arc::new(AtomicBool::new(false));
        let handle = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut peak = 0;
                // Bounded: at most 2 minutes of samples, whatever the caller does.
                for _ in 0..6000 {
                    peak = peak.max(proc_status_kb(pid, "VmRSS:"));
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(20)); // sampling period
                }
                peak
            })
        };
        RssPeak {
            baseline_kb,
            stop,
            handle,
            pid,
            hwm0,
        }
    }

    /// Peak RSS growth over the baseline, in KiB.
    pub fn growth_kb(self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let sampled = self.handle.join().unwrap_or(0);
        let hwm = proc_status_kb(self.pid, "VmHWM:");
        // A new high-water mark is exact; otherwise the samples are the best we have.
        let peak = if hwm > self.hwm0 {
            hwm.max(sampled)
        } else {
            sampled
        };
        peak.saturating_sub(self.baseline_kb)
    }
}

/// Calls `f` until it yields `Some` (each call itself bounded), for at most `within`.
pub fn poll_until<T>(what: &str, within: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(20)); // between bounded retries
    }
}

/// Round trips a watcher measured.
#[derive(Debug, Default)]
pub struct Rtt {
    pub samples: Vec<Duration>,
    /// Heartbeats that got no answer in time, errors, a lost connection.
    pub failures: Vec<String>,
}

impl Rtt {
    pub fn median(&self) -> Duration {
        let mut v = self.samples.clone();
        v.sort();
        v.get(v.len() / 2).copied().unwrap_or_default()
    }

    pub fn max(&self) -> Duration {
        self.samples.iter().max().copied().unwrap_or_default()
    }

    pub fn summary(&self) -> String {
        format!(
            "watcher RTT median {:.1} ms, max {:.1} ms over {} heartbeats",
            self.median().as_secs_f64() * 1e3,
            self.max().as_secs_f64() * 1e3,
            self.samples.len()
        )
    }

    /// `Err` naming the figures when the median or the maximum is over its bound, when
    /// nothing was measured, or when a heartbeat went unanswered.
    pub fn check(&self, median_under: Duration, max_under: Duration) -> Result<(), String> {
        let mut bad = Vec::new();
        if self.samples.is_empty() {
            bad.push("no heartbeat was measured".to_string());
        }
        if self.median() >= median_under {
            bad.push(format!("median ≥ {median_under:?}"));
        }
        if self.max() >= max_under {
            bad.push(format!("max ≥ {max_under:?}"));
        }
        bad.extend(self.failures.iter().take(3).cloned());
        if bad.is_empty() {
            Ok(())
        } else {
            Err(format!("{} — {}", self.summary(), bad.join("; ")))
        }
    }
}

/// A well-behaved WebSocket client that, on its own thread, sends
/// `{"type":"heartbeat","requestId":N}` every `pace` and times each `heartbeat_response`:
/// what another user of the server feels while something else is going on.
pub struct Watcher {
    stop: Arc<std::sync::atomic::AtomicBool>,
    handle: std::thread::JoinHandle<Rtt>,
}

/// Heartbeats one watcher sends at most: under the default rate limit (1000 a minute).
pub const WATCHER_MAX_BEATS: usize = 600;

impl Watcher {
    /// Connects (and subscribes to `session` when given) before returning, so the watcher
    /// exists before whatever the test does next.
    pub fn start(addr: &str, session: Option<&str>) -> Watcher {
        Self::start_paced(addr, session, Duration::from_millis(25))
    }

    pub fn start_paced(addr: &str, session: Option<&str>, pace: Duration) -> Watcher {
        use std::sync::atomic::{AtomicBool, Ordering};
        let mut c = Client::connect(&format!("ws://{addr}/ws"));
        if let Some(s) = session {
            c.subscribe(s);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let handle = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut rtt = Rtt::default();
                for n in 0..WATCHER_MAX_BEATS {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    match heartbeat_round_trip(&mut c, n) {
                        Ok(d) => rtt.samples.push(d),
                        Err((d, why)) => {
                            rtt.samples.push(d);
                            rtt.failures.push(why);
                            if rtt.failures.len() >= 3 {
                                break;
                            }
                        }
                    }
                    std::thread::sleep(pace); // the watcher's own pace, not a sync
                }
                rtt
            })
        };
        Watcher { stop, handle }
    }

    pub fn stop(self) -> Rtt {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.handle.join().unwrap_or_else(|_| Rtt {
            samples: Vec::new(),
            failures: vec!["watcher thread panicked".into()],
        })
    }
}

/// One heartbeat and its answer; other messages (trace batches, server heartbeats) are
/// skipped. `Err` carries the time waited and why there was no answer.
fn heartbeat_round_trip(c: &mut Client, n: usize) -> Result<Duration, (Duration, String)> {
    const ANSWER_WITHIN: Duration = Duration::from_secs(5);
    let t0 = Instant::now();
    let msg = serde_json::json!({"type": "heartbeat", "requestId": n}).to_string();
    if let Err(e) = c.ws.send(Message::text(msg)) {
        return Err((t0.elapsed(), format!("heartbeat #{n}: send failed: {e}")));
    }
    loop {
        match c.ws.read() {
            Ok(Message::Text(t)) => {
                let v: Value = serde_json::from_str(t.as_str()).unwrap_or(Value::Null);
                if v["requestId"] == n {
                    return if v["type"] == "heartbeat_response" {
                        Ok(t0.elapsed())
                    } else {
                        Err((t0.elapsed(), format!("heartbeat #{n} answered with {v}")))
                    };
                }
            }
            Ok(Message::Close(f)) => {
                return Err((t0.elapsed(), format!("watcher closed by the server: {f:?}")))
            }
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => return Err((t0.elapsed(), format!("watcher connection failed: {e}"))),
        }
        if t0.elapsed() >= ANSWER_WITHIN {
            return Err((
                t0.elapsed(),
                format!("heartbeat #{n}: no answer within {ANSWER_WITHIN:?}"),
            ));
        }
    }
}
