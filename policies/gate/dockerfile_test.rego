package airlock.gate_test

test_denies_remote_add if {
	inp := object.union(good, {"dockerfile": {"from": [], "remote_add": [{"line": 3, "url": "https://example.com/tool.tgz"}]}})
	some v in data.airlock.gate.deny with input as inp
	v.rule == "dockerfile.remote-add"
	contains(v.message, "line 3")
	v.evidence.url == "https://example.com/tool.tgz"
}

test_dockerfile_without_remote_add_passes if {
	inp := object.union(good, {"dockerfile": {"from": [{"line": 1, "image": "static", "digest": approved}], "remote_add": []}})
	count(deny_rules(inp)) == 0
}
