#!/usr/bin/env python3
"""Cross-check of ringmux-load's open loop against an established HTTP load tool.

    python3 bench/crosscheck.py               # writes the table into bench/RESULTS.md
    python3 bench/crosscheck.py --out /tmp/x.md

The same open-loop workload is measured by `ringmux-load -R` and by oha
(https://github.com/hatoo/oha, `-q RATE --latency-correction`: a constant request rate with
each latency counted from the request's scheduled time, i.e. without coordinated omission),
against the same targets, in alternating rounds: the mock MCP server directly, and ringmux in
front of it. The workload is a 2026-07-28 (sessionless) tools/call of `echo`, so that every
request is the same self-contained POST (no session to set up) and both tools send identical
bytes. Not part of CI; needs oha on PATH or in /tmp/oha-root/bin (`cargo install oha --locked
--root /tmp/oha-root`).

Reuses bench/compare.py's process handling (every process stopped by PID, time limits).
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare  # noqa: E402
from compare import LOAD, RINGMUX, ROOT, free_port, log, start  # noqa: E402

MODERN = "2026-07-28"
BODY = json.dumps({
    "jsonrpc": "2.0", "id": 1, "method": "tools/call",
    "params": {"name": "echo", "arguments": {"message": "hello"},
               "_meta": {"io.modelcontextprotocol/protocolVersion": MODERN,
                         "io.modelcontextprotocol/clientCapabilities": {}}},
}, separators=(",", ":"))
HEADERS = {
    "content-type": "application/json",
    "accept": "application/json, text/event-stream",
    "mcp-protocol-version": MODERN,
    "mcp-method": "tools/call",
    "mcp-name": "echo",
}


def oha_binary():
    found = shutil.which("oha") or "/tmp/oha-root/bin/oha"
    if not os.path.exists(found):
        sys.exit("oha not found: cargo install oha --locked --root /tmp/oha-root")
    return found


def run_load(url, rate, conns, duration):
    cmd = [LOAD, url, "-c", str(conns), "-t", "1", "-R", str(rate), "-d", str(duration),
           "-w", "1", "--protocol", MODERN, "--json", "-q"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    if r.returncode not in (0, 1):
        sys.exit(f"ringmux-load failed: {r.stderr}")
    s = json.loads(r.stdout)
    late = s.get("lateness") or {}
    return {
        "rate": s["throughput"], "p50": s["p50_us"] / 1000, "p99": s["p99_us"] / 1000,
        "p999": s["p999_us"] / 1000, "errors": sum(s["errors"].values()),
        "late_p99": late.get("p99_us", 0) / 1000,
    }


def run_oha(oha, url, rate, conns, duration):
    cmd = [oha, url, "-z", f"{duration}s", "-c", str(conns), "-q", str(rate),
           "--latency-correction", "--no-tui", "--output-format", "json", "-m", "POST",
           "-d", BODY]
    for k, v in HEADERS.items():
        cmd += ["-H", f"{k}: {v}"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    if r.returncode != 0:
        sys.exit(f"oha failed: {r.stderr}")
    s = json.loads(r.stdout)
    pct = s["latencyPercentiles"]
    codes = s.get("statusCodeDistribution", {})
    # A request still in flight when the duration ends is "aborted due to deadline": not an
    # error of the target's.
    errors = sum(n for c, n in codes.items() if c != "200") + sum(
        n for e, n in s.get("errorDistribution", {}).items() if "deadline" not in e)
    return {
        "rate": s["summary"]["requestsPerSec"], "p50": pct["p50"] * 1000,
        "p99": pct["p99"] * 1000, "p999": pct["p99.9"] * 1000, "errors": errors,
        "late_p99": None,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=5, help="seconds per measurement")
    ap.add_argument("--rates", default="1000,5000", help="total req/s, comma-separated")
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "RESULTS.md"))
    args = ap.parse_args()
    oha = oha_binary()
    version = subprocess.run([oha, "--version"], capture_output=True, text=True).stdout.strip()

    work = compare.tempfile.mkdtemp(prefix="ringmux-crosscheck-")
    port = free_port()
    start([RINGMUX, "mock", "--listen", f"127.0.0.1:{port}", "--name", "a", "--json-only",
           "--modern", "--threads", "1"], os.path.join(work, "mock.log"), ready="listening on")
    direct = f"http://127.0.0.1:{port}/mcp"
    gport = free_port()
    cfg = os.path.join(work, "gw.yaml")
    with open(cfg, "w") as f:
        f.write(f"listen: 127.0.0.1:{gport}\nshards: 1\nadmin:\n  listen: 127.0.0.1:0\nbackends:\n"
                f"  - name: a\n    url: {direct}\n    prefix: false\n")
    start([RINGMUX, "run", cfg], os.path.join(work, "gw.log"), ready="listening on")
    gateway = f"http://127.0.0.1:{gport}/mcp"

    rates = [int(r) for r in args.rates.split(",")]
    cells = {}  # (rate, target, tool) -> [results]
    for rnd in range(args.rounds):
        for rate in rates:
            order = [("direct", direct), ("ringmux", gateway)]
            tools = ["ringmux-load", "oha"]
            if rnd % 2:
                order.reverse()
                tools.reverse()
            for target, url in order:
                for tool in tools:
                    if tool == "oha":
                        res = run_oha(oha, url, rate, args.connections, args.duration)
                    else:
                        res = run_load(url, rate, args.connections, args.duration)
                    cells.setdefault((rate, target, tool), []).append(res)
                    log(f"round {rnd + 1} {rate:>6} req/s {target:8s} {tool:12s} "
                        f"p50 {res['p50']:.3f} p99 {res['p99']:.3f} p99.9 {res['p999']:.3f} ms"
                        f"  errors {res['errors']}")

    med = lambda rs, k: statistics.median(r[k] for r in rs)  # noqa: E731
    L = ["## open loop cross-checked with oha", "",
         f"Written by `python3 bench/crosscheck.py` ({args.rounds} alternating rounds of "
         f"{args.duration} s, {args.connections} connections, medians over rounds): "
         f"ringmux-load `-R` against {version} `-q RATE --latency-correction`, a 2026-07-28 "
         "tools/call of echo, the mock directly and through ringmux (one shard), everything "
         "on the same machine. oha is a general HTTP client (tokio, hyper) and its figures "
         "carry its own per-request cost and scheduling; what the two must agree on is the "
         "shape: no millisecond steps at low rates, and the same ordering of the targets.", ""]
    for rate in rates:
        L += [f"### {rate:,} req/s", "",
              "| target | tool | req/s | p50 ms | p99 ms | p99.9 ms | errors | generator's own p99 lateness ms |",
              "|---|---|---:|---:|---:|---:|---:|---:|"]
        for target in ("direct", "ringmux"):
            for tool in ("ringmux-load", "oha"):
                rs = cells[(rate, target, tool)]
                late = "" if tool == "oha" else f"{med(rs, 'late_p99'):.3f}"
                L.append(f"| {target} | {tool} | {med(rs, 'rate'):,.0f} | {med(rs, 'p50'):.3f} | "
                         f"{med(rs, 'p99'):.3f} | {med(rs, 'p999'):.3f} | "
                         f"{sum(r['errors'] for r in rs)} | {late} |")
        L.append("")
    section = "\n".join(L)
    print(section)
    if args.out:
        text = open(args.out).read() if os.path.exists(args.out) else ""
        text = re.sub(r"\n## open loop cross-checked with oha\n.*?(?=\n## |\Z)", "\n", text,
                      flags=re.S).rstrip("\n")
        with open(args.out, "w") as f:
            f.write(text + "\n\n" + section)


if __name__ == "__main__":
    main()
