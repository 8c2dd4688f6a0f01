# Vulnerability findings from the scanner.
#
# deny: a critical or high finding for which a fixed version exists (the developer can act: upgrade).
# warn: a medium finding with a fix, and a finding of unknown severity with a fix
#       (unknown is not denied: the advisory data did not say how bad it is).
# Findings without a fixed version are not reported here: nothing to act on yet.
package airlock.gate

# Advisory ids and aliases of a finding, id first.
advisory_ids(f) := array.concat([f.id], object.get(f, "aliases", []))

has_fix(f) if {
	is_string(f.fixed)
	f.fixed != ""
}

vuln_entry(rule, f) := {
	"rule": rule,
	# concat, not sprintf: rego-cpp (the cross-check engine) quotes a concat result inside sprintf.
	"message": concat("", [
		f.package, " ", f.installed, " has ", concat(", ", advisory_ids(f)),
		" (", f.severity, " severity), fixed in ", f.fixed,
	]),
	"evidence": {
		"package": f.package,
		"ecosystem": object.get(f, "ecosystem", ""),
		"installed": f.installed,
		"fixed": f.fixed,
		"severity": f.severity,
		"advisories": advisory_ids(f),
		"summary": object.get(f, "summary", ""),
		"layer": object.get(f, "layer", ""),
	},
	"fix": sprintf("upgrade %s to %s or later", [f.package, f.fixed]),
	"advisories": advisory_ids(f),
	"package": f.package,
}

deny contains entry if {
	some f in input.findings
	f.severity == "critical"
	has_fix(f)
	entry := vuln_entry("vuln.fixable-critical", f)
}

deny contains entry if {
	some f in input.findings
	f.severity == "high"
	has_fix(f)
	entry := vuln_entry("vuln.fixable-high", f)
}

warn contains entry if {
	some f in input.findings
	f.severity == "medium"
	has_fix(f)
	entry := vuln_entry("vuln.fixable-medium", f)
}

warn contains entry if {
	some f in input.findings
	f.severity == "unknown"
	has_fix(f)
	entry := vuln_entry("vuln.unknown-severity", f)
}
