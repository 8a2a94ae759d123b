//! Session scopes: which session ids a credential may read.
//!
//! A scope is a list of glob patterns where `*` matches any run of characters (including
//! none) and every other character matches itself, case-sensitively. Patterns are split
//! on `*` once, when the credential is accepted, so [`SessionScope::allows`] is a prefix
//! test, a suffix test and a left-to-right substring search for the middle pieces: linear
//! in the session id, with none of the backtracking blow-up a general glob or regex
//! engine can have on patterns like `*a*a*a*b`.

use std::fmt;

/// One compiled pattern.
#[derive(Clone, PartialEq, Eq)]
enum Pattern {
    /// No `*`: the session id must equal this.
    Exact(String),
    /// At least one `*`: `first` is the text before the first `*`, `last` the text after
    /// the last one, `middle` the pieces between (empty pieces from `**` dropped).
    Glob {
        first: String,
        middle: Vec<String>,
        last: String,
    },
}

impl Pattern {
    fn compile(text: &str) -> Pattern {
        let mut pieces = text.split('*');
        let first = pieces.next().unwrap_or_default();
        let mut rest: Vec<&str> = pieces.collect();
        match rest.pop() {
            None => Pattern::Exact(text.to_owned()),
            Some(last) => Pattern::Glob {
                first: first.to_owned(),
                middle: rest
                    .into_iter()
                    .filter(|p| !p.is_empty())
                    .map(str::to_owned)
                    .collect(),
                last: last.to_owned(),
            },
        }
    }

    fn matches(&self, id: &str) -> bool {
        match self {
            Pattern::Exact(s) => s == id,
            Pattern::Glob {
                first,
                middle,
                last,
            } => {
                if id.len() < first.len() + last.len() {
                    return false;
                }
                let Some(rest) = id.strip_prefix(first.as_str()) else {
                    return false;
                };
                let Some(mut rest) = rest.strip_suffix(last.as_str()) else {
                    return false;
                };
                // Greedy leftmost placement is optimal for `*`-only globs: taking the
                // earliest occurrence of each piece leaves the most room for the next.
                for piece in middle {
                    match rest.find(piece.as_str()) {
                        Some(at) => rest = rest.get(at + piece.len()..).unwrap_or_default(),
                        None => return false,
                    }
                }
                true
            }
        }
    }

    fn source(&self) -> String {
        match self {
            Pattern::Exact(s) => s.clone(),
            Pattern::Glob {
                first,
                middle,
                last,
            } => {
                let mut out = first.clone();
                for m in middle {
                    out.push('*');
                    out.push_str(m);
                }
                out.push('*');
                out.push_str(last);
                out
            }
        }
    }
}

/// The sessions a principal may read.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionScope {
    /// Short-circuit for the common `*` so the check is one branch.
    all: bool,
    patterns: Vec<Pattern>,
}

impl SessionScope {
    /// Every session (the pattern `*`).
    pub fn all() -> SessionScope {
        SessionScope {
            all: true,
            patterns: Vec::new(),
        }
    }

    /// No session at all.
    pub fn none() -> SessionScope {
        SessionScope {
            all: false,
            patterns: Vec::new(),
        }
    }

    /// Compiles `patterns`; an empty list is [`SessionScope::none`].
    pub fn from_patterns<I, S>(patterns: I) -> SessionScope
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut scope = SessionScope::none();
        for p in patterns {
            let p = p.as_ref();
            // Any pattern made only of `*` (at least one) matches everything.
            if !p.is_empty() && p.bytes().all(|b| b == b'*') {
                scope.all = true;
            } else {
                scope.patterns.push(Pattern::compile(p));
            }
        }
        if scope.all {
            scope.patterns.clear();
        }
        scope
    }

    /// True when `session_id` matches one of the patterns.
    pub fn allows(&self, session_id: &str) -> bool {
        self.all || self.patterns.iter().any(|p| p.matches(session_id))
    }

    pub fn is_all(&self) -> bool {
        self.all
    }

    pub fn is_none(&self) -> bool {
        !self.all && self.patterns.is_empty()
    }

    /// The patterns as written (normalised: `**` collapses to `*`), e.g. for `/v1/sessions`
    /// filtering or an `auth_response`.
    pub fn patterns(&self) -> Vec<String> {
        if self.all {
            return vec!["*".to_owned()];
        }
        self.patterns.iter().map(Pattern::source).collect()
    }
}

impl fmt::Debug for SessionScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SessionScope")
            .field(&self.patterns())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_table() {
        let cases: &[(&str, &str, bool)] = &[
            ("s-*", "s-1", true),
            ("s-*", "s-", true),
            ("s-*", "other", false),
            ("s-*", "xs-1", false),
            ("*", "", true),
            ("*", "anything", true),
            ("**", "x", true),
            ("exact", "exact", true),
            ("exact", "exact2", false),
            ("exact", "Exact", false),
            ("", "", true),
            ("", "a", false),
            ("*-prod", "eu-prod", true),
            ("*-prod", "eu-prod-2", false),
            ("a*b*c", "abc", true),
            ("a*b*c", "a-b-c", true),
            ("a*b*c", "acb", false),
            ("a*b*c", "ab", false),
            ("ab*ba", "aba", false),
            ("ab*ba", "abba", true),
            ("a**b", "ab", true),
            (
                "*a*a*a*b",
                "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                false,
            ),
            ("*a*a*a*b", "xaxaxab", true),
            ("ü*", "üx", true),
            ("*ü", "aü", true),
        ];
        for (pat, id, want) in cases {
            let scope = SessionScope::from_patterns([pat]);
            assert_eq!(scope.allows(id), *want, "pattern {pat:?} id {id:?}");
        }
    }

    #[test]
    fn lists_and_special_scopes() {
        let s = SessionScope::from_patterns(["a", "b-*"]);
        assert!(s.allows("a") && s.allows("b-9") && !s.allows("c"));
        assert!(SessionScope::from_patterns(["x", "*"]).is_all());
        assert!(SessionScope::from_patterns(Vec::<String>::new()).is_none());
        assert!(!SessionScope::none().allows(""));
        assert!(SessionScope::all().allows("whatever"));
        assert_eq!(
            SessionScope::from_patterns(["a**b", "c"]).patterns(),
            ["a*b", "c"]
        );
        assert_eq!(SessionScope::all().patterns(), ["*"]);
    }

    #[test]
    fn long_adversarial_input_is_fast() {
        let id = "a".repeat(100_000);
        let pat = "*a".repeat(200) + "*b";
        let scope = SessionScope::from_patterns([pat]);
        let t = std::time::Instant::now();
        assert!(!scope.allows(&id));
        assert!(t.elapsed() < std::time::Duration::from_secs(1));
    }
}
