//! The attacks, each with the server configuration it needs and the bounds it is judged
//! by — the same as `tests/hostile.rs`, with shorter budgets so the whole replay fits
//! in two minutes even against a server that gives in to every one of them.

use super::net::{self, WsConn};
use super::watch::{CpuWindow, RssPeak, Rtt, Watcher};
use serde_json::{json, Value};
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

const RTT_MEDIAN_MS: f64 = 50.0;
const RTT_MAX_MS: f64 = 250.0;
const MIB: u64 = 1024;

/// The server an attack runs against.
pub struct Target {
    pub addr: SocketAddr,
    pub pid: u32,
}

/// One attack: its name, the TOML the server must run with, a descriptor limit, and
/// the attack itself.
pub struct Attack {
    pub name: &'static str,
    pub config: &'static str,
    pub nofile: Option<u32>,
    pub run: fn(&Target) -> Outcome,
}

pub const ATTACKS: &[Attack] = &[
    Attack {
        name: "ping_flood",
        config: "",
        nofile: None,
        run: ping_flood,
    },
    Attack {
        name: "ping_flood_no_limits",
        config: "[rate_limit]\nenabled = false\n",
        nofile: None,
        run: ping_flood_no_limits,
    },
    Attack {
        name: "control_backlog",
        config: "[rate_limit]\nenabled = false\n",
        nofile: None,
        run: control_backlog,
    },
    Attack {
        name: "chunked_trickle",
        config: "max_message_size = 1048576\nhttp_body_timeout_ms = 60000\n",
        nofile: None,
        run: chunked_trickle,
    },
    Attack {
        name: "slowloris",
        config: "http_header_timeout_ms = 1000\nhttp_body_timeout_ms = 1000\n",
        nofile: None,
        run: slowloris,
    },
    Attack {
        name: "http_phase",
        config: "max_http_connections = 50\nhttp_header_timeout_ms = 30000\n",
        nofile: None,
        run: http_phase,
    },
    Attack {
        name: "file_limit",
        config: "http_header_timeout_ms = 30000\n",
        nofile: Some(200),
        run: file_limit,
    },
    Attack {
        name: "many_sessions",
        config: "",
        nofile: None,
        run: many_sessions,
    },
    Attack {
        name: "big_http_answer",
        config: "max_message_size = 65536\nmax_event_bytes = 1024\nhistorical_data_limit = 100\n\
                 [backpressure]\nhigh_water_mark = 16384\nlow_water_mark = 4096\n",
        nofile: None,
        run: big_http_answer,
    },
    Attack {
        name: "unread_history",
        config: "",
        nofile: None,
        run: unread_history,
    },
    Attack {
        name: "many_subscriptions",
        config: "max_subscriptions_per_connection = 1000\n[rate_limit]\nenabled = false\n",
        nofile: None,
        run: many_subscriptions,
    },
    Attack {
        name: "big_numbers",
        config: "",
        nofile: None,
        run: big_numbers,
    },
];

pub fn find(name: &str) -> Option<&'static Attack> {
    ATTACKS.iter().find(|a| a.name == name)
}

/// What an attack measured and how the server answered it.
#[derive(Debug, Default)]
pub struct Outcome {
    pub rss_growth_kb: Option<u64>,
    pub cpu_pct: Option<f64>,
    pub rtt_ms: Option<(f64, f64)>,
    /// The attacker's view: "closed 1008", "408 + close", "503", "ok", …
    pub outcome: String,
    pub broken: Vec<String>,
    pub notes: Vec<String>,
}

impl Outcome {
    fn expect(&mut self, ok: bool, what: impl Into<String>) {
        if !ok {
            self.broken.push(what.into());
        }
    }

    fn rss(&mut self, growth_kb: u64, bound_mib: u64) {
        self.rss_growth_kb = Some(growth_kb);
        self.expect(
            growth_kb < bound_mib * MIB,
            format!(
                "RSS +{:.1} MiB ≥ {bound_mib} MiB",
                growth_kb as f64 / 1024.0
            ),
        );
    }

    fn cpu(&mut self, pct: f64, bound: f64) {
        self.cpu_pct = Some(pct);
        self.expect(pct < bound, format!("CPU {pct:.0} % ≥ {bound:.0} %"));
    }

    fn rtt(&mut self, rtt: &Rtt) {
        let (med, max) = (rtt.median_ms(), rtt.max_ms());
        self.rtt_ms = Some((med, max));
        self.expect(!rtt.samples.is_empty(), "watcher measured nothing");
        self.expect(
            med < RTT_MEDIAN_MS && max < RTT_MAX_MS,
            format!("watcher RTT {med:.1}/{max:.1} ms ≥ {RTT_MEDIAN_MS}/{RTT_MAX_MS} ms"),
        );
        if let Some(f) = rtt.failures.first() {
            self.broken.push(f.clone());
        }
    }

    fn watcher(&mut self, w: Result<Watcher, String>) -> Option<Watcher> {
        match w {
            Ok(w) => Some(w),
            Err(e) => {
                self.broken.push(format!("watcher could not connect: {e}"));
                None
            }
        }
    }

    fn stop(&mut self, w: Option<Watcher>) {
        if let Some(w) = w {
            self.rtt(&w.stop());
        }
    }

    pub fn to_json(&self, attack: &str) -> Value {
        json!({
            "attack": attack,
            "rss_growth_kb": self.rss_growth_kb,
            "cpu_pct": self.cpu_pct,
            "rtt_median_ms": self.rtt_ms.map(|r| r.0),
            "rtt_max_ms": self.rtt_ms.map(|r| r.1),
            "outcome": self.outcome,
            "pass": self.broken.is_empty(),
            "broken": self.broken,
            "notes": self.notes,
        })
    }
}

fn connect(o: &mut Outcome, t: &Target) -> Option<WsConn> {
    match WsConn::connect(t.addr, Duration::from_secs(5)) {
        Ok(c) => Some(c),
        Err(e) => {
            o.outcome = format!("no upgrade: {e}");
            o.broken.push(o.outcome.clone());
            None
        }
    }
}

/// Reads a flooded connection's answers until `done`, a close frame, the end or
/// `within`: (pongs, last pong payload, close code).
fn drain(c: &mut WsConn, within: Duration, done: fn(&[u8]) -> bool) -> (u64, Vec<u8>, Option<u16>) {
    let deadline = Instant::now() + within;
    let (mut pongs, mut last) = (0u64, Vec::new());
    while let Some((op, p)) = c.next(deadline) {
        match op {
            crate::ws::OP_PONG => {
                pongs += 1;
                last = p;
                if done(&last) {
                    break;
                }
            }
            crate::ws::OP_CLOSE => return (pongs, last, net::close_code(&p)),
            _ => {}
        }
    }
    (pongs, last, None)
}

fn ping_flood(t: &Target) -> Outcome {
    let mut o = Outcome::default();
    let w = o.watcher(Watcher::start(t.addr, None));
    let mem = RssPeak::start(t.pid);
    let Some(mut c) = connect(&mut o, t) else {
        return o;
    };
    let (sent, why) = net::ping_flood(&mut c.stream, 2_000_000, Duration::from_secs(6));
    let (pongs, _, close) = drain(&mut c, Duration::from_secs(2), |_| false);
    o.rss(mem.growth_kb(), 64);
    o.stop(w);
    o.notes
        .push(format!("{sent} pings ({why}), {pongs} pongs read"));
    o.outcome = close.map_or("not closed".into(), |c| format!("closed {c}"));
    o.expect(close == Some(1008), "flooder not closed with 1008");
    o
}

fn ping_flood_no_limits(t: &Target) -> Outcome {
    let mut o = Outcome::default();
    let w = o.watcher(Watcher::start(t.addr, None));
    let mem = RssPeak::start(t.pid);
    let before = mem.baseline_kb;
    let Some(mut c) = connect(&mut o, t) else {
        return o;
    };
    let (sent, why) = net::ping_flood(&mut c.stream, 2_000_000, Duration::from_secs(6));
    let last_sent = c
        .stream
        .write_all(&net::masked(crate::ws::OP_PING, b"last"))
        .is_ok();
    let (pongs, last, close) = drain(&mut c, Duration::from_secs(3), |p| p == b"last");
    o.rss(mem.growth_kb(), 64);
    drop(c);
    let t0 = Instant::now();
    let mut reaped = false;
    while !reaped && t0.elapsed() < Duration::from_secs(3) {
        reaped = net::metric(t.addr, "tracecast_websocket_connections").is_some_and(|v| v <= 1.0);
        std::thread::sleep(Duration::from_millis(20)); // polling a gauge
    }
    let after = super::watch::rss_kb(t.pid);
    o.stop(w);
    o.notes.push(format!(
        "{sent} pings ({why}), {pongs} pongs read; RSS {before} → {after} KiB after it left"
    ));
    let answered = last_sent && last == b"last";
    o.outcome = match (close, answered) {
        (Some(c), _) => format!("closed {c}"),
        (None, true) => "last ping answered".into(),
        (None, false) => "last ping unanswered".into(),
    };
    o.expect(answered, "the most recent ping got no pong");
    o.expect(reaped, "flooder not reaped within 3 s");
    o.expect(
        after <= before + 32 * MIB,
        "RSS not back within 32 MiB after the flooder left",
    );
    o
}

fn control_backlog(t: &Target) -> Outcome {
    const BATCHES: usize = 200;
    const PER_BATCH: usize = 50;
    let mut o = Outcome::default();
    let w = o.watcher(Watcher::start(t.addr, Some("other")));
    let mem = RssPeak::start(t.pid);
    let mut subs = Vec::new();
    for _ in 0..8 {
        let Some(mut c) = connect(&mut o, t) else {
            return o;
        };
        let _ = c.send_json(&json!({"type": "subscribe_session", "sessionId": "s"}));
        let deadline = Instant::now() + Duration::from_secs(5);
        while c
            .next_json(deadline)
            .is_some_and(|v| v["type"] != "session_info")
        {}
        subs.push(c);
    }
    let floods: Vec<_> = subs
        .into_iter()
        .map(|mut c| {
            std::thread::spawn(move || {
                let r = net::ping_flood(&mut c.stream, 200_000, Duration::from_secs(6));
                (r, c)
            })
        })
        .collect();
    let mut times = Vec::new();
    let mut refused = 0;
    let t0 = Instant::now();
    for b in 0..BATCHES {
        if t0.elapsed() > Duration::from_secs(8) {
            o.broken
                .push(format!("only {b} of {BATCHES} batches posted in 8 s"));
            break;
        }
        let body: Vec<Value> = (0..PER_BATCH)
            .map(|i| json!({"type": "TASK_START", "sessionId": "s", "agentId": "a", "data": {"n": b * PER_BATCH + i}}))
            .collect();
        let a = net::http(
            t.addr,
            "POST",
            "/v1/events",
            "application/json",
            Value::Array(body).to_string().as_bytes(),
            Duration::from_secs(3),
        );
        times.push(a.after);
        if a.status() != Some(202) {
            refused += 1;
        }
    }
    let pings: usize = floods
        .into_iter()
        .filter_map(|h| h.join().ok())
        .map(|((n, _), _c)| n)
        .sum();
    o.rss(mem.growth_kb(), 64);
    o.stop(w);
    times.sort();
    let med = times
        .get(times.len() / 2)
        .map_or(0.0, |d| d.as_secs_f64() * 1e3);
    o.notes.push(format!(
        "{pings} pings; POST median {med:.1} ms, {refused} refused"
    ));
    o.outcome = format!("POST median {med:.1} ms");
    o.expect(med < 50.0, format!("POST median {med:.1} ms ≥ 50 ms"));
    o.expect(refused == 0, format!("{refused} POSTs not accepted"));
    o
}

/// Sixteen connections where the test has four: a release server re-decodes 900 KB per
/// byte fast enough that four stay near the bound, while incremental decoding costs a
/// wake-up per byte however many there are.
const TRICKLERS: usize = 16;

fn chunked_trickle(t: &Target) -> Outcome {
    let mut o = Outcome::default();
    let w = o.watcher(Watcher::start(t.addr, None));
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
    let mut conns = Vec::new();
    for _ in 0..TRICKLERS {
        let c = TcpStream::connect_timeout(&t.addr, Duration::from_secs(2)).and_then(|mut c| {
            c.set_write_timeout(Some(Duration::from_secs(5)))?;
            c.write_all(b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")?;
            c.write_all(&chunked)?;
            Ok(c)
        });
        match c {
            Ok(c) => conns.push(c),
            Err(e) => o.broken.push(format!("could not send the body: {e}")),
        }
    }
    let trickle = b"1\r\n \r\n".repeat(400);
    let cpu = CpuWindow::start(t.pid);
    let t0 = Instant::now();
    let mut i = 0;
    while t0.elapsed() < Duration::from_secs(3) && i < trickle.len() {
        for c in &mut conns {
            let _ = c.write_all(&trickle[i..i + 1]);
        }
        i += 1;
        std::thread::sleep(Duration::from_millis(2)); // the trickle's pace: the attack
    }
    o.cpu(cpu.pct(), 30.0);
    let answered = conns.iter().filter(|c| !net::nothing_arrived(c)).count();
    o.stop(w);
    o.outcome = if answered == 0 {
        "still waiting".into()
    } else {
        format!("{answered} answered early")
    };
    o.expect(
        answered == 0,
        "the trickled requests were answered early: the attack did not run",
    );
    o
}

fn slowloris(t: &Target) -> Outcome {
    let mut o = Outcome::default();
    let t0 = Instant::now();
    let mut heads: Vec<TcpStream> = (0..60)
        .filter_map(|_| net::slowloris(t.addr).ok())
        .collect();
    let body = TcpStream::connect_timeout(&t.addr, Duration::from_secs(1)).and_then(|mut b| {
        b.write_all(b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n[{\"type\":\"")?;
        Ok(b)
    });
    let deadline = t0 + Duration::from_secs(3);
    let good = heads
        .iter_mut()
        .map(|c| net::read_answer(c, t0, deadline, net::never))
        .filter(|a| a.status() == Some(408) && a.closed())
        .count();
    let body_ok = match body {
        Ok(mut b) => {
            let a = net::read_answer(&mut b, t0, deadline, net::never);
            o.notes.push(format!("unfinished body: {}", a.describe()));
            a.status() == Some(408) && a.closed()
        }
        Err(e) => {
            o.notes.push(format!("unfinished body not sent: {e}"));
            false
        }
    };
    o.outcome = format!(
        "{good}/60 heads + body {}: 408 + close",
        if body_ok { "1/1" } else { "0/1" }
    );
    o.expect(
        good == 60,
        format!("{good} of 60 slow heads got 408 + close in 3 s"),
    );
    o.expect(body_ok, "the unfinished body got no 408 + close in 3 s");
    o
}

fn http_phase(t: &Target) -> Outcome {
    let mut o = Outcome::default();
    let w = o.watcher(Watcher::start(t.addr, None));
    let mut lorises: Vec<TcpStream> = (0..80)
        .filter_map(|_| net::slowloris(t.addr).ok())
        .collect();
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(2);
    let refused = lorises
        .iter_mut()
        .skip(50)
        .map(|c| net::read_answer(c, t0, deadline, net::head_complete))
        .filter(|a| a.status() == Some(503))
        .count();
    let waiting = lorises
        .iter()
        .take(50)
        .filter(|c| net::nothing_arrived(c))
        .count();
    drop(lorises);
    let fresh = net::upgrade_within(t.addr, Duration::from_secs(1));
    o.stop(w);
    o.outcome = format!("{refused}/30 got 503");
    o.notes
        .push(format!("{waiting}/50 still waiting; new client: {fresh:?}"));
    o.expect(
        refused == 30,
        format!("{refused} of 30 over-limit heads got 503"),
    );
    o.expect(
        waiting == 50,
        format!("{waiting} of the first 50 still waiting"),
    );
    o.expect(
        fresh.is_ok(),
        "no new WebSocket client within 1 s after the flood",
    );
    o
}

fn file_limit(t: &Target) -> Outcome {
    let mut o = Outcome::default();
    let lorises: Vec<TcpStream> = (0..300)
        .filter_map(|_| net::slowloris(t.addr).ok())
        .collect();
    let a = net::http(
        t.addr,
        "GET",
        "/healthz",
        "text/plain",
        b"",
        Duration::from_secs(2),
    );
    let answered = lorises.iter().filter(|c| !net::nothing_arrived(c)).count();
    o.notes
        .push(format!("{} connected, {answered} answered", lorises.len()));
    drop(lorises);
    let fresh = net::upgrade_within(t.addr, Duration::from_secs(3));
    o.outcome = format!("/healthz: {}", a.describe());
    o.expect(
        matches!(a.status(), Some(200 | 503)),
        "/healthz unanswered at the descriptor limit",
    );
    o.expect(fresh.is_ok(), "no WebSocket client after the flood");
    o
}

fn post_sessions(
    t: &Target,
    prefix: &str,
    range: std::ops::Range<usize>,
    per_body: usize,
) -> Result<(), String> {
    let ids: Vec<usize> = range.collect();
    for chunk in ids.chunks(per_body) {
        let body: String = chunk
            .iter()
            .map(|i| format!("{{\"type\":\"T\",\"sessionId\":\"{prefix}{i}\"}}\n"))
            .collect();
        let a = net::http(
            t.addr,
            "POST",
            "/v1/events",
            "application/x-ndjson",
            body.as_bytes(),
            Duration::from_secs(10),
        );
        if a.status() != Some(202) {
            return Err(format!("ingest: {}", a.describe()));
        }
    }
    Ok(())
}

fn many_sessions(t: &Target) -> Outcome {
    const N: usize = 200_000;
    let mut o = Outcome::default();
    if let Err(e) = post_sessions(t, "w", 0..5000, 5000) {
        o.broken.push(e);
        return o;
    }
    let before = super::watch::rss_kb(t.pid);
    if let Err(e) = post_sessions(t, "s", 0..N, 5000) {
        o.broken.push(e);
        return o;
    }
    let growth = super::watch::rss_kb(t.pid).saturating_sub(before);
    o.rss_growth_kb = Some(growth);
    let per = growth as f64 * 1024.0 / N as f64;
    o.expect(per <= 400.0, format!("{per:.0} B per session > 400"));
    let slowest_metrics = (0..20)
        .map(|_| {
            net::http(
                t.addr,
                "GET",
                "/metrics",
                "text/plain",
                b"",
                Duration::from_secs(5),
            )
        })
        .map(|a| {
            if a.status() == Some(200) {
                a.after
            } else {
                Duration::MAX
            }
        })
        .max()
        .unwrap_or_default();
    o.expect(
        slowest_metrics < Duration::from_millis(50),
        format!("/metrics took {}", net::ms(slowest_metrics)),
    );
    let page = net::http(
        t.addr,
        "GET",
        "/v1/sessions",
        "text/plain",
        b"",
        Duration::from_secs(5),
    );
    let v: Value = page
        .body()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null);
    let items = v["sessions"].as_array().map_or(0, Vec::len);
    o.expect(
        page.after < Duration::from_millis(50),
        format!("/v1/sessions took {}", net::ms(page.after)),
    );
    o.expect(
        (1..=1000).contains(&items),
        format!("/v1/sessions page of {items}"),
    );
    o.expect(!v["next"].is_null(), "/v1/sessions has no next cursor");
    o.outcome = format!("{per:.0} B/session, page of {items}");
    o.notes.push(format!(
        "/metrics slowest {}, /v1/sessions {}",
        net::ms(slowest_metrics),
        net::ms(page.after)
    ));
    o
}

fn big_http_answer(t: &Target) -> Outcome {
    let mut o = Outcome::default();
    if let Err(e) = post_sessions(t, "s", 0..50_000, 1500) {
        o.broken.push(e);
        return o;
    }
    let a = net::http(
        t.addr,
        "GET",
        "/v1/sessions?limit=100000",
        "text/plain",
        b"",
        Duration::from_secs(10),
    );
    o.outcome = a.describe();
    o.expect(
        a.bytes.first() != Some(&0x88),
        "a WebSocket close frame on an HTTP connection",
    );
    o.expect(
        matches!(a.status(), Some(200 | 400)),
        "no HTTP 200/400 status line",
    );
    if a.status() == Some(200) {
        let complete = a
            .body()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .is_some_and(|v| v["sessions"].is_array());
        o.expect(complete, "the 200 answer is not a complete session list");
    }
    o
}

fn unread_history(t: &Target) -> Outcome {
    let mut o = Outcome::default();
    for b in 0..10 {
        let body: Vec<Value> = (0..1000)
            .map(|i| json!({"type": "TASK_START", "sessionId": "h", "agentId": "a", "traceId": format!("t-{b}-{i}"), "data": {"n": b * 1000 + i, "tool": "web.search", "pad": "x".repeat(120)}}))
            .collect();
        let a = net::http(
            t.addr,
            "POST",
            "/v1/events",
            "application/json",
            Value::Array(body).to_string().as_bytes(),
            Duration::from_secs(10),
        );
        if a.status() != Some(202) {
            o.broken.push(format!("ingest: {}", a.describe()));
            return o;
        }
    }
    let Some(mut c) = connect(&mut o, t) else {
        return o;
    };
    for i in 0..5 {
        let _ = c.send_json(&json!({"type": "request_history", "sessionId": "h",
            "timeRange": {"start": 0, "end": 9_999_999_999_999i64}, "requestId": i}));
    }
    std::thread::sleep(Duration::from_secs(1)); // the first second: the socket fills
    let cpu = CpuWindow::start(t.pid);
    std::thread::sleep(Duration::from_secs(2)); // the measured window
    o.cpu(cpu.pct(), 20.0);
    let deadline = Instant::now() + Duration::from_secs(5);
    let (mut complete, mut events) = (0, 0);
    while complete < 5 {
        let Some(v) = c.next_json(deadline) else {
            break;
        };
        if v["type"] == "historical_data" {
            events += v["traces"].as_array().map_or(0, Vec::len);
            complete += usize::from(v["chunkInfo"]["isLast"] == true);
        }
    }
    o.outcome = format!("{complete}/5 answers, {events} events once read");
    o.expect(
        complete == 5 && events == 50_000,
        "the answers did not all complete once read",
    );
    o
}

fn many_subscriptions(t: &Target) -> Outcome {
    const N: usize = 5000;
    const CAP: usize = 1000;
    let mut o = Outcome::default();
    let w = o.watcher(Watcher::start(t.addr, None));
    let Some(mut c) = connect(&mut o, t) else {
        return o;
    };
    let frames: Vec<u8> = (0..N)
        .flat_map(|i| {
            let m = json!({"type": "subscribe_session", "sessionId": format!("sub-{i}"), "requestId": i});
            net::masked(crate::ws::OP_TEXT, m.to_string().as_bytes())
        })
        .collect();
    let t0 = Instant::now();
    let writer = c
        .stream
        .try_clone()
        .map(|mut s| std::thread::spawn(move || s.write_all(&frames).is_ok()));
    let deadline = t0 + Duration::from_secs(6);
    let (mut infos, mut errors, mut named) = (0, 0, 0);
    let mut last = Duration::ZERO;
    while infos + errors < N {
        let Some(v) = c.next_json(deadline) else {
            break;
        };
        match v["type"].as_str() {
            Some("session_info") => infos += 1,
            Some("error") => {
                errors += 1;
                let m = v["error"]["message"].as_str().unwrap_or_default();
                named += usize::from(m.contains("max_subscriptions_per_connection"));
            }
            _ => {}
        }
        last = t0.elapsed();
    }
    let wrote = writer.ok().and_then(|h| h.join().ok()).unwrap_or(false);
    o.stop(w);
    o.outcome = format!("{infos} subscribed, {errors} refused, {}", net::ms(last));
    o.expect(wrote, "the subscribes could not be written");
    o.expect(
        infos == CAP && errors == N - CAP,
        format!(
            "{infos} subscribed / {errors} refused, want {CAP} / {}",
            N - CAP
        ),
    );
    o.expect(
        named == errors,
        "errors do not name max_subscriptions_per_connection",
    );
    o.expect(
        infos + errors == N && last < Duration::from_secs(5),
        format!("last reply after {}", net::ms(last)),
    );
    o
}

fn big_numbers(t: &Target) -> Outcome {
    let mut o = Outcome::default();
    let post = |body: &str| {
        net::http(
            t.addr,
            "POST",
            "/v1/events",
            "application/json",
            body.as_bytes(),
            Duration::from_secs(5),
        )
    };
    let a = post(
        r#"{"type":"T","sessionId":"n","data":{"big":123456789012345678901234567890,"huge":1e999999}}"#,
    );
    o.expect(
        a.status() == Some(202),
        format!("big numbers in data: {}", a.describe()),
    );
    let h = net::http(
        t.addr,
        "GET",
        "/v1/history?sessionId=n",
        "text/plain",
        b"",
        Duration::from_secs(5),
    );
    let text = String::from_utf8_lossy(&h.body().unwrap_or_default()).to_string();
    let kept = text.contains("123456789012345678901234567890") && text.contains("1e999999");
    o.expect(kept, "the stored event does not keep the numbers as sent");
    let b = post(r#"{"type":"T","sessionId":"n","timestamp":1e999999}"#);
    let msg = String::from_utf8_lossy(&b.body().unwrap_or_default()).to_string();
    let named =
        b.status() == Some(400) && msg.contains("timestamp") && msg.contains("out of range");
    o.expect(named, format!("timestamp 1e999999: {} {msg}", b.describe()));
    o.outcome = format!(
        "data {}, timestamp {}",
        a.status().map_or("-".into(), |s| s.to_string()),
        b.status().map_or("-".into(), |s| s.to_string())
    );
    o
}
