//! The one raw scanner: reading a JSON object's bytes in place, without a parse tree.
//!
//! Stored events are JSON bytes, and most readers want one or two fields of them: the
//! delta encoder compares top-level fields, time travel reads `data.taskId`, the
//! condition language (SPEC §7) probes paths like `data.metrics.latency` on every live
//! event. Parsing each event into a tree for that costs an allocation per object; this
//! module walks the bytes instead and hands out slices of them.
//!
//! Rules every function here keeps:
//! - **Total**: any bytes in, no panic, no unbounded recursion (nesting is a counter).
//!   Input the scanner cannot read gives `None` (or `false`), never a guess.
//! - **No allocation**, except [`JsonStr::to_cow`] on a string that has escapes.
//! - **JavaScript's reading**: a repeated key reads as its last occurrence, as
//!   `JSON.parse` does, so a condition and a browser client see the same value.
//! - **Checks what it walks**: the objects on the way to a value, the members around it
//!   and the value itself are checked against the JSON grammar; values it only skips
//!   are checked for balance (strings closed, brackets nested), not byte by byte. The
//!   bytes it reads come from ingest, which refused anything simd-json did not parse,
//!   so this is about never misreading, not about validating.

use std::borrow::Cow;

/// JSON's four whitespace bytes.
#[inline]
pub fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// The first offset at or after `at` that is not whitespace (`json.len()` when none is).
#[inline]
pub fn skip_ws(json: &[u8], mut at: usize) -> usize {
    while json.get(at).copied().is_some_and(is_ws) {
        at += 1;
    }
    at
}

/// The last byte before offset `end` that is not whitespace, with its offset.
pub fn last_non_ws(json: &[u8], end: usize) -> Option<(usize, u8)> {
    let head = json.get(..end)?;
    let i = head.iter().rposition(|b| !is_ws(*b))?;
    Some((i, *head.get(i)?))
}

/// Offset of the first `needle` in `b`, eight bytes at a time (what splitting NDJSON
/// into lines costs is mostly this search).
pub fn find_byte(b: &[u8], needle: u8) -> Option<usize> {
    let pattern = LO * u64::from(needle);
    let mut at = 0;
    for c in b.chunks_exact(8) {
        let w = u64::from_le_bytes(<[u8; 8]>::try_from(c).unwrap_or_default());
        let hits = zero_bytes(w ^ pattern);
        if hits != 0 {
            return Some(at + first_flagged(hits));
        }
        at += 8;
    }
    b.get(at..)?
        .iter()
        .position(|&c| c == needle)
        .map(|i| at + i)
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// The high bit of each zero byte of `x`. Bytes above the first zero byte may be
/// flagged falsely (the borrow runs on), but the lowest flag is always exact — and the
/// lowest is all the searches below read.
#[inline(always)]
fn zero_bytes(x: u64) -> u64 {
    x.wrapping_sub(LO) & !x & HI
}

/// The byte index (little-endian) of the lowest flag of a non-zero [`zero_bytes`] mask.
#[inline(always)]
fn first_flagged(mask: u64) -> usize {
    (mask.trailing_zeros() / 8) as usize
}

/// Offset of the first `"` or `\` in `b`. Eight bytes at a time: string values
/// (messages, padding) are most of an event's bytes, and every scan must skip them.
fn quote_or_backslash(b: &[u8]) -> Option<usize> {
    let mut at = 0;
    for c in b.chunks_exact(8) {
        let w = u64::from_le_bytes(<[u8; 8]>::try_from(c).unwrap_or_default());
        // Each mask's lowest flag is exact, so the lowest of either is the first match.
        let hits = zero_bytes(w ^ (LO * u64::from(b'"'))) | zero_bytes(w ^ (LO * u64::from(b'\\')));
        if hits != 0 {
            return Some(at + first_flagged(hits));
        }
        at += 8;
    }
    b.get(at..)?
        .iter()
        .position(|&c| c == b'"' || c == b'\\')
        .map(|i| at + i)
}

/// The string token starting at `at` (its opening quote): the offset just past its
/// closing quote, and whether it holds any escape.
fn string_token(json: &[u8], at: usize) -> Option<(usize, bool)> {
    if json.get(at) != Some(&b'"') {
        return None;
    }
    let mut i = at + 1;
    let mut escaped = false;
    loop {
        i += quote_or_backslash(json.get(i..)?)?;
        if *json.get(i)? == b'"' {
            return Some((i + 1, escaped));
        }
        // A backslash and the byte it escapes; `\uXXXX` digits hold no quote.
        escaped = true;
        i += 2;
    }
}

/// `at` is at a string's opening quote; returns the offset just past its closing quote.
pub fn string_end(json: &[u8], at: usize) -> Option<usize> {
    string_token(json, at).map(|(end, _)| end)
}

/// `at` is at the first byte of a value; returns the offset just past the value.
/// Containers are matched by depth (strings inside skipped whole), scalars end at the
/// next delimiter; [`Value::of`] checks a value's own grammar.
#[inline]
pub fn value_end(json: &[u8], at: usize) -> Option<usize> {
    match *json.get(at)? {
        b'"' => string_end(json, at),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut i = at;
            loop {
                // Bytewise through a table (one load and test a byte): inside an event's
                // objects a quote comes every few bytes, too often for a word-at-a-time
                // search to pay off (measured).
                while json
                    .get(i)
                    .is_none_or(|b| CLASS[usize::from(*b)] & STRUCTURAL == 0)
                {
                    if i >= json.len() {
                        return None;
                    }
                    i += 1;
                }
                match *json.get(i)? {
                    b'"' => {
                        i = string_end(json, i)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    _ => {
                        depth = depth.checked_sub(1)?;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                }
                i += 1;
            }
        }
        b',' | b':' | b'}' | b']' => None,
        _ => {
            let mut i = at;
            while json
                .get(i)
                .is_some_and(|b| CLASS[usize::from(*b)] & SCALAR_END == 0)
            {
                i += 1;
            }
            (i > at).then_some(i)
        }
    }
}

/// [`CLASS`] bit: a byte [`value_end`] stops at inside a container.
const STRUCTURAL: u8 = 1;
/// [`CLASS`] bit: a byte that ends a scalar (a delimiter or whitespace).
const SCALAR_END: u8 = 2;

/// Byte classes for the scanning loops above, so each byte costs one table load.
static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    t[b'"' as usize] = STRUCTURAL;
    t[b'{' as usize] = STRUCTURAL;
    t[b'[' as usize] = STRUCTURAL;
    t[b'}' as usize] = STRUCTURAL | SCALAR_END;
    t[b']' as usize] = STRUCTURAL | SCALAR_END;
    t[b',' as usize] = SCALAR_END;
    t[b' ' as usize] = SCALAR_END;
    t[b'\t' as usize] = SCALAR_END;
    t[b'\n' as usize] = SCALAR_END;
    t[b'\r' as usize] = SCALAR_END;
    t
};

/// A JSON string as it sits in the bytes: still quoted, still escaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonStr<'j> {
    token: &'j [u8],
    escaped: bool,
}

/// A string whose escapes do not decode (a bad `\` sequence, a lone surrogate) or
/// whose bytes are not UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed;

impl<'j> JsonStr<'j> {
    /// The token at `json[at..]` when a string starts there.
    fn at(json: &'j [u8], at: usize) -> Option<(Self, usize)> {
        let (end, escaped) = string_token(json, at)?;
        let token = json.get(at..end)?;
        Some((JsonStr { token, escaped }, end))
    }

    /// The token with its quotes, exactly as in the input (what a writer copies).
    pub fn token(&self) -> &'j [u8] {
        self.token
    }

    /// The bytes between the quotes, escapes still in.
    pub fn raw(&self) -> &'j [u8] {
        let end = self.token.len().saturating_sub(1);
        self.token.get(1..end).unwrap_or_default()
    }

    /// Whether the string holds a `\` escape (then [`JsonStr::as_plain`] is `None`).
    pub fn has_escapes(&self) -> bool {
        self.escaped
    }

    /// The content, borrowed, when it needs no unescaping: the fast path nearly every
    /// string takes. `None` when it has escapes or is not UTF-8.
    pub fn as_plain(&self) -> Option<&'j str> {
        if self.escaped {
            return None;
        }
        std::str::from_utf8(self.raw()).ok()
    }

    /// The content, unescaped one char at a time without allocating.
    pub fn chars(&self) -> Chars<'j> {
        match std::str::from_utf8(self.raw()) {
            Ok(s) => Chars {
                rest: s.chars(),
                bad: false,
            },
            Err(_) => Chars {
                rest: "".chars(),
                bad: true,
            },
        }
    }

    /// Whether the content equals `s`: a byte comparison without escapes, a decoding
    /// one with. A malformed string equals nothing.
    pub fn eq_str(&self, s: &str) -> bool {
        if !self.escaped {
            return self.raw() == s.as_bytes();
        }
        let mut want = s.chars();
        for c in self.chars() {
            match c {
                Ok(c) if want.next() == Some(c) => {}
                _ => return false,
            }
        }
        want.next().is_none()
    }

    /// The content: borrowed without escapes, decoded into a new `String` with.
    pub fn to_cow(&self) -> Result<Cow<'j, str>, Malformed> {
        if let Some(s) = self.as_plain() {
            return Ok(Cow::Borrowed(s));
        }
        let mut out = String::with_capacity(self.raw().len());
        self.unescape_into(&mut out)?;
        Ok(Cow::Owned(out))
    }

    /// Appends the content to `out`; on `Err`, `out` holds what decoded before the fault.
    pub fn unescape_into(&self, out: &mut String) -> Result<(), Malformed> {
        if let Some(s) = self.as_plain() {
            out.push_str(s);
            return Ok(());
        }
        for c in self.chars() {
            out.push(c?);
        }
        Ok(())
    }
}

/// The chars of a [`JsonStr`], escapes decoded; yields one `Err` and stops at a fault.
#[derive(Debug, Clone)]
pub struct Chars<'j> {
    rest: std::str::Chars<'j>,
    bad: bool,
}

impl Chars<'_> {
    fn hex4(&mut self) -> Option<u32> {
        let mut v = 0;
        for _ in 0..4 {
            v = v * 16 + self.rest.next()?.to_digit(16)?;
        }
        Some(v)
    }

    /// The char after a `\`.
    fn escape(&mut self) -> Option<char> {
        Some(match self.rest.next()? {
            c @ ('"' | '\\' | '/') => c,
            'b' => '\u{8}',
            'f' => '\u{c}',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'u' => {
                let hi = self.hex4()?;
                if (0xd800..0xdc00).contains(&hi) {
                    // A high surrogate must be followed by an escaped low one.
                    if self.rest.next()? != '\\' || self.rest.next()? != 'u' {
                        return None;
                    }
                    let lo = self.hex4()?;
                    if !(0xdc00..0xe000).contains(&lo) {
                        return None;
                    }
                    char::from_u32(0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00))?
                } else {
                    // A lone low surrogate is no char: `from_u32` refuses it.
                    char::from_u32(hi)?
                }
            }
            _ => return None,
        })
    }
}

impl Iterator for Chars<'_> {
    type Item = Result<char, Malformed>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.bad {
            self.bad = false;
            self.rest = "".chars();
            return Some(Err(Malformed));
        }
        match self.rest.next()? {
            '\\' => match self.escape() {
                Some(c) => Some(Ok(c)),
                None => {
                    self.rest = "".chars();
                    Some(Err(Malformed))
                }
            },
            c => Some(Ok(c)),
        }
    }
}

/// A JSON number token, checked against the JSON grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Number<'j>(&'j [u8]);

impl<'j> Number<'j> {
    /// `raw` when it is exactly one JSON number.
    pub fn parse(raw: &'j [u8]) -> Option<Self> {
        let digits = |at: usize| {
            raw.get(at..)
                .map_or(0, |r| r.iter().take_while(|b| b.is_ascii_digit()).count())
        };
        let mut i = usize::from(raw.first() == Some(&b'-'));
        match raw.get(i)? {
            b'0' => i += 1,
            b'1'..=b'9' => i += digits(i),
            _ => return None,
        }
        if raw.get(i) == Some(&b'.') {
            let n = digits(i + 1);
            if n == 0 {
                return None;
            }
            i += 1 + n;
        }
        if matches!(raw.get(i), Some(b'e' | b'E')) {
            i += 1;
            if matches!(raw.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            let n = digits(i);
            if n == 0 {
                return None;
            }
            i += n;
        }
        (i == raw.len()).then_some(Number(raw))
    }

    /// The token as written.
    pub fn raw(&self) -> &'j str {
        // Only ASCII digits, signs, `.`, `e` and `E` pass `parse`.
        std::str::from_utf8(self.0).unwrap_or_default()
    }

    /// Whether the token has no fraction and no exponent.
    pub fn is_integer(&self) -> bool {
        !self.0.iter().any(|b| matches!(b, b'.' | b'e' | b'E'))
    }

    /// The value as JavaScript reads it (any number; beyond f64's range, ±infinity).
    pub fn as_f64(&self) -> f64 {
        self.raw().parse().unwrap_or(f64::NAN)
    }

    /// The value of an integer token that fits an `i64` (`-0` is 0).
    pub fn as_i64(&self) -> Option<i64> {
        if self.is_integer() {
            self.raw().parse().ok()
        } else {
            None
        }
    }

    /// The value of a non-negative integer token that fits a `u64` (`-0` is 0).
    pub fn as_u64(&self) -> Option<u64> {
        if !self.is_integer() {
            return None;
        }
        match self.raw() {
            "-0" => Some(0),
            t => t.parse().ok(),
        }
    }
}

/// What a probe found: the value's type and its bytes (in the input, unparsed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'j> {
    /// The path leads nowhere: a key is absent, or a step is not an object
    /// (JavaScript's `undefined`).
    Missing,
    Null,
    Bool(bool),
    Number(Number<'j>),
    Str(JsonStr<'j>),
    /// The object's bytes, braces included; probe into it or walk its [`members`].
    Object(&'j [u8]),
    /// The array's bytes, brackets included.
    Array(&'j [u8]),
}

impl<'j> Value<'j> {
    /// Classifies exactly one JSON value (surrounding whitespace allowed). `None` when
    /// the bytes are not one value: a bad literal or number, an unclosed string,
    /// unbalanced brackets, or anything after the value.
    pub fn of(raw: &'j [u8]) -> Option<Self> {
        let at = skip_ws(raw, 0);
        let end = value_end(raw, at)?;
        if skip_ws(raw, end) != raw.len() {
            return None;
        }
        Self::exact(raw.get(at..end)?)
    }

    /// Classifies `v`, which [`value_end`] already delimited (a member's value): its
    /// brackets are known to balance, so a container is not walked again.
    pub(crate) fn exact(v: &'j [u8]) -> Option<Self> {
        Some(match *v.first()? {
            b'"' => match JsonStr::at(v, 0)? {
                (s, end) if end == v.len() => Value::Str(s),
                _ => return None,
            },
            b'{' if v.last() == Some(&b'}') => Value::Object(v),
            b'[' if v.last() == Some(&b']') => Value::Array(v),
            b't' if v == b"true" => Value::Bool(true),
            b'f' if v == b"false" => Value::Bool(false),
            b'n' if v == b"null" => Value::Null,
            b'-' | b'0'..=b'9' => Value::Number(Number::parse(v)?),
            _ => return None,
        })
    }
}

/// One member of an object: its key, and its value's bytes (exactly the value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member<'j> {
    pub key: JsonStr<'j>,
    pub value: &'j [u8],
}

/// The members of an object, in order (see [`members`]).
#[derive(Debug, Clone)]
pub struct Members<'j> {
    json: &'j [u8],
    at: usize,
    state: State,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// A member starts at `at`.
    Member,
    /// The object closed; `at` is just past its `}`.
    Closed,
    /// The bytes broke the grammar.
    Bad,
}

/// Walks the members of the object `json` holds (whitespace around it allowed). The
/// iterator stops at the end of the object or at the first fault; [`Members::finish`]
/// says which.
pub fn members(json: &[u8]) -> Members<'_> {
    let at = skip_ws(json, 0);
    let (at, state) = if json.get(at) != Some(&b'{') {
        (at, State::Bad)
    } else {
        let at = skip_ws(json, at + 1);
        if json.get(at) == Some(&b'}') {
            (at + 1, State::Closed)
        } else {
            (at, State::Member)
        }
    };
    Members { json, at, state }
}

impl<'j> Members<'j> {
    fn member(&mut self) -> Option<Member<'j>> {
        let json = self.json;
        let (key, p) = JsonStr::at(json, self.at)?;
        let p = skip_ws(json, p);
        if json.get(p) != Some(&b':') {
            return None;
        }
        let p = skip_ws(json, p + 1);
        let end = value_end(json, p)?;
        let value = json.get(p..end)?;
        let p = skip_ws(json, end);
        match json.get(p) {
            Some(b',') => self.at = skip_ws(json, p + 1),
            Some(b'}') => {
                self.at = p + 1;
                self.state = State::Closed;
            }
            _ => return None,
        }
        Some(Member { key, value })
    }

    /// Walks what is left and says whether the input was one whole object: closed,
    /// with nothing but whitespace after it.
    pub fn finish(mut self) -> bool {
        while self.next().is_some() {}
        self.state == State::Closed && skip_ws(self.json, self.at) == self.json.len()
    }
}

impl<'j> Iterator for Members<'j> {
    type Item = Member<'j>;

    fn next(&mut self) -> Option<Member<'j>> {
        if self.state != State::Member {
            return None;
        }
        let m = self.member();
        if m.is_none() {
            self.state = State::Bad;
        }
        m
    }
}

/// A top-level field as raw bytes: the key token with its quotes (still escaped), and
/// the value.
pub type RawField<'j> = (&'j [u8], &'j [u8]);

/// Appends an object's top-level fields to `fields`, in order. Returns false when
/// `json` is not one whole object (what was appended is then meaningless).
pub fn split_fields<'j>(json: &'j [u8], fields: &mut Vec<RawField<'j>>) -> bool {
    let mut m = members(json);
    for Member { key, value } in m.by_ref() {
        fields.push((key.token(), value));
    }
    m.finish()
}

/// The values of `keys` in `object`, one pass over its members: each key's last
/// occurrence, as `JSON.parse` reads it, or [`Value::Missing`]. `None` when `object` is
/// not one whole object or a value found is malformed.
pub fn lookup<'j, const N: usize>(object: &'j [u8], keys: [&str; N]) -> Option<[Value<'j>; N]> {
    let mut found: [Option<&'j [u8]>; N] = [None; N];
    let mut m = members(object);
    for member in m.by_ref() {
        for (slot, k) in found.iter_mut().zip(keys) {
            if member.key.eq_str(k) {
                *slot = Some(member.value);
            }
        }
    }
    if !m.finish() {
        return None;
    }
    let mut out = [Value::Missing; N];
    for (o, f) in out.iter_mut().zip(found) {
        if let Some(raw) = f {
            *o = Value::exact(raw)?;
        }
    }
    Some(out)
}

/// What `lookup(object, [key])` gives, `[v]` unwrapped: the value of `key`'s last
/// occurrence, [`Value::Missing`], or `None` when `object` is not one whole object or the
/// value found is malformed. The same grammar checks as [`members`] and
/// [`Members::finish`], in one loop without the iterator's state (the condition
/// evaluator's every property read is this).
pub fn lookup_one<'j>(object: &'j [u8], key: &str) -> Option<Value<'j>> {
    match lookup_one_raw(object, key)? {
        Some(raw) => Value::exact(raw),
        None => Some(Value::Missing),
    }
}

/// [`lookup_one`] before classifying: the bytes of `key`'s last value, `Some(None)` when
/// it is absent, `None` when `object` is not one whole object.
pub fn lookup_one_raw<'j>(object: &'j [u8], key: &str) -> Option<Option<&'j [u8]>> {
    let want = key.as_bytes();
    let mut at = skip_ws(object, 0);
    if object.get(at) != Some(&b'{') {
        return None;
    }
    at = skip_ws(object, at + 1);
    let mut found: Option<&'j [u8]> = None;
    if object.get(at) == Some(&b'}') {
        at += 1;
    } else {
        loop {
            let (key_end, escaped) = string_token(object, at)?;
            let token = object.get(at..key_end)?;
            let hit = if escaped {
                JsonStr { token, escaped }.eq_str(key)
            } else {
                token.len() == want.len() + 2 && token.get(1..token.len() - 1) == Some(want)
            };
            let mut p = skip_ws(object, key_end);
            if object.get(p) != Some(&b':') {
                return None;
            }
            p = skip_ws(object, p + 1);
            let end = value_end(object, p)?;
            if hit {
                found = Some(object.get(p..end)?);
            }
            p = skip_ws(object, end);
            match object.get(p) {
                Some(b',') => at = skip_ws(object, p + 1),
                Some(b'}') => {
                    at = p + 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    if skip_ws(object, at) != object.len() {
        return None;
    }
    Some(found)
}

/// The value at `path` in the object `json` (`["data", "metrics", "latency"]` for
/// `data.metrics.latency`), descending through nested objects. A step that is absent
/// or not an object gives [`Value::Missing`], as JavaScript gives `undefined`; `None`
/// means `json`, an object on the path or the value found is malformed.
pub fn probe<'j>(json: &'j [u8], path: &[&str]) -> Option<Value<'j>> {
    let Some((first, rest)) = path.split_first() else {
        return Value::of(json);
    };
    let [mut v] = lookup(json, [*first])?;
    for key in rest {
        match v {
            Value::Object(o) => [v] = lookup(o, [*key])?,
            _ => return Some(Value::Missing),
        }
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every prefix of every input, and every byte flipped to each delimiter: none may
    /// panic, whatever the function.
    fn torture(inputs: &[&str], f: impl Fn(&[u8])) {
        for s in inputs {
            let b = s.as_bytes();
            for n in 0..=b.len() {
                f(&b[..n]);
                f(&b[n..]);
            }
            for i in 0..b.len() {
                for c in [b'"', b'\\', b'{', b'}', b'[', b']', b',', b':', 0xff, b' '] {
                    let mut m = b.to_vec();
                    m[i] = c;
                    f(&m);
                }
            }
        }
    }

    const DOCS: &[&str] = &[
        r#"{"a":1,"b":"x\"}","c":{"d":[1,{"e":null}],"f":"\u00e9"},"g":true}"#,
        r#" { "k" : [ "]" , { } ] , "t\u0079pe" : -1.5e3 } "#,
        r#"{"data":{"metrics":{"latency":12.5}},"data":{"metrics":{"latency":7}}}"#,
        r#"{"s":"😀\ud83d\ude00","n":[[[[]]]],"z":false}"#,
    ];

    #[test]
    fn whitespace() {
        let cases: &[(&str, usize, usize)] = &[
            ("", 0, 0),
            ("  x", 0, 2),
            ("\t\r\n x", 1, 4),
            ("x", 1, 1),
            ("x", 5, 5),
        ];
        for &(s, at, want) in cases {
            assert_eq!(skip_ws(s.as_bytes(), at), want, "{s:?}@{at}");
        }
        type Case = (&'static str, usize, Option<(usize, u8)>);
        let cases: &[Case] = &[
            ("", 0, None),
            ("  ", 2, None),
            ("a} \n", 4, Some((1, b'}'))),
            ("a}", 1, Some((0, b'a'))),
            ("a}", 9, None),
        ];
        for &(s, end, want) in cases {
            assert_eq!(last_non_ws(s.as_bytes(), end), want, "{s:?}<{end}");
        }
    }

    #[test]
    fn find_byte_finds_the_first_at_any_offset() {
        for len in 0..40 {
            for hit in 0..=len {
                let mut b = vec![b'a'; len];
                if hit < len {
                    b[hit] = b'\n';
                    if hit + 3 < len {
                        b[hit + 3] = b'\n';
                    }
                }
                assert_eq!(
                    find_byte(&b, b'\n'),
                    (hit < len).then_some(hit),
                    "{len} {hit}"
                );
            }
        }
        // Bytes next to the needle's value (0x0a) must not match it.
        assert_eq!(
            find_byte(b"\x0b\x09\x8a\xff\x0b\x09\x8a\xff\x0a", b'\n'),
            Some(8)
        );
        assert_eq!(find_byte(b"", b'\n'), None);
    }

    #[test]
    fn quote_or_backslash_finds_the_first_at_any_offset() {
        for len in 0..40 {
            for hit in 0..=len {
                for c in [b'"', b'\\'] {
                    let mut b = vec![b'a'; len];
                    if hit < len {
                        b[hit] = c;
                    }
                    let want = (hit < len).then_some(hit);
                    assert_eq!(quote_or_backslash(&b), want, "len {len} hit {hit}");
                }
            }
        }
        assert_eq!(quote_or_backslash(b"\x80\xff\"\\"), Some(2));
    }

    #[test]
    fn string_and_value_ends() {
        let strings: &[(&str, Option<usize>)] = &[
            (r#""""#, Some(2)),
            (r#""abc"x"#, Some(5)),
            (r#""a\"b""#, Some(6)),
            (r#""a\\""#, Some(5)),
            (r#""\\\"""#, Some(6)),
            (r#""é✓😀""#, Some(11)),
            (r#""a long string past one word""#, Some(29)),
            (r#""\u0022""#, Some(8)),
            (r#""abc"#, None),
            (r#""a\"#, None),
            (r#""a\""#, None),
            ("x", None),
            ("", None),
        ];
        for &(s, want) in strings {
            assert_eq!(string_end(s.as_bytes(), 0), want, "{s}");
        }
        let values: &[(&str, Option<usize>)] = &[
            ("1", Some(1)),
            ("-1.5e3,", Some(6)),
            ("true}", Some(4)),
            ("null ]", Some(4)),
            (r#""x",1"#, Some(3)),
            (r#"{"a":"}"},"#, Some(9)),
            (r#"[1,[2,{"b":"]"}]]x"#, Some(17)),
            ("{}", Some(2)),
            ("[[]", None),
            ("[1}", Some(3)),
            ("}", None),
            (",", None),
            (":", None),
            ("]", None),
            ("", None),
            (r#"{"a":"#, None),
            (r#"["\"]"#, None),
        ];
        for &(s, want) in values {
            assert_eq!(value_end(s.as_bytes(), 0), want, "{s}");
        }
        // Deep nesting is a counter, not recursion.
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(value_end(deep.as_bytes(), 0), Some(200_000));
    }

    #[test]
    fn values_are_classified() {
        let s = |raw: &'static str| Value::of(raw.as_bytes());
        assert_eq!(s("null"), Some(Value::Null));
        assert_eq!(s(" true "), Some(Value::Bool(true)));
        assert_eq!(s("false"), Some(Value::Bool(false)));
        assert_eq!(s("{}"), Some(Value::Object(b"{}")));
        assert_eq!(s(r#"[1,"]"]"#), Some(Value::Array(br#"[1,"]"]"#)));
        assert!(matches!(s(r#""x""#), Some(Value::Str(_))));
        for good in [
            "0",
            "-0",
            "12",
            "-1.5",
            "1e3",
            "1E+3",
            "2.5e-7",
            "123456789012345678901234",
        ] {
            assert!(matches!(s(good), Some(Value::Number(_))), "{good}");
        }
        for bad in [
            "", " ", "nul", "nulls", "True", "01", "-", "1.", ".5", "+1", "1e", "1e+", "0x1",
            "1 2", "[1}", "{]", "\"a", "\"a\"x", "NaN", "Infinity", "{} {}", "}", ",",
        ] {
            assert_eq!(s(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn numbers_read_as_simd_json_and_javascript_read_them() {
        let n = |raw: &'static str| Number::parse(raw.as_bytes()).unwrap();
        assert_eq!(n("7").as_u64(), Some(7));
        assert_eq!(n("7").as_i64(), Some(7));
        assert_eq!(n("-7").as_u64(), None);
        assert_eq!(n("-7").as_i64(), Some(-7));
        assert_eq!(n("-0").as_i64(), Some(0));
        assert_eq!(n("-0").as_u64(), Some(0));
        assert_eq!(n("18446744073709551615").as_u64(), Some(u64::MAX));
        assert_eq!(n("18446744073709551616").as_u64(), None);
        assert_eq!(n("-9223372036854775808").as_i64(), Some(i64::MIN));
        assert_eq!(n("1.0").as_i64(), None);
        assert_eq!(n("1e3").as_u64(), None);
        assert!(n("1e3").as_f64() == 1000.0);
        assert!(n("-2.5").as_f64() == -2.5);
        assert!(n("1e400").as_f64().is_infinite());
        assert!(n("1e3").raw() == "1e3" && !n("1e3").is_integer() && n("-3").is_integer());
    }

    #[test]
    fn strings_decode() {
        let st = |raw: &'static str| match Value::of(raw.as_bytes()) {
            Some(Value::Str(s)) => s,
            other => panic!("{raw}: {other:?}"),
        };
        let cases: &[(&str, Option<&str>)] = &[
            (r#""""#, Some("")),
            (r#""plain""#, Some("plain")),
            (r#""é✓😀""#, Some("é✓😀")),
            (r#""a\"b\\c\/d""#, Some("a\"b\\c/d")),
            (r#""\b\f\n\r\t""#, Some("\u{8}\u{c}\n\r\t")),
            (r#""\u0041\u00e9\u2028""#, Some("Aé\u{2028}")),
            (r#""\ud83d\ude00!""#, Some("😀!")),
            (r#""\uD83D\uDE00""#, Some("😀")),
            (r#""\ud800""#, None),
            (r#""\ud800x""#, None),
            (r#""\ud800\u0041""#, None),
            (r#""\udc00""#, None),
            (r#""\u00g0""#, None),
            (r#""\u00""#, None),
            (r#""\x""#, None),
        ];
        for &(raw, want) in cases {
            let s = st(raw);
            assert_eq!(s.to_cow().ok().as_deref(), want, "{raw}");
            assert_eq!(s.token(), raw.as_bytes());
            assert_eq!(s.has_escapes(), raw.contains('\\'), "{raw}");
            assert_eq!(s.as_plain().is_some(), !raw.contains('\\'), "{raw}");
            if let Some(w) = want {
                assert!(s.eq_str(w), "{raw}");
                assert!(!s.eq_str(&format!("{w}x")), "{raw}");
                let mut shorter = w.to_string();
                shorter.pop();
                assert!(w.is_empty() || !s.eq_str(&shorter), "{raw}");
                let mut out = String::from(">");
                assert_eq!(s.unescape_into(&mut out), Ok(()));
                assert_eq!(out, format!(">{w}"));
                // The reference agrees.
                assert_eq!(serde_json::from_str::<String>(raw).unwrap(), w);
            } else {
                assert!(serde_json::from_str::<String>(raw).is_err(), "{raw}");
                assert!(!s.eq_str(""), "{raw}");
                assert_eq!(s.chars().filter(|c| c.is_err()).count(), 1, "{raw}");
            }
        }
        // Not UTF-8: no content, whichever way it is asked for.
        let bad = JsonStr::at(b"\"\xff\"", 0).unwrap().0;
        assert_eq!(bad.as_plain(), None);
        assert_eq!(bad.to_cow(), Err(Malformed));
        assert!(!bad.eq_str("\u{fffd}"));
    }

    #[test]
    fn members_and_fields() {
        let f = |s: &'static str| {
            let mut out = Vec::new();
            split_fields(s.as_bytes(), &mut out).then(|| {
                out.iter()
                    .map(|(k, v)| {
                        format!(
                            "{}={}",
                            std::str::from_utf8(k).unwrap(),
                            std::str::from_utf8(v).unwrap()
                        )
                    })
                    .collect::<Vec<_>>()
            })
        };
        assert_eq!(f("{}"), Some(vec![]));
        assert_eq!(f(" { } \n"), Some(vec![]));
        assert_eq!(
            f(r#"{"a":1,"b" : "x\"}" , "w\"k":{"c":[1,"]"]},"d":null}"#),
            Some(
                [
                    r#""a"=1"#,
                    r#""b"="x\"}""#,
                    r#""w\"k"={"c":[1,"]"]}"#,
                    r#""d"=null"#
                ]
                .map(String::from)
                .to_vec()
            )
        );
        for bad in [
            "",
            "{",
            "}",
            "[1]",
            "{\"a\"",
            "{\"a\":",
            "{\"a\":1",
            "{\"a\":1,}",
            "{,}",
            "{\"a\" 1}",
            "{\"a\":[1}",
            "{\"a\":\"\\",
            "{\"a\":1}x",
            "{}x",
            "{\"a\":1 2}",
            "{1:2}",
            "{\"a\":}",
        ] {
            assert_eq!(f(bad), None, "{bad:?}");
        }
        // The iterator yields what precedes a fault, and finish reports it.
        let mut m = members(br#"{"a":1,"b":2 "c":3}"#);
        assert_eq!(m.next().map(|m| m.value), Some(&b"1"[..]));
        assert_eq!(m.next(), None);
        assert!(!m.finish());
    }

    #[test]
    fn lookup_reads_the_last_occurrence() {
        let doc = br#"{"a":1,"t\u0079pe":"x","a":[2],"b":{"a":3}}"#;
        let [a, ty, b, zz] = lookup(doc, ["a", "type", "b", "zz"]).unwrap();
        assert_eq!(a, Value::Array(b"[2]"));
        assert!(matches!(ty, Value::Str(s) if s.eq_str("x")));
        assert_eq!(b, Value::Object(br#"{"a":3}"#));
        assert_eq!(zz, Value::Missing);
        assert_eq!(lookup(b"{\"a\":1", ["a"]), None);
        assert_eq!(lookup(b"[1]", ["a"]), None);
        assert_eq!(lookup(b"{}", ["a"]), Some([Value::Missing]));
        // Only the values asked for are classified; the others are skipped (their
        // strings closed and brackets balanced, nothing more).
        assert_eq!(lookup(br#"{"a":1.,"b":2}"#, ["a"]), None);
        assert!(lookup(br#"{"a":1.,"b":2}"#, ["b"]).is_some());
    }

    #[test]
    fn probes_follow_paths() {
        let doc = DOCS[0];
        let p = |path: &[&str]| probe(doc.as_bytes(), path);
        assert_eq!(p(&["a"]), Value::of(b"1"));
        assert!(matches!(p(&["b"]), Some(Value::Str(s)) if s.to_cow().unwrap() == "x\"}"));
        assert!(matches!(p(&["c", "f"]), Some(Value::Str(s)) if s.eq_str("é")));
        assert_eq!(p(&["c", "d"]), Some(Value::Array(br#"[1,{"e":null}]"#)));
        assert_eq!(p(&["g"]), Some(Value::Bool(true)));
        assert_eq!(p(&["zz"]), Some(Value::Missing));
        // Through a scalar, a string or an array: undefined, as in JavaScript.
        assert_eq!(p(&["a", "x"]), Some(Value::Missing));
        assert_eq!(p(&["b", "length"]), Some(Value::Missing));
        assert_eq!(p(&["c", "d", "e"]), Some(Value::Missing));
        assert_eq!(p(&["c", "x", "y"]), Some(Value::Missing));
        assert!(matches!(p(&[]), Some(Value::Object(_))));
        // Keys are compared unescaped; a repeated key reads as its last occurrence.
        assert!(
            matches!(probe(DOCS[1].as_bytes(), &["type"]), Some(Value::Number(n)) if n.as_f64() == -1500.0)
        );
        let lat = probe(DOCS[2].as_bytes(), &["data", "metrics", "latency"]);
        assert!(matches!(lat, Some(Value::Number(n)) if n.as_u64() == Some(7)));
        // Malformed where the probe walks: None, not a guess.
        for bad in [
            r#"{"data":{"metrics":{"latency":}}}"#,
            r#"{"data":{"metrics":{"latency":1.}}}"#,
            r#"{"data":{"metrics":{"latency":1}}"#,
            r#"{"data":{"metrics" {"latency":1}}}"#,
            r#"{"data":{"metrics":{"latency":1}}} x"#,
            r#"["data"]"#,
            "",
        ] {
            assert_eq!(
                probe(bad.as_bytes(), &["data", "metrics", "latency"]),
                None,
                "{bad}"
            );
        }
    }

    #[test]
    fn lookup_one_reads_as_lookup_on_any_bytes() {
        let mut docs = DOCS.to_vec();
        docs.push(r#"{"a":1,"t\u0079pe":"x","a":[2],"b":{"a":3},"type":"y"}"#);
        docs.push(r#"{"a":1.,"b":2, "c" : tru , "d":"\u00"}"#);
        torture(&docs, |b| {
            for key in ["a", "b", "c", "d", "data", "type", "k", "zz", ""] {
                let [want] = match lookup(b, [key]) {
                    Some(v) => v.map(Some),
                    None => [None],
                };
                assert_eq!(
                    lookup_one(b, key),
                    want,
                    "{key:?} in {:?}",
                    String::from_utf8_lossy(b)
                );
            }
        });
    }

    #[test]
    fn nothing_panics_on_any_bytes() {
        torture(DOCS, |b| {
            let _ = skip_ws(b, b.len() / 2);
            let _ = last_non_ws(b, b.len());
            for at in 0..b.len().min(8) {
                let _ = string_end(b, at);
                let _ = value_end(b, at);
            }
            let _ = split_fields(b, &mut Vec::new());
            let _ = lookup(b, ["a", "data", "type"]);
            for path in [
                &["data", "metrics", "latency"][..],
                &["c", "f"],
                &["s"],
                &[],
            ] {
                if let Some(Value::Str(s)) = probe(b, path) {
                    let _ = s.to_cow();
                    let _ = s.eq_str("x");
                }
                if let Some(Value::Number(n)) = probe(b, path) {
                    let _ = (n.as_f64(), n.as_i64(), n.as_u64());
                }
            }
            if let Some(Value::Str(s)) = Value::of(b) {
                let _ = s.chars().count();
            }
        });
    }
}
