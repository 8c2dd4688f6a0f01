package airlock.admission_test

good := {
	"release": {
		"app": "hello", "team": "demo", "sequence": 7,
		"image_digest": "sha256:2222222222222222222222222222222222222222222222222222222222222222",
		"commit": "0123456789abcdef0123456789abcdef01234567",
		"environments": ["staging", "production"],
	},
	"environment": "staging",
	"gate_decision": {"allowed": true, "policy_digest": "sha256:5555555555555555555555555555555555555555555555555555555555555555"},
	"findings": [],
}

deny_rules(inp) := {v.rule | some v in data.airlock.admission.deny with input as inp}

critical(fixed) := {
	"id": "CVE-2024-0001", "aliases": ["GHSA-aaaa-bbbb-cccc"], "package": "openssl", "ecosystem": "Debian",
	"installed": "3.0.1", "fixed": fixed, "severity": "critical",
}

test_good_release_is_admitted if count(deny_rules(good)) == 0

test_denies_environment_not_in_release if {
	"admission.environment-not-in-release" in deny_rules(object.union(good, {"environment": "prod-eu"}))
}

test_denies_missing_gate_decision if {
	"admission.gate-decision-missing" in deny_rules(object.union(good, {"gate_decision": null}))
	"admission.gate-decision-missing" in deny_rules(json.remove(good, ["gate_decision"]))
}

test_denies_gate_decision_not_allowed if {
	"admission.gate-denied" in deny_rules(object.union(good, {"gate_decision": {"allowed": false}}))
}

test_denies_gate_decision_without_allowed if {
	inp := object.union(good, {"gate_decision": {"policy_digest": "sha256:55"}})
	inp2 := json.remove(inp, ["gate_decision/allowed"])
	"admission.gate-denied" in deny_rules(inp2)
}

test_denies_fixable_critical if {
	inp := object.union(good, {"findings": [critical("3.0.2")]})
	some v in data.airlock.admission.deny with input as inp
	v.rule == "admission.fixable-critical"
	v.package == "openssl"
	v.advisories == ["CVE-2024-0001", "GHSA-aaaa-bbbb-cccc"]
	v.fix == "upgrade openssl to 3.0.2 or later and submit again"
}

test_critical_without_fix_is_admitted if {
	count(deny_rules(object.union(good, {"findings": [critical(null)]}))) == 0
}
