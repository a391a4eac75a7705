//! Telegram Bot API rules checked before a request is sent: who a message goes to, what it
//! says (Telegram's length limit is counted after formatting), and the formatting itself.
//! Telegram has the final word; these checks turn the common mistakes into clear messages
//! with nothing sent.

use serde_json::Value;

/// Telegram's limit on a message's text, after entity parsing, in UTF-16 code units (the
/// unit Telegram counts entities in).
pub const MAX_MESSAGE_LEN: usize = 4096;

/// The tags Telegram's HTML parse mode accepts.
const HTML_TAGS: &[&str] = &[
    "b",
    "strong",
    "i",
    "em",
    "u",
    "ins",
    "s",
    "strike",
    "del",
    "span",
    "tg-spoiler",
    "a",
    "tg-emoji",
    "code",
    "pre",
    "blockquote",
];

/// A chat as Telegram takes it: a numeric id (negative for groups and channels), or a
/// public `@username` (5 to 32 letters, digits and `_`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatId {
    Id(i64),
    Username(String),
}

impl ChatId {
    pub fn parse(v: &Value) -> Result<Self, String> {
        match v {
            Value::Number(n) => n
                .as_i64()
                .map(Self::Id)
                .ok_or_else(|| "`chat_id` must be a whole number within 64 bits, or `@username`".to_owned()),
            Value::String(s) => {
                if let Some(name) = s.strip_prefix('@') {
                    if (5..=32).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                        return Ok(Self::Username(s.clone()));
                    }
                    return Err(
                        "`chat_id` as a name must be `@` and 5 to 32 letters, digits or `_` (a public channel or group)"
                            .into(),
                    );
                }
                s.parse::<i64>().map(Self::Id).map_err(|_| {
                    "`chat_id` must be the chat's numeric id (e.g. 123456789 or -1001234567890) or `@username`".into()
                })
            }
            _ => Err("`chat_id` must be the chat's numeric id or `@username`".into()),
        }
    }

    pub fn to_json(&self) -> Value {
        match self {
            Self::Id(i) => Value::from(*i),
            Self::Username(s) => Value::String(s.clone()),
        }
    }
}

/// Characters a message may not carry: control characters other than line breaks and tabs.
fn check_controls(text: &str) -> Result<(), String> {
    if let Some(c) = text
        .chars()
        .find(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(format!(
            "`text` contains the control character U+{:04X}; only line breaks and tabs are allowed",
            u32::from(c)
        ));
    }
    Ok(())
}

/// Checks a message's text for its parse mode and returns its length as Telegram counts it
/// (after formatting is taken out).
pub fn check_text(text: &str, parse_mode: Option<&str>) -> Result<usize, String> {
    check_controls(text)?;
    let visible = match parse_mode {
        None => utf16_len(text),
        Some("HTML") => html_visible_len(text)?,
        Some("MarkdownV2" | "Markdown") => markdown_visible_len(text),
        Some(other) => {
            return Err(format!(
                "`parse_mode` `{}` is not one of Telegram's: HTML, MarkdownV2, Markdown",
                other.chars().take(40).collect::<String>()
            ));
        }
    };
    if visible == 0 {
        return Err("`text` is empty once formatting is taken out; Telegram sends no empty messages".into());
    }
    if visible > MAX_MESSAGE_LEN {
        return Err(format!(
            "`text` is {visible} characters long after formatting; Telegram's limit is {MAX_MESSAGE_LEN}: split it into several messages"
        ));
    }
    Ok(visible)
}

fn utf16_len(s: &str) -> usize {
    s.chars().map(char::len_utf16).sum()
}

/// The length of HTML-formatted text once its tags are taken out and its entities decoded;
/// refuses tags Telegram does not know, unbalanced tags, and `&` or `<` not written as
/// entities.
fn html_visible_len(text: &str) -> Result<usize, String> {
    let mut len = 0usize;
    let mut open: Vec<String> = Vec::new();
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        match c {
            '<' => {
                let end = rest
                    .find('>')
                    .ok_or("`text` has a `<` that starts no tag: write it as `&lt;` with parse_mode HTML")?;
                let inner = &rest[1..end];
                let (closing, body) = match inner.strip_prefix('/') {
                    Some(b) => (true, b),
                    None => (false, inner),
                };
                let name: String = body
                    .split(|c: char| c.is_whitespace())
                    .next()
                    .unwrap_or("")
                    .to_ascii_lowercase();
                if !HTML_TAGS.contains(&name.as_str()) {
                    return Err(format!(
                        "`text` has the tag <{}>, which Telegram's HTML does not support (use b, i, u, s, a, code, pre, blockquote, tg-spoiler; write a literal `<` as `&lt;`)",
                        name.chars().take(30).collect::<String>()
                    ));
                }
                if closing {
                    match open.pop() {
                        Some(o) if o == name => {}
                        _ => return Err(format!("`text` closes </{name}>, which is not the tag open there")),
                    }
                } else if !body.ends_with('/') {
                    open.push(name);
                }
                rest = &rest[end + 1..];
            }
            '&' => {
                let end = rest
                    .char_indices()
                    .take(12)
                    .find(|(_, c)| *c == ';')
                    .map(|(i, _)| i)
                    .ok_or("`text` has a `&` that starts no entity: write it as `&amp;` with parse_mode HTML")?;
                let name = &rest[1..end];
                let known = matches!(name, "lt" | "gt" | "amp" | "quot")
                    || name
                        .strip_prefix('#')
                        .is_some_and(|n| match n.strip_prefix(['x', 'X']) {
                            Some(h) => !h.is_empty() && h.bytes().all(|b| b.is_ascii_hexdigit()),
                            None => !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()),
                        });
                if !known {
                    return Err(format!(
                        "`text` has the entity `&{};`, which Telegram does not know: use &lt; &gt; &amp; &quot; or a numeric one",
                        name.chars().take(12).collect::<String>()
                    ));
                }
                // a numeric entity is one character, which may be two UTF-16 units (😀)
                let decoded = name
                    .strip_prefix('#')
                    .and_then(|n| match n.strip_prefix(['x', 'X']) {
                        Some(h) => u32::from_str_radix(h, 16).ok(),
                        None => n.parse().ok(),
                    })
                    .and_then(char::from_u32);
                len += decoded.map_or(1, char::len_utf16);
                rest = &rest[end + 1..];
            }
            _ => {
                len += c.len_utf16();
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    if let Some(tag) = open.last() {
        return Err(format!("`text` leaves <{tag}> open: close it with </{tag}>"));
    }
    Ok(len)
}

/// The length of Markdown-formatted text without its markers (`*`, `_`, `~`, `` ` ``, `|`,
/// the brackets and address of a link) and with `\` escapes counted once. An estimate for
/// the limit; Telegram itself judges the formatting.
fn markdown_visible_len(text: &str) -> usize {
    let mut len = 0;
    let mut chars = text.chars().peekable();
    let mut in_link_target = false;
    let mut backticks = 0;
    while let Some(c) = chars.next() {
        backticks = if c == '`' { backticks + 1 } else { 0 };
        // the language of a code block (```python) is not part of the message
        if backticks == 3 {
            while chars.peek().is_some_and(|n| *n != '\n' && *n != '`') {
                chars.next();
            }
            // and the line break that ends the fence's line
            if chars.peek() == Some(&'\n') {
                chars.next();
            }
        }
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    len += n.len_utf16();
                }
            }
            ']' if chars.peek() == Some(&'(') => {
                chars.next();
                in_link_target = true;
            }
            ')' if in_link_target => in_link_target = false,
            _ if in_link_target => {}
            '*' | '_' | '~' | '`' | '|' | '[' => {}
            _ => len += c.len_utf16(),
        }
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn chat_ids_are_numbers_or_usernames() {
        assert_eq!(ChatId::parse(&json!(42)), Ok(ChatId::Id(42)));
        assert_eq!(ChatId::parse(&json!("-1001234")), Ok(ChatId::Id(-1_001_234)));
        assert_eq!(
            ChatId::parse(&json!("@my_channel")),
            Ok(ChatId::Username("@my_channel".into()))
        );
        for bad in [
            json!("bob"),
            json!("@ab"),
            json!("@bad name"),
            json!(1.5),
            json!(null),
            json!("12a"),
        ] {
            assert!(ChatId::parse(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_limit_is_counted_after_formatting() {
        assert_eq!(check_text("hello", None), Ok(5));
        assert_eq!(
            check_text("<b>hi</b> &amp; <a href=\"https://x\">yo</a>", Some("HTML")),
            Ok(7)
        );
        assert_eq!(check_text("*bold* \\* [link](https://x.y)", Some("MarkdownV2")), Ok(11));
        // a code block's language line is not text
        let block = format!("```python\n{}\n```", "a".repeat(4089));
        assert_eq!(check_text(&block, Some("MarkdownV2")), Ok(4090));
        let long = "x".repeat(5000);
        assert!(check_text(&long, None).unwrap_err().contains("4096"));
        // 4,100 characters of which 40 are tags: within the limit once they are taken out
        let formatted = format!("<b>{}</b>", "y".repeat(4090));
        assert_eq!(check_text(&formatted, Some("HTML")), Ok(4090));
        // an emoji is two UTF-16 units, as Telegram counts it
        assert_eq!(check_text("😀", None), Ok(2));
        assert_eq!(check_text("&#128512;&#x1F600;&lt;", Some("HTML")), Ok(5));
    }

    #[test]
    fn bad_text_is_refused_with_a_reason() {
        for (text, mode, needle) in [
            ("a\u{0}b", None, "U+0000"),
            ("a\u{1b}[31m", None, "U+001B"),
            ("<script>x</script>", Some("HTML"), "<script>"),
            ("<b>x", Some("HTML"), "open"),
            ("<b>x</i>", Some("HTML"), "closes"),
            ("1 < 2", Some("HTML"), "&lt;"),
            ("A & B", Some("HTML"), "&amp;"),
            ("&nbsp;", Some("HTML"), "entity"),
            ("x", Some("RTF"), "parse_mode"),
            ("<b></b>", Some("HTML"), "empty"),
        ] {
            let e = check_text(text, mode).unwrap_err();
            assert!(e.contains(needle), "{text:?}: {e}");
        }
        assert!(check_text("line\nbreak\ttab", None).is_ok());
    }
}
