# The run base of the image must be one the platform approved, pinned by digest.
# An image with no recorded base (or a base without a digest) is not approved either.
package airlock.gate

default base_digest := ""

base_digest := input.image.base.digest if is_string(input.image.base.digest)

default base_name := "(none)"

base_name := input.image.base.name if is_string(input.image.base.name)

default approved_bases := []

approved_bases := input.platform.approved_bases if is_array(input.platform.approved_bases)

deny contains entry if {
	not base_digest in approved_bases
	entry := {
		"rule": "image.unapproved-base",
		"message": sprintf("base image %s (%s) is not an approved base", [base_name, base_digest]),
		"evidence": {"base": {"name": base_name, "digest": base_digest}, "approved_bases": approved_bases},
		"fix": "build on an approved stack (standard build) or use an approved base image pinned by digest in FROM",
		"advisories": [],
	}
}
