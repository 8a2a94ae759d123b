//! The hasher of every table keyed by strings a client chooses: session ids (the hub's
//! routes, the stores' session tables, a connection's subscriptions), agent ids and
//! event types.
//!
//! Those keys are attacker-controlled, so the hasher must be randomly seeded (a fixed
//! hash lets one client send ids that all collide and turn every lookup into a scan).
//! std's SipHash-1-3 is that, but it showed in the fan-out profile; foldhash is several
//! times faster on short strings and keeps the property that matters here: no list of
//! colliding keys works against every process. Both of its seeds come from the OS (via
//! std's `RandomState`): the shared seed once per process, the per-table seed for each
//! table. foldhash does not claim resistance against an attacker who can observe hash
//! values or table iteration order and adapt; tracecast exposes neither (listings are
//! sorted, not in table order).

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::sync::OnceLock;

/// A hash map keyed by client-controlled data.
pub type Map<K, V> = HashMap<K, V, Seeded>;
/// A hash set of client-controlled data.
pub type Set<K> = HashSet<K, Seeded>;

/// foldhash's fast hasher with seeds from the OS.
#[derive(Clone, Debug)]
pub struct Seeded(foldhash::fast::SeedableRandomState);

impl Default for Seeded {
    fn default() -> Self {
        static SHARED: OnceLock<foldhash::SharedSeed> = OnceLock::new();
        let shared = SHARED.get_or_init(|| {
            foldhash::SharedSeed::from_u64(RandomState::new().hash_one(0x7472_6163_6563_6173_u64))
        });
        // Each `RandomState::new()` has fresh keys (OS-seeded, then varied per instance).
        let per_table = RandomState::new().hash_one(0x7365_6564_u64);
        Seeded(foldhash::fast::SeedableRandomState::with_seed(
            per_table, shared,
        ))
    }
}

impl BuildHasher for Seeded {
    type Hasher = foldhash::fast::FoldHasher<'static>;

    #[inline]
    fn build_hasher(&self) -> Self::Hasher {
        self.0.build_hasher()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_seeded_apart_and_still_maps() {
        let (a, b) = (Seeded::default(), Seeded::default());
        // Two tables hash the same key differently (2^-64 odds of a false failure).
        assert_ne!(a.hash_one("s-1"), b.hash_one("s-1"));
        assert_eq!(a.hash_one("s-1"), a.hash_one("s-1"));
        let mut m: Map<String, u32> = Map::default();
        for i in 0..1000 {
            m.insert(format!("s-{i}"), i);
        }
        assert_eq!(m.get("s-999"), Some(&999));
        assert_eq!(m.len(), 1000);
    }
}
