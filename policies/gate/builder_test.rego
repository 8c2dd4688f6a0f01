package airlock.gate_test

host_built(allowed) := object.union(good, {"build": {"builder": "host"}, "platform": {"allow_host_builder": allowed}})

test_denies_host_builder_when_platform_forbids if "build.host-builder" in deny_rules(host_built(false))

test_allows_host_builder_when_platform_allows if not "build.host-builder" in deny_rules(host_built(true))

test_docker_builder_always_passes if not "build.host-builder" in deny_rules(good)
