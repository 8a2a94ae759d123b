use super::*;

fn err(src: &str) -> ConditionError {
    Condition::compile(src).expect_err(src)
}

#[test]
fn syntax_errors_name_the_position_and_what_was_expected() {
    let cases: &[(&str, usize, &str)] = &[
        ("", 0, "an expression"),
        ("type ==", 7, "an expression"),
        ("type = \"x\"", 5, "unexpected `=`"),
        ("a & b", 2, "unexpected `&`"),
        ("(a == 1", 7, "`)`"),
        ("a == 1)", 6, "an operator or the end"),
        ("\"abc", 4, "closing \""),
        ("a.b.frobnicate(1)", 4, "a method among"),
        ("a.includes(b)", 11, "a literal"),
        ("a in 1", 5, "`[`"),
        ("exists(1)", 7, "a field path"),
        ("a.", 2, "a field name"),
        ("1x", 1, "an operator after the number"),
        ("a # b", 2, "unexpected character '#'"),
        ("a = 1", 2, "unexpected `=` (compare with"),
        ("in", 0, "an expression before `in`"),
    ];
    for &(src, pos, want) in cases {
        let e = err(src);
        assert_eq!(e.kind, ErrorKind::Syntax, "{src}");
        assert_eq!(e.position, pos, "{src}: {e}");
        assert!(e.message.contains(want), "{src}: {e}");
    }
}

#[test]
fn limits_are_refused_in_bounded_time() {
    let long = format!("a == \"{}\"", "x".repeat(MAX_LEN));
    assert_eq!(err(&long).kind, ErrorKind::TooLong);
    let ok = format!("{}a{}", "(".repeat(60), ")".repeat(60));
    assert!(Condition::compile(&ok).is_ok());
    for deep in [
        format!("{}a{}", "(".repeat(65), ")".repeat(65)),
        format!("{}a", "!".repeat(100)),
        format!("{}a", "(".repeat(2000)),
        // A long left-leaning chain nests as deep as it is long.
        (0..100)
            .map(|i| format!("a{i}"))
            .collect::<Vec<_>>()
            .join(" == "),
    ] {
        assert_eq!(err(&deep).kind, ErrorKind::TooDeep, "{}", &deep[..20]);
    }
    // A flat chain of && and || is not deep, however long.
    let flat = (0..400)
        .map(|i| format!("a{i}"))
        .collect::<Vec<_>>()
        .join(" && ");
    assert!(Condition::compile(&flat).is_ok());
}

#[test]
fn equal_conditions_have_one_canonical_form() {
    let same = [
        r#"data.status==="error"&&data.retries>2"#,
        r#"(data.status === 'error') && (data.retries > 2)"#,
        r#"  data.status === "error"   &&   data.retries > 2.0 "#,
    ];
    let first = Condition::compile(same[0]).unwrap();
    for s in same {
        let c = Condition::compile(s).unwrap();
        assert_eq!(c, first, "{s}");
        assert_eq!(
            c.canonical(),
            r#"data.status === "error" && data.retries > 2"#
        );
    }
    let c = Condition::compile(r#"msg.contains("x")"#).unwrap();
    assert_eq!(c.canonical(), r#"msg.includes("x")"#);
    let c = Condition::compile("!(a || b) && (c == 1) == true").unwrap();
    assert_eq!(c.canonical(), "!(a || b) && c == 1 == true");
    assert_ne!(
        Condition::compile("a || b && c").unwrap(),
        Condition::compile("(a || b) && c").unwrap()
    );
    assert_eq!(
        Condition::compile("x in [1,'a', -2e0]")
            .unwrap()
            .canonical(),
        r#"x in [1, "a", -2]"#
    );
}

#[test]
fn numbers_print_as_javascript_prints_them() {
    let cases: &[(f64, &str)] = &[
        (0.0, "0"),
        (-0.0, "0"),
        (1.5, "1.5"),
        (100.0, "100"),
        (1e21, "1e+21"),
        (1e20, "100000000000000000000"),
        (1e-7, "1e-7"),
        (0.000001, "0.000001"),
        (123.456e-10, "1.23456e-8"),
        (-2.5e30, "-2.5e+30"),
        (f64::NAN, "NaN"),
        (f64::NEG_INFINITY, "-Infinity"),
    ];
    for &(x, want) in cases {
        assert_eq!(js_number_string(x), want);
    }
}

#[test]
fn bad_event_bytes_never_panic_and_match_only_constants() {
    let c = Condition::compile("data.x == 1 || !exists(type)").unwrap();
    for bytes in [
        &b""[..],
        b"{",
        b"[1]",
        b"{\"data\":",
        b"\xff",
        b"{\"data\":{\"x\":1}",
    ] {
        let _ = c.matches(bytes);
    }
    assert!(Condition::compile("true").unwrap().matches(b"garbage"));
}

/// Found by the `condition` fuzz target: a member or method of a number literal printed
/// as `3333.E7` re-read as the number 3333e7. The canonical form parenthesizes the number,
/// and reading it back gives the same condition.
#[test]
fn a_number_before_a_dot_keeps_its_meaning_in_canonical_form() {
    for (src, want) in [
        ("3333..E71033333333332333", "(3333).E71033333333332333"),
        ("4..reerits", "(4).reerits"),
        ("(5).length == 1", "(5).length == 1"),
        ("(1.5).includes(\"a\")", "(1.5).includes(\"a\")"),
        ("(-2).x", "(-2).x"),
        ("Infinity.x", "(Infinity).x"),
    ] {
        let c = Condition::compile(src).unwrap_or_else(|e| panic!("{src}: {e}"));
        assert_eq!(c.canonical(), want, "{src}");
        let again = Condition::compile(c.canonical()).unwrap_or_else(|e| panic!("{want}: {e}"));
        assert_eq!(again.canonical(), want, "{src}: canonical form is stable");
    }
}
