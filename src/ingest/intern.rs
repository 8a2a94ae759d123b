//! The string cache behind `type`, `sessionId` and `agentId`.
//!
//! Every event carries these three strings, and a producer repeats a handful of values
//! across every batch. [`crate::model::Pending`] holds them as `Arc<str>` so the store,
//! the hub and every subscriber share one allocation; the cache makes the common case —
//! a value seen before — cost a hash and a compare instead of that allocation.

use std::sync::Arc;

/// Slots in the [`Interner`]; a power of two so the hash's top bits pick one.
const INTERN_SLOTS: usize = 256;
/// Longer strings are not cached: hashing them costs more than it saves.
const INTERN_MAX_BYTES: usize = 64;

/// A direct-mapped cache of recent `Arc<str>`s for `type`, `sessionId` and `agentId`.
/// Producers repeat a handful of these across every batch, so a hit saves an
/// allocation per field; a collision only costs the allocation it would have made.
#[derive(Debug, Clone)]
pub(super) struct Interner {
    slots: Vec<Option<Arc<str>>>,
}

impl Default for Interner {
    fn default() -> Self {
        Interner {
            slots: vec![None; INTERN_SLOTS],
        }
    }
}

impl Interner {
    /// The cached `Arc` for `s`, or a new one (cached when `s` is short).
    pub(super) fn get(&mut self, s: &str) -> Arc<str> {
        if s.len() > INTERN_MAX_BYTES {
            return Arc::from(s);
        }
        match self.slots.get_mut(slot_of(s)) {
            Some(Some(a)) if **a == *s => a.clone(),
            Some(slot) => {
                let a: Arc<str> = Arc::from(s);
                *slot = Some(a.clone());
                a
            }
            None => Arc::from(s),
        }
    }
}

/// Multiplicative hash over 8-byte words (the last one overlapping the one before when
/// the length is not a multiple of 8, shorter strings gathered into one word); the top
/// byte picks the slot. Words are loaded whole: a byte-by-byte gather stalls on the
/// store forwarding it needs.
fn slot_of(s: &str) -> usize {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let b = s.as_bytes();
    let n = b.len();
    let word = |i: usize| {
        u64::from_le_bytes(
            b.get(i..i + 8)
                .and_then(|w| <[u8; 8]>::try_from(w).ok())
                .unwrap_or_default(),
        )
    };
    let half = |i: usize| {
        u64::from(u32::from_le_bytes(
            b.get(i..i + 4)
                .and_then(|w| <[u8; 4]>::try_from(w).ok())
                .unwrap_or_default(),
        ))
    };
    let mut h = n as u64;
    if n >= 8 {
        let mut i = 0;
        while i + 8 <= n {
            h = (h ^ word(i)).wrapping_mul(K);
            i += 8;
        }
        if i < n {
            h = (h ^ word(n - 8)).wrapping_mul(K);
        }
    } else if n >= 4 {
        h = (h ^ (half(0) | (half(n - 4) << 32))).wrapping_mul(K);
    } else {
        let at = |i: usize| u64::from(b.get(i).copied().unwrap_or(0));
        h = (h ^ (at(0) | (at(n / 2) << 8) | (at(n.wrapping_sub(1)) << 16))).wrapping_mul(K);
    }
    (h >> 56) as usize % INTERN_SLOTS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_share_one_allocation_and_long_strings_are_not_cached() {
        let mut i = Interner::default();
        for s in [
            "",
            "a",
            "ab",
            "abc",
            "abcd",
            "TASK_START",
            "swarm-7f3a9c-0001",
        ] {
            let a = i.get(s);
            assert_eq!(&*a, s);
            assert!(Arc::ptr_eq(&a, &i.get(s)), "{s:?}");
        }
        let long = "x".repeat(INTERN_MAX_BYTES + 1);
        let a = i.get(&long);
        assert_eq!(&*a, long.as_str());
        assert!(!Arc::ptr_eq(&a, &i.get(&long)));
    }

    #[test]
    fn a_collision_only_replaces_the_slot() {
        let mut i = Interner::default();
        let names: Vec<String> = (0..2 * INTERN_SLOTS)
            .map(|n| format!("agent-{n}"))
            .collect();
        for n in &names {
            assert_eq!(&*i.get(n), n.as_str());
        }
        // Every value is still right, cached or not.
        for n in names.iter().rev() {
            assert_eq!(&*i.get(n), n.as_str());
        }
        assert!(slot_of("agent-1") < INTERN_SLOTS);
    }
}
