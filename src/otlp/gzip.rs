//! `Content-Encoding: gzip` bodies (RFC 1952), inflated with `miniz_oxide` under a limit.
//!
//! The limit applies to the inflated size, and inflation stops as soon as it is passed:
//! a small body that would inflate to gigabytes (a "gzip bomb") costs at most the limit
//! in memory and is refused as too large, never held whole. The member's header is read
//! here (miniz_oxide inflates raw deflate), and its CRC-32 and size are checked, so a
//! damaged body is refused rather than mapped.
//!
//! ```text
//!  0   1   2   3   4       8   9   10
//! +---+---+---+---+-------+---+---+  [FEXTRA: XLEN(2) + XLEN bytes] [FNAME\0] [FCOMMENT\0]
//! |ID1|ID2|CM |FLG| MTIME |XFL|OS |  [FHCRC(2)]  deflate data ...  CRC32(4)  ISIZE(4)
//! +---+---+---+---+-------+---+---+
//!  1f  8b  08
//! ```

use miniz_oxide::inflate::TINFLStatus;

/// Why a gzip body was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GzipError {
    /// Inflated, the body passes `limit` bytes.
    TooLarge { limit: usize },
    /// Not a gzip member, or a damaged one (the message says where).
    Invalid(&'static str),
}

const FHCRC: u8 = 1 << 1;
const FEXTRA: u8 = 1 << 2;
const FNAME: u8 = 1 << 3;
const FCOMMENT: u8 = 1 << 4;

/// Inflates one gzip member (or several, concatenated, as RFC 1952 allows), refusing
/// output past `limit` bytes.
pub fn gunzip(mut body: &[u8], limit: usize) -> Result<Vec<u8>, GzipError> {
    let mut out: Vec<u8> = Vec::new();
    loop {
        let (member, used) =
            gunzip_member(body, limit.saturating_sub(out.len())).map_err(|e| match e {
                GzipError::TooLarge { .. } => GzipError::TooLarge { limit },
                e => e,
            })?;
        if out.is_empty() {
            out = member;
        } else {
            out.extend_from_slice(&member);
        }
        body = body.get(used..).unwrap_or_default();
        if body.is_empty() {
            return Ok(out);
        }
    }
}

/// One member: its inflated bytes and how many input bytes it took.
fn gunzip_member(body: &[u8], limit: usize) -> Result<(Vec<u8>, usize), GzipError> {
    let short = GzipError::Invalid("gzip body is truncated");
    let header = body.get(..10).ok_or(short.clone())?;
    if header[0] != 0x1f || header[1] != 0x8b {
        return Err(GzipError::Invalid("not a gzip body (no gzip magic bytes)"));
    }
    if header[2] != 8 {
        return Err(GzipError::Invalid("gzip body does not use deflate"));
    }
    let flags = header[3];
    let mut at = 10;
    if flags & FEXTRA != 0 {
        let len = body.get(at..at + 2).ok_or(short.clone())?;
        at += 2 + u16::from_le_bytes([len[0], len[1]]) as usize;
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            let rest = body.get(at..).ok_or(short.clone())?;
            let nul = rest.iter().position(|&b| b == 0).ok_or(short.clone())?;
            at += nul + 1;
        }
    }
    if flags & FHCRC != 0 {
        at += 2;
    }
    let deflated = body.get(at..).ok_or(short.clone())?;
    let (out, used) = inflate(deflated, limit)?;
    let trailer = deflated.get(used..used + 8).ok_or(short)?;
    let crc = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
    let size = u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]);
    if crc32fast::hash(&out) != crc || out.len() as u32 != size {
        return Err(GzipError::Invalid(
            "gzip body is damaged (its CRC-32 or size does not match)",
        ));
    }
    Ok((out, at + used + 8))
}

/// Inflates the raw deflate stream at the start of `data`: its bytes and the input it
/// took. The output grows by doubling up to `limit`, and one byte more is an error.
fn inflate(data: &[u8], limit: usize) -> Result<(Vec<u8>, usize), GzipError> {
    use miniz_oxide::inflate::core::{decompress, inflate_flags, DecompressorOxide};
    let mut d = Box::<DecompressorOxide>::default();
    let mut out = vec![0u8; data.len().saturating_mul(4).clamp(1024, limit.max(1))];
    let mut pos = 0;
    let mut consumed = 0;
    let flags = inflate_flags::TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF;
    loop {
        let input = data.get(consumed..).unwrap_or_default();
        let (status, used, written) = decompress(&mut d, input, &mut out, pos, flags);
        consumed += used;
        pos += written;
        match status {
            TINFLStatus::Done => {
                out.truncate(pos);
                return Ok((out, consumed));
            }
            TINFLStatus::HasMoreOutput => {
                if out.len() >= limit {
                    return Err(GzipError::TooLarge { limit });
                }
                let grown = out.len().saturating_mul(2).min(limit);
                out.resize(grown, 0);
            }
            TINFLStatus::FailedCannotMakeProgress | TINFLStatus::NeedsMoreInput => {
                return Err(GzipError::Invalid("gzip body is truncated"))
            }
            _ => return Err(GzipError::Invalid("gzip body holds invalid deflate data")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A gzip member around `data`, deflated at `level`.
    pub fn gzip(data: &[u8]) -> Vec<u8> {
        let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];
        out.extend_from_slice(&miniz_oxide::deflate::compress_to_vec(data, 6));
        out.extend_from_slice(&crc32fast::hash(data).to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out
    }

    #[test]
    fn round_trips_and_checks() {
        let data = b"hello hello hello hello".repeat(100);
        let z = gzip(&data);
        assert_eq!(gunzip(&z, 1 << 20).unwrap(), data);
        // Two members concatenated.
        let mut two = z.clone();
        two.extend_from_slice(&gzip(b"!"));
        let mut want = data.clone();
        want.push(b'!');
        assert_eq!(gunzip(&two, 1 << 20).unwrap(), want);
        // A flipped CRC byte, a truncation, no magic.
        let mut bad = z.clone();
        let n = bad.len();
        bad[n - 6] ^= 1;
        assert!(matches!(gunzip(&bad, 1 << 20), Err(GzipError::Invalid(_))));
        for cut in [0, 5, 10, n / 2, n - 1] {
            assert!(
                matches!(gunzip(&z[..cut], 1 << 20), Err(GzipError::Invalid(_))),
                "{cut}"
            );
        }
        assert!(matches!(gunzip(b"{}", 1 << 20), Err(GzipError::Invalid(_))));
        // A name and a comment in the header.
        let mut named = vec![0x1f, 0x8b, 8, FNAME | FCOMMENT, 0, 0, 0, 0, 0, 255];
        named.extend_from_slice(b"f.json\0comment\0");
        named.extend_from_slice(&z[10..]);
        assert_eq!(gunzip(&named, 1 << 20).unwrap(), data);
    }

    #[test]
    fn a_bomb_stops_at_the_limit() {
        let zeros = vec![0u8; 8 << 20];
        let z = gzip(&zeros);
        assert!(z.len() < 64 * 1024, "{}", z.len());
        assert_eq!(
            gunzip(&z, 1 << 20),
            Err(GzipError::TooLarge { limit: 1 << 20 })
        );
        assert_eq!(gunzip(&z, 8 << 20).unwrap().len(), 8 << 20);
    }
}
