//! The document model: a compact, read-only tree that borrows its strings from the input
//! where it can, loaded from JSON (serde_json) or YAML (saphyr's event parser, anchors and
//! aliases included) with caps on nesting depth and on alias expansion.
//!
//! GitHub's description is 13 MB of JSON; a `serde_json::Value` of it takes about 75 MB, this
//! tree a fraction of that, which is what keeps an import of it small and fast.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use saphyr_parser::{Event, Parser, ScalarStyle};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Number, Value};

/// The deepest nesting of arrays and objects a document may have (serde_json's own limit).
pub const MAX_DEPTH: usize = 128;

/// One node of a document.
#[derive(Debug, Clone, PartialEq)]
pub enum Node<'a> {
    Null,
    Bool(bool),
    Number(Number),
    String(Cow<'a, str>),
    Array(Box<[Node<'a>]>),
    Object(Object<'a>),
}

// A node is three words: arrays and objects are boxed slices (two words, not a `Vec`'s
// three), so the string's capacity niche holds the tag. GitHub's description has about
// 258,000 nodes.
const _: () = assert!(std::mem::size_of::<Node<'static>>() == 24);

/// An object: entries in document order (lookups are linear; objects are small, and the
/// importer caches what it looks up in large ones).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Object<'a>(pub Box<[(Cow<'a, str>, Node<'a>)]>);

impl<'a> Object<'a> {
    pub fn get(&self, key: &str) -> Option<&Node<'a>> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Node<'a>)> {
        self.0.iter().map(|(k, v)| (k.as_ref(), v))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// An object from entries in document order; a repeated key keeps its last value (as
    /// serde_json does), at the place of its first.
    fn from_entries(entries: Vec<(Cow<'a, str>, Node<'a>)>) -> Self {
        let has_duplicates = if entries.len() <= 8 {
            (1..entries.len()).any(|i| entries[..i].iter().any(|(k, _)| *k == entries[i].0))
        } else {
            let mut seen = std::collections::HashSet::with_capacity(entries.len());
            !entries.iter().all(|(k, _)| seen.insert(k.as_ref()))
        };
        if !has_duplicates {
            return Self(entries.into_boxed_slice());
        }
        let mut at: HashMap<Cow<'a, str>, usize> = HashMap::with_capacity(entries.len());
        let mut out: Vec<(Cow<'a, str>, Node<'a>)> = Vec::with_capacity(entries.len());
        for (k, v) in entries {
            match at.get(&k) {
                Some(&i) => out[i].1 = v,
                None => {
                    at.insert(k.clone(), out.len());
                    out.push((k, v));
                }
            }
        }
        Self(out.into_boxed_slice())
    }
}

impl<'a> Node<'a> {
    pub fn as_object(&self) -> Option<&Object<'a>> {
        match self {
            Self::Object(o) => Some(o),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Node<'a>]> {
        match self {
            Self::Array(a) => Some(a),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Self::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn get(&self, key: &str) -> Option<&Node<'a>> {
        self.as_object()?.get(key)
    }

    /// The string at `key`, if there is one.
    pub fn str_at(&self, key: &str) -> Option<&str> {
        self.get(key)?.as_str()
    }

    /// What kind of node this is, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Null => "null",
            Self::Bool(_) => "a boolean",
            Self::Number(_) => "a number",
            Self::String(_) => "a string",
            Self::Array(_) => "an array",
            Self::Object(_) => "an object",
        }
    }

    /// About how long this node is as compact JSON (escapes not counted), without building
    /// it: for estimates of a schema's size.
    pub fn approx_json_len(&self) -> usize {
        match self {
            Self::Null => 4,
            Self::Bool(_) => 5,
            Self::Number(n) => match n.as_u64() {
                Some(u) => u.checked_ilog10().map_or(1, |d| d as usize + 1),
                None => 20,
            },
            Self::String(s) => s.len() + 2,
            Self::Array(a) => a
                .iter()
                .fold(1 + a.len().max(1), |n, v| n.saturating_add(v.approx_json_len())),
            Self::Object(o) => o.iter().fold(1 + o.len().max(1), |n, (k, v)| {
                n.saturating_add(k.len() + 3).saturating_add(v.approx_json_len())
            }),
        }
    }

    /// A `serde_json::Value` copy (examples, defaults, enum values).
    pub fn to_value(&self) -> Value {
        match self {
            Self::Null => Value::Null,
            Self::Bool(b) => Value::Bool(*b),
            Self::Number(n) => Value::Number(n.clone()),
            Self::String(s) => Value::String(s.to_string()),
            Self::Array(a) => Value::Array(a.iter().map(Node::to_value).collect()),
            Self::Object(o) => Value::Object(o.iter().map(|(k, v)| (k.to_owned(), v.to_value())).collect()),
        }
    }

    /// The node a local JSON pointer (`/components/schemas/Pet`, `~0` and `~1` escapes,
    /// percent-encoding as in a URI fragment) names.
    pub fn pointer(&self, pointer: &str) -> Option<&Node<'a>> {
        if pointer.is_empty() {
            return Some(self);
        }
        let rest = pointer.strip_prefix('/')?;
        let mut node = self;
        for raw in rest.split('/') {
            let token = unescape_token(raw);
            node = match node {
                Self::Object(o) => o.get(&token)?,
                Self::Array(a) => a.get(token.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(node)
    }
}

/// One reference token of a JSON pointer in a URI fragment: percent-decoded, then `~1` →
/// `/` and `~0` → `~`.
pub fn unescape_token(raw: &str) -> String {
    percent_decode(raw).replace("~1", "/").replace("~0", "~")
}

/// Decodes `%XX` escapes (a `$ref` is a URI reference); invalid escapes stay as written.
fn percent_decode(s: &str) -> Cow<'_, str> {
    if !s.contains('%') {
        return Cow::Borrowed(s);
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    match String::from_utf8(out) {
        Ok(s) => Cow::Owned(s),
        Err(_) => Cow::Borrowed(s),
    }
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

/// The document's syntax.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Json,
    Yaml,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Json => "JSON",
            Self::Yaml => "YAML",
        })
    }
}

/// Why a document could not be read, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub message: String,
    /// 1-based line and column, when the parser knows them.
    pub line: Option<usize>,
    pub column: Option<usize>,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, "line {l}, column {c}: {}", self.message),
            (Some(l), None) => write!(f, "line {l}: {}", self.message),
            _ => f.write_str(&self.message),
        }
    }
}

impl SyntaxError {
    fn at(message: impl Into<String>, line: usize, column: usize) -> Self {
        Self {
            message: message.into(),
            line: Some(line),
            column: Some(column),
        }
    }

    fn plain(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            line: None,
            column: None,
        }
    }
}

/// Loads a document, JSON or YAML, telling which from the content: text whose first
/// character is `{` or `[` is JSON (unless what follows is not a quoted key or a JSON value:
/// then it is YAML's flow style), anything else YAML. `max_nodes` bounds the nodes a YAML document may expand to
/// through aliases.
pub fn load(text: &str, max_nodes: usize) -> Result<(Node<'_>, Format), SyntaxError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let first = text.trim_start().chars().next();
    if first.is_none() {
        return Err(SyntaxError::plain("the document is empty"));
    }
    if let Some(at) = text.find('\0') {
        let line = text[..at].matches('\n').count() + 1;
        let column = text[..at].rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        return Err(SyntaxError::at("the document contains a NUL character", line, column));
    }
    if matches!(first, Some('{' | '[')) {
        let second = text.trim_start()[1..].trim_start().chars().next();
        let looks_like_json = match first {
            Some('{') => matches!(second, Some('"' | '}')),
            _ => {
                second.is_some_and(|c| matches!(c, '"' | '{' | '[' | ']' | '-' | 't' | 'f' | 'n') || c.is_ascii_digit())
            }
        };
        if looks_like_json {
            return load_json(text).map(|n| (n, Format::Json));
        }
    }
    load_yaml(text, max_nodes).map(|n| (n, Format::Yaml))
}

fn load_json(text: &str) -> Result<Node<'_>, SyntaxError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let node = Node::deserialize(&mut de).map_err(json_error)?;
    de.end().map_err(json_error)?;
    Ok(node)
}

fn json_error(e: serde_json::Error) -> SyntaxError {
    let message = e.to_string();
    // serde_json appends " at line L column C"; the position is given separately
    let message = match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message,
    };
    let message = if message.contains("recursion limit exceeded") {
        format!("nested deeper than {MAX_DEPTH} levels")
    } else {
        message
    };
    if e.line() == 0 {
        SyntaxError::plain(message)
    } else {
        SyntaxError::at(message, e.line(), e.column())
    }
}

impl<'de> Deserialize<'de> for Node<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NodeSeed(&mut Scratch::default()))
    }
}

/// The items and entries of the arrays and objects being read, on two stacks shared by the
/// whole document: a collection takes its own off the top when it ends, into a slice of
/// exactly its size. Building each in a `Vec` of its own grew it by doubling and then
/// copied it to shrink it, for every one of a large document's objects.
#[derive(Default)]
struct Scratch<'de> {
    items: Vec<Node<'de>>,
    entries: Vec<(Cow<'de, str>, Node<'de>)>,
}

struct NodeSeed<'s, 'de>(&'s mut Scratch<'de>);

impl<'de> de::DeserializeSeed<'de> for NodeSeed<'_, 'de> {
    type Value = Node<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Node<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for NodeSeed<'_, 'de> {
    type Value = Node<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Node<'de>, E> {
        Ok(Node::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Node<'de>, E> {
        Ok(Node::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Node<'de>, E> {
        Ok(Node::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Node<'de>, E> {
        Ok(Node::Number(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node<'de>, E> {
        Number::from_f64(v)
            .map(Node::Number)
            .ok_or_else(|| E::custom("a number that is not finite"))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Node<'de>, E> {
        Ok(Node::String(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Node<'de>, E> {
        Ok(Node::String(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Node<'de>, E> {
        Ok(Node::String(Cow::Owned(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node<'de>, A::Error> {
        let scratch = self.0;
        let start = scratch.items.len();
        while let Some(v) = seq.next_element_seed(NodeSeed(&mut *scratch))? {
            scratch.items.push(v);
        }
        Ok(Node::Array(scratch.items.drain(start..).collect()))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node<'de>, A::Error> {
        let scratch = self.0;
        let start = scratch.entries.len();
        while let Some(Key(k)) = map.next_key()? {
            let v = map.next_value_seed(NodeSeed(&mut *scratch))?;
            scratch.entries.push((k, v));
        }
        Ok(Node::Object(Object::from_entries(
            scratch.entries.drain(start..).collect(),
        )))
    }
}

/// An object key, borrowed from the input when it has no escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

/// A collection being built from YAML events.
enum Open<'a> {
    Seq {
        items: Vec<Node<'a>>,
        anchor: usize,
        size: Size,
    },
    Map {
        /// Entries in document order; repeated keys are resolved when the mapping ends.
        map: Vec<(Cow<'a, str>, Node<'a>)>,
        key: Option<Cow<'a, str>>,
        anchor: usize,
        size: Size,
        /// `<<` merge sources, applied when the mapping ends (its own keys win).
        merges: Vec<Object<'a>>,
    },
}

/// What a YAML node holds once its aliases are expanded: nodes, text bytes (scalars and
/// keys) and levels of nesting. An alias costs its anchor's whole size again, so all three
/// are bounded for the expanded document, not only for its text.
#[derive(Clone, Copy)]
struct Size {
    nodes: usize,
    bytes: usize,
    depth: usize,
}

impl Size {
    const ONE: Size = Size {
        nodes: 1,
        bytes: 0,
        depth: 1,
    };

    fn add_child(&mut self, child: Size) {
        self.nodes = self.nodes.saturating_add(child.nodes);
        self.bytes = self.bytes.saturating_add(child.bytes);
        self.depth = self.depth.max(child.depth.saturating_add(1));
    }
}

/// The text an alias-expanded YAML document may hold, with the nodes its aliases copy
/// counted at [`NODE_BYTES`] each: four times its own length, at least 16 MiB (an anchor
/// reused a few times is common; an anchor reused ten thousand times is a bomb).
fn max_expanded_bytes_for(len: usize) -> usize {
    len.saturating_mul(4).max(16 << 20)
}

/// What one node copied by an alias costs in memory, as counted against
/// [`max_expanded_bytes_for`].
const NODE_BYTES: usize = std::mem::size_of::<Node<'static>>();

fn load_yaml(text: &str, max_nodes: usize) -> Result<Node<'_>, SyntaxError> {
    let mut stack: Vec<Open<'_>> = Vec::new();
    // anchor id → (node, what it expands to)
    let mut anchors: HashMap<usize, (Node<'_>, Size)> = HashMap::new();
    let mut total_nodes = 0usize;
    let mut total_bytes = 0usize;
    let max_bytes = max_expanded_bytes_for(text.len());
    let mut root: Option<Node<'_>> = None;
    let mut documents = 0;

    for item in Parser::new_from_str(text) {
        let (event, span) = item.map_err(|e| {
            let m = e.marker();
            SyntaxError::at(e.info().to_owned(), m.line(), m.col() + 1)
        })?;
        let (line, col) = (span.start.line(), span.start.col() + 1);
        // a finished node, what it holds and its anchor
        let finished: Option<(Node<'_>, Size, usize)> = match event {
            Event::StreamStart | Event::StreamEnd | Event::Nothing | Event::DocumentEnd => None,
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return Err(SyntaxError::at(
                        "the file holds more than one YAML document; import one at a time",
                        line,
                        col,
                    ));
                }
                None
            }
            Event::Alias(id) => {
                let Some((node, size)) = anchors.get(&id) else {
                    return Err(SyntaxError::at("an alias refers to an unknown anchor", line, col));
                };
                total_nodes = total_nodes.saturating_add(size.nodes);
                // an alias's copy costs its text and its nodes: a bomb of empty arrays has
                // no text at all, and each node it copies is memory all the same
                total_bytes = total_bytes
                    .saturating_add(size.bytes)
                    .saturating_add(size.nodes.saturating_mul(NODE_BYTES));
                if total_nodes > max_nodes {
                    return Err(SyntaxError::at(
                        format!("aliases expand the document beyond {max_nodes} nodes; refusing (an alias bomb?)"),
                        line,
                        col,
                    ));
                }
                if total_bytes > max_bytes {
                    return Err(SyntaxError::at(
                        format!(
                            "aliases expand the document beyond {max_bytes} bytes of text and nodes; refusing (an alias bomb?)"
                        ),
                        line,
                        col,
                    ));
                }
                if stack.len().saturating_add(size.depth) > MAX_DEPTH {
                    return Err(SyntaxError::at(
                        format!("aliases nest the document deeper than {MAX_DEPTH} levels"),
                        line,
                        col,
                    ));
                }
                Some((node.clone(), *size, 0))
            }
            Event::Scalar(value, style, anchor, tag) => {
                total_nodes += 1;
                total_bytes = total_bytes.saturating_add(value.len());
                let size = Size {
                    nodes: 1,
                    bytes: value.len(),
                    depth: 0,
                };
                let tag = tag.map(|t| t.suffix.clone());
                let node = scalar(value, style, tag.as_deref());
                Some((node, size, anchor))
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                total_nodes += 1;
                if stack.len() >= MAX_DEPTH {
                    return Err(SyntaxError::at(
                        format!("nested deeper than {MAX_DEPTH} levels"),
                        line,
                        col,
                    ));
                }
                stack.push(if matches!(event, Event::SequenceStart(..)) {
                    Open::Seq {
                        items: Vec::new(),
                        anchor,
                        size: Size::ONE,
                    }
                } else {
                    Open::Map {
                        map: Vec::new(),
                        key: None,
                        anchor,
                        size: Size::ONE,
                        merges: Vec::new(),
                    }
                });
                None
            }
            Event::SequenceEnd => match stack.pop() {
                Some(Open::Seq { items, anchor, size }) => Some((Node::Array(items.into_boxed_slice()), size, anchor)),
                _ => return Err(SyntaxError::at("unbalanced sequence", line, col)),
            },
            Event::MappingEnd => match stack.pop() {
                Some(Open::Map {
                    map,
                    anchor,
                    size,
                    merges,
                    ..
                }) => {
                    let mut map = Object::from_entries(map);
                    if !merges.is_empty() {
                        // merged keys come after the mapping's own, which win
                        let mut present: std::collections::HashSet<String> =
                            map.0.iter().map(|(k, _)| k.to_string()).collect();
                        let mut entries = std::mem::take(&mut map.0).into_vec();
                        for source in merges {
                            for (k, v) in source.0 {
                                if present.insert(k.to_string()) {
                                    entries.push((k, v));
                                }
                            }
                        }
                        map.0 = entries.into_boxed_slice();
                    }
                    Some((Node::Object(map), size, anchor))
                }
                _ => return Err(SyntaxError::at("unbalanced mapping", line, col)),
            },
        };
        if total_nodes > max_nodes {
            return Err(SyntaxError::at(
                format!("the document has more than {max_nodes} nodes"),
                line,
                col,
            ));
        }
        let Some((node, count, anchor)) = finished else {
            continue;
        };
        if anchor != 0 {
            anchors.insert(anchor, (node.clone(), count));
        }
        match stack.last_mut() {
            None => root = Some(node),
            Some(Open::Seq { items, size, .. }) => {
                size.add_child(count);
                items.push(node);
            }
            Some(Open::Map {
                map, key, size, merges, ..
            }) => {
                // a key counts as the scalar it was
                size.add_child(count);
                match key.take() {
                    None => {
                        *key = Some(match node {
                            Node::String(s) => s,
                            Node::Null => Cow::Borrowed("null"),
                            Node::Bool(b) => Cow::Owned(b.to_string()),
                            Node::Number(n) => Cow::Owned(n.to_string()),
                            Node::Array(_) | Node::Object(_) => {
                                return Err(SyntaxError::at(
                                    "a mapping key is itself a mapping or sequence; keys must be plain values",
                                    line,
                                    col,
                                ));
                            }
                        });
                    }
                    Some(k) if k == "<<" => match node {
                        Node::Object(o) => merges.push(o),
                        Node::Array(items) => {
                            for item in items {
                                if let Node::Object(o) = item {
                                    merges.push(o);
                                }
                            }
                        }
                        other => map.push((k, other)),
                    },
                    Some(k) => map.push((k, node)),
                }
            }
        }
    }
    root.ok_or_else(|| SyntaxError::plain("the document is empty"))
}

/// A YAML scalar as a node, by the YAML 1.2 core schema: plain `null`/`~`/empty, `true`,
/// `false`, integers (decimal, `0o`, `0x`) and floats are typed; quoted and block scalars
/// are strings; `!!str`, `!!int`, `!!float`, `!!bool`, `!!null` tags are honoured.
fn scalar<'a>(value: Cow<'a, str>, style: ScalarStyle, tag: Option<&str>) -> Node<'a> {
    match tag {
        Some("str") => return Node::String(value),
        Some("null") => return Node::Null,
        Some("bool") => {
            if let Some(b) = bool_of(&value) {
                return Node::Bool(b);
            }
        }
        Some("int" | "float") => {
            if let Some(n) = number_of(&value) {
                return Node::Number(n);
            }
        }
        _ => {}
    }
    if style != ScalarStyle::Plain || tag.is_some() {
        return Node::String(value);
    }
    match value.as_ref() {
        "" | "~" | "null" | "Null" | "NULL" => return Node::Null,
        _ => {}
    }
    if let Some(b) = bool_of(&value) {
        return Node::Bool(b);
    }
    if let Some(n) = number_of(&value) {
        return Node::Number(n);
    }
    Node::String(value)
}

fn bool_of(s: &str) -> Option<bool> {
    match s {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

fn number_of(s: &str) -> Option<Number> {
    let b = s.as_bytes();
    let first = *b.first()?;
    if !(first.is_ascii_digit() || matches!(first, b'-' | b'+' | b'.')) {
        return None;
    }
    if let Some(oct) = s.strip_prefix("0o") {
        return u64::from_str_radix(oct, 8).ok().map(Number::from);
    }
    if let Some(hex) = s.strip_prefix("0x") {
        return u64::from_str_radix(hex, 16).ok().map(Number::from);
    }
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    if !digits.is_empty() && digits.bytes().all(|c| c.is_ascii_digit()) {
        if let Ok(i) = s.parse::<i64>() {
            return Some(i.into());
        }
        if let Ok(u) = s.parse::<u64>() {
            return Some(u.into());
        }
    }
    // YAML 1.2 floats: [-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?
    let float_like = digits.bytes().any(|c| c.is_ascii_digit())
        && digits
            .bytes()
            .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'-' | b'+'));
    if float_like && let Ok(f) = s.parse::<f64>() {
        return Number::from_f64(f);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(s: &str) -> Node<'_> {
        load(s, 10_000).unwrap().0
    }

    #[test]
    fn json_strings_are_borrowed_when_unescaped() {
        let (node, format) = load(
            r#"{"a": "plain", "b\u0041": "esc\"aped", "n": [1, -2, 3.5, true, null]}"#,
            10,
        )
        .unwrap();
        assert_eq!(format, Format::Json);
        let o = node.as_object().unwrap();
        assert!(matches!(o.0[0].0, Cow::Borrowed("a")));
        assert!(matches!(o.get("a"), Some(Node::String(Cow::Borrowed("plain")))));
        assert_eq!(o.0[1].0, "bA");
        assert_eq!(
            node.get("n").unwrap().to_value(),
            serde_json::json!([1, -2, 3.5, true, null])
        );
    }

    #[test]
    fn repeated_keys_keep_the_last_value() {
        let small = load(r#"{"a": 1, "b": 2, "a": 3}"#, 10).unwrap().0;
        assert_eq!(small.to_value(), serde_json::json!({"a": 3, "b": 2}));
        let keys: Vec<String> = (0..20).map(|i| format!("\"k{i}\": {i}")).collect();
        let big = format!("{{{}, \"k3\": 99}}", keys.join(", "));
        let node = load(&big, 100).unwrap().0;
        assert_eq!(node.as_object().unwrap().len(), 20);
        assert_eq!(node.get("k3").unwrap().to_value(), serde_json::json!(99));
    }

    #[test]
    fn yaml_scalars_follow_the_core_schema() {
        let n = yaml(
            "a: 1\nb: '1'\nc: 0x1F\nd: 1.5e3\ne: ~\nf: yes\ng: True\nh: !!str 12\n200: ok\ni: -7\nj: .5\nk: 1.2.3\n",
        );
        assert_eq!(
            n.to_value(),
            serde_json::json!({"a": 1, "b": "1", "c": 31, "d": 1500.0, "e": null, "f": "yes", "g": true,
                "h": "12", "200": "ok", "i": -7, "j": 0.5, "k": "1.2.3"})
        );
    }

    #[test]
    fn anchors_aliases_and_merge_keys() {
        let n = yaml("base: &b {type: string, x: 1}\nuse: *b\nmerged:\n  <<: *b\n  x: 2\n");
        assert_eq!(
            n.get("use").unwrap().to_value(),
            serde_json::json!({"type": "string", "x": 1})
        );
        assert_eq!(
            n.get("merged").unwrap().to_value(),
            serde_json::json!({"x": 2, "type": "string"})
        );
    }

    #[test]
    fn alias_bombs_are_refused() {
        let mut doc = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let p = i - 1;
            doc.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let err = load(&doc, 1_000_000).unwrap_err();
        assert!(err.message.contains("alias"), "{err}");
        assert!(err.line.is_some());
    }

    #[test]
    fn alias_bombs_of_text_are_refused() {
        // few nodes, but a 100 KB string copied ten thousand times: a gigabyte once expanded
        let long = "y".repeat(100_000);
        let mut doc = format!("s0: &s0 \"{long}\"\n");
        for i in 1..5 {
            let p = i - 1;
            doc.push_str(&format!(
                "s{i}: &s{i} [*s{p}, *s{p}, *s{p}, *s{p}, *s{p}, *s{p}, *s{p}, *s{p}, *s{p}, *s{p}]\n"
            ));
        }
        let err = load(&doc, 1_000_000).unwrap_err();
        assert!(err.message.contains("bytes of text"), "{err}");
        // a string anchor reused a few times is fine
        let ok = format!("a: &a \"{long}\"\nb: *a\nc: [*a, *a]\n");
        let (node, _) = load(&ok, 1_000_000).unwrap();
        assert_eq!(node.get("c").and_then(Node::as_array).map(<[_]>::len), Some(2));
    }

    #[test]
    fn alias_bombs_of_empty_nodes_are_refused() {
        // no text at all, and under the node cap a large (padded) document is allowed:
        // ten million empty arrays would still be gigabytes of memory
        let empties = vec!["[]"; 1000].join(", ");
        let thousand = vec!["*a0"; 1000].join(", ");
        let ten = ["*a1"; 10].join(", ");
        let doc = format!("a0: &a0 [{empties}]\na1: &a1 [{thousand}]\na2: [{ten}]\n");
        let err = load(&doc, 200_000_000).unwrap_err();
        assert!(err.message.contains("bytes of text and nodes"), "{err}");
        // an array of empties reused a few times is fine
        let ok = format!("a0: &a0 [{empties}]\nb: [*a0, *a0, *a0]\n");
        assert!(load(&ok, 1_000_000).is_ok());
    }

    #[test]
    fn aliases_cannot_nest_past_the_depth_cap() {
        // each anchor holds the one before, two levels deeper: 200 anchors nest 400 levels
        let mut doc = String::from("a0: &a0 [x]\n");
        for i in 1..200 {
            doc.push_str(&format!("a{i}: &a{i} [[*a{}]]\n", i - 1));
        }
        let err = load(&doc, 1_000_000).unwrap_err();
        assert!(err.message.contains("deeper than"), "{err}");
        // shallow reuse passes
        let (node, _) = load("a: &a [[x]]\nb: [*a, *a]\n", 1_000_000).unwrap();
        assert!(node.get("b").is_some());
    }

    #[test]
    fn depth_is_capped_in_both_syntaxes() {
        let deep_json = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let err = load(&deep_json, 1_000_000).unwrap_err();
        assert!(err.message.contains("deeper than 128"), "{err}");
        let deep_yaml = format!("a: {}1{}", "[".repeat(200), "]".repeat(200));
        let err = load(&deep_yaml, 1_000_000).unwrap_err();
        assert!(err.message.contains("deeper than 128"), "{err}");
        let ok_yaml = format!("a: {}1{}", "[".repeat(100), "]".repeat(100));
        assert!(load(&ok_yaml, 1_000_000).is_ok());
    }

    #[test]
    fn errors_say_where() {
        let err = load("{\n  \"a\": 1,\n  \"b\": }\n", 100).unwrap_err();
        assert_eq!((err.line, err.column), (Some(3), Some(8)), "{err}");
        let err = load("a: 1\nb: x\0y\n", 100).unwrap_err();
        assert_eq!((err.line, err.column), (Some(2), Some(5)), "{err}");
        let err = load("a: 1\nb: [1, 2\nc: 3\n", 100).unwrap_err();
        assert!(err.line.is_some(), "{err}");
        assert!(load("   ", 100).is_err());
        // YAML's flow style is still YAML
        assert_eq!(load("{openapi: 3.0.0}", 100).unwrap().1, Format::Yaml);
        assert!(
            load("a: 1\n---\nb: 2\n", 100)
                .unwrap_err()
                .message
                .contains("more than one")
        );
        assert!(
            load("? [a]\n: 1\n", 100)
                .unwrap_err()
                .message
                .contains("keys must be plain")
        );
    }

    #[test]
    fn pointers_unescape() {
        let n = yaml("paths:\n  /a~b/{id}:\n    x: 1\nlist: [10, 20]\n");
        assert_eq!(
            n.pointer("/paths/~1a~0b~1{id}/x").unwrap().to_value(),
            serde_json::json!(1)
        );
        assert_eq!(
            n.pointer("/paths/~1a~0b~1%7Bid%7D/x").unwrap().to_value(),
            serde_json::json!(1)
        );
        assert_eq!(n.pointer("/list/1").unwrap().to_value(), serde_json::json!(20));
        assert!(n.pointer("/list/2").is_none());
        assert!(n.pointer("nope").is_none());
    }
}
