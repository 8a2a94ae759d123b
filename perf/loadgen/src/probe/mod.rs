//! `loadgen probe`: replays the hostile clients of SPEC §8 (the ones `tests/hostile.rs`
//! pins) against a running tracecast and judges each by the same bounds — the
//! server's RSS growth and CPU, a well-behaved watcher's heartbeat round trip, and what
//! the attacker is told.
//!
//! Each attack needs its own server (its own configuration, a fresh memory baseline),
//! so `perf/scripts/probe.sh` owns the servers and asks this tool what to start:
//! `probe list`, `probe config NAME`, `probe nofile NAME`; then `probe run NAME` prints
//! one JSON line, and `probe table FILE` prints the table and fails on any FAIL.
//! Only loopback addresses are accepted, and every loop is bounded in count and time.

mod attacks;
mod net;
mod watch;

use clap::{Parser, Subcommand};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "loadgen probe",
    about = "Replays hostile clients against a local tracecast"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Attack names, one a line, in run order.
    List,
    /// The TOML the server must run with for ATTACK (to append after bind/port/data_dir).
    Config { attack: String },
    /// The descriptor limit (ulimit -n) the server must run under for ATTACK; empty: any.
    Nofile { attack: String },
    /// Runs ATTACK against the server and prints one JSON line.
    Run {
        attack: String,
        /// The server; loopback only.
        #[arg(long, default_value = "127.0.0.1:18090")]
        addr: SocketAddr,
        /// The server's pid, for /proc (CPU, RSS).
        #[arg(long)]
        server_pid: u32,
    },
    /// Prints the table of a file of `run` lines; exits 1 if any attack failed.
    Table { file: PathBuf },
}

/// Runs the subcommand in `args` (without the leading `probe`); returns the exit code.
pub fn main(args: Vec<String>) -> i32 {
    let cli = Cli::parse_from(std::iter::once("loadgen probe".to_string()).chain(args));
    match cli.cmd {
        Cmd::List => {
            for a in attacks::ATTACKS {
                println!("{}", a.name);
            }
            0
        }
        Cmd::Config { attack } => with_attack(&attack, |a| print!("{}", a.config)),
        Cmd::Nofile { attack } => with_attack(&attack, |a| {
            if let Some(n) = a.nofile {
                println!("{n}");
            }
        }),
        Cmd::Run {
            attack,
            addr,
            server_pid,
        } => {
            if !addr.ip().is_loopback() {
                eprintln!("probe: refusing {addr}: the probe only attacks loopback servers");
                return 2;
            }
            with_attack(&attack, |a| {
                let target = attacks::Target {
                    addr,
                    pid: server_pid,
                };
                println!("{}", (a.run)(&target).to_json(a.name));
            })
        }
        Cmd::Table { file } => match std::fs::read_to_string(&file) {
            Ok(text) => table(&text),
            Err(e) => {
                eprintln!("probe: {}: {e}", file.display());
                2
            }
        },
    }
}

fn with_attack(name: &str, f: impl FnOnce(&attacks::Attack)) -> i32 {
    match attacks::find(name) {
        Some(a) => {
            f(a);
            0
        }
        None => {
            eprintln!("probe: no attack {name:?}; `probe list` names them");
            2
        }
    }
}

/// Prints one row per result line (attack, RSS growth, server CPU, watcher RTT, what
/// the attacker got, PASS/FAIL) and the broken bounds under it; 1 if any failed.
fn table(text: &str) -> i32 {
    let rows: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or(Value::Null))
        .collect();
    println!(
        "{:<22} {:>10} {:>7} {:>17}  {:<44} result",
        "attack", "RSS +MiB", "CPU %", "RTT med/max ms", "outcome"
    );
    let mut failed = 0;
    for r in &rows {
        let num = |k: &str, scale: f64, digits: usize| {
            r[k].as_f64()
                .map_or("-".to_string(), |v| format!("{:.*}", digits, v / scale))
        };
        let rtt = match (r["rtt_median_ms"].as_f64(), r["rtt_max_ms"].as_f64()) {
            (Some(m), Some(x)) => format!("{m:.1}/{x:.1}"),
            _ => "-".into(),
        };
        let pass = r["pass"] == true;
        if !pass {
            failed += 1;
        }
        let mut outcome = r["outcome"].as_str().unwrap_or("(no result)").to_string();
        if outcome.chars().count() > 44 {
            outcome = outcome.chars().take(43).collect::<String>() + "…";
        }
        println!(
            "{:<22} {:>10} {:>7} {:>17}  {:<44} {}",
            r["attack"].as_str().unwrap_or("?"),
            num("rss_growth_kb", 1024.0, 1),
            num("cpu_pct", 1.0, 0),
            rtt,
            outcome,
            if pass { "PASS" } else { "FAIL" }
        );
        for b in r["broken"].as_array().into_iter().flatten() {
            println!("{:<22} ↳ {}", "", b.as_str().unwrap_or_default());
        }
    }
    println!(
        "{} attacks, {} passed, {failed} failed",
        rows.len(),
        rows.len() - failed
    );
    i32::from(failed > 0)
}
