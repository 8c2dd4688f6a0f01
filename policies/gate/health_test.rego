package airlock.gate_test

with_health(h) := object.union(good, {"descriptor": {"run": {"health": h}}})

test_denies_missing_health if {
	inp := json.remove(good, ["descriptor/run/health"])
	"descriptor.missing-health" in deny_rules(inp)
}

test_denies_empty_health if "descriptor.missing-health" in deny_rules(with_health(""))

test_denies_relative_health if "descriptor.missing-health" in deny_rules(with_health("healthz"))

test_denies_non_string_health if "descriptor.missing-health" in deny_rules(with_health(true))

test_allows_absolute_health_path if not "descriptor.missing-health" in deny_rules(good)
