#!/usr/bin/env python3
"""The comparison benchmark: ringmux vs a plain nginx hop vs the backend itself, on loopback.

    python3 bench/compare.py            # full run (about 10 minutes), writes bench/RESULTS.md
    python3 bench/compare.py --quick    # smoke run: 1 round, 2 s per measurement
    python3 bench/compare.py --baseline OLD_RINGMUX --rounds 5 --out /tmp/r.md
                                        # before/after: another ringmux binary (an earlier
                                        # commit's release build) in the same rounds

Builds the release binaries, installs nginx (Debian's nginx-light) if it is missing, starts
the mock MCP backends, ringmux and nginx on ephemeral loopback ports, and drives them with
ringmux-load. Targets are measured in alternating rounds (the order rotates every round) so a
noisy machine shifts all of them alike; each figure is the median over rounds and each ratio
the median of the per-round ratios. Every process it starts is stopped by PID; every run has
a time limit.

Workloads (see bench/RESULTS.md for the latest figures):
  call      tools/call echo through 1 backend at 1, 16 and 64 connections:
            direct backend / nginx -> backend / ringmux -> backend
  list10    merged tools/list over 10 backends x 50 tools (ringmux, and ringmux with an
            authorization policy that hides some of them) vs one backend serving the same
            500 tools directly
  list100   the same over 100 backends x 50 tools (5,000 tools; 10 mock processes, each
            named by 10 backends) vs one backend serving 5,000 tools
  open      open loop at ~50% of ringmux's tools/call saturation (16 connections): p99/p99.9
            of all three at the same rate
  tls       tools/call echo at 16 and 64 connections over TLS: nginx (TLS) -> backend vs
            ringmux (TLS) -> backend, one openssl-made certificate for both
  scaling   ringmux with 1 shard vs 2 shards (tools/call and merged tools/list, 64 conns)
  memory    ringmux's peak RSS over the runs above; RSS with 100,000 idle sessions
  callgrind instructions per proxied tools/call (bench/scripts/callgrind-call.sh)

Last full run (2026-12-04 at 138bd71, 2-core AMD EPYC VM, `python3 bench/compare.py`; all of
it in RESULTS.md; the VM was slower than in the morning's run, direct included):
  tools/call, 16 conns: direct 72,044 req/s, nginx 34,446 (p99 1.09 ms), ringmux 44,740
  (p99 0.82 ms); 64 conns: nginx 29,563 (p99 5.84), ringmux 38,571 (p99 4.16)
  over TLS: 16 conns nginx 26,676, ringmux 36,345 (1.39x); 64 conns nginx 29,545, ringmux
  37,393 (1.32x)
  open loop at 22,370 req/s: p99 direct 2.37, nginx 53.1, ringmux 6.89 ms
  merged list 10x50 vs one 500-tool backend: 1.07x at 16 conns
  shard scaling 1 -> 2 shards: 1.12x tools/call, 1.15x list
  RSS: peak 70.9 MB; 100,000 idle sessions 110.8 MB; 28,341 instructions per proxied call
"""

import argparse
import atexit
import datetime
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REL = os.path.join(ROOT, "target", "release")
RINGMUX = os.path.join(REL, "ringmux")
LOAD = os.path.join(REL, "ringmux-load")

PROCS = []  # every process this script started


# The authorization policy of the list10 "ringmux (policy)" row: backends b0-b4 and the tools
# of the others whose names end in an even digit (375 of the 500 tools).
POLICY = """authz:
  rules:
    - name: first-half
      allow: 'mcp.backend in ["b0", "b1", "b2", "b3", "b4"]'
    - name: even
      allow: 'principal.kind == "anonymous" && mcp.tool.matches("[02468]$")'
"""


def stop_all():
    # SIGTERM first: nginx's master stops its workers on it (SIGKILL would orphan them, still
    # holding CPU and ports after the run); SIGKILL for whatever is left after 5 s.
    for p in PROCS:
        if p.poll() is None:
            p.terminate()
    for p in PROCS:
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass


atexit.register(stop_all)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cmd, logfile, ready=None, timeout=30):
    """Starts cmd; if `ready` is given, waits until that text appears in its log."""
    out = open(logfile, "w")
    p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    PROCS.append(p)
    deadline = time.time() + timeout
    while ready is not None:
        with open(logfile) as f:
            if ready in f.read():
                break
        if p.poll() is not None:
            sys.exit(f"{cmd[0]} exited early; see {logfile}")
        if time.time() > deadline:
            sys.exit(f"{cmd[0]} not ready within {timeout} s; see {logfile}")
        time.sleep(0.05)
    return p


def stop(p):
    p.terminate()
    try:
        p.wait(timeout=5)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(timeout=10)


def wait_port(port, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"nothing listens on port {port}")


def cpu_seconds(pid):
    """User + system CPU time of a process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kb(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class Bench:
    def __init__(self, args):
        self.args = args
        self.work = tempfile.mkdtemp(prefix="ringmux-compare-")
        atexit.register(shutil.rmtree, self.work, True)
        self.html = args.html
        if self.html and os.path.exists(self.html):
            os.remove(self.html)
        self.peak_rss_kb = 0

    def path(self, name):
        return os.path.join(self.work, name)

    # -- processes ----------------------------------------------------------------------

    def mock(self, name, tools=10):
        port = free_port()
        start(
            [RINGMUX, "mock", "--listen", f"127.0.0.1:{port}", "--name", name,
             "--tools", str(tools), "--json-only", "--threads", "2"],
            self.path(f"mock-{name}.log"), ready="listening on")
        return f"http://127.0.0.1:{port}/mcp"

    def certificates(self):
        """A test CA and a localhost certificate it signs (openssl). Returns (ca, cert, key)."""
        ca, ca_key = self.path("ca.pem"), self.path("ca.key")
        cert, key, csr = self.path("cert.pem"), self.path("key.pem"), self.path("cert.csr")
        ext = self.path("ext.cnf")
        with open(ext, "w") as f:
            f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                    "extendedKeyUsage=serverAuth\n")
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
        for cmd in (
            ["openssl", "req", "-x509", *ec, "-keyout", ca_key, "-out", ca, "-days", "2",
             "-subj", "/CN=ringmux bench CA"],
            ["openssl", "req", *ec, "-keyout", key, "-out", csr, "-subj", "/CN=localhost"],
            ["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key,
             "-CAcreateserial", "-out", cert, "-days", "2", "-extfile", ext],
        ):
            subprocess.run(cmd, check=True, capture_output=True, timeout=60)
        return ca, cert, key

    def ringmux(self, name, backends, shards=0, prefix=True, binary=None, tls=None, extra=""):
        """backends: [(name, url)]; tls: (cert, key) to listen with; extra: more YAML.
        Returns (process, url)."""
        port = free_port()
        lines = [f"listen: 127.0.0.1:{port}", f"shards: {shards}", "admin:", "  listen: 127.0.0.1:0"]
        if extra:
            lines.append(extra.rstrip("\n"))
        lines.append("backends:")
        for bname, url in backends:
            lines += [f"  - name: {bname}", f"    url: {url}"]
            if not prefix:
                lines.append("    prefix: false")
        if tls:
            lines += ["tls:", f"  cert: {tls[0]}", f"  key: {tls[1]}"]
        cfg = self.path(f"{name}.yaml")
        with open(cfg, "w") as f:
            f.write("\n".join(lines) + "\n")
        p = start([binary or RINGMUX, "run", cfg], self.path(f"{name}.log"), ready="listening on")
        scheme = "https" if tls else "http"
        return p, f"{scheme}://127.0.0.1:{port}/mcp"

    def nginx(self, backend_url, tls=None):
        """tls: (cert, key) to listen with (TLS 1.2 and 1.3, as ringmux)."""
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        port = free_port()
        name = "nginx-tls" if tls else "nginx"
        ssl = ""
        if tls:
            ssl = (f"ssl_certificate {tls[0]};\n        ssl_certificate_key {tls[1]};\n"
                   "        ssl_protocols TLSv1.2 TLSv1.3;\n        ")
        upstream = backend_url.split("//")[1].split("/")[0]
        conf = self.path(f"{name}.conf")
        user = "user root;\n" if os.geteuid() == 0 else ""
        with open(conf, "w") as f:
            f.write(f"""{user}worker_processes auto;
daemon off;
pid {self.path(name + '.pid')};
error_log {self.path(name + '-error.log')} warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {self.path('nginx-body')};
    proxy_temp_path {self.path('nginx-proxy')};
    fastcgi_temp_path {self.path('nginx-fastcgi')};
    uwsgi_temp_path {self.path('nginx-uwsgi')};
    scgi_temp_path {self.path('nginx-scgi')};
    upstream backend {{ server {upstream}; keepalive 256; }}
    server {{
        listen 127.0.0.1:{port} reuseport{' ssl' if tls else ''};
        {ssl}keepalive_requests 1000000;
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
""")
        p = start([nginx, "-p", self.work, "-c", conf], self.path(f"{name}.log"))
        wait_port(port)
        return p, f"{'https' if tls else 'http'}://127.0.0.1:{port}/mcp"

    # -- measurements -------------------------------------------------------------------

    def load(self, url, conns, label, mix="call", rate=None, duration=None, extra=(),
             proc=None, ca=None):
        """One ringmux-load run; with `proc`, also the CPU time that process used."""
        duration = duration or self.args.duration
        threads = 1 if conns == 1 else 2
        cmd = [LOAD, url, "-c", str(conns), "-t", str(threads), "-d", str(duration),
               "-w", str(self.args.warmup), "--mix", mix, "--json", "-q"]
        if rate:
            cmd += ["-R", str(rate)]
        if self.html:
            cmd += ["--html", self.html, "--label", label]
        cmd += list(extra)
        cpu0 = cpu_seconds(proc.pid) if proc else 0
        env = dict(os.environ, SSL_CERT_FILE=ca) if ca else None
        r = subprocess.run(cmd, capture_output=True, text=True, env=env,
                           timeout=duration + self.args.warmup + 120)
        if r.returncode not in (0, 1):
            sys.exit(f"ringmux-load failed ({label}): {r.stderr}")
        s = json.loads(r.stdout)
        if proc:
            # Warm-up included: requests over the whole run, per CPU-second of `proc`.
            used = cpu_seconds(proc.pid) - cpu0
            total = s["throughput"] * (duration + self.args.warmup)
            s["per_cpu_s"] = total / max(used, 1e-9)
        errs = sum(s["errors"].values())
        log(f"  {label:40s} {s['throughput']:10.0f} req/s  p50 {s['p50_us']/1000:.3f}  "
            f"p99 {s['p99_us']/1000:.3f}  p99.9 {s['p999_us']/1000:.3f} ms"
            + (f"  ERRORS {s['errors']}" if errs else ""))
        return s

    def note_rss(self, proc):
        self.peak_rss_kb = max(self.peak_rss_kb, rss_kb(proc.pid, "VmHWM"))

    def rounds(self, targets, run):
        """targets: [(key, arg)]; run(key, arg, round) -> summary. Rotates the order."""
        results = {k: [] for k, _ in targets}
        for r in range(self.args.rounds):
            order = targets[r % len(targets):] + targets[:r % len(targets)]
            for key, arg in order:
                results[key].append(run(key, arg, r))
        return results


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def summarize(results, base):
    """Median req/s, p50, p99, p99.9 per target, and median per-round ratios to `base`."""
    out = {}
    for key, runs in results.items():
        out[key] = {
            "rps": median([s["throughput"] for s in runs]),
            "p50": median([s["p50_us"] for s in runs]) / 1000,
            "p99": median([s["p99_us"] for s in runs]) / 1000,
            "p999": median([s["p999_us"] for s in runs]) / 1000,
            "errors": sum(sum(s["errors"].values()) for s in runs),
            "ratio": median([s["throughput"] / max(b["throughput"], 1e-9)
                             for s, b in zip(runs, results[base])]),
        }
        if all("per_cpu_s" in s for s in runs):
            out[key]["per_cpu_s"] = median([s["per_cpu_s"] for s in runs])
    return out


def callgrind(binary=None):
    r = subprocess.run(["bash", os.path.join(ROOT, "bench/scripts/callgrind-call.sh"),
                        binary or RINGMUX, "1000"], capture_output=True, text=True, timeout=900)
    m = re.search(r"instructions per proxied tools/call: ([\d,]+)", r.stdout)
    a = re.search(r"allocator calls .*: ([\d.]+)", r.stdout)
    if not m:
        log(r.stdout + r.stderr)
        return None, None
    return int(m.group(1).replace(",", "")), float(a.group(1)) if a else None


def idle_sessions(b, n):
    """RSS of a fresh ringmux (1 shard per core, 1 backend) before and after n sessions."""
    url = b.mock("idle")
    gw, gw_url = b.ringmux("idle", [("a", url)])
    time.sleep(0.5)
    before = rss_kb(gw.pid, "VmRSS")
    conns = 64
    r = subprocess.run([LOAD, gw_url, "-c", str(conns), "-t", "2", "-s", str(n),
                        "-n", str(conns), "-w", "0", "--mix", "ping", "--json", "-q",
                        "--timeout", "60"],
                       capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        sys.exit(f"opening {n} sessions failed: {r.stdout} {r.stderr}")
    time.sleep(0.5)
    after = rss_kb(gw.pid, "VmRSS")
    stop(gw)
    return before, after


def versions():
    def out(cmd):
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
            return (r.stdout + r.stderr).strip().splitlines()[0]
        except (OSError, IndexError):
            return "?"
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "machine": f"{cpu}, {os.cpu_count()} cores, {mem_gb:.0f} GiB, Linux {platform.release()}",
        "ringmux": out(["git", "-C", ROOT, "describe", "--always", "--dirty"]),
        "rustc": out(["rustc", "--version"]),
        "nginx": out([shutil.which("nginx") or "/usr/sbin/nginx", "-v"]),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=5.0, help="seconds per measurement")
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--quick", action="store_true", help="1 round of 2 s, 10k idle sessions")
    ap.add_argument("--idle-sessions", type=int, default=100_000)
    ap.add_argument("--no-callgrind", action="store_true")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--only", nargs="+", metavar="PART",
                    choices=["call", "tls", "list", "scaling", "memory", "callgrind"],
                    help="run only these parts (call, tls, list, scaling, memory, callgrind); "
                         "give --out elsewhere, the report then has only them")
    ap.add_argument("--baseline", metavar="RINGMUX_BINARY",
                    help="another ringmux binary measured beside this one (tools/call, open "
                         "loop, callgrind) in the same alternating rounds: a before/after check")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "RESULTS.md"))
    ap.add_argument("--html", default=os.path.join(ROOT, "target", "compare.html"),
                    help="percentile plots of every run, overlaid")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.duration, args.warmup = 1, 2.0, 0.5
        args.idle_sessions = 10_000
    command = "python3 bench/compare.py" + (" --quick" if args.quick else "")
    if args.only:
        command += " --only " + " ".join(args.only)
    if args.baseline:
        command += f" --baseline {args.baseline} --rounds {args.rounds}"

    if not args.no_build:
        log("building release binaries")
        subprocess.run(["cargo", "build", "--release", "-p", "ringmux", "-p", "ringmux-load"],
                       cwd=ROOT, check=True)
    if not (shutil.which("nginx") or os.path.exists("/usr/sbin/nginx")):
        log("installing nginx-light (Debian)")
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        subprocess.run(sudo + ["apt-get", "install", "-y", "nginx-light"], check=False)
        if not (shutil.which("nginx") or os.path.exists("/usr/sbin/nginx")):
            subprocess.run(sudo + ["apt-get", "update"], check=True)
            subprocess.run(sudo + ["apt-get", "install", "-y", "nginx-light"], check=True)

    def want(part):
        return not args.only or part in args.only

    b = Bench(args)
    res = {"versions": versions(), "command": command,
           "date": datetime.date.today().isoformat(),
           "rounds": args.rounds, "duration": args.duration}

    # -- tools/call through one backend ---------------------------------------------------
    if want("call"):
        log("tools/call echo through one backend")
        backend = b.mock("a")
        gw, gw_url = b.ringmux("gw-call", [("a", backend)], prefix=False)
        ng, ng_url = b.nginx(backend)
        urls = {"direct": backend, "nginx": ng_url, "ringmux": gw_url}
        if args.baseline:
            old, old_url = b.ringmux("gw-call-baseline", [("a", backend)], prefix=False,
                                     binary=args.baseline)
            urls["ringmux (baseline)"] = old_url
        res["call"] = {}
        for conns in (1, 16, 64):
            runs = b.rounds([(k, u) for k, u in urls.items()],
                            lambda k, u, r: b.load(u, conns, f"call c={conns} {k} #{r + 1}"))
            res["call"][conns] = summarize(runs, "direct")
            b.note_rss(gw)

        # -- open loop at ~50% of ringmux's saturation ------------------------------------------
        rate = int(res["call"][16]["ringmux"]["rps"] * 0.5)
        log(f"open loop at {rate} req/s")
        runs = b.rounds([(k, u) for k, u in urls.items()],
                        lambda k, u, r: b.load(u, 16, f"open {rate}/s {k} #{r + 1}", rate=rate))
        res["open"] = {"rate": rate, "by": summarize(runs, "direct")}
        b.note_rss(gw)
        stop(ng)
        stop(gw)
        if args.baseline:
            stop(old)

    # -- TLS ----------------------------------------------------------------------------------
    if want("tls"):
        log("tools/call over TLS (client to gateway; gateway to backend in the clear)")
        ca, cert, key = b.certificates()
        backend_t = b.mock("tls")
        gw_t, gw_t_url = b.ringmux("gw-tls", [("a", backend_t)], prefix=False, tls=(cert, key))
        ng_t, ng_t_url = b.nginx(backend_t, tls=(cert, key))
        res["tls"] = {}
        for conns in (16, 64):
            runs = b.rounds([("nginx (TLS)", ng_t_url), ("ringmux (TLS)", gw_t_url)],
                            lambda k, u, r: b.load(u, conns, f"tls c={conns} {k} #{r + 1}",
                                                   ca=ca))
            res["tls"][conns] = summarize(runs, "nginx (TLS)")
        b.note_rss(gw_t)
        stop(ng_t)
        stop(gw_t)

    # -- merged tools/list --------------------------------------------------------------------
    if want("list"):
        for key, mocks, per_mock in (("list10", 10, 1), ("list100", 10, 10)):
            n = mocks * per_mock
            log(f"merged tools/list over {n} backends x 50 tools")
            urls_ = [b.mock(f"{key}-{i}", tools=50) for i in range(mocks)]
            backends = [(f"b{i}", urls_[i % mocks]) for i in range(n)]
            gw, gw_url = b.ringmux(f"gw-{key}", backends)
            single = b.mock(f"{key}-single", tools=50 * n)
            targets = [("single backend", single), ("ringmux", gw_url)]
            policed = None
            if key == "list10":
                # The same list through a policy that hides about half of it: each client's
                # view is computed once, then pages are copies of what it may see.
                policed, policed_url = b.ringmux(f"gw-{key}-policy", backends, extra=POLICY)
                targets.append(("ringmux (policy)", policed_url))
            res[key] = {}
            for conns in (1, 16):
                runs = b.rounds(targets,
                                lambda k, u, r: b.load(u, conns, f"{key} c={conns} {k} #{r + 1}",
                                                       mix="list"))
                res[key][conns] = summarize(runs, "single backend")
            b.note_rss(gw)
            stop(gw)
            if policed:
                stop(policed)

    # -- shard scaling ------------------------------------------------------------------------
    if want("scaling"):
        log("shard scaling")
        backend2 = b.mock("scale")
        lists = [b.mock(f"scale-l{i}", tools=50) for i in range(10)]
        res["scaling"] = {}
        for mix, backends in (("call", [("a", backend2)]), ("list", [(f"b{i}", u) for i, u in enumerate(lists)])):
            one, one_url = b.ringmux(f"gw-1shard-{mix}", backends, shards=1, prefix=(mix == "list"))
            two, two_url = b.ringmux(f"gw-2shards-{mix}", backends, shards=2, prefix=(mix == "list"))
            gws = {one_url: one, two_url: two}
            runs = b.rounds([("1 shard", one_url), ("2 shards", two_url)],
                            lambda k, u, r: b.load(u, 64, f"scaling {mix} {k} #{r + 1}", mix=mix,
                                                   proc=gws[u]))
            res["scaling"][mix] = summarize(runs, "1 shard")
            stop(one)
            stop(two)

    # -- memory -------------------------------------------------------------------------------
    if want("memory"):
        res["peak_rss_mb"] = b.peak_rss_kb / 1024
        log(f"{args.idle_sessions} idle sessions")
        before, after = idle_sessions(b, args.idle_sessions)
        res["idle"] = {"sessions": args.idle_sessions, "before_mb": before / 1024,
                       "after_mb": after / 1024}

    # -- callgrind ----------------------------------------------------------------------------
    if want("callgrind"):
        if not args.no_callgrind:
            log("callgrind: instructions per proxied tools/call")
            res["instr_per_call"], res["allocs_per_call"] = callgrind()
            if args.baseline:
                res["baseline_instr_per_call"], res["baseline_allocs_per_call"] = \
                    callgrind(args.baseline)

    stop_all()
    report = render(res)
    # The open-loop cross-check (bench/crosscheck.py) is written by its own script: kept.
    kept = ""
    if os.path.exists(args.out):
        m = re.search(r"\n## open loop cross-checked with oha\n.*?(?=\n## |\Z)",
                      open(args.out).read(), flags=re.S)
        kept = m.group(0) if m else ""
    with open(args.out, "w") as f:
        f.write(report.rstrip("\n") + "\n" + kept if kept else report)
    with open(os.path.join(ROOT, "target", "compare.json"), "w") as f:
        json.dump(res, f, indent=1)
    print(report)


def render(res):
    v = res["versions"]
    L = []
    L.append("# ringmux comparison benchmark: results\n")
    L.append(f"Written by `{res['command']}` on {res['date']}.\n")
    L.append(f"- machine: {v['machine']}")
    L.append(f"- ringmux {v['ringmux']}, {v['rustc']}; {v['nginx']}")
    L.append(f"- {res['rounds']} alternating rounds of {res['duration']:g} s per measurement; "
             "figures are medians over rounds, ratios the median of per-round ratios")
    L.append("- everything on one machine over loopback: the load generator, the backends, "
             "nginx and ringmux share its cores\n")

    def table(title, rows, base_name):
        cpu = all("per_cpu_s" in s for s in rows.values())
        L.append(f"### {title}\n")
        L.append(f"| target | req/s | vs {base_name} | p50 ms | p99 ms | p99.9 ms | errors |"
                 + (" requests per gateway CPU-second |" if cpu else ""))
        L.append("|---|---:|---:|---:|---:|---:|---:|" + ("---:|" if cpu else ""))
        for key, s in rows.items():
            L.append(f"| {key} | {s['rps']:,.0f} | {s['ratio']:.2f} | {s['p50']:.3f} | "
                     f"{s['p99']:.3f} | {s['p999']:.3f} | {s['errors']} |"
                     + (f" {s['per_cpu_s']:,.0f} |" if cpu else ""))
        L.append("")

    if "call" in res:
        L.append("## tools/call (echo) through one backend\n")
        for conns, rows in res["call"].items():
            table(f"{conns} connection{'s' if int(conns) > 1 else ''}", rows, "direct")
        o = res["open"]
        table(f"open loop at {o['rate']:,} req/s (~50% of ringmux's 16-connection saturation), "
              "16 connections", o["by"], "direct")
    if "tls" in res:
        L.append("## tools/call (echo) over TLS\n")
        L.append("ringmux-load speaks TLS 1.3 (rustls) to the gateway, with the same P-256 "
                 "certificate and key for both; the gateway speaks plain HTTP to the backend. "
                 "Keep-alive connections: the handshakes fall in the warm-up.\n")
        for conns, rows in res["tls"].items():
            table(f"{conns} connections", rows, "nginx (TLS)")
    if "list10" in res:
        L.append("## merged tools/list\n")
        L.append("Each tool is about 400 bytes of JSON (the mock's default), so a 500-tool page is "
                 "about 200 KB and a 5,000-tool page about 2 MB.\n")
        for key, what in (("list10", "10 backends x 50 tools (ringmux) vs one backend serving 500 tools"),
                          ("list100", "100 backends x 50 tools (ringmux) vs one backend serving 5,000 tools")):
            for conns, rows in res[key].items():
                table(f"{what}, {conns} connection{'s' if int(conns) > 1 else ''}", rows,
                      "single backend")
    if "scaling" in res:
        L.append("## shard scaling (64 connections)\n")
        for mix, rows in res["scaling"].items():
            table(f"{'tools/call' if mix == 'call' else 'merged tools/list, 10 x 50'}", rows,
                  "1 shard")
    L.append("## memory and instructions\n")
    if "idle" in res:
        i = res["idle"]
        L.append(f"- ringmux peak RSS over the call, open-loop, TLS and list runs: "
                 f"**{res['peak_rss_mb']:.1f} MB**")
        L.append(f"- RSS with {i['sessions']:,} idle sessions: **{i['after_mb']:.1f} MB** "
                 f"({i['before_mb']:.1f} MB before them; "
                 f"{(i['after_mb'] - i['before_mb']) * 1024 * 1024 / i['sessions']:,.0f} bytes per session)")
    if res.get("instr_per_call"):
        L.append(f"- callgrind, instructions per proxied tools/call: **{res['instr_per_call']:,}**; "
                 f"allocator calls per call: {res['allocs_per_call']:.3f} "
                 "(`bash bench/scripts/callgrind-call.sh`)")
    if res.get("baseline_instr_per_call"):
        L.append(f"- the baseline binary: **{res['baseline_instr_per_call']:,}** instructions, "
                 f"{res['baseline_allocs_per_call']:.3f} allocator calls per call")
    L.append("")
    return "\n".join(L) + "\n"


if __name__ == "__main__":
    main()
