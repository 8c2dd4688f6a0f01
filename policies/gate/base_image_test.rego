package airlock.gate_test

test_denies_unapproved_base if {
	inp := object.union(good, {"image": {"base": {"name": "debian", "digest": "sha256:4444444444444444444444444444444444444444444444444444444444444444"}}})
	"image.unapproved-base" in deny_rules(inp)
}

test_denies_missing_base if {
	inp := object.union(good, {"image": {"base": null}})
	"image.unapproved-base" in deny_rules(inp)
}

test_approved_base_passes if {
	not "image.unapproved-base" in deny_rules(good)
}
