# Sourced by scripts/test and bench/*.sh: one cargo build cache per checkout, kept outside the clone.
# Test binaries embed their crate's absolute path (CARGO_MANIFEST_DIR), and cargo would otherwise reuse a
# binary built from another clone whose sources are older. A CARGO_TARGET_DIR already set is kept.
checkout_key="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P | sha256sum | cut -c1-12)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/airlock/targets/$checkout_key}"
