# Standard builds on the host (no Docker Engine) are for development only;
# the platform decides whether their images may pass.
package airlock.gate

deny contains entry if {
	input.build.builder == "host"
	input.platform.allow_host_builder == false
	entry := {
		"rule": "build.host-builder",
		"message": "the image was built on the gate host, not in an approved builder image, and this platform does not allow host builds",
		"evidence": {"builder": input.build.builder, "allow_host_builder": false},
		"fix": "run the gate with a Docker Engine so builds run in the approved builder image, or ask the platform team",
		"advisories": [],
	}
}
