//! The JSON the schema converter builds: a tree made to be written out once. Objects are
//! vectors of entries in order (no hash table: a converted schema object has a few dozen
//! keys at most, and the keys of a `properties` map come from one document object, where
//! they are already unique), and strings are borrowed from the document wherever they can
//! be. Written out, it is byte for byte what the same `serde_json::Value` (ordered maps)
//! would write.
//!
//! GitHub's description expands into 6 MB of schemas, most of them response schemas that
//! are only ever written out: building them as `serde_json::Value`s (a hashed, ordered map
//! per object, every key and string copied) took about half of an import's time.

use std::borrow::Cow;

use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::{Map, Number, Value};

use crate::doc::Node;

/// A JSON value (see the module's documentation).
#[derive(Debug, Clone, PartialEq)]
pub enum Json<'d> {
    Null,
    Bool(bool),
    Number(Number),
    String(Cow<'d, str>),
    Array(Vec<Json<'d>>),
    Object(Obj<'d>),
}

/// A JSON object: its entries, in order, each key once.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Obj<'d>(Vec<(Cow<'d, str>, Json<'d>)>);

impl<'d> Obj<'d> {
    pub fn with_capacity(n: usize) -> Self {
        Self(Vec::with_capacity(n))
    }

    /// Sets `key` to `value`: in its place when the key is there, at the end otherwise (as
    /// serde_json's ordered map does). Looks the key up by scanning, so only for objects
    /// whose keys are few (a schema object's keywords); see [`Obj::push_new`].
    pub fn insert(&mut self, key: impl Into<Cow<'d, str>>, value: Json<'d>) {
        let key = key.into();
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => *v = value,
            None => self.0.push((key, value)),
        }
    }

    /// Adds an entry whose key the object does not have yet (the keys of one document
    /// object are unique): no look-up, whatever the object's size.
    pub fn push_new(&mut self, key: impl Into<Cow<'d, str>>, value: Json<'d>) {
        self.0.push((key.into(), value));
    }

    pub fn get(&self, key: &str) -> Option<&Json<'d>> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Json<'d>> {
        self.0.iter_mut().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Removes `key`, moving the last entry into its place: what serde_json's
    /// `Map::remove` does with ordered maps (`swap_remove`), so the order written out is
    /// the same.
    pub fn remove(&mut self, key: &str) -> Option<Json<'d>> {
        let i = self.0.iter().position(|(k, _)| k == key)?;
        Some(self.0.swap_remove(i).1)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }
}

impl<'d> IntoIterator for Obj<'d> {
    type Item = (Cow<'d, str>, Json<'d>);
    type IntoIter = std::vec::IntoIter<(Cow<'d, str>, Json<'d>)>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'d> Json<'d> {
    /// `{}`
    pub fn empty() -> Self {
        Self::Object(Obj::default())
    }

    /// A string that lives as long as the program (keyword values, fixed descriptions).
    pub fn str(s: &'static str) -> Self {
        Self::String(Cow::Borrowed(s))
    }

    /// An object of the given entries (keys distinct).
    pub fn object<const N: usize>(entries: [(&'static str, Json<'d>); N]) -> Self {
        let mut o = Obj::with_capacity(N);
        for (k, v) in entries {
            o.push_new(k, v);
        }
        Self::Object(o)
    }

    /// A copy of a document node, its strings borrowed.
    pub fn from_node<'a: 'd>(node: &'d Node<'a>) -> Self {
        match node {
            Node::Null => Self::Null,
            Node::Bool(b) => Self::Bool(*b),
            Node::Number(n) => Self::Number(n.clone()),
            Node::String(s) => Self::String(Cow::Borrowed(s.as_ref())),
            Node::Array(items) => Self::Array(items.iter().map(Json::from_node).collect()),
            Node::Object(o) => {
                let mut out = Obj::with_capacity(o.len());
                for (k, v) in o.iter() {
                    out.push_new(k, Json::from_node(v));
                }
                Self::Object(out)
            }
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(s) => Some(s),
            _ => None,
        }
    }

    /// Whether this is the string `s`.
    pub fn is_str(&self, s: &str) -> bool {
        self.as_str() == Some(s)
    }

    /// The length of this value written as compact JSON, counted without writing it.
    pub fn written_len(&self) -> usize {
        use chatterfly_domain::operation::{number_len, string_len};
        match self {
            Self::Null => 4,
            Self::Bool(true) => 4,
            Self::Bool(false) => 5,
            Self::Number(n) => number_len(n),
            Self::String(s) => string_len(s),
            Self::Array(items) => items.iter().fold(2 + items.len().saturating_sub(1), |n, v| {
                n.saturating_add(v.written_len())
            }),
            // braces, the commas between entries, a colon per entry
            Self::Object(o) => o.0.iter().fold(2 + o.len().saturating_sub(1) + o.len(), |n, (k, v)| {
                n.saturating_add(string_len(k)).saturating_add(v.written_len())
            }),
        }
    }

    /// Writes this value as compact JSON: the bytes serde_json writes for it, with every
    /// string that needs no escape (nearly all of a schema's) copied whole rather than
    /// looked at byte by byte.
    pub fn write_to(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        match self {
            Self::Null => out.extend_from_slice(b"null"),
            Self::Bool(true) => out.extend_from_slice(b"true"),
            Self::Bool(false) => out.extend_from_slice(b"false"),
            Self::Number(n) => serde_json::to_writer(&mut *out, n)?,
            Self::String(s) => write_str(out, s)?,
            Self::Array(items) => {
                out.push(b'[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    v.write_to(out)?;
                }
                out.push(b']');
            }
            Self::Object(o) => {
                out.push(b'{');
                for (i, (k, v)) in o.0.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write_str(out, k)?;
                    out.push(b':');
                    v.write_to(out)?;
                }
                out.push(b'}');
            }
        }
        Ok(())
    }

    /// The same value as a `serde_json::Value`.
    pub fn into_value(self) -> Value {
        match self {
            Self::Null => Value::Null,
            Self::Bool(b) => Value::Bool(b),
            Self::Number(n) => Value::Number(n),
            Self::String(s) => Value::String(s.into_owned()),
            Self::Array(items) => Value::Array(items.into_iter().map(Json::into_value).collect()),
            Self::Object(o) => {
                let mut map = Map::with_capacity(o.len());
                for (k, v) in o {
                    map.insert(k.into_owned(), v.into_value());
                }
                Value::Object(map)
            }
        }
    }
}

impl Json<'_> {
    /// The same value, owning its strings.
    pub fn into_owned(self) -> Json<'static> {
        match self {
            Self::Null => Json::Null,
            Self::Bool(b) => Json::Bool(b),
            Self::Number(n) => Json::Number(n),
            Self::String(s) => Json::String(Cow::Owned(s.into_owned())),
            Self::Array(items) => Json::Array(items.into_iter().map(Json::into_owned).collect()),
            Self::Object(o) => Json::Object(Obj(o
                .into_iter()
                .map(|(k, v)| (Cow::Owned(k.into_owned()), v.into_owned()))
                .collect())),
        }
    }
}

fn write_str(out: &mut Vec<u8>, s: &str) -> serde_json::Result<()> {
    if chatterfly_domain::operation::needs_escape(s) {
        return serde_json::to_writer(out, s);
    }
    out.reserve(s.len() + 2);
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
    Ok(())
}

impl Serialize for Json<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Null => serializer.serialize_unit(),
            Self::Bool(b) => serializer.serialize_bool(*b),
            Self::Number(n) => n.serialize(serializer),
            Self::String(s) => serializer.serialize_str(s),
            Self::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for v in items {
                    seq.serialize_element(v)?;
                }
                seq.end()
            }
            Self::Object(o) => {
                let mut map = serializer.serialize_map(Some(o.len()))?;
                for (k, v) in &o.0 {
                    map.serialize_entry(k.as_ref(), v)?;
                }
                map.end()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Json<'static> {
        let mut o = Obj::default();
        o.push_new("type", Json::str("object"));
        o.push_new("minimum", Json::Number(1.into()));
        o.push_new("title", Json::str("a \"quoted\"\n\u{1} title é"));
        o.push_new("big", Json::Number(Number::from_f64(1.5e300).unwrap()));
        o.push_new("neg", Json::Number((-42).into()));
        o.push_new(
            "list",
            Json::Array(vec![
                Json::Null,
                Json::Bool(true),
                Json::Bool(false),
                Json::empty(),
                Json::Array(vec![]),
            ]),
        );
        o.insert("type", Json::str("string"));
        o.insert("extra", Json::object([("k", Json::str("v"))]));
        Json::Object(o)
    }

    #[test]
    fn written_as_serde_json_writes_the_same_value() {
        let j = sample();
        let v = j.clone().into_value();
        let text = serde_json::to_string(&j).unwrap();
        assert_eq!(text, serde_json::to_string(&v).unwrap());
        assert_eq!(j.written_len(), text.len());
        let mut written = Vec::new();
        j.write_to(&mut written).unwrap();
        assert_eq!(String::from_utf8(written).unwrap(), text);
        assert_eq!(serde_json::to_string(&j.clone().into_owned()).unwrap(), text);
        // insert kept `type` in its place
        assert!(text.starts_with(r#"{"type":"string","minimum":1"#), "{text}");
    }

    /// Any tree: written by `write_to`, through serde, and as the `Value` it becomes, the
    /// same bytes; `written_len` is their length.
    fn tree() -> impl proptest::strategy::Strategy<Value = Json<'static>> {
        use proptest::prelude::*;
        let text = "[\\x00-\\x1f\"\\\\\\x7f a-z\u{e9}\u{20ac}\u{2028}\u{1f600}]{0,24}";
        let leaf = prop_oneof![
            Just(Json::Null),
            any::<bool>().prop_map(Json::Bool),
            any::<i64>().prop_map(|n| Json::Number(n.into())),
            any::<u64>().prop_map(|n| Json::Number(n.into())),
            any::<f64>().prop_filter_map("finite", |f| Number::from_f64(f).map(Json::Number)),
            text.prop_map(|s| Json::String(s.into())),
        ];
        leaf.prop_recursive(4, 64, 6, move |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Json::Array),
                proptest::collection::vec((text, inner), 0..6).prop_map(|entries| {
                    let mut o = Obj::default();
                    for (k, v) in entries {
                        o.insert(k, v);
                    }
                    Json::Object(o)
                }),
            ]
        })
    }

    proptest::proptest! {
        #[test]
        fn every_writer_writes_the_same_bytes(j in tree()) {
            let text = serde_json::to_string(&j).unwrap();
            let mut written = Vec::new();
            j.write_to(&mut written).unwrap();
            proptest::prop_assert_eq!(&String::from_utf8(written).unwrap(), &text);
            proptest::prop_assert_eq!(j.written_len(), text.len());
            proptest::prop_assert_eq!(serde_json::to_string(&j.clone().into_value()).unwrap(), text);
        }
    }

    #[test]
    fn remove_moves_the_last_entry_into_place_as_serde_json_does() {
        let mut o = Obj::default();
        let mut m = Map::new();
        for k in ["a", "minimum", "b", "c"] {
            o.push_new(k, Json::str("x"));
            m.insert(k.into(), json!("x"));
        }
        assert!(o.remove("minimum").is_some());
        assert!(m.remove("minimum").is_some());
        o.insert("exclusiveMinimum", Json::Null);
        m.insert("exclusiveMinimum".into(), Value::Null);
        assert_eq!(
            serde_json::to_string(&Json::Object(o)).unwrap(),
            serde_json::to_string(&Value::Object(m)).unwrap()
        );
    }
}
