//! Incremental UTF-8 validation for text messages that arrive in pieces.
//!
//! RFC 6455 §8.1 lets an endpoint fail a text message as soon as its bytes so far cannot
//! be the start of valid UTF-8, and Autobahn grades "fail fast" strictly: the bad byte may
//! sit in one fragment among several, or in one frame that arrives in several reads. The
//! message reader therefore feeds each newly arrived run of text bytes here. Whole runs go
//! through `std::str::from_utf8` (the fast path, the same work as validating the whole
//! message at once); only a character split between two runs is carried, at most three
//! bytes, and completed from the next run.

/// The state of one text message's validation: the bytes of a character the last run
/// left incomplete.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Utf8Stream {
    carry: [u8; 4],
    len: u8,
}

/// The bytes seen so far cannot begin a valid UTF-8 string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidUtf8;

impl Utf8Stream {
    /// Validates the next run of the message's bytes.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Result<(), InvalidUtf8> {
        if self.len > 0 {
            let have = usize::from(self.len);
            let width = char_width(self.carry[0]);
            let take = (width - have).min(bytes.len());
            let (head, rest) = bytes.split_at(take);
            self.carry[have..have + take].copy_from_slice(head);
            let now = have + take;
            match std::str::from_utf8(&self.carry[..now]) {
                Ok(_) => self.len = 0,
                // Still a valid beginning: wait for the rest of the character.
                Err(e) if e.error_len().is_none() && now < width => {
                    self.len = now as u8;
                    return Ok(());
                }
                Err(_) => return Err(InvalidUtf8),
            }
            bytes = rest;
        }
        match std::str::from_utf8(bytes) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_none() => {
                let tail = bytes.get(e.valid_up_to()..).unwrap_or_default();
                self.carry[..tail.len()].copy_from_slice(tail);
                self.len = tail.len() as u8;
                Ok(())
            }
            Err(_) => Err(InvalidUtf8),
        }
    }

    /// The message ended: valid only if no character is left incomplete.
    pub fn finish(&self) -> Result<(), InvalidUtf8> {
        if self.len == 0 {
            Ok(())
        } else {
            Err(InvalidUtf8)
        }
    }
}

/// Bytes in the character a lead byte starts. Only lead bytes that `from_utf8` accepted
/// as the start of an incomplete character reach here, so 2–4.
fn char_width(lead: u8) -> usize {
    match lead {
        0xF0..=0xF4 => 4,
        0xE0..=0xEF => 3,
        _ => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every way of cutting `bytes` in two or three runs agrees with `from_utf8` on the
    /// whole, and a bad sequence is reported in the run that holds its first bad byte.
    fn agrees(bytes: &[u8]) {
        let whole = std::str::from_utf8(bytes).is_ok();
        for i in 0..=bytes.len() {
            for j in i..=bytes.len() {
                let mut s = Utf8Stream::default();
                let ok = s.feed(&bytes[..i]).is_ok()
                    && s.feed(&bytes[i..j]).is_ok()
                    && s.feed(&bytes[j..]).is_ok()
                    && s.finish().is_ok();
                assert_eq!(ok, whole, "{bytes:x?} cut at {i}, {j}");
            }
        }
    }

    #[test]
    fn any_cut_agrees_with_whole_validation() {
        for case in [
            "".as_bytes(),
            "plain ascii".as_bytes(),
            "κόσμε".as_bytes(),
            "\u{10FFFF}\u{800}é".as_bytes(),
            b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80edited",
            b"\xed\xa0\x80", // a surrogate
            b"\xc0\xaf",     // overlong
            b"\xf8\x88\x80\x80\x80",
            b"caf\xc3",  // truncated at the end
            b"\xe2\x82", // truncated in the middle of a 3-byte character
            b"ok\xf0\x9f\x98\x80ok",
        ] {
            agrees(case);
        }
    }

    #[test]
    fn fails_in_the_run_with_the_first_bad_byte() {
        // Autobahn 6.4.4: a valid run ending in a lead byte, then the byte that makes it
        // impossible; the error comes with that second run, before the message ends.
        let mut s = Utf8Stream::default();
        assert!(s
            .feed(b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4")
            .is_ok());
        assert_eq!(s.feed(b"\x90"), Err(InvalidUtf8));
        // A code point past U+10FFFF in one run.
        let mut s = Utf8Stream::default();
        assert_eq!(s.feed(b"ab\xf4\x90\x80\x80"), Err(InvalidUtf8));
    }

    #[test]
    fn a_character_may_arrive_one_byte_at_a_time() {
        let mut s = Utf8Stream::default();
        for b in "😀".as_bytes() {
            assert!(s.feed(&[*b]).is_ok());
        }
        assert!(s.finish().is_ok());
        let mut s = Utf8Stream::default();
        assert!(s.feed(&[0xF0]).is_ok());
        assert!(s.feed(&[0x9F]).is_ok());
        assert!(
            s.finish().is_err(),
            "an unfinished character at the end is invalid"
        );
    }
}
