//! Names the importer makes up: operation names, argument names, the connection's slug.
//! Each is made to fit its rule deterministically, so importing the same document twice
//! gives the same names.

use std::collections::HashSet;

/// Longest operation name (the domain's rule) and longest argument name we make.
pub const MAX_OPERATION_NAME: usize = 128;
pub const MAX_ARGUMENT_NAME: usize = 64;

/// Keeps `[A-Za-z0-9_.-]`, turns every run of anything else into one `_`, trims `_`
/// from both ends and cuts at `max` bytes.
pub fn sanitize(raw: &str, max: usize) -> String {
    let mut out = String::with_capacity(raw.len().min(max));
    let mut pending_sep = false;
    for c in raw.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
            if pending_sep && !out.is_empty() && !out.ends_with('_') {
                out.push('_');
            }
            pending_sep = false;
            out.push(c);
        } else {
            pending_sep = true;
        }
    }
    let trimmed = out.trim_matches(|c| c == '_' || c == '.');
    let mut s: String = trimmed.chars().take(max).collect();
    while s.ends_with(['_', '.']) {
        s.pop();
    }
    s
}

/// An operation name from an `operationId`, or from the method and path when there is none
/// (or nothing of it survives): `get_pets_petId`.
pub fn operation_name(operation_id: Option<&str>, method: &str, path: &str) -> String {
    if let Some(id) = operation_id {
        let s = sanitize(id, MAX_OPERATION_NAME);
        if !s.is_empty() {
            return s;
        }
    }
    let path_part = sanitize(&path.replace(['{', '}'], ""), MAX_OPERATION_NAME);
    let base = if path_part.is_empty() {
        format!("{method}_root")
    } else {
        format!("{method}_{path_part}")
    };
    sanitize(&base, MAX_OPERATION_NAME)
}

/// Names already given, and the next suffix to try after each (so that many repeats of
/// one name stay linear).
#[derive(Debug, Default)]
pub struct Taken {
    names: HashSet<String>,
    next: std::collections::HashMap<String, u32>,
}

/// Makes `name` unique in `taken` with `_2`, `_3`, … (cut to fit `max`), and records it.
pub fn unique(name: String, taken: &mut Taken, max: usize) -> String {
    if taken.names.insert(name.clone()) {
        return name;
    }
    let next = taken.next.entry(name.clone()).or_insert(2);
    loop {
        let suffix = format!("_{next}");
        *next += 1;
        let keep = max.saturating_sub(suffix.len());
        let candidate = format!("{}{suffix}", &name[..floor_char_boundary(&name, keep)]);
        if taken.names.insert(candidate.clone()) {
            return candidate;
        }
    }
}

fn floor_char_boundary(s: &str, at: usize) -> usize {
    if at >= s.len() {
        return s.len();
    }
    (0..=at).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0)
}

/// An argument name for a parameter or body property: the wire name sanitized, `arg` when
/// nothing survives.
pub fn argument_name(wire: &str) -> String {
    let s = sanitize(wire, MAX_ARGUMENT_NAME);
    if s.is_empty() { "arg".to_owned() } else { s }
}

/// A connection slug (`^[a-z][a-z0-9_]{0,62}$`) from a title: `GitHub v3 REST API` →
/// `github_v3_rest_api`.
pub fn slug_from_title(title: &str) -> String {
    let mut out = String::new();
    for c in title.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('_') {
            out.push('_');
        }
    }
    let mut s = out.trim_matches('_').to_owned();
    if !s.starts_with(|c: char| c.is_ascii_lowercase()) {
        s = format!("api_{s}");
    }
    s.truncate(63);
    while s.ends_with('_') {
        s.pop();
    }
    s
}

/// Cuts `s` to at most `max` bytes on a character boundary, marking the cut with `…`.
pub fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let at = floor_char_boundary(s, max.saturating_sub(3));
    format!("{}…", &s[..at])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_names() {
        assert_eq!(operation_name(Some("repos/get"), "get", "/x"), "repos_get");
        assert_eq!(operation_name(Some("listPets"), "get", "/pets"), "listPets");
        assert_eq!(operation_name(Some("  weird id!! "), "get", "/x"), "weird_id");
        assert_eq!(operation_name(Some("@@@"), "get", "/pets/{petId}"), "get_pets_petId");
        assert_eq!(operation_name(None, "post", "/"), "post_root");
        assert_eq!(operation_name(None, "get", "/a b/{c}/d.json"), "get_a_b_c_d.json");
        let long = "x".repeat(300);
        assert_eq!(operation_name(Some(&long), "get", "/").len(), 128);
    }

    #[test]
    fn uniqueness_is_deterministic() {
        let mut taken = Taken::default();
        assert_eq!(unique("a".into(), &mut taken, 128), "a");
        assert_eq!(unique("a".into(), &mut taken, 128), "a_2");
        assert_eq!(unique("a".into(), &mut taken, 128), "a_3");
        assert_eq!(unique("a_2".into(), &mut taken, 128), "a_2_2");
        let long = "y".repeat(128);
        assert_eq!(unique(long.clone(), &mut taken, 128), long);
        let second = unique(long.clone(), &mut taken, 128);
        assert_eq!(second.len(), 128);
        assert!(second.ends_with("_2"));
    }

    #[test]
    fn argument_names_and_slugs() {
        assert_eq!(argument_name("filter[name]"), "filter_name");
        assert_eq!(argument_name("$select"), "select");
        assert_eq!(argument_name("X-GitHub-Api-Version"), "X-GitHub-Api-Version");
        assert_eq!(argument_name("☃"), "arg");
        assert_eq!(slug_from_title("GitHub v3 REST API"), "github_v3_rest_api");
        assert_eq!(slug_from_title("3D Printing"), "api_3d_printing");
        assert_eq!(slug_from_title("☃"), "api");
        assert!(slug_from_title(&"Long ".repeat(40)).len() <= 63);
        assert_eq!(cut("héllo", 4), "h…");
    }
}
