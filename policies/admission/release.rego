# Admission of a release into an environment of the outer loop (run by airlock-agent).
#
# deny: the environment is not one the release was rendered for; the gate's decision is
#       missing or did not allow the release; a critical finding with a fix is present
#       (the vulnerability data on the agent's side may be newer than at gate time).
package airlock.admission

default environment := ""

environment := input.environment if is_string(input.environment)

default release_environments := []

release_environments := input.release.environments if is_array(input.release.environments)

deny contains entry if {
	not environment in release_environments
	entry := {
		"rule": "admission.environment-not-in-release",
		"message": sprintf("release %v of %v is not meant for environment %v (it lists %v)", [
			object.get(input.release, "sequence", "?"), object.get(input.release, "app", "?"),
			environment, release_environments,
		]),
		"evidence": {"environment": environment, "release_environments": release_environments},
		"fix": "add the environment to [deploy] in airlock.toml and submit again, or deploy to one the release lists",
		"advisories": [],
	}
}

gate_decision_missing if not is_object(input.gate_decision)

deny contains entry if {
	gate_decision_missing
	entry := {
		"rule": "admission.gate-decision-missing",
		"message": "the release carries no gate decision",
		"evidence": {"gate_decision": object.get(input, "gate_decision", null)},
		"fix": "publish releases only through the airlock gate, which records its policy decision",
		"advisories": [],
	}
}

gate_allowed if input.gate_decision.allowed == true

deny contains entry if {
	is_object(input.gate_decision)
	not gate_allowed
	entry := {
		"rule": "admission.gate-denied",
		"message": "the gate did not allow this release",
		"evidence": {"gate_decision": input.gate_decision},
		"fix": "fix the gate's violations (airlock explain <run>) and submit again",
		"advisories": [],
	}
}

advisory_ids(f) := array.concat([f.id], object.get(f, "aliases", []))

deny contains entry if {
	some f in input.findings
	f.severity == "critical"
	is_string(f.fixed)
	f.fixed != ""
	entry := {
		"rule": "admission.fixable-critical",
		# concat, not sprintf: rego-cpp (the cross-check engine) quotes a concat result inside sprintf.
		"message": concat("", [
			f.package, " ", f.installed, " has ", concat(", ", advisory_ids(f)),
			" (critical severity), fixed in ", f.fixed,
		]),
		"evidence": {
			"package": f.package,
			"installed": f.installed,
			"fixed": f.fixed,
			"severity": f.severity,
			"advisories": advisory_ids(f),
		},
		"fix": sprintf("upgrade %s to %s or later and submit again", [f.package, f.fixed]),
		"advisories": advisory_ids(f),
		"package": f.package,
	}
}
