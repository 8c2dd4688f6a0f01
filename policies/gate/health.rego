# The app must declare an HTTP health path ([run] health = "/healthz") used by the
# smoke test and the Kubernetes probes.
package airlock.gate

default health_path := ""

health_path := input.descriptor.run.health

valid_health_path if {
	is_string(health_path)
	startswith(health_path, "/")
}

deny contains entry if {
	not valid_health_path
	entry := {
		"rule": "descriptor.missing-health",
		"message": sprintf("airlock.toml has no usable [run] health path (got %v)", [health_path]),
		"evidence": {"run.health": health_path},
		"fix": "set [run] health = \"/healthz\" in airlock.toml to a path that answers 200 when the app is ready",
		"advisories": [],
	}
}
