# Shared inputs for the gate tests: `good` passes every gate rule; tests change one thing.
package airlock.gate_test

approved := "sha256:1111111111111111111111111111111111111111111111111111111111111111"

good := {
	"submission": {"app": "hello", "team": "demo", "repository": "file:///src/hello", "commit": "0123456789abcdef0123456789abcdef01234567", "branch": "main", "author": "dev@example.com"},
	"descriptor": {
		"app": {"name": "hello", "team": "demo"},
		"build": {"mode": "standard", "stack": "rust-static"},
		"run": {"command": ["/app/hello"], "port": 8080, "health": "/healthz"},
		"deploy": {"replicas": 1},
	},
	"build": {"builder": "docker", "mode": "standard", "stack": "rust-static"},
	"image": {
		"digest": "sha256:2222222222222222222222222222222222222222222222222222222222222222",
		"user": "65532:65532",
		"ports": [8080],
		"env_names": ["PORT"],
		"base": {"name": "static", "digest": approved},
		"builder_image": null,
	},
	"platform": {"approved_bases": [approved], "allow_host_builder": false},
	"sbom": {"package_count": 1, "ecosystems": {"crates.io": 1}},
	"findings": [],
	"manifests": {},
	"dockerfile": null,
}

finding(severity, fixed) := {
	"id": "CVE-2014-1402", "aliases": ["PYSEC-2014-8"], "package": "jinja2", "ecosystem": "PyPI",
	"installed": "2.7.1", "fixed": fixed, "severity": severity, "cvss_score": 7.5,
	"summary": "sandbox escape", "layer": "sha256:3333333333333333333333333333333333333333333333333333333333333333",
}

with_findings(fs) := object.union(good, {"findings": fs})

deny_rules(inp) := {v.rule | some v in data.airlock.gate.deny with input as inp}

warn_rules(inp) := {v.rule | some v in data.airlock.gate.warn with input as inp}

test_good_input_has_no_deny_and_no_warn if {
	count(deny_rules(good)) == 0
	count(warn_rules(good)) == 0
}
