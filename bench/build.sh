#!/usr/bin/env bash
# Build benchmark (not run by CI). For the same app and output, in one run:
#   - airlock's image assembly of examples/hello's static binary onto the pinned static base, against
#   - `docker build` (classic builder, --no-cache) of a Dockerfile that COPYs the same binary onto the same base;
#   - an unchanged resubmission of a standard build, which reuses the cached result.
# Targets: assembly <= 0.2x the docker build wall time; resubmission < 1 s.
# Needs the Docker Engine (scripts/setup). Usage: bench/build.sh [ITERATIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/cargo-env.sh
ITER="${1:-5}"

# The artifact: examples/hello built as a static binary, as its airlock.toml builds it.
HELLO_TARGET="$CARGO_TARGET_DIR/bench-hello"
(cd examples/hello && RUSTFLAGS='-C target-feature=+crt-static' CARGO_TARGET_DIR="$HELLO_TARGET" \
  cargo build -q --release --locked --offline --target x86_64-unknown-linux-gnu)
ARTIFACT="$HELLO_TARGET/x86_64-unknown-linux-gnu/release/hello"

cargo build -q --release -p airlock-build --example bench_build
"$CARGO_TARGET_DIR/release/examples/bench_build" "$ARTIFACT" "$ITER"
