//! Fuzz body for the log_record parser. (in progress)

/// Feeds arbitrary bytes to the parser; must never panic.
pub fn run(_data: &[u8]) {}
