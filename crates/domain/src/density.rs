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
    shape(text).0
}

/// The values (as [`json_values`]) and the objects (`{` outside a string) in `text`.
fn shape(text: &[u8]) -> (usize, usize) {
    let (mut n, mut objects, mut in_string, mut escaped) = (1usize, 0usize, false, false);
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
                b'{' => {
                    n += 1;
                    objects += 1;
                }
                b',' | b'[' => n += 1,
                _ => {}
            }
        }
    }
    (n, objects)
}

/// What one parsed value costs in memory, about (72 bytes, and the room its list grows
/// into), and what an object costs on top (its map, entry and index table, its key):
/// measured with serde_json's ordered maps, `[0,0,…]` takes 60 times its text,
/// `[{"abcd":0},…]` 41 times, a list of small objects
/// (`{"id":10,"name":"item 10","tags":["a","b"]}`) 17 times, airier ones 8 times
/// (`cargo run --release -p chatterfly-domain --example answer_cost`).
pub const VALUE_COST: usize = 90;
pub const OBJECT_COST: usize = 300;
/// An upstream's answer is parsed unless it holds more than [`FREE_VALUES`] values and,
/// by [`VALUE_COST`] and [`OBJECT_COST`], would take more than this many times its size
/// once parsed; such an answer is handed on as text.
pub const MAX_ANSWER_COST_PER_BYTE: usize = 20;

/// Whether an answer is too dense to parse (see [`MAX_ANSWER_COST_PER_BYTE`]).
pub fn too_dense(text: &[u8]) -> bool {
    if text.len() < FREE_VALUES {
        return false; // fewer bytes than free values: cannot be past the allowance
    }
    let (values, objects) = shape(text);
    let cost = values
        .saturating_mul(VALUE_COST)
        .saturating_add(objects.saturating_mul(OBJECT_COST));
    values > FREE_VALUES && cost > text.len().saturating_mul(MAX_ANSWER_COST_PER_BYTE)
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
        // tiny objects cost more than their values: 41 times their text once parsed
        let tiny = format!("[{}{{}}]", r#"{"abcd":0},"#.repeat(FREE_VALUES));
        assert!(too_dense(tiny.as_bytes()));
        let pairs = format!("[{}[]]", "[1.5,2.3],".repeat(FREE_VALUES));
        assert!(too_dense(pairs.as_bytes()));
        // commas inside strings are not values
        let strings = format!("[\"{}\"]", ",".repeat(FREE_VALUES * 4));
        assert!(!too_dense(strings.as_bytes()));
    }
}
