//! The byte layout of the log: one checksummed record per appended batch.
//!
//! A batch is one record so that a torn write loses the batch whole, never half of it
//! (SPEC §2: nothing is half-stored). Layout, little-endian (see docs/STORAGE.md):
//!
//! ```text
//! record  = len:u32  crc:u32  body[len]           crc = crc32(body)
//! body    = version:u8(=1)  flags:u8(=0)  reserved:u16(=0)  count:u32  entry*count
//! entry   = seq:u64  ts:i64  session_len:u16  agent_len:u16  kind_len:u16  reserved:u16
//!           json_len:u32  session  agent  kind  json
//! ```
//!
//! `agent_len = 0xFFFF` means "no agent". An entry is self-contained, so the index can
//! point at it (`offset`, `len`) and a read decodes just that entry.

/// Bytes before the body.
pub const FRAME_HEADER: usize = 8;
/// Bytes of the body before the first entry.
pub const BODY_HEADER: usize = 8;
/// Bytes of an entry before its strings.
pub const ENTRY_HEADER: usize = 28;
/// The largest body accepted when reading: bounds allocations on hostile files.
pub const MAX_BODY: usize = 256 << 20;
pub const VERSION: u8 = 1;
const NO_AGENT: u16 = u16::MAX;

/// Why bytes are not a valid record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Fewer bytes than the frame says (a torn write, when at the end of a file).
    Short,
    /// A length field is impossible.
    BadLength(u64),
    /// The checksum does not match.
    Crc,
    /// The body's structure is wrong (unknown version, bad lengths, bad UTF-8, …).
    Malformed(&'static str),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Short => f.write_str("record cut short"),
            DecodeError::BadLength(n) => write!(f, "impossible record length {n}"),
            DecodeError::Crc => f.write_str("checksum mismatch"),
            DecodeError::Malformed(why) => write!(f, "malformed record: {why}"),
        }
    }
}

/// One entry decoded in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryRef<'a> {
    pub seq: u64,
    pub ts: i64,
    pub session: &'a str,
    pub agent: Option<&'a str>,
    pub kind: &'a str,
    pub json: &'a [u8],
}

/// The size of an entry on disk.
pub fn entry_len(session: &str, agent: Option<&str>, kind: &str, json_len: usize) -> usize {
    ENTRY_HEADER + session.len() + agent.map_or(0, str::len) + kind.len() + json_len
}

/// Appends one entry. Callers guarantee the string lengths fit (ingest limits them to
/// far less than 64 KiB; see [`fits`]).
pub fn put_entry(
    out: &mut Vec<u8>,
    seq: u64,
    ts: i64,
    session: &str,
    agent: Option<&str>,
    kind: &str,
    json: &[u8],
) {
    // The header as one array: one capacity check and one copy instead of seven.
    let mut h = [0u8; ENTRY_HEADER];
    let fields: [&[u8]; 7] = [
        &seq.to_le_bytes(),
        &ts.to_le_bytes(),
        &(session.len() as u16).to_le_bytes(),
        &agent.map_or(NO_AGENT, |a| a.len() as u16).to_le_bytes(),
        &(kind.len() as u16).to_le_bytes(),
        &0u16.to_le_bytes(),
        &(json.len() as u32).to_le_bytes(),
    ];
    let mut at = 0;
    for f in fields {
        if let Some(dst) = h.get_mut(at..at + f.len()) {
            dst.copy_from_slice(f);
        }
        at += f.len();
    }
    out.reserve(ENTRY_HEADER + session.len() + agent.map_or(0, str::len) + kind.len() + json.len());
    out.extend_from_slice(&h);
    out.extend_from_slice(session.as_bytes());
    if let Some(a) = agent {
        out.extend_from_slice(a.as_bytes());
    }
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(json);
}

/// Whether the strings of an event can be framed.
pub fn fits(session: &str, agent: Option<&str>, kind: &str, json_len: usize) -> bool {
    session.len() < NO_AGENT as usize
        && agent.is_none_or(|a| a.len() < NO_AGENT as usize)
        && kind.len() < NO_AGENT as usize
        && u32::try_from(json_len).is_ok()
}

/// Starts a record in `out` (cleared); finish it with [`finish_record`].
pub fn begin_record(out: &mut Vec<u8>, count: u32) {
    out.clear();
    out.extend_from_slice(&[0u8; FRAME_HEADER]);
    out.extend_from_slice(&[VERSION, 0, 0, 0]);
    out.extend_from_slice(&count.to_le_bytes());
}

/// Fills in the frame's length and checksum.
pub fn finish_record(out: &mut [u8]) {
    let Some((head, body)) = out.split_at_mut_checked(FRAME_HEADER) else {
        return;
    };
    let len = body.len() as u32;
    let crc = crc32fast::hash(body);
    head[..4].copy_from_slice(&len.to_le_bytes());
    head[4..].copy_from_slice(&crc.to_le_bytes());
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    b.get(at..at + 2)
        .and_then(|s| s.try_into().ok())
        .map(u16::from_le_bytes)
}
fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map(u32::from_le_bytes)
}
fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    b.get(at..at + 8)
        .and_then(|s| s.try_into().ok())
        .map(u64::from_le_bytes)
}

/// Reads a frame header: `(body_len, crc)`.
pub fn frame_header(b: &[u8]) -> Option<(usize, u32)> {
    Some((u32_at(b, 0)? as usize, u32_at(b, 4)?))
}

/// Checks a body's length bounds before reading it.
pub fn check_body_len(len: usize) -> Result<(), DecodeError> {
    if !(BODY_HEADER + ENTRY_HEADER..=MAX_BODY).contains(&len) {
        return Err(DecodeError::BadLength(len as u64));
    }
    Ok(())
}

fn utf8(x: &[u8]) -> Result<&str, DecodeError> {
    std::str::from_utf8(x).map_err(|_| DecodeError::Malformed("string not UTF-8"))
}

/// Decodes one entry at the start of `b`; returns it and its length.
pub fn decode_entry(b: &[u8]) -> Result<(EntryRef<'_>, usize), DecodeError> {
    let short = DecodeError::Malformed("entry cut short");
    let seq = u64_at(b, 0).ok_or(short.clone())?;
    let ts = u64_at(b, 8).ok_or(short.clone())? as i64;
    let sl = u16_at(b, 16).ok_or(short.clone())? as usize;
    let al = u16_at(b, 18).ok_or(short.clone())?;
    let kl = u16_at(b, 20).ok_or(short.clone())? as usize;
    let jl = u32_at(b, 24).ok_or(short.clone())? as usize;
    let al_n = if al == NO_AGENT { 0 } else { al as usize };
    let total = ENTRY_HEADER + sl + al_n + kl + jl;
    let body = b.get(ENTRY_HEADER..total).ok_or(short)?;
    let (session, rest) = body.split_at(sl);
    let (agent, rest) = rest.split_at(al_n);
    let (kind, json) = rest.split_at(kl);
    let session = utf8(session)?;
    let agent = if al == NO_AGENT {
        None
    } else {
        Some(utf8(agent)?)
    };
    let kind = utf8(kind)?;
    if session.is_empty() || kind.is_empty() {
        return Err(DecodeError::Malformed("empty session or type"));
    }
    Ok((
        EntryRef {
            seq,
            ts,
            session,
            agent,
            kind,
            json,
        },
        total,
    ))
}

/// Walks the entries of a checked body, calling `f(offset_in_body, len, entry)`.
pub fn for_each_entry<'a>(
    body: &'a [u8],
    mut f: impl FnMut(usize, usize, EntryRef<'a>) -> Result<(), DecodeError>,
) -> Result<u32, DecodeError> {
    if body.first() != Some(&VERSION) {
        return Err(DecodeError::Malformed("unknown record version"));
    }
    let count = u32_at(body, 4).ok_or(DecodeError::Malformed("body cut short"))?;
    if count == 0 {
        return Err(DecodeError::Malformed("empty batch"));
    }
    let mut at = BODY_HEADER;
    for _ in 0..count {
        let rest = body
            .get(at..)
            .ok_or(DecodeError::Malformed("entry past body"))?;
        let (e, len) = decode_entry(rest)?;
        f(at, len, e)?;
        at += len;
    }
    if at != body.len() {
        return Err(DecodeError::Malformed("trailing bytes in body"));
    }
    Ok(count)
}

/// Decodes one whole record at the start of `b`: checks framing and checksum, returns
/// the body and the record's total length.
pub fn decode_record(b: &[u8]) -> Result<(&[u8], usize), DecodeError> {
    let (len, crc) = frame_header(b).ok_or(DecodeError::Short)?;
    check_body_len(len)?;
    let body = b
        .get(FRAME_HEADER..FRAME_HEADER + len)
        .ok_or(DecodeError::Short)?;
    if crc32fast::hash(body) != crc {
        return Err(DecodeError::Crc);
    }
    Ok((body, FRAME_HEADER + len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        let mut rec = Vec::new();
        begin_record(&mut rec, 2);
        put_entry(&mut rec, 7, -3, "s", Some("a"), "X", b"{\"seq\":7}");
        put_entry(&mut rec, 8, 5, "s2", None, "Y", b"{}");
        finish_record(&mut rec);
        let (body, total) = decode_record(&rec).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(total, rec.len());
        let mut seen = Vec::new();
        let n = for_each_entry(body, |_, _, e| {
            seen.push((
                e.seq,
                e.ts,
                e.session.to_owned(),
                e.agent.map(str::to_owned),
                e.kind.to_owned(),
            ));
            Ok(())
        });
        assert_eq!(n, Ok(2));
        assert_eq!(seen[0], (7, -3, "s".into(), Some("a".into()), "X".into()));
        assert_eq!(seen[1], (8, 5, "s2".into(), None, "Y".into()));

        assert_eq!(
            decode_record(&rec[..rec.len() - 1]).err(),
            Some(DecodeError::Short)
        );
        let mut bad = rec.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(decode_record(&bad).err(), Some(DecodeError::Crc));
        assert!(matches!(
            decode_record(&[0u8; 8]).err(),
            Some(DecodeError::BadLength(0))
        ));
    }
}
