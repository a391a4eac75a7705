//! The secrets in play: every credential this process is about to send, or has sent
//! within the last minute, in every form a dependency could print it (those of
//! [`crate::forms`]; and a word with a `%` is decoded and checked again). The log writer
//! ([`redact_log`]) replaces them in every line, whoever wrote it: our code never formats a
//! secret, but a dependency (an HTTP or MCP client logging a server's error body that echoes
//! the Authorization header) can.
//!
//! Whoever opens or receives a credential for a call holds a [`SecretGuard`] for as long as
//! the credential is in use (an HTTP call, an MCP session); once the last guard is dropped
//! the secret stays listed for [`GRACE`] more, for the lines a closing connection writes
//! after its owner let go. Nothing here is ever written anywhere: it lives only in memory,
//! like the credential itself.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use aho_corasick::{AhoCorasick, MatchKind};

/// How long a secret stays listed after its last guard was dropped.
pub const GRACE: Duration = Duration::from_secs(60);
/// What replaces a secret.
pub const MARK: &str = "[REDACTED]";
/// Shorter values are not listed: they would blank out ordinary words, and no credential is
/// that short.
const MIN_LEN: usize = crate::forms::MIN_LEN;
/// The matcher looks for each form's first bytes only, then follows the form as far as
/// the line does: its size does not grow with a secret's length (a caller may send long
/// keys, many of them), and a secret cut short by whoever printed it is hidden too.
const PREFIX: usize = 48;
/// The matcher over every listed secret is rebuilt at most this often; secrets listed
/// since are looked for with a small matcher of their own meanwhile, so that a stream of
/// new secrets costs a small build each, not a build of the whole set.
const REBUILD_EVERY: Duration = Duration::from_secs(1);
/// ...or sooner, when that many secrets wait in the small one.
const RECENT_MAX: usize = 1024;
/// The most bytes of released secrets kept for their grace: past it the longest-released
/// go first (a flood of calls with long, distinct keys must not hold memory for a minute).
/// Secrets in use are always kept.
const RELEASED_BUDGET: usize = 32 * 1024 * 1024;

struct Entry {
    refs: usize,
    released: Option<Instant>,
    /// The first [`PREFIX`] bytes of each of the value's [`forms`], in their order.
    prefixes: Vec<Box<str>>,
}

/// An Aho-Corasick automaton over the forms' prefixes, each prefix with the secrets (and
/// which of their forms) it begins.
struct Matcher {
    ac: AhoCorasick,
    owners: Vec<Vec<(Arc<str>, usize)>>,
}

#[derive(Default)]
struct State {
    /// Listed secrets, by value.
    entries: HashMap<Arc<str>, Entry>,
    /// Bumped for each newly listed value.
    seq: u64,
    /// Values listed after the whole-set matcher was built, with their `seq`.
    recent: Vec<(u64, Arc<str>)>,
    /// The whole-set matcher and the last `seq` it covers.
    base: Option<(u64, Arc<Matcher>)>,
    base_at: Option<Instant>,
    base_building: bool,
    removed_since_base: bool,
    /// The matcher over `recent`, and the last `seq` it covers.
    recent_matcher: Option<(u64, Option<Arc<Matcher>>)>,
    /// When released secrets past their grace were last dropped.
    pruned: Option<Instant>,
    /// Bytes held by the entries (values and prefixes).
    bytes: usize,
}

fn entry_bytes(k: &str, e: &Entry) -> usize {
    k.len() + e.prefixes.iter().map(|p| p.len()).sum::<usize>()
}

static STATE: LazyLock<Mutex<State>> = LazyLock::new(|| Mutex::new(State::default()));

fn state() -> MutexGuard<'static, State> {
    // A poisoned lock only means another thread panicked while holding it; the map is
    // still consistent (every change is a single insert or field write).
    STATE.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Keeps a secret listed while it is alive (and for [`GRACE`] after).
pub struct SecretGuard {
    keys: Vec<Arc<str>>,
}

impl std::fmt::Debug for SecretGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretGuard({} values)", self.keys.len())
    }
}

impl Clone for SecretGuard {
    fn clone(&self) -> Self {
        let mut st = state();
        for k in &self.keys {
            if let Some(e) = st.entries.get_mut(k) {
                e.refs += 1;
                e.released = None;
            }
        }
        Self {
            keys: self.keys.clone(),
        }
    }
}

impl Drop for SecretGuard {
    fn drop(&mut self) {
        let mut st = state();
        let now = Instant::now();
        for k in &self.keys {
            if let Some(e) = st.entries.get_mut(k) {
                e.refs = e.refs.saturating_sub(1);
                if e.refs == 0 {
                    e.released = Some(now);
                }
            }
        }
    }
}

/// The first [`PREFIX`] bytes of `form`, cut at a character's end.
fn prefix(form: &str) -> Box<str> {
    let mut end = form.len().min(PREFIX);
    while !form.is_char_boundary(end) {
        end -= 1;
    }
    form[..end].into()
}

/// Lists `values` (one credential's secret parts; a Basic pair is listed as `user:pass` too
/// by the caller) until the guard and its clones are dropped, plus [`GRACE`].
pub fn hold<'a>(values: impl IntoIterator<Item = &'a str>) -> SecretGuard {
    let mut keys: Vec<Arc<str>> = values
        .into_iter()
        .filter(|v| v.len() >= MIN_LEN)
        .map(Arc::from)
        .collect();
    keys.sort();
    keys.dedup();
    let mut st = state();
    let now = Instant::now();
    prune(&mut st, now);
    let mut fresh = Vec::new();
    for k in &keys {
        match st.entries.get_mut(k) {
            Some(e) => {
                e.refs += 1;
                e.released = None;
            }
            None => fresh.push(k.clone()),
        }
    }
    if !fresh.is_empty() {
        // the forms are worked out without the lock (they are long for a long key)
        drop(st);
        let prepared: Vec<(Arc<str>, Vec<Box<str>>)> = fresh
            .into_iter()
            .map(|k| {
                let prefixes = crate::forms::secret_forms(&k).iter().map(|f| prefix(f)).collect();
                (k, prefixes)
            })
            .collect();
        st = state();
        for (k, prefixes) in prepared {
            if let Some(e) = st.entries.get_mut(&k) {
                // listed by another thread meanwhile
                e.refs += 1;
                e.released = None;
                continue;
            }
            st.seq += 1;
            let seq = st.seq;
            st.recent.push((seq, k.clone()));
            let e = Entry {
                refs: 1,
                released: None,
                prefixes,
            };
            st.bytes += entry_bytes(&k, &e);
            st.entries.insert(k, e);
        }
        if st.bytes > RELEASED_BUDGET {
            shed(&mut st);
        }
    }
    SecretGuard { keys }
}

/// Drops released secrets past their grace, at most once a second: `hold` runs on every
/// tool call, and a walk over every listed secret each time would put the whole set on
/// the call path (keeping one a little longer only redacts more).
fn prune(st: &mut State, now: Instant) {
    if st
        .pruned
        .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1))
    {
        return;
    }
    st.pruned = Some(now);
    let before = st.entries.len();
    let mut freed = 0;
    st.entries.retain(|k, e| {
        let keep = e.refs > 0 || e.released.is_none_or(|t| now.duration_since(t) < GRACE);
        if !keep {
            freed += entry_bytes(k, e);
        }
        keep
    });
    st.bytes = st.bytes.saturating_sub(freed);
    if st.entries.len() != before {
        st.removed_since_base = true;
        forget_removed(st);
    }
}

/// The values waiting for the next whole-set build that are no longer listed: not kept
/// (with no log line written, no build comes to clear them).
fn forget_removed(st: &mut State) {
    let State { recent, entries, .. } = st;
    recent.retain(|(_, k)| entries.contains_key(k));
}

/// Drops released secrets, longest-released first, until the entries take three quarters
/// of [`RELEASED_BUDGET`] (or only secrets in use are left).
fn shed(st: &mut State) {
    let mut released: Vec<(Instant, Arc<str>)> = st
        .entries
        .iter()
        .filter(|(_, e)| e.refs == 0)
        .filter_map(|(k, e)| e.released.map(|t| (t, k.clone())))
        .collect();
    released.sort_by_key(|(t, _)| *t);
    for (_, k) in released {
        if st.bytes <= RELEASED_BUDGET / 4 * 3 {
            break;
        }
        if let Some(e) = st.entries.remove(&k) {
            st.bytes = st.bytes.saturating_sub(entry_bytes(&k, &e));
            st.removed_since_base = true;
        }
    }
    forget_removed(st);
}

fn build<'a>(items: impl IntoIterator<Item = (&'a Arc<str>, &'a [Box<str>])>) -> Option<Matcher> {
    let mut index: HashMap<&'a str, usize> = HashMap::new();
    let mut patterns: Vec<&'a str> = Vec::new();
    let mut owners: Vec<Vec<(Arc<str>, usize)>> = Vec::new();
    for (value, prefixes) in items {
        for (form, p) in prefixes.iter().enumerate() {
            let id = *index.entry(&**p).or_insert_with(|| {
                patterns.push(&**p);
                owners.push(Vec::new());
                patterns.len() - 1
            });
            owners[id].push((value.clone(), form));
        }
    }
    if patterns.is_empty() {
        return None;
    }
    let ac = AhoCorasick::builder()
        .match_kind(MatchKind::LeftmostLongest)
        .build(patterns)
        .ok()?;
    Some(Matcher { ac, owners })
}

/// The whole-set matcher and the one for secrets listed since it was built.
fn matchers() -> [Option<Arc<Matcher>>; 2] {
    let now = Instant::now();
    let mut st = state();
    prune(&mut st, now);
    if st.entries.is_empty() {
        return [None, None];
    }
    let stale = st.base.is_none()
        || st.recent.len() > RECENT_MAX
        || ((!st.recent.is_empty() || st.removed_since_base)
            && st.base_at.is_none_or(|t| now.duration_since(t) >= REBUILD_EVERY));
    if stale && !st.base_building {
        st.base_building = true;
        let seq = st.seq;
        let snapshot: Vec<(Arc<str>, Vec<Box<str>>)> = st
            .entries
            .iter()
            .map(|(k, e)| (k.clone(), e.prefixes.clone()))
            .collect();
        // the big build runs without the lock: calls go on listing their secrets
        drop(st);
        let built = build(snapshot.iter().map(|(k, p)| (k, p.as_slice()))).map(Arc::new);
        st = state();
        st.base_building = false;
        if let Some(m) = built {
            st.base = Some((seq, m));
            st.base_at = Some(now);
            st.removed_since_base = false;
            st.recent.retain(|(s, _)| *s > seq);
            st.recent_matcher = None;
        }
    }
    let base = st.base.as_ref().map(|(_, m)| m.clone());
    let Some(last) = st.recent.last().map(|(s, _)| *s) else {
        return [base, None];
    };
    if st.recent_matcher.as_ref().map(|(s, _)| *s) != Some(last) {
        let st_ref = &*st;
        let built = build(
            st_ref
                .recent
                .iter()
                .filter_map(|(_, v)| st_ref.entries.get(v).map(|e| (v, e.prefixes.as_slice()))),
        )
        .map(Arc::new);
        st.recent_matcher = Some((last, built));
    }
    let recent = st.recent_matcher.as_ref().and_then(|(_, m)| m.clone());
    [base, recent]
}

/// `line` with each match of `m` replaced by [`MARK`], as far as the secret's form goes on
/// in the line; `None` when nothing matched.
fn replace(m: &Matcher, line: &str) -> Option<String> {
    if !m.ac.is_match(line) {
        return None;
    }
    let bytes = line.as_bytes();
    let mut out = String::with_capacity(line.len());
    let (mut copied, mut pos) = (0, 0);
    while pos < line.len() {
        let Some(found) = m.ac.find(aho_corasick::Input::new(line).span(pos..line.len())) else {
            break;
        };
        let start = found.start();
        let mut end = found.end();
        for (value, form) in &m.owners[found.pattern().as_usize()] {
            if let Some(full) = crate::forms::secret_forms(value).get(*form) {
                let same = bytes[start..]
                    .iter()
                    .zip(full.as_bytes())
                    .take_while(|(a, b)| a == b)
                    .count();
                end = end.max(start + same);
            }
        }
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        out.push_str(&line[copied..start]);
        out.push_str(MARK);
        copied = end;
        pos = end;
    }
    out.push_str(&line[copied..]);
    Some(out)
}

/// `line` with every secret in play replaced by [`MARK`], and any `Bearer …` / `Basic …`
/// credential too (a defence for secrets no guard announced).
pub fn redact_log(line: &str) -> Cow<'_, str> {
    let mut out = Cow::Borrowed(line);
    let ms = matchers();
    for m in ms.iter().flatten() {
        if let Some(replaced) = replace(m, &out) {
            out = Cow::Owned(replaced);
        }
    }
    if out.contains('%')
        && let Some(replaced) = redact_encoded_tokens(&out, &ms)
    {
        out = Cow::Owned(replaced);
    }
    match scrub_auth_schemes(&out) {
        Some(s) => Cow::Owned(s),
        None => out,
    }
}

/// Percent-encoding has many spellings: each word of `line` with a `%` is decoded, up to
/// three times, and replaced whole when a secret shows in it decoded
/// ([`crate::forms::redact_encoded_words`]).
fn redact_encoded_tokens(line: &str, ms: &[Option<Arc<Matcher>>; 2]) -> Option<String> {
    let holds = |decoded: &[u8]| ms.iter().flatten().any(|m| m.ac.is_match(decoded));
    let out = crate::forms::redact_encoded_words(line.as_bytes(), MARK, holds)?;
    // whole words (cut at ASCII delimiters) were replaced by ASCII: still UTF-8
    Some(String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
}

/// Replaces the credential after `Bearer ` / `Basic ` (any case), as an Authorization header
/// value would show it, however it got into the text.
fn scrub_auth_schemes(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let at = |i: usize, word: &[u8]| {
        bytes
            .get(i..i + word.len())
            .is_some_and(|b| b.eq_ignore_ascii_case(word))
    };
    if !(0..bytes.len()).any(|i| at(i, b"bearer") || at(i, b"basic")) {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut changed = false;
    let mut i = 0;
    let mut copied = 0;
    while i < bytes.len() {
        // bytes, not string slices: the text is any UTF-8, the words looked for are ASCII;
        // the scheme as an Authorization header writes it (`Bearer`, `BASIC`), so that a
        // connection named `basic` does not blank the next field of a line
        let exact = |w: &[u8]| bytes.get(i..i + w.len()) == Some(w);
        let scheme = if exact(b"Bearer") || exact(b"BEARER") {
            6
        } else if exact(b"Basic") || exact(b"BASIC") {
            5
        } else {
            0
        };
        let word_start = i == 0 || !bytes[i - 1].is_ascii_alphanumeric();
        if scheme > 0 && word_start {
            // one or more spaces (or `=`/`:` with optional spaces), then the credential
            let mut j = i + scheme;
            let mut sep = 0;
            while j < bytes.len() && (bytes[j] == b' ' || bytes[j] == b'\t') {
                j += 1;
                sep += 1;
            }
            let start = j;
            while j < bytes.len() && is_token_byte(bytes[j]) {
                j += 1;
            }
            if sep > 0 && looks_like_credential(&text[start..j]) {
                out.push_str(&text[copied..start]);
                out.push_str(MARK);
                copied = j;
                changed = true;
                i = j;
                continue;
            }
        }
        i += 1;
    }
    if !changed {
        return None;
    }
    out.push_str(&text[copied..]);
    Some(out)
}

/// Not an ordinary word ("a bearer token was refused"): long, or with a digit or a
/// symbol in it.
fn looks_like_credential(s: &str) -> bool {
    s.len() >= 20 || (s.len() >= 8 && s.bytes().any(|b| !b.is_ascii_alphabetic()))
}

/// Characters of RFC 6750's `b64token` (and of base64).
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tests that release secrets and expect them listed for their grace, and the one that
    /// sheds released secrets, one at a time.
    static GRACE_TESTS: Mutex<()> = Mutex::new(());

    #[test]
    fn held_secrets_are_replaced_in_every_form_until_released() {
        let _serial = GRACE_TESTS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let secret = "tok/en+Secret value-12345";
        let g = hold([secret]);
        for form in crate::forms::secret_forms(secret) {
            let line = format!("ERROR worker quit: HTTP 400: auth={form} and more");
            let out = redact_log(&line);
            assert!(!out.contains(&form), "{form} survived: {out}");
            assert!(out.contains(MARK), "{out}");
        }
        let g2 = g.clone();
        drop(g);
        assert!(redact_log(secret).contains(MARK), "a clone keeps it listed");
        drop(g2);
        // released: still listed during the grace period
        assert!(redact_log(secret).contains(MARK));
    }

    #[test]
    fn a_long_secret_is_hidden_whole_or_cut_short() {
        let secret: String = (0..4000).map(|i| ["!", "a", "%", "&", "Z", "9"][i % 6]).collect();
        let _g = hold([secret.as_str()]);
        for form in crate::forms::secret_forms(&secret) {
            for shown in [&form[..], &form[..100], &form[..PREFIX + 1]] {
                let line = format!("error: upstream said {shown} (end)");
                assert_eq!(
                    redact_log(&line),
                    "error: upstream said [REDACTED] (end)",
                    "{}",
                    &shown[..20]
                );
            }
        }
    }

    #[test]
    fn many_long_secrets_keep_the_matcher_small() {
        let guards: Vec<SecretGuard> = (0..2000)
            .map(|i| {
                let v = format!("{i:06}-{}", "+/=&?".repeat(800));
                hold([v.as_str()])
            })
            .collect();
        let [base, recent] = matchers();
        let size: usize = [base, recent].iter().flatten().map(|m| m.ac.memory_usage()).sum();
        // 2,000 values of 4 KB in 8 forms each are 100 MB of text: the matcher holds a
        // prefix of each form
        assert!(size < 64 * 1024 * 1024, "{size} bytes");
        let last = format!("{:06}-{}", 1999, "+/=&?".repeat(800));
        assert_eq!(redact_log(&format!("x {last} y")), "x [REDACTED] y");
        drop(guards);
    }

    #[test]
    fn released_secrets_are_bounded_in_memory() {
        let _serial = GRACE_TESTS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // a flood of calls with long distinct keys, each released at once
        for i in 0..3000 {
            let v = format!("{i:06}-{}", "k".repeat(16 * 1024));
            drop(hold([v.as_str()]));
        }
        let (bytes, waiting) = {
            let st = state();
            (st.bytes, st.recent.iter().map(|(_, k)| k.len()).sum::<usize>())
        };
        assert!(bytes <= RELEASED_BUDGET + 4 * 1024 * 1024, "{bytes} bytes held");
        assert!(
            waiting <= RELEASED_BUDGET + 4 * 1024 * 1024,
            "{waiting} bytes wait for a build no log line asked for"
        );
        // the latest are still hidden during their grace
        let last = format!("{:06}-{}", 2999, "k".repeat(16 * 1024));
        assert_eq!(redact_log(&format!("x {last} y")), "x [REDACTED] y");
    }

    #[test]
    fn log_lines_hide_every_form_a_call_output_hides() {
        use base64::Engine;
        use base64::engine::general_purpose::STANDARD;
        let secret = "Lg@ry-9f3e/+LOGFORM=x";
        let _g = hold([secret, "admin:Lg@ry-9f3e/+LOGFORM=x"]);
        let b64 = STANDARD.encode(format!("Bearer {secret}"));
        let basic = crate::forms::percent_encoded(&STANDARD.encode(format!("admin:{secret}")));
        for echoed in [
            secret.to_lowercase(),
            secret.to_uppercase(),
            "Lg%2540ry-9f3e%252F%252BLOGFORM%253Dx".to_owned(), // encoded twice
            "Lg%40ry-9f3e/%2BLOGFORM%3Dx".to_owned(),           // `/` left as is
            "Lg%40ry-9f3e%2f%2bLOGFORM%3dx".to_owned(),         // lowercase hex
            b64.clone(),
            format!("Basic%20{basic}"),
        ] {
            let line = format!("received notification: {{\"echo\":\"{echoed}\"}} done");
            let out = redact_log(&line);
            assert!(!out.contains(&echoed), "{echoed} stayed: {out}");
            assert!(!out.contains("LOGFORM") && !out.contains("logform"), "{out}");
            assert!(
                out.starts_with("received notification") && out.ends_with("done"),
                "{out}"
            );
        }
        // a word with `%` and no secret in it is left alone
        assert_eq!(redact_log("path=/a%20b ok"), "path=/a%20b ok");
    }

    #[test]
    fn short_values_are_not_listed() {
        let _g = hold(["ab"]);
        assert_eq!(redact_log("ab cd"), "ab cd");
    }

    #[test]
    fn authorization_values_are_scrubbed_without_a_guard() {
        for (input, expected) in [
            ("auth=Bearer abcdef123", "auth=Bearer [REDACTED]"),
            ("Authorization: Basic dXNlcjpwYXNz==", "Authorization: Basic [REDACTED]"),
            ("BEARER  x.y.z-w.v", "BEARER  [REDACTED]"),
            ("Bearer abcdefghijklmnopqrstuvwxyz", "Bearer [REDACTED]"),
            ("a bearer token was refused", "a bearer token was refused"),
            (
                "connection=basic service_type=http",
                "connection=basic service_type=http",
            ),
            ("basic auth", "basic auth"),
            ("Bearer [REDACTED]", "Bearer [REDACTED]"),
            ("no credential here", "no credential here"),
            (
                "summary=\"select …\" uri=/x/basic-auth_user_passwd/é",
                "summary=\"select …\" uri=/x/basic-auth_user_passwd/é",
            ),
            ("é Bearer ééééé1234 …", "é Bearer ééééé1234 …"),
            ("…Bearer abc123def…", "…Bearer [REDACTED]…"),
        ] {
            assert_eq!(redact_log(input), expected, "{input}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_text_is_redacted_without_panicking(text in "\\PC{0,200}", secret in "[a-zA-Z0-9]{8,20}") {
            let _g = hold([secret.as_str()]);
            let line = format!("{text}{secret}{text}");
            let out = redact_log(&line);
            proptest::prop_assert!(!out.contains(secret.as_str()));
            let _ = redact_log(&text);
        }
    }
}
