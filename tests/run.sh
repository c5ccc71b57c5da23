#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs the third-party MCP software the tests
# run against (npm packages into tests/interop/node_modules, a Python venv in tests/.venv),
# then runs lint, unit and integration tests, the official conformance suite and the Python
# SDK interop tests. Everything runs on loopback with ephemeral ports.
set -euo pipefail
cd "$(dirname "$0")/.."

# PIDs of processes running this checkout's binaries or test servers (the suite's own).
own_procs() {
  local p exe cmd
  for p in /proc/[0-9]*; do
    [ "${p#/proc/}" = "$$" ] || [ "${p#/proc/}" = "$BASHPID" ] && continue
    exe=$(readlink "$p/exe" 2>/dev/null) || continue
    cmd=$(tr '\0' ' ' <"$p/cmdline" 2>/dev/null) || continue
    case "$exe $cmd" in *"$PWD/target/"* | *"$PWD/tests/"*) echo "${p#/proc/}" ;; esac
  done | sort
}
before=$(own_procs)

echo "== installing test dependencies"
command -v node >/dev/null || { apt-get update -qq && apt-get install -y -qq nodejs npm; }
# The Python SDK's authentication tests sign their tokens with openssl.
command -v openssl >/dev/null || { apt-get update -qq && apt-get install -y -qq openssl; }
# The admin page's test renders it in Debian's headless Chromium (driven by Playwright).
[ -x /usr/bin/chromium ] || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }
(cd tests/interop && npm ci --no-audit --no-fund --loglevel=error)
[ -x tests/.venv/bin/python ] || python3 -m venv tests/.venv
tests/.venv/bin/pip install --quiet --disable-pip-version-check -r tests/interop/requirements.txt

echo "== format and lint"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings

echo "== unit and integration tests"
cargo test --workspace

echo "== official MCP conformance suite (server scenarios) through ringmux"
RINGMUX_BIN="$PWD/target/debug/ringmux" bash tests/interop/conformance.sh

echo "== official Python SDK through ringmux to server-everything; the admin page in Chromium"
RINGMUX_BIN="$PWD/target/debug/ringmux" tests/.venv/bin/python -m pytest -q -p no:cacheprovider tests/interop

echo "== processes the suite started are all gone"
for _ in $(seq 1 100); do
  left=$(comm -13 <(echo "$before") <(own_procs))
  [ -z "$left" ] && break
  sleep 0.05
done
if [ -n "$left" ]; then
  echo "the suite left these processes running:" >&2
  for p in $left; do echo "  $p: $(tr '\0' ' ' </proc/$p/cmdline 2>/dev/null)" >&2; done
  exit 1
fi
echo "none left"
