//! Redaction of credentials in what comes back: every credential value of the call, in the
//! forms an upstream might echo it (those of `chatterfly_egress::forms`, the same the log
//! writer hides, and the base64 Basic pair), is replaced by `[REDACTED]` in the headers
//! (names and values) and the body before anyone sees them, and again in the strings of a
//! parsed JSON body (where escapes could hide one).

use std::borrow::Cow;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chatterfly_domain::{AuthType, SecretFields};
use chatterfly_vault::ExposeSecret;
use http::HeaderMap;
use serde_json::{Map, Value, json};

pub const MARK: &str = "[REDACTED]";

/// The needles to hide, longest first. While it lives, the secrets are also listed as in
/// play, so that no log line (a dependency's included) shows them.
pub struct Redactor {
    /// A searcher per needle, built once per redactor (building one took longer than
    /// searching a short text with it, and every header and string of an answer is one).
    needles: Vec<memchr::memmem::Finder<'static>>,
    _in_play: chatterfly_egress::in_play::SecretGuard,
}

impl Redactor {
    pub fn for_secrets(t: AuthType, secrets: &SecretFields) -> Self {
        let mut values: Vec<String> = secrets.0.values().map(|v| v.expose_secret().to_owned()).collect();
        if t == AuthType::Basic
            && let (Some(u), Some(p)) = (secrets.get("username"), secrets.get("password"))
        {
            values.push(format!("{}:{}", u.expose_secret(), p.expose_secret()));
        }
        let mut extra = Vec::new();
        if let Some(token) = secrets.get("token") {
            // what an Authorization header carried, base64-encoded whole (as is, it shows as
            // `Bearer [REDACTED]`)
            let header = format!("Bearer {}", token.expose_secret());
            extra.push(STANDARD.encode(&header));
            extra.extend(chatterfly_egress::forms::base64_cores(header.as_bytes()));
        }
        Self::build(values, extra)
    }

    /// Hides each of `values` (a service key, say) in every form below.
    pub fn for_values(values: Vec<String>) -> Self {
        Self::build(values, Vec::new())
    }

    /// `values` in every form below, and `extra` needles as they are.
    fn build(values: Vec<String>, extra: Vec<String>) -> Self {
        let mut needles = extra;
        for v in &values {
            needles.extend(chatterfly_egress::forms::secret_forms(v));
        }
        needles.retain(|n| n.len() >= 4);
        needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
        needles.dedup();
        let needles = needles
            .iter()
            .map(|n| memchr::memmem::Finder::new(n.as_bytes()).into_owned())
            .collect();
        let _in_play = chatterfly_egress::in_play::hold(values.iter().map(String::as_str));
        Self { needles, _in_play }
    }

    pub fn text(&self, s: &str) -> String {
        self.text_cow(s).into_owned()
    }

    /// `s` redacted; borrowed (no copy) when nothing in it had to go, the usual case.
    fn text_cow<'s>(&self, s: &'s str) -> Cow<'s, str> {
        match self.bytes(s.as_bytes()) {
            Cow::Borrowed(_) => Cow::Borrowed(s),
            // a needle is whole UTF-8 and so is the mark: what is left is still UTF-8
            Cow::Owned(b) => {
                Cow::Owned(String::from_utf8(b).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
            }
        }
    }

    /// Every needle, longest first, replaced by the mark where it occurs (leftmost, not
    /// overlapping), then every percent-encoded word that holds one once decoded. One vectorized search per needle over the
    /// input; a copy only when something is found.
    fn bytes<'b>(&self, b: &'b [u8]) -> Cow<'b, [u8]> {
        let mut out = Cow::Borrowed(b);
        for finder in &self.needles {
            let needle = finder.needle();
            if needle.is_empty() || out.len() < needle.len() {
                continue;
            }
            let mut result: Option<Vec<u8>> = None;
            let mut last = 0;
            for at in finder.find_iter(&out) {
                let r = result.get_or_insert_with(|| Vec::with_capacity(out.len()));
                r.extend_from_slice(&out[last..at]);
                r.extend_from_slice(MARK.as_bytes());
                last = at + needle.len();
            }
            if let Some(mut r) = result {
                r.extend_from_slice(&out[last..]);
                out = Cow::Owned(r);
            }
        }
        // percent-encoded in any spelling (hex case, which bytes, how many times over):
        // each word with a `%` is decoded and searched again
        let holds = |decoded: &[u8]| self.needles.iter().any(|f| f.find(decoded).is_some());
        if let Some(clean) = chatterfly_egress::forms::redact_encoded_words(&out, MARK, holds) {
            out = Cow::Owned(clean);
        }
        out
    }

    /// Every string (and key) of a JSON value, redacted.
    pub fn value(&self, mut v: Value) -> Value {
        self.scrub(&mut v);
        v
    }

    /// Redacts in place: only what held a secret is rewritten (an object only when one of
    /// its keys did), so a large answer with nothing to hide is not copied.
    fn scrub(&self, v: &mut Value) {
        match v {
            Value::String(s) => {
                if let Cow::Owned(clean) = self.text_cow(s) {
                    *s = clean;
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|v| self.scrub(v)),
            Value::Object(m) => {
                if m.keys().any(|k| matches!(self.text_cow(k), Cow::Owned(_))) {
                    *m = std::mem::take(m)
                        .into_iter()
                        .map(|(k, mut v)| {
                            self.scrub(&mut v);
                            (self.text(&k), v)
                        })
                        .collect();
                } else {
                    m.values_mut().for_each(|v| self.scrub(v));
                }
            }
            _ => {}
        }
    }

    /// `{"status", "headers", "body"}`: the body parsed as JSON when it is JSON (and not so
    /// dense that parsing would cost many times its size), text when it is UTF-8, else
    /// `{"base64": …}`.
    pub fn output(&self, status: u16, headers: &HeaderMap, body: &[u8]) -> Value {
        let mut h = Map::new();
        for (name, value) in headers {
            let text = self.text(&String::from_utf8_lossy(value.as_bytes()));
            // a header's name can echo a secret too (`x-<key>: 1`)
            let name = self.text_cow(name.as_str());
            match h.get_mut(name.as_ref()) {
                Some(Value::String(existing)) => {
                    existing.push_str(", ");
                    existing.push_str(&text);
                }
                _ => {
                    h.insert(name.into_owned(), Value::String(text));
                }
            }
        }
        let is_json = headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.contains("json"));
        let clean = self.bytes(body).into_owned();
        let body = match String::from_utf8(clean) {
            // a dense answer (`[0,0,0,…]`) would take many times its size parsed: as text
            Ok(text) => match (is_json && !chatterfly_domain::density::too_dense(text.as_bytes()))
                .then(|| serde_json::from_str::<Value>(&text))
            {
                Some(Ok(v)) => self.value(v),
                // JSON kept as text: its strings were not decoded, so a secret spelled with
                // `\uXXXX` escapes (all or some of its characters) would pass; written the
                // one way the forms know, and searched again
                _ if is_json => match chatterfly_egress::forms::canonical_json_escapes(&text) {
                    Cow::Borrowed(_) => Value::String(text),
                    Cow::Owned(canonical) => Value::String(self.text(&canonical)),
                },
                _ => Value::String(text),
            },
            Err(e) => json!({"base64": STANDARD.encode(e.into_bytes())}),
        };
        json!({"status": status, "headers": Value::Object(h), "body": body})
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chatterfly_vault::Secret;

    use super::*;

    fn secrets(pairs: &[(&str, &str)]) -> SecretFields {
        SecretFields(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), Secret::from((*v).to_owned())))
                .collect::<BTreeMap<_, _>>(),
        )
    }

    #[test]
    fn every_echoed_form_is_hidden() {
        let r = Redactor::for_secrets(
            AuthType::Basic,
            &secrets(&[("username", "alice"), ("password", "p@ss w/rd+1")]),
        );
        let pair = STANDARD.encode("alice:p@ss w/rd+1");
        let mut headers = HeaderMap::new();
        headers.insert("content-type", "application/json".parse().unwrap());
        headers.insert("x-echo", format!("Basic {pair}").parse().unwrap());
        let body = format!(
            r#"{{"auth": "Basic {pair}", "url": "https://x/?p=p%40ss%20w%2Frd%2B1&f=p%40ss+w%2Frd%2B1", "user": "alice", "esc": "p@ss w\/rd+1", "u": "\u0061lice"}}"#
        );
        let out = r.output(200, &headers, body.as_bytes());
        let text = out.to_string();
        for leaked in ["alice", "p@ss", &pair, "p%40ss", "w/rd"] {
            assert!(!text.contains(leaked), "{leaked} in {text}");
        }
        assert_eq!(out["headers"]["x-echo"], "Basic [REDACTED]");
        assert_eq!(out["body"]["user"], MARK);
        assert_eq!(out["body"]["u"], MARK, "a unicode escape does not hide it");
    }

    #[test]
    fn a_basic_pair_echoed_percent_encoded_and_a_secret_in_a_header_name_are_hidden() {
        let r = Redactor::for_secrets(
            AuthType::Basic,
            &secrets(&[("username", "bob-the-user"), ("password", "pässwörd-9f3e-中文😀")]),
        );
        let pair = STANDARD.encode("bob-the-user:pässwörd-9f3e-中文😀");
        let echoed = format!("Basic%20{}", chatterfly_egress::forms::percent_encoded(&pair));
        let mut headers = HeaderMap::new();
        headers.insert("x-bob-the-user", "1".parse().unwrap());
        let out = r.output(200, &headers, format!("{{\"auth\": \"{echoed}\"}}").as_bytes());
        let text = out.to_string();
        assert!(!text.contains("bob-the-user"), "{text}");
        // no piece of the pair's base64 long enough to decode the password is left
        let body = out["body"]["auth"].as_str().unwrap_or_default();
        assert!(body.len() < 40, "{body}");
        assert!(
            out["headers"]
                .as_object()
                .is_some_and(|h| h.keys().any(|k| k.contains(MARK))),
            "{text}"
        );
    }

    #[test]
    fn a_dense_json_answer_is_handed_on_as_text() {
        let r = Redactor::for_values(vec!["DENSE-CANARY-77".into()]);
        let mut headers = HeaderMap::new();
        headers.insert("content-type", "application/json".parse().unwrap());
        let dense = format!("[{}\"DENSE-CANARY-77\"]", "0,".repeat(200_000));
        let out = r.output(200, &headers, dense.as_bytes());
        let text = out["body"].as_str().unwrap_or_default();
        assert!(
            text.starts_with("[0,0,") && text.ends_with("\"[REDACTED]\"]"),
            "{}",
            &text[text.len() - 30..]
        );
        // its strings are not decoded: a secret spelled with `\uXXXX` escapes, all or some
        // of its characters, is found too (and in JSON that does not parse)
        let all: String = "DENSE-CANARY-77"
            .chars()
            .map(|c| format!("\\u{:04x}", c as u32))
            .collect();
        for text in [
            format!("[{}\"{all}\",\"DENSE-CANAR\\u0059-77\"]", "0,".repeat(200_000)),
            "[\"DENSE-CAN\\u0041RY-77\", oops".to_owned(),
        ] {
            let out = r.output(200, &headers, text.as_bytes());
            let body = out["body"].as_str().unwrap();
            assert!(!body.contains("\\u"), "{}", &body[body.len().saturating_sub(80)..]);
            assert!(
                !body.contains("CANARY") && body.contains("[REDACTED]"),
                "{}",
                &body[body.len().saturating_sub(80)..]
            );
        }
        // an ordinary answer is still parsed
        let out = r.output(200, &headers, br#"{"a": [1, 2, 3]}"#);
        assert_eq!(out["body"]["a"][2], 3);
    }

    #[test]
    fn encoded_lowercased_and_escaped_forms_are_hidden() {
        use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
        let token = "Tok\"en/+Ab_CdEfGh-1234567";
        let r = Redactor::for_secrets(AuthType::Bearer, &secrets(&[("token", token)]));
        for (form, text) in [
            ("base64 of the header value", STANDARD.encode(format!("Bearer {token}"))),
            ("unpadded base64", STANDARD_NO_PAD.encode(token)),
            ("URL-safe base64", URL_SAFE_NO_PAD.encode(token)),
            (
                "base64 inside something larger",
                STANDARD.encode(format!("{{\"k\":\"x{token}y\"}}")),
            ),
            ("lowercased", token.to_lowercase()),
            ("uppercased", token.to_uppercase()),
            ("JSON-escaped", serde_json::to_string(token).unwrap()),
            ("HTML-escaped", token.replace('"', "&quot;")),
            (
                "percent-encoded twice",
                chatterfly_domain::encode_component(&chatterfly_domain::encode_component(token)),
            ),
        ] {
            let out = r.text(&format!("echo: {text}"));
            assert!(out.contains(MARK), "{form}: {out}");
            for piece in [
                &STANDARD_NO_PAD.encode(token)[2..14],
                "Ab_CdEfGh",
                "ab_cdefgh",
                "AB_CDEFGH",
            ] {
                assert!(!out.contains(piece), "{form}: {piece} survived in {out}");
            }
        }
    }

    #[test]
    fn a_key_stored_with_outer_spaces_is_hidden_without_them() {
        // an upstream reads a header value without its outer spaces and echoes that
        let r = Redactor::for_secrets(AuthType::ApiKeyHeader, &secrets(&[("key", "  CANARY-key-77  ")]));
        let out = r.text("you sent key=CANARY-key-77.");
        assert_eq!(out, "you sent key=[REDACTED].");
    }

    #[test]
    fn keys_echoed_in_another_encoding_are_hidden() {
        let r = Redactor::for_secrets(AuthType::ApiKeyQuery, &secrets(&[("key", "CANARYab+cd/ef==")]));
        // httpbin leaves `/` as it is; another server writes lowercase hex
        for echo in [
            "http://h/get?api_key=CANARYab%2Bcd/ef%3D%3D",
            "http://h/get?api_key=CANARYab%2bcd%2fef%3d%3d",
            "http://h/get?api_key=CANARYab+cd%2Fef==",
        ] {
            let out = r.text(echo);
            assert!(!out.contains("CANARY") && out.contains(MARK), "{echo} → {out}");
        }
        // the UTF-8 bytes of a key read back as Latin-1 (a header echoed byte by byte)
        let r = Redactor::for_secrets(AuthType::Bearer, &secrets(&[("token", "CANARYé✓tok")]));
        let mojibake: String = "CANARYé✓tok".bytes().map(char::from).collect();
        assert_eq!(r.text(&format!("Bearer {mojibake}")), format!("Bearer {MARK}"));
        assert_eq!(r.text("x=CANARY%C3%A9%E2%9C%93tok"), format!("x={MARK}"));
        // every byte encoded, in lowercase hex, of a token that needs no encoding at all
        let r = Redactor::for_secrets(AuthType::Bearer, &secrets(&[("token", "CANARYplain42")]));
        let all: String = "CANARYplain42".bytes().map(|b| format!("%{b:02x}")).collect();
        assert_eq!(r.text(&format!("seen {all}.")), format!("seen {MARK}"));
        // a Basic header echoed inside a URL that was itself encoded again
        let r = Redactor::for_secrets(
            AuthType::Basic,
            &secrets(&[("username", "bob-the-user"), ("password", "pw>>?9f3e-secret")]),
        );
        // `Ym9iLXRoZS11c2VyOnB3Pj4/OWYzZS1zZWNyZXQ=`: the `/` splits the password's part
        let pair = STANDARD.encode("bob-the-user:pw>>?9f3e-secret");
        let twice = chatterfly_egress::forms::percent_encoded(&chatterfly_egress::forms::percent_encoded(&format!(
            "Basic {pair}"
        )));
        let lower_hex = twice
            .replace("%252B", "%252b")
            .replace("%252F", "%252f")
            .replace("%253D", "%253d");
        let out = r.text(&format!("next={lower_hex}"));
        assert!(!out.contains(&pair[24..38]) && out.contains(MARK), "{out}");
    }

    #[test]
    fn bodies_by_kind() {
        let r = Redactor::for_secrets(AuthType::Bearer, &secrets(&[("token", "tok-123456")]));
        let h = HeaderMap::new();
        assert_eq!(
            r.output(200, &h, b"plain tok-123456 text")["body"],
            "plain [REDACTED] text"
        );
        assert_eq!(r.output(204, &h, b"")["body"], "");
        let bin = r.output(
            200,
            &h,
            &[0xff, 0xfe, b't', b'o', b'k', b'-', b'1', b'2', b'3', b'4', b'5', b'6'],
        );
        let decoded = STANDARD.decode(bin["body"]["base64"].as_str().unwrap()).unwrap();
        assert!(!String::from_utf8_lossy(&decoded).contains("tok-123456"));
        let mut jh = HeaderMap::new();
        jh.insert("content-type", "application/json".parse().unwrap());
        assert_eq!(r.output(200, &jh, b"not json")["body"], "not json");
    }

    #[test]
    fn large_json_answers_are_redacted_everywhere_and_left_alone_elsewhere() {
        let r = Redactor::for_secrets(AuthType::Bearer, &secrets(&[("token", "tok-123456")]));
        let mut jh = HeaderMap::new();
        jh.insert("content-type", "application/json".parse().unwrap());
        // 20,000 items, a few of them echoing the secret in a value, a key, or cut into text
        let items: Vec<Value> = (0..20_000)
            .map(|i| match i % 5_000 {
                7 => json!({"id": i, "note": "seen tok-123456 here"}),
                8 => json!({"id": i, "tok-123456": true}),
                9 => json!({"id": i, "tags": ["a", "xtok-123456x", {"deep": ["tok-123456"]}]}),
                _ => json!({"id": i, "name": format!("item {i}"), "tags": ["a", "b"]}),
            })
            .collect();
        let body = serde_json::to_vec(&json!({"items": items})).unwrap();
        let out = r.output(200, &jh, &body);
        let text = out["body"].to_string();
        assert!(!text.contains("tok-123456"));
        assert_eq!(text.matches(MARK).count(), 4 * 4);
        let got = out["body"]["items"].as_array().unwrap();
        assert_eq!(got.len(), 20_000);
        assert_eq!(got[7]["note"], format!("seen {MARK} here"));
        assert_eq!(got[8][MARK], true);
        assert_eq!(got[9]["tags"][2]["deep"][0], MARK);
        // untouched items keep their content and their keys' order
        assert_eq!(got[10], json!({"id": 10, "name": "item 10", "tags": ["a", "b"]}));
        let keys: Vec<&String> = got[8].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["id", MARK]);
    }
}
