# A Dockerfile build must not fetch content by URL (ADD https://...): it is not
# pinned by digest and the scanner cannot attribute it.
package airlock.gate

deny contains entry if {
	some add in input.dockerfile.remote_add
	entry := {
		"rule": "dockerfile.remote-add",
		"message": sprintf("Dockerfile line %v adds a remote URL: %s", [add.line, add.url]),
		"evidence": {"line": add.line, "url": add.url},
		"fix": "download the file in a build stage with a checksum check, or vendor it into the repository, and COPY it",
		"advisories": [],
	}
}
