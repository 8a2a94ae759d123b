//! Cluster mode (SPEC §11): many tracecast processes on one NATS JetStream stream.
//!
//! Every node accepts producers and subscribers. A batch a node accepts is published to the
//! stream; the stream's order is the global order; every node consumes the whole stream in
//! order, appends each message to its own log at seqs derived from the stream, and fans it
//! out to its own clients. docs/CLUSTER.md has the design; this module has three parts:
//!
//! - [`wire`]: the bytes of one stream message (pure, always built: the fuzz target and
//!   tests use it without the `cluster` feature's network code).
//! - the seq mapping ([`seq_of`], [`stream_seq_of`]) and the data-dir marker, also pure;
//! - behind the `cluster` feature, the NATS client thread (`client`, async-nats in a
//!   single-threaded tokio runtime on its own thread) and the loop-side [`Sequencer`]
//!   (`sequencer`) that talks to it only through channels and the loop's `mio::Waker`.
//!   The loop never blocks or awaits.
//!
//! [`Sequencer`]: crate::app::commit::Sequencer

pub mod wire;

#[cfg(feature = "cluster")]
mod client;
#[cfg(feature = "cluster")]
mod sequencer;

#[cfg(feature = "cluster")]
pub use sequencer::ClusterSequencer;

use std::path::Path;

/// Seqs per stream message: event `i` of stream message `m` gets seq `m * SEQ_STRIDE + i`.
///
/// Derived from the stream alone, so every node computes the same seqs with no other
/// coordination, including a node that joins after the stream dropped its oldest
/// messages. Strictly increasing (stream seqs are), never reused (JetStream never reuses a
/// stream seq), readable (`1200003` is event 3 of message 12). A batch therefore holds
/// fewer than `SEQ_STRIDE` events, and seqs stay exact in a JavaScript number (< 2^53)
/// for 9·10^10 stream messages.
pub const SEQ_STRIDE: u64 = 100_000;

/// The seq of event `index` of stream message `stream_seq`.
pub fn seq_of(stream_seq: u64, index: u64) -> u64 {
    stream_seq.saturating_mul(SEQ_STRIDE).saturating_add(index)
}

/// The stream message that carried `seq`.
pub fn stream_seq_of(seq: u64) -> u64 {
    seq / SEQ_STRIDE
}

/// Why cluster mode could not start.
#[derive(Debug)]
pub enum ClusterError {
    /// The data dir holds history this cluster mode did not write.
    DataDir(String),
    /// The configuration cannot work (names NATS refuses, …).
    Config(String),
    Io(std::io::Error),
}

impl std::fmt::Display for ClusterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClusterError::DataDir(m) | ClusterError::Config(m) => f.write_str(m),
            ClusterError::Io(e) => write!(f, "cluster: {e}"),
        }
    }
}

impl std::error::Error for ClusterError {}

/// The file in the data dir that says which stream its history comes from.
pub const MARKER_FILE: &str = "cluster-stream";

/// Checks (and on first use writes) the marker tying `data_dir` to `stream`.
///
/// A log written standalone has seqs from its own counter, which the stream mapping would
/// misread as stream positions; a log materialized from another stream has positions of
/// that stream. Both are refused with a message saying what to do, instead of silently
/// skipping or repeating events. `next_seq` is the store's, after recovery.
pub fn check_data_dir(data_dir: &Path, stream: &str, next_seq: u64) -> Result<(), ClusterError> {
    let marker = data_dir.join(MARKER_FILE);
    match std::fs::read_to_string(&marker) {
        Ok(found) if found.trim() == stream => Ok(()),
        Ok(found) => Err(ClusterError::DataDir(format!(
            "data_dir {} holds events materialized from stream {:?}, not from [cluster] \
             stream {stream:?}; use another data_dir (or the old stream)",
            data_dir.display(),
            found.trim()
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if next_seq > 1 {
                return Err(ClusterError::DataDir(format!(
                    "data_dir {} holds standalone history (seqs up to {}); cluster mode \
                     derives seqs from the stream and needs a fresh data_dir",
                    data_dir.display(),
                    next_seq - 1
                )));
            }
            std::fs::create_dir_all(data_dir).map_err(ClusterError::Io)?;
            std::fs::write(&marker, format!("{stream}\n")).map_err(ClusterError::Io)
        }
        Err(e) => Err(ClusterError::Io(e)),
    }
}

/// Checks a stream name and subject prefix the way NATS will (docs/CLUSTER.md).
pub fn check_names(stream: &str, subject_prefix: &str) -> Result<(), ClusterError> {
    let bad_stream = stream.is_empty()
        || stream
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '.' | '*' | '>' | '/' | '\\'));
    if bad_stream {
        return Err(ClusterError::Config(format!(
            "[cluster] stream {stream:?}: a stream name must be non-empty, without spaces, \
             '.', '*', '>', '/' or '\\'"
        )));
    }
    let bad_prefix = subject_prefix.is_empty()
        || subject_prefix
            .split('.')
            .any(|t| t.is_empty() || t.chars().any(|c| c.is_whitespace() || c == '*' || c == '>'));
    if bad_prefix {
        return Err(ClusterError::Config(format!(
            "[cluster] subject_prefix {subject_prefix:?}: dot-separated non-empty tokens \
             without spaces, '*' or '>'"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seqs_follow_the_stream_and_never_collide() {
        assert_eq!(seq_of(12, 3), 1_200_003);
        assert_eq!(stream_seq_of(1_200_003), 12);
        assert!(seq_of(12, SEQ_STRIDE - 1) < seq_of(13, 0));
        assert_eq!(stream_seq_of(seq_of(7, SEQ_STRIDE - 1)), 7);
    }

    #[test]
    fn a_data_dir_serves_one_stream_and_never_a_standalone_log() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        check_data_dir(&dir, "A", 1).unwrap();
        check_data_dir(&dir, "A", 500_000).unwrap();
        let e = check_data_dir(&dir, "B", 1).unwrap_err().to_string();
        assert!(e.contains("\"A\"") && e.contains("\"B\""), "{e}");
        let other = tmp.path().join("standalone");
        let e = check_data_dir(&other, "A", 42).unwrap_err().to_string();
        assert!(e.contains("standalone history (seqs up to 41)"), "{e}");
    }

    #[test]
    fn names_nats_would_refuse_are_refused_here() {
        assert!(check_names("TRACECAST", "tracecast").is_ok());
        assert!(check_names("T", "a.b").is_ok());
        for (s, p) in [
            ("", "x"),
            ("a.b", "x"),
            ("a b", "x"),
            ("T", ""),
            ("T", "a..b"),
            ("T", "a.>"),
        ] {
            assert!(check_names(s, p).is_err(), "{s:?} {p:?}");
        }
    }
}
