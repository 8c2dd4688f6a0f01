# Vulnerability findings from the scanner.
#
# deny: a critical or high finding for which a fixed version exists (the developer can act: upgrade).
# warn: a medium finding with a fix, and a finding of unknown severity with a fix
#       (unknown is not denied: the advisory data did not say how bad it is).
# Findings without a fixed version are not reported here: nothing to act on yet.
package airlock.gate

# The rule a finding with a fix falls under, by severity (low findings are not reported).
vuln_deny_rule := {"critical": "vuln.fixable-critical", "high": "vuln.fixable-high"}

vuln_warn_rule := {"medium": "vuln.fixable-medium", "unknown": "vuln.unknown-severity"}

# Advisory ids and aliases of a finding, id first.
advisory_ids(f) := array.concat([f.id], object.get(f, "aliases", []))

has_fix(f) if {
	is_string(f.fixed)
	f.fixed != ""
}

# The entry for finding `f` under `rule`. It is inlined in deny and warn below rather than
# called: with 2,000 findings a function call per finding costs more than building the entry
# (bench/policy.sh keeps the evaluation under 50 ms).
deny contains entry if {
	some f in input.findings
	rule := vuln_deny_rule[f.severity]
	is_string(f.fixed)
	f.fixed != ""
	ids := array.concat([f.id], object.get(f, "aliases", []))
	entry := {
		"rule": rule,
		# concat, not sprintf: rego-cpp (the cross-check engine) quotes a concat result inside sprintf.
		"message": concat("", [
			f.package, " ", f.installed, " has ", concat(", ", ids),
			" (", f.severity, " severity), fixed in ", f.fixed,
		]),
		# The finding as the scanner reported it: ids, package, ecosystem, versions, severity, layer.
		"evidence": f,
		"fix": concat("", ["upgrade ", f.package, " to ", f.fixed, " or later"]),
		"advisories": ids,
		"package": f.package,
	}
}

warn contains entry if {
	some f in input.findings
	rule := vuln_warn_rule[f.severity]
	is_string(f.fixed)
	f.fixed != ""
	ids := array.concat([f.id], object.get(f, "aliases", []))
	entry := {
		"rule": rule,
		"message": concat("", [
			f.package, " ", f.installed, " has ", concat(", ", ids),
			" (", f.severity, " severity), fixed in ", f.fixed,
		]),
		"evidence": f,
		"fix": concat("", ["upgrade ", f.package, " to ", f.fixed, " or later"]),
		"advisories": ids,
		"package": f.package,
	}
}
