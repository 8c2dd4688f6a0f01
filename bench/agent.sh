#!/usr/bin/env bash
# Benchmarks of airlock-agent (not run by CI):
#  1. publish-to-applied latency with a 1 s poll interval (target: median under 2 s);
#  2. 200 apps idle: registry requests and CPU per cycle (target: at most one request per app per cycle),
#     side by side with a naive poller running `skopeo list-tags` per app.
# Needs docker-registry and skopeo (scripts/setup). Usage: bench/agent.sh [APPS] [RELEASES]
# PROFILE=dev runs the debug build (dependencies at opt-level 1) instead of --release.
set -euo pipefail
cd "$(dirname "$0")/.."
APPS=${1:-200}
RELEASES=${2:-10}
source scripts/cargo-env.sh
if [ "${PROFILE:-release}" = release ]; then
  cargo build -q --release -p airlock-agent --example bench_agent
  BIN=$CARGO_TARGET_DIR/release/examples/bench_agent
else
  cargo build -q -p airlock-agent --example bench_agent
  BIN=$CARGO_TARGET_DIR/debug/examples/bench_agent
fi
WORK=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$WORK/config.yml" <<YML
version: 0.1
log: { level: error, accesslog: { disabled: false } }
storage: { filesystem: { rootdirectory: $WORK/data } }
http: { addr: 127.0.0.1:$PORT }
YML
docker-registry serve "$WORK/config.yml" > "$WORK/access.log" 2> "$WORK/registry.err" &
REG=$!
trap 'kill $REG 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$PORT/v2/" >/dev/null && break; sleep 0.1; done
"$BIN" "127.0.0.1:$PORT" "$WORK/access.log" "$APPS" "$RELEASES"
