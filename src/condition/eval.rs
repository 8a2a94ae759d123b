//! Evaluation on an event's stored JSON bytes, with JavaScript's semantics.
//!
//! Values borrow from the event bytes or from the condition ([`V`]); strings are
//! compared in place (escaped ones decoded a char at a time), numbers are read from
//! their token. The only allocations are on paths a condition rarely takes: an array
//! or object converted to a primitive (`[] == false`, `data.tags == "a,b"`), a
//! number converted to a string or a string with escapes converted to a number, and a
//! string method on a string that holds escapes.

use super::{js_number_string, CmpOp, Lit, Method, Node};
use crate::json::scan::{self, JsonStr, Value};
use std::borrow::Cow;
use std::cmp::Ordering;

/// A JavaScript value seen by the evaluator.
#[derive(Debug, Clone, Copy)]
enum V<'a> {
    Undef,
    Null,
    Bool(bool),
    Num(f64),
    /// A string from the condition.
    Lit(&'a str),
    /// A string in the event, still escaped.
    Json(JsonStr<'a>),
    Arr(&'a [u8]),
    Obj(&'a [u8]),
}

fn of_value(v: Value<'_>) -> V<'_> {
    match v {
        Value::Missing => V::Undef,
        Value::Null => V::Null,
        Value::Bool(b) => V::Bool(b),
        Value::Number(n) => V::Num(n.as_f64()),
        Value::Str(s) => V::Json(s),
        Value::Object(o) => V::Obj(o),
        Value::Array(a) => V::Arr(a),
    }
}

fn of_lit(l: &Lit) -> V<'_> {
    match l {
        Lit::Undefined => V::Undef,
        Lit::Null => V::Null,
        Lit::Bool(b) => V::Bool(*b),
        Lit::Num(n) => V::Num(*n),
        Lit::Str(s) => V::Lit(s),
    }
}

/// One evaluation's context: the event, and the top-level field read last (a typical
/// condition reads `data.…` more than once; the event's top level is walked once).
struct Cx<'a, 'c> {
    json: &'a [u8],
    top: Option<(&'a str, V<'a>)>,
    /// Set when this evaluation walked the top level itself: the key and the value's
    /// offsets, for [`truthy_sharing`] to leave in the probe.
    walked: Option<(&'a str, Option<(usize, usize)>)>,
    /// The top-level field another condition read on this event (see [`TopProbe`]).
    shared: Option<&'c TopProbe>,
}

/// The last top-level field read on one event, kept by the caller between the
/// conditions it evaluates on that event (the hub's memo: ten filters reading `data.…`
/// walk the event's top level once, not ten times). A probe is tied to the bytes it was
/// filled from and ignored for any others.
#[derive(Debug, Default)]
pub struct TopProbe {
    /// Address and length of the event bytes it was filled from (`usize::MAX`: empty).
    event: (usize, usize),
    key: String,
    /// Offsets of the field's value in the event, `None` when reading it gives
    /// `undefined` (absent, or the event or the value malformed).
    value: Option<(usize, usize)>,
}

impl TopProbe {
    /// Forgets what it held.
    pub fn clear(&mut self) {
        self.event = (usize::MAX, 0);
    }

    fn holds<'a>(&self, json: &'a [u8], key: &str) -> Option<V<'a>> {
        if self.event != (json.as_ptr() as usize, json.len()) || self.key != key {
            return None;
        }
        Some(match self.value {
            Some((start, end)) => json
                .get(start..end)
                .and_then(Value::exact)
                .map_or(V::Undef, of_value),
            None => V::Undef,
        })
    }
}

/// A top-level read: the value, and its offsets in `json` when it is not `undefined`.
fn top_read<'a>(json: &'a [u8], key: &str) -> (V<'a>, Option<(usize, usize)>) {
    let Some(Some(raw)) = scan::lookup_one_raw(json, key) else {
        return (V::Undef, None);
    };
    let Some(v) = Value::exact(raw) else {
        return (V::Undef, None);
    };
    let start = (raw.as_ptr() as usize).wrapping_sub(json.as_ptr() as usize);
    let range =
        Some((start, start.wrapping_add(raw.len()))).filter(|&(s, e)| s <= e && e <= json.len());
    (of_value(v), range)
}

pub fn truthy_of(n: &Node, json: &[u8]) -> bool {
    truthy(eval(
        n,
        &mut Cx {
            json,
            top: None,
            walked: None,
            shared: None,
        },
    ))
}

/// [`truthy_of`], reading the top-level field through `probe` and leaving there the
/// one this condition read last.
pub fn truthy_sharing(n: &Node, json: &[u8], probe: &mut TopProbe) -> bool {
    let mut cx = Cx {
        json,
        top: None,
        walked: None,
        shared: Some(probe),
    };
    let yes = truthy(eval(n, &mut cx));
    let Cx { walked, .. } = cx;
    if let Some((key, range)) = walked {
        {
            probe.event = (json.as_ptr() as usize, json.len());
            probe.key.clear();
            probe.key.push_str(key);
            probe.value = range;
        }
    }
    yes
}

pub fn value_text(n: &Node, json: &[u8]) -> String {
    match eval(
        n,
        &mut Cx {
            json,
            top: None,
            walked: None,
            shared: None,
        },
    ) {
        V::Undef => "undefined".into(),
        V::Null => "null".into(),
        V::Bool(b) => b.to_string(),
        V::Num(x) => format!("number:{}", js_number_string(x)),
        V::Lit(s) => format!("string:{s}"),
        V::Json(s) => format!("string:{}", json_str(s)),
        V::Arr(_) => "array".into(),
        V::Obj(_) => "object".into(),
    }
}

fn json_str(s: JsonStr<'_>) -> Cow<'_, str> {
    s.to_cow()
        .unwrap_or_else(|_| Cow::Owned(s.chars().map(|c| c.unwrap_or('\u{fffd}')).collect()))
}

fn truthy(v: V<'_>) -> bool {
    match v {
        V::Undef | V::Null => false,
        V::Bool(b) => b,
        V::Num(x) => !(x == 0.0 || x.is_nan()),
        V::Lit(s) => !s.is_empty(),
        V::Json(s) => !s.raw().is_empty(),
        V::Arr(_) | V::Obj(_) => true,
    }
}

fn eval<'a>(n: &'a Node, cx: &mut Cx<'a, '_>) -> V<'a> {
    match n {
        Node::Lit(l) => of_lit(l),
        Node::Path(segs) => {
            let Some((first, rest)) = segs.split_first() else {
                return V::Obj(cx.json);
            };
            let mut v = match cx.top {
                Some((k, v)) if k == &**first => v,
                _ => {
                    let v = match cx.shared.and_then(|p| p.holds(cx.json, first)) {
                        Some(v) => v,
                        None if cx.shared.is_some() => {
                            let (v, range) = top_read(cx.json, first);
                            cx.walked = Some((first, range));
                            v
                        }
                        None => step(V::Obj(cx.json), first),
                    };
                    cx.top = Some((first, v));
                    v
                }
            };
            for s in rest.iter() {
                if matches!(v, V::Undef) {
                    break;
                }
                v = step(v, s);
            }
            v
        }
        Node::Member(base, name) => step(eval(base, cx), name),
        Node::Not(x) => V::Bool(!truthy(eval(x, cx))),
        Node::And(items) => {
            let mut v = V::Bool(true);
            for x in items {
                v = eval(x, cx);
                if !truthy(v) {
                    return v;
                }
            }
            v
        }
        Node::Or(items) => {
            let mut v = V::Bool(false);
            for x in items {
                v = eval(x, cx);
                if truthy(v) {
                    return v;
                }
            }
            v
        }
        Node::Cmp(op, l, r) => {
            let (a, b) = (eval(l, cx), eval(r, cx));
            V::Bool(match op {
                CmpOp::StrictEq => strict_eq(a, b),
                CmpOp::StrictNe => !strict_eq(a, b),
                CmpOp::LooseEq => loose_eq(a, b),
                CmpOp::LooseNe => !loose_eq(a, b),
                CmpOp::Lt => relational(a, b, |o| o == Ordering::Less),
                CmpOp::Gt => relational(b, a, |o| o == Ordering::Less),
                CmpOp::Le => relational(a, b, |o| o != Ordering::Greater),
                CmpOp::Ge => relational(b, a, |o| o != Ordering::Greater),
            })
        }
        Node::In(x, items) => {
            let v = eval(x, cx);
            V::Bool(items.iter().any(|l| strict_eq(v, of_lit(l))))
        }
        Node::Call(m, recv, arg) => call(*m, eval(recv, cx), arg),
        Node::Exists(p) => V::Bool(!matches!(eval(p, cx), V::Undef)),
    }
}

/// A property read: own fields of objects, `length` of strings and arrays, else
/// `undefined` (where JavaScript would throw on `undefined`/`null`, as `?.` reads).
fn step<'a>(v: V<'a>, key: &str) -> V<'a> {
    match v {
        V::Obj(o) => scan::lookup_one(o, key).map_or(V::Undef, of_value),
        V::Lit(s) if key == "length" => V::Num(s.encode_utf16().count() as f64),
        V::Json(s) if key == "length" => V::Num(utf16_len(s) as f64),
        V::Arr(a) if key == "length" => V::Num(array_items(a).count() as f64),
        _ => V::Undef,
    }
}

fn utf16_len(s: JsonStr<'_>) -> usize {
    match s.as_plain() {
        Some(p) if p.is_ascii() => p.len(),
        Some(p) => p.encode_utf16().count(),
        None => s.chars().map(|c| c.map_or(1, char::len_utf16)).sum(),
    }
}

/// The items of a JSON array's bytes, each exactly its value's bytes.
fn array_items(a: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut at = scan::skip_ws(a, 1);
    let mut done = a.get(at) == Some(&b']');
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        let start = at;
        let Some(end) = scan::value_end(a, start) else {
            done = true;
            return None;
        };
        let item = a.get(start..end);
        let p = scan::skip_ws(a, end);
        match a.get(p) {
            Some(b',') => at = scan::skip_ws(a, p + 1),
            _ => done = true,
        }
        item
    })
}

/// A string operand, wherever it lives.
#[derive(Debug)]
enum S<'a> {
    Lit(&'a str),
    Json(JsonStr<'a>),
    Own(String),
}

impl S<'_> {
    /// The content as `&str`, decoding an escaped event string (an allocation).
    fn text(&self) -> Cow<'_, str> {
        match self {
            S::Lit(s) => Cow::Borrowed(s),
            S::Json(j) => json_str(*j),
            S::Own(s) => Cow::Borrowed(s),
        }
    }

    /// The content when it needs no decoding (the fast path).
    fn plain(&self) -> Option<&str> {
        match self {
            S::Lit(s) => Some(s),
            S::Json(j) => j.as_plain(),
            S::Own(s) => Some(s),
        }
    }
}

/// A string's UTF-16 code units, without allocating.
enum Units<'s> {
    Str(std::str::EncodeUtf16<'s>),
    Json(Utf16<'s>),
}

impl Iterator for Units<'_> {
    type Item = u16;
    fn next(&mut self) -> Option<u16> {
        match self {
            Units::Str(u) => u.next(),
            Units::Json(u) => u.next(),
        }
    }
}

fn units<'s>(s: &'s S<'_>) -> Units<'s> {
    match s {
        S::Lit(x) => Units::Str(x.encode_utf16()),
        S::Own(x) => Units::Str(x.encode_utf16()),
        S::Json(j) => Units::Json(Utf16 {
            chars: j.chars(),
            low: None,
        }),
    }
}

struct Utf16<'j> {
    chars: scan::Chars<'j>,
    low: Option<u16>,
}

impl Iterator for Utf16<'_> {
    type Item = u16;
    fn next(&mut self) -> Option<u16> {
        if let Some(l) = self.low.take() {
            return Some(l);
        }
        let c = self.chars.next()?.unwrap_or('\u{fffd}');
        let mut b = [0u16; 2];
        let e = c.encode_utf16(&mut b);
        if e.len() == 2 {
            self.low = Some(e[1]);
        }
        Some(e[0])
    }
}

/// UTF-8 byte order is code point order, which is UTF-16 order below U+E000.
fn utf8_orders_like_utf16(s: &str) -> bool {
    !s.bytes().any(|b| b >= 0xee)
}

fn str_cmp(a: &S<'_>, b: &S<'_>) -> Ordering {
    if let (Some(x), Some(y)) = (a.plain(), b.plain()) {
        if utf8_orders_like_utf16(x) && utf8_orders_like_utf16(y) {
            return x.as_bytes().cmp(y.as_bytes());
        }
    }
    units(a).cmp(units(b))
}

fn str_eq(a: &S<'_>, b: &S<'_>) -> bool {
    match (a, b) {
        (S::Json(j), S::Lit(s)) | (S::Lit(s), S::Json(j)) => j.eq_str(s),
        (S::Json(j), S::Own(s)) | (S::Own(s), S::Json(j)) => j.eq_str(s),
        (S::Json(x), S::Json(y)) if !x.has_escapes() && !y.has_escapes() => x.raw() == y.raw(),
        (S::Json(x), S::Json(y)) => x.chars().map(|c| c.ok()).eq(y.chars().map(|c| c.ok())),
        _ => a.plain() == b.plain(),
    }
}

/// A primitive after ToPrimitive.
#[derive(Debug)]
enum P<'a> {
    Undef,
    Null,
    Bool(bool),
    Num(f64),
    Str(S<'a>),
}

fn to_primitive(v: V<'_>) -> P<'_> {
    match v {
        V::Undef => P::Undef,
        V::Null => P::Null,
        V::Bool(b) => P::Bool(b),
        V::Num(x) => P::Num(x),
        V::Lit(s) => P::Str(S::Lit(s)),
        V::Json(s) => P::Str(S::Json(s)),
        V::Obj(_) => P::Str(S::Own("[object Object]".into())),
        V::Arr(a) => {
            let mut out = String::new();
            join(a, &mut out, 0);
            P::Str(S::Own(out))
        }
    }
}

/// `Array.prototype.join(",")` of a JSON array, as `String(array)` does.
fn join(a: &[u8], out: &mut String, depth: usize) {
    for (i, item) in array_items(a).enumerate() {
        if i > 0 {
            out.push(',');
        }
        match Value::of(item).map(of_value) {
            Some(V::Num(x)) => out.push_str(&js_number_string(x)),
            Some(V::Bool(b)) => out.push_str(if b { "true" } else { "false" }),
            Some(V::Json(s)) => out.push_str(&json_str(s)),
            Some(V::Obj(_)) => out.push_str("[object Object]"),
            Some(V::Arr(inner)) if depth < 64 => join(inner, out, depth + 1),
            _ => {}
        }
    }
}

fn prim_to_number(p: &P<'_>) -> f64 {
    match p {
        P::Undef => f64::NAN,
        P::Null => 0.0,
        P::Bool(b) => f64::from(u8::from(*b)),
        P::Num(x) => *x,
        P::Str(s) => string_to_number(&s.text()),
    }
}

fn is_js_space(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\u{b}' | '\u{c}' | '\r' | ' ' | '\u{a0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200a}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202f}'
                | '\u{205f}'
                | '\u{3000}'
                | '\u{feff}'
    )
}

/// JavaScript's StringToNumber: trimmed, empty is 0, `Infinity`, `0x`/`0o`/`0b`
/// integers, decimal literals with an optional sign; anything else is NaN.
pub(super) fn string_to_number(s: &str) -> f64 {
    let t = s.trim_matches(is_js_space);
    if t.is_empty() {
        return 0.0;
    }
    let radix = |body: &str, r: u32| -> f64 {
        if body.is_empty() {
            return f64::NAN;
        }
        let mut v = 0.0f64;
        for c in body.chars() {
            match c.to_digit(r) {
                Some(d) => v = v * f64::from(r) + f64::from(d),
                None => return f64::NAN,
            }
        }
        v
    };
    let lower2 = t.get(..2).map(str::to_ascii_lowercase);
    match lower2.as_deref() {
        Some("0x") => return radix(&t[2..], 16),
        Some("0o") => return radix(&t[2..], 8),
        Some("0b") => return radix(&t[2..], 2),
        _ => {}
    }
    let (neg, body) = match t.as_bytes()[0] {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    let v = if body == "Infinity" {
        f64::INFINITY
    } else if decimal_literal(body) {
        body.parse::<f64>().unwrap_or(f64::NAN)
    } else {
        return f64::NAN;
    };
    if neg {
        -v
    } else {
        v
    }
}

/// `digits [. digits?] | . digits`, then an optional exponent.
fn decimal_literal(b: &str) -> bool {
    let b = b.as_bytes();
    let digits = |at: usize| {
        b[at.min(b.len())..]
            .iter()
            .take_while(|x| x.is_ascii_digit())
            .count()
    };
    let int = digits(0);
    let mut i = int;
    let mut frac = 0;
    if b.get(i) == Some(&b'.') {
        frac = digits(i + 1);
        i += 1 + frac;
    }
    if int == 0 && frac == 0 {
        return false;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let e = digits(i);
        if e == 0 {
            return false;
        }
        i += e;
    }
    i == b.len()
}

fn is_str(v: &V<'_>) -> bool {
    matches!(v, V::Lit(_) | V::Json(_))
}

fn as_s<'a>(v: V<'a>) -> Option<S<'a>> {
    match v {
        V::Lit(s) => Some(S::Lit(s)),
        V::Json(j) => Some(S::Json(j)),
        _ => None,
    }
}

/// `===`.
fn strict_eq(a: V<'_>, b: V<'_>) -> bool {
    match (a, b) {
        (V::Undef, V::Undef) | (V::Null, V::Null) => true,
        (V::Bool(x), V::Bool(y)) => x == y,
        (V::Num(x), V::Num(y)) => x == y,
        (V::Arr(x), V::Arr(y)) | (V::Obj(x), V::Obj(y)) => {
            std::ptr::eq(x.as_ptr(), y.as_ptr()) && x.len() == y.len()
        }
        (x, y) if is_str(&x) && is_str(&y) => match (as_s(x), as_s(y)) {
            (Some(s), Some(t)) => str_eq(&s, &t),
            _ => false,
        },
        _ => false,
    }
}

fn is_obj(v: &V<'_>) -> bool {
    matches!(v, V::Arr(_) | V::Obj(_))
}

/// `==` (IsLooselyEqual).
fn loose_eq(a: V<'_>, b: V<'_>) -> bool {
    let same_type = matches!(
        (&a, &b),
        (V::Undef, V::Undef)
            | (V::Null, V::Null)
            | (V::Bool(_), V::Bool(_))
            | (V::Num(_), V::Num(_))
    ) || (is_str(&a) && is_str(&b))
        || (is_obj(&a) && is_obj(&b));
    if same_type {
        return strict_eq(a, b);
    }
    match (a, b) {
        (V::Undef | V::Null, V::Undef | V::Null) => true,
        (V::Undef | V::Null, _) | (_, V::Undef | V::Null) => false,
        (V::Bool(x), y) => loose_eq(V::Num(f64::from(u8::from(x))), y),
        (x, V::Bool(y)) => loose_eq(x, V::Num(f64::from(u8::from(y)))),
        (V::Num(x), s) if is_str(&s) => x == prim_to_number(&to_primitive(s)),
        (s, V::Num(y)) if is_str(&s) => prim_to_number(&to_primitive(s)) == y,
        (o, p) if is_obj(&o) => prim_loose_eq(&to_primitive(o), &to_primitive(p)),
        (p, o) if is_obj(&o) => prim_loose_eq(&to_primitive(p), &to_primitive(o)),
        _ => false,
    }
}

/// `==` between a primitive of an object (always a string here) and a number or string.
fn prim_loose_eq(a: &P<'_>, b: &P<'_>) -> bool {
    match (a, b) {
        (P::Str(x), P::Str(y)) => str_eq(x, y),
        (P::Num(x), p) | (p, P::Num(x)) => *x == prim_to_number(p),
        _ => false,
    }
}

/// `a < b` and friends: strings compare by UTF-16 code units, anything else as numbers
/// (NaN, from `undefined` or a non-numeric string, makes every comparison false).
fn relational(a: V<'_>, b: V<'_>, want: impl Fn(Ordering) -> bool) -> bool {
    let (pa, pb) = (to_primitive(a), to_primitive(b));
    if let (P::Str(x), P::Str(y)) = (&pa, &pb) {
        return want(str_cmp(x, y));
    }
    let (x, y) = (prim_to_number(&pa), prim_to_number(&pb));
    match x.partial_cmp(&y) {
        Some(o) => want(o),
        None => false,
    }
}

/// The argument of a string method, as `String(arg)`.
fn lit_string(l: &Lit) -> Cow<'_, str> {
    match l {
        Lit::Str(s) => Cow::Borrowed(s),
        Lit::Num(x) => Cow::Owned(js_number_string(*x)),
        Lit::Bool(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
        Lit::Null => Cow::Borrowed("null"),
        Lit::Undefined => Cow::Borrowed("undefined"),
    }
}

fn call<'a>(m: Method, recv: V<'a>, arg: &'a Lit) -> V<'a> {
    if let Some(s) = as_s(recv) {
        let needle = lit_string(arg);
        let hay = s.text();
        return V::Bool(match m {
            Method::Includes => hay.contains(&*needle),
            Method::StartsWith => hay.starts_with(&*needle),
            Method::EndsWith => hay.ends_with(&*needle),
        });
    }
    match (m, recv) {
        (Method::Includes, V::Arr(a)) => {
            let want = of_lit(arg);
            V::Bool(array_items(a).any(|item| {
                let v = Value::of(item).map_or(V::Undef, of_value);
                // SameValueZero: strict equality, except that NaN equals NaN; a JSON
                // array cannot hold NaN, so strict equality is it.
                strict_eq(v, want)
            }))
        }
        _ => V::Undef,
    }
}
