//! Templates in a workflow node's `input`: `{{steps.<node id>.output.<path>}}` and
//! `{{input.<path>}}`, where a path is names after dots and `[n]` for array items. A string
//! that is exactly one expression becomes the value itself (a number stays a number, an
//! object an object); an expression inside a longer string is rendered as text (a string
//! as it is, anything else as its JSON text). A path that leads nowhere is an error naming
//! it. Templates are parsed when a workflow is saved (so a typo is found then) and rendered
//! when the node runs.

use std::fmt;

use serde_json::{Map, Value};

/// The longest expression between `{{` and `}}`.
pub const MAX_EXPRESSION: usize = 512;
/// The most names and indexes in one path.
const MAX_SEGMENTS: usize = 64;
/// The largest string rendering may make (a node's input after templating is bounded
/// again by the caller).
pub const MAX_RENDERED_TEXT: usize = 4 * 1024 * 1024;

/// Where an expression starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Root {
    /// The run's input.
    Input,
    /// A node's output, by the node's id.
    Step(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Key(String),
    Index(usize),
}

/// One `{{…}}` expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expr {
    pub root: Root,
    pub path: Vec<Segment>,
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.root {
            Root::Input => f.write_str("input")?,
            Root::Step(id) => write!(f, "steps.{id}.output")?,
        }
        write_path(f, &self.path)
    }
}

fn write_path(f: &mut impl fmt::Write, path: &[Segment]) -> fmt::Result {
    for s in path {
        match s {
            Segment::Key(k) => write!(f, ".{k}")?,
            Segment::Index(i) => write!(f, "[{i}]")?,
        }
    }
    Ok(())
}

/// A string of a node's input, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Text(String),
    Expr(Expr),
}

/// Parses the expressions of one string: `None` when it has none (it is kept as it is).
pub fn parse_string(s: &str) -> Result<Option<Vec<Piece>>, String> {
    if !s.contains("{{") {
        return Ok(None);
    }
    let mut pieces = Vec::new();
    let mut rest = s;
    while let Some(open) = rest.find("{{") {
        if open > 0 {
            pieces.push(Piece::Text(rest[..open].to_owned()));
        }
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            return Err(format!("`{{{{` without its `}}}}`: {}", excerpt(&rest[open..])));
        };
        let inner = &after[..close];
        if inner.len() > MAX_EXPRESSION {
            return Err(format!(
                "an expression is longer than {MAX_EXPRESSION} characters: {}",
                excerpt(inner)
            ));
        }
        pieces.push(Piece::Expr(parse_expr(inner.trim())?));
        rest = &after[close + 2..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest.to_owned()));
    }
    Ok(Some(pieces))
}

fn excerpt(s: &str) -> String {
    let cut: String = s.chars().take(40).collect();
    if cut.len() < s.len() { format!("{cut}…") } else { cut }
}

/// `input…` or `steps.<id>.output…`.
pub fn parse_expr(e: &str) -> Result<Expr, String> {
    let bad = |why: &str| {
        format!(
            "`{{{{{}}}}}` is not a template: {why} (write `{{{{input.<path>}}}}` or `{{{{steps.<node id>.output.<path>}}}}`)",
            excerpt(e)
        )
    };
    let segments = parse_path(e).map_err(|why| bad(&why))?;
    let mut it = segments.into_iter();
    let root = match it.next() {
        Some(Segment::Key(k)) if k == "input" => Root::Input,
        Some(Segment::Key(k)) if k == "steps" => {
            let id = match it.next() {
                Some(Segment::Key(id)) => id,
                _ => return Err(bad("`steps` is followed by a node's id")),
            };
            match it.next() {
                Some(Segment::Key(o)) if o == "output" => {}
                _ => return Err(bad("a step's value is its `output`")),
            }
            Root::Step(id)
        }
        _ => return Err(bad("it starts with `input` or `steps`")),
    };
    Ok(Expr {
        root,
        path: it.collect(),
    })
}

/// `a.b[2].c` into its names and indexes.
fn parse_path(e: &str) -> Result<Vec<Segment>, String> {
    let mut out = Vec::new();
    let b = e.as_bytes();
    let mut i = 0;
    let mut expect_name = true;
    while i < b.len() {
        if out.len() >= MAX_SEGMENTS {
            return Err(format!("a path has at most {MAX_SEGMENTS} parts"));
        }
        match b[i] {
            b'[' => {
                let close = e[i..].find(']').ok_or("`[` without `]`")? + i;
                let n: usize = e[i + 1..close]
                    .trim()
                    .parse()
                    .map_err(|_| "an index in `[…]` is a whole number".to_owned())?;
                out.push(Segment::Index(n));
                i = close + 1;
                expect_name = false;
            }
            b'.' if !expect_name => {
                i += 1;
                expect_name = true;
                if i >= b.len() {
                    return Err("a path does not end with `.`".into());
                }
            }
            _ if expect_name => {
                let end = e[i..].find(['.', '[']).map_or(e.len(), |p| p + i);
                let name = &e[i..end];
                if name.is_empty()
                    || name
                        .chars()
                        .any(|c| c.is_whitespace() || c == ']' || c == '{' || c == '}')
                {
                    return Err(format!("`{}` is not a name", excerpt(name)));
                }
                out.push(Segment::Key(name.to_owned()));
                i = end;
                expect_name = false;
            }
            _ => return Err("parts of a path are joined by `.` or `[n]`".into()),
        }
    }
    if out.is_empty() {
        return Err("it is empty".into());
    }
    Ok(out)
}

/// Every expression in `v` with the JSON pointer of the string holding it.
pub fn expressions(v: &Value) -> Result<Vec<(String, Expr)>, (String, String)> {
    let mut out = Vec::new();
    walk(v, &mut String::new(), &mut out)?;
    Ok(out)
}

fn walk(v: &Value, at: &mut String, out: &mut Vec<(String, Expr)>) -> Result<(), (String, String)> {
    match v {
        Value::String(s) => {
            if let Some(pieces) = parse_string(s).map_err(|e| (at.clone(), e))? {
                for p in pieces {
                    if let Piece::Expr(e) = p {
                        out.push((at.clone(), e));
                    }
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = at.len();
                at.push_str(&format!("/{i}"));
                walk(item, at, out)?;
                at.truncate(len);
            }
        }
        Value::Object(map) => {
            for (k, item) in map {
                let len = at.len();
                at.push('/');
                at.push_str(&chatterfly_domain::error::pointer_token(k));
                walk(item, at, out)?;
                at.truncate(len);
            }
        }
        _ => {}
    }
    Ok(())
}

/// The values expressions start from.
pub trait Scope {
    fn input(&self) -> &Value;
    /// A node's output, when the node has succeeded.
    fn step(&self, id: &str) -> Option<&Value>;
}

/// `v` with its templates replaced by their values. What rendering makes is counted as it
/// is made (values copied in, text written): past [`MAX_RENDERED_TEXT`] in all it stops
/// with an error, so a small input repeating a large value many times costs no more than
/// the limit.
pub fn render(v: &Value, scope: &dyn Scope) -> Result<Value, String> {
    let mut room = MAX_RENDERED_TEXT;
    render_within(v, scope, &mut room)
}

fn too_large() -> String {
    format!(
        "the input after templating is larger than {} MiB (a template copies in a large value, or copies it many times)",
        MAX_RENDERED_TEXT / (1024 * 1024)
    )
}

/// Takes `n` bytes from `room`, or says the input is too large.
fn take(room: &mut usize, n: usize) -> Result<(), String> {
    *room = room.checked_sub(n).ok_or_else(too_large)?;
    Ok(())
}

/// The size of `v` as JSON text, roughly, if it is at most `limit` (looked at no further
/// than that).
fn size_within(v: &Value, limit: usize) -> Option<usize> {
    let mut total = 0usize;
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        total += match v {
            Value::Null | Value::Bool(_) => 5,
            Value::Number(_) => 20,
            Value::String(s) => s.len() + 2,
            Value::Array(items) => {
                stack.extend(items.iter());
                2 + items.len()
            }
            Value::Object(map) => {
                for (k, item) in map {
                    total += k.len() + 4;
                    stack.push(item);
                }
                2
            }
        };
        if total > limit {
            return None;
        }
    }
    Some(total)
}

fn render_within(v: &Value, scope: &dyn Scope, room: &mut usize) -> Result<Value, String> {
    Ok(match v {
        Value::String(s) => render_string(s, scope, room)?,
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|i| render_within(i, scope, room))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, item) in map {
                take(room, k.len())?;
                out.insert(k.clone(), render_within(item, scope, room)?);
            }
            Value::Object(out)
        }
        other => {
            take(room, 8)?;
            other.clone()
        }
    })
}

fn render_string(s: &str, scope: &dyn Scope, room: &mut usize) -> Result<Value, String> {
    let Some(pieces) = parse_string(s)? else {
        take(room, s.len())?;
        return Ok(Value::String(s.to_owned()));
    };
    if let [Piece::Expr(e)] = pieces.as_slice() {
        let value = lookup(e, scope)?;
        let size = size_within(value, *room).ok_or_else(too_large)?;
        take(room, size)?;
        return Ok(value.clone());
    }
    let mut text = String::new();
    for p in &pieces {
        let before = text.len();
        match p {
            Piece::Text(t) => text.push_str(t),
            Piece::Expr(e) => match lookup(e, scope)? {
                Value::String(v) => {
                    if v.len() > *room {
                        return Err(too_large());
                    }
                    text.push_str(v);
                }
                other => {
                    size_within(other, *room).ok_or_else(too_large)?;
                    text.push_str(&other.to_string());
                }
            },
        }
        take(room, text.len() - before)?;
    }
    Ok(Value::String(text))
}

/// The value an expression names, or a message naming the part of the path that is missing.
pub fn lookup<'a>(e: &Expr, scope: &'a dyn Scope) -> Result<&'a Value, String> {
    let mut here = match &e.root {
        Root::Input => scope.input(),
        Root::Step(id) => scope
            .step(id)
            .ok_or_else(|| format!("`{{{{{e}}}}}`: step `{id}` has no output (it has not succeeded)"))?,
    };
    let mut reached = match &e.root {
        Root::Input => "input".to_owned(),
        Root::Step(id) => format!("steps.{id}.output"),
    };
    for seg in &e.path {
        let next = match (seg, here) {
            (Segment::Key(k), Value::Object(m)) => m.get(k),
            (Segment::Index(i), Value::Array(a)) => a.get(*i),
            _ => None,
        };
        let Some(next) = next else {
            let what = match (seg, here) {
                (Segment::Key(k), Value::Object(_)) => format!("`{reached}` has no `{k}`"),
                (Segment::Index(i), Value::Array(a)) => {
                    format!("`{reached}` has {} items, so no `[{i}]`", a.len())
                }
                (Segment::Key(k), other) => format!("`{reached}` is {}, so it has no `{k}`", kind(other)),
                (Segment::Index(i), other) => format!("`{reached}` is {}, so it has no `[{i}]`", kind(other)),
            };
            return Err(format!("`{{{{{e}}}}}` names a missing value: {what}"));
        };
        match seg {
            Segment::Key(k) => {
                reached.push('.');
                reached.push_str(k);
            }
            Segment::Index(i) => reached.push_str(&format!("[{i}]")),
        }
        here = next;
    }
    Ok(here)
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde_json::json;

    use super::*;

    struct S {
        input: Value,
        steps: HashMap<String, Value>,
    }

    impl Scope for S {
        fn input(&self) -> &Value {
            &self.input
        }
        fn step(&self, id: &str) -> Option<&Value> {
            self.steps.get(id)
        }
    }

    fn scope() -> S {
        S {
            input: json!({"n": 7, "flag": true, "obj": {"a": [1, 2]}, "list": ["x", "y"], "nothing": null, "name": "Ada"}),
            steps: HashMap::from([(
                "fetch".to_owned(),
                json!({"status": 200, "body": {"items": [{"title": "first"}, {"title": "second"}], "count": 2}}),
            )]),
        }
    }

    #[test]
    fn a_whole_expression_keeps_its_type() {
        let s = scope();
        let out = render(
            &json!({"i": "{{input.n}}", "b": "{{ input.flag }}", "o": "{{input.obj}}", "a": "{{input.list}}",
                    "z": "{{input.nothing}}", "deep": "{{steps.fetch.output.body.items[1].title}}",
                    "nested": ["{{input.obj.a[0]}}", {"k": "{{steps.fetch.output.status}}"}], "plain": 5}),
            &s,
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"i": 7, "b": true, "o": {"a": [1, 2]}, "a": ["x", "y"], "z": null, "deep": "second",
                   "nested": [1, {"k": 200}], "plain": 5})
        );
    }

    #[test]
    fn expressions_inside_text_are_rendered_as_text() {
        let s = scope();
        let out = render(
            &json!("Hi {{input.name}}, {{input.n}} of {{steps.fetch.output.body.count}}: {{input.obj}} {{input.flag}} {{input.nothing}}"),
            &s,
        )
        .unwrap();
        assert_eq!(out, json!("Hi Ada, 7 of 2: {\"a\":[1,2]} true null"));
    }

    #[test]
    fn a_missing_path_is_named() {
        let s = scope();
        let e = render(&json!({"t": "{{steps.fetch.output.body.items[5].title}}"}), &s).unwrap_err();
        assert!(e.contains("steps.fetch.output.body.items[5].title"), "{e}");
        assert!(e.contains("has 2 items"), "{e}");
        let e = render(&json!("x {{input.obj.b}}"), &s).unwrap_err();
        assert!(e.contains("`input.obj` has no `b`"), "{e}");
        let e = render(&json!("{{input.name.first}}"), &s).unwrap_err();
        assert!(e.contains("is text"), "{e}");
        let e = render(&json!("{{steps.later.output}}"), &s).unwrap_err();
        assert!(e.contains("step `later` has no output"), "{e}");
    }

    #[test]
    fn bad_templates_are_refused_when_parsed() {
        for bad in [
            "{{input.a",
            "{{}}",
            "{{ output.x }}",
            "{{steps}}",
            "{{steps.a}}",
            "{{steps.a.input}}",
            "{{input..a}}",
            "{{input.a[x]}}",
            "{{input.a[1}}",
            "{{input.}}",
            "{{input a}}",
        ] {
            assert!(parse_string(bad).is_err(), "{bad} parsed");
        }
        let long = format!("{{{{input.{}}}}}", "a".repeat(MAX_EXPRESSION + 1));
        assert!(parse_string(&long).unwrap_err().contains("longer than"));
        let deep = format!("{{{{input{}}}}}", ".a".repeat(100));
        assert!(parse_string(&deep).unwrap_err().contains("at most 64"));
        let found = expressions(&json!({"a": ["x", {"b~/": "{{steps.n1.output.x[0]}}"}]})).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, "/a/1/b~0~1");
        assert_eq!(found[0].1.root, Root::Step("n1".into()));
    }

    #[test]
    fn rendering_text_is_bounded() {
        let big = "x".repeat(1024 * 1024);
        let s = S {
            input: json!({"big": big}),
            steps: HashMap::new(),
        };
        let e = render(
            &json!("{{input.big}}{{input.big}}{{input.big}}{{input.big}}{{input.big}}"),
            &s,
        )
        .unwrap_err();
        assert!(e.contains("larger than 4 MiB"), "{e}");
        // a whole value copied many times: stopped at the limit, before it is all made
        let many: Vec<Value> = (0..2300).map(|_| json!("{{input.big}}")).collect();
        let started = std::time::Instant::now();
        let e = render(&json!({ "copies": many }), &s).unwrap_err();
        assert!(e.contains("larger than 4 MiB"), "{e}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        // within the limit it is made whole, as values or as text
        let three: Vec<Value> = (0..3).map(|_| json!("{{input.big}}")).collect();
        assert_eq!(render(&json!(three), &s).unwrap().as_array().unwrap().len(), 3);
        let text = render(&json!("{{input.big}} {{input.big}} {{input.big}}"), &s).unwrap();
        assert_eq!(text.as_str().unwrap().len(), 3 * 1024 * 1024 + 2);
    }
}
