#!/usr/bin/env python3
"""Gmail and account-token costs, each as a difference against a baseline in the same run:

- `send_email` through Chatterfly (a service-account connection, its token cached) versus
  the same kind of request sent straight to the Gmail fake with the same token: added p50
  and p99 (the target for HTTP tools is an added p50 of at most 0.5 ms);
- the refresh path: a `caller` call whose account token must be refreshed first (the
  OAuth peer answers tokens that expire within the refresh margin, so every call refreshes)
  versus the same call with a fresh token: the added time of a refresh.

Run it with the Gmail venv's Python (it signs assertions with google-auth):

    PY=$(scripts/gmail-discovery.sh | cut -d' ' -f2)
    cargo build --release && $PY bench/gmail.py --bin target/release/chatterfly [--calls 1000]

Starts its own oauth2-mock-server (scripts/oauth2.sh), Gmail fake (scripts/gmail-fake.sh)
and `chatterfly serve` on SQLite; only 127.0.0.1 is contacted. Prints Markdown.
"""
import argparse, base64, http.client, json, os, socket, statistics, subprocess, sys, tempfile, time, urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TOKEN = "bench-gmail-token-0123456789abcdefghij"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start(script, *args):
    out = subprocess.run(["bash", os.path.join(ROOT, "scripts", script), str(free_port()), *args],
                         check=True, capture_output=True, text=True).stdout.split()
    return out[0], int(out[1])


class Client:
    """One keep-alive connection, like an agent's HTTP client."""

    def __init__(self, url):
        u = urllib.parse.urlparse(url)
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)

    def call(self, method, path, body=None, headers=None, raw=None):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        h = {"Content-Type": "application/json"} if data is not None else {}
        h.update(headers or {})
        for attempt in (0, 1):
            try:
                self.conn.request(method, path, body=data, headers=h)
                r = self.conn.getresponse()
                text = r.read()
                return r.status, r.getheader("location"), text
            except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
                # the server closes a keep-alive connection idle for 10 s: open a new one
                self.conn.close()
                if attempt:
                    raise


def api(client, method, path, body=None, token=TOKEN, cookie=None):
    h = {"Authorization": f"Bearer {token}"} if token else {}
    if cookie:
        h["Cookie"] = cookie
    st, loc, text = client.call(method, path, body, h)
    return st, loc, (json.loads(text) if text and text[:1] in b"{[" else text)


def cpu_ticks(pid):
    """The server's user + system CPU time so far, in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def timed(fn, n):
    lat = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        lat.append((time.perf_counter() - t) * 1e6)
    lat.sort()
    return statistics.median(lat), lat[int(len(lat) * 0.99) - 1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--calls", type=int, default=1000)
    ap.add_argument("--refresh-calls", type=int, default=200)
    args = ap.parse_args()

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from google.auth import crypt, jwt

    oauth_url, oauth_pid = start("oauth2.sh")
    gmail_url, gmail_pid = start("gmail-fake.sh", oauth_url)
    data = tempfile.mkdtemp(prefix="cf-bench-gmail-")
    port = free_port()
    env = dict(os.environ, CHATTERFLY_ALLOW_PRIVATE="127.0.0.1", CHATTERFLY_BOOTSTRAP_ADMIN_TOKEN=TOKEN,
               RUST_LOG="warn")
    server = subprocess.Popen([args.bin, "serve", "--data-dir", data, "--addr", f"127.0.0.1:{port}"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        cf, fake = Client(url), Client(gmail_url)

        class Fresh:
            """A new connection per request (control calls, not timed)."""

            def __init__(self, base):
                self.base = base

            def call(self, *a, **k):
                c = Client(self.base)
                try:
                    return c.call(*a, **k)
                finally:
                    c.conn.close()

        peer = Fresh(oauth_url)
        for p, base in (("gmail", gmail_url), ("github", oauth_url)):
            st, _, v = api(cf, "PUT", f"/api/admin/oauth-providers/{p}", {
                "client_id": f"{p}-client", "client_secret": f"{p}-secret", "authorize_url": f"{oauth_url}/authorize",
                "token_url": f"{oauth_url}/token", "revoke_url": f"{oauth_url}/revoke", "api_base_url": base})
            assert st == 200, v

        # a service account the fake knows
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
        pub = key.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo).decode()
        sa = "bench@p.iam.gserviceaccount.com"
        fake.call("POST", "/__fake/service-accounts", {"client_email": sa, "public_key_pem": pub})
        key_file = json.dumps({"type": "service_account", "client_email": sa, "private_key": pem,
                               "private_key_id": "k1", "token_uri": f"{gmail_url}/token"})
        st, _, v = api(cf, "POST", "/api/workspaces/default/connections", {
            "name": "Team", "slug": "team", "service_type": "gmail", "base_url": gmail_url,
            "auth": {"type": "service_account", "subject": "alice@example.com", "service_account_json": key_file}})
        assert st == 201, v

        # the same token for the direct path: our own assertion at the fake's /token
        signer = crypt.RSASigner.from_string(pem, "k1")
        now = int(time.time())
        assertion = jwt.encode(signer, {"iss": sa, "sub": "alice@example.com", "aud": f"{gmail_url}/token",
                                        "scope": "https://www.googleapis.com/auth/gmail.send", "iat": now,
                                        "exp": now + 3600}).decode()
        st, _, text = fake.call("POST", "/token", raw=urllib.parse.urlencode({
            "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion}).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded"})
        direct_token = json.loads(text)["access_token"]

        message = {"to": ["Zoë <zoe@example.com>"], "subject": "Grüße — bench", "text": "Hallo " * 20,
                   "html": "<p>" + "Hallo " * 20 + "</p>"}
        # a first message for the direct path (replaced below by Chatterfly's own bytes)
        raw = ("To: =?utf-8?B?Wm/Dqw==?= <zoe@example.com>\r\nSubject: =?utf-8?B?R3LDvMOfZSDigJQgYmVuY2g=?=\r\n"
               "MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\n"
               "Content-Type: text/plain; charset=utf-8\r\n\r\n" + "Hallo " * 20 + "\r\n--b\r\n"
               "Content-Type: text/html; charset=utf-8\r\n\r\n<p>" + "Hallo " * 20 + "</p>\r\n--b--\r\n")
        direct_body = json.dumps({"raw": base64.urlsafe_b64encode(raw.encode()).decode()}).encode()

        def direct():
            st, _, _ = fake.call("POST", "/gmail/v1/users/me/messages/send", raw=direct_body,
                                 headers={"Authorization": f"Bearer {direct_token}"})
            assert st == 200

        def through():
            st, _, v = api(cf, "POST", "/api/workspaces/default/tools/team.send_email/invoke", {"arguments": message})
            assert st == 200, v

        # the same request as a plain HTTP tool (static bearer, the prebuilt message as its
        # argument): Chatterfly's hop without Gmail's own work (MIME, token cache, scopes)
        st, _, v = api(cf, "POST", "/api/workspaces/default/connections", {
            "name": "Raw", "slug": "raw", "service_type": "http", "base_url": gmail_url,
            "auth": {"type": "bearer", "token": direct_token},
            "operations": [{"name": "send", "method": "POST", "path": "/gmail/v1/users/me/messages/send",
                            "input_schema": {"type": "object", "properties": {"raw": {"type": "string"}}}}]})
        assert st == 201, v
        raw_args = {"arguments": {"raw": json.loads(direct_body)["raw"]}}

        def plain():
            st, _, v = api(cf, "POST", "/api/workspaces/default/tools/raw.send/invoke", raw_args)
            assert st == 200 and v["output"]["status"] == 200, v

        # the direct request carries exactly the bytes Chatterfly sent (its MIME message, read
        # back from the fake), so both paths cost the fake the same
        fake.call("POST", "/__fake/reset")
        through()
        sent = json.loads(fake.call("GET", "/__fake/sent")[2])[0]["raw"]
        direct_body = json.dumps({"raw": base64.urlsafe_b64encode(sent.encode()).decode()}).encode()
        raw_args["arguments"]["raw"] = json.loads(direct_body)["raw"]
        for _ in range(50):
            direct()
            through()
            plain()
        if os.environ.get("BENCH_DEBUG"):
            gport = urllib.parse.urlparse(gmail_url).port
            ss = lambda: subprocess.run(["ss", "-tan"], capture_output=True, text=True).stdout.count(f"127.0.0.1:{gport} ")
            before_ss = ss()
            for _ in range(200):
                through()
            print("sockets to the fake before/after 200 calls through:", before_ss, ss())
        rows = []
        hz = os.sysconf("SC_CLK_TCK")
        cpu = {"plain": 0, "through": 0}
        for round_ in range(2):
            fake.call("POST", "/__fake/reset")
            d = timed(direct, args.calls)
            fake.call("POST", "/__fake/reset")
            c0 = cpu_ticks(server.pid)
            p_ = timed(plain, args.calls)
            cpu["plain"] += cpu_ticks(server.pid) - c0
            fake.call("POST", "/__fake/reset")
            c0 = cpu_ticks(server.pid)
            t = timed(through, args.calls)
            cpu["through"] += cpu_ticks(server.pid) - c0
            rows.append((d, p_, t))
        sa_tokens = json.loads(fake.call("GET", "/__fake/stats")[2])

        # the refresh path: a GitHub-style caller connection, the admin's own account
        st, _, v = api(cf, "POST", "/api/workspaces/default/connections", {
            "name": "GH", "slug": "gh", "service_type": "http", "base_url": oauth_url, "auth": {"type": "bearer"},
            "fulfillment": "caller", "oauth_provider": "github",
            "operations": [{"name": "whoami", "method": "GET", "path": "/user"}]})
        assert st == 201, v
        # the session cookie of a sign-in (the callback is a browser's visit)
        c = http.client.HTTPConnection("127.0.0.1", port)
        c.request("POST", "/api/auth/login", body=json.dumps({"token": TOKEN}), headers={"Content-Type": "application/json"})
        r = c.getresponse()
        r.read()
        resp_cookie = [v for k, v in r.getheaders() if k.lower() == "set-cookie"][0].split(";")[0]
        peer.call("POST", "/__test/config", {"expires_in": 30})
        st, _, v = api(cf, "POST", "/api/me/accounts/github/connect", {"tiers": ["read"]})
        auth = urllib.parse.urlparse(v["authorize_url"])
        st, loc, _ = peer.call("GET", auth.path + "?" + auth.query)
        cb = urllib.parse.urlparse(loc)
        st, loc, _ = cf.call("GET", cb.path + "?" + cb.query, headers={"Cookie": resp_cookie})
        assert "connected=github" in (loc or ""), loc

        def whoami():
            st, _, v = api(cf, "POST", "/api/workspaces/default/tools/gh.whoami/invoke", {"arguments": {}})
            assert st == 200, v

        before = json.loads(peer.call("GET", "/__test/stats")[2])["token"].get("refresh_token", 0)
        refreshing = timed(whoami, args.refresh_calls)
        after = json.loads(peer.call("GET", "/__test/stats")[2])["token"].get("refresh_token", 0)
        peer.call("POST", "/__test/config", {"expires_in": 3600})
        whoami()  # one more refresh, to a token that lasts
        cached = timed(whoami, args.refresh_calls)

        print(f"send_email, {args.calls} sequential calls per round, keep-alive, SQLite, release build:\n")
        print("| round | direct p50 | HTTP tool p50 | send_email p50 | added p50 (HTTP tool / send_email) | direct p99 | send_email p99 |")
        print("|---|---|---|---|---|---|---|")
        for i, ((dp50, dp99), (pp50, pp99), (tp50, tp99)) in enumerate(rows, 1):
            print(f"| {i} | {dp50:,.0f} µs | {pp50:,.0f} µs | {tp50:,.0f} µs | {pp50 - dp50:+,.0f} µs / **{tp50 - dp50:+,.0f} µs** | "
                  f"{dp99:,.0f} µs | {tp99:,.0f} µs |")
        per_call = {k: v / hz / (2 * args.calls) * 1e6 for k, v in cpu.items()}
        print(f"\nChatterfly's CPU per call (user + system, from /proc): HTTP tool {per_call['plain']:,.0f} µs, "
              f"send_email {per_call['through']:,.0f} µs")
        print(f"\nservice-account token requests during the measured calls: {sa_tokens['sa_tokens']} "
              "(the token was obtained once during the warm-up and reused)")
        print(f"\nrefresh path, {args.refresh_calls} sequential calls each ({after - before} refreshes in the first run):\n")
        print("| path | p50 | p99 |")
        print("|---|---|---|")
        print(f"| cached token | {cached[0]:,.0f} µs | {cached[1]:,.0f} µs |")
        print(f"| refreshed before each call | {refreshing[0]:,.0f} µs | {refreshing[1]:,.0f} µs |")
        print(f"| added by a refresh | **{refreshing[0] - cached[0]:+,.0f} µs** | {refreshing[1] - cached[1]:+,.0f} µs |")
    finally:
        server.terminate()
        for pid in (oauth_pid, gmail_pid):
            try:
                os.kill(pid, 15)
            except OSError:
                pass


if __name__ == "__main__":
    sys.exit(main())
