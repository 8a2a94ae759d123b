//! What the others feel during an attack: a well-behaved client's heartbeat round
//! trip, and the server's CPU and peak memory read from /proc (`crate::procstat`).

use super::net::WsConn;
use crate::procstat;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Heartbeats one watcher sends at most: under the default rate limit (1000 a minute).
const MAX_BEATS: usize = 600;
const PACE: Duration = Duration::from_millis(25);
const ANSWER_WITHIN: Duration = Duration::from_secs(5);

/// Round trips a watcher measured.
#[derive(Debug, Default)]
pub struct Rtt {
    pub samples: Vec<Duration>,
    pub failures: Vec<String>,
}

impl Rtt {
    pub fn median_ms(&self) -> f64 {
        let mut v = self.samples.clone();
        v.sort();
        v.get(v.len() / 2).map_or(0.0, |d| d.as_secs_f64() * 1e3)
    }

    pub fn max_ms(&self) -> f64 {
        self.samples
            .iter()
            .max()
            .map_or(0.0, |d| d.as_secs_f64() * 1e3)
    }
}

/// A client that sends `{"type":"heartbeat","requestId":N}` every 25 ms on its own
/// thread and times each `heartbeat_response`.
pub struct Watcher {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Rtt>,
}

impl Watcher {
    /// Connects (and subscribes to `session` when given) before returning.
    pub fn start(addr: SocketAddr, session: Option<&str>) -> Result<Watcher, String> {
        let mut c = WsConn::connect(addr, Duration::from_secs(5))?;
        let deadline = Instant::now() + Duration::from_secs(5);
        if let Some(s) = session {
            c.send_json(&json!({"type": "subscribe_session", "sessionId": s}))
                .map_err(|e| e.to_string())?;
            while c.next_json(deadline).ok_or("no session_info")?["type"] != "session_info" {}
        }
        let stop = Arc::new(AtomicBool::new(false));
        let handle = {
            let stop = stop.clone();
            std::thread::spawn(move || beat(&mut c, &stop))
        };
        Ok(Watcher { stop, handle })
    }

    pub fn stop(self) -> Rtt {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap_or_else(|_| Rtt {
            samples: Vec::new(),
            failures: vec!["watcher thread panicked".into()],
        })
    }
}

fn beat(c: &mut WsConn, stop: &AtomicBool) -> Rtt {
    let mut rtt = Rtt::default();
    for n in 0..MAX_BEATS {
        if stop.load(Ordering::Relaxed) || rtt.failures.len() >= 3 {
            break;
        }
        let t0 = Instant::now();
        if let Err(e) = c.send_json(&json!({"type": "heartbeat", "requestId": n})) {
            rtt.failures
                .push(format!("heartbeat #{n}: send failed: {e}"));
            break;
        }
        let deadline = t0 + ANSWER_WITHIN;
        let answered = loop {
            match c.next_json(deadline) {
                Some(v) if v["requestId"] == n => break Some(v),
                Some(_) => {}
                None => break None,
            }
        };
        rtt.samples.push(t0.elapsed());
        match answered {
            Some(v) if v["type"] == "heartbeat_response" => {}
            Some(v) => rtt.failures.push(format!("heartbeat #{n} answered {v}")),
            None => rtt.failures.push(format!(
                "heartbeat #{n}: no answer ({})",
                c.ended.as_deref().unwrap_or("timeout")
            )),
        }
        std::thread::sleep(PACE); // the watcher's pace, not a synchronisation
    }
    rtt
}

/// utime+stime of the server, in seconds.
pub fn cpu_s(pid: u32) -> f64 {
    procstat::sample(&pid.to_string()).map_or(0.0, |s| s.cpu_s)
}

pub fn rss_kb(pid: u32) -> u64 {
    procstat::sample(&pid.to_string())
        .and_then(|s| s.rss_kb)
        .unwrap_or(0)
}

/// Server CPU over a window, as % of one core.
pub struct CpuWindow {
    pid: u32,
    cpu0: f64,
    t0: Instant,
}

impl CpuWindow {
    pub fn start(pid: u32) -> CpuWindow {
        CpuWindow {
            pid,
            cpu0: cpu_s(pid),
            t0: Instant::now(),
        }
    }

    pub fn pct(&self) -> f64 {
        let used = cpu_s(self.pid) - self.cpu0;
        100.0 * used / self.t0.elapsed().as_secs_f64().max(1e-3)
    }
}

/// Samples the server's RSS every 20 ms on a thread; with VmHWM it gives the peak
/// growth over the RSS at the start.
pub struct RssPeak {
    pub baseline_kb: u64,
    pid: u32,
    hwm0: u64,
    stop: Arc<AtomicBool>,
    handle: JoinHandle<u64>,
}

impl RssPeak {
    pub fn start(pid: u32) -> RssPeak {
        let s = procstat::sample(&pid.to_string()).unwrap_or_default();
        let stop = Arc::new(AtomicBool::new(false));
        let handle = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut peak = 0;
                for _ in 0..6000 {
                    peak = peak.max(rss_kb(pid));
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(20)); // sampling period
                }
                peak
            })
        };
        RssPeak {
            baseline_kb: s.rss_kb.unwrap_or(0),
            pid,
            hwm0: s.hwm_kb.unwrap_or(0),
            stop,
            handle,
        }
    }

    pub fn growth_kb(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let sampled = self.handle.join().unwrap_or(0);
        let hwm = procstat::sample(&self.pid.to_string())
            .and_then(|s| s.hwm_kb)
            .unwrap_or(0);
        let peak = if hwm > self.hwm0 {
            hwm.max(sampled)
        } else {
            sampled
        };
        peak.saturating_sub(self.baseline_kb)
    }
}
