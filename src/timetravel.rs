//! Rebuilding a session's state at an instant (SPEC §6): a pure fold over events.
//! (in progress)

/// The rebuilt state of one session. (placeholder until the time-travel core lands)
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionState {
    pub event_count: u64,
    pub last_seq: Option<u64>,
}
