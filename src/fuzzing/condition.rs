//! Fuzz body for the condition language: compile, then evaluate on event bytes.
//!
//! The input is a condition, a newline, then the bytes of an event (any bytes: the
//! evaluator must not trust them). Properties beyond "no panic, no stack overflow":
//! a condition that compiles has a canonical text that compiles to an equal condition
//! with the same canonical text and the same verdict on the event (when that text is
//! itself within the length limit); a refused one names a position within its source.

use crate::condition::{Condition, ErrorKind, MAX_LEN};

pub fn run(data: &[u8]) {
    let (src, event) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b"{}"[..]),
    };
    let Ok(src) = std::str::from_utf8(src) else {
        return;
    };
    match Condition::compile(src) {
        Ok(c) => {
            let verdict = c.matches(event);
            let _ = c.value_text(event);
            // Escaping can lengthen a string literal (a raw control byte is written
            // `\u0000`), so the canonical text of a condition near the 4 KiB limit may pass
            // it. The canonical text serves equality and hashing; it is only re-read here.
            if c.canonical().len() > MAX_LEN {
                return;
            }
            let again = match Condition::compile(c.canonical()) {
                Ok(a) => a,
                Err(e) => panic!(
                    "canonical {:?} of {src:?} does not compile: {e}",
                    c.canonical()
                ),
            };
            assert_eq!(
                again.canonical(),
                c.canonical(),
                "canonical of {src:?} is not stable"
            );
            assert_eq!(
                again.matches(event),
                verdict,
                "canonical of {src:?} means otherwise"
            );
        }
        Err(e) => {
            if e.kind == ErrorKind::Syntax {
                assert!(
                    e.position <= src.len(),
                    "{src:?}: position {} past the end",
                    e.position
                );
            }
        }
    }
}
