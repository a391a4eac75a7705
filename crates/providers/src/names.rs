//! Tool names as a provider accepts them, and back. Chatterfly's names
//! (`github.create_issue`, an MCP server's `get-sum`, an imported operation id of 90
//! characters) do not all fit a provider's rules ([`crate::Rules`]): each is mapped to a
//! name that does, unique within the request (ignoring case, so that no two differ only
//! by it), and the [`NameMap`] turns the model's calls back into the tools they name.
//! A name that already fits is kept as it is.

use std::collections::{HashMap, HashSet};

use sha2::{Digest, Sha256};

use crate::Provider;

/// Whether `name` is a tool name `provider` accepts.
pub fn is_valid(provider: Provider, name: &str) -> bool {
    let r = provider.rules();
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => {
            (r.name_first)(first) && (r.name_chars)(first) && chars.all(r.name_chars) && name.len() <= r.name_max
        }
        None => false,
    }
}

/// The declared name of each tool of one request, and the way back.
#[derive(Debug, Clone, Default)]
pub struct NameMap {
    to_declared: HashMap<String, String>,
    to_tool: HashMap<String, String>,
}

impl NameMap {
    /// Names for `tools` (in their order: the first of two that would share a name keeps
    /// the plain form).
    pub fn build<'a>(provider: Provider, tools: impl IntoIterator<Item = &'a str>) -> Self {
        let mut map = Self::default();
        let mut taken: HashSet<String> = HashSet::new();
        for tool in tools {
            if map.to_declared.contains_key(tool) {
                continue;
            }
            let plain = candidate(provider, tool);
            let mut name = plain.clone();
            let mut n = 0u32;
            while taken.contains(&name.to_ascii_lowercase()) {
                n += 1;
                name = hashed(provider, &plain, &format!("{tool}\u{0}{n}"));
            }
            taken.insert(name.to_ascii_lowercase());
            map.to_tool.insert(name.clone(), tool.to_owned());
            map.to_declared.insert(tool.to_owned(), name);
        }
        map
    }

    /// The name `tool` is declared under.
    pub fn declared(&self, tool: &str) -> Option<&str> {
        self.to_declared.get(tool).map(String::as_str)
    }

    /// The tool a declared name stands for.
    pub fn tool(&self, declared: &str) -> Option<&str> {
        self.to_tool.get(declared).map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.to_tool.len()
    }

    pub fn is_empty(&self) -> bool {
        self.to_tool.is_empty()
    }
}

/// `tool` in the provider's characters: a `.` the provider does not allow becomes `__`
/// (so that `github.create_issue` reads `github__create_issue`), any other character `_`;
/// a name that may not start as it does gets `t_` in front; one too long keeps its start
/// and ends with a hash of the whole.
fn candidate(provider: Provider, tool: &str) -> String {
    let r = provider.rules();
    let mut out = String::with_capacity(tool.len());
    for c in tool.chars() {
        if (r.name_chars)(c) {
            out.push(c);
        } else if c == '.' {
            out.push_str("__");
        } else {
            out.push('_');
        }
    }
    if out.is_empty() {
        out.push_str("tool");
    }
    if out.chars().next().is_some_and(|c| !(r.name_first)(c)) {
        out.insert_str(0, "t_");
    }
    if out.len() > r.name_max {
        return hashed(provider, &out, tool);
    }
    out
}

/// `base` cut to leave room for `_` and eight hex digits of `seed`'s SHA-256.
fn hashed(provider: Provider, base: &str, seed: &str) -> String {
    let max = provider.rules().name_max;
    let digest = hex::encode(Sha256::digest(seed.as_bytes()));
    let keep = max.saturating_sub(9).min(base.len());
    // every character of `base` is ASCII: any cut is a character boundary
    format!("{}_{}", &base[..keep], &digest[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(provider: Provider, tool: &str, expected: &str) {
        let m = NameMap::build(provider, [tool]);
        let got = m.declared(tool).unwrap_or_default();
        assert_eq!(got, expected, "{provider} {tool}");
        assert!(is_valid(provider, got), "{provider}: {got}");
        assert_eq!(m.tool(got), Some(tool));
    }

    #[test]
    fn names_fit_each_provider() {
        use Provider::*;
        check(OpenAi, "github.create_issue", "github__create_issue");
        check(Anthropic, "github.create_issue", "github__create_issue");
        check(Gemini, "github.create_issue", "github.create_issue");
        check(OpenAi, "web_search", "web_search");
        check(OpenAi, "everything.get-sum", "everything__get-sum");
        check(Gemini, "everything.get-sum", "everything.get-sum");
        check(OpenAi, "mcp.tool name/with:odd", "mcp__tool_name_with_odd");
        check(Gemini, "9lives.op", "t_9lives.op");
        check(Gemini, "-x.op", "t_-x.op");
        check(OpenAi, "9lives.op", "9lives__op");
        check(OpenAi, "", "tool");
        check(OpenAi, "ünïcode.ôp", "_n_code___p");
    }

    #[test]
    fn long_names_keep_their_start_and_stay_distinct() {
        let a = format!("api.{}", "get_repos_owner_repo_actions_runs_run_id_jobs".repeat(2));
        let b = format!("{a}_b");
        for p in Provider::ALL {
            let m = NameMap::build(p, [a.as_str(), b.as_str()]);
            let (da, db) = (m.declared(&a).unwrap_or_default(), m.declared(&b).unwrap_or_default());
            assert!(is_valid(p, da) && is_valid(p, db), "{da} {db}");
            assert_ne!(da, db);
            assert!(da.starts_with("api"), "{da}");
            assert_eq!((m.tool(da), m.tool(db)), (Some(a.as_str()), Some(b.as_str())));
        }
    }

    #[test]
    fn two_tools_that_would_share_a_name_do_not() {
        // `x.y` reads `x__y`, which is another tool's name (and a third's, but for case)
        let tools = ["x.y", "x__y", "X__Y", "x.y"];
        for p in [Provider::OpenAi, Provider::Anthropic] {
            let m = NameMap::build(p, tools);
            assert_eq!(m.len(), 3, "a repeated tool is declared once");
            let names: HashSet<String> = ["x.y", "x__y", "X__Y"]
                .iter()
                .map(|t| m.declared(t).unwrap_or_default().to_ascii_lowercase())
                .collect();
            assert_eq!(names.len(), 3, "distinct ignoring case: {names:?}");
            assert_eq!(m.declared("x.y"), Some("x__y"), "the first keeps the plain form");
            for t in ["x.y", "x__y", "X__Y"] {
                let d = m.declared(t).unwrap_or_default();
                assert!(is_valid(p, d));
                assert_eq!(m.tool(d), Some(t));
            }
        }
    }

    #[test]
    fn validity_follows_the_rules() {
        use Provider::*;
        assert!(is_valid(Gemini, "a.b-c_d"));
        assert!(!is_valid(Gemini, "1abc"));
        assert!(!is_valid(OpenAi, "a.b"));
        assert!(is_valid(OpenAi, &"a".repeat(64)));
        assert!(!is_valid(OpenAi, &"a".repeat(65)));
        assert!(!is_valid(Anthropic, ""));
        assert!(!is_valid(Anthropic, "a b"));
    }

    proptest::proptest! {
        #[test]
        fn any_names_map_to_valid_distinct_names(tools in proptest::collection::vec("\\PC{0,90}", 1..40)) {
            for p in Provider::ALL {
                let m = NameMap::build(p, tools.iter().map(String::as_str));
                let mut seen = HashSet::new();
                for t in &tools {
                    let d = m.declared(t).unwrap_or_default();
                    proptest::prop_assert!(is_valid(p, d), "{} {:?} → {:?}", p, t, d);
                    proptest::prop_assert_eq!(m.tool(d), Some(t.as_str()));
                    seen.insert(d.to_ascii_lowercase());
                }
                let distinct: HashSet<&String> = tools.iter().collect();
                proptest::prop_assert_eq!(seen.len(), distinct.len());
            }
        }
    }
}
