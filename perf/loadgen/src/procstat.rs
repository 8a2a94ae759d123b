//! CPU time and memory of a process, read from /proc.
//!
//! The comparison is about what each server costs, so the loadgen samples the server's
//! (and its own) utime+stime and VmHWM/VmRSS at the edges of the measured window instead
//! of trusting an outside tool's sampling interval. `/proc/PID/stat` of a thread-group
//! leader already sums every thread, which keeps Node's GC and libuv threads in the bill.

use std::fs;

/// Linux reports stat times in USER_HZ ticks, which the kernel ABI fixes at 100 on
/// every architecture we run on; reading it via sysconf would need libc and unsafe.
pub const TICKS_PER_SEC: f64 = 100.0;

/// One reading of a process.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sample {
    /// utime + stime, in seconds.
    pub cpu_s: f64,
    /// Peak resident set (VmHWM), KiB.
    pub hwm_kb: Option<u64>,
    /// Current resident set (VmRSS), KiB.
    pub rss_kb: Option<u64>,
}

/// Reads `/proc/<who>/stat` and `/proc/<who>/status`; `who` is a pid or "self".
pub fn sample(who: &str) -> Option<Sample> {
    let stat = fs::read_to_string(format!("/proc/{who}/stat")).ok()?;
    let status = fs::read_to_string(format!("/proc/{who}/status")).ok()?;
    Some(Sample {
        cpu_s: cpu_ticks(&stat)? as f64 / TICKS_PER_SEC,
        hwm_kb: status_kb(&status, "VmHWM:"),
        rss_kb: status_kb(&status, "VmRSS:"),
    })
}

/// utime (field 14) + stime (field 15). The command name (field 2) may hold spaces and
/// parentheses, so fields are counted from the last ')'.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    let mut it = after.split_ascii_whitespace().skip(11);
    let utime: u64 = it.next()?.parse().ok()?;
    let stime: u64 = it.next()?.parse().ok()?;
    Some(utime + stime)
}

fn status_kb(status: &str, key: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(key))?;
    line[key.len()..]
        .split_ascii_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Busy and total jiffies summed over all CPUs, and the number of CPUs, from
/// `/proc/stat`; the difference between two readings shows how much of the machine was
/// busy, so a run disturbed by someone else's build can be recognised. CPUs are counted
/// here because the loadgen's own affinity mask (taskset) hides the others.
pub fn host_busy() -> Option<HostCpu> {
    let stat = fs::read_to_string("/proc/stat").ok()?;
    let cpus = stat
        .lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .count();
    host_busy_from(&stat).map(|(busy, total)| HostCpu {
        busy,
        total,
        cpus: cpus.max(1),
    })
}

/// Machine-wide CPU counters (jiffies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostCpu {
    pub busy: u64,
    pub total: u64,
    pub cpus: usize,
}

/// Busy CPU between two readings, in % of one core.
pub fn busy_core_pct(a: HostCpu, b: HostCpu) -> Option<f64> {
    let span = b.total.checked_sub(a.total).filter(|t| *t > 0)? as f64;
    Some(100.0 * b.cpus as f64 * b.busy.saturating_sub(a.busy) as f64 / span)
}

fn host_busy_from(stat: &str) -> Option<(u64, u64)> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_ascii_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    // idle and iowait are the 4th and 5th columns.
    let idle = v.get(3)? + v.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_stat() {
        let s = "cpu  100 5 50 800 10 0 5 0 0 0\ncpu0 50 2 25 400 5 0 3 0 0 0\n";
        assert_eq!(host_busy_from(s), Some((160, 970)));
        assert_eq!(host_busy_from("intr 1"), None);
        let a = HostCpu {
            busy: 100,
            total: 1000,
            cpus: 2,
        };
        let b = HostCpu {
            busy: 600,
            total: 2000,
            cpus: 2,
        };
        assert_eq!(busy_core_pct(a, b), Some(100.0));
        assert_eq!(busy_core_pct(b, a), None);
    }

    #[test]
    fn parses_stat_with_awkward_comm() {
        let stat = "1234 (my (odd) proc) S 1 1234 1234 0 -1 4194560 500 0 0 0 250 75 0 0 20 0 1 0 100 1000 50";
        assert_eq!(cpu_ticks(stat), Some(325));
        assert_eq!(cpu_ticks("garbage"), None);
    }

    #[test]
    fn parses_status() {
        let status = "Name:\tnode\nVmPeak:\t  900 kB\nVmHWM:\t   51234 kB\nVmRSS:\t   40000 kB\n";
        assert_eq!(status_kb(status, "VmHWM:"), Some(51234));
        assert_eq!(status_kb(status, "VmRSS:"), Some(40000));
        assert_eq!(status_kb(status, "VmSwap:"), None);
    }

    #[test]
    fn samples_itself() {
        let s = sample("self").expect("own /proc entry");
        assert!(s.rss_kb.unwrap_or(0) > 0);
    }
}
