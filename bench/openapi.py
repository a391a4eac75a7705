#!/usr/bin/env python3
"""`chatterfly openapi inspect` against @apidevtools/swagger-parser on the same document.

Both run as whole processes, alternately, from this one script on the same machine; wall
time (process start to exit) and peak memory (the child's ru_maxrss from wait4) of each,
reported as medians and ratios, since the machines are noisy.

  bench/openapi.py [--runs N] [--bin target/release/chatterfly] [--file DOC]

The document defaults to GitHub's description (@octokit/openapi, 13 MB, OpenAPI 3.0,
1,223 operations) from the corpus scripts/specs.sh installs (it also installs
swagger-parser, pinned). swagger-parser runs `SwaggerParser.dereference(file)` (parse,
resolve every $ref, the work an importer has to do) and counts the operations; chatterfly
runs `openapi inspect FILE` (parse, and turn every operation into a tool with its schemas
and request mapping) in text and in `--json` form (the whole draft written out).
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

NODE_SCRIPT = r"""
const SwaggerParser = require("@apidevtools/swagger-parser");
(async () => {
  const api = await SwaggerParser.dereference(process.argv[2]);
  let n = 0;
  for (const item of Object.values(api.paths || {}))
    for (const m of ["get", "put", "post", "delete", "options", "head", "patch", "trace"])
      if (item && item[m]) n++;
  console.log(n + " operations");
})().catch((e) => { console.error(e); process.exit(1); });
"""


def run(cmd, cwd=None):
    """Runs a process to completion: (wall seconds, peak RSS in MiB, stdout)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = bytearray()
    while True:
        chunk = proc.stdout.read(1 << 16)
        if not chunk:
            break
        if len(out) < 4096:
            out += chunk[:4096]
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    err = proc.stderr.read()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}): {err.decode(errors='replace')[-2000:]}")
    return wall, usage.ru_maxrss / 1024.0, bytes(out).decode(errors="replace")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "chatterfly"))
    ap.add_argument("--file")
    args = ap.parse_args()

    specs = subprocess.run([os.path.join(ROOT, "scripts", "specs.sh")], check=True,
                           capture_output=True, text=True).stdout.strip()
    doc = args.file or os.path.join(specs, "@octokit", "openapi", "generated", "api.github.com.json")
    if not os.path.exists(args.bin):
        subprocess.run(["cargo", "build", "--release", "-p", "chatterfly"], cwd=ROOT, check=True)
    script = os.path.join(os.path.dirname(specs), "bench-swagger-parser.js")
    with open(script, "w") as f:
        f.write(NODE_SCRIPT)

    contenders = {
        "swagger-parser dereference": (["node", script, doc], os.path.dirname(specs)),
        "chatterfly openapi inspect": ([args.bin, "openapi", "inspect", doc], None),
        "chatterfly openapi inspect --json": ([args.bin, "openapi", "inspect", "--json", doc], None),
    }
    results = {name: ([], []) for name in contenders}
    # one warm-up each (page cache), then alternate
    for name, (cmd, cwd) in contenders.items():
        _, _, out = run(cmd, cwd)
        first = out.splitlines()[0] if out else ""
        print(f"{name}: {first[:100]}", file=sys.stderr)
    for _ in range(args.runs):
        for name, (cmd, cwd) in contenders.items():
            wall, rss, _ = run(cmd, cwd)
            results[name][0].append(wall)
            results[name][1].append(rss)

    base_wall = statistics.median(results["swagger-parser dereference"][0])
    base_rss = statistics.median(results["swagger-parser dereference"][1])
    size = os.path.getsize(doc) / 1e6
    print(f"document: {os.path.relpath(doc, specs)} ({size:.1f} MB), {args.runs} runs each, medians")
    print()
    print("| process | wall time | peak memory | time vs swagger-parser | memory vs swagger-parser |")
    print("|---|---|---|---|---|")
    for name, (walls, rsss) in results.items():
        w, r = statistics.median(walls), statistics.median(rsss)
        print(f"| {name} | {w * 1000:.0f} ms | {r:.0f} MiB | {base_wall / w:.1f}× faster | {r / base_rss:.2f} |"
              if not name.startswith("swagger") else
              f"| {name} | {w * 1000:.0f} ms | {r:.0f} MiB | 1 | 1 |")


if __name__ == "__main__":
    main()
