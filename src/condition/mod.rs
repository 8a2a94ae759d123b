//! The condition language of SPEC §7: breakpoints and server-side filters.
//!
//! A condition such as `data.status === "error" && data.retries > 2` is lexed
//! ([`lex`]), parsed by a Pratt parser ([`parse`]) into a small tree whose field paths
//! are split and whose literals are decoded once, and then evaluated ([`eval`]) on an
//! event's stored JSON bytes through the shared raw scanner ([`crate::json::scan`]):
//! no parse tree of the event, no allocation on the paths a condition usually takes.
//!
//! Everything the language accepts means what it means in JavaScript (loose and strict
//! equality, relational comparison with its string/number rules, truthiness,
//! short-circuit `&&`/`||` returning an operand), with two documented choices where
//! JavaScript would throw: a path through a missing or non-object value is `undefined`
//! (as with `?.`), and a method on a value that has no such method is `undefined`.
//! `tests/conditions/cases.json`, produced by running the same conditions in Node, is
//! the proof (`tests/conditions/generate.mjs` rebuilds it).
//!
//! A [`Condition`] compares and hashes by its canonical text ([`Condition::canonical`]),
//! so two subscribers who typed `a==1` and `(a == 1)` share one audience in the hub.
//!
//! Limits: 4 KiB of source, nesting depth 64 (parentheses, `!`, and the operator tree).
//! The parser recurses only through the depth it checks, evaluation walks a tree of at
//! most that depth, and every scan over event bytes is linear, so abusive input is
//! refused or answered in bounded time.

mod canon;
mod eval;
mod lex;
mod parse;

pub use canon::js_number_string;
pub use eval::TopProbe;

use std::fmt;
use std::hash::{Hash, Hasher};

/// Longest condition source accepted, in bytes.
pub const MAX_LEN: usize = 4096;
/// Deepest nesting accepted.
pub const MAX_DEPTH: usize = 64;

/// What is wrong with a condition: a syntax error (with the byte position and what was
/// expected there) or a limit crossed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionError {
    pub kind: ErrorKind,
    /// Byte offset in the source where the fault was found.
    pub position: usize,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    Syntax,
    TooLong,
    TooDeep,
}

impl ConditionError {
    pub(crate) fn syntax(position: usize, expected: impl fmt::Display) -> Self {
        ConditionError {
            kind: ErrorKind::Syntax,
            position,
            message: format!("syntax error at position {position}: expected {expected}"),
        }
    }

    pub(crate) fn unexpected(position: usize, what: impl fmt::Display) -> Self {
        ConditionError {
            kind: ErrorKind::Syntax,
            position,
            message: format!("syntax error at position {position}: unexpected {what}"),
        }
    }

    fn too_deep(position: usize) -> Self {
        ConditionError {
            kind: ErrorKind::TooDeep,
            position,
            message: format!(
                "condition nests deeper than {MAX_DEPTH} levels (at position {position})"
            ),
        }
    }
}

impl fmt::Display for ConditionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConditionError {}

/// A literal value of the language.
#[derive(Debug, Clone, PartialEq)]
pub enum Lit {
    Undefined,
    Null,
    Bool(bool),
    Num(f64),
    Str(Box<str>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    LooseEq,
    LooseNe,
    StrictEq,
    StrictNe,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Includes,
    StartsWith,
    EndsWith,
}

/// The compiled tree. `&&` and `||` chains are flat, so their length costs no depth.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Lit(Lit),
    /// A field path from the event's root, split at compile time.
    Path(Box<[Box<str>]>),
    /// A property of a computed value (`(a || b).length`).
    Member(Box<Node>, Box<str>),
    Not(Box<Node>),
    And(Vec<Node>),
    Or(Vec<Node>),
    Cmp(CmpOp, Box<Node>, Box<Node>),
    /// `x in [..]`: strict membership.
    In(Box<Node>, Vec<Lit>),
    Call(Method, Box<Node>, Lit),
    /// `exists(path)`: the path is not `undefined` (present, `null` included).
    Exists(Box<Node>),
}

/// A compiled condition: the tree plus its canonical text, which defines equality.
#[derive(Debug, Clone)]
pub struct Condition {
    root: Node,
    canonical: Box<str>,
}

impl Condition {
    /// Compiles `src`. Empty (or blank) source is a syntax error; callers that give it a
    /// meaning (no filter, `true`) handle it first.
    pub fn compile(src: &str) -> Result<Condition, ConditionError> {
        if src.len() > MAX_LEN {
            return Err(ConditionError {
                kind: ErrorKind::TooLong,
                position: MAX_LEN,
                message: format!(
                    "condition is {} bytes, over the limit of {MAX_LEN}",
                    src.len()
                ),
            });
        }
        let root = parse::parse(src)?;
        let canonical = canon::canonical(&root).into_boxed_str();
        Ok(Condition { root, canonical })
    }

    /// The canonical text: what equal conditions share, what replies echo.
    pub fn canonical(&self) -> &str {
        &self.canonical
    }

    /// Whether the event whose stored JSON is `json` passes (JavaScript truthiness of
    /// the condition's value). Bytes that are not an object pass nothing but constants.
    pub fn matches(&self, json: &[u8]) -> bool {
        eval::truthy_of(&self.root, json)
    }

    /// [`Condition::matches`], sharing the top-level field read with the other
    /// conditions evaluated on the same event through `probe` (same verdict).
    pub fn matches_sharing(&self, json: &[u8], probe: &mut TopProbe) -> bool {
        eval::truthy_sharing(&self.root, json, probe)
    }

    /// The JSON text of the condition's value on `json` (for tests and the differential
    /// table): `undefined` for undefined, else what `JSON.stringify` would print for a
    /// primitive, `"object"` / `"array"` for containers.
    pub fn value_text(&self, json: &[u8]) -> String {
        eval::value_text(&self.root, json)
    }

    pub fn root(&self) -> &Node {
        &self.root
    }
}

impl PartialEq for Condition {
    fn eq(&self, other: &Self) -> bool {
        self.canonical == other.canonical
    }
}

impl Eq for Condition {}

impl Hash for Condition {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.canonical.hash(state);
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical)
    }
}

#[cfg(test)]
mod tests;
