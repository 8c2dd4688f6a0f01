#!/usr/bin/env python3
"""Evaluate the example inputs with a second Rego engine (rego-cpp, via regopy).

For every policies/examples/*.json (gate-*.json with package airlock.gate,
admission-*.json with airlock.admission) print one JSON line
  {"file": NAME, "deny": [sorted rule ids], "warn": [sorted rule ids]}
The Rust test `crosscheck_matches_regopy` in crates/airlock-policy compares these
lines with regorus' decisions on the same files.

Usage: crosscheck.py [POLICIES_DIR]   (default: the directory of this script)
Needs: pip install regopy
"""
import json
import os
import sys

try:
    from regopy import Interpreter
except ImportError:
    sys.exit("regopy is missing: python3 -m venv ~/.cache/airlock/venv && ~/.cache/airlock/venv/bin/pip install regopy")

PACKAGES = {"gate-": ("airlock.gate", "gate"), "admission-": ("airlock.admission", "admission")}
MAX_INPUT_BYTES = 16 * 1024 * 1024


def policy_sources(directory):
    """All *.rego files in directory except *_test.rego, sorted by name."""
    names = sorted(n for n in os.listdir(directory) if n.endswith(".rego") and not n.endswith("_test.rego"))
    for name in names:
        with open(os.path.join(directory, name), encoding="utf-8") as f:
            yield name, f.read()


def rule_ids(rego, query):
    """Sorted rule ids of the set `query` evaluates to (empty when undefined)."""
    # Ask for the rule ids only: entries hold free text that some regopy versions
    # print without escaping quotes.
    out = rego.query("x := {e.rule | some e in %s}" % query)
    if not out.ok():
        raise RuntimeError("query %s failed: %s" % (query, out))
    return sorted(out.results[0]["x"]) if len(out) else []


def evaluate(policies_dir, path):
    base = os.path.basename(path)
    for prefix, (package, subdir) in PACKAGES.items():
        if base.startswith(prefix):
            break
    else:
        return None
    if os.path.getsize(path) > MAX_INPUT_BYTES:
        raise RuntimeError("%s is larger than %d bytes" % (path, MAX_INPUT_BYTES))
    rego = Interpreter()
    for name, source in policy_sources(os.path.join(policies_dir, subdir)):
        rego.add_module(name, source)
    with open(path, encoding="utf-8") as f:
        rego.set_input_term(f.read())
    return {
        "file": base,
        "deny": rule_ids(rego, "data.%s.deny" % package),
        "warn": rule_ids(rego, "data.%s.warn" % package),
    }


def main():
    policies_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    examples = os.path.join(policies_dir, "examples")
    for name in sorted(os.listdir(examples)):
        if not name.endswith(".json"):
            continue
        result = evaluate(policies_dir, os.path.join(examples, name))
        if result is not None:
            print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    main()
