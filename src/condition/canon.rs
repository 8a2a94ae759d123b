//! The canonical text of a condition: one spelling per meaning the parser cannot tell
//! apart (spacing, redundant parentheses, quote style, `contains` for `includes`,
//! number spelling), so equal conditions compare and hash equal.

use super::{CmpOp, Lit, Method, Node};
use std::fmt::Write;

pub fn canonical(n: &Node) -> String {
    let mut out = String::new();
    write(n, 0, &mut out);
    out
}

/// Binding power of the node's own operator (what its parent must exceed to need no
/// parentheses around it).
fn bp(n: &Node) -> u8 {
    match n {
        Node::Or(_) => 1,
        Node::And(_) => 2,
        Node::Cmp(op, ..) if is_eq(*op) => 3,
        Node::Cmp(..) | Node::In(..) => 4,
        Node::Not(_) => 5,
        Node::Lit(Lit::Num(x)) if *x < 0.0 || (*x == 0.0 && x.is_sign_negative()) => 5,
        _ => 6,
    }
}

fn is_eq(op: CmpOp) -> bool {
    matches!(
        op,
        CmpOp::LooseEq | CmpOp::LooseNe | CmpOp::StrictEq | CmpOp::StrictNe
    )
}

fn op_text(op: CmpOp) -> &'static str {
    match op {
        CmpOp::LooseEq => "==",
        CmpOp::LooseNe => "!=",
        CmpOp::StrictEq => "===",
        CmpOp::StrictNe => "!==",
        CmpOp::Lt => "<",
        CmpOp::Le => "<=",
        CmpOp::Gt => ">",
        CmpOp::Ge => ">=",
    }
}

fn write(n: &Node, min: u8, out: &mut String) {
    let paren = bp(n) < min;
    if paren {
        out.push('(');
    }
    match n {
        Node::Lit(l) => lit(l, out),
        Node::Path(segs) => {
            for (i, s) in segs.iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                out.push_str(s);
            }
        }
        Node::Member(base, name) => {
            write_receiver(base, out);
            out.push('.');
            out.push_str(name);
        }
        Node::Not(x) => {
            out.push('!');
            write(x, 5, out);
        }
        Node::And(v) | Node::Or(v) => {
            let (sep, own) = if matches!(n, Node::And(_)) {
                (" && ", 2)
            } else {
                (" || ", 1)
            };
            for (i, x) in v.iter().enumerate() {
                if i > 0 {
                    out.push_str(sep);
                }
                // A nested chain of the same operator was flattened unless it was
                // parenthesized; either way it prints flat (same meaning).
                write(x, own + 1 - u8::from(bp(x) == own), out);
            }
        }
        Node::Cmp(op, l, r) => {
            let own = bp(n);
            write(l, own, out);
            out.push(' ');
            out.push_str(op_text(*op));
            out.push(' ');
            write(r, own + 1, out);
        }
        Node::In(x, items) => {
            write(x, 4, out);
            out.push_str(" in [");
            for (i, l) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                lit(l, out);
            }
            out.push(']');
        }
        Node::Call(m, recv, arg) => {
            write_receiver(recv, out);
            out.push_str(match m {
                Method::Includes => ".includes(",
                Method::StartsWith => ".startsWith(",
                Method::EndsWith => ".endsWith(",
            });
            lit(arg, out);
            out.push(')');
        }
        Node::Exists(p) => {
            out.push_str("exists(");
            write(p, 0, out);
            out.push(')');
        }
    }
    if paren {
        out.push(')');
    }
}

/// What stands before `.name` or `.method(…)`. A number literal is parenthesized: its
/// digits would take the dot (`3333.E7` is a number, `(3333).E7` a member of one).
fn write_receiver(base: &Node, out: &mut String) {
    if let Node::Lit(l @ Lit::Num(_)) = base {
        out.push('(');
        lit(l, out);
        out.push(')');
    } else {
        write(base, 6, out);
    }
}

fn lit(l: &Lit, out: &mut String) {
    match l {
        Lit::Undefined => out.push_str("undefined"),
        Lit::Null => out.push_str("null"),
        Lit::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Lit::Num(x) => out.push_str(&js_number_string(*x)),
        Lit::Str(s) => {
            let mut b = Vec::with_capacity(s.len() + 2);
            crate::json::write::write_str(&mut b, s);
            out.push_str(&String::from_utf8_lossy(&b));
        }
    }
}

/// JavaScript's `Number.prototype.toString()` (ECMA-262 Number::toString, radix 10):
/// the shortest digits that round-trip, laid out as JavaScript lays them out.
pub fn js_number_string(x: f64) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x == 0.0 {
        return "0".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    let mut out = String::new();
    if x < 0.0 {
        out.push('-');
    }
    // Rust's `{:e}` prints the shortest round-trip digits: `d[.ddd]e<exp>`.
    let sci = format!("{:e}", x.abs());
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mant.chars().filter(|c| *c != '.').collect();
    let k = digits.len() as i32;
    let n = exp + 1;
    if k <= n && n <= 21 {
        out.push_str(&digits);
        out.extend(std::iter::repeat_n('0', (n - k) as usize));
    } else if 0 < n && n <= 21 {
        out.push_str(&digits[..n as usize]);
        out.push('.');
        out.push_str(&digits[n as usize..]);
    } else if -6 < n && n <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-n) as usize));
        out.push_str(&digits);
    } else {
        out.push_str(&digits[..1]);
        if k > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if n > 0 { '+' } else { '-' });
        let _ = write!(out, "{}", (n - 1).abs());
    }
    out
}
