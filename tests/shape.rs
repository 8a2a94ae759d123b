//! The architecture's shape, checked on the `src/` tree so it cannot drift silently:
//!
//! - only the loop (`src/server/`), the command line (`src/cli/`), the cluster backbone
//!   (`src/cluster/`) and `src/main.rs` touch `mio` or a socket type: everything else is
//!   a pure core that is tested without one (SPEC §1, docs/ARCHITECTURE.md);
//! - no two top-level modules import each other (`crate::a` in `b` and `crate::b` in
//!   `a`): such a pair is one module in two folders, and neither can be read or tested
//!   alone. `fuzzing` drives every parser, so its own imports are exempt;
//! - no source file has more than [`MAX_LINES`] lines of non-test code: past that a file
//!   holds more than one idea and should be split along them.
//!
//! Test code is the lines from the first `#[cfg(test)]` at column 0 on, and whole files
//! declared only under `#[cfg(test)]` (such as a `#[path = "log_tests.rs"] mod tests;`).
//! A file's length counts every other line, documentation included (it is what a reader
//! scrolls through); the socket and import rules skip comment lines (`//`, `///`, `//!`,
//! block comments), so prose may name `mio`. The files are read as text (no new
//! dependency, no parser), which is enough for these three rules; the checker's own rules
//! are unit-tested below on small in-memory trees.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

/// Most lines of non-test code one source file may hold.
const MAX_LINES: usize = 800;

/// Paths (relative to `src/`) that may use `mio` and sockets.
const SOCKET_HOMES: &[&str] = &["server/", "cli/", "cluster/", "main.rs"];

/// What counts as using the network directly.
const SOCKET_WORDS: &[&str] = &[
    "mio::",
    "TcpStream",
    "TcpListener",
    "UdpSocket",
    "UnixStream",
];

/// Top-level modules whose imports are not checked for cycles.
const MAY_DEPEND_ON_ALL: &[&str] = &["fuzzing"];

/// The crate roots: they declare the modules rather than being one.
const ROOTS: &[&str] = &["lib", "main"];

#[test]
fn src_keeps_its_shape() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    read_tree(&root, "", &mut files);
    assert!(
        files.iter().any(|f| f.path == "lib.rs"),
        "no src/lib.rs under {}",
        root.display()
    );
    let report = check(&files);
    assert!(
        report.is_empty(),
        "src/ does not keep its shape:\n{}",
        report.render()
    );
}

/// One source file: its path under `src/` with `/` separators, and its text.
#[derive(Debug, Clone)]
struct Source {
    path: String,
    text: String,
}

fn read_tree(dir: &Path, prefix: &str, out: &mut Vec<Source>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap_or_else(|e| panic!("{}: {e}", dir.display())))
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if path.is_dir() {
            read_tree(&path, &format!("{prefix}{name}/"), out);
        } else if name.ends_with(".rs") {
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            out.push(Source {
                path: format!("{prefix}{name}"),
                text,
            });
        }
    }
}

/// Everything found, by rule.
#[derive(Debug, Default, PartialEq, Eq)]
struct Report {
    /// `src/path:line: code` of each socket use outside its homes.
    sockets: Vec<String>,
    /// `(a, b, where a imports b, where b imports a)`, `a < b`.
    cycles: Vec<(String, String, String, String)>,
    /// `(path, non-test code lines)` over the limit.
    too_long: Vec<(String, usize)>,
}

impl Report {
    fn is_empty(&self) -> bool {
        self.sockets.is_empty() && self.cycles.is_empty() && self.too_long.is_empty()
    }

    fn render(&self) -> String {
        let mut out = String::new();
        if !self.sockets.is_empty() {
            let _ = writeln!(
                out,
                "\nmio or sockets outside src/server/, src/cli/, src/cluster/ and src/main.rs \
                 (move the I/O into the loop; keep this code a pure core):"
            );
            for s in &self.sockets {
                let _ = writeln!(out, "  {s}");
            }
        }
        if !self.cycles.is_empty() {
            let _ = writeln!(
                out,
                "\ntop-level modules that import each other (pick one direction):"
            );
            for (a, b, ab, ba) in &self.cycles {
                let _ = writeln!(out, "  {a} <-> {b}");
                let _ = writeln!(out, "    {ab}");
                let _ = writeln!(out, "    {ba}");
            }
        }
        if !self.too_long.is_empty() {
            let _ = writeln!(
                out,
                "\nfiles over {MAX_LINES} lines of non-test code (split them by what they hold):"
            );
            for (path, n) in &self.too_long {
                let _ = writeln!(out, "  src/{path}: {n} lines");
            }
        }
        out
    }
}

fn check(files: &[Source]) -> Report {
    let test_only = test_only_files(files);
    let modules: BTreeSet<String> = files
        .iter()
        .map(|f| top_module(&f.path))
        .filter(|m| !ROOTS.contains(&m.as_str()))
        .collect();
    let mut report = Report::default();
    // (from, to) → the first place `from` names `to`.
    let mut edges: BTreeMap<(String, String), String> = BTreeMap::new();
    for file in files {
        let (len, code) = if test_only.contains(&file.path) {
            (0, Vec::new())
        } else {
            (non_test_len(&file.text), code_lines(&file.text))
        };
        if len > MAX_LINES {
            report.too_long.push((file.path.clone(), len));
        }
        if !SOCKET_HOMES.iter().any(|home| file.path.starts_with(home)) {
            for (line, text) in &code {
                if SOCKET_WORDS.iter().any(|w| contains_word(text, w)) {
                    report
                        .sockets
                        .push(format!("src/{}:{line}: {}", file.path, text.trim()));
                }
            }
        }
        let from = top_module(&file.path);
        if ROOTS.contains(&from.as_str()) || MAY_DEPEND_ON_ALL.contains(&from.as_str()) {
            continue;
        }
        for (line, to) in crate_deps(&code) {
            if to != from && modules.contains(&to) {
                edges
                    .entry((from.clone(), to.clone()))
                    .or_insert_with(|| format!("src/{}:{line} uses crate::{to}", file.path));
            }
        }
    }
    for ((a, b), ab) in &edges {
        if a < b {
            if let Some(ba) = edges.get(&(b.clone(), a.clone())) {
                report
                    .cycles
                    .push((a.clone(), b.clone(), ab.clone(), ba.clone()));
            }
        }
    }
    report
}

/// The first path component: a directory, or a file's stem (`metrics.rs` → `metrics`).
fn top_module(path: &str) -> String {
    let first = path.split('/').next().unwrap_or(path);
    first.strip_suffix(".rs").unwrap_or(first).to_string()
}

/// Lines before the first `#[cfg(test)]` at column 0 (all of them when there is none).
fn non_test_len(text: &str) -> usize {
    text.lines().take_while(|l| *l != "#[cfg(test)]").count()
}

/// The non-test code of a file, with 1-based line numbers: the lines before the first
/// `#[cfg(test)]` at column 0, minus comment lines.
fn code_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut in_block_comment = false;
    for (i, line) in text.lines().enumerate() {
        if line == "#[cfg(test)]" {
            break;
        }
        let t = line.trim_start();
        if in_block_comment {
            in_block_comment = !line.contains("*/");
            continue;
        }
        if t.starts_with("/*") {
            in_block_comment = !t.contains("*/");
            continue;
        }
        if t.starts_with("//") || t.is_empty() {
            continue;
        }
        out.push((i + 1, line.to_string()));
    }
    out
}

/// `word` appears in `text` not glued to an identifier before it (`mio::` but not
/// `xmio::`).
fn contains_word(text: &str, word: &str) -> bool {
    text.match_indices(word).any(|(at, _)| {
        !text[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_')
    })
}

/// Every `crate::NAME` (and each `NAME` of `crate::{NAME::…, NAME}`, which may span lines)
/// in `code`, with its line.
fn crate_deps(code: &[(usize, String)]) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (i, (line, text)) in code.iter().enumerate() {
        for (at, _) in text.match_indices("crate::") {
            let before = text[..at].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let rest = &text[at + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                // The group may continue on the next lines: join them up to its `}`.
                let mut joined = group.to_string();
                for (_, more) in code.iter().skip(i + 1) {
                    if depth_after(&joined) <= 0 {
                        break;
                    }
                    joined.push_str(more);
                }
                out.extend(group_heads(&joined).into_iter().map(|n| (*line, n)));
            } else {
                let name = ident(rest);
                if !name.is_empty() {
                    out.push((*line, name));
                }
            }
        }
    }
    out
}

/// Brace depth after `text`, starting inside one open brace.
fn depth_after(text: &str) -> i32 {
    text.chars().fold(1, |d, c| match c {
        '{' => d + 1,
        '}' => d - 1,
        _ => d,
    })
}

/// The first identifier of each item of a `{a::b, c, d::{e, f}}` group (the text after
/// the opening brace).
fn group_heads(text: &str) -> Vec<String> {
    let mut heads = Vec::new();
    let mut depth = 1;
    let mut item_start = true;
    let mut chars = text.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            ',' if depth == 1 => item_start = true,
            c if item_start && depth == 1 && (c.is_alphanumeric() || c == '_') => {
                heads.push(ident(&text[at..]));
                item_start = false;
                while chars
                    .peek()
                    .is_some_and(|(_, c)| c.is_alphanumeric() || *c == '_')
                {
                    chars.next();
                }
            }
            _ => {}
        }
    }
    heads
}

fn ident(text: &str) -> String {
    text.chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// Files declared only under `#[cfg(test)]` (directly, or below such a file): all of
/// their content is test code.
fn test_only_files(files: &[Source]) -> BTreeSet<String> {
    let known: BTreeSet<&str> = files.iter().map(|f| f.path.as_str()).collect();
    let mut test_only = BTreeSet::new();
    loop {
        let before = test_only.len();
        for file in files {
            let whole_file = test_only.contains(&file.path);
            for decl in module_decls(&file.text) {
                if !(whole_file || decl.test) {
                    continue;
                }
                let candidates = child_paths(&file.path, &decl.name, decl.path.as_deref());
                if let Some(child) = candidates.into_iter().find(|c| known.contains(c.as_str())) {
                    test_only.insert(child);
                }
            }
        }
        if test_only.len() == before {
            return test_only;
        }
    }
}

/// A `mod NAME;` declaration (a module in another file).
#[derive(Debug, PartialEq, Eq)]
struct ModDecl {
    name: String,
    /// Its `#[path = "…"]`, if any.
    path: Option<String>,
    /// Under `#[cfg(test)]`, or in the file's test section.
    test: bool,
}

fn module_decls(text: &str) -> Vec<ModDecl> {
    let mut out = Vec::new();
    let mut in_tests = false;
    let (mut cfg_test, mut path_attr) = (false, None);
    for line in text.lines() {
        if line == "#[cfg(test)]" {
            in_tests = true;
        }
        let t = line.trim();
        if t.starts_with("#[") {
            if t == "#[cfg(test)]" {
                cfg_test = true;
            }
            if let Some(p) = t.strip_prefix("#[path").and_then(|r| r.split('"').nth(1)) {
                path_attr = Some(p.to_string());
            }
            continue;
        }
        let decl = t
            .trim_start_matches("pub(crate) ")
            .trim_start_matches("pub(super) ")
            .trim_start_matches("pub ");
        if let Some(name) = decl.strip_prefix("mod ").and_then(|r| r.strip_suffix(';')) {
            out.push(ModDecl {
                name: name.trim().to_string(),
                path: path_attr.take(),
                test: in_tests || cfg_test,
            });
        }
        cfg_test = false;
        path_attr = None;
    }
    out
}

/// Where `mod name;` declared in `parent` may live (Rust's module file rules).
fn child_paths(parent: &str, name: &str, path_attr: Option<&str>) -> Vec<String> {
    let (dir, file) = match parent.rsplit_once('/') {
        Some((d, f)) => (format!("{d}/"), f),
        None => (String::new(), parent),
    };
    if let Some(p) = path_attr {
        return vec![format!("{dir}{p}")];
    }
    let base = if ["mod.rs", "lib.rs", "main.rs"].contains(&file) {
        dir
    } else {
        format!("{dir}{}/", file.trim_end_matches(".rs"))
    };
    vec![format!("{base}{name}.rs"), format!("{base}{name}/mod.rs")]
}

#[cfg(test)]
mod checker {
    use super::*;

    fn tree(files: &[(&str, &str)]) -> Vec<Source> {
        files
            .iter()
            .map(|(path, text)| Source {
                path: path.to_string(),
                text: text.to_string(),
            })
            .collect()
    }

    #[test]
    fn code_lines_skip_comments_and_stop_at_the_test_section() {
        let text = "//! doc\n/// item doc\nfn a() {} // trailing\n/* block\n still */\n\n\
                    fn b() {\n    #[cfg(test)]\n    let x = 1;\n}\n#[cfg(test)]\nmod tests {}\n";
        let lines: Vec<usize> = code_lines(text).into_iter().map(|(n, _)| n).collect();
        // An indented `#[cfg(test)]` is an attribute inside code, not the test section.
        assert_eq!(lines, vec![3, 7, 8, 9, 10]);
    }

    #[test]
    fn sockets_are_allowed_only_in_their_homes() {
        let files = tree(&[
            ("lib.rs", "//! a `mio::Poll` loop\npub mod hub;\n"),
            ("hub/mod.rs", "use std::net::TcpStream;\n// mio::Token\n"),
            ("hub/fanout.rs", "fn f() {}\n#[cfg(test)]\nuse mio::Poll;\n"),
            (
                "store/mod.rs",
                "let s: Box<MyTcpStreamish>;\nlet p = xmio::Poll;\n",
            ),
            ("server/mod.rs", "use mio::{Events, Poll};\n"),
            ("cli/publish.rs", "use std::net::TcpStream;\n"),
            ("main.rs", "fn main() { let _ = mio::Poll::new(); }\n"),
            ("limits/mod.rs", "    let l = UdpSocket::bind(a);\n"),
        ]);
        let r = check(&files);
        assert_eq!(
            r.sockets,
            vec![
                "src/hub/mod.rs:1: use std::net::TcpStream;",
                "src/limits/mod.rs:1: let l = UdpSocket::bind(a);",
            ]
        );
    }

    #[test]
    fn lib_rs_may_name_mio_only_in_comments() {
        let r = check(&tree(&[("lib.rs", "//! mio\npub use mio::Token;\n")]));
        assert_eq!(r.sockets, vec!["src/lib.rs:2: pub use mio::Token;"]);
    }

    #[test]
    fn two_way_imports_are_cycles_with_both_places() {
        let files = tree(&[
            ("lib.rs", "pub mod a;\npub mod b;\nuse crate::a::X;\n"),
            ("a/mod.rs", "mod inner;\nuse crate::a::Y;\n"),
            ("a/inner.rs", "fn f() {}\n\nuse crate::b::Z;\n"),
            ("b.rs", "// use crate::c;\nuse crate::{a::Y, c};\n"),
            ("c.rs", "use crate::VERSION;\nfn g() { crate::b::h() }\n"),
            ("d.rs", "use crate::e;\n#[cfg(test)]\nuse crate::e::T;\n"),
            ("e.rs", "#[cfg(test)]\nuse crate::d;\n"),
            ("fuzzing/mod.rs", "use crate::a;\n"),
            ("a/uses_fuzz.rs", "fn f() { crate::fuzzing::run(&[]) }\n"),
        ]);
        let r = check(&files);
        assert_eq!(
            r.cycles,
            vec![
                (
                    "a".to_string(),
                    "b".to_string(),
                    "src/a/inner.rs:3 uses crate::b".to_string(),
                    "src/b.rs:2 uses crate::a".to_string(),
                ),
                (
                    "b".to_string(),
                    "c".to_string(),
                    "src/b.rs:2 uses crate::c".to_string(),
                    "src/c.rs:2 uses crate::b".to_string(),
                ),
            ]
        );
    }

    #[test]
    fn grouped_imports_may_span_lines() {
        let code = code_lines("use crate::{\n    a::{X, Y},\n    b,\n};\nuse crate::c::D;\n");
        let deps: Vec<(usize, String)> = crate_deps(&code);
        let names: Vec<(usize, &str)> = deps.iter().map(|(l, n)| (*l, n.as_str())).collect();
        assert_eq!(names, vec![(1, "a"), (1, "b"), (5, "c")]);
        assert_eq!(group_heads("x, y::{p, q}, z}"), vec!["x", "y", "z"]);
    }

    #[test]
    fn long_files_count_only_non_test_code() {
        let code = "fn f() {}\n".repeat(MAX_LINES);
        let long = format!("//! doc\n{code}");
        let with_tests = format!("{code}#[cfg(test)]\n{}", "fn t() {}\n".repeat(100));
        let indented = format!("{code}    #[cfg(test)]\n");
        let files = tree(&[
            ("long.rs", &long),
            ("ok.rs", &code),
            ("tested.rs", &with_tests),
            ("indented.rs", &indented),
        ]);
        // Documentation counts; only a column-0 `#[cfg(test)]` starts the test section.
        assert_eq!(
            check(&files).too_long,
            vec![
                ("long.rs".to_string(), MAX_LINES + 1),
                ("indented.rs".to_string(), MAX_LINES + 1),
            ]
        );
        assert_eq!(non_test_len(""), 0);
    }

    #[test]
    fn files_declared_under_cfg_test_are_test_code() {
        let long = "fn f() {}\n".repeat(MAX_LINES + 1);
        let files = tree(&[
            (
                "lib.rs",
                "pub mod store;\npub mod ws;\n#[cfg(test)]\nmod testkit;\n",
            ),
            ("store/mod.rs", "pub mod log;\n"),
            (
                "store/log.rs",
                "fn f() {}\n#[cfg(test)]\n#[path = \"log_tests.rs\"]\nmod tests;\n",
            ),
            ("store/log_tests.rs", &long),
            (
                "ws/mod.rs",
                "mod frame;\n#[cfg(test)]\npub(crate) mod fake;\n",
            ),
            ("ws/frame.rs", &long),
            ("ws/fake.rs", "mod helpers;\n"),
            ("ws/fake/helpers.rs", "use std::net::TcpStream;\n"),
            ("testkit/mod.rs", "use crate::store;\n"),
        ]);
        let only: Vec<String> = test_only_files(&files).into_iter().collect();
        assert_eq!(
            only,
            vec![
                "store/log_tests.rs",
                "testkit/mod.rs",
                "ws/fake.rs",
                "ws/fake/helpers.rs"
            ]
        );
        let r = check(&files);
        assert_eq!(r.too_long, vec![("ws/frame.rs".to_string(), MAX_LINES + 1)]);
        assert!(r.sockets.is_empty(), "{:?}", r.sockets);
    }

    #[test]
    fn module_files_follow_rusts_rules() {
        assert_eq!(child_paths("lib.rs", "a", None), vec!["a.rs", "a/mod.rs"]);
        assert_eq!(
            child_paths("ws/mod.rs", "frame", None),
            vec!["ws/frame.rs", "ws/frame/mod.rs"]
        );
        assert_eq!(
            child_paths("ws/fake.rs", "h", None),
            vec!["ws/fake/h.rs", "ws/fake/h/mod.rs"]
        );
        assert_eq!(
            child_paths("store/log.rs", "tests", Some("log_tests.rs")),
            vec!["store/log_tests.rs"]
        );
        assert_eq!(top_module("metrics.rs"), "metrics");
        assert_eq!(top_module("store/log.rs"), "store");
    }

    #[test]
    fn the_report_names_every_offender() {
        let r = Report {
            sockets: vec!["src/hub/mod.rs:1: use mio::Poll;".into()],
            cycles: vec![(
                "a".into(),
                "b".into(),
                "src/a.rs:1 …".into(),
                "src/b.rs:2 …".into(),
            )],
            too_long: vec![("store/log.rs".into(), 1239)],
        };
        let text = r.render();
        for needle in [
            "src/hub/mod.rs:1: use mio::Poll;",
            "a <-> b",
            "src/a.rs:1",
            "src/b.rs:2",
            "src/store/log.rs: 1239 lines",
        ] {
            assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
        }
    }
}
