//! Edge rules (`r` in `sync`): `{"g", "es", "con", "cmd"}`. The condition `con` is parsed by a
//! small recursive-descent parser into an expression tree and evaluated against one device's
//! current values; the Python SDK instead rewrites the text and hands it to `eval`, which this
//! crate never does.
//!
//! Grammar: `or := and (OR and)*`, `and := term (AND term)*`, `term := '(' or ')' | operand op
//! operand`, `op := = == != <> > >= < <=`, `operand := number | 'text' | "text" | name`, where a
//! name is `attr`, `object.attr` or `tag#attr` (`tag#object.attr`). `AND`/`OR` are
//! case-insensitive; `&&` and `||` work too. Inputs are bounded (length, tokens, nesting) so
//! hostile text cannot exhaust the stack.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::validate::AttrPath;

/// Longest condition accepted, in bytes.
pub const MAX_CONDITION_LEN: usize = 4096;
/// Deepest parenthesis nesting accepted.
pub const MAX_DEPTH: usize = 32;

/// A rule as `sync` sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EdgeRule {
    /// Rule guid.
    #[serde(default)]
    pub g: String,
    /// Event-subscription guid.
    #[serde(default)]
    pub es: String,
    /// Condition.
    #[serde(default)]
    pub con: String,
    /// Command text sent to the device when the rule matches (may be empty).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cmd: String,
}

/// Why a condition does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rule condition `{condition}`: {problem} at byte {at}")]
pub struct RuleError {
    /// The condition (cut to 80 characters).
    pub condition: String,
    /// Byte offset of the problem.
    pub at: usize,
    /// What was wrong or expected.
    pub problem: String,
}

/// A name in a condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name {
    /// `tag#` prefix, if any.
    pub tag: Option<String>,
    /// The attribute.
    pub path: AttrPath,
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `=` or `==`.
    Eq,
    /// `!=` or `<>`.
    Ne,
    /// `>`.
    Gt,
    /// `>=`.
    Ge,
    /// `<`.
    Lt,
    /// `<=`.
    Le,
}

/// One side of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// A number literal.
    Number(f64),
    /// A text literal.
    Text(String),
    /// An attribute.
    Name(Name),
}

/// A parsed condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// Both.
    And(Box<Expr>, Box<Expr>),
    /// Either.
    Or(Box<Expr>, Box<Expr>),
    /// A comparison.
    Cmp(Operand, Op, Operand),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(f64),
    Text(String),
    Ident(String),
    Op(Op),
    And,
    Or,
    Open,
    Close,
}

fn err(con: &str, at: usize, problem: impl Into<String>) -> RuleError {
    RuleError {
        condition: con.chars().take(80).collect(),
        at,
        problem: problem.into(),
    }
}

fn lex(con: &str) -> Result<Vec<(usize, Tok)>, RuleError> {
    let b = con.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let start = i;
        let tok = match c {
            b' ' | b'\t' | b'\r' | b'\n' => {
                i += 1;
                continue;
            }
            b'(' => {
                i += 1;
                Tok::Open
            }
            b')' => {
                i += 1;
                Tok::Close
            }
            b'=' | b'!' | b'<' | b'>' | b'&' | b'|' => {
                let two = b.get(i..i + 2).unwrap_or(&[]);
                let (tok, len) = match (c, two) {
                    (_, b"==") => (Tok::Op(Op::Eq), 2),
                    (_, b"!=" | b"<>") => (Tok::Op(Op::Ne), 2),
                    (_, b">=") => (Tok::Op(Op::Ge), 2),
                    (_, b"<=") => (Tok::Op(Op::Le), 2),
                    (_, b"&&") => (Tok::And, 2),
                    (_, b"||") => (Tok::Or, 2),
                    (b'=', _) => (Tok::Op(Op::Eq), 1),
                    (b'>', _) => (Tok::Op(Op::Gt), 1),
                    (b'<', _) => (Tok::Op(Op::Lt), 1),
                    _ => return Err(err(con, i, format!("unexpected `{}`", c as char))),
                };
                i += len;
                tok
            }
            b'\'' | b'"' => {
                let close = b[i + 1..]
                    .iter()
                    .position(|&x| x == c)
                    .ok_or_else(|| err(con, i, "unterminated text literal"))?;
                let text = con.get(i + 1..i + 1 + close).unwrap_or_default().to_owned();
                i += close + 2;
                Tok::Text(text)
            }
            b'0'..=b'9' | b'-' | b'+' | b'.' => {
                let len = b[i..]
                    .iter()
                    .position(|x| {
                        !(x.is_ascii_digit() || matches!(x, b'.' | b'e' | b'E' | b'-' | b'+'))
                    })
                    .unwrap_or(b.len() - i);
                // A sign must be the first character or follow an exponent marker.
                let text = con.get(i..i + len).unwrap_or_default();
                let num = text
                    .parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite())
                    .ok_or_else(|| err(con, i, format!("`{text}` is not a number")))?;
                i += len;
                Tok::Num(num)
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c == b'$' => {
                let len = b[i..]
                    .iter()
                    .position(|x| {
                        !(x.is_ascii_alphanumeric()
                            || matches!(x, b'_' | b'.' | b'#' | b'$' | b'-'))
                    })
                    .unwrap_or(b.len() - i);
                let word = con.get(i..i + len).unwrap_or_default();
                i += len;
                match word.to_ascii_lowercase().as_str() {
                    "and" => Tok::And,
                    "or" => Tok::Or,
                    _ => Tok::Ident(word.to_owned()),
                }
            }
            _ => {
                let ch = con.get(i..).and_then(|s| s.chars().next()).unwrap_or('?');
                return Err(err(con, i, format!("unexpected `{ch}`")));
            }
        };
        out.push((start, tok));
        if out.len() > 512 {
            return Err(err(con, start, "more than 512 tokens"));
        }
    }
    Ok(out)
}

fn name(word: &str) -> Name {
    let (tag, rest) = match word.split_once('#') {
        Some((t, r)) => (Some(t.to_owned()), r),
        None => (None, word),
    };
    let path = match rest.split_once('.') {
        Some((p, n)) => AttrPath::child(p, n),
        None => AttrPath::plain(rest),
    };
    Name { tag, path }
}

struct Parser<'a> {
    con: &'a str,
    toks: Vec<(usize, Tok)>,
    pos: usize,
}

impl Parser<'_> {
    fn at(&self) -> usize {
        self.toks.get(self.pos).map_or(self.con.len(), |t| t.0)
    }

    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|t| &t.1)
    }

    fn or(&mut self, depth: usize) -> Result<Expr, RuleError> {
        let mut left = self.and(depth)?;
        while self.peek() == Some(&Tok::Or) {
            self.pos += 1;
            let right = self.and(depth)?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self, depth: usize) -> Result<Expr, RuleError> {
        let mut left = self.term(depth)?;
        while self.peek() == Some(&Tok::And) {
            self.pos += 1;
            let right = self.term(depth)?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn term(&mut self, depth: usize) -> Result<Expr, RuleError> {
        if self.peek() == Some(&Tok::Open) {
            if depth >= MAX_DEPTH {
                return Err(err(
                    self.con,
                    self.at(),
                    format!("nesting deeper than {MAX_DEPTH}"),
                ));
            }
            self.pos += 1;
            let e = self.or(depth + 1)?;
            if self.peek() != Some(&Tok::Close) {
                return Err(err(self.con, self.at(), "expected `)`"));
            }
            self.pos += 1;
            return Ok(e);
        }
        let left = self.operand()?;
        let op = match self.peek() {
            Some(Tok::Op(op)) => *op,
            _ => {
                return Err(err(
                    self.con,
                    self.at(),
                    "expected a comparison (= != > >= < <=)",
                ));
            }
        };
        self.pos += 1;
        let right = self.operand()?;
        Ok(Expr::Cmp(left, op, right))
    }

    fn operand(&mut self) -> Result<Operand, RuleError> {
        let at = self.at();
        let o = match self.peek() {
            Some(Tok::Num(n)) => Operand::Number(*n),
            Some(Tok::Text(t)) => Operand::Text(t.clone()),
            Some(Tok::Ident(w)) => Operand::Name(name(w)),
            _ => return Err(err(self.con, at, "expected a name, a number or a text")),
        };
        self.pos += 1;
        Ok(o)
    }
}

/// Parses a condition.
pub fn parse(con: &str) -> Result<Expr, RuleError> {
    if con.len() > MAX_CONDITION_LEN {
        return Err(err(
            con,
            MAX_CONDITION_LEN,
            format!("longer than {MAX_CONDITION_LEN} bytes"),
        ));
    }
    let toks = lex(con)?;
    if toks.is_empty() {
        return Err(err(con, 0, "empty condition"));
    }
    let mut p = Parser { con, toks, pos: 0 };
    let e = p.or(0)?;
    if p.pos != p.toks.len() {
        return Err(err(con, p.at(), "unexpected text after the condition"));
    }
    Ok(e)
}

impl Expr {
    /// Evaluates against a device with `tag` and its current `values` (object attributes
    /// nested); collects the values of the names it read into `used`. Missing or
    /// incomparable values make a comparison false.
    pub fn eval(
        &self,
        tag: &str,
        values: &Map<String, Value>,
        used: &mut Map<String, Value>,
    ) -> bool {
        match self {
            Expr::And(a, b) => a.eval(tag, values, used) && b.eval(tag, values, used),
            Expr::Or(a, b) => {
                // Both sides are evaluated so `used` names every matched value.
                let x = a.eval(tag, values, used);
                let y = b.eval(tag, values, used);
                x || y
            }
            Expr::Cmp(l, op, r) => {
                let (Some(a), Some(b)) =
                    (resolve(l, tag, values, used), resolve(r, tag, values, used))
                else {
                    return false;
                };
                compare(&a, *op, &b)
            }
        }
    }

    /// Every name the condition reads.
    pub fn names(&self) -> Vec<&Name> {
        match self {
            Expr::And(a, b) | Expr::Or(a, b) => {
                let mut v = a.names();
                v.extend(b.names());
                v
            }
            Expr::Cmp(l, _, r) => [l, r]
                .into_iter()
                .filter_map(|o| match o {
                    Operand::Name(n) => Some(n),
                    _ => None,
                })
                .collect(),
        }
    }
}

fn resolve(
    o: &Operand,
    tag: &str,
    values: &Map<String, Value>,
    used: &mut Map<String, Value>,
) -> Option<Value> {
    match o {
        Operand::Number(n) => serde_json::Number::from_f64(*n).map(Value::Number),
        Operand::Text(t) => Some(Value::String(t.clone())),
        Operand::Name(n) => {
            if n.tag.as_deref().is_some_and(|t| t != tag) {
                return None;
            }
            let v = match &n.path.parent {
                None => values.get(&n.path.name),
                Some(p) => values.get(p).and_then(|o| o.get(&n.path.name)),
            }?
            .clone();
            match &n.path.parent {
                None => {
                    used.insert(n.path.name.clone(), v.clone());
                }
                Some(p) => {
                    if let Value::Object(m) = used
                        .entry(p.clone())
                        .or_insert_with(|| Value::Object(Map::new()))
                    {
                        m.insert(n.path.name.clone(), v.clone());
                    }
                }
            }
            Some(v)
        }
    }
}

fn as_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn compare(a: &Value, op: Op, b: &Value) -> bool {
    use std::cmp::Ordering;
    let ord = match (as_f64(a), as_f64(b)) {
        (Some(x), Some(y)) => x.partial_cmp(&y),
        _ => match (a, b) {
            (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
            _ => None,
        },
    };
    let Some(ord) = ord else { return false };
    match op {
        Op::Eq => ord == Ordering::Equal,
        Op::Ne => ord != Ordering::Equal,
        Op::Gt => ord == Ordering::Greater,
        Op::Ge => ord != Ordering::Less,
        Op::Lt => ord == Ordering::Less,
        Op::Le => ord != Ordering::Greater,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[allow(clippy::needless_pass_by_value)]
    fn run(con: &str, tag: &str, v: Value) -> (bool, Value) {
        let e = parse(con).unwrap();
        let mut used = Map::new();
        let ok = e.eval(tag, v.as_object().unwrap(), &mut used);
        (ok, Value::Object(used))
    }

    #[test]
    fn sdk_style_conditions() {
        assert_eq!(
            run("temp > 20", "", json!({"temp": 25})),
            (true, json!({"temp": 25}))
        );
        assert!(!run("temp > 20", "", json!({"temp": 15})).0);
        assert!(run("temp = 25 AND hum < 50", "", json!({"temp": 25, "hum": 40})).0);
        assert!(!run("temp = 25 AND hum < 50", "", json!({"temp": 25, "hum": 60})).0);
        assert!(
            run(
                "temp >= 30 or hum <= 40",
                "",
                json!({"temp": 25, "hum": 40})
            )
            .0
        );
        assert!(run("gw#gyro.x != 0", "gw", json!({"gyro": {"x": 1}})).0);
        assert!(!run("gw#gyro.x != 0", "other", json!({"gyro": {"x": 1}})).0);
        assert!(
            run(
                "(temp > 1 || hum > 1) && mode == 'auto'",
                "",
                json!({"temp": 2, "mode": "auto"})
            )
            .0
        );
        assert!(!run("missing > 1", "", json!({"temp": 2})).0);
        assert!(run("temp <> 3", "", json!({"temp": "4"})).0);
    }

    #[test]
    fn errors_name_the_place() {
        for (con, at) in [
            ("temp >", 6),
            ("temp 20", 5),
            ("(temp > 1", 9),
            ("temp > 1 )", 9),
            ("temp ~ 1", 5),
            ("", 0),
            ("'x", 0),
        ] {
            let e = parse(con).unwrap_err();
            assert_eq!(e.at, at, "{con}: {e}");
        }
        let deep = format!("{}temp > 1{}", "(".repeat(40), ")".repeat(40));
        assert!(parse(&deep).unwrap_err().problem.contains("nesting"));
        assert!(parse(&"a".repeat(5000)).is_err());
    }

    #[test]
    fn names_lists_every_attribute_read() {
        let e = parse("s#a > 1 AND b.c < 2").unwrap();
        let n = e.names();
        assert_eq!(n[0].tag.as_deref(), Some("s"));
        assert_eq!(n[1].path, AttrPath::child("b", "c"));
    }
}
