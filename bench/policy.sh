#!/usr/bin/env bash
# Policy evaluation speed: the default gate policies over an input with 2,000 findings.
#
# Target (issue 7): under 50 ms per evaluation (deny + warn + waivers) with regorus.
# Peer, measured side by side on the same JSON input and the same policies: rego-cpp via
# `regopy` (the cross-check engine of TESTKIT.md), timing the same two queries.
#
# Usage: bench/policy.sh            (needs the venv of scripts/setup with regopy, or AIRLOCK_PY_VENV)
# Prints: airlock's median, the peer's median and the ratio peer/airlock.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
# The same build cache as scripts/test: one per checkout path.
source "$root/scripts/cargo-env.sh"
venv="${AIRLOCK_PY_VENV:-$HOME/.cache/airlock/venv}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "building the benchmark (release)..." >&2
cargo build --quiet --release -p airlock-policy --example bench_eval --manifest-path "$root/Cargo.toml"

out="$("$CARGO_TARGET_DIR/release/examples/bench_eval" "$root/policies/gate" --write-input "$work/input.json")"
echo "$out"
ours="$(echo "$out" | sed -n 's/^median_ms=//p')"

peer="$("$venv/bin/python" - "$root/policies/gate" "$work/input.json" <<'EOF'
import os, statistics, sys, time
from regopy import Interpreter

policies, input_path = sys.argv[1], sys.argv[2]
sources = [(n, open(os.path.join(policies, n), encoding="utf-8").read())
           for n in sorted(os.listdir(policies)) if n.endswith(".rego") and not n.endswith("_test.rego")]
text = open(input_path, encoding="utf-8").read()
times = []
# One run: rego-cpp takes tens of seconds on this input, and its spread is small next to the ratio.
for _ in range(1):
    rego = Interpreter()
    for name, src in sources:
        rego.add_module(name, src)
    rego.set_input_term(text)
    start = time.perf_counter()
    # Count entries only: both engines build every entry, and the count checks they agree.
    out = rego.query("d := count(data.airlock.gate.deny); w := count(data.airlock.gate.warn)")
    times.append(time.perf_counter() - start)
    if not out.ok() or out.results[0]["d"] != 800 or out.results[0]["w"] != 800:
        sys.exit("regopy disagrees: %s" % out)
print("%.3f" % (statistics.median(times) * 1000))
EOF
)"

echo "regorus (airlock): median ${ours} ms per evaluation of 2,000 findings (target < 50 ms)"
echo "rego-cpp (regopy): ${peer} ms (one run) on the same input and policies"
awk -v a="$ours" -v p="$peer" 'BEGIN { printf "ratio rego-cpp / regorus: %.2fx\n", p / a }'
awk -v a="$ours" 'BEGIN { if (a >= 50) { print "ABOVE TARGET (50 ms)"; exit 1 } else print "within target (50 ms)" }'
