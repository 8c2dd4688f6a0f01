#!/usr/bin/env bash
# Rebase a fleet of app images onto a new base on one local registry (docker-registry), as
# `airlock-gate rebase --all-on` does for releases, but timing only the OCI work: push the new base, then
# rebase N app images (default 100) in place, PARALLEL at a time (default 16).
# Prints the wall time (target: < 10 s) and, from the registry's own access log, how many blobs were
# uploaded (target: only the new base's layers, once; each rebased image also gets its new config blob) and
# how many were mounted across repositories instead. Not run by CI. Needs docker-registry.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/cargo-env.sh
N=${N:-100}
PARALLEL=${PARALLEL:-16}

cargo build --quiet --release -p airlock-oci --example rebase-fleet
FLEET=$CARGO_TARGET_DIR/release/examples/rebase-fleet

WORK=$(mktemp -d /tmp/rebase-bench.XXXXXX)
PID=""
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# The access log (one line per request, Apache style) is how uploads and mounts are counted.
printf 'version: 0.1\nlog: { level: error, accesslog: { disabled: false } }\nstorage: { filesystem: { rootdirectory: %s }, delete: { enabled: true } }\nhttp: { addr: 127.0.0.1:%s }\n' \
  "$WORK/data" "$PORT" > "$WORK/config.yml"
docker-registry serve "$WORK/config.yml" >"$WORK/access.log" 2>&1 &
PID=$!
for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
HOST=127.0.0.1:$PORT

"$FLEET" setup "$HOST" "$N"
START_LINE=$(wc -l < "$WORK/access.log")
"$FLEET" run "$HOST" "$N" "$PARALLEL" | tee "$WORK/run.out"
sleep 0.5 # let the registry flush its last access-log lines
tail -n +"$((START_LINE + 1))" "$WORK/access.log" > "$WORK/phase.log"

# A finished upload is `PUT .../blobs/uploads/<id>?digest=sha256:...`; a mount is a `POST ...?mount=` answered 201.
grep -oE '"PUT /v2/[^ ]*/blobs/uploads/[^ ]*digest=sha256(:|%3A)[0-9a-f]{64}' "$WORK/phase.log" \
  | grep -oE '[0-9a-f]{64}$' | sort > "$WORK/uploaded" || true
grep -oE '^new-base-layer sha256:[0-9a-f]{64}' "$WORK/run.out" | grep -oE '[0-9a-f]{64}$' | sort -u > "$WORK/new-layers"
NEW_LAYERS=$(wc -l < "$WORK/new-layers")
UPLOADS=$(wc -l < "$WORK/uploaded")
LAYER_UPLOADS=$(grep -cFf "$WORK/new-layers" "$WORK/uploaded" || true)
DISTINCT_LAYER_UPLOADS=$(grep -Ff "$WORK/new-layers" "$WORK/uploaded" | sort -u | wc -l || true)
OTHER_UPLOADS=$((UPLOADS - LAYER_UPLOADS))
MOUNTS=$(grep -cE '"POST /v2/[^ ]*/blobs/uploads/\?[^ ]*mount=[^"]*" 201' "$WORK/phase.log" || true)
HEADS=$(grep -cE '"HEAD /v2/[^ ]*/blobs/' "$WORK/phase.log" || true)
REQUESTS=$(grep -cE '"(GET|HEAD|PUT|POST|PATCH|DELETE) /v2/' "$WORK/phase.log" || true)
PINGS=$(grep -cE '"GET /v2/ HTTP' "$WORK/phase.log" || true)
SECONDS_TOTAL=$(grep -oE 'in [0-9.]+ s' "$WORK/run.out" | head -1 | grep -oE '[0-9.]+')

echo
echo "rebase of $N app images onto a new base ($PARALLEL at a time), one local registry"
printf '  wall time           %s s   (target < 10 s)\n' "$SECONDS_TOTAL"
printf '  new base layers     %s, uploaded %s time(s) in all (%s distinct)   (target: each once)\n' \
  "$NEW_LAYERS" "$LAYER_UPLOADS" "$DISTINCT_LAYER_UPLOADS"
printf '  other blob uploads  %s   (config blobs of the rebased images and of base v2: expected %s; no app or base layer)\n' \
  "$OTHER_UPLOADS" "$((N + 1))"
printf '  mounts              %s   blob HEADs %s   requests %s (of which GET /v2/ pings %s)\n' \
  "$MOUNTS" "$HEADS" "$REQUESTS" "$PINGS"
