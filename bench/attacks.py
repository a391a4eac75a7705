#!/usr/bin/env python3
"""The cost of hostile requests (issue 11's attacks), each on a fresh server process so that
its peak memory (VmHWM) is the attack's own: status, wall time, peak RSS growth, and open
file descriptors where connections are the attack.

    bench/attacks.py [--bin target/release/chatterfly]

Only 127.0.0.1 is ever contacted. Prints a Markdown table for docs/benchmarks.md.
"""
import argparse, json, os, shutil, socket, subprocess, tempfile, threading, time, urllib.request

TOKEN = "bench-admin-token-0123456789abcdef"


class Server:
    def __init__(self, binary, extra_env=None):
        self.dir = tempfile.mkdtemp(prefix="cf-attack-")
        env = dict(os.environ, CHATTERFLY_BOOTSTRAP_ADMIN_TOKEN=TOKEN, RUST_LOG="warn")
        env.update(extra_env or {})
        self.proc = subprocess.Popen([binary, "serve", "--data-dir", self.dir, "--addr", "127.0.0.1:0"],
                                     env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        for line in self.proc.stdout:
            if b"listening on http://" in line:
                self.url = line.decode().rsplit(" ", 1)[1].strip()
                break
        self.port = int(self.url.rsplit(":", 1)[1])

    def status(self, key):
        for line in open(f"/proc/{self.proc.pid}/status"):
            if line.startswith(key + ":"):
                return int(line.split()[1])
        return 0

    def fds(self):
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def call(self, method, path, body=None, token=TOKEN, ctype="application/json"):
        data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": ctype})
        try:
            with urllib.request.urlopen(req, timeout=600) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()
        except (ConnectionError, urllib.error.URLError) as e:
            return f"closed ({type(e).__name__})", b""

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def post_raw(s, path, token, size, chunk=1 << 20):
    """POSTs a `size`-byte JSON-ish body over a raw socket, a chunk at a time, and returns
    the status of the answer and how much of the body was sent before it came."""
    c = socket.create_connection(("127.0.0.1", s.port))
    c.sendall((f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
               f"Content-Type: application/json\r\nContent-Length: {size}\r\n\r\n").encode())
    sent = 0
    c.setblocking(False)
    answer = b""
    while True:
        try:
            answer += c.recv(4096)
            if answer:
                break
        except BlockingIOError:
            pass
        if sent >= size:
            c.setblocking(True)
            c.settimeout(600)
            answer = c.recv(4096)
            break
        try:
            c.setblocking(True)
            c.settimeout(5)
            c.sendall(b" " * min(chunk, size - sent))
            c.setblocking(False)
            sent += min(chunk, size - sent)
        except OSError:
            c.setblocking(True)
            c.settimeout(5)
            try:
                answer = c.recv(4096)
            except OSError:
                pass
            break
    c.close()
    status = answer.split(b" ", 2)[1].decode() if answer.startswith(b"HTTP/") else "no answer"
    return f"{status} after {sent / 1e6:.0f} of {size / 1e6:.0f} MB sent"


def measure(binary, label, attack, env=None):
    s = Server(binary, env)
    base = s.status("VmHWM")
    t0 = time.time()
    result = attack(s)
    took = time.time() - t0
    peak = s.status("VmHWM")
    row = f"| {label} | {result} | {took:.2f} s | {base / 1024:.0f} → {peak / 1024:.0f} MiB (+{(peak - base) / 1024:.0f}) |"
    s.stop()
    print(row, flush=True)


def user_token(s, email, ws=None, role="admin"):
    st, u = s.call("POST", "/api/users", {"email": email, "name": email})
    uid = json.loads(u)["id"]
    st, t = s.call("POST", f"/api/users/{uid}/tokens", {"name": "t"})
    if ws:
        s.call("PUT", f"/api/workspaces/{ws}/members/{uid}", {"role": role})
    return json.loads(t)["token"]


def big_ops_body(n_ops):
    props = {f"field_{i}": {"type": "string", "description": f"the field number {i} of this operation", "maxLength": 100} for i in range(60)}
    ops = [{"name": f"op_{i}", "method": "POST", "path": f"/things/{i}", "description": "x" * 200,
            "input_schema": {"type": "object", "properties": props}} for i in range(n_ops)]
    return json.dumps({"name": "Big", "slug": "big", "service_type": "http", "base_url": "https://api.example.com",
                       "operations": ops}).encode()


def chain(n_ops):
    schemas = {}
    for i in range(12):
        nxt = {"$ref": f"#/components/schemas/S{i + 1}"} if i < 11 else {"type": "string"}
        schemas[f"S{i}"] = {"type": "object", "description": f"level {i}", "properties": {f"p{j}": nxt for j in range(4)}}
    paths = {f"/op{k}": {"post": {"operationId": f"op{k}",
                                  "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/S0"}}}},
                                  "responses": {"200": {"description": "ok", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/S0"}}}}}}}
             for k in range(n_ops)}
    return json.dumps({"openapi": "3.0.3", "info": {"title": "chain", "version": "1"},
                       "servers": [{"url": "https://api.example.com"}], "paths": paths,
                       "components": {"schemas": schemas}}).encode()


def slow_headers(s, n=3000, wait=15):
    socks = []
    for _ in range(n):
        c = socket.create_connection(("127.0.0.1", s.port))
        c.sendall(b"GET /api/health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        socks.append(c)
    during = s.fds()
    served = s.call("GET", "/api/me")[0]
    time.sleep(wait)
    after = s.fds()
    for c in socks:
        c.close()
    return f"{n} connections; fds {during} while open, {after} after {wait} s; /api/me meanwhile {served}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/chatterfly")
    a = ap.parse_args()
    b = a.bin
    print("| attack | result | wall | peak RSS |")
    print("|---|---|---|---|")

    def outsider(s):
        s.call("POST", "/api/workspaces", {"name": "Other", "slug": "other"})
        tok = user_token(s, "o@example.com", "other")
        return post_raw(s, "/api/workspaces/default/connections", tok, 90_000_000)
    measure(b, "90 MB create body, admin of another workspace", outsider)
    measure(b, "90 MB create body, workspace admin", lambda s: post_raw(s, "/api/workspaces/default/connections", TOKEN, 90_000_000))

    def member_invoke(s):
        tok = user_token(s, "m@example.com", "default", "member")
        return post_raw(s, "/api/workspaces/default/tools/current_time/invoke", tok, 20_000_000)
    measure(b, "20 MB invoke of current_time, member", member_invoke)

    def three_invokes(s):
        tok = user_token(s, "m@example.com", "default", "member")
        out = []
        ts = [threading.Thread(target=lambda: out.append(post_raw(s, "/api/workspaces/default/tools/current_time/invoke", tok, 20_000_000))) for _ in range(3)]
        [t.start() for t in ts]
        [t.join() for t in ts]
        return "; ".join(out)
    measure(b, "3 × 20 MB invoke at once, member", three_invokes)
    ops = big_ops_body(2000)

    def big_create(s):
        st = s.call("POST", "/api/workspaces/default/connections", ops)[0]
        return f"{st}, {len(ops) / 1e6:.1f} MB body"
    measure(b, "create with 2,000 operations (12.5 MB)", big_create)

    def big_read(s):
        s.call("POST", "/api/workspaces/default/connections", ops)
        base = s.status("VmHWM")
        st, body = s.call("GET", "/api/workspaces/default/tools")
        return f"{st}, {len(body) / 1e6:.1f} MB answer, read-back peak +{(s.status('VmHWM') - base) / 1024:.0f} MiB"
    measure(b, "then GET …/tools of it", big_read)
    for n in (100, 250, 5000):
        doc = chain(n)

        def imp(s, doc=doc):
            st, body = s.call("POST", "/api/workspaces/default/connections/import/openapi", doc)
            return f"{st}, {len(doc) / 1e3:.0f} KB in, {len(body) / 1e6:.1f} MB draft"
        measure(b, f"import: $ref chain, {n} operations", imp)
    measure(b, "3,000 connections that never finish their headers", slow_headers)


if __name__ == "__main__":
    main()
