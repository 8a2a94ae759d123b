//! `loadgen`: drives a tracecast-compatible WebSocket server with subscribers, publishers
//! and idle connections from one mio loop, and prints one JSON line of results.
//!
//! Why one thread and hand-rolled frames: on the 2-core benchmark machine the server
//! gets one core and the loadgen the other, so every cycle the loadgen spends is a cycle
//! it cannot spend reading deliveries. Deliveries are counted by scanning for event
//! markers (`scan`), never by parsing JSON. The loadgen reports its own CPU and flags a
//! run where it, not the server, was the limit.
//!
//! Timeline: connect everything (bounded concurrency) and wait until each subscriber has
//! its `session_info` and each other connection its `connection` message; publish for
//! `--warmup` seconds unmeasured, then `--duration` seconds measured (server /proc
//! sampled at both edges), then stop publishing and drain until every expected delivery
//! arrived or nothing moved for a second.

mod gen;
mod probe;
mod procstat;
mod scan;
mod ws;

use clap::Parser;
use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Parser, Debug)]
#[command(
    name = "loadgen",
    about = "Load generator for tracecast-compatible WebSocket servers"
)]
struct Args {
    /// Server endpoint.
    #[arg(long, default_value = "ws://127.0.0.1:8080/ws")]
    url: String,
    /// Subscriber connections, spread round-robin over the sessions.
    #[arg(long, default_value_t = 0)]
    subscribers: usize,
    /// Sessions ("s-0" … "s-{N-1}").
    #[arg(long, default_value_t = 1)]
    sessions: usize,
    /// Publisher connections; messages rotate over publishers and sessions.
    #[arg(long, default_value_t = 1)]
    publishers: usize,
    /// Total events per second over all publishers; 0 = flat out (closed loop).
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// Events per publish message.
    #[arg(long, default_value_t = 10)]
    batch: usize,
    /// Measured seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Unmeasured seconds of load before the window.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Flat out only: publishers pause while expected-but-undelivered deliveries exceed this.
    #[arg(long, default_value_t = 100_000)]
    max_outstanding: u64,
    /// Server process to sample in /proc (CPU seconds, VmHWM, VmRSS).
    #[arg(long)]
    server_pid: Option<u32>,
    /// Extra connections that only upgrade and hold.
    #[arg(long, default_value_t = 0)]
    idle: usize,
    /// Free text copied into the output.
    #[arg(long, default_value = "run")]
    label: String,
    /// Connections being opened at once (avoids overflowing the server's accept backlog).
    #[arg(long, default_value_t = 256)]
    connect_concurrency: usize,
    /// Give up waiting for connections after this many seconds and run with what is ready.
    #[arg(long, default_value_t = 60.0)]
    setup_timeout: f64,
    /// Longest wait for in-flight deliveries after the window.
    #[arg(long, default_value_t = 10.0)]
    drain_timeout: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Sub(usize),
    Pub,
    Idle,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum St {
    Connecting,
    Upgrading,
    Open,
    Closed,
}

struct Conn {
    stream: Option<TcpStream>,
    role: Role,
    st: St,
    rbuf: Vec<u8>,
    wbuf: Vec<u8>,
    wpos: usize,
    frag: Vec<u8>,
    in_frag: bool,
    ready: bool,
    last_seq: u64,
}

impl Conn {
    fn pending_write(&self) -> usize {
        self.wbuf.len() - self.wpos
    }
}

/// Everything the frame handlers update; kept apart from the connections so a handler
/// can hold one connection and the stats at once.
struct Stats {
    now_ns: u64,
    win_start_ns: u64,
    win_end_ns: u64,
    ready: usize,
    delivered_total: u64,
    delivered_rx_window: u64,
    delivered_attr: u64,
    published_total: u64,
    published_window: u64,
    expected_total: u64,
    expected_window: u64,
    acked_events: u64,
    dropped_notices: u64,
    dropped_notified: u64,
    errors: u64,
    first_error: Option<String>,
    order_violations: u64,
    connect_failures: u64,
    first_connect_error: Option<String>,
    disconnects: u64,
    hist: Histogram<u64>,
}

impl Stats {
    fn new(hist: Histogram<u64>) -> Self {
        Stats {
            now_ns: 0,
            win_start_ns: u64::MAX,
            win_end_ns: u64::MAX,
            ready: 0,
            delivered_total: 0,
            delivered_rx_window: 0,
            delivered_attr: 0,
            published_total: 0,
            published_window: 0,
            expected_total: 0,
            expected_window: 0,
            acked_events: 0,
            dropped_notices: 0,
            dropped_notified: 0,
            errors: 0,
            first_error: None,
            order_violations: 0,
            connect_failures: 0,
            first_connect_error: None,
            disconnects: 0,
            hist,
        }
    }
}

const MAX_LATENCY_US: u64 = 60_000_000;
const CONTROL_MASK: [u8; 4] = [0x5a, 0x17, 0xc3, 0x09];
/// Rate mode: a publisher whose unsent bytes exceed this is skipped (the run falls behind
/// and says so) rather than buffering without bound.
const PUB_BACKLOG_LIMIT: usize = 4 << 20;
/// Flat mode: only publishers with less than this unsent get more work.
const FLAT_BACKLOG_LIMIT: usize = 256 << 10;

fn main() {
    // `loadgen probe …` replays hostile clients (see `probe`); everything else is load.
    if std::env::args().nth(1).as_deref() == Some("probe") {
        std::process::exit(probe::main(std::env::args().skip(2).collect()));
    }
    let args = Args::parse();
    match run(args) {
        Ok(line) => println!("{line}"),
        Err(e) => {
            eprintln!("loadgen: {e}");
            std::process::exit(1);
        }
    }
}

fn parse_url(url: &str) -> Result<(String, String), String> {
    let rest = url
        .strip_prefix("ws://")
        .ok_or_else(|| format!("only ws:// URLs are supported, got {url}"))?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if host.is_empty() {
        return Err(format!("no host in {url}"));
    }
    Ok((host.to_string(), path.to_string()))
}

enum Phase {
    Setup,
    Run,
    Drain {
        since: Instant,
        last_progress: Instant,
        last_delivered: u64,
    },
}

struct App {
    args: Args,
    poll: Poll,
    conns: Vec<Conn>,
    roles: Vec<Role>,
    next_open: usize,
    inflight: usize,
    addr: SocketAddr,
    host: String,
    path: String,
    t0: Instant,
    st: Stats,
    gen: gen::EventGen,
    session_names: Vec<String>,
    subs_per_session: Vec<u64>,
    publishers: Vec<usize>,
    next_pub: usize,
    sent_msgs: u64,
    pub_start: Option<Instant>,
    scratch: Vec<u8>,
    msg: Vec<u8>,
}

fn run(args: Args) -> Result<String, String> {
    if args.sessions == 0 || args.batch == 0 {
        return Err("--sessions and --batch must be at least 1".into());
    }
    let (host, path) = parse_url(&args.url)?;
    let addr = host
        .to_socket_addrs()
        .map_err(|e| format!("resolve {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host} resolves to nothing"))?;
    let mut roles: Vec<Role> = (0..args.subscribers)
        .map(|i| Role::Sub(i % args.sessions))
        .collect();
    roles.extend(std::iter::repeat_n(Role::Pub, args.publishers));
    roles.extend(std::iter::repeat_n(Role::Idle, args.idle));
    let epoch_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let hist = Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).map_err(|e| e.to_string())?;
    let mut app = App {
        poll: Poll::new().map_err(|e| format!("poll: {e}"))?,
        conns: Vec::with_capacity(roles.len()),
        session_names: (0..args.sessions).map(|i| format!("s-{i}")).collect(),
        subs_per_session: vec![0; args.sessions],
        roles,
        next_open: 0,
        inflight: 0,
        addr,
        host,
        path,
        t0: Instant::now(),
        st: Stats::new(hist),
        gen: gen::EventGen::new(0x7ace, epoch_ms),
        publishers: Vec::new(),
        next_pub: 0,
        sent_msgs: 0,
        pub_start: None,
        scratch: vec![0; 512 << 10],
        msg: Vec::with_capacity(64 << 10),
        args,
    };
    app.main_loop()
}

impl App {
    fn ns(&self, t: Instant) -> u64 {
        t.duration_since(self.t0).as_nanos() as u64
    }

    fn open_more(&mut self) {
        while self.inflight < self.args.connect_concurrency && self.next_open < self.roles.len() {
            let role = self.roles[self.next_open];
            self.next_open += 1;
            let token = Token(self.conns.len());
            let mut conn = Conn {
                stream: None,
                role,
                st: St::Connecting,
                rbuf: Vec::new(),
                wbuf: Vec::new(),
                wpos: 0,
                frag: Vec::new(),
                in_frag: false,
                ready: false,
                last_seq: 0,
            };
            match TcpStream::connect(self.addr) {
                Ok(mut s) => {
                    match self.poll.registry().register(
                        &mut s,
                        token,
                        Interest::READABLE | Interest::WRITABLE,
                    ) {
                        Ok(()) => {
                            conn.stream = Some(s);
                            self.inflight += 1;
                        }
                        Err(e) => {
                            conn.st = St::Closed;
                            note_connect_failure(&mut self.st, format!("register: {e}"));
                        }
                    }
                }
                Err(e) => {
                    conn.st = St::Closed;
                    note_connect_failure(&mut self.st, format!("connect: {e}"));
                }
            }
            self.conns.push(conn);
        }
    }

    fn settled(&self) -> bool {
        self.next_open == self.roles.len()
            && self.inflight == 0
            && self.conns.iter().all(|c| c.ready || c.st == St::Closed)
    }

    fn close(&mut self, i: usize, why: Option<String>) {
        let Some(c) = self.conns.get_mut(i) else {
            return;
        };
        if c.st == St::Closed {
            return;
        }
        let was_setting_up = matches!(c.st, St::Connecting | St::Upgrading);
        if let Some(mut s) = c.stream.take() {
            let _ = self.poll.registry().deregister(&mut s);
        }
        c.st = St::Closed;
        if was_setting_up {
            self.inflight -= 1;
            note_connect_failure(
                &mut self.st,
                why.unwrap_or_else(|| "closed during setup".into()),
            );
        } else {
            self.st.disconnects += 1;
            if c.ready && self.st.first_error.is_none() {
                self.st.first_error = why.map(|w| format!("disconnect: {w}"));
            } else if !c.ready {
                note_connect_failure(
                    &mut self.st,
                    why.unwrap_or_else(|| "closed before ready".into()),
                );
            }
        }
    }

    fn flush(&mut self, i: usize) {
        let Some(c) = self.conns.get_mut(i) else {
            return;
        };
        let Some(s) = c.stream.as_mut() else { return };
        let mut err = None;
        while c.wpos < c.wbuf.len() {
            match s.write(&c.wbuf[c.wpos..]) {
                Ok(0) => {
                    err = Some("write returned 0".to_string());
                    break;
                }
                Ok(n) => c.wpos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    err = Some(format!("write: {e}"));
                    break;
                }
            }
        }
        if c.wpos == c.wbuf.len() {
            c.wbuf.clear();
            c.wpos = 0;
        } else if c.wpos > (1 << 20) {
            c.wbuf.drain(..c.wpos);
            c.wpos = 0;
        }
        if err.is_some() {
            self.close(i, err);
        }
    }

    fn on_event(&mut self, i: usize) {
        let Some(c) = self.conns.get_mut(i) else {
            return;
        };
        if c.st == St::Connecting {
            let Some(s) = c.stream.as_mut() else { return };
            if let Ok(Some(e)) | Err(e) = s.take_error() {
                self.close(i, Some(format!("connect: {e}")));
                return;
            }
            match s.peer_addr() {
                Ok(_) => {
                    let _ = s.set_nodelay(true);
                    c.st = St::Upgrading;
                    c.wbuf
                        .extend_from_slice(&ws::handshake_request(&self.host, &self.path));
                    self.flush(i);
                }
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return,
                Err(e) => {
                    self.close(i, Some(format!("connect: {e}")));
                    return;
                }
            }
        }
        self.read_all(i);
        self.flush(i);
    }

    fn read_all(&mut self, i: usize) {
        let mut scratch = std::mem::take(&mut self.scratch);
        let mut failure = None;
        while let Some(c) = self.conns.get_mut(i) {
            let Some(s) = c.stream.as_mut() else { break };
            let n = match s.read(&mut scratch) {
                Ok(0) => {
                    failure = Some("server closed the TCP connection".to_string());
                    break;
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    failure = Some(format!("read: {e}"));
                    break;
                }
            };
            self.st.now_ns = Instant::now().duration_since(self.t0).as_nanos() as u64;
            let data = &scratch[..n];
            if c.st == St::Upgrading {
                c.rbuf.extend_from_slice(data);
                match ws::parse_handshake_response(&c.rbuf) {
                    ws::Handshake::Partial => continue,
                    ws::Handshake::Failed(why) => {
                        failure = Some(why);
                        break;
                    }
                    ws::Handshake::Done(head) => {
                        c.rbuf.drain(..head);
                        c.st = St::Open;
                        self.inflight -= 1;
                        if let Role::Sub(session) = c.role {
                            let m = format!(
                                "{{\"type\":\"subscribe_session\",\"sessionId\":\"{}\"}}",
                                self.session_names[session]
                            );
                            ws::encode_masked(ws::OP_TEXT, m.as_bytes(), CONTROL_MASK, &mut c.wbuf);
                        }
                        let buf = std::mem::take(&mut c.rbuf);
                        let res = process(c, &buf, &mut self.st);
                        c.rbuf = buf;
                        match res {
                            Ok(used) => {
                                c.rbuf.drain(..used);
                            }
                            Err(why) => {
                                failure = Some(why);
                                break;
                            }
                        }
                    }
                }
                continue;
            }
            // Fast path: parse straight from the scratch buffer and keep only a partial tail.
            let res = if c.rbuf.is_empty() {
                process(c, data, &mut self.st).map(|used| c.rbuf.extend_from_slice(&data[used..]))
            } else {
                c.rbuf.extend_from_slice(data);
                let buf = std::mem::take(&mut c.rbuf);
                let res = process(c, &buf, &mut self.st);
                c.rbuf = buf;
                res.map(|used| {
                    c.rbuf.drain(..used);
                })
            };
            if let Err(why) = res {
                failure = Some(why);
                break;
            }
        }
        self.scratch = scratch;
        if failure.is_some() {
            self.close(i, failure);
        }
    }

    fn start_run(&mut self) {
        let now = Instant::now();
        for (i, c) in self.conns.iter().enumerate() {
            if !c.ready {
                continue;
            }
            match c.role {
                Role::Sub(s) => self.subs_per_session[s] += 1,
                Role::Pub => self.publishers.push(i),
                Role::Idle => {}
            }
        }
        let start = self.ns(now);
        self.st.win_start_ns = start + (self.args.warmup * 1e9) as u64;
        self.st.win_end_ns = self.st.win_start_ns + (self.args.duration * 1e9) as u64;
        self.pub_start = Some(now);
        let ready_subs: u64 = self.subs_per_session.iter().sum();
        eprintln!(
            "loadgen[{}]: ready after {:.1}s: {} subscribers, {} publishers, {} idle ready, {} failed",
            self.args.label,
            start as f64 / 1e9,
            ready_subs,
            self.publishers.len(),
            self.conns.iter().filter(|c| c.ready && c.role == Role::Idle).count(),
            self.st.connect_failures
        );
    }

    /// Queues one publish message on publisher `p`; false when it is backed up.
    fn publish_one(&mut self, p: usize, limit: usize) -> bool {
        let Some(c) = self.conns.get(p) else {
            return false;
        };
        if c.st != St::Open || c.pending_write() > limit {
            return false;
        }
        let session = (self.sent_msgs % self.args.sessions as u64) as usize;
        let now_ns = self.ns(Instant::now());
        self.msg.clear();
        let k = self.args.batch;
        self.gen
            .write_publish(&self.session_names[session], k, now_ns, &mut self.msg);
        let mask = self.gen.mask();
        let Some(c) = self.conns.get_mut(p) else {
            return false;
        };
        ws::encode_masked(ws::OP_TEXT, &self.msg, mask, &mut c.wbuf);
        self.sent_msgs += 1;
        let k = k as u64;
        let fan = k * self.subs_per_session[session];
        self.st.published_total += k;
        self.st.expected_total += fan;
        if now_ns >= self.st.win_start_ns && now_ns < self.st.win_end_ns {
            self.st.published_window += k;
            self.st.expected_window += fan;
        }
        self.flush(p);
        true
    }

    fn next_publisher(&mut self) -> Option<usize> {
        let p = *self
            .publishers
            .get(self.next_pub % self.publishers.len().max(1))?;
        self.next_pub = self.next_pub.wrapping_add(1);
        Some(p)
    }

    /// Sends what is due; returns how long the loop may sleep.
    fn publish_due(&mut self) -> Duration {
        let Some(start) = self.pub_start else {
            return Duration::from_millis(10);
        };
        if self.publishers.is_empty() {
            return Duration::from_millis(10);
        }
        let per_msg = self.args.batch as f64;
        if self.args.rate > 0.0 {
            let elapsed = start.elapsed().as_secs_f64();
            let due = (elapsed * self.args.rate / per_msg) as u64 + 1;
            let mut refusals = 0;
            while self.sent_msgs < due && refusals < self.publishers.len() {
                match self.next_publisher() {
                    Some(p) if self.publish_one(p, PUB_BACKLOG_LIMIT) => refusals = 0,
                    _ => refusals += 1,
                }
            }
            if self.sent_msgs < due {
                return Duration::from_millis(1);
            }
            let next_at = self.sent_msgs as f64 * per_msg / self.args.rate;
            Duration::from_secs_f64((next_at - start.elapsed().as_secs_f64()).clamp(0.0, 0.01))
        } else {
            // Closed loop: bounded per turn so inbound deliveries keep being read.
            let mut refusals = 0;
            for _ in 0..64 {
                let outstanding = self
                    .st
                    .expected_total
                    .saturating_sub(self.st.delivered_total + self.st.dropped_notified);
                if outstanding >= self.args.max_outstanding || refusals >= self.publishers.len() {
                    break;
                }
                match self.next_publisher() {
                    Some(p) if self.publish_one(p, FLAT_BACKLOG_LIMIT) => refusals = 0,
                    _ => refusals += 1,
                }
            }
            Duration::from_millis(1)
        }
    }

    fn main_loop(&mut self) -> Result<String, String> {
        let mut events = Events::with_capacity(4096);
        let mut phase = Phase::Setup;
        let setup_deadline = Instant::now() + Duration::from_secs_f64(self.args.setup_timeout);
        let server = self.args.server_pid.map(|p| p.to_string());
        let mut srv_start = None;
        let mut self_start = None;
        let mut srv_end = None;
        let mut self_end = None;
        let mut window_real = self.args.duration;
        let mut host_start = None;
        let mut host_end = None;
        let mut win_started_at = None;
        loop {
            let timeout = match phase {
                Phase::Setup => {
                    self.open_more();
                    Duration::from_millis(10)
                }
                Phase::Run => self.publish_due(),
                Phase::Drain { .. } => Duration::from_millis(10),
            };
            match self.poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("poll: {e}")),
            }
            for ev in events.iter() {
                self.on_event(ev.token().0);
            }
            let now = Instant::now();
            let now_ns = self.ns(now);
            match phase {
                Phase::Setup => {
                    if self.settled() || now >= setup_deadline {
                        if !self.settled() {
                            eprintln!(
                                "loadgen[{}]: setup timed out; running with what is ready",
                                self.args.label
                            );
                        }
                        self.start_run();
                        phase = Phase::Run;
                    }
                }
                Phase::Run => {
                    if srv_start.is_none() && now_ns >= self.st.win_start_ns {
                        srv_start = Some(server.as_deref().and_then(procstat::sample));
                        self_start = procstat::sample("self");
                        host_start = procstat::host_busy();
                        win_started_at = Some(now);
                    }
                    if now_ns >= self.st.win_end_ns {
                        srv_end = Some(server.as_deref().and_then(procstat::sample));
                        self_end = procstat::sample("self");
                        host_end = procstat::host_busy();
                        if let Some(t) = win_started_at {
                            window_real = now.duration_since(t).as_secs_f64();
                        }
                        phase = Phase::Drain {
                            since: now,
                            last_progress: now,
                            last_delivered: self.st.delivered_total,
                        };
                    }
                }
                Phase::Drain {
                    since,
                    last_progress,
                    last_delivered,
                } => {
                    let outstanding = self
                        .st
                        .expected_total
                        .saturating_sub(self.st.delivered_total + self.st.dropped_notified);
                    let (lp, ld) = if self.st.delivered_total != last_delivered {
                        (now, self.st.delivered_total)
                    } else {
                        (last_progress, last_delivered)
                    };
                    if outstanding == 0
                        || now.duration_since(lp) > Duration::from_secs(1)
                        || now.duration_since(since).as_secs_f64() > self.args.drain_timeout
                    {
                        break;
                    }
                    phase = Phase::Drain {
                        since,
                        last_progress: lp,
                        last_delivered: ld,
                    };
                }
            }
        }
        Ok(self.report(
            srv_start.flatten(),
            srv_end.flatten(),
            self_start,
            self_end,
            host_start.zip(host_end),
            window_real,
        ))
    }

    fn report(
        &self,
        srv_start: Option<procstat::Sample>,
        srv_end: Option<procstat::Sample>,
        self_start: Option<procstat::Sample>,
        self_end: Option<procstat::Sample>,
        host: Option<(procstat::HostCpu, procstat::HostCpu)>,
        window: f64,
    ) -> String {
        let a = &self.args;
        let st = &self.st;
        let window = window.max(1e-9);
        let cpu = |s: Option<procstat::Sample>, e: Option<procstat::Sample>| {
            s.zip(e).map(|(s, e)| e.cpu_s - s.cpu_s)
        };
        let server_cpu = cpu(srv_start, srv_end);
        let own_cpu = cpu(self_start, self_end);
        let own_pct = own_cpu.map(|c| 100.0 * c / window);
        let saturated = own_pct.is_some_and(|p| p >= 90.0);
        if saturated {
            eprintln!(
                "loadgen[{}]: WARNING loadgen used {:.0}% of its core: it may be the bottleneck, not the server",
                a.label,
                own_pct.unwrap_or(0.0)
            );
        }
        // Busy CPU on the machine that was neither the server nor the loadgen, in % of
        // one core: high values mean the run shared its cores with something else.
        let other_pct = host.and_then(|(a, b)| {
            let busy_pct = procstat::busy_core_pct(a, b)?;
            let ours = server_cpu.unwrap_or(0.0) + own_cpu.unwrap_or(0.0);
            Some((busy_pct - 100.0 * ours / window).max(0.0))
        });
        let contended = other_pct.is_some_and(|p| p >= 20.0);
        if contended {
            eprintln!(
                "loadgen[{}]: WARNING other processes used {:.0}% of a core during the window: figures are disturbed",
                a.label,
                other_pct.unwrap_or(0.0)
            );
        }
        let h = &st.hist;
        let lat = |q: f64| {
            if h.is_empty() {
                None
            } else {
                Some(h.value_at_quantile(q))
            }
        };
        let count_ready =
            |r: fn(&Role) -> bool| self.conns.iter().filter(|c| c.ready && r(&c.role)).count();
        let round = |x: f64| (x * 100.0).round() / 100.0;
        let v = serde_json::json!({
            "label": a.label,
            "url": a.url,
            "mode": if a.rate > 0.0 { "fixed" } else { "flat" },
            "subscribers": a.subscribers,
            "sessions": a.sessions,
            "publishers": a.publishers,
            "batch": a.batch,
            "idle": a.idle,
            "rate_target": a.rate,
            "max_outstanding": if a.rate > 0.0 { None } else { Some(a.max_outstanding) },
            "duration_s": round(window),
            "warmup_s": a.warmup,
            "ready": {
                "subscribers": count_ready(|r| matches!(r, Role::Sub(_))),
                "publishers": count_ready(|r| *r == Role::Pub),
                "idle": count_ready(|r| *r == Role::Idle),
                "connect_failures": st.connect_failures,
                "first_failure": st.first_connect_error,
            },
            "published": st.published_window,
            "published_per_sec": round(st.published_window as f64 / window),
            "expected": st.expected_window,
            "delivered": st.delivered_attr,
            "deliveries_per_sec": round(st.delivered_rx_window as f64 / window),
            "published_total": st.published_total,
            "expected_total": st.expected_total,
            "delivered_total": st.delivered_total,
            "acked_events": st.acked_events,
            "latency_us": {
                "p50": lat(0.5), "p90": lat(0.9), "p99": lat(0.99), "p999": lat(0.999),
                "max": if h.is_empty() { None } else { Some(h.max()) },
                "samples": h.len(),
            },
            "drops": {
                "missing": st.expected_window.saturating_sub(st.delivered_attr),
                "missing_total": st.expected_total.saturating_sub(st.delivered_total),
                "events_dropped_notices": st.dropped_notices,
                "events_dropped_count": st.dropped_notified,
            },
            "errors": st.errors,
            "first_error": st.first_error,
            "order_violations": st.order_violations,
            "disconnects": st.disconnects,
            "server_pid": a.server_pid,
            "server_cpu_s": server_cpu.map(round),
            "server_cpu_pct": server_cpu.map(|c| round(100.0 * c / window)),
            "server_cpu_ns_per_delivery": server_cpu
                .filter(|_| st.delivered_rx_window > 0)
                .map(|c| round(c * 1e9 / st.delivered_rx_window as f64)),
            "server_peak_rss_kb": srv_end.and_then(|s| s.hwm_kb),
            "server_rss_kb_start": srv_start.and_then(|s| s.rss_kb),
            "server_rss_kb_end": srv_end.and_then(|s| s.rss_kb),
            "loadgen_cpu_pct": own_pct.map(round),
            "loadgen_saturated": saturated,
            "other_cpu_pct": other_pct.map(round),
            "contended": contended,
        });
        v.to_string()
    }
}

fn note_connect_failure(st: &mut Stats, why: String) {
    st.connect_failures += 1;
    if st.first_connect_error.is_none() {
        st.first_connect_error = Some(why);
    }
}

/// Parses and handles every complete frame in `data`; returns the bytes used.
fn process(c: &mut Conn, data: &[u8], st: &mut Stats) -> Result<usize, String> {
    let mut used = 0;
    loop {
        match ws::parse_frame(&data[used..]) {
            ws::Parse::Partial => return Ok(used),
            ws::Parse::Invalid(why) => return Err(why.to_string()),
            ws::Parse::Complete(f, n) => {
                used += n;
                match f.opcode {
                    ws::OP_TEXT | ws::OP_BINARY if f.fin => on_message(c, f.payload, st),
                    ws::OP_TEXT | ws::OP_BINARY => {
                        c.frag.clear();
                        c.frag.extend_from_slice(f.payload);
                        c.in_frag = true;
                    }
                    ws::OP_CONT => {
                        if !c.in_frag {
                            return Err("continuation without a first fragment".into());
                        }
                        c.frag.extend_from_slice(f.payload);
                        if f.fin {
                            let m = std::mem::take(&mut c.frag);
                            on_message(c, &m, st);
                            c.frag = m;
                            c.frag.clear();
                            c.in_frag = false;
                        }
                    }
                    ws::OP_PING => {
                        ws::encode_masked(ws::OP_PONG, f.payload, CONTROL_MASK, &mut c.wbuf)
                    }
                    ws::OP_PONG => {}
                    ws::OP_CLOSE => {
                        let code = f
                            .payload
                            .get(..2)
                            .map(|b| u16::from_be_bytes([b[0], b[1]]))
                            .unwrap_or(1005);
                        let reason = String::from_utf8_lossy(f.payload.get(2..).unwrap_or(b""));
                        return Err(format!("server sent close {code} {reason}"));
                    }
                    _ => return Err(format!("unknown opcode {}", f.opcode)),
                }
            }
        }
    }
}

fn on_message(c: &mut Conn, msg: &[u8], st: &mut Stats) {
    match scan::message_type(msg) {
        b"trace_batch" => {
            let (ws_, we) = (st.win_start_ns, st.win_end_ns);
            let now = st.now_ns;
            let hist = &mut st.hist;
            let mut last = c.last_seq;
            let mut violations = 0;
            let mut attributed = 0;
            let n = scan::scan_batch(msg, |s| {
                if let Some(q) = s.seq {
                    if q <= last {
                        violations += 1;
                    }
                    last = q;
                }
                if let Some(lg) = s.lg_ns {
                    if lg >= ws_ && lg < we {
                        attributed += 1;
                        let us = (now.saturating_sub(lg) / 1000).clamp(1, MAX_LATENCY_US);
                        let _ = hist.record(us);
                    }
                }
            });
            c.last_seq = last;
            st.order_violations += violations;
            st.delivered_total += n;
            st.delivered_attr += attributed;
            if now >= ws_ && now < we {
                st.delivered_rx_window += n;
            }
        }
        b"session_info" => mark_ready(c, st, true),
        b"connection" => mark_ready(c, st, false),
        b"publish_ack" => st.acked_events += scan::number_field(msg, "count").unwrap_or(0),
        b"events_dropped" => {
            st.dropped_notices += 1;
            st.dropped_notified += scan::number_field(msg, "count").unwrap_or(0);
        }
        b"error" => {
            st.errors += 1;
            if st.first_error.is_none() {
                let end = msg.len().min(300);
                st.first_error = Some(String::from_utf8_lossy(&msg[..end]).into_owned());
            }
        }
        _ => {}
    }
}

/// Subscribers are ready at `session_info`, everyone else at `connection`.
fn mark_ready(c: &mut Conn, st: &mut Stats, is_session_info: bool) {
    let wants_session_info = matches!(c.role, Role::Sub(_));
    if !c.ready && wants_session_info == is_session_info {
        c.ready = true;
        st.ready += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(op: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![0x80 | op];
        if payload.len() < 126 {
            v.push(payload.len() as u8);
        } else {
            v.push(126);
            v.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        }
        v.extend_from_slice(payload);
        v
    }

    fn conn(role: Role) -> Conn {
        Conn {
            stream: None,
            role,
            st: St::Open,
            rbuf: Vec::new(),
            wbuf: Vec::new(),
            wpos: 0,
            frag: Vec::new(),
            in_frag: false,
            ready: false,
            last_seq: 0,
        }
    }

    #[test]
    fn counts_deliveries_across_split_reads() {
        let hist = Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("histogram");
        let mut st = Stats::new(hist);
        st.win_start_ns = 1_000;
        st.win_end_ns = 10_000_000;
        st.now_ns = 5_000_000;
        let mut c = conn(Role::Sub(0));
        let mut wire = frame(ws::OP_TEXT, br#"{"type":"connection","clientId":"c-1"}"#);
        wire.extend(frame(
            ws::OP_TEXT,
            br#"{"type":"session_info","session":{"id":"s-0"}}"#,
        ));
        wire.extend(frame(
            ws::OP_TEXT,
            br#"{"type":"initial_traces","traces":[{"seq":1,"data":{"lg_ns":2000}}]}"#,
        ));
        wire.extend(frame(ws::OP_PING, b"hi"));
        wire.extend(frame(
            ws::OP_TEXT,
            br#"{"type":"trace_batch","sessionId":"s-0","events":[{"seq":5,"data":{"lg_ns":500}},{"seq":6,"data":{"lg_ns":3000000}}],"compression":"none","timestamp":1}"#,
        ));
        wire.extend(frame(
            ws::OP_TEXT,
            br#"{"type":"trace_batch","events":[{"seq":4}]}"#,
        ));
        wire.extend(frame(
            ws::OP_TEXT,
            br#"{"type":"events_dropped","sessionId":"s-0","count":7,"fromSeq":8,"toSeq":14}"#,
        ));
        // Feed it in awkward pieces, as TCP would.
        let mut pending = Vec::new();
        for chunk in wire.chunks(13) {
            pending.extend_from_slice(chunk);
            let used = process(&mut c, &pending, &mut st).expect("valid stream");
            pending.drain(..used);
        }
        assert!(pending.is_empty());
        assert!(c.ready);
        assert_eq!(st.delivered_total, 3);
        // lg_ns 500 was published before the window; the initial_traces event is not live.
        assert_eq!(st.delivered_attr, 1);
        assert_eq!(st.hist.len(), 1);
        assert_eq!(st.order_violations, 1);
        assert_eq!((st.dropped_notices, st.dropped_notified), (1, 7));
        // The ping was answered with a masked pong.
        assert_eq!(c.wbuf.first(), Some(&(0x80 | ws::OP_PONG)));
    }

    #[test]
    fn close_frame_ends_the_connection() {
        let hist = Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("histogram");
        let mut st = Stats::new(hist);
        let mut c = conn(Role::Idle);
        let wire = frame(ws::OP_CLOSE, b"\x03\xe9bye");
        let err = process(&mut c, &wire, &mut st).expect_err("close is terminal");
        assert!(err.contains("1001"), "{err}");
    }

    #[test]
    fn parses_urls() {
        assert_eq!(
            parse_url("ws://127.0.0.1:9000/ws"),
            Ok(("127.0.0.1:9000".into(), "/ws".into()))
        );
        assert_eq!(parse_url("ws://h:1"), Ok(("h:1".into(), "/".into())));
        assert!(parse_url("wss://h:1/ws").is_err());
        assert!(parse_url("ws:///ws").is_err());
    }
}
