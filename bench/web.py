#!/usr/bin/env python3
"""The web UI's cost, each figure as a ratio to fetching the same data as JSON from the API
in the same run (the machines are noisy; the ratio is what is compared):

- JS + CSS shipped per page (every page loads the same modules): bytes, uncompressed;
- the hub with 1,000 connections: the server's time to answer everything the page asks for
  (the HTML shell, its assets, the session, the connections) vs the connections JSON alone;
  and Chromium's time from navigation to the table drawn (its first 100 rows, the count of all) vs a `fetch` + `JSON.parse` of
  the same JSON in the same page, and vs opening the same JSON URL as a page (to its load event);
- the review of GitHub's description (1,223 operations): Chromium's time from choosing the
  file to the review drawn vs a `fetch` of the same import + `JSON.parse` in the same page.

    bench/web.py --bin target/release/chatterfly --webdriver http://127.0.0.1:9515 \
        --github PATH/api.github.com.json [--rounds 5]

Only 127.0.0.1 is contacted. Prints Markdown for docs/benchmarks.md.
"""
import argparse, json, os, statistics, subprocess, tempfile, time, urllib.request

TOKEN = "bench-web-token-0123456789abcdefghijkl"


def call(url, method, path, body=None, headers=None, raw=None):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    h = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    h.update(headers or {})
    req = urllib.request.Request(url + path, data=data, method=method, headers=h)
    with urllib.request.urlopen(req, timeout=300) as r:
        return r.read()


class WebDriver:
    def __init__(self, url):
        self.url = url
        self.profile = tempfile.mkdtemp(prefix="cf-bench-chromium-")
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,900", f"--user-data-dir={self.profile}"]}}}}
        self.session = self._post("/session", caps)["sessionId"]

    def _post(self, path, body):
        req = urllib.request.Request(self.url + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=300) as r:
            return json.load(r)["value"]

    def cmd(self, path, body=None):
        return self._post(f"/session/{self.session}{path}", body or {})

    def go(self, url):
        self.cmd("/url", {"url": url})

    def js(self, script, *args):
        return self.cmd("/execute/sync", {"script": script, "args": list(args)})

    def js_async(self, script, *args):
        return self.cmd("/execute/async", {"script": script, "args": list(args)})

    def find(self, css):
        v = self.cmd("/element", {"using": "css selector", "value": css})
        return list(v.values())[0]

    def send_keys(self, el, text):
        self.cmd(f"/element/{el}/value", {"text": text})

    def click(self, el):
        self.cmd(f"/element/{el}/click")

    def wait(self, script, timeout=300):
        end = time.time() + timeout
        while time.time() < end:
            v = self.js(script)
            if v:
                return v
            time.sleep(0.02)
        raise TimeoutError(script)

    def quit(self):
        req = urllib.request.Request(f"{self.url}/session/{self.session}", method="DELETE")
        urllib.request.urlopen(req, timeout=60).read()


def timed(f):
    t = time.perf_counter()
    f()
    return (time.perf_counter() - t) * 1000


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/chatterfly")
    ap.add_argument("--webdriver", required=True)
    ap.add_argument("--github", required=True)
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    data = tempfile.mkdtemp(prefix="cf-bench-web-")
    env = dict(os.environ, CHATTERFLY_BOOTSTRAP_ADMIN_TOKEN=TOKEN, RUST_LOG="warn")
    proc = subprocess.Popen([a.bin, "serve", "--data-dir", data, "--addr", "127.0.0.1:0"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    for line in proc.stdout:
        if b"listening on http://" in line:
            url = line.decode().rsplit(" ", 1)[1].strip()
            break
    try:
        for i in range(1000):
            call(url, "POST", "/api/workspaces/default/connections", {
                "name": f"Connection {i:04}", "slug": f"c{i:04}", "service_type": "http",
                "base_url": "https://api.example.com", "auth": {"type": "bearer", "token": f"t{i}"},
                "operations": [{"name": "get", "method": "GET", "path": "/items/{{id}}",
                                "input_schema": {"type": "object", "properties": {"id": {"type": "string"}}}}]})
        shell = call(url, "GET", "/connections").decode()
        assets = [p.split('"')[0] for p in shell.split('/assets/')[1:]]
        version = assets[0].split("/")[0]
        names = ["app.js", "api.js", "dom.js", "login.js", "hub.js", "connection.js", "wizard.js", "openapi.js",
                 "mcp.js", "tools.js", "admin.js", "services.js", "audit.js", "app.css"]
        shipped = sum(len(call(url, "GET", f"/assets/{version}/{n}")) for n in names)

        # the server: everything the hub asks for vs the JSON alone
        def page():
            call(url, "GET", "/connections")
            for n in names:
                call(url, "GET", f"/assets/{version}/{n}")
            call(url, "GET", "/api/me")  # (the page reads its session; the same work)
            call(url, "GET", "/api/workspaces/default/connections")
        def json_only():
            call(url, "GET", "/api/workspaces/default/connections")
        server_page, server_json = [], []
        for _ in range(a.rounds):
            server_json.append(timed(json_only))
            server_page.append(timed(page))

        wd = WebDriver(a.webdriver)
        try:
            wd.go(url + "/login")
            wd.send_keys(wd.find("#token"), TOKEN)
            wd.click(wd.find("#token-form button[type=submit]"))
            wd.wait("return location.pathname === '/connections' && document.documentElement.dataset.ready")
            hub, hub_json, hub_nav = [], [], []
            for _ in range(a.rounds):
                # the same JSON opened as a page: Chromium's own floor for a navigation
                wd.go(url + "/api/workspaces/default/connections")
                hub_nav.append(float(wd.wait("const n = performance.getEntriesByType('navigation')[0]; return n && n.loadEventEnd > 0 && n.loadEventEnd")))
                wd.go(url + "/connections")
                # the page lists 100 rows at a time (search reaches all 1,000)
                ready = wd.wait("return document.documentElement.dataset.ready && document.querySelectorAll('#connections tbody tr').length === 100 && document.querySelector('.count').textContent.startsWith('1000 of 1000') && document.documentElement.dataset.ready")
                load = wd.js("return performance.getEntriesByType('navigation')[0].loadEventEnd")
                hub.append(float(ready))
                hub_json.append(wd.js_async("""const done = arguments[0]; const t = performance.now();
                    fetch('/api/workspaces/default/connections').then(r => r.text()).then(t2 => { JSON.parse(t2); done(performance.now() - t); });"""))
            gh, gh_json = [], []
            for _ in range(a.rounds):
                wd.go(url + "/connections/new?type=openapi")
                wd.wait("return document.documentElement.dataset.ready")
                wd.js("delete document.documentElement.dataset.reviewed; window.__t0 = performance.now();")
                wd.send_keys(wd.find("#spec-file"), a.github)
                wd.click(wd.find("#import"))
                done = wd.wait("return document.documentElement.dataset.reviewed")
                gh.append(float(done) - float(wd.js("return window.__t0")))
                gh_json.append(wd.js_async("""const done = arguments[0]; const f = document.querySelector('#spec-file').files[0];
                    fetch('/api/auth/session').then(r => r.json()).then(s => {
                      const t = performance.now(); const body = new FormData(); body.append('file', f);
                      return fetch('/api/workspaces/default/connections/import/openapi', {method: 'POST', body,
                        headers: {'X-CSRF-Token': s.csrf_token}}).then(r => r.text()).then(x => { JSON.parse(x); done(performance.now() - t); });
                    });"""))
        finally:
            wd.quit()
        med = statistics.median
        print(f"| JS + CSS shipped per page | {shipped / 1024:.1f} KiB | target ≤ 100 KB |")
        print(f"| hub, 1,000 connections: server, page (shell + assets + me + list) / JSON list | {med(server_page):.1f} / {med(server_json):.1f} ms | **{med(server_page) / med(server_json):.2f}×** |")
        print(f"| hub, 1,000 connections: Chromium, navigation → table drawn / fetch + parse | {med(hub):.0f} / {med(hub_json):.0f} ms | **{med(hub) / med(hub_json):.2f}×** |")
        print(f"| hub, 1,000 connections: Chromium, navigation → table drawn / navigation to the JSON → its load event | {med(hub):.0f} / {med(hub_nav):.0f} ms | **{med(hub) / med(hub_nav):.2f}×** |")
        print(f"| GitHub review (1,223 ops): Chromium, file chosen → review drawn / fetch + parse | {med(gh):.0f} / {med(gh_json):.0f} ms | **{med(gh) / med(gh_json):.2f}×** |")
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
