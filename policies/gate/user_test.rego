package airlock.gate_test

as_user(u) := object.union(good, {"image": {"user": u}})

test_denies_root_by_name if "image.runs-as-root" in deny_rules(as_user("root"))

test_denies_uid_zero if "image.runs-as-root" in deny_rules(as_user("0"))

test_denies_uid_zero_with_group if "image.runs-as-root" in deny_rules(as_user("0:65532"))

test_denies_empty_user if "image.runs-as-root" in deny_rules(as_user(""))

test_denies_missing_user if {
	inp := json.remove(good, ["image/user"])
	"image.runs-as-root" in deny_rules(inp)
}

test_allows_non_root_uid if not "image.runs-as-root" in deny_rules(as_user("65532:65532"))

test_allows_named_non_root_user if not "image.runs-as-root" in deny_rules(as_user("app"))
