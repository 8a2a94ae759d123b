//! Which cores the threads run on: the loop alone on its pinned core, every helper
//! thread (the fsync thread, and any thread added later) off it.
//!
//! `--pin-core N` pins the loop thread. A thread inherits its creator's affinity, so a
//! helper spawned after the pin would share the loop's core and take turns with it;
//! [`pin_loop`] therefore remembers the cores the process was allowed before it pinned,
//! minus the loop's, and [`spawn_helper`] starts each helper on those. With nothing left
//! (the process was only ever allowed the loop's core, e.g. under `taskset -c N`) helpers
//! stay where they are: there is nowhere else to go. Without `--pin-core` nothing is
//! changed and helpers run wherever the scheduler puts them.

use rustix::thread::{sched_getaffinity, sched_setaffinity, CpuSet};
use std::sync::Mutex;
use std::thread::{Builder, JoinHandle};

/// The cores helpers go to, once the loop is pinned.
static HELPER_CORES: Mutex<Option<CpuSet>> = Mutex::new(None);

/// Why the loop could not be pinned.
#[derive(Debug)]
pub struct PinError(String);

impl std::fmt::Display for PinError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PinError {}

/// Pins the calling thread (the loop) to `core` and records the cores it was allowed
/// besides, for helpers. Returns how many cores helpers may use (0: they share the
/// loop's). Call before any helper thread starts.
pub fn pin_loop(core: usize) -> Result<u32, PinError> {
    if core >= CpuSet::MAX_CPU {
        return Err(PinError(format!(
            "core {core} is beyond this system's limit"
        )));
    }
    let allowed =
        sched_getaffinity(None).map_err(|e| PinError(format!("cannot read affinity: {e}")))?;
    if !allowed.is_set(core) {
        return Err(PinError(format!(
            "core {core} is not among the cores this process may run on"
        )));
    }
    let mut only = CpuSet::new();
    only.set(core);
    sched_setaffinity(None, &only)
        .map_err(|e| PinError(format!("cannot pin to core {core}: {e}")))?;
    let mut rest = allowed;
    rest.unset(core);
    let n = rest.count();
    if let Ok(mut h) = HELPER_CORES.lock() {
        *h = (n > 0).then_some(rest);
    }
    Ok(n)
}

/// Moves the calling thread off the loop's core, if the loop was pinned and other cores
/// are allowed. Helpers call it first thing; [`spawn_helper`] does it for them.
pub fn leave_loop_core() {
    let cores = HELPER_CORES.lock().ok().and_then(|h| *h);
    if let Some(cores) = cores {
        if let Err(e) = sched_setaffinity(None, &cores) {
            tracing::warn!(error = %e, "could not move a helper thread off the loop's core");
        }
    }
}

/// Spawns a named helper thread that runs off the loop's core (see the module doc).
pub fn spawn_helper<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::io::Result<JoinHandle<T>> {
    Builder::new().name(name.into()).spawn(move || {
        leave_loop_core();
        f()
    })
}

/// The cores the calling thread may run on, for tests and logs.
pub fn current_cores() -> Vec<usize> {
    let Ok(set) = sched_getaffinity(None) else {
        return Vec::new();
    };
    (0..CpuSet::MAX_CPU).filter(|&c| set.is_set(c)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_helper_spawned_after_the_pin_leaves_the_loop_core() {
        // Run the "loop" in its own thread, so the test runner's threads keep theirs.
        let before = current_cores();
        let Some(&core) = before.first() else { return };
        let (loop_cores, helper_cores) = std::thread::spawn(move || {
            let helpers = pin_loop(core).unwrap_or(0);
            let loop_cores = current_cores();
            let helper = spawn_helper("test-helper", current_cores)
                .ok()
                .and_then(|h| h.join().ok())
                .unwrap_or_default();
            (loop_cores, (helpers, helper))
        })
        .join()
        .unwrap_or_default();
        assert_eq!(loop_cores, vec![core]);
        let (helpers, on) = helper_cores;
        if before.len() > 1 {
            assert_eq!(helpers as usize, before.len() - 1);
            assert!(!on.contains(&core), "helper ran on the loop's core: {on:?}");
            assert!(!on.is_empty());
        } else {
            assert_eq!(helpers, 0);
            assert_eq!(on, vec![core], "with one core the helper stays there");
        }
        assert!(pin_loop(CpuSet::MAX_CPU).is_err());
    }
}
