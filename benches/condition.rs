//! The condition language (SPEC §7): evaluation on a stored event, compilation, and
//! what breakpoints and filters cost the fan-out.
//!
//! - `condition/eval_*`: a typical condition on a ~250-byte event. A counting global
//!   allocator checks the evaluation allocates nothing: the count is printed before the
//!   timing and the bench fails if it is not 0.
//! - `condition/compile_typical`: compiling that condition.
//! - `fanout_conditions/*`: one 50-event batch to 1,000 subscribers' write queues, as
//!   benches/fanout.rs does, without conditions, with a never-hitting breakpoint on
//!   every subscriber, and with 10 distinct filters (100 subscribers each). Throughput
//!   is in delivered events, so the figures compare per delivered event.

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::io::{IoSlice, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tracecast::condition::Condition;
use tracecast::config::BackpressureConfig;
use tracecast::event::{Event, EventRef};
use tracecast::hub::encode::BatchEncoder;
use tracecast::hub::{Audience, ConnId, Hub, Watch};
use tracecast::server::queue::{EventSpan, WriteQueue};

/// Counts allocations, then defers to the system allocator.
struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded unchanged to `System`, which upholds the contract.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same layout, forwarded.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const TYPICAL: &str = r#"data.status === "error" && data.retries > 2"#;

/// A ~250-byte stored event (`hit`: the typical condition matches it).
fn event_json(hit: bool) -> String {
    let status = if hit { "error" } else { "ok" };
    format!(
        r#"{{"seq":123456,"id":"18c2f-1a2b","timestamp":1732550000000,"type":"TASK_FAIL","sessionId":"swarm-7","agentId":"planner-3","traceId":"trace-00000042","data":{{"status":"{status}","retries":3,"tool":"web.search","msg":"upstream timeout after 30s"}},"metadata":{{"model":"planner-v2"}}}}"#
    )
}

fn allocations_of(f: impl Fn()) -> u64 {
    let before = ALLOCS.load(Ordering::Relaxed);
    for _ in 0..10_000 {
        f();
    }
    ALLOCS.load(Ordering::Relaxed) - before
}

fn eval(c: &mut Criterion) {
    let cond = Condition::compile(TYPICAL).expect("compiles");
    let hit = event_json(true);
    let miss = event_json(false);
    println!("event size: {} bytes", hit.len());
    for (name, json) in [("hit", &hit), ("miss", &miss)] {
        let n = allocations_of(|| {
            black_box(cond.matches(black_box(json.as_bytes())));
        });
        println!("allocations in 10,000 evaluations ({name}): {n}");
        assert_eq!(n, 0, "evaluation allocated");
    }
    let mut g = c.benchmark_group("condition");
    g.bench_function("eval_typical_hit", |b| {
        b.iter(|| black_box(cond.matches(black_box(hit.as_bytes()))))
    });
    g.bench_function("eval_typical_miss", |b| {
        b.iter(|| black_box(cond.matches(black_box(miss.as_bytes()))))
    });
    g.bench_function("compile_typical", |b| {
        b.iter(|| black_box(Condition::compile(black_box(TYPICAL))))
    });
    g.finish();
}

const SUBSCRIBERS: u32 = 1000;

fn events(n: u64) -> Vec<EventRef> {
    (0..n)
        .map(|i| {
            let json = format!(
                r#"{{"seq":{i},"id":"e-{i}","timestamp":1732550000000,"type":"TASK_START","sessionId":"s-1","agentId":"agent-{a}","traceId":"trace-{i:08}","spanId":"span-{i:08}","data":{{"taskId":"task-{t}","tool":"web.search","n":{i}}},"metadata":{{"model":"planner-v2","region":"eu-west"}}}}"#,
                a = i % 7,
                t = i % 17
            );
            Arc::new(Event {
                seq: i,
                timestamp: 1_732_550_000_000,
                session: "s-1".into(),
                agent: Some(format!("agent-{}", i % 7).into()),
                kind: "TASK_START".into(),
                json: Bytes::from(json),
            })
        })
        .collect()
}

struct Sink(u64);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> std::io::Result<usize> {
        let n: usize = bufs.iter().map(|b| b.len()).sum();
        self.0 += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One fan-out case: the hub as `setup` leaves it, then publish + flush + write.
fn run_case(c: &mut Criterion, name: &str, delivered: u64, setup: impl Fn(&mut Hub, &Arc<str>)) {
    let session: Arc<str> = "s-1".into();
    let mut hub = Hub::new(50);
    setup(&mut hub, &session);
    let cfg = BackpressureConfig::default();
    let mut queues: Vec<WriteQueue> = (0..SUBSCRIBERS).map(|_| WriteQueue::new(&cfg)).collect();
    let mut encoder = BatchEncoder::new(6, 1024);
    let batch = events(50);
    let mut sink = Sink(0);
    let mut g = c.benchmark_group("fanout_conditions");
    g.throughput(Throughput::Elements(delivered));
    g.bench_function(name, |b| {
        b.iter(|| {
            hub.publish(&batch);
            let mut n = 0u64;
            hub.flush_with(
                |aud, s, evs| encoder.encode(aud, s, evs, 1_732_550_000_000),
                |conn, frame: &Bytes, info| {
                    n += info.count;
                    let span = EventSpan {
                        session: info.session.clone(),
                        first_seq: info.first_seq,
                        last_seq: info.last_seq,
                        count: info.count,
                    };
                    queues[conn.key as usize].push_events(frame.clone(), span);
                },
                |_| panic!("no breakpoint hits in this bench"),
            );
            assert_eq!(n, delivered);
            for q in &mut queues {
                black_box(q.flush(&mut sink).ok());
            }
        })
    });
    g.finish();
}

fn fanout(c: &mut Criterion) {
    let conn = |key| ConnId { key, gen: 1 };
    run_case(c, "plain_1000", 50 * 1000, |hub, s| {
        for key in 0..SUBSCRIBERS {
            hub.subscribe(s, conn(key), Audience::plain());
        }
    });
    // Every subscriber has a breakpoint that never hits, the same condition (the server
    // interns equal conditions, so they share one `Arc`, as here).
    let never = Arc::new(Condition::compile(TYPICAL).expect("compiles"));
    run_case(c, "never_hitting_breakpoint_1000", 50 * 1000, |hub, s| {
        for key in 0..SUBSCRIBERS {
            let cond = never.clone();
            let watch = Watch {
                conditions: vec![cond],
                names: vec!["bp".into()],
                step: false,
            };
            hub.subscribe_watching(s, conn(key), Audience::plain(), Some(Arc::new(watch)));
        }
    });
    // 10 distinct filters, 100 subscribers each; filter k keeps the events with
    // data.n >= k (so audiences get 50..41 events).
    let kept: u64 = (0..10u64).map(|k| (50 - k) * 100).sum();
    run_case(c, "ten_filters_1000_broad", kept, |hub, s| {
        for key in 0..SUBSCRIBERS {
            let cond = Condition::compile(&format!("data.n >= {}", key % 10)).expect("compiles");
            let audience = Audience {
                filter: Some(Arc::new(cond)),
                ..Audience::plain()
            };
            hub.subscribe(s, conn(key), audience);
        }
    });
    // 10 distinct filters that split the batch: filter k keeps data.n in 5k..5k+5.
    run_case(c, "ten_filters_1000_selective", 5 * 1000, |hub, s| {
        for key in 0..SUBSCRIBERS {
            let k = key % 10;
            let src = format!("data.n >= {} && data.n < {}", 5 * k, 5 * k + 5);
            let audience = Audience {
                filter: Some(Arc::new(Condition::compile(&src).expect("compiles"))),
                ..Audience::plain()
            };
            hub.subscribe(s, conn(key), audience);
        }
    });
}

criterion_group!(benches, eval, fanout);
criterion_main!(benches);
