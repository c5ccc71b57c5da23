#!/usr/bin/env bash
# Instructions and malloc calls per proxied tools/call, on the gateway side, with callgrind:
# one shard, one mock backend, calls on one keep-alive connection. The counters are dumped
# (and zeroed) with callgrind_control after a warm-up, after N calls, and after a session with
# no calls; per call = (N-call dump - no-call dump) / N. Counts instructions, not time, so it
# is repeatable on a noisy machine.
#
# Figures (2-core VM, release builds, N = 1000; ARCHITECTURE.md "Decisions and measurements"):
#   2026-11-22  24.2 k instructions, 0.003 allocator calls (one era, one transport)
#   2026-12-04  25.1 k at 4a427fd (both eras, every transport); 28.1 k, 0.003-0.010 after the
#               hardening (2.2 k of it: each backend answer validated by the envelope scanner)
#   2026-12-04  the request pipeline (issue "One request pipeline"), same machine, one after the
#               other: 6198861 28,031-28,064 (release profile: four codegen units); the pipeline
#               28,462-28,487 with the same profile, 27,846-27,868 with the gateway crate in one
#               codegen unit (now the release profile; the other crates keep four). At equal
#               profile (all in one unit: 27,342-27,355 before, 27,762-27,784 after) the
#               pipeline costs ~420: ~150 the URI check on a prefixed backend's answers (a
#               memmem for "uri"), ~160 the pipeline's stages, ~20 the call guard.
#   2026-12-04  TLS (issue "TLS and authentication"), one after the other: 28,063 before
#               (6dfc783), 28,348-28,404 after (connections hold a plain-or-TLS stream);
#               AUTH=jwt 29,881-29,893; TLS=1 39,361-39,426 and 6.0 allocator calls.
#   2026-12-04  authorization, rate limits, masking, tool safety (issue 17), one after the
#               other: 70e55ca 28,408 (AUTH=jwt 29,893) -> 28,529-28,572 (AUTH=jwt 30,034-30,069);
#               AUTH=jwt AUTHZ=view 30,337-30,376; AUTHZ=args 45,267-45,320 and 28 allocator calls
#               (the arguments parsed and a CEL rule evaluated per call); TLS=1 39,632.
#   2026-12-04  virtual servers and request facts (issue 17), one after the other: 9c3bf32
#               28,555 (AUTH=jwt 30,081) -> 52cf70e 28,629 (30,129) -> 9682a41 28,677-28,692
#               (AUTH=jwt 30,187); AUTH=jwt AUTHZ=view 30,477; ROUTE=rename 29,105;
#               ROUTE=fixed 35,587 and 4 allocator calls (39,986 and 17 with a Value round trip).
#   2026-12-04  the admin listener (issue 18) 28,710; latency histograms per method (two clock
#               reads and an HDR record per request) 29,012-29,045 (+1.1%).
#   2026-12-04  issue 18, one after the other: latency series per route, backend, method and
#               tool with error counts 29,157; ACCESS=1 (access log) 30,631; the circuit
#               breaker 29,319-29,330; traces plumbed, off: aaf3041 29,359 -> 29,497 (+138;
#               ACCESS=1 31,060); TRACES=1 (every request sampled) 29,869. After a review's
#               fixes (breaker tickets, escaped tool names keyed as decoded): 29,683; ACCESS=1
#               31,159 (1.085x the 28,710 before issue 18; its bound is 1.1x); TRACES=1
#               29,869-36,016: the whole process is counted, and whether the exporter
#               thread's encoding (about 6 k instructions and 13 allocations per call's two
#               spans) falls inside the measured window varies from run to run.
#   2026-12-04  hot reload (issue 18; a request takes its shard's current config generation
#               twice, a RefCell borrow and an Rc clone each), one after the other: 23f4350
#               29,730-29,795, after 29,782-29,869 (about +70, 0.2%). tracestate passed on:
#               first 30,393-30,439, all of it a 472-byte memcpy of the backend exchange's
#               future in Session::post once its trace argument grew to 32 bytes; passed by
#               reference instead: 29,872-29,898, as before it (746c744: 29,872). After a
#               second review's fixes (routes by key, joins on replaced pools, the reading
#               limits cached per connection): 29,869-29,957 against 23f4350's 29,753-29,798
#               (+150 to +190, 0.6%).
#
# usage: bench/scripts/callgrind-call.sh [RINGMUX_BINARY] [N]
#   (default: target/release/ringmux, built first; N = 1000)
#   KEEP=DIR keeps the callgrind dumps there (cg.PID.2 = the N calls, for callgrind_annotate)
#   AUTH=jwt turns authentication on (the test JWK Set, tests/fixtures/auth) and sends the same
#   RS256 token (signed here with openssl) with every request
#   AUTHZ=view (with AUTH=jwt) adds authorization rules on the token's scopes and the tool's
#   name: every call is decided from the session's cached view; AUTHZ=args adds a rule on the
#   call's arguments, evaluated (CEL) on every call
#   ROUTE=rename calls through a virtual server (routes:) that renames the tool and describes it
#   anew; ROUTE=fixed through one that fixes its argument (the call body rewritten per call)
#   TRACES=1 turns traces on (every request sampled: a server and a client span per call)
#   ACCESS=1 turns the access log on (to a file; lines batched per shard, written by a thread)
#   TLS=1 puts the client's connection under TLS (a certificate made here with openssl); the
#   handshake falls in both dumps and cancels out, so the figure is TLS's cost per call
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${2:-1000}
if [[ $# -lt 1 ]]; then
  cargo build --release --bin ringmux >&2
  BIN=target/release/ringmux
else
  BIN=$1
fi
command -v valgrind >/dev/null || { echo "valgrind is required (apt-get install valgrind)" >&2; exit 1; }
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
MOCK_PORT=$(free_port)
GW_PORT=$(free_port)
"$BIN" mock --listen "127.0.0.1:$MOCK_PORT" --name a --json-only >"$WORK/mock.log" 2>&1 &
PIDS+=($!)
cat >"$WORK/gw.yaml" <<YAML
listen: 127.0.0.1:$GW_PORT
shards: 1
admin:
  listen: 127.0.0.1:0
pin_cores: false
backends:
  - name: a
    url: http://127.0.0.1:$MOCK_PORT/mcp
YAML
if [[ "${AUTH:-}" == jwt ]]; then
  FIX=$PWD/tests/fixtures/auth
  cat >>"$WORK/gw.yaml" <<YAML
auth:
  resource: https://gw.test/mcp
  required_scopes: [mcp]
  jwt:
    issuer: https://idp.test
    jwks_file: $FIX/jwks.json
YAML
  AUTHORIZATION="Bearer $(python3 - "$FIX/rsa1.pem" <<'PY'
import base64, json, subprocess, sys, time
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
now = int(time.time())
head = b64(json.dumps({"alg": "RS256", "typ": "JWT", "kid": "k1"}).encode())
body = b64(json.dumps({"iss": "https://idp.test", "aud": "https://gw.test/mcp", "sub": "bench",
                       "iat": now, "exp": now + 3600, "scope": "mcp"}).encode())
sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", sys.argv[1]],
                     input=f"{head}.{body}".encode(), capture_output=True, check=True).stdout
print(f"{head}.{body}.{b64(sig)}")
PY
)"
  export AUTHORIZATION
fi
if [[ -n "${AUTHZ:-}" ]]; then
  cat >>"$WORK/gw.yaml" <<'YAML'
authz:
  rules:
    - name: scoped
      allow: '"mcp" in principal.scopes && mcp.backend == "a"'
    - name: no-admin
      deny: 'mcp.tool.startsWith("a__admin")'
YAML
  if [[ "$AUTHZ" == args ]]; then
    cat >>"$WORK/gw.yaml" <<'YAML'
    - name: short-messages
      deny: 'mcp.tool == "a__echo" && size(args.message) > 100'
YAML
  fi
fi
if [[ -n "${ROUTE:-}" ]]; then
  if [[ "$ROUTE" == fixed ]]; then
    OVERRIDE='a__echo: {arguments: {message: hello}}'
    export TOOL=a__echo
  else
    OVERRIDE='a__echo: {name: say, description: Says it}'
    export TOOL=say
  fi
  cat >>"$WORK/gw.yaml" <<YAML
routes:
  - path: /v/mcp
    tools:
      include: ['a__*']
      overrides:
        $OVERRIDE
YAML
  export MCP_PATH=/v/mcp
fi
if [[ "${TRACES:-}" == 1 ]]; then
  # Every request sampled; nothing listens there, so the exporter's posts fail and count
  # the spans dropped (its thread's work is not the shard's).
  printf 'traces:\n  endpoint: http://127.0.0.1:9/v1/traces\n  sample_ratio: 1\n' >>"$WORK/gw.yaml"
fi
if [[ "${ACCESS:-}" == 1 ]]; then
  printf 'access_log:\n  path: %s\n' "$WORK/access.jsonl" >>"$WORK/gw.yaml"
fi
if [[ "${TLS:-}" == 1 ]]; then
  EC=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
  openssl req -x509 "${EC[@]}" -keyout "$WORK/ca.key" -out "$WORK/ca.pem" -days 1 \
    -subj "/CN=callgrind CA" 2>/dev/null
  openssl req "${EC[@]}" -keyout "$WORK/key.pem" -out "$WORK/cert.csr" -subj "/CN=localhost" 2>/dev/null
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >"$WORK/ext.cnf"
  openssl x509 -req -in "$WORK/cert.csr" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" \
    -CAcreateserial -out "$WORK/cert.pem" -days 1 -extfile "$WORK/ext.cnf" 2>/dev/null
  printf 'tls:\n  cert: %s\n  key: %s\n' "$WORK/cert.pem" "$WORK/key.pem" >>"$WORK/gw.yaml"
  export TLS_CA=$WORK/ca.pem
fi
valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.%p" "$BIN" run "$WORK/gw.yaml" >"$WORK/gw.log" 2>&1 &
VG=$!
PIDS+=($VG)
for _ in $(seq 100); do
  grep -q "listening on" "$WORK/gw.log" && break
  sleep 0.2
done
# A blocked io_uring wait only notices the dump request on its next event: poke it.
poke() { python3 -c "
import socket
s = socket.create_connection(('127.0.0.1', $GW_PORT), timeout=5)
s.send(b'GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n'); s.recv(100)"; }
dumps() { find "$WORK" -name 'cg.*.*' | wc -l; }
dump() {
  local before
  before=$(dumps)
  timeout 60 callgrind_control -d "$1" >/dev/null 2>&1 &
  for _ in $(seq 50); do
    sleep 0.2
    poke
    [[ $(dumps) -gt $before ]] && break
  done
  sleep 1
}
DRIVE=bench/scripts/drive_calls.py
python3 $DRIVE "$GW_PORT" 200 && dump warm
python3 $DRIVE "$GW_PORT" "$N" && dump calls
python3 $DRIVE "$GW_PORT" 0 && dump none
python3 - "$N" "$WORK"/cg.*.2 "$WORK"/cg.*.3 <<'PY'
import re, sys
def counts(path):
    names, current, total = {}, None, 0
    # glibc's entry points, and mimalloc's (ringmux's global allocator) as Rust calls them.
    calls = dict.fromkeys(["malloc", "realloc", "calloc", "mi_malloc_aligned",
                           "mi_zalloc_aligned", "mi_realloc_aligned"], 0)
    for line in open(path):
        line = line.strip()
        if line.startswith("totals:"):
            total = int(line.split()[1])
        m = re.match(r"^(c?fn)=\((\d+)\)(?: (.*))?$", line)
        if m:
            kind, i, name = m.groups()
            if name:
                names[i] = name
            current = names.get(i) if kind == "cfn" else None
        elif line.startswith("calls=") and current in calls:
            calls[current] += int(line.split("=")[1].split()[0])
            current = None
    return total, sum(calls.values())
n = int(sys.argv[1])
ins_calls, alloc_calls = counts(sys.argv[2])
ins_none, alloc_none = counts(sys.argv[3])
print(f"instructions per proxied tools/call: {(ins_calls - ins_none) / n:,.0f}")
print(f"allocator calls (malloc/realloc/calloc, mimalloc's included) per proxied tools/call: {(alloc_calls - alloc_none) / n:.3f}")
PY
if [[ -n "${KEEP:-}" ]]; then mkdir -p "$KEEP" && cp "$WORK"/cg.* "$KEEP"/; fi
