//! Connection admission: live connections per IP and new connections per second.
//!
//! Both are consulted by the accept path before any bytes are read, so they're cheap and
//! allocation-light: a hash map that only holds IPs with live connections (entries are
//! removed at zero, so the map can't grow with the number of IPs ever seen), and one
//! token bucket for the whole server.

use std::collections::HashMap;
use std::net::IpAddr;

use super::bucket::TokenBucket;

/// Live connections per remote IP, capped at `max_per_ip` (0 = no cap, nothing tracked).
#[derive(Debug, Clone, Default)]
pub struct IpLimiter {
    max_per_ip: usize,
    live: HashMap<IpAddr, usize>,
}

impl IpLimiter {
    pub fn new(max_per_ip: usize) -> IpLimiter {
        IpLimiter {
            max_per_ip,
            live: HashMap::new(),
        }
    }

    /// Counts a new connection from `ip` if under the cap. Every `true` must be paired
    /// with exactly one [`Self::release`] when that connection closes.
    pub fn try_acquire(&mut self, ip: IpAddr) -> bool {
        if self.max_per_ip == 0 {
            return true;
        }
        let n = self.live.entry(ip).or_insert(0);
        if *n >= self.max_per_ip {
            return false;
        }
        *n += 1;
        true
    }

    /// Forgets one connection from `ip`; unknown IPs are ignored.
    pub fn release(&mut self, ip: IpAddr) {
        if let Some(n) = self.live.get_mut(&ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.live.remove(&ip);
            }
        }
    }

    pub fn count(&self, ip: IpAddr) -> usize {
        self.live.get(&ip).copied().unwrap_or(0)
    }

    /// Distinct IPs with live connections.
    pub fn tracked_ips(&self) -> usize {
        self.live.len()
    }
}

/// New connections per second over the server: a bucket of `per_sec` tokens (so a burst
/// of one second's worth is accepted at once) refilled at `per_sec` per 1000 ms.
/// `per_sec = 0` accepts everything.
#[derive(Debug, Clone)]
pub struct AcceptRate {
    bucket: Option<TokenBucket>,
    refused: u64,
}

impl AcceptRate {
    pub fn new(per_sec: u32, now_ms: u64) -> AcceptRate {
        let bucket = (per_sec > 0)
            .then(|| TokenBucket::new(u64::from(per_sec), u64::from(per_sec), 1000, now_ms));
        AcceptRate { bucket, refused: 0 }
    }

    /// True if a connection may be accepted now (and counts it).
    pub fn try_accept(&mut self, now_ms: u64) -> bool {
        match &mut self.bucket {
            None => true,
            Some(b) => {
                let ok = b.try_take(now_ms, 1).is_ok();
                self.refused += u64::from(!ok);
                ok
            }
        }
    }

    /// Connections refused so far, for metrics.
    pub fn refused_count(&self) -> u64 {
        self.refused
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_ip_cap_and_cleanup() {
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "::1".parse().unwrap();
        let mut l = IpLimiter::new(2);
        assert!(l.try_acquire(a) && l.try_acquire(a));
        assert!(!l.try_acquire(a));
        assert!(l.try_acquire(b));
        assert_eq!((l.count(a), l.tracked_ips()), (2, 2));
        l.release(a);
        assert!(l.try_acquire(a));
        l.release(a);
        l.release(a);
        l.release(b);
        assert_eq!(l.tracked_ips(), 0, "entries removed at zero");
        l.release(a);
        assert_eq!(l.count(a), 0);
    }

    #[test]
    fn refused_acquire_leaves_no_entry_growth() {
        let mut l = IpLimiter::new(1);
        let a: IpAddr = "10.0.0.2".parse().unwrap();
        assert!(l.try_acquire(a));
        assert!(!l.try_acquire(a));
        l.release(a);
        assert_eq!(l.tracked_ips(), 0);
    }

    #[test]
    fn unlimited_tracks_nothing() {
        let mut l = IpLimiter::new(0);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        assert!((0..100).all(|_| l.try_acquire(a)));
        assert_eq!(l.tracked_ips(), 0);
    }

    #[test]
    fn accept_rate() {
        let mut r = AcceptRate::new(10, 0);
        assert_eq!((0..20).filter(|_| r.try_accept(0)).count(), 10);
        assert!(!r.try_accept(99));
        assert!(r.try_accept(100));
        assert_eq!(r.refused_count(), 11);
        let mut off = AcceptRate::new(0, 0);
        assert!((0..1000).all(|_| off.try_accept(0)));
    }
}
