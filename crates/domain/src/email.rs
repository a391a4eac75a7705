//! E-mail addresses and header text as Gmail tools take them: mailboxes (`a@b.example` or
//! `Name <a@b.example>`), lists of them (an array, or one string separated by commas), and
//! header text that can never start a new header line.

use serde_json::Value;

use crate::names::shorten;

/// One mailbox: an address with an optional display name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    pub name: Option<String>,
    pub address: String,
}

/// The most addresses one field may hold (Gmail's own limit per message is 500 in all).
pub const MAX_ADDRESSES: usize = 500;

fn atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c)
}

/// Checks an address (`local@domain`, ASCII, dot-atom local part, a domain of labels).
pub fn check_address(address: &str) -> Result<(), String> {
    let bad = || format!("`{}` is not an e-mail address", shorten(address));
    let (local, domain) = address.rsplit_once('@').ok_or_else(bad)?;
    if local.is_empty()
        || local.len() > 64
        || domain.len() > 253
        || local.starts_with('.')
        || local.ends_with('.')
        || local.contains("..")
        || !local.chars().all(|c| c == '.' || atext(c))
    {
        return Err(bad());
    }
    let labels: Vec<&str> = domain.split('.').collect();
    let label_ok = |l: &&str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if labels.len() < 2 || !labels.iter().all(label_ok) {
        return Err(bad());
    }
    Ok(())
}

/// Checks text that goes into a header (a subject, a display name): no line breaks or
/// other control characters, which could end the header and start another.
pub fn check_header_text(field: &str, text: &str) -> Result<(), String> {
    if text.chars().any(|c| c.is_control() && c != '\t') {
        return Err(format!(
            "`{field}` must not contain line breaks or control characters (they would start a new header)"
        ));
    }
    if text.len() > 998 * 4 {
        return Err(format!("`{field}` is longer than {} bytes", 998 * 4));
    }
    Ok(())
}

/// Parses `a@b.example`, `<a@b.example>`, `Name <a@b.example>` or `"Name, Jr." <a@b.example>`.
pub fn parse_mailbox(field: &str, text: &str) -> Result<Mailbox, String> {
    check_header_text(field, text)?;
    let text = text.trim();
    let Some(open) = text.rfind('<') else {
        check_address(text).map_err(|e| format!("`{field}`: {e}"))?;
        return Ok(Mailbox {
            name: None,
            address: text.to_owned(),
        });
    };
    let rest = &text[open + 1..];
    let address = rest
        .strip_suffix('>')
        .ok_or_else(|| format!("`{field}`: `{}` has `<` without a closing `>`", shorten(text)))?
        .trim();
    check_address(address).map_err(|e| format!("`{field}`: {e}"))?;
    let mut name = text[..open].trim();
    if let Some(inner) = name.strip_prefix('"').and_then(|n| n.strip_suffix('"')) {
        name = inner;
    }
    if name.contains(['<', '>', '"']) {
        return Err(format!(
            "`{field}`: the name in `{}` cannot contain <, > or \"",
            shorten(text)
        ));
    }
    Ok(Mailbox {
        name: (!name.is_empty()).then(|| name.to_owned()),
        address: address.to_owned(),
    })
}

/// Splits at commas outside quotes and angle brackets.
fn split_list(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut quoted, mut angle, mut start) = (false, false, 0);
    for (i, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '<' if !quoted => angle = true,
            '>' if !quoted => angle = false,
            ',' if !quoted && !angle => {
                out.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&text[start..]);
    out.into_iter().filter(|s| !s.trim().is_empty()).collect()
}

/// A list of mailboxes: an array of strings or one string with commas; `null` and absent
/// are empty.
pub fn parse_mailbox_list(field: &str, value: Option<&Value>) -> Result<Vec<Mailbox>, String> {
    let items: Vec<String> = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::String(s)) => split_list(s).into_iter().map(str::to_owned).collect(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| format!("`{field}` must hold strings"))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(format!("`{field}` must be a string or an array of strings")),
    };
    if items.len() > MAX_ADDRESSES {
        return Err(format!("`{field}` holds more than {MAX_ADDRESSES} addresses"));
    }
    items.iter().map(|s| parse_mailbox(field, s)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn addresses() {
        for ok in ["a@b.co", "first.last+tag@mail.example.com", "x_y@a-b.io"] {
            check_address(ok).unwrap();
        }
        for bad in [
            "", "a", "a@", "@b.co", "a@b", "a..b@c.d", ".a@b.co", "a b@c.d", "a@-b.co", "a@b..co", "é@b.co",
        ] {
            assert!(check_address(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn mailboxes_and_lists() {
        let m = parse_mailbox("to", "\"Doe, Jane\" <jane@x.example>").unwrap();
        assert_eq!(
            (m.name.as_deref(), m.address.as_str()),
            (Some("Doe, Jane"), "jane@x.example")
        );
        let list = parse_mailbox_list("to", Some(&json!("a@x.io, \"B, C\" <b@x.io>,c@x.io"))).unwrap();
        assert_eq!(list.len(), 3);
        assert_eq!(list[1].name.as_deref(), Some("B, C"));
        assert!(parse_mailbox_list("to", Some(&json!(["a@x.io", 3]))).is_err());
        assert!(parse_mailbox("to", "Eve <e@x.io>\r\nBcc: all@x.io").is_err());
        assert!(parse_mailbox("to", "Eve\n <e@x.io>").is_err());
        assert!(check_header_text("subject", "Hi\r\nBcc: x@y.z").is_err());
        check_header_text("subject", "Grüße, 👋").unwrap();
    }
}
