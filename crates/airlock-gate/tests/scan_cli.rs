//! `airlock-gate vulndb import|status` and `airlock-gate scan` as a user runs them: the real OSV
//! exports, a root filesystem holding a `cargo auditable` binary with `time` 0.1.45 and jinja2 2.7.1
//! installed by pip (fixtures from scripts/setup), an OCI layout, SBOMs checked by the official
//! CycloneDX schema and by pyspdxtools.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use airlock_testkit::fs::copy_tree;
use airlock_testkit::tools::{cache_dir, fixture, vulndb_source};

fn gate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_airlock-gate"))
        .args(args)
        .env_remove("AIRLOCK_CONFIG")
        .env_remove("AIRLOCK_DATA_DIR")
        .output()
        .expect("running airlock-gate")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn vulndb(name: &str) -> String {
    vulndb_source(name).display().to_string()
}

/// A root filesystem with the vulnerable Rust binary and jinja2 2.7.1.
fn rootfs(dir: &Path) -> PathBuf {
    let root = dir.join("rootfs");
    let site = root.join("usr/lib/python3/dist-packages");
    std::fs::create_dir_all(&site).unwrap();
    copy_tree(&fixture("fixtures/py-jinja2-2.7.1"), &site);
    std::fs::create_dir_all(root.join("usr/local/bin")).unwrap();
    std::fs::copy(
        fixture("fixtures/auditable-time/auditable-time"),
        root.join("usr/local/bin/app"),
    )
    .unwrap();
    root
}

fn venv_python() -> PathBuf {
    fixture("venv/bin/python")
}

#[test]
fn vulndb_import_reports_counts_and_reimport_updates_in_place() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("db");
    let db_s = db.to_str().unwrap();
    let o = gate(&[
        "vulndb",
        "import",
        "--db",
        db_s,
        &vulndb("PyPI.zip"),
        &vulndb("crates.io.zip"),
    ]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    assert!(out.contains("PyPI.zip: 2661 read, 2661 added"), "{out}");
    assert!(
        out.contains("crates.io.zip: 1206 read, 1206 added"),
        "{out}"
    );

    let o = gate(&["vulndb", "status", "--db", db_s, "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(status["per_ecosystem"]["PyPI"], 2661);
    assert_eq!(status["per_ecosystem"]["crates.io"], 1206);
    assert!(status["age_seconds"].as_i64().unwrap() > 0, "{status}");

    // A directory of OSV JSON: a new record, then a newer version of it moved to another package.
    let src = tmp.path().join("osv");
    std::fs::create_dir(&src).unwrap();
    let rec = |modified: &str, pkg: &str| {
        format!(
            r#"{{"id":"LOCAL-1","modified":"{modified}","affected":[{{"package":{{"ecosystem":"PyPI","name":"{pkg}"}},"ranges":[{{"type":"ECOSYSTEM","events":[{{"introduced":"0"}},{{"fixed":"9"}}]}}]}}]}}"#
        )
    };
    std::fs::write(
        src.join("LOCAL-1.json"),
        rec("2099-01-01T00:00:00Z", "markupsafe"),
    )
    .unwrap();
    let o = gate(&["vulndb", "import", "--db", db_s, src.to_str().unwrap()]);
    assert!(text(&o).0.contains("1 read, 1 added"), "{:?}", text(&o));
    std::fs::write(
        src.join("LOCAL-1.json"),
        rec("2099-02-01T00:00:00Z", "jinja2"),
    )
    .unwrap();
    let o = gate(&["vulndb", "import", "--db", db_s, src.to_str().unwrap()]);
    assert!(text(&o).0.contains("0 added, 1 updated"), "{:?}", text(&o));
    let o = gate(&["vulndb", "status", "--db", db_s]);
    let (out, _) = text(&o);
    assert!(
        out.contains("newest modified  2099-02-01T00:00:00Z"),
        "{out}"
    );
    assert!(out.contains("PyPI") && out.contains("2662"), "{out}");

    let root = rootfs(tmp.path());
    let o = gate(&[
        "scan",
        root.to_str().unwrap(),
        "--db",
        db_s,
        "--format",
        "json",
    ]);
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let local: Vec<_> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["id"] == "LOCAL-1")
        .map(|f| f["package"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        local,
        ["jinja2"],
        "the updated record moved from markupsafe to jinja2"
    );

    // Not a zip nor a directory: named, exit 1, nothing imported.
    let bad = tmp.path().join("notes.txt");
    std::fs::write(&bad, "hello").unwrap();
    let o = gate(&["vulndb", "import", "--db", db_s, bad.to_str().unwrap()]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("notes.txt") && err.contains("not a zip"),
        "{err}"
    );
}

#[test]
fn scan_of_a_directory_prints_findings_and_fail_on_sets_the_exit_code() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("db");
    let db_s = db.to_str().unwrap();
    let root = rootfs(tmp.path());
    let root_s = root.to_str().unwrap();

    // An empty database cannot decide a --fail-on: that is an error, not a pass.
    let o = gate(&["scan", root_s, "--db", db_s, "--fail-on", "low"]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("is empty"), "{err}");

    let o = gate(&[
        "vulndb",
        "import",
        "--db",
        db_s,
        &vulndb("PyPI.zip"),
        &vulndb("crates.io.zip"),
    ]);
    assert!(o.status.success(), "{:?}", text(&o));

    let o = gate(&["scan", root_s, "--db", db_s]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    let line = out
        .lines()
        .find(|l| l.contains("CVE-2020-26235"))
        .unwrap_or_else(|| panic!("no time finding in\n{out}"));
    assert!(
        line.contains("MEDIUM 6.2")
            && line.contains("time (crates.io)")
            && line.contains("0.1.45")
            && line.contains("0.2.0")
            && line.contains("RUSTSEC-2020-0071"),
        "{line}"
    );
    let line = out
        .lines()
        .find(|l| l.contains("CVE-2014-1402"))
        .unwrap_or_else(|| panic!("no jinja2 finding in\n{out}"));
    assert!(
        line.contains("2.7.1") && line.contains("2.7.2") && line.contains("PYSEC-2014-8"),
        "{line}"
    );
    assert!(out.contains("old"), "the database's age is shown: {out}");

    // time 0.1.45 is MEDIUM: --fail-on medium fails with exit code 3, --fail-on critical passes.
    let o = gate(&["scan", root_s, "--db", db_s, "--fail-on", "medium"]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains("at or above severity medium"), "{err}");
    let o = gate(&["scan", root_s, "--db", db_s, "--fail-on", "critical"]);
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));

    let o = gate(&["scan", "/no/such/rootfs", "--db", db_s]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(err.contains("/no/such/rootfs"), "{err}");
}

#[tokio::test]
async fn scan_of_an_oci_layout_writes_sboms_that_the_official_checkers_accept() {
    use airlock_oci::{Compression, ImageConfig, LayerBuilder, OciLayout, write_image};
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("db");
    let db_s = db.to_str().unwrap();
    let o = gate(&["vulndb", "import", "--db", db_s, &vulndb("crates.io.zip")]);
    assert!(o.status.success());
    let root = rootfs(tmp.path());
    let layout_dir = tmp.path().join("layout");
    let store = OciLayout::create(&layout_dir).unwrap();
    let mut b = LayerBuilder::new(0);
    b.add_tree(&root, "", 0, 0).unwrap();
    let layer = b.finish(Compression::Gzip).unwrap();
    let mut config = ImageConfig::new("amd64", "linux");
    config.rootfs.diff_ids = vec![layer.diff_id.clone()];
    let digest = write_image(
        &store,
        &config,
        &[(layer.descriptor.clone(), Some(&layer.data[..]))],
        Some("v1"),
    )
    .await
    .unwrap();
    let reference = format!("oci:{}:v1", layout_dir.display());

    let o = gate(&["scan", &reference, "--db", db_s, "--format", "json"]);
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["image_digest"], digest.as_str());
    assert!(
        report["db_age_seconds"].as_i64().is_some(),
        "{}",
        report["db"]
    );
    let f = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "CVE-2020-26235")
        .expect("time 0.1.45 finding");
    assert_eq!(f["layer"], layer.descriptor.digest.as_str());

    let cdx = tmp.path().join("sbom.cdx.json");
    let o = gate(&[
        "scan",
        &reference,
        "--db",
        db_s,
        "--format",
        "cyclonedx",
        "-o",
        cdx.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{:?}", text(&o));
    let check = Command::new(venv_python())
        .args([
            "-c",
            "import sys\nfrom cyclonedx.validation.json import JsonStrictValidator\nfrom cyclonedx.schema import SchemaVersion\ne = JsonStrictValidator(SchemaVersion.from_version('1.6')).validate_str(open(sys.argv[1]).read())\nprint(e or 'valid')\nsys.exit(1 if e else 0)",
            cdx.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(check.status.success(), "{:?}", text(&check));
    let text_cdx = std::fs::read_to_string(&cdx).unwrap();
    assert!(text_cdx.contains("pkg:cargo/time@0.1.45"), "{text_cdx}");

    let spdx = tmp.path().join("sbom.spdx.json");
    let o = gate(&[
        "scan",
        &reference,
        "--db",
        db_s,
        "--format",
        "spdx",
        "-o",
        spdx.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{:?}", text(&o));
    let check = Command::new(cache_dir().join("venv/bin/pyspdxtools"))
        .arg("-i")
        .arg(&spdx)
        .output()
        .unwrap();
    assert!(check.status.success(), "{:?}", text(&check));

    // Without a tag, a layout holding one image scans that image; a missing tag is named.
    let o = gate(&[
        "scan",
        &format!("oci:{}", layout_dir.display()),
        "--db",
        db_s,
        "--format",
        "json",
    ]);
    assert!(o.status.success(), "{:?}", text(&o));
    let o = gate(&[
        "scan",
        &format!("oci:{}:nope", layout_dir.display()),
        "--db",
        db_s,
    ]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(err.contains("nope"), "{err}");
}
