//! Tokens of the condition language, each with the byte offset where it starts.
//!
//! The lexer is total: any input gives tokens or a [`ConditionError`] naming the byte
//! position of the fault. String literals are decoded here (both quote styles, JS
//! escapes), numbers are read as JavaScript reads a decimal literal.

use super::ConditionError;

#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    Ident(Box<str>),
    Str(Box<str>),
    Num(f64),
    /// `== === != !== < <= > >= && || ! ( ) [ ] , . -`
    Op(&'static str),
    End,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub tok: Tok,
    pub at: usize,
}

const OPS: &[&str] = &[
    "===", "!==", "==", "!=", "<=", ">=", "&&", "||", "<", ">", "!", "(", ")", "[", "]", ",",
    ".", "-",
];

fn ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == '$'
}

fn ident_part(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '$'
}

/// Splits `src` into tokens, ending with [`Tok::End`] at `src.len()`.
pub fn lex(src: &str) -> Result<Vec<Token>, ConditionError> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let at = i;
        if c == b'"' || c == b'\'' {
            let (s, end) = string(src, i)?;
            out.push(Token {
                tok: Tok::Str(s.into()),
                at,
            });
            i = end;
        } else if c.is_ascii_digit() || (c == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit))
        {
            let (n, end) = number(b, i)?;
            out.push(Token {
                tok: Tok::Num(n),
                at,
            });
            i = end;
        } else if ident_start(c as char) {
            let end = i + b[i..]
                .iter()
                .take_while(|&&x| ident_part(x as char))
                .count();
            out.push(Token {
                tok: Tok::Ident(src[i..end].into()),
                at,
            });
            i = end;
        } else if let Some(op) = OPS.iter().find(|op| b[i..].starts_with(op.as_bytes())) {
            out.push(Token {
                tok: Tok::Op(op),
                at,
            });
            i += op.len();
        } else {
            let ch = src[i..].chars().next().unwrap_or('?');
            let what = match ch {
                '=' => "`=` (compare with `==` or `===`)".to_string(),
                '&' | '|' => format!("`{ch}` (use `{ch}{ch}`)"),
                _ => format!("character {ch:?}"),
            };
            return Err(ConditionError::unexpected(at, what));
        }
    }
    out.push(Token {
        tok: Tok::End,
        at: b.len(),
    });
    Ok(out)
}

/// A decimal literal as JavaScript reads it: digits, an optional fraction, an optional
/// exponent. A letter right after it (`1x`, `0x10`) is an error, as in JS.
fn number(b: &[u8], start: usize) -> Result<(f64, usize), ConditionError> {
    let digits = |at: usize| b[at..].iter().take_while(|x| x.is_ascii_digit()).count();
    let mut i = start + digits(start);
    if b.get(i) == Some(&b'.') {
        i += 1 + digits(i + 1);
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        let mut j = i + 1;
        if matches!(b.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        let n = digits(j);
        if n == 0 {
            return Err(ConditionError::syntax(i, "a digit after the exponent"));
        }
        i = j + n;
    }
    if b.get(i).is_some_and(|&x| ident_part(x as char)) {
        return Err(ConditionError::syntax(
            i,
            "an operator after the number (only decimal numbers are accepted)",
        ));
    }
    let text = std::str::from_utf8(&b[start..i]).unwrap_or("");
    let v = text.parse::<f64>().map_err(|_| {
        ConditionError::syntax(start, "a number")
    })?;
    Ok((v, i))
}

/// A quoted string from `src[start]` (its quote char) to its closing quote.
fn string(src: &str, start: usize) -> Result<(String, usize), ConditionError> {
    let quote = src.as_bytes()[start] as char;
    let mut out = String::new();
    let mut chars = src[start + 1..].char_indices();
    let base = start + 1;
    while let Some((off, c)) = chars.next() {
        let at = base + off;
        match c {
            c if c == quote => return Ok((out, at + 1)),
            '\n' | '\r' => {
                return Err(ConditionError::syntax(at, "the closing quote before the line end"))
            }
            '\\' => {
                let Some((_, e)) = chars.next() else { break };
                match e {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    'b' => out.push('\u{8}'),
                    'f' => out.push('\u{c}'),
                    'v' => out.push('\u{b}'),
                    '0' => out.push('\0'),
                    'u' => {
                        let mut v = 0u32;
                        for _ in 0..4 {
                            let d = chars.next().and_then(|(_, h)| h.to_digit(16));
                            let Some(d) = d else {
                                return Err(ConditionError::syntax(at, "four hex digits after \\u"));
                            };
                            v = v * 16 + d;
                        }
                        // Lone surrogates cannot be held in a Rust string: refused.
                        let hi = v;
                        let c = if (0xd800..0xdc00).contains(&hi) {
                            let rest = chars.as_str();
                            let lo = rest
                                .strip_prefix("\\u")
                                .and_then(|r| r.get(..4))
                                .and_then(|h| u32::from_str_radix(h, 16).ok())
                                .filter(|lo| (0xdc00..0xe000).contains(lo));
                            let Some(lo) = lo else {
                                return Err(ConditionError::syntax(at, "a low surrogate after a high one"));
                            };
                            for _ in 0..6 {
                                chars.next();
                            }
                            char::from_u32(0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00))
                        } else {
                            char::from_u32(hi)
                        };
                        match c {
                            Some(c) => out.push(c),
                            None => {
                                return Err(ConditionError::syntax(at, "no lone surrogate in \\u"))
                            }
                        }
                    }
                    '\n' | '\r' => {
                        return Err(ConditionError::syntax(at, "no line break in a string"))
                    }
                    other => out.push(other),
                }
            }
            c => out.push(c),
        }
    }
    Err(ConditionError::syntax(
        src.len(),
        format!("the closing {quote} of the string opened at {start}"),
    ))
}
