#!/usr/bin/env bash
# Runs the official MCP conformance suite (server scenarios, @modelcontextprotocol/conformance
# 0.1.13, the last release that runs on Node 20) against ringmux fronting one backend with
# prefixing off: the project's mock server in its conformance mode, once stateful and once
# serving both eras. Scenarios that need
# features of later issues are listed, with the reason, in expected-failures.yml; any other
# failure, or a listed scenario that now passes, fails the run.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="${RINGMUX_BIN:-$here/../../target/debug/ringmux}"
work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Starts a process that prints "... http://ADDR/mcp" as its first stdout line and sets
# $started_url to that URL. It runs in this shell (not in a $(...) subshell), so the PID it
# records reaches the EXIT trap and the process is stopped however the script ends.
start() {
  local name="$1"; shift
  "$@" >"$work/$name.out" 2>"$work/$name.err" &
  pids+=("$!")
  for _ in $(seq 1 200); do
    if [ -s "$work/$name.out" ]; then
      started_url="$(awk 'NR==1 {print $NF}' "$work/$name.out")"
      return 0
    fi
    sleep 0.05
  done
  echo "$name did not start:" >&2; cat "$work/$name.err" >&2
  return 1
}

# One pass of the suite against ringmux fronting the mock started with the given flags.
suite() {
  local label="$1"; shift
  start "mock-$label" "$bin" mock --conformance "$@" --listen 127.0.0.1:0
  local backend_url="$started_url"
  cat >"$work/gw-$label.yaml" <<YAML
listen: 127.0.0.1:0
admin:
  listen: 127.0.0.1:0
shards: 2
pin_cores: false
backends:
  - name: everything
    url: $backend_url
    prefix: false
YAML
  start "gateway-$label" "$bin" run "$work/gw-$label.yaml"
  local gw_url="$started_url"
  echo "conformance ($label): ringmux at $gw_url fronting the mock at $backend_url"
  local results="$here/results/$label"
  rm -rf "$results"
  set +e
  timeout 600 node "$here/node_modules/@modelcontextprotocol/conformance/dist/index.js" server \
    --url "$gw_url" --suite all -o "$results" \
    --expected-failures "$here/expected-failures.yml" 2>&1 | sed 's/\x1b\[[0-9;]*m//g' | tee "$work/suite-$label.log"
  local rc=${PIPESTATUS[0]}
  set -e
  local passed failed listed
  read -r passed failed < <(awk '/"status": *"SUCCESS"/ {s++} /"status": *"FAILURE"/ {f++} END {print s+0, f+0}' "$results"/*/checks.json)
  listed=$(awk '/^  - / {n++} END {print n+0}' "$here/expected-failures.yml")
  echo "conformance checks ($label): $passed passed, $failed failed ($listed scenarios listed as expected failures)"
  if [ "$rc" -ne 0 ]; then
    echo "conformance ($label): unexpected result (see above); gateway log:" >&2
    tail -n 50 "$work/gateway-$label.err" >&2
    exit "$rc"
  fi
}

rm -rf "$here/results"
# A stateful backend.
suite stateful
# A backend serving both eras on one endpoint (its server/discover offers 2026-07-28 and the
# stateful versions): the suite's stateful client must be served in its own era, or the
# backend's sampling and elicitation requests would never reach it.
suite dual --modern --dual
