#!/usr/bin/env python3
"""Start-up to ready, and idle memory, of `chatterfly serve`, against a baseline.

Baseline, run in the same script on the same machine: Python's `http.server`, a minimal
HTTP server that does nothing but listen. Figures are reported as medians and as a ratio
to it, since the machines are noisy.

  bench/startup.py [--runs N] [--bin target/release/chatterfly] [--postgres ADMIN_URL]

With --postgres (an admin URL such as postgres://postgres@127.0.0.1:PORT/postgres, e.g.
from scripts/postgres.sh), the same is measured on a fresh PostgreSQL database per run.

Measures, for each run:
  first start: fresh data dir (migrations, key file generation, bootstrap) to the first
               200 from /api/health
  restart:     the same data dir again (migrations already applied, key check) to ready
  idle RSS:    resident memory 2 s after ready (VmRSS from /proc)
"""
import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_ready(url, proc, timeout=30.0):
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.002)
    raise RuntimeError(f"{url} not ready after {timeout}s")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def measure(cmd, url, env):
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(url, proc)
        ready = time.perf_counter() - t0
        time.sleep(2)
        rss = rss_kib(proc.pid)
    finally:
        proc.terminate()
        proc.wait()
    return ready, rss


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--bin", default="target/release/chatterfly")
    ap.add_argument("--postgres", help="PostgreSQL admin URL; measures PostgreSQL too")
    args = ap.parse_args()
    if not os.path.exists(args.bin):
        sys.exit(f"{args.bin} not found: run `cargo build --release` first")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CHATTERFLY_", "INTEGRATION_", "DATABASE_URL"))}
    env["RUST_LOG"] = "warn"
    first, restart, rss_c, base_t, base_rss = [], [], [], [], []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as d:
            port = free_port()
            cmd = [args.bin, "serve", "--data-dir", d, "--addr", f"127.0.0.1:{port}"]
            url = f"http://127.0.0.1:{port}/api/health"
            t, _ = measure(cmd, url, env)
            first.append(t)
            t, rss = measure(cmd, url, env)
            restart.append(t)
            rss_c.append(rss)
        port = free_port()
        with tempfile.TemporaryDirectory() as d:
            t, rss = measure([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                              "--directory", d], f"http://127.0.0.1:{port}/", env)
        base_t.append(t)
        base_rss.append(rss)
    pg_first, pg_restart, pg_rss = [], [], []
    if args.postgres:
        key = subprocess.run([args.bin, "keys", "generate"], capture_output=True, text=True, check=True).stdout.strip()
        pg_env = dict(env, INTEGRATION_ENCRYPTION_KEY=key)
        base = args.postgres.rsplit("/", 1)[0]
        for i in range(args.runs):
            name = f"bench_{os.getpid()}_{i}"
            subprocess.run(["psql", args.postgres, "-qc", f"CREATE DATABASE {name}"], check=True)
            with tempfile.TemporaryDirectory() as d:
                port = free_port()
                cmd = [args.bin, "serve", "--data-dir", d, "--addr", f"127.0.0.1:{port}",
                       "--database-url", f"{base}/{name}"]
                url = f"http://127.0.0.1:{port}/api/health"
                t, _ = measure(cmd, url, pg_env)
                pg_first.append(t)
                t, rss = measure(cmd, url, pg_env)
                pg_restart.append(t)
                pg_rss.append(rss)
            subprocess.run(["psql", args.postgres, "-qc", f"DROP DATABASE {name}"], check=True)
    med = statistics.median
    print(f"runs: {args.runs} (medians)")
    print(f"chatterfly first start to ready: {med(first) * 1000:7.1f} ms")
    print(f"chatterfly restart to ready:     {med(restart) * 1000:7.1f} ms")
    print(f"chatterfly idle RSS:             {med(rss_c) / 1024:7.1f} MiB")
    if pg_first:
        print(f"postgres first start to ready:   {med(pg_first) * 1000:7.1f} ms")
        print(f"postgres restart to ready:       {med(pg_restart) * 1000:7.1f} ms")
        print(f"postgres idle RSS:               {med(pg_rss) / 1024:7.1f} MiB")
    print(f"baseline python http.server ready: {med(base_t) * 1000:7.1f} ms, idle RSS {med(base_rss) / 1024:.1f} MiB")
    print(f"ratio restart/baseline time: {med(restart) / med(base_t):.2f}; "
          f"first start/baseline: {med(first) / med(base_t):.2f}; RSS ratio: {med(rss_c) / med(base_rss):.2f}")


if __name__ == "__main__":
    main()
