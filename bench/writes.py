#!/usr/bin/env python3
"""Writes under contention on SQLite, two builds side by side in the same run.

Clients create connections (a write transaction each) while others call a tool (an
audit row each, written in batches by the audit writer), against `chatterfly serve` on a
fresh SQLite file. Measured per build: connections created per second, the create's p50
and p99, tool calls per second, and how far the audit writer fell behind: the largest
`chatterfly_audit_backlog` seen on `/metrics` (sampled every 20 ms): rows recorded and
not yet taken by the writer, which a SIGKILL at that moment would lose (with the batch
being written, not counted). Rounds alternate the builds, so both see the same
machine; figures are medians of the rounds, and B's as a ratio to A's.

    python3 bench/writes.py --bin A --bin B [--rounds 3] [--seconds 6] [--creators 6] [--callers 6]

The tool called is the server's own `/api/health` (127.0.0.1 allowed as private), so
nothing else needs to run; only 127.0.0.1 is contacted. Prints Markdown.
"""
import argparse, http.client, json, os, socket, statistics, subprocess, tempfile, threading, time

TOKEN = "bench-writes-token-0123456789abcdef0123"
W = "/api/workspaces/default"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def call(conn, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    h = {"Authorization": f"Bearer {TOKEN}"}
    if data is not None:
        h["Content-Type"] = "application/json"
    conn.request(method, path, body=data, headers=h)
    r = conn.getresponse()
    return r.status, r.read()


def round_of(binary, seconds, creators, callers, tag):
    data = tempfile.mkdtemp(prefix="cf-bench-writes-")
    port = free_port()
    env = dict(os.environ, CHATTERFLY_ALLOW_PRIVATE="127.0.0.1", CHATTERFLY_BOOTSTRAP_ADMIN_TOKEN=TOKEN,
               RUST_LOG="warn")
    server = subprocess.Popen([binary, "serve", "--data-dir", data, "--addr", f"127.0.0.1:{port}"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        st, body = call(c, "POST", f"{W}/connections", {
            "name": "Self", "slug": "self", "service_type": "http", "base_url": f"http://127.0.0.1:{port}",
            "operations": [{"name": "health", "method": "GET", "path": "/api/health"}]})
        assert st == 201, body
        stop = threading.Event()
        lat, calls, backlog, errors = [], [0], [0], []
        lock = threading.Lock()

        def creator(k):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            i = 0
            while not stop.is_set():
                i += 1
                t = time.perf_counter()
                st, body = call(conn, "POST", f"{W}/connections", {
                    "name": f"C {k} {i}", "slug": f"{tag}c{k}n{i}", "service_type": "http",
                    "base_url": "https://api.example.com", "auth": {"type": "bearer", "token": f"tok-{k}-{i}"},
                    "operations": [{"name": "get", "method": "GET", "path": "/x"}]})
                d = time.perf_counter() - t
                with lock:
                    if st == 201:
                        lat.append(d)
                    else:
                        errors.append(st)

        def caller():
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            n = 0
            while not stop.is_set():
                st, body = call(conn, "POST", f"{W}/tools/self.health/invoke", {"arguments": {}})
                if st == 200:
                    n += 1
                else:
                    with lock:
                        errors.append(st)
            with lock:
                calls[0] += n

        def sampler():
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            while not stop.is_set():
                conn.request("GET", "/metrics")
                text = conn.getresponse().read().decode()
                for line in text.splitlines():
                    if line.startswith("chatterfly_audit_backlog"):
                        backlog[0] = max(backlog[0], int(float(line.split()[-1])))
                time.sleep(0.02)

        threads = [threading.Thread(target=creator, args=(k,)) for k in range(creators)]
        threads += [threading.Thread(target=caller) for _ in range(callers)]
        threads.append(threading.Thread(target=sampler))
        for t in threads:
            t.start()
        time.sleep(seconds)
        stop.set()
        for t in threads:
            t.join()
        lat.sort()
        return {
            "creates/s": len(lat) / seconds,
            "create p50 ms": lat[len(lat) // 2] * 1e3 if lat else float("nan"),
            "create p99 ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e3 if lat else float("nan"),
            "calls/s": calls[0] / seconds,
            "max audit backlog": backlog[0],
            "errors": len(errors),
        }
    finally:
        server.kill()
        server.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", action="append", required=True, help="twice: A (baseline) then B")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=6)
    ap.add_argument("--creators", type=int, default=6)
    ap.add_argument("--callers", type=int, default=6)
    args = ap.parse_args()
    if len(args.bin) != 2:
        ap.error("give --bin twice: the baseline, then the build to compare")
    results = {0: [], 1: []}
    for r in range(args.rounds):
        for which in ((0, 1) if r % 2 == 0 else (1, 0)):
            results[which].append(round_of(args.bin[which], args.seconds, args.creators, args.callers, f"r{r}"))
    keys = list(results[0][0].keys())
    print(f"{args.creators} creating, {args.callers} calling, {args.seconds:g} s, {args.rounds} rounds (medians)\n")
    print("| | A | B | B / A |")
    print("|---|---|---|---|")
    for k in keys:
        a = statistics.median(x[k] for x in results[0])
        b = statistics.median(x[k] for x in results[1])
        ratio = f"{b / a:.2f}" if a else "-"
        print(f"| {k} | {a:,.1f} | {b:,.1f} | {ratio} |")
    for which in (0, 1):
        print(f"\n{'AB'[which]} ({args.bin[which]}) per round: " + "; ".join(
            ", ".join(f"{k} {x[k]:,.1f}" for k in keys) for x in results[which]))


if __name__ == "__main__":
    main()
