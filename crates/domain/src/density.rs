//! How densely a JSON text is written, counted without parsing it: parsed, every JSON
//! value takes 60 to 150 bytes of memory, whatever its text, so a long list of tiny values
//! (`[0,0,0,…]`) costs many times its size. Request bodies past the allowance are refused;
//! upstream answers past it are handed on as text instead of parsed.

/// Parsed, every JSON value takes 60 to 150 bytes of memory while a connection is created,
/// whatever its text: a body of long lists of tiny values (`[1,2,3,…]`, enums of one-letter
/// strings) would cost the server 15 to 40 times its size. Past [`FREE_VALUES`], a
/// connection body must average at least this many bytes of text per value, which keeps
/// what it costs near ten times its size. Real documents run 21 to 29 bytes per value
/// (GitHub's description: 26.8).
pub const MIN_BYTES_PER_VALUE: usize = 16;
/// Values any body may hold, however densely written (at most a few MB of memory).
pub const FREE_VALUES: usize = 50_000;

/// The number of JSON values in `text` (an upper bound: every `,`, `[` and `{` outside a
/// string starts one), counted without parsing.
pub fn json_values(text: &[u8]) -> usize {
    let (mut n, mut in_string, mut escaped) = (1usize, false, false);
    for &b in text {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else {
            match b {
                b'"' => in_string = true,
                b',' | b'[' | b'{' => n += 1,
                _ => {}
            }
        }
    }
    n
}

/// An upstream's answer is parsed unless it holds more than [`FREE_VALUES`] values at
/// fewer than this many bytes each (`[0,0,0,…]`, `[1,2,3,…]`): a parsed value takes 72
/// bytes, so below it an answer would cost the server over fourteen times its size. Lists
/// of small objects (`{"id":10,"name":"item 10","tags":["a","b"]}`) run 7 to 30.
pub const MIN_ANSWER_BYTES_PER_VALUE: usize = 5;

/// Whether an answer is too dense to parse (see [`MIN_ANSWER_BYTES_PER_VALUE`]).
pub fn too_dense(text: &[u8]) -> bool {
    if text.len() < FREE_VALUES {
        return false; // fewer bytes than free values: cannot be past the allowance
    }
    let values = json_values(text);
    values > FREE_VALUES && values.saturating_mul(MIN_ANSWER_BYTES_PER_VALUE) > text.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dense_lists_are_told_from_real_documents() {
        let dense = format!("[{}0]", "0,".repeat(FREE_VALUES * 2));
        assert!(too_dense(dense.as_bytes()));
        let small = format!("[{}0]", "0,".repeat(FREE_VALUES - 10));
        assert!(!too_dense(small.as_bytes()));
        let items = format!(
            "[{}{{}}]",
            r#"{"id":10,"name":"item 10","tags":["a","b"]},"#.repeat(FREE_VALUES)
        );
        assert!(!too_dense(items.as_bytes()));
        let airy: String = format!(
            "[{}{{}}]",
            r#"{"name": "a real looking value", "login": "octocat", "id": 12345},"#.repeat(FREE_VALUES)
        );
        assert!(!too_dense(airy.as_bytes()));
        // commas inside strings are not values
        let strings = format!("[\"{}\"]", ",".repeat(FREE_VALUES * 4));
        assert!(!too_dense(strings.as_bytes()));
    }
}
