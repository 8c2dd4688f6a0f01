package airlock.gate_test

test_denies_fixable_high if {
	"vuln.fixable-high" in deny_rules(with_findings([finding("high", "2.7.2")]))
}

test_denies_fixable_critical if {
	"vuln.fixable-critical" in deny_rules(with_findings([finding("critical", "2.7.2")]))
}

test_high_without_fix_is_not_denied if {
	count(deny_rules(with_findings([finding("high", null)]))) == 0
	count(deny_rules(with_findings([finding("high", "")]))) == 0
}

test_fixable_high_message_names_package_versions_and_advisories if {
	inp := with_findings([finding("high", "2.7.2")])
	some v in data.airlock.gate.deny with input as inp
	v.rule == "vuln.fixable-high"
	contains(v.message, "jinja2 2.7.1")
	contains(v.message, "CVE-2014-1402, PYSEC-2014-8")
	contains(v.message, "fixed in 2.7.2")
	v.fix == "upgrade jinja2 to 2.7.2 or later"
	v.advisories == ["CVE-2014-1402", "PYSEC-2014-8"]
	v.package == "jinja2"
}

test_warns_fixable_medium_without_deny if {
	inp := with_findings([finding("medium", "2.7.2")])
	count(deny_rules(inp)) == 0
	warn_rules(inp) == {"vuln.fixable-medium"}
}

test_warns_unknown_severity_with_fix_without_deny if {
	inp := with_findings([finding("unknown", "2.7.2")])
	count(deny_rules(inp)) == 0
	warn_rules(inp) == {"vuln.unknown-severity"}
}

test_low_is_silent if {
	inp := with_findings([finding("low", "2.7.2")])
	count(deny_rules(inp)) == 0
	count(warn_rules(inp)) == 0
}

test_finding_without_aliases_lists_its_id if {
	f := object.remove(finding("high", "2.7.2"), ["aliases"])
	some v in data.airlock.gate.deny with input as with_findings([f])
	v.advisories == ["CVE-2014-1402"]
}
