//! Per-connection message and byte rate limits with the abuse rule (SPEC §8).
//!
//! Two buckets, each holding one window's budget and refilled continuously at budget per
//! `window_ms`, so `max_messages` and `max_bytes_per_window` hold over any window while
//! allowing a full window's burst. A message passes only if *both* buckets can pay; a
//! refused message takes nothing, so a client that backs off as told recovers fully.
//!
//! Abuse: refusals are counted in fixed windows of `window_ms` starting at the first
//! refusal; once the refusals in the current window exceed
//! `abuse_multiplier × max_messages` the decision is [`Decision::Abuse`] (close with 1008)
//! and stays so. A client sending at (multiplier + 1)× its limit for one whole window
//! trips it; one that obeys `retryAfterMs` never does.

use super::bucket::TokenBucket;
use crate::config::RateLimitConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Drop the message, answer `rate_limit_exceeded` with `retryAfterMs`.
    Limited {
        retry_after_ms: u64,
    },
    /// Close the connection with 1008.
    Abuse,
}

#[derive(Debug, Clone)]
pub struct RateLimiter {
    /// `None` when rate limiting is off (`enabled = false`, or `window_ms = 0`).
    buckets: Option<Buckets>,
    window_ms: u64,
    /// Refusals allowed per window before abuse; `None` = abuse rule off.
    abuse_threshold: Option<u64>,
    window_start_ms: u64,
    refused_in_window: u64,
    limited_count: u64,
    abusive: bool,
}

#[derive(Debug, Clone)]
struct Buckets {
    /// `None` when `max_messages = 0` (that dimension unlimited).
    messages: Option<TokenBucket>,
    /// `None` when `max_bytes_per_window = 0`.
    bytes: Option<TokenBucket>,
}

impl RateLimiter {
    /// A fresh limiter (full buckets) for a connection opened at `now_ms`. A limit of 0
    /// means that dimension is unlimited; `abuse_multiplier = 0` turns the abuse rule off.
    pub fn new(cfg: &RateLimitConfig, now_ms: u64) -> RateLimiter {
        let window = cfg.window_ms;
        let on = cfg.enabled && window > 0;
        let bucket = |max: u64| (max > 0).then(|| TokenBucket::new(max, max, window, now_ms));
        RateLimiter {
            buckets: on.then(|| Buckets {
                messages: bucket(cfg.max_messages),
                bytes: bucket(cfg.max_bytes_per_window),
            }),
            window_ms: window,
            abuse_threshold: (on && cfg.abuse_multiplier > 0 && cfg.max_messages > 0)
                .then(|| cfg.abuse_multiplier.saturating_mul(cfg.max_messages)),
            window_start_ms: now_ms,
            refused_in_window: 0,
            limited_count: 0,
            abusive: false,
        }
    }

    /// Accounts one inbound message of `bytes` bytes at `now_ms`. A message larger than
    /// the whole byte budget costs the whole budget, so it passes once the bucket is
    /// full instead of never (`max_message_size` is the limit for single messages).
    #[inline]
    pub fn check(&mut self, now_ms: u64, bytes: u64) -> Decision {
        if self.abusive {
            return Decision::Abuse;
        }
        let Some(b) = &mut self.buckets else {
            return Decision::Allow;
        };
        let mut wait = None::<u64>;
        if let Some(m) = &mut b.messages {
            m.refill(now_ms);
            wait = m.shortfall(1);
        }
        let cost = match &mut b.bytes {
            Some(by) => {
                by.refill(now_ms);
                let cost = bytes.min(by.capacity());
                if let Some(w) = by.shortfall(cost) {
                    wait = Some(wait.map_or(w, |m| m.max(w)));
                }
                cost
            }
            None => 0,
        };
        match wait {
            None => {
                if let Some(m) = &mut b.messages {
                    m.take_unchecked(1);
                }
                if let Some(by) = &mut b.bytes {
                    by.take_unchecked(cost);
                }
                Decision::Allow
            }
            Some(retry_after_ms) => self.refuse(now_ms, retry_after_ms),
        }
    }

    #[cold]
    fn refuse(&mut self, now_ms: u64, retry_after_ms: u64) -> Decision {
        self.limited_count += 1;
        if now_ms.saturating_sub(self.window_start_ms) >= self.window_ms
            || self.refused_in_window == 0
        {
            self.window_start_ms = now_ms;
            self.refused_in_window = 0;
        }
        self.refused_in_window += 1;
        if self
            .abuse_threshold
            .is_some_and(|t| self.refused_in_window > t)
        {
            self.abusive = true;
            return Decision::Abuse;
        }
        Decision::Limited { retry_after_ms }
    }

    /// Messages refused so far on this connection (including the one that tripped abuse),
    /// for the rate-limit-hits metric.
    pub fn limited_count(&self) -> u64 {
        self.limited_count
    }

    pub fn is_enabled(&self) -> bool {
        self.buckets.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(max_messages: u64, max_bytes: u64, mult: u64) -> RateLimitConfig {
        RateLimitConfig {
            enabled: true,
            window_ms: 1000,
            max_messages,
            max_bytes_per_window: max_bytes,
            abuse_multiplier: mult,
        }
    }

    #[test]
    fn message_budget_per_window() {
        let mut r = RateLimiter::new(&cfg(10, 0, 0), 0);
        for _ in 0..10 {
            assert_eq!(r.check(0, 100), Decision::Allow);
        }
        // 10 per 1000 ms: one every 100 ms.
        assert_eq!(
            r.check(0, 1),
            Decision::Limited {
                retry_after_ms: 100
            }
        );
        assert_eq!(r.check(99, 1), Decision::Limited { retry_after_ms: 1 });
        assert_eq!(r.check(100, 1), Decision::Allow);
        assert_eq!(r.limited_count(), 2);
    }

    #[test]
    fn byte_budget_and_both_must_pay() {
        let mut r = RateLimiter::new(&cfg(100, 1000, 0), 0);
        assert_eq!(r.check(0, 900), Decision::Allow);
        // 1 byte/ms refill: 200 bytes short.
        assert_eq!(
            r.check(0, 300),
            Decision::Limited {
                retry_after_ms: 200
            }
        );
        // The refused message took nothing from the message bucket either.
        assert_eq!(r.check(200, 300), Decision::Allow);
        // Oversized message costs the whole budget once full.
        assert_eq!(
            r.check(200, 5000),
            Decision::Limited {
                retry_after_ms: 1000
            }
        );
        assert_eq!(r.check(1200, 5000), Decision::Allow);
    }

    #[test]
    fn abuse_after_multiplier_times_limit_refusals_in_a_window() {
        let mut r = RateLimiter::new(&cfg(5, 0, 2), 0);
        for _ in 0..5 {
            assert_eq!(r.check(0, 1), Decision::Allow);
        }
        // Threshold 2 × 5 = 10 refusals allowed; the 11th in the window is abuse.
        for i in 0..10 {
            assert!(
                matches!(r.check(1, 1), Decision::Limited { .. }),
                "refusal {i}"
            );
        }
        assert_eq!(r.check(2, 1), Decision::Abuse);
        assert_eq!(r.check(100_000, 1), Decision::Abuse, "sticky");
        assert_eq!(r.limited_count(), 11);
    }

    #[test]
    fn refusals_spread_over_windows_are_not_abuse() {
        let mut r = RateLimiter::new(&cfg(5, 0, 2), 0);
        let mut now = 0;
        for _ in 0..10 {
            // Each window: drain, then 10 refusals (at the threshold, not over it).
            for _ in 0..5 {
                let _ = r.check(now, 1);
            }
            for _ in 0..10 {
                assert_ne!(r.check(now, 1), Decision::Abuse);
            }
            now += 1000;
        }
    }

    #[test]
    fn disabled_and_zero_limits() {
        let mut off = RateLimiter::new(
            &RateLimitConfig {
                enabled: false,
                ..cfg(1, 1, 1)
            },
            0,
        );
        let mut zero_window = RateLimiter::new(
            &RateLimitConfig {
                window_ms: 0,
                ..cfg(1, 1, 1)
            },
            0,
        );
        let mut unlimited = RateLimiter::new(&cfg(0, 0, 1), 0);
        for _ in 0..1000 {
            assert_eq!(off.check(0, u64::MAX), Decision::Allow);
            assert_eq!(zero_window.check(0, 1), Decision::Allow);
            assert_eq!(unlimited.check(0, 1 << 40), Decision::Allow);
        }
        assert!(!off.is_enabled());
    }

    #[test]
    fn defaults_hold_budget() {
        let mut r = RateLimiter::new(&RateLimitConfig::default(), 0);
        let allowed = (0..2000)
            .filter(|_| r.check(0, 10) == Decision::Allow)
            .count();
        assert_eq!(allowed, 1000);
    }
}
