# The image must not run as root: the user is set and is neither root nor uid 0.
package airlock.gate

default image_user := ""

image_user := input.image.user if is_string(input.image.user)

# The user part of "user[:group]".
image_user_name := split(image_user, ":")[0]

runs_as_root if image_user_name == ""

runs_as_root if image_user_name == "root"

runs_as_root if image_user_name == "0"

deny contains entry if {
	runs_as_root
	entry := {
		"rule": "image.runs-as-root",
		"message": sprintf("image runs as user \"%s\", which is root", [image_user]),
		"evidence": {"user": image_user},
		"fix": "run as a non-root user, e.g. USER 65532:65532 in the Dockerfile (standard builds do this already)",
		"advisories": [],
	}
}
