//! The Pratt parser: tokens to the compiled tree, with the depth limit enforced as it
//! goes (it recurses only into parentheses, `!` and right operands, each counted).

use super::lex::{lex, Tok, Token};
use super::{CmpOp, ConditionError, Lit, Method, Node, MAX_DEPTH};

/// Binding powers, low to high.
const OR: u8 = 1;
const AND: u8 = 2;
const EQ: u8 = 3;
const REL: u8 = 4;
const PREFIX: u8 = 5;

struct Parser<'t> {
    toks: &'t [Token],
    i: usize,
}

pub fn parse(src: &str) -> Result<Node, ConditionError> {
    let toks = lex(src)?;
    let mut p = Parser { toks: &toks, i: 0 };
    let node = p.expr(0, 0)?;
    let t = p.peek();
    if t.tok != Tok::End {
        return Err(ConditionError::syntax(t.at, "an operator or the end"));
    }
    if tree_depth(&node, 0) > MAX_DEPTH {
        return Err(ConditionError::too_deep(0));
    }
    Ok(node)
}

/// The tree's depth, stopping early once past the limit (so a long left-leaning chain
/// is measured in bounded time and stack).
fn tree_depth(n: &Node, at: usize) -> usize {
    if at > MAX_DEPTH {
        return at;
    }
    let d = at + 1;
    match n {
        Node::Lit(_) | Node::Path(_) => d,
        Node::Member(x, _) | Node::Not(x) | Node::In(x, _) | Node::Call(_, x, _) | Node::Exists(x) => {
            tree_depth(x, d)
        }
        Node::And(v) | Node::Or(v) => v.iter().map(|x| tree_depth(x, d)).max().unwrap_or(d),
        Node::Cmp(_, l, r) => tree_depth(l, d).max(tree_depth(r, d)),
    }
}

fn infix(tok: &Tok) -> Option<u8> {
    Some(match tok {
        Tok::Op("||") => OR,
        Tok::Op("&&") => AND,
        Tok::Op("==" | "!=" | "===" | "!==") => EQ,
        Tok::Op("<" | "<=" | ">" | ">=") => REL,
        Tok::Ident(s) if &**s == "in" => REL,
        _ => return None,
    })
}

fn cmp_op(op: &str) -> CmpOp {
    match op {
        "==" => CmpOp::LooseEq,
        "!=" => CmpOp::LooseNe,
        "===" => CmpOp::StrictEq,
        "!==" => CmpOp::StrictNe,
        "<" => CmpOp::Lt,
        "<=" => CmpOp::Le,
        ">" => CmpOp::Gt,
        _ => CmpOp::Ge,
    }
}

impl Parser<'_> {
    fn peek(&self) -> &Token {
        // The token list always ends with `End`, and `i` never passes it.
        &self.toks[self.i.min(self.toks.len() - 1)]
    }

    fn bump(&mut self) -> Token {
        let t = self.peek().clone();
        if t.tok != Tok::End {
            self.i += 1;
        }
        t
    }

    fn expect(&mut self, op: &'static str) -> Result<(), ConditionError> {
        let t = self.bump();
        if t.tok == Tok::Op(op) {
            Ok(())
        } else {
            Err(ConditionError::syntax(t.at, format!("`{op}`")))
        }
    }

    fn expr(&mut self, min_bp: u8, depth: usize) -> Result<Node, ConditionError> {
        if depth >= MAX_DEPTH {
            return Err(ConditionError::too_deep(self.peek().at));
        }
        let mut lhs = self.prefix(depth)?;
        loop {
            let t = self.peek().clone();
            let Some(bp) = infix(&t.tok) else { break };
            if bp < min_bp {
                break;
            }
            self.bump();
            lhs = match t.tok {
                Tok::Op("||") => {
                    let rhs = self.expr(OR + 1, depth + 1)?;
                    match lhs {
                        Node::Or(mut v) => {
                            v.push(rhs);
                            Node::Or(v)
                        }
                        l => Node::Or(vec![l, rhs]),
                    }
                }
                Tok::Op("&&") => {
                    let rhs = self.expr(AND + 1, depth + 1)?;
                    match lhs {
                        Node::And(mut v) => {
                            v.push(rhs);
                            Node::And(v)
                        }
                        l => Node::And(vec![l, rhs]),
                    }
                }
                Tok::Ident(_) => {
                    self.expect("[")?;
                    let mut items = Vec::new();
                    if self.peek().tok != Tok::Op("]") {
                        loop {
                            items.push(self.literal()?);
                            if self.peek().tok == Tok::Op(",") {
                                self.bump();
                                continue;
                            }
                            break;
                        }
                    }
                    self.expect("]")?;
                    Node::In(Box::new(lhs), items)
                }
                Tok::Op(op) => {
                    let rhs = self.expr(bp + 1, depth + 1)?;
                    Node::Cmp(cmp_op(op), Box::new(lhs), Box::new(rhs))
                }
                _ => break,
            };
        }
        Ok(lhs)
    }

    /// A literal where only a literal may stand (`in [..]` items, method arguments).
    fn literal(&mut self) -> Result<Lit, ConditionError> {
        let t = self.bump();
        let lit = match t.tok {
            Tok::Str(s) => Lit::Str(s),
            Tok::Num(n) => Lit::Num(n),
            Tok::Op("-") => match self.bump() {
                Token {
                    tok: Tok::Num(n), ..
                } => Lit::Num(-n),
                Token {
                    tok: Tok::Ident(s), ..
                } if &*s == "Infinity" => Lit::Num(f64::NEG_INFINITY),
                other => return Err(ConditionError::syntax(other.at, "a number after `-`")),
            },
            Tok::Ident(s) => match keyword(&s) {
                Some(l) => l,
                None => return Err(ConditionError::syntax(t.at, "a literal (string, number, true, false, null)")),
            },
            _ => return Err(ConditionError::syntax(t.at, "a literal (string, number, true, false, null)")),
        };
        Ok(lit)
    }

    fn prefix(&mut self, depth: usize) -> Result<Node, ConditionError> {
        let t = self.bump();
        let base = match t.tok {
            Tok::Op("!") => return Ok(Node::Not(Box::new(self.expr(PREFIX, depth + 1)?))),
            Tok::Op("(") => {
                let inner = self.expr(0, depth + 1)?;
                self.expect(")")?;
                inner
            }
            Tok::Op("-") => {
                // A negative number literal; no postfix after it (`-5 .length` would
                // mean `-(5).length` in JavaScript).
                self.i -= 1;
                return Ok(Node::Lit(self.literal()?));
            }
            Tok::Num(n) => Node::Lit(Lit::Num(n)),
            Tok::Str(s) => Node::Lit(Lit::Str(s)),
            Tok::Ident(s) => {
                if let Some(l) = keyword(&s) {
                    Node::Lit(l)
                } else if &*s == "exists" && self.peek().tok == Tok::Op("(") {
                    self.bump();
                    let at = self.peek().at;
                    let inner = self.expr(0, depth + 1)?;
                    if !matches!(inner, Node::Path(_) | Node::Member(..)) {
                        return Err(ConditionError::syntax(at, "a field path inside exists(…)"));
                    }
                    self.expect(")")?;
                    return self.postfix(Node::Exists(Box::new(inner)));
                } else if &*s == "in" {
                    return Err(ConditionError::syntax(t.at, "an expression before `in`"));
                } else {
                    Node::Path(vec![s].into_boxed_slice())
                }
            }
            Tok::End => return Err(ConditionError::syntax(t.at, "an expression")),
            _ => return Err(ConditionError::syntax(t.at, "an expression")),
        };
        self.postfix(base)
    }

    /// `.name`, `.length` and the method calls after a primary.
    fn postfix(&mut self, mut base: Node) -> Result<Node, ConditionError> {
        while self.peek().tok == Tok::Op(".") {
            self.bump();
            let t = self.bump();
            let Tok::Ident(name) = t.tok else {
                return Err(ConditionError::syntax(t.at, "a field name after `.`"));
            };
            if self.peek().tok == Tok::Op("(") {
                let method = match &*name {
                    "includes" | "contains" => Method::Includes,
                    "startsWith" => Method::StartsWith,
                    "endsWith" => Method::EndsWith,
                    _ => {
                        return Err(ConditionError::syntax(
                            t.at,
                            "a method among includes, contains, startsWith, endsWith",
                        ))
                    }
                };
                self.bump();
                let arg = self.literal()?;
                self.expect(")")?;
                base = Node::Call(method, Box::new(base), arg);
                continue;
            }
            base = match base {
                Node::Path(segs) => {
                    let mut v = segs.into_vec();
                    v.push(name);
                    Node::Path(v.into_boxed_slice())
                }
                other => Node::Member(Box::new(other), name),
            };
        }
        Ok(base)
    }
}

/// Identifiers that are literals where an expression starts (as in JavaScript).
fn keyword(s: &str) -> Option<Lit> {
    Some(match s {
        "true" => Lit::Bool(true),
        "false" => Lit::Bool(false),
        "null" => Lit::Null,
        "undefined" => Lit::Undefined,
        "NaN" => Lit::Num(f64::NAN),
        "Infinity" => Lit::Num(f64::INFINITY),
        _ => return None,
    })
}
