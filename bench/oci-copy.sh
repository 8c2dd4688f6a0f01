#!/usr/bin/env bash
# Copy a 5-layer, ~300 MB image registry→registry (two repositories of one registry, and two registries) and
# registry→layout with airlock's OCI engine and with `skopeo copy`, in the same run, on loopback registries.
# Prints wall time and peak RSS of each, and our time as a ratio of skopeo's (target: ≤ 0.8).
# Not run by CI. Needs docker (to build the fixture), docker-registry, skopeo, GNU time.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/cargo-env.sh
RUNS=${RUNS:-3}
LAYER_MB=${LAYER_MB:-60}

cargo build --quiet --release -p airlock-oci --example oci-copy
OURS=$CARGO_TARGET_DIR/release/examples/oci-copy

WORK=$(mktemp -d /tmp/oci-copy-bench.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
start_registry() { # NAME VAR -> sets VAR to the host (no subshell, so the pid is kept for cleanup)
  local port; port=$(free_port)
  mkdir -p "$WORK/$1"
  printf 'version: 0.1\nlog: { level: error }\nstorage: { filesystem: { rootdirectory: %s }, delete: { enabled: true } }\nhttp: { addr: 127.0.0.1:%s }\n' \
    "$WORK/$1/data" "$port" > "$WORK/$1/config.yml"
  docker-registry serve "$WORK/$1/config.yml" >/dev/null 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
  printf -v "$2" '127.0.0.1:%s' "$port"
}
start_registry r1 R1

# Fixture: 5 layers of incompressible data (what ships in real images compresses less than text).
FIX=airlock-bench/oci-copy:$LAYER_MB
if ! docker image inspect "$FIX" >/dev/null 2>&1; then
  mkdir -p "$WORK/ctx"
  for i in 1 2 3 4 5; do head -c "${LAYER_MB}M" /dev/urandom > "$WORK/ctx/l$i"; done
  printf 'FROM scratch\nCOPY l1 /l1\nCOPY l2 /l2\nCOPY l3 /l3\nCOPY l4 /l4\nCOPY l5 /l5\n' > "$WORK/ctx/Dockerfile"
  DOCKER_BUILDKIT=0 docker build -q -t "$FIX" "$WORK/ctx" >/dev/null
  rm -rf "$WORK/ctx"
fi
skopeo copy -q --dest-tls-verify=false "docker-daemon:$FIX" "docker://$R1/bench/src:1"
SIZE=$(du -sm "$WORK/r1/data" | cut -f1)
echo "fixture: 5 layers, ${SIZE} MB in the registry"

measure() { # CMD... -> prints "seconds kilobytes"; a failed copy stops the bench
  local out="$WORK/time.$$"
  if ! /usr/bin/time -f '%e %M' -o "$out" "$@" >/dev/null 2>"$WORK/err"; then
    echo "FAILED: $*" >&2; cat "$WORK/err" >&2; exit 1
  fi
  tail -n1 "$out"
}
SRC_DIGEST=$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$R1/bench/src:1")
check() { # REF: the copy must have kept the digest
  local got
  if [[ $1 == oci:* ]]; then
    # skopeo's oci: reader skips Docker-typed index entries, so read index.json directly.
    got=$(python3 -c 'import json,sys; d,t=sys.argv[1][4:].rsplit(":",1); print(next(m["digest"] for m in json.load(open(d+"/index.json"))["manifests"] if m.get("annotations",{}).get("org.opencontainers.image.ref.name")==t))' "$1")
  else
    got=$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "$1")
  fi
  [[ $got == "$SRC_DIGEST" ]] || { echo "digest changed: $1 has $got, source $SRC_DIGEST" >&2; exit 1; }
}

report() { # CASE SRC DST_TEMPLATE: "@" becomes a fresh repository or directory, "%" a fresh registry
  # Each run copies into an empty place (a new registry for the two-registry case), so neither tool can
  # skip or mount blobs a previous run left behind.
  local name=$1 src=$2 dst=$3 ours=() theirs=() ours_rss=0 theirs_rss=0 res t m
  for run in $(seq "$RUNS"); do
    local d_ours=${dst/@/a$run} d_theirs=${dst/@/s$run} RA RB
    if [[ $dst == *%* ]]; then
      start_registry "ra$run" RA; start_registry "rb$run" RB
      d_ours=${d_ours/\%/$RA}; d_theirs=${d_theirs/\%/$RB}
    fi
    res=$(measure "$OURS" "$src" "$d_ours" --insecure "$R1" --insecure "${RA:-$R1}")
    read -r t m <<<"$res"; ours+=("$t"); (( m > ours_rss )) && ours_rss=$m
    check "$d_ours"
    res=$(measure skopeo copy -q --src-tls-verify=false --dest-tls-verify=false "$src" "$d_theirs")
    read -r t m <<<"$res"; theirs+=("$t"); (( m > theirs_rss )) && theirs_rss=$m
  done
  python3 - "$name" "$ours_rss" "$theirs_rss" "${ours[*]}" "${theirs[*]}" <<'PY'
import statistics, sys
name, ours_rss, theirs_rss, ours, theirs = sys.argv[1:]
o = statistics.median(map(float, ours.split())); t = statistics.median(map(float, theirs.split()))
print(f"{name:28} airlock {o:6.2f} s  skopeo {t:6.2f} s  ratio {o/t:5.2f}  "
      f"peak RSS airlock {int(ours_rss)//1024} MiB, skopeo {int(theirs_rss)//1024} MiB")
PY
}

echo "median of $RUNS runs each, fresh destination every run:"
report "registry→registry (same)" "docker://$R1/bench/src:1" "docker://$R1/bench/dst@:1"
report "registry→registry (two)" "docker://$R1/bench/src:1" "docker://%/bench/dst@:1"
report "registry→layout" "docker://$R1/bench/src:1" "oci:$WORK/layout-@:1"

# LARGE=1: one 1 GiB layer pulled into a layout and pushed back to a fresh repository; the issue's bound is
# 100 MiB resident for either direction.
if [[ ${LARGE:-0} == 1 ]]; then
  BIG=airlock-bench/oci-copy-large:1024
  if ! docker image inspect "$BIG" >/dev/null 2>&1; then
    mkdir -p "$WORK/big"
    head -c 1024M /dev/urandom > "$WORK/big/blob"
    printf 'FROM scratch\nCOPY blob /blob\n' > "$WORK/big/Dockerfile"
    DOCKER_BUILDKIT=0 docker build -q -t "$BIG" "$WORK/big" >/dev/null
    rm -rf "$WORK/big"
  fi
  skopeo copy -q --dest-tls-verify=false "docker-daemon:$BIG" "docker://$R1/bench/large:1"
  read -r t m <<<"$(measure "$OURS" "docker://$R1/bench/large:1" "oci:$WORK/large:1" --insecure "$R1")"
  echo "1 GiB layer registry→layout   airlock $t s, peak RSS $((m / 1024)) MiB"
  read -r t m <<<"$(measure "$OURS" "oci:$WORK/large:1" "docker://$R1/bench/large-back:1" --insecure "$R1")"
  echo "1 GiB layer layout→registry   airlock $t s, peak RSS $((m / 1024)) MiB"
fi
