//! A token bucket in exact integer arithmetic.
//!
//! Rates like "1000 per 60 000 ms" aren't whole tokens per millisecond, so the level is
//! kept in *fractional units*: one token = `period_ms` units, and each millisecond adds
//! `refill_per_period` units. Refill and take are then one multiply-add and a compare —
//! no floats, no division on the allow path, no drift — and `retry_after_ms` is an exact
//! ceiling: waiting that long always succeeds, one millisecond less never does.
//!
//! Units are `u64` (a multiply on `u128` costs several instructions on the hot path);
//! `capacity × period_ms` saturates at `u64::MAX` (≈1.8e19), i.e. only budgets beyond
//! ~3e14 tokens per minute lose precision, far outside any sane configuration.

/// A bucket of `capacity` tokens refilled at `refill_per_period` tokens per `period_ms`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    /// Current level, in units (tokens × `period_ms`).
    level: u64,
    /// `capacity × period_ms`.
    max_level: u64,
    /// Units added per elapsed millisecond (= tokens per period).
    per_ms: u64,
    /// Units one token costs (= `period_ms`).
    unit: u64,
    /// In whole tokens, kept so callers never divide on the hot path.
    capacity: u64,
    last_ms: u64,
}

impl TokenBucket {
    /// A full bucket at `now_ms`. `period_ms` of 0 is treated as 1.
    pub fn new(capacity: u64, refill_per_period: u64, period_ms: u64, now_ms: u64) -> TokenBucket {
        let unit = period_ms.max(1);
        let max_level = capacity.saturating_mul(unit);
        TokenBucket {
            level: max_level,
            max_level,
            per_ms: refill_per_period,
            unit,
            capacity,
            last_ms: now_ms,
        }
    }

    /// `capacity` tokens, refilled at `refill_per_ms` whole tokens per millisecond.
    pub fn per_ms(capacity: u64, refill_per_ms: u64, now_ms: u64) -> TokenBucket {
        TokenBucket::new(capacity, refill_per_ms, 1, now_ms)
    }

    /// Takes `n` tokens at `now_ms`, or says how many milliseconds until it could.
    /// `Err(u64::MAX)` when it never could: `n` is above capacity, or there is no refill.
    #[inline]
    pub fn try_take(&mut self, now_ms: u64, n: u64) -> Result<(), u64> {
        self.refill(now_ms);
        match self.shortfall(n) {
            None => {
                self.take_unchecked(n);
                Ok(())
            }
            Some(wait) => Err(wait),
        }
    }

    /// Whole tokens available at `now_ms`.
    pub fn available(&mut self, now_ms: u64) -> u64 {
        self.refill(now_ms);
        self.level / self.unit
    }

    #[inline]
    pub(crate) fn refill(&mut self, now_ms: u64) {
        let elapsed = now_ms.saturating_sub(self.last_ms);
        self.last_ms = self.last_ms.max(now_ms);
        if elapsed > 0 && self.level < self.max_level {
            self.level = self
                .level
                .saturating_add(elapsed.saturating_mul(self.per_ms))
                .min(self.max_level);
        }
    }

    /// `None` if `n` tokens are there now; otherwise the exact wait in milliseconds.
    #[inline]
    pub(crate) fn shortfall(&self, n: u64) -> Option<u64> {
        let cost = n.saturating_mul(self.unit);
        if cost <= self.level {
            return None;
        }
        if cost > self.max_level || self.per_ms == 0 {
            return Some(u64::MAX);
        }
        let deficit = cost - self.level;
        Some(deficit.div_ceil(self.per_ms))
    }

    /// Callers have checked [`Self::shortfall`] is `None`.
    #[inline]
    pub(crate) fn take_unchecked(&mut self, n: u64) {
        self.level = self.level.saturating_sub(n.saturating_mul(self.unit));
    }

    pub(crate) fn capacity(&self) -> u64 {
        self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_full_and_drains() {
        let mut b = TokenBucket::per_ms(3, 1, 0);
        assert_eq!(b.try_take(0, 2), Ok(()));
        assert_eq!(b.try_take(0, 1), Ok(()));
        assert_eq!(b.try_take(0, 1), Err(1));
        assert_eq!(b.try_take(1, 1), Ok(()));
    }

    #[test]
    fn fractional_rate_retry_after_is_exact() {
        // 1000 per minute: one token every 60 ms.
        let mut b = TokenBucket::new(1000, 1000, 60_000, 0);
        assert_eq!(b.try_take(0, 1000), Ok(()));
        assert_eq!(b.try_take(0, 1), Err(60));
        assert_eq!(b.try_take(59, 1), Err(1));
        assert_eq!(b.try_take(60, 1), Ok(()));
        assert_eq!(b.try_take(60, 3), Err(180));
        assert_eq!(b.try_take(239, 3), Err(1));
        assert_eq!(b.try_take(240, 3), Ok(()));
        // Partial refill is kept across calls (no rounding loss).
        assert_eq!(b.try_take(270, 1), Err(30));
        assert_eq!(b.try_take(300, 1), Ok(()));
    }

    #[test]
    fn retry_after_property() {
        for (cap, per, period) in [(5u64, 1u64, 7u64), (10, 3, 1000), (1, 1, 1), (100, 7, 13)] {
            let mut b = TokenBucket::new(cap, per, period, 0);
            let mut now = 0;
            for n in [cap, 1, 2, 1, cap, 3] {
                let n = n.min(cap);
                if let Err(wait) = b.try_take(now, n) {
                    let mut probe = b.clone();
                    if wait > 0 {
                        assert!(
                            probe.try_take(now + wait - 1, n).is_err(),
                            "{cap} {per} {period} {n}"
                        );
                    }
                    now += wait;
                    assert_eq!(b.try_take(now, n), Ok(()));
                }
            }
        }
    }

    #[test]
    fn caps_and_edges() {
        let mut b = TokenBucket::per_ms(5, 1, 0);
        assert_eq!(b.try_take(0, 6), Err(u64::MAX));
        assert_eq!(b.available(1_000_000), 5, "refill is capped");
        assert_eq!(
            b.try_take(500, 5),
            Ok(()),
            "time going backwards adds nothing"
        );
        assert_eq!(b.try_take(400, 1), Err(1));
        let mut frozen = TokenBucket::new(1, 0, 1000, 0);
        assert_eq!(frozen.try_take(0, 1), Ok(()));
        assert_eq!(frozen.try_take(10_000, 1), Err(u64::MAX));
        // Saturating units: a silly budget still behaves (allows, then refills).
        let mut huge = TokenBucket::new(u64::MAX, u64::MAX, u64::MAX, 0);
        assert_eq!(huge.try_take(0, 1), Ok(()));
        assert_eq!(huge.try_take(u64::MAX, 1), Ok(()));
        assert_eq!(huge.capacity(), u64::MAX);
    }
}
