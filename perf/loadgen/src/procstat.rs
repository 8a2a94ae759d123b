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
    line[key.len()..].split_ascii_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

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
