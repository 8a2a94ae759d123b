//! Sustained append on one core: the ingest path of `POST /v1/events` (parse, validate,
//! append to the durable log with `fsync = "interval"`) run back to back for tens of
//! millions of events, printing the rate of every slice. The criterion bench
//! (`benches/pipeline.rs`) measures a few seconds on a fresh log; this shows whether
//! the rate holds once the log is many gigabytes (page cache, index growth, segment
//! rolls, the fsync thread's work).
//!
//! ```sh
//! cargo build --release -p tracecast-loadgen --bin append-soak
//! taskset -c 1 target/release/append-soak --events 24000000
//! ```

use clap::Parser;
use std::time::Instant;
use tracecast::config::{FsyncPolicy, StorageConfig};
use tracecast::ingest::{parse_body, validate, IngestContext, JsonBuffers};
use tracecast::store::{EventLog, LogStore};

#[path = "../../../../benches/support/workload.rs"]
mod workload;
use workload::body;

#[derive(Parser)]
struct Args {
    /// Events per HTTP body.
    #[arg(long, default_value_t = 50)]
    batch: usize,
    /// Events in all.
    #[arg(long, default_value_t = 24_000_000)]
    events: usize,
    /// Events per printed slice.
    #[arg(long, default_value_t = 2_000_000)]
    slice: usize,
    /// Log directory (default: a temporary one, removed at the end).
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
    /// `storage.page_cache_bytes`.
    #[arg(long, default_value_t = StorageConfig::default().page_cache_bytes)]
    page_cache_bytes: u64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let temp = tempfile::tempdir()?;
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| temp.path().to_path_buf());
    let cfg = StorageConfig {
        fsync: FsyncPolicy::Interval,
        page_cache_bytes: args.page_cache_bytes,
        ..StorageConfig::default()
    };
    let (mut store, _) = LogStore::open(&dir, &cfg, Box::new(|| {}))?;
    let mut bufs = JsonBuffers::default();
    let mut ctx = IngestContext::new(65_536, 1_732_550_000_000, 1);
    let template = body(args.batch.max(1));
    let mut scratch = template.clone();
    let (mut done, mut mark) = (0usize, 0usize);
    let mut rates = Vec::new();
    let mut t = Instant::now();
    println!("events  rate (M events/s)");
    while done < args.events {
        // Restoring the body stands in for the socket read into the read buffer.
        scratch.clear();
        scratch.extend_from_slice(&template);
        let events = parse_body(&mut scratch, &mut bufs)?;
        let pending = validate(&events, &mut ctx)?;
        bufs.recycle(events);
        drop(store.append(pending)?);
        // What the loop does each turn: collect what the fsync thread reported.
        let _ = store.poll_sync();
        done += args.batch.max(1);
        if done - mark >= args.slice {
            let rate = (done - mark) as f64 / t.elapsed().as_secs_f64() / 1e6;
            println!("{:>5}M  {rate:.3}", done / 1_000_000);
            rates.push(rate);
            mark = done;
            t = Instant::now();
        }
    }
    rates.sort_by(f64::total_cmp);
    if let (Some(min), Some(mid)) = (rates.first(), rates.get(rates.len() / 2)) {
        println!(
            "slices: {}  median {mid:.3}  min {min:.3} M events/s",
            rates.len()
        );
    }
    Ok(())
}
