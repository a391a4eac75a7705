#!/usr/bin/env python3
"""Telegram and participant costs, each as a difference against a baseline in the same run:

- `send_message` through Chatterfly (a static bot connection) versus the same request sent
  straight to the Bot API look-alike (telegram-test-api): added p50 and p99;
- the same request as a plain `http` tool (Chatterfly's hop without Telegram's checks);
- a call on a participant's behalf (their key looked up, their role checked, their key
  opened) versus the same call on a `static` connection with the same key: the added
  cost of the participant.

    cargo build --release && python3 bench/participants.py --bin target/release/chatterfly [--calls 1000]

Starts its own telegram-test-api (scripts/telegram.sh) and `chatterfly serve` on SQLite;
only 127.0.0.1 is contacted. Calls of the two paths alternate, so both see the same
machine. Prints Markdown.
"""
import argparse, http.client, json, os, socket, statistics, subprocess, tempfile, time, urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TOKEN = "bench-participants-token-0123456789abcdef"
BOT = "5551234:AAHbenchbenchbenchbenchbench_-xyz"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Client:
    """One keep-alive connection, like an agent's HTTP client."""

    def __init__(self, url):
        u = urllib.parse.urlparse(url)
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)

    def call(self, method, path, body=None, headers=None):
        data = json.dumps(body).encode() if body is not None else None
        h = {"Content-Type": "application/json"} if data is not None else {}
        h.update(headers or {})
        for attempt in (0, 1):
            try:
                self.conn.request(method, path, body=data, headers=h)
                r = self.conn.getresponse()
                text = r.read()
                return r.status, (json.loads(text) if text[:1] in b"{[" else text)
            except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
                self.conn.close()
                if attempt:
                    raise


def paired(a, b, n):
    """Alternates a and b n times each; their latencies in microseconds, sorted."""
    la, lb = [], []
    for i in range(n):
        for fn, out in ((a, la), (b, lb)) if i % 2 == 0 else ((b, lb), (a, la)):
            t = time.perf_counter()
            fn()
            out.append((time.perf_counter() - t) * 1e6)
    la.sort()
    lb.sort()
    return la, lb


def p(lat, q):
    return lat[min(len(lat) - 1, int(len(lat) * q))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--calls", type=int, default=1000)
    args = ap.parse_args()
    out = subprocess.run(["bash", os.path.join(ROOT, "scripts", "telegram.sh"), str(free_port())],
                         check=True, capture_output=True, text=True).stdout.split()
    tg_url, tg_pid = out[0], int(out[1])
    data = tempfile.mkdtemp(prefix="cf-bench-participants-")
    port = free_port()
    env = dict(os.environ, CHATTERFLY_ALLOW_PRIVATE="127.0.0.1", CHATTERFLY_BOOTSTRAP_ADMIN_TOKEN=TOKEN,
               RUST_LOG="warn")
    server = subprocess.Popen([args.bin, "serve", "--data-dir", data, "--addr", f"127.0.0.1:{port}"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        cf, tg = Client(f"http://127.0.0.1:{port}"), Client(tg_url)
        auth = {"Authorization": f"Bearer {TOKEN}"}
        W = "/api/workspaces/default"

        def ok(st, v, want=201):
            assert st == want, v
            return v

        ok(*cf.call("POST", f"{W}/connections", {"name": "Bot", "slug": "bot", "service_type": "telegram",
                                                  "base_url": tg_url, "auth": {"type": "bot_token", "token": BOT}}, auth))
        ok(*cf.call("POST", f"{W}/participant-roles", {"name": "customer"}, auth))
        # the same request as a plain HTTP tool: Chatterfly's hop without Telegram's checks
        ok(*cf.call("POST", f"{W}/connections", {"name": "Raw", "slug": "raw", "service_type": "http", "base_url": tg_url,
                                                  "operations": [{"name": "send", "method": "POST",
                                                                  "path": f"/bot{BOT}/sendMessage"}]}, auth))
        op = [{"name": "me", "method": "POST", "path": f"/bot{BOT}/getMe"}]
        # the same upstream request twice: the key stored on the connection, or a participant's
        ok(*cf.call("POST", f"{W}/connections", {"name": "S", "slug": "stat", "service_type": "http", "base_url": tg_url,
                                                  "auth": {"type": "api_key_header", "header": "X-Key", "key": "k-123456"},
                                                  "operations": op}, auth))
        ok(*cf.call("POST", f"{W}/connections", {"name": "P", "slug": "part", "service_type": "http", "base_url": tg_url,
                                                  "auth": {"type": "api_key_header", "header": "X-Key"},
                                                  "fulfillment": "participant", "participant_role": "customer",
                                                  "operations": op}, auth))
        p_view = ok(*cf.call("POST", f"{W}/participants", {"name": "Ada", "role": "customer"}, auth))
        link = p_view["onboarding_url"].rsplit("/", 1)[1]
        ok(*cf.call("PUT", "/api/onboarding/connections/part", {"key": "k-123456"}, {"X-Onboarding-Token": link}), want=200)
        who = p_view["id"]

        message = {"chat_id": 4242, "text": "<b>Order 17</b> shipped " + "x" * 200, "parse_mode": "HTML"}

        def direct():
            st, v = tg.call("POST", f"/bot{BOT}/sendMessage", message)
            assert st == 200 and v["ok"], v

        def through():
            st, v = cf.call("POST", f"{W}/tools/bot.send_message/invoke", {"arguments": message}, auth)
            assert st == 200, v

        def plain():
            st, v = cf.call("POST", f"{W}/tools/raw.send/invoke", {"arguments": message}, auth)
            assert st == 200 and v["output"]["status"] == 200, v

        def static():
            st, v = cf.call("POST", f"{W}/tools/stat.me/invoke", {"arguments": {}}, auth)
            assert st == 200, v

        def participant():
            st, v = cf.call("POST", f"{W}/tools/part.me/invoke", {"arguments": {}, "participant": who}, auth)
            assert st == 200, v

        for fn in (direct, through, plain, static, participant):
            for _ in range(50):
                fn()  # warm-up
        rows = []
        for name, base, subject, label in (
            ("Telegram `send_message`", direct, through, "direct to the Bot API look-alike"),
            ("A plain HTTP tool, same request", direct, plain, "direct to the Bot API look-alike"),
            ("A participant's call", static, participant, "the same call on a `static` connection"),
        ):
            for rnd in (1, 2):
                lb, ls = paired(base, subject, args.calls)
                rows.append((name, rnd, label, p(lb, 0.5), p(ls, 0.5), p(ls, 0.5) - p(lb, 0.5), p(ls, 0.99) - p(lb, 0.99)))
        print(f"calls per path and round: {args.calls}, alternating\n")
        print("| What | Round | Baseline | Baseline p50 | Through Chatterfly p50 | Added p50 | Added p99 |")
        print("|---|---|---|---|---|---|---|")
        for name, rnd, label, b50, s50, a50, a99 in rows:
            print(f"| {name} | {rnd} | {label} | {b50:.0f} µs | {s50:.0f} µs | {a50:+.0f} µs | {a99:+.0f} µs |")
    finally:
        server.terminate()
        server.wait()
        subprocess.run(["kill", str(tg_pid)])


if __name__ == "__main__":
    main()
