//! Time-travel checkpoints saved beside the log (`timetravel.ckpt`), so the first
//! `state_at` after a restart starts from a saved snapshot instead of folding the session
//! from its first event (~0.5 µs an event: seconds on a long session).
//!
//! The file is a cache, never a source of truth: it is written whole at `sync`/close
//! (temp file, fsync, rename), read lazily, and every part of it is checked before use —
//! a bad magic number drops the file, a bad section header or a state whose checksum
//! fails drops that part, and a snapshot is used only once the log still holds the very
//! event it ends at (same position, same seq). Anything dropped is rebuilt by the lazy
//! fold, as if the file were missing. docs/STORAGE.md (Saved checkpoints) draws the
//! layout:
//!
//! ```text
//! file     = magic:8 ("TCCKPT01")  section*
//! section  = head_len:u32  head_crc:u32  head[head_len]  state*      head_crc = crc32(head)
//! head     = id_len:u16  id[id_len]  count:u32  snap*count
//! snap     = seq:u64  max_ts:i64  event_count:u64  state_len:u32  state_crc:u32   (32 bytes)
//! state    = event_count:u64  last_seq:u64 (0 = none)  agents:u32  agent*  tasks:u32  task*
//! agent    = str(id)  str(status)  str(last_event_type)  last_event_at:i64  event_count:u64
//!            spawned_at:i64  destroyed_at:i64  has_destroyed:u8
//! task     = str(id)  status:u8 (0 running, 1 completed, 2 failed)  has_agent:u8
//!            str(agent)?  started_at:i64  ended_at:i64  has_ended:u8
//! str      = len:u16  bytes[len] (UTF-8)
//! ```
//!
//! The states of a section follow its head in the order of its snaps; `seq` is the seq
//! of the last event the snapshot folded, `max_ts` the largest timestamp among its events.

use crate::timetravel::{AgentState, SessionState, TaskState};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

pub(super) const FILE: &str = "timetravel.ckpt";
const MAGIC: &[u8; 8] = b"TCCKPT01";
const SNAP: usize = 32;
/// A head larger than this is damage (a million snapshots of one session).
const MAX_HEAD: u32 = 32 << 20;
/// Saved snapshots are at least this many events apart (or 8 × `checkpoint_every` when
/// that is less): the fold after one costs at most about this many events (~4 ms here),
/// and a 10M-event session saves ~1200 states.
pub(super) const SAVE_EVERY: u64 = 8192;

/// One saved snapshot: where its state is in the file.
#[derive(Debug, Clone, Copy)]
pub(super) struct Snap {
    pub seq: u64,
    pub max_ts: i64,
    pub event_count: u64,
    off: u64,
    len: u32,
    crc: u32,
}

/// The saved snapshots of one session, oldest first (seqs and `max_ts` increase).
#[derive(Debug, Clone)]
pub(super) struct Saved {
    file: Arc<File>,
    pub snaps: Vec<Snap>,
}

impl Saved {
    /// The bytes of a snapshot's state, checked.
    pub(super) fn bytes(&self, i: usize) -> Option<Vec<u8>> {
        let s = self.snaps.get(i)?;
        let mut b = vec![0u8; s.len as usize];
        self.file.read_exact_at(&mut b, s.off).ok()?;
        (crc32fast::hash(&b) == s.crc).then_some(b)
    }

    /// A snapshot's state, checked and decoded.
    pub(super) fn state(&self, i: usize) -> Option<SessionState> {
        decode_state(&self.bytes(i)?)
    }

    /// The latest snapshot whose events all have `timestamp <= at`.
    pub(super) fn latest_le(&self, at: i64) -> Option<usize> {
        self.snaps
            .partition_point(|s| s.max_ts <= at)
            .checked_sub(1)
    }
}

/// Reads the section heads of the saved file; the states stay on disk until used.
/// A missing file is no checkpoints; a damaged one is as much of it as checks out.
pub(super) fn load(dir: &Path) -> crate::hash::Map<Arc<str>, Saved> {
    let mut out = crate::hash::Map::default();
    let path = dir.join(FILE);
    let Ok(file) = File::open(&path) else {
        return out;
    };
    let file = Arc::new(file);
    let len = file.metadata().map_or(0, |m| m.len());
    let mut magic = [0u8; 8];
    if file.read_exact_at(&mut magic, 0).is_err() || &magic != MAGIC {
        tracing::warn!(file = %path.display(), "saved checkpoints: not a checkpoint file; ignored (the lazy fold rebuilds them)");
        return out;
    }
    let mut at = 8u64;
    while at < len {
        match read_section(&file, at, len) {
            Some((id, snaps, next)) => {
                out.insert(
                    Arc::from(id),
                    Saved {
                        file: file.clone(),
                        snaps,
                    },
                );
                at = next;
            }
            None => {
                tracing::warn!(file = %path.display(), offset = at, "saved checkpoints: damaged section; it and what follows are ignored");
                break;
            }
        }
    }
    out
}

fn read_section(file: &File, at: u64, len: u64) -> Option<(String, Vec<Snap>, u64)> {
    let mut fh = [0u8; 8];
    file.read_exact_at(&mut fh, at).ok()?;
    let head_len = u32::from_le_bytes(fh.get(0..4)?.try_into().ok()?);
    let head_crc = u32::from_le_bytes(fh.get(4..8)?.try_into().ok()?);
    if head_len > MAX_HEAD || at + 8 + u64::from(head_len) > len {
        return None;
    }
    let mut head = vec![0u8; head_len as usize];
    file.read_exact_at(&mut head, at + 8).ok()?;
    if crc32fast::hash(&head) != head_crc {
        return None;
    }
    let mut r = Reader(&head);
    let id = r.str()?.to_string();
    let count = r.u32()? as usize;
    if count.checked_mul(SNAP)? > r.0.len() {
        return None;
    }
    let mut off = at + 8 + u64::from(head_len);
    let mut snaps = Vec::with_capacity(count);
    for _ in 0..count {
        let (seq, max_ts, event_count) = (r.u64()?, r.i64()?, r.u64()?);
        let (slen, crc) = (r.u32()?, r.u32()?);
        if snaps
            .last()
            .is_some_and(|p: &Snap| p.seq >= seq || p.max_ts > max_ts)
        {
            return None;
        }
        snaps.push(Snap {
            seq,
            max_ts,
            event_count,
            off,
            len: slen,
            crc,
        });
        off += u64::from(slen);
    }
    (off <= len).then_some((id, snaps, off))
}

/// One section to write: a session's snapshots, oldest first, as `(seq, max_ts,
/// event_count, state bytes)`.
pub(super) type Section = (Arc<str>, Vec<(u64, i64, u64, Vec<u8>)>);

/// Writes the file whole: temp file, fsync, rename (a crash leaves the old file or the
/// new one, never a mix).
pub(super) fn write(dir: &Path, sections: &[Section]) -> std::io::Result<()> {
    let mut b = Vec::new();
    b.extend_from_slice(MAGIC);
    for (id, snaps) in sections {
        if snaps.is_empty() || id.len() > usize::from(u16::MAX) {
            continue;
        }
        let mut head = Vec::with_capacity(6 + id.len() + snaps.len() * SNAP);
        put_str(&mut head, id);
        head.extend_from_slice(&(snaps.len() as u32).to_le_bytes());
        for (seq, max_ts, count, state) in snaps {
            head.extend_from_slice(&seq.to_le_bytes());
            head.extend_from_slice(&max_ts.to_le_bytes());
            head.extend_from_slice(&count.to_le_bytes());
            head.extend_from_slice(&(state.len() as u32).to_le_bytes());
            head.extend_from_slice(&crc32fast::hash(state).to_le_bytes());
        }
        b.extend_from_slice(&(head.len() as u32).to_le_bytes());
        b.extend_from_slice(&crc32fast::hash(&head).to_le_bytes());
        b.extend_from_slice(&head);
        for (_, _, _, state) in snaps {
            b.extend_from_slice(state);
        }
    }
    let tmp = dir.join(format!("{FILE}.tmp"));
    {
        let f = File::create(&tmp)?;
        f.write_all_at(&b, 0)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, dir.join(FILE))?;
    File::open(dir)?.sync_all()
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    let n = s.len().min(usize::from(u16::MAX));
    out.extend_from_slice(&(n as u16).to_le_bytes());
    out.extend_from_slice(s.as_bytes().get(..n).unwrap_or_default());
}

/// Encodes a state (see the module doc). Strings longer than 64 KiB cannot be saved:
/// `None`, and that snapshot is left to the lazy fold.
pub(super) fn encode_state(s: &SessionState) -> Option<Vec<u8>> {
    let long = |x: &str| x.len() > usize::from(u16::MAX);
    let mut b = Vec::with_capacity(24 + 64 * s.size());
    b.extend_from_slice(&s.event_count.to_le_bytes());
    b.extend_from_slice(&s.last_seq.unwrap_or(0).to_le_bytes());
    b.extend_from_slice(&(s.agents.len() as u32).to_le_bytes());
    for (id, a) in &s.agents {
        if long(id) || long(&a.status) || long(&a.last_event_type) {
            return None;
        }
        put_str(&mut b, id);
        put_str(&mut b, &a.status);
        put_str(&mut b, &a.last_event_type);
        b.extend_from_slice(&a.last_event_at.to_le_bytes());
        b.extend_from_slice(&a.event_count.to_le_bytes());
        b.extend_from_slice(&a.spawned_at.to_le_bytes());
        b.extend_from_slice(&a.destroyed_at.unwrap_or(0).to_le_bytes());
        b.push(u8::from(a.destroyed_at.is_some()));
    }
    b.extend_from_slice(&(s.tasks.len() as u32).to_le_bytes());
    for (id, t) in &s.tasks {
        if long(id) || t.agent_id.as_deref().is_some_and(long) {
            return None;
        }
        put_str(&mut b, id);
        b.push(match t.status {
            "running" => 0,
            "completed" => 1,
            _ => 2,
        });
        b.push(u8::from(t.agent_id.is_some()));
        if let Some(a) = &t.agent_id {
            put_str(&mut b, a);
        }
        b.extend_from_slice(&t.started_at.to_le_bytes());
        b.extend_from_slice(&t.ended_at.unwrap_or(0).to_le_bytes());
        b.push(u8::from(t.ended_at.is_some()));
    }
    Some(b)
}

/// Decodes a state; `None` on anything malformed.
pub(super) fn decode_state(b: &[u8]) -> Option<SessionState> {
    let mut r = Reader(b);
    let mut s = SessionState {
        event_count: r.u64()?,
        last_seq: Some(r.u64()?).filter(|&q| q != 0),
        ..SessionState::default()
    };
    // Strings shared within the state, as the fold shares them.
    let mut names: Vec<Arc<str>> = Vec::new();
    let mut name = |x: &str| -> Arc<str> {
        if let Some(a) = names.iter().find(|a| &***a == x) {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(x);
        if names.len() < 32 {
            names.push(a.clone());
        }
        a
    };
    let agents = r.u32()? as usize;
    if agents > r.0.len() {
        return None;
    }
    s.agents.reserve(agents);
    for _ in 0..agents {
        let id: Arc<str> = Arc::from(r.str()?);
        let status = name(r.str()?);
        let last_event_type = name(r.str()?);
        let (last_event_at, event_count, spawned_at, destroyed) =
            (r.i64()?, r.u64()?, r.i64()?, r.i64()?);
        let destroyed_at = r.flag()?.then_some(destroyed);
        s.agents.insert(
            id,
            AgentState {
                status,
                last_event_type,
                last_event_at,
                event_count,
                spawned_at,
                destroyed_at,
            },
        );
    }
    let tasks = r.u32()? as usize;
    if tasks > r.0.len() {
        return None;
    }
    s.tasks.reserve(tasks);
    for _ in 0..tasks {
        let id: Arc<str> = Arc::from(r.str()?);
        let status = match r.u8()? {
            0 => "running",
            1 => "completed",
            2 => "failed",
            _ => return None,
        };
        let agent_id = if r.flag()? {
            let a = r.str()?;
            // The fold shares the agent's key; do the same when it is known.
            Some(
                s.agents
                    .get_key_value(a)
                    .map_or_else(|| Arc::from(a), |(k, _)| k.clone()),
            )
        } else {
            None
        };
        let (started_at, ended) = (r.i64()?, r.i64()?);
        let ended_at = r.flag()?.then_some(ended);
        s.tasks.insert(
            id,
            TaskState {
                status,
                agent_id,
                started_at,
                ended_at,
            },
        );
    }
    r.0.is_empty().then_some(s)
}

/// A bounds-checked little-endian reader.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (a, b) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = b;
        Some(a)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1)?.first().copied()
    }
    fn flag(&mut self) -> Option<bool> {
        match self.u8()? {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        }
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn str(&mut self) -> Option<&'a str> {
        let n = u16::from_le_bytes(self.take(2)?.try_into().ok()?);
        std::str::from_utf8(self.take(usize::from(n))?).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SessionState {
        let mut s = SessionState {
            event_count: 42,
            last_seq: Some(99),
            ..SessionState::default()
        };
        let a: Arc<str> = Arc::from("agent-1");
        s.agents.insert(
            a.clone(),
            AgentState {
                status: Arc::from("busy"),
                last_event_type: Arc::from("STATE_CHANGE"),
                last_event_at: -5,
                event_count: 7,
                spawned_at: 3,
                destroyed_at: Some(9),
            },
        );
        s.tasks.insert(
            Arc::from("t1"),
            TaskState {
                status: "completed",
                agent_id: Some(a),
                started_at: 1,
                ended_at: Some(2),
            },
        );
        s.tasks.insert(
            Arc::from("t2"),
            TaskState {
                status: "running",
                agent_id: None,
                started_at: 4,
                ended_at: None,
            },
        );
        s
    }

    #[test]
    fn states_round_trip_and_damage_is_refused() {
        let s = sample();
        let b = encode_state(&s).unwrap_or_default();
        assert_eq!(decode_state(&b), Some(s));
        assert_eq!(
            decode_state(
                &SessionState::default()
                    .pipe(|e| encode_state(&e))
                    .unwrap_or_default()
            ),
            Some(SessionState::default())
        );
        for cut in 0..b.len() {
            assert!(
                decode_state(b.get(..cut).unwrap_or_default()).is_none(),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn the_file_round_trips_and_a_damaged_part_is_dropped() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let st = encode_state(&sample()).unwrap_or_default();
        let sections: Vec<Section> = vec![
            (
                Arc::from("a"),
                vec![(10, 5, 3, st.clone()), (20, 6, 8, st.clone())],
            ),
            (Arc::from("b"), vec![(30, 1, 1, st.clone())]),
        ];
        write(dir.path(), &sections).unwrap_or_else(|e| panic!("{e}"));
        let got = load(dir.path());
        assert_eq!(got.len(), 2);
        let a = got
            .get("a")
            .map(|s| s.snaps.iter().map(|x| x.seq).collect::<Vec<_>>());
        assert_eq!(a, Some(vec![10, 20]));
        assert_eq!(got.get("a").and_then(|s| s.state(1)), Some(sample()));
        assert_eq!(got.get("a").and_then(|s| s.latest_le(5)), Some(0));
        assert_eq!(got.get("a").and_then(|s| s.latest_le(4)), None);
        // Flip a byte of the last state: that state fails its check, the rest stand.
        let path = dir.path().join(FILE);
        let mut bytes = std::fs::read(&path).unwrap_or_default();
        let n = bytes.len();
        if let Some(x) = bytes.get_mut(n - 3) {
            *x ^= 0x40;
        }
        std::fs::write(&path, &bytes).unwrap_or_else(|e| panic!("{e}"));
        let got = load(dir.path());
        assert_eq!(got.get("b").and_then(|s| s.state(0)), None);
        assert_eq!(got.get("a").and_then(|s| s.state(0)), Some(sample()));
        // A damaged head drops its section and what follows; garbage drops the file.
        if let Some(x) = bytes.get_mut(8 + 8 + 2) {
            *x ^= 1;
        }
        std::fs::write(&path, &bytes).unwrap_or_else(|e| panic!("{e}"));
        assert!(load(dir.path()).is_empty());
        std::fs::write(&path, b"not a checkpoint file").unwrap_or_else(|e| panic!("{e}"));
        assert!(load(dir.path()).is_empty());
        std::fs::remove_file(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(load(dir.path()).is_empty());
    }

    trait Pipe: Sized {
        fn pipe<T>(self, f: impl FnOnce(Self) -> T) -> T {
            f(self)
        }
    }
    impl<T> Pipe for T {}
}
