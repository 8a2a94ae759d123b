//! Blocking loopback sockets for the probe: a raw WebSocket connection built on the
//! loadgen's own framing (`crate::ws`), plain HTTP exchanges read with a deadline, and
//! the attack primitives (ping floods, unfinished heads).
//!
//! Blocking std sockets and a thread per concurrent actor, not the loadgen's mio loop:
//! an attack is a handful of misbehaving connections whose timing must be exactly what
//! the attack says (write 60 KB, never read; one byte every 2 ms), and each wait needs
//! its own deadline. Every read and write here has one.

use crate::ws::{self, Handshake, Parse};
use serde_json::Value;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

const MASK: [u8; 4] = [0x3c, 0x5a, 0x96, 0xe1];

/// One masked client frame.
pub fn masked(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 14);
    ws::encode_masked(opcode, payload, MASK, &mut out);
    out
}

fn transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// A raw, upgraded WebSocket connection.
pub struct WsConn {
    pub stream: TcpStream,
    buf: Vec<u8>,
    pos: usize,
    /// How the connection ended, once it did: "EOF" or the error.
    pub ended: Option<String>,
}

impl WsConn {
    /// Upgrades on `/ws` within `within`.
    pub fn connect(addr: SocketAddr, within: Duration) -> Result<WsConn, String> {
        let deadline = Instant::now() + within;
        let mut stream = TcpStream::connect_timeout(&addr, within).map_err(|e| e.to_string())?;
        let _ = stream.set_nodelay(true);
        stream
            .write_all(&ws::handshake_request(&addr.to_string(), "/ws"))
            .map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        let mut tmp = [0u8; 4096];
        loop {
            match ws::parse_handshake_response(&buf) {
                Handshake::Done(n) => {
                    buf.drain(..n);
                    break;
                }
                Handshake::Failed(why) => return Err(why),
                Handshake::Partial => {}
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!("no upgrade answer within {within:?}"));
            }
            let _ = stream.set_read_timeout(Some(left));
            match stream.read(&mut tmp) {
                Ok(0) => return Err("closed during the upgrade".into()),
                Ok(n) => buf.extend_from_slice(&tmp[..n]),
                Err(e) if transient(&e) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(WsConn {
            stream,
            buf,
            pos: 0,
            ended: None,
        })
    }

    /// Sends one JSON text message.
    pub fn send_json(&mut self, v: &Value) -> io::Result<()> {
        self.stream
            .write_all(&masked(ws::OP_TEXT, v.to_string().as_bytes()))
    }

    /// The next server frame `(opcode, payload)`; `None` at the deadline or the end.
    pub fn next(&mut self, deadline: Instant) -> Option<(u8, Vec<u8>)> {
        loop {
            match ws::parse_frame(&self.buf[self.pos..]) {
                Parse::Complete(f, used) => {
                    let out = (f.opcode, f.payload.to_vec());
                    self.pos += used;
                    return Some(out);
                }
                Parse::Invalid(why) => {
                    self.ended = Some(format!("invalid server frame: {why}"));
                    return None;
                }
                Parse::Partial => {}
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
                Err(e) if transient(&e) => {}
                Err(e) => self.ended = Some(e.to_string()),
            }
        }
    }

    /// The next JSON text message before the deadline (other frames skipped; a ping
    /// from the server is answered, as any client would).
    pub fn next_json(&mut self, deadline: Instant) -> Option<Value> {
        while let Some((op, p)) = self.next(deadline) {
            match op {
                ws::OP_TEXT => return serde_json::from_slice(&p).ok(),
                ws::OP_PING => {
                    let _ = self.stream.write_all(&masked(ws::OP_PONG, &p));
                }
                ws::OP_CLOSE => {
                    self.ended = Some(format!("close frame {:?}", close_code(&p)));
                    return None;
                }
                _ => {}
            }
        }
        None
    }
}

pub fn close_code(p: &[u8]) -> Option<u16> {
    (p.len() >= 2).then(|| u16::from_be_bytes([p[0], p[1]]))
}

/// Writes `count` empty masked pings in 60 KB writes and never reads. Stops when all
/// are written, the socket fails (the server closed it), or `budget` runs out (the
/// server stopped reading). Returns the pings written and why it stopped.
pub fn ping_flood(stream: &mut TcpStream, count: usize, budget: Duration) -> (usize, String) {
    const PER_WRITE: usize = 10_000;
    let block = masked(ws::OP_PING, b"").repeat(PER_WRITE);
    let frame = block.len() / PER_WRITE;
    let total = count * frame;
    let deadline = Instant::now() + budget;
    let _ = stream.set_write_timeout(Some(Duration::from_millis(100)));
    let mut written = 0usize;
    while written < total {
        if Instant::now() >= deadline {
            return (written / frame, format!("stopped after {budget:?}"));
        }
        // The block repeats every frame, so any offset into it is a frame boundary.
        let off = written % block.len();
        let end = block.len().min(off + (total - written));
        match stream.write(&block[off..end]) {
            Ok(0) => return (written / frame, "socket closed".into()),
            Ok(n) => written += n,
            Err(e) if transient(&e) => {}
            Err(e) => return (written / frame, format!("write failed: {e}")),
        }
    }
    (count, "all written".into())
}

pub fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// How a plain HTTP exchange on a raw socket ended.
pub struct Answer {
    pub bytes: Vec<u8>,
    /// "EOF", "stopped reading", an error, or "timeout".
    pub ended: String,
    pub after: Duration,
}

impl Answer {
    pub fn status(&self) -> Option<u16> {
        let line = self.bytes.split(|b| *b == b'\r').next()?;
        let line = std::str::from_utf8(line).ok()?;
        let mut it = line.split_whitespace();
        (it.next()? == "HTTP/1.1").then_some(())?;
        it.next()?.parse().ok()
    }

    pub fn closed(&self) -> bool {
        self.ended == "EOF" || (self.ended != "timeout" && self.ended != "stopped reading")
    }

    pub fn describe(&self) -> String {
        match self.status() {
            Some(s) => format!("HTTP {s}, {} after {}", self.ended, ms(self.after)),
            None if self.bytes.is_empty() => {
                format!("nothing, {} after {}", self.ended, ms(self.after))
            }
            None => format!(
                "non-HTTP bytes {:02x?}, {} after {}",
                &self.bytes[..self.bytes.len().min(8)],
                self.ended,
                ms(self.after)
            ),
        }
    }

    /// The body after the head, de-chunked when the head says so.
    pub fn body(&self) -> Option<Vec<u8>> {
        let p = self.bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = String::from_utf8_lossy(&self.bytes[..p]).to_ascii_lowercase();
        let body = &self.bytes[p + 4..];
        if head.contains("transfer-encoding: chunked") {
            dechunk(body)
        } else {
            Some(body.to_vec())
        }
    }
}

fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n")?;
        let size = std::str::from_utf8(&b[..eol])
            .ok()?
            .split(';')
            .next()?
            .trim();
        let size = usize::from_str_radix(size, 16).ok()?;
        b = &b[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(b.get(..size)?);
        b = b.get(size + 2..)?;
    }
}

pub fn head_complete(b: &[u8]) -> bool {
    b.windows(4).any(|w| w == b"\r\n\r\n")
}

pub fn never(_: &[u8]) -> bool {
    false
}

/// Reads from `s` until EOF, an error, `deadline`, or `stop` holds on what came.
pub fn read_answer(
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
            Err(e) if transient(&e) => {}
            Err(e) => break e.to_string(),
        }
    };
    Answer {
        bytes,
        ended,
        after: t0.elapsed(),
    }
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`), answered within
/// `within`.
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    content_type: &str,
    body: &[u8],
    within: Duration,
) -> Answer {
    let t0 = Instant::now();
    let mut s = match TcpStream::connect_timeout(&addr, within) {
        Ok(s) => s,
        Err(e) => {
            return Answer {
                bytes: Vec::new(),
                ended: e.to_string(),
                after: t0.elapsed(),
            }
        }
    };
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let _ = s.set_write_timeout(Some(within));
    if let Err(e) = s.write_all(head.as_bytes()).and_then(|_| s.write_all(body)) {
        return Answer {
            bytes: Vec::new(),
            ended: format!("write failed: {e}"),
            after: t0.elapsed(),
        };
    }
    read_answer(&mut s, t0, t0 + within, never)
}

/// The value of one un-labelled sample in `/metrics`.
pub fn metric(addr: SocketAddr, name: &str) -> Option<f64> {
    let a = http(
        addr,
        "GET",
        "/metrics",
        "text/plain",
        b"",
        Duration::from_secs(3),
    );
    let body = a.body()?;
    String::from_utf8_lossy(&body)
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// A connection that sends the start of a request head and nothing more.
pub fn slowloris(addr: SocketAddr) -> io::Result<TcpStream> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
    s.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\n")?;
    Ok(s)
}

/// True when nothing at all has arrived on `s` (checked without waiting).
pub fn nothing_arrived(s: &TcpStream) -> bool {
    let _ = s.set_nonblocking(true);
    let mut one = [0u8; 1];
    let quiet = matches!(s.peek(&mut one), Err(e) if e.kind() == io::ErrorKind::WouldBlock);
    let _ = s.set_nonblocking(false);
    quiet
}

/// Retries an upgrade until it is answered 101, for at most `within`.
pub fn upgrade_within(addr: SocketAddr, within: Duration) -> Result<Duration, String> {
    let t0 = Instant::now();
    let mut last = String::from("no attempt");
    while t0.elapsed() < within {
        let left = within.saturating_sub(t0.elapsed());
        match WsConn::connect(addr, left) {
            Ok(_) => return Ok(t0.elapsed()),
            Err(e) => last = e,
        }
        std::thread::sleep(Duration::from_millis(20)); // between bounded retries
    }
    Err(format!("no 101 within {within:?} ({last})"))
}
