//! The web UI: one HTML shell for every page and the ES modules and stylesheet it loads,
//! all embedded in the binary. The pages call the JSON API like any client (with the
//! session cookie and its CSRF token), so no rule lives here. Assets are served under
//! `/assets/<hash>/` (the hash of all of them: a new build never meets a stale cache) with
//! a year of caching; HTML is never cached. Every response here carries the CSP and the
//! other browser protections.

use std::sync::OnceLock;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

/// The embedded files: (name, content type, text).
const ASSETS: &[(&str, &str, &str)] = &[
    ("app.js", JS, include_str!("../web/app.js")),
    ("api.js", JS, include_str!("../web/api.js")),
    ("dom.js", JS, include_str!("../web/dom.js")),
    ("login.js", JS, include_str!("../web/login.js")),
    ("hub.js", JS, include_str!("../web/hub.js")),
    ("connection.js", JS, include_str!("../web/connection.js")),
    ("wizard.js", JS, include_str!("../web/wizard.js")),
    ("openapi.js", JS, include_str!("../web/openapi.js")),
    ("mcp.js", JS, include_str!("../web/mcp.js")),
    ("tools.js", JS, include_str!("../web/tools.js")),
    ("admin.js", JS, include_str!("../web/admin.js")),
    ("services.js", JS, include_str!("../web/services.js")),
    ("audit.js", JS, include_str!("../web/audit.js")),
    ("accounts.js", JS, include_str!("../web/accounts.js")),
    ("participants.js", JS, include_str!("../web/participants.js")),
    ("agents.js", JS, include_str!("../web/agents.js")),
    ("workflows.js", JS, include_str!("../web/workflows.js")),
    ("onboard.js", JS, include_str!("../web/onboard.js")),
    ("app.css", "text/css; charset=utf-8", include_str!("../web/app.css")),
];
const JS: &str = "text/javascript; charset=utf-8";

/// The pages the shell serves (the modules route within them).
const PAGES: &[&str] = &[
    "/",
    "/login",
    "/connections",
    "/connections/new",
    "/connections/{slug}",
    "/tools",
    "/agents",
    "/agents/new",
    "/agents/{id}",
    "/agents/{id}/runs/{run_id}",
    "/workflows",
    "/workflows/new",
    "/workflows/{id}",
    "/workflows/{id}/runs/{run_id}",
    "/admin/workspaces",
    "/admin/users",
    "/admin/service-credentials",
    "/admin/oauth-providers",
    "/settings/workspace/services",
    "/settings/accounts",
    "/participants",
    "/audit",
    "/onboard",
];

pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
     form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// The hash that names this build's assets.
pub fn asset_version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| {
        let mut h = Sha256::new();
        for (name, _, text) in ASSETS {
            h.update(name.as_bytes());
            h.update([0]);
            h.update(text.as_bytes());
        }
        hex::encode(&h.finalize()[..8])
    })
}

fn shell() -> &'static str {
    static SHELL: OnceLock<String> = OnceLock::new();
    SHELL.get_or_init(|| {
        let v = asset_version();
        format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>Chatterfly Connections</title>\
             <link rel=\"stylesheet\" href=\"/assets/{v}/app.css\">\
             <script type=\"module\" src=\"/assets/{v}/app.js\"></script></head>\
             <body><div id=\"app\"><noscript>Chatterfly's pages need JavaScript.</noscript></div></body></html>\n"
        )
    })
}

fn protect(mut response: Response, cache: &'static str) -> Response {
    let h = response.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}

/// A small page that says why something failed and moves the browser on to `target` (a
/// path of ours) at once: the status stays the error's, the page a person sees is the one
/// at `target`. No script (the CSP allows none inline): a meta refresh and a link.
pub fn failure_page(status: StatusCode, message: &str, target: &str, link_text: &str) -> Response {
    let esc = |t: &str| {
        t.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let body = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"0;url={t}\"><title>Chatterfly</title></head>\
         <body><p>{m}</p><p><a href=\"{t}\">{l}</a></p></body></html>\n",
        t = esc(target),
        m = esc(message),
        l = esc(link_text)
    );
    let mut r = protect(
        ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response(),
        "no-store",
    );
    *r.status_mut() = status;
    r
}

/// Any other path outside `/api`: the shell with 404 (the page says there is nothing here).
pub async fn not_found_page() -> Response {
    let mut r = page().await;
    *r.status_mut() = StatusCode::NOT_FOUND;
    r
}

pub async fn page() -> Response {
    protect(
        ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], shell()).into_response(),
        "no-store",
    )
}

async fn asset(Path((version, name)): Path<(String, String)>) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, content_type, text)) if version == asset_version() => protect(
            ([(header::CONTENT_TYPE, *content_type)], *text).into_response(),
            "public, max-age=31536000, immutable",
        ),
        _ => protect(
            (
                StatusCode::NOT_FOUND,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                "not found",
            )
                .into_response(),
            "no-store",
        ),
    }
}

/// The pages and their assets.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let mut r = Router::new().route("/assets/{version}/{name}", get(asset));
    for p in PAGES {
        r = r.route(p, get(page));
    }
    r
}

/// The total size of the embedded JavaScript and CSS (a page loads only its own modules).
pub fn shipped_bytes() -> usize {
    ASSETS.iter().map(|(_, _, t)| t.len()).sum()
}

/// The most JavaScript and CSS one page loads: the shell's modules and stylesheet, then the
/// page's module and everything it imports (modules are loaded when a page is visited).
pub fn largest_page_bytes() -> usize {
    let text = |name: &str| ASSETS.iter().find(|(n, _, _)| *n == name).map_or("", |(_, _, t)| *t);
    fn imports(t: &str) -> Vec<String> {
        t.lines()
            .filter(|l| l.starts_with("import "))
            .filter_map(|l| {
                l.rsplit("\"./")
                    .next()
                    .and_then(|f| f.split('"').next())
                    .map(str::to_owned)
            })
            .collect()
    }
    let closure = |root: &str| {
        let mut seen: Vec<String> = vec![root.to_owned()];
        let mut i = 0;
        while i < seen.len() {
            for f in imports(text(&seen[i])) {
                if !seen.contains(&f) {
                    seen.push(f);
                }
            }
            i += 1;
        }
        seen
    };
    let shell = closure("app.js");
    ASSETS
        .iter()
        .map(|(page, _, _)| {
            let mut files = shell.clone();
            for f in closure(page) {
                if !files.contains(&f) {
                    files.push(f);
                }
            }
            files.iter().map(|f| text(f).len()).sum::<usize>() + text("app.css").len()
        })
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shell_names_this_builds_assets_and_nothing_inline() {
        let s = shell();
        assert!(s.contains(&format!("/assets/{}/app.js", asset_version())));
        assert!(!s.contains("<script>") && !s.contains("style="), "{s}");
        // every module imported is embedded
        for (_, _, text) in ASSETS {
            for line in text.lines().filter(|l| l.starts_with("import ")) {
                let Some(file) = line.rsplit("\"./").next().and_then(|f| f.split('"').next()) else {
                    continue;
                };
                assert!(
                    ASSETS.iter().any(|(n, _, _)| *n == file),
                    "{file} is imported but not embedded"
                );
            }
        }
        // what one page loads stays within 100 KB (the modules are loaded per page)
        assert!(largest_page_bytes() < 100 * 1024, "{} bytes", largest_page_bytes());
        assert!(largest_page_bytes() < shipped_bytes());
    }
}
