//! `wire-bytes`: bytes on the wire per delivered event, for each way a subscriber can
//! receive live batches (JSON, delta, binary, each with and without permessage-deflate).
//!
//! The workload is a trace of agents working in sessions: every SPEC §2 event type, with
//! the `data` a producer typically sends (task descriptions, tool inputs, message text,
//! metrics), ids the server assigns, and the producer's trace/span ids. The events go
//! through the real ingest path (parse, validate, server-assigned `id`/`timestamp`) and
//! the real frame encoder the hub uses (`BatchEncoder`), so a figure is exactly the bytes
//! a subscriber's socket receives for those events: frame header included.
//!
//! Frames hold the consecutive events of one session, up to `--batch` of them (what one
//! loop turn gathers; 50 is the server's default batch size, 1 a quiet stream).
//!
//! Usage: wire-bytes [--agents 12] [--sessions 4] [--events 20000] [--batch 1,10,50]
//! [--level 6] (the deflate level, `compression_level` in the server config)

use std::fmt::Write as _;
use tracecast::event::Event;
use tracecast::hub::encode::BatchEncoder;
use tracecast::hub::Audience;
use tracecast::ingest::{parse_body, validate, IngestContext, JsonBuffers};

/// xorshift64*: a fixed, reproducible stream of choices.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len() as u64) as usize]
    }
}

const TOOLS: &[&str] = &[
    "web.search",
    "code.exec",
    "fs.read",
    "fs.write",
    "http.get",
    "sql.query",
];
const WORDS: &[&str] = &[
    "the", "result", "of", "query", "returned", "rows", "page", "summary", "next", "step", "plan",
    "agent", "fetch", "parse", "document", "error", "retry", "context", "tokens", "answer",
];
const STATES: &[&str] = &["idle", "planning", "executing", "waiting", "reviewing"];
const MODELS: &[&str] = &["planner-v2", "coder-v3", "critic-v1"];

fn sentence(r: &mut Rng, words: usize) -> String {
    (0..words)
        .map(|_| r.pick(WORDS))
        .collect::<Vec<_>>()
        .join(" ")
}

/// One agent's next event (as a producer writes it) in session `s`.
fn producer_event(r: &mut Rng, agent: usize, session: usize, step: u64, now: i64) -> String {
    let kinds = [
        "TASK_START",
        "TASK_COMPLETE",
        "TASK_FAIL",
        "MESSAGE_SEND",
        "MESSAGE_RECEIVE",
        "STATE_CHANGE",
        "COORDINATION_EVENT",
        "PERFORMANCE_METRIC",
    ];
    let kind = match step {
        0 => "AGENT_SPAWN",
        _ if r.below(400) == 0 => "AGENT_DESTROY",
        _ => kinds[r.below(kinds.len() as u64) as usize],
    };
    let task = step / 6;
    let data = match kind {
        "AGENT_SPAWN" => format!(
            r#"{{"role":"{}","model":"{}","capabilities":["{}","{}"]}}"#,
            r.pick(&["planner", "coder", "reviewer", "researcher"]),
            r.pick(MODELS),
            r.pick(TOOLS),
            r.pick(TOOLS)
        ),
        "AGENT_DESTROY" => r#"{"reason":"task finished"}"#.to_owned(),
        "TASK_START" => format!(
            r#"{{"taskId":"task-{agent}-{task}","description":"{}","tool":"{}","input":{{"query":"{}"}}}}"#,
            sentence(r, 6),
            r.pick(TOOLS),
            sentence(r, 4)
        ),
        "TASK_COMPLETE" => format!(
            r#"{{"taskId":"task-{agent}-{task}","status":"ok","output":{{"rows":{},"summary":"{}"}}}}"#,
            r.below(500),
            sentence(r, 8)
        ),
        "TASK_FAIL" => format!(
            r#"{{"taskId":"task-{agent}-{task}","status":"error","error":{{"code":"E{}","message":"{}"}},"retry":{}}}"#,
            100 + r.below(20),
            sentence(r, 5),
            r.below(3)
        ),
        "MESSAGE_SEND" | "MESSAGE_RECEIVE" => format!(
            r#"{{"messageId":"m-{:x}","from":"agent-{agent}","to":"agent-{}","content":"{}","tokens":{}}}"#,
            r.next() >> 20,
            r.below(12),
            sentence(r, 14),
            20 + r.below(400)
        ),
        "STATE_CHANGE" => format!(
            r#"{{"from":"{}","to":"{}","reason":"{}"}}"#,
            r.pick(STATES),
            r.pick(STATES),
            sentence(r, 3)
        ),
        "COORDINATION_EVENT" => format!(
            r#"{{"kind":"{}","participants":["agent-{agent}","agent-{}"],"round":{}}}"#,
            r.pick(&["vote", "handoff", "lock", "barrier"]),
            r.below(12),
            r.below(10)
        ),
        _ => format!(
            r#"{{"cpuPct":{}.{},"memoryMb":{},"latencyMs":{}.{},"tokensPerSec":{}}}"#,
            r.below(100),
            r.below(10),
            200 + r.below(800),
            r.below(900),
            r.below(10),
            r.below(120)
        ),
    };
    let duration = if kind.starts_with("TASK_") || kind == "PERFORMANCE_METRIC" {
        format!(r#","duration":{}.{}"#, r.below(5000), r.below(1000))
    } else {
        String::new()
    };
    format!(
        r#"{{"type":"{kind}","sessionId":"session-{session}-7f3a9c","agentId":"agent-{agent}","timestamp":{now},"traceId":"{:016x}{:016x}","spanId":"{:016x}","parentId":"{:016x}","phase":"{}"{duration},"data":{data},"metadata":{{"model":"{}","region":"eu-west-1","sdk":"tracecast-js/0.3.1"}}}}"#,
        (agent as u64) << 40 | task,
        0x9e37_79b9_7f4a_7c15_u64 ^ task,
        r.next(),
        r.next(),
        r.pick(&["plan", "execute", "review"]),
        r.pick(MODELS),
    )
}

fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| default.to_owned())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let agents: usize = arg(&args, "--agents", "12").parse().expect("--agents N");
    let sessions: usize = arg(&args, "--sessions", "4").parse().expect("--sessions N");
    let total: usize = arg(&args, "--events", "20000").parse().expect("--events N");
    let level: u8 = arg(&args, "--level", "6").parse().expect("--level 0..=9");
    let batches: Vec<usize> = arg(&args, "--batch", "1,10,50")
        .split(',')
        .map(|b| b.parse().expect("--batch N,N"))
        .collect();

    // Agents belong to sessions round-robin; events interleave agents at random, 5 ms apart.
    let mut r = Rng(0x5eed_cafe_f00d_1234);
    let mut steps = vec![0u64; agents];
    let mut bodies: Vec<Vec<String>> = vec![Vec::new(); sessions];
    let start = 1_765_000_000_000_i64;
    for i in 0..total {
        let a = r.below(agents as u64) as usize;
        let s = a % sessions;
        bodies[s].push(producer_event(&mut r, a, s, steps[a], start + 5 * i as i64));
        steps[a] += 1;
    }
    // Through ingest, in publishes of 50 per session, as a producer SDK sends them.
    let mut buffers = JsonBuffers::default();
    let mut ctx = IngestContext::new(65536, start, 7);
    let mut seq = 0u64;
    let mut stored: Vec<Vec<Event>> = Vec::new();
    for events in &bodies {
        let mut out = Vec::new();
        for chunk in events.chunks(50) {
            let mut body = format!("[{}]", chunk.join(",")).into_bytes();
            let values = parse_body(&mut body, &mut buffers).expect("workload parses");
            let pending = validate(&values, &mut ctx).expect("workload is valid");
            for p in pending {
                seq += 1;
                let mut json = format!("{{\"seq\":{seq},").into_bytes();
                json.extend_from_slice(&p.json_tail);
                out.push(Event {
                    seq,
                    timestamp: p.timestamp,
                    session: p.session,
                    agent: p.agent,
                    kind: p.kind,
                    json: json.into(),
                });
            }
            buffers.recycle(values);
        }
        stored.push(out);
    }
    let n_events: usize = stored.iter().map(Vec::len).sum();
    let mean_event =
        stored.iter().flatten().map(|e| e.json.len()).sum::<usize>() as f64 / n_events as f64;

    let modes: [(&str, Audience); 6] = [
        ("json", Audience::plain()),
        (
            "json+delta",
            Audience {
                delta: true,
                ..Audience::plain()
            },
        ),
        (
            "json+deflate",
            Audience {
                deflate: true,
                ..Audience::plain()
            },
        ),
        (
            "json+delta+deflate",
            Audience {
                delta: true,
                deflate: true,
                ..Audience::plain()
            },
        ),
        (
            "bin",
            Audience {
                binary: true,
                ..Audience::plain()
            },
        ),
        (
            "bin+deflate",
            Audience {
                binary: true,
                deflate: true,
                ..Audience::plain()
            },
        ),
    ];
    let mut report = String::new();
    let _ = writeln!(
        report,
        "{n_events} events, {agents} agents in {sessions} sessions, mean stored event {mean_event:.0} B, deflate level {level}; bytes per delivered event (frame headers included), reduction against json"
    );
    let _ = write!(report, "| mode |");
    for b in &batches {
        let _ = write!(report, " batch {b} | vs json |");
    }
    let _ = writeln!(report);
    let _ = writeln!(report, "|---|{}", "---|---|".repeat(batches.len()));
    let mut json_bytes = vec![0f64; batches.len()];
    for (name, audience) in &modes {
        let _ = write!(report, "| {name} |");
        for (bi, &b) in batches.iter().enumerate() {
            // The server's defaults: level 6, frames under 1 KiB sent uncompressed.
            let mut enc = BatchEncoder::new(level, 1024);
            let mut bytes = 0usize;
            for events in &stored {
                for frame in events.chunks(b.max(1)) {
                    let refs: Vec<&Event> = frame.iter().collect();
                    let session = &frame[0].session;
                    bytes += enc.encode(audience, session, &refs, start).len();
                }
            }
            let per = bytes as f64 / n_events as f64;
            if *name == "json" {
                json_bytes[bi] = per;
            }
            let _ = write!(
                report,
                " {per:.1} | {:.1} % |",
                100.0 * (1.0 - per / json_bytes[bi])
            );
        }
        let _ = writeln!(report);
    }
    print!("{report}");
}
