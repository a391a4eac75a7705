//! The forms a credential can take in text that comes back or gets printed: as is, case
//! changed, trimmed, percent-encoded once and twice, form-encoded, HTML-escaped, JSON and
//! Rust-debug escaped, base64 in both alphabets (whole, percent-encoded, and the cores that
//! hold wherever the value sits inside a larger encoded text). One list, used both by the
//! redactor of what a call returns (`chatterfly_tools::redact`) and by the log writer
//! ([`crate::in_play`]), so a form hidden in one is hidden in the other.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};

/// Values shorter than this are not hidden: they would blank out ordinary words, and no
/// credential is that short.
pub const MIN_LEN: usize = 4;

/// Every form of `value` (none when it is shorter than [`MIN_LEN`]), deduplicated, each
/// at least [`MIN_LEN`] long; in no particular order.
pub fn secret_forms(value: &str) -> Vec<String> {
    if value.len() < MIN_LEN {
        return Vec::new();
    }
    let mut out = vec![value.to_owned()];
    if !value.is_ascii() {
        // the UTF-8 bytes read back as Latin-1 (a header echoed by its bytes)
        out.push(value.bytes().map(char::from).collect());
    }
    // as is; lowercased and uppercased (header names and host names come back lowercased);
    // without its outer spaces (a header value loses them on the way). Each of these is
    // also hidden as text escapes it, since the changed copy can be quoted too.
    // (a value of printable ASCII without `& < > " ' \` escapes to itself every way)
    let escapes = value
        .bytes()
        .any(|b| !(0x20..0x7f).contains(&b) || b"&<>\"'\\".contains(&b));
    for shown in [
        value.to_owned(),
        value.to_lowercase(),
        value.to_uppercase(),
        value.trim().to_owned(),
    ] {
        if !escapes {
            out.push(shown);
            continue;
        }
        // an error page quoting the request
        let html = html_escaped(&shown);
        out.push(html.replace("&#39;", "&#x27;"));
        out.push(html);
        let debug = format!("{shown:?}");
        if let Some(inner) = debug.strip_prefix('"').and_then(|d| d.strip_suffix('"')) {
            out.push(inner.to_owned());
        }
        let json = json_escaped(&shown);
        // JSON inside a JSON string
        out.push(json_escaped(&json));
        // with non-ASCII as `\uXXXX` (Python's `json.dumps`, and others by default)
        out.push(ascii_escaped(&json));
        out.push(json);
        // XML-style, quotes left alone, and `&apos;`
        let markup = shown.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
        out.push(markup.replace('\'', "&apos;").replace('"', "&quot;"));
        out.push(markup);
        out.push(shown);
    }
    let once = percent_encoded(value);
    // a URL encoded again inside another URL (a redirect's `next=`)
    out.push(percent_encoded(&once));
    out.push(once.clone());
    out.push(url::form_urlencoded::byte_serialize(value.as_bytes()).collect());
    let mut encoded = vec![
        STANDARD.encode(value),
        STANDARD_NO_PAD.encode(value),
        URL_SAFE.encode(value),
        URL_SAFE_NO_PAD.encode(value),
    ];
    encoded.extend(base64_cores(value.as_bytes()));
    if once != value {
        // the percent-encoded value inside base64 (a page cursor that encodes the request
        // URL, `?key=…`)
        encoded.extend(base64_cores(once.as_bytes()));
    }
    for e in encoded {
        // base64 with `+ / =` echoed inside a URL (`Basic%20…%2B…%3D`)
        let pe = percent_encoded(&e);
        if pe != e {
            out.push(pe);
        }
        out.push(e);
    }
    out.retain(|f| f.len() >= MIN_LEN);
    out.sort();
    out.dedup();
    out
}

/// `value` with every byte but the unreserved ones (`A-Z a-z 0-9 - . _ ~`) as `%XX`.
pub fn percent_encoded(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Percent-encoding has many spellings (which characters are escaped, in which hex case,
/// how many times over): each word of `text` with a `%` in it (words end at whitespace and
/// at `"'<>,;()[]{}`) is decoded, up to three times, and replaced whole by `mark` when
/// `holds` finds a secret in one of its decodings. `None` when no word had to go.
pub fn redact_encoded_words(text: &[u8], mark: &str, holds: impl Fn(&[u8]) -> bool) -> Option<Vec<u8>> {
    if !text.contains(&b'%') {
        return None;
    }
    // words cut at punctuation first; then at spaces, quotes and angle brackets only, for
    // the encoders that leave `' ( ) , ;` and the like as they are (`encodeURIComponent`)
    let strict = |b: u8| b.is_ascii_whitespace() || b"\"'<>,;()[]{}".contains(&b);
    let loose = |b: u8| b.is_ascii_whitespace() || b"\"<>".contains(&b);
    match encoded_words_pass(text, mark, &holds, strict) {
        Some(once) => Some(encoded_words_pass(&once, mark, &holds, loose).unwrap_or(once)),
        None => encoded_words_pass(text, mark, &holds, loose),
    }
}

fn encoded_words_pass(
    text: &[u8],
    mark: &str,
    holds: &impl Fn(&[u8]) -> bool,
    is_delim: impl Fn(u8) -> bool,
) -> Option<Vec<u8>> {
    let mut out: Option<Vec<u8>> = None;
    let mut copied = 0;
    let mut start = None;
    for (i, b) in text.iter().copied().chain(std::iter::once(b' ')).enumerate() {
        match (start, is_delim(b)) {
            (None, false) => start = Some(i),
            (Some(s), true) => {
                start = None;
                let word = &text[s..i];
                if word.contains(&b'%') && decoded_holds(word, holds) {
                    let o = out.get_or_insert_with(|| Vec::with_capacity(text.len()));
                    o.extend_from_slice(&text[copied..s]);
                    o.extend_from_slice(mark.as_bytes());
                    copied = i;
                }
            }
            _ => {}
        }
    }
    let mut out = out?;
    out.extend_from_slice(&text[copied..]);
    Some(out)
}

fn decoded_holds(word: &[u8], holds: &impl Fn(&[u8]) -> bool) -> bool {
    let mut text = std::borrow::Cow::Borrowed(word);
    for _ in 0..3 {
        if !text.contains(&b'%') {
            break;
        }
        let decoded: Vec<u8> = percent_encoding::percent_decode(&text).collect();
        if decoded == *text {
            break;
        }
        if holds(&decoded) {
            return true;
        }
        text = std::borrow::Cow::Owned(decoded);
    }
    false
}

/// JSON text with its `\uXXXX` and `\/` escapes written as serde_json writes those
/// characters (the character itself; `\"`, `\\`, `\n` and the like, or `\u00xx`, for the
/// ones it escapes), so that a secret whose characters an upstream escaped one by one, all
/// or only some, reads as one of its listed forms again. Everything else is kept as it is:
/// JSON that means the same, in the spelling the forms are made for. Borrowed when there is
/// nothing to rewrite.
pub fn canonical_json_escapes(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains("\\u") && !text.contains("\\/") {
        return std::borrow::Cow::Borrowed(text);
    }
    let b = text.as_bytes();
    let hex4 = |at: usize| -> Option<u32> {
        let digits = b.get(at..at + 4)?;
        let s = std::str::from_utf8(digits).ok()?;
        u32::from_str_radix(s, 16)
            .ok()
            .filter(|_| digits.iter().all(u8::is_ascii_hexdigit))
    };
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let mut copied = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            i += 1;
            continue;
        }
        // `i` is an escape's backslash (the scan skips whole escapes, so `\\u` is not one)
        let Some(&kind) = b.get(i + 1) else { break };
        let (c, len) = match kind {
            b'/' => (Some('/'), 2),
            b'u' => match hex4(i + 2) {
                Some(hi @ 0xd800..=0xdbff) => {
                    let lo = (b.get(i + 6) == Some(&b'\\') && b.get(i + 7) == Some(&b'u'))
                        .then(|| hex4(i + 8))
                        .flatten()
                        .filter(|lo| (0xdc00..=0xdfff).contains(lo));
                    match lo {
                        Some(lo) => (char::from_u32(0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00)), 12),
                        None => (None, 6),
                    }
                }
                Some(cp) => (char::from_u32(cp), 6),
                None => (None, 2),
            },
            _ => (None, 2),
        };
        if let Some(c) = c {
            out.push_str(&text[copied..i]);
            out.push_str(&json_escaped(c.encode_utf8(&mut [0u8; 4])));
            copied = i + len;
        }
        i += len;
    }
    if copied == 0 {
        return std::borrow::Cow::Borrowed(text);
    }
    out.push_str(&text[copied.min(text.len())..]);
    std::borrow::Cow::Owned(out)
}

/// `json` (JSON-escaped text) with every non-ASCII character as `\uXXXX` (UTF-16).
fn ascii_escaped(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        }
    }
    out
}

/// `value` as HTML text escapes it.
fn html_escaped(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `value` inside a JSON string, as serde_json writes it (quotes, backslashes and control
/// characters escaped).
fn json_escaped(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// The part of `value`'s base64 that is the same wherever `value` sits in the encoded text
/// (each of the three alignments, standard and URL-safe alphabets): a secret echoed
/// base64-encoded inside something larger (`Basic …`, `Bearer …` encoded whole, a JSON
/// blob) is found too.
pub fn base64_cores(value: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
        for k in 0..3usize {
            let mut padded = vec![0u8; k];
            padded.extend_from_slice(value);
            let encoded = engine.encode(&padded);
            // characters whose 6 bits all come from `value`
            let start = (k * 8).div_ceil(6);
            let end = ((k + value.len()) * 8) / 6;
            if end > start + 8
                && let Some(core) = encoded.get(start..end)
            {
                out.push(core.to_owned());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_escapes_are_written_the_one_way_serde_json_writes_them() {
        let c = |t: &str| canonical_json_escapes(t).into_owned();
        // every character, or only some, escaped
        assert_eq!(c(r#"["\u0043\u0041\u004e\u0041\u0052\u0059-1"]"#), r#"["CANARY-1"]"#);
        assert_eq!(c(r#"["CANAR\u0059-1", "a\/b"]"#), r#"["CANARY-1", "a/b"]"#);
        // what serde_json escapes stays escaped, its way
        assert_eq!(c(r#""\u0022 \u005C \u000A \u0001""#), r#""\" \\ \n \u0001""#);
        // non-ASCII and surrogate pairs become the character; a lone surrogate is kept
        assert_eq!(c(r#""\u00e9 \ud83d\ude00 \ud83d x""#), "\"é 😀 \\ud83d x\"");
        // an escaped backslash before `u` is not an escape of its own
        assert_eq!(c(r#""\\u0043""#), r#""\\u0043""#);
        // broken escapes and text without escapes are left as they are
        assert_eq!(c(r#""\u00" \u"#), r#""\u00" \u"#);
        assert!(matches!(canonical_json_escapes("plain"), std::borrow::Cow::Borrowed(_)));
        // the result means the same JSON
        let t = r#"{"k\u0065y": ["\u0043\/\u00e9\ud83d\ude00\n\u0000"]}"#;
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(t).unwrap(),
            serde_json::from_str::<serde_json::Value>(&c(t)).unwrap()
        );
    }

    #[test]
    fn the_forms_an_echo_takes_are_listed() {
        let v = "Can@ry-9f3e/+SECRET=x";
        let forms = secret_forms(v);
        let has = |f: &str| forms.iter().any(|x| x == f);
        assert!(has(v));
        assert!(has("can@ry-9f3e/+secret=x"));
        assert!(has("CAN@RY-9F3E/+SECRET=X"));
        assert!(has("Can%40ry-9f3e%2F%2BSECRET%3Dx"));
        assert!(has("Can%2540ry-9f3e%252F%252BSECRET%253Dx"));
        assert!(has(&STANDARD.encode(v)));
        // base64 of `Bearer <v>` holds one of the cores
        let bearer = STANDARD.encode(format!("Bearer {v}"));
        assert!(base64_cores(v.as_bytes()).iter().any(|c| bearer.contains(c.as_str())));
        // and percent-encoded, as a URL echoes it
        let echoed = percent_encoded(&STANDARD.encode(format!("user:{v}")));
        assert!(
            forms
                .iter()
                .filter(|f| f.len() > 8)
                .any(|f| echoed.contains(f.as_str())),
            "{echoed}"
        );
        assert!(secret_forms("abc").is_empty());
        // a changed copy, escaped
        let quoted = "Ab\"cD\\eF'gh";
        let forms = secret_forms(quoted);
        for f in [r#"AB\"CD\\EF'GH"#, r#"ab\"cd\\ef'gh"#, "AB&quot;CD\\EF&#39;GH"] {
            assert!(forms.iter().any(|x| x == f), "{f} missing");
        }
    }

    #[test]
    fn what_other_encoders_write_is_listed_or_decoded() {
        let secret = "Ab'Cd+Ef(9f3e)Gh/Ij\"ü<&>";
        let forms = secret_forms(secret);
        let holds = |d: &[u8]| forms.iter().any(|f| d.windows(f.len()).any(|w| w == f.as_bytes()));
        let hidden = |text: &str| {
            holds(text.as_bytes())
                || redact_encoded_words(text.as_bytes(), "[X]", holds)
                    .is_some_and(|t| !t.windows(6).any(|w| w == b"9f3e)G" || w == b"9f3e%2"))
        };
        // JavaScript's encodeURIComponent leaves `'` `(` `)` as they are
        let js: String = secret
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b) {
                    char::from(b).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        let inner_json = serde_json::to_string(secret).unwrap_or_default();
        let twice_json = serde_json::to_string(&inner_json).unwrap_or_default();
        let cases = [
            format!("see ({js}) there"),
            twice_json,
            r#"Ab'Cd+Ef(9f3e)Gh/Ij\"\u00fc<&>"#.to_owned(),
            "Ab&apos;Cd+Ef(9f3e)Gh/Ij&quot;ü&lt;&amp;&gt;".to_owned(),
            "Ab'Cd+Ef(9f3e)Gh/Ij\"ü&lt;&amp;&gt;".to_owned(),
            STANDARD.encode(format!("https://h/x?key={}&page=2", percent_encoded(secret))),
        ];
        for text in cases {
            assert!(hidden(&text), "{text}");
        }
    }

    #[test]
    fn encoded_words_are_decoded_before_they_are_searched() {
        let holds = |d: &[u8]| d.windows(7).any(|w| w == b"s3cr:et");
        let mark = "[X]";
        let cases = [
            // lowercase hex, every byte encoded, twice encoded, mixed
            ("see %73%33%63%72%3a%65%74 here", "see [X] here"),
            ("url=https://x/?a=s3cr%253Aet&b=1, ok", "[X], ok"),
            ("\"s3cr%3aet\"", "\"[X]\""),
        ];
        for (text, want) in cases {
            let got =
                redact_encoded_words(text.as_bytes(), mark, holds).map(|v| String::from_utf8(v).unwrap_or_default());
            assert_eq!(got.as_deref(), Some(want), "{text}");
        }
        assert!(redact_encoded_words(b"100% fine, s3cr and et", mark, holds).is_none());
        assert!(redact_encoded_words(b"no percent s3cr:et", mark, holds).is_none());
    }
}
