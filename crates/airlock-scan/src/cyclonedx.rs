//! CycloneDX 1.6 JSON SBOM of an inventory ([`cyclonedx`]), and the inventory read back from one
//! ([`inventory_from_cyclonedx`]). Both sides live here so the `airlock:*` properties they agree on
//! cannot drift apart.

use serde_json::{Value, json};

use crate::package::{Ecosystem, Inventory, Package, SourcePackage};

/// Deterministic `urn:uuid:` from some bytes (a version-5-shaped UUID over SHA-256), so the same
/// inventory of the same image always gets the same serial number.
pub(crate) fn uuid_from(parts: &[&str]) -> String {
    use sha2::{Digest as _, Sha256};
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    let mut b: [u8; 16] = [0; 16];
    b.copy_from_slice(&h.finalize()[..16]);
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let x = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &x[0..8],
        &x[8..12],
        &x[12..16],
        &x[16..20],
        &x[20..32]
    )
}

/// The hex part of a `sha256:` digest, when it is one.
pub(crate) fn sha256_hex(digest: &str) -> Option<&str> {
    digest
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Package URL of the image itself (`pkg:oci/name@sha256%3A...`).
pub(crate) fn image_purl(subject_name: &str, subject_digest: &str) -> String {
    let last = subject_name
        .rsplit('/')
        .next()
        .unwrap_or(subject_name)
        .split([':', '@'])
        .next()
        .unwrap_or(subject_name)
        .to_ascii_lowercase();
    let repo: String = last
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let repo = if repo.is_empty() {
        "image".to_string()
    } else {
        repo
    };
    format!("pkg:oci/{repo}@{}", subject_digest.replace(':', "%3A"))
}

/// The current time in RFC 3339 (seconds precision), for document timestamps.
pub(crate) fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    let now = now.replace_nanosecond(0).unwrap_or(now);
    now.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_string())
}

/// A CycloneDX 1.6 BOM: the image as the described component, the OS and every package as
/// components with package URLs, and properties naming the file and layer each came from.
pub fn cyclonedx(inv: &Inventory, subject_name: &str, subject_digest: &str) -> Value {
    let image_ref = format!("image:{subject_digest}");
    let mut subject = json!({
        "type": "container",
        "bom-ref": image_ref,
        "name": subject_name,
        "version": subject_digest,
        "purl": image_purl(subject_name, subject_digest),
    });
    if let Some(hex) = sha256_hex(subject_digest) {
        subject["hashes"] = json!([{ "alg": "SHA-256", "content": hex }]);
    }
    let mut components = Vec::new();
    let mut refs = Vec::new();
    if let Some(os) = &inv.os {
        let mut c = json!({
            "type": "operating-system",
            "bom-ref": format!("os:{}", os.id),
            "name": os.id,
        });
        if let Some(v) = &os.version_id {
            c["version"] = json!(v);
        }
        if let Some(p) = &os.pretty_name {
            c["description"] = json!(p);
        }
        refs.push(format!("os:{}", os.id));
        components.push(c);
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, p) in inv.packages.iter().enumerate() {
        let mut bom_ref = p.purl.clone();
        if !seen.insert(bom_ref.clone()) {
            bom_ref = format!("{}#{i}", p.purl);
            seen.insert(bom_ref.clone());
        }
        let mut properties = vec![
            json!({ "name": "airlock:package:ecosystem", "value": p.ecosystem.osv_name(p.distro.as_deref()) }),
            json!({ "name": "airlock:package:path", "value": p.path }),
        ];
        if let Some(l) = &p.layer {
            properties.push(json!({ "name": "airlock:layer:digest", "value": l }));
        }
        if p.local {
            // Read back by rescans, which must not match it either.
            properties.push(json!({ "name": "airlock:package:local", "value": "true" }));
        }
        if let Some(src) = &p.source
            && matches!(p.ecosystem, Ecosystem::Debian | Ecosystem::Alpine)
        {
            properties.push(json!({ "name": "airlock:package:source", "value": src.name }));
            if let Some(v) = &src.version {
                properties.push(json!({ "name": "airlock:package:source-version", "value": v }));
            }
        }
        let mut c = json!({
            "type": "library",
            "bom-ref": bom_ref,
            "name": p.name,
            "version": p.version,
            "purl": p.purl,
            "properties": properties,
        });
        if let Some((group, name)) = p
            .name
            .split_once('/')
            .filter(|_| p.ecosystem == Ecosystem::Npm)
        {
            c["group"] = json!(group);
            c["name"] = json!(name);
        }
        refs.push(bom_ref);
        components.push(c);
    }
    json!({
        "$schema": "http://cyclonedx.org/schema/bom-1.6.schema.json",
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": format!("urn:uuid:{}", uuid_from(&["cyclonedx", subject_name, subject_digest, &refs.join("\n")])),
        "version": 1,
        "metadata": {
            "timestamp": now_rfc3339(),
            "tools": { "components": [{
                "type": "application",
                "name": "airlock-scan",
                "version": env!("CARGO_PKG_VERSION"),
            }]},
            "component": subject,
        },
        "components": components,
        "dependencies": [{ "ref": image_ref, "dependsOn": refs }],
    })
}

/// The packages of a CycloneDX SBOM written by [`cyclonedx`] (its `airlock:package:*` properties name
/// the OSV ecosystem and the source package), as an inventory to match: the agent rescans a running
/// release's signed SBOM this way without the image. Components without a name, version or known
/// ecosystem are left out; the operating system is not read back (matching does not use it).
pub fn inventory_from_cyclonedx(bom: &Value) -> Inventory {
    let mut inventory = Inventory::default();
    for c in bom["components"].as_array().into_iter().flatten() {
        if c["type"] != "library" {
            continue;
        }
        let property = |name: &str| {
            c["properties"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|p| p["name"] == name)
                .and_then(|p| p["value"].as_str())
        };
        let (Some(version), Some(eco)) =
            (c["version"].as_str(), property("airlock:package:ecosystem"))
        else {
            continue;
        };
        let Some((ecosystem, distro)) = Ecosystem::from_osv_name(eco) else {
            continue;
        };
        // The writer splits a scoped npm name into group and name; join them again.
        let name = match (c["group"].as_str(), c["name"].as_str()) {
            (Some(group), Some(name)) if ecosystem == Ecosystem::Npm => format!("{group}/{name}"),
            (_, Some(name)) => name.to_string(),
            (_, None) => continue,
        };
        let source = property("airlock:package:source").map(|s| SourcePackage {
            name: s.to_string(),
            version: property("airlock:package:source-version").map(str::to_string),
        });
        inventory.packages.push(Package {
            name,
            version: version.to_string(),
            ecosystem,
            distro,
            purl: c["purl"].as_str().unwrap_or_default().to_string(),
            layer: property("airlock:layer:digest").map(str::to_string),
            path: property("airlock:package:path")
                .unwrap_or_default()
                .to_string(),
            source,
            local: property("airlock:package:local") == Some("true"),
        });
    }
    inventory
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::testutil::{Entry, layer, metadata, venv_python};

    /// An inventory with an OS, a Debian package, a Python and a scoped npm package.
    pub(crate) fn sample() -> Inventory {
        let md = metadata("Jinja2", "2.7.1");
        crate::inventory_layers(&[(
            "sha256:1111111111111111111111111111111111111111111111111111111111111111".into(),
            "application/vnd.oci.image.layer.v1.tar+gzip".into(),
            layer(&[
                Entry::File("etc/os-release", b"ID=debian\nVERSION_ID=\"12\"\nPRETTY_NAME=\"Debian 12\"\n"),
                Entry::File(
                    "var/lib/dpkg/status",
                    b"Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nSource: glibc\nVersion: 2.36-9+deb12u7\n",
                ),
                Entry::File("site/Jinja2-2.7.1.dist-info/METADATA", &md),
                Entry::File("app/node_modules/@babel/core/package.json", br#"{"name":"@babel/core","version":"7.0.0"}"#),
            ]),
        )])
        .unwrap()
    }

    pub(crate) const DIGEST: &str =
        "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    #[test]
    fn validates_against_the_official_cyclonedx_1_6_schema() {
        let bom = cyclonedx(&sample(), "registry.local/team/hello:1.0", DIGEST);
        assert_eq!(bom["components"].as_array().unwrap().len(), 4);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bom.json");
        std::fs::write(&file, serde_json::to_vec_pretty(&bom).unwrap()).unwrap();
        let script = "import sys\nfrom cyclonedx.validation.json import JsonStrictValidator\nfrom cyclonedx.schema import SchemaVersion\n\
errors = JsonStrictValidator(SchemaVersion.from_version('1.6')).validate_str(open(sys.argv[1]).read())\n\
print(errors)\nsys.exit(1 if errors else 0)\n";
        let out = std::process::Command::new(venv_python())
            .args(["-c", script])
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "schema validation failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn same_inventory_gives_the_same_serial_number() {
        let a = cyclonedx(&sample(), "hello", DIGEST);
        let b = cyclonedx(&sample(), "hello", DIGEST);
        assert_eq!(a["serialNumber"], b["serialNumber"]);
        assert_eq!(
            a["metadata"]["component"]["purl"],
            format!("pkg:oci/hello@{}", DIGEST.replace(':', "%3A"))
        );
    }

    #[test]
    fn sbom_packages_come_back_with_their_match_keys() {
        let bom = serde_json::json!({"components": [
            {"type": "operating-system", "name": "debian", "version": "12"},
            {"type": "library", "name": "libc6", "version": "2.36-9", "purl": "pkg:deb/debian/libc6@2.36-9",
             "properties": [
                {"name": "airlock:package:ecosystem", "value": "Debian:12"},
                {"name": "airlock:package:path", "value": "/var/lib/dpkg/status"},
                {"name": "airlock:package:source", "value": "glibc"}]},
            {"type": "library", "group": "@babel", "name": "core", "version": "7.0.0",
             "properties": [{"name": "airlock:package:ecosystem", "value": "npm"}]},
            {"type": "library", "name": "Jinja2", "version": "2.7.1",
             "properties": [{"name": "airlock:package:ecosystem", "value": "PyPI"}]},
            {"type": "library", "name": "mystery", "version": "1",
             "properties": [{"name": "airlock:package:ecosystem", "value": "Hackage"}]},
            {"type": "library", "name": "no-version",
             "properties": [{"name": "airlock:package:ecosystem", "value": "PyPI"}]},
        ]});
        let inv = inventory_from_cyclonedx(&bom);
        let keys: Vec<_> = inv.packages.iter().map(Package::match_key).collect();
        assert_eq!(
            keys,
            vec![
                ("Debian:12".into(), "glibc".into(), "2.36-9".into()),
                ("npm".into(), "@babel/core".into(), "7.0.0".into()),
                ("PyPI".into(), "jinja2".into(), "2.7.1".into()),
            ]
        );
        assert_eq!(
            Ecosystem::from_osv_name("Alpine:v3.20"),
            Some((Ecosystem::Alpine, Some("3.20".into())))
        );
    }

    #[test]
    fn an_inventory_written_as_cyclonedx_reads_back_as_the_same_packages() {
        let mut inv = sample();
        assert_eq!(inv.packages.len(), 3, "{:?}", inv.packages);
        // A crate built from local sources (never matched) stays local when read back.
        let mut local = inv.packages[0].clone();
        local.name = "hello-app".into();
        local.ecosystem = Ecosystem::CratesIo;
        local.distro = None;
        local.source = None;
        local.purl = "pkg:cargo/hello-app@0.1.0".into();
        local.local = true;
        inv.packages.push(local);
        let back = inventory_from_cyclonedx(&cyclonedx(&inv, "hello", DIGEST));
        // Whole packages: name, version, ecosystem and distro, purl, layer, path, source package, local.
        assert_eq!(back.packages, inv.packages);
        let keys = |i: &Inventory| {
            i.packages
                .iter()
                .map(Package::match_key)
                .collect::<Vec<_>>()
        };
        assert_eq!(keys(&back), keys(&inv));
        assert!(
            back.packages
                .iter()
                .any(|p| p.name == "@babel/core" && p.purl == "pkg:npm/%40babel/core@7.0.0"),
            "{:?}",
            back.packages
        );
        assert!(
            back.packages
                .iter()
                .any(|p| p.ecosystem == Ecosystem::Debian
                    && p.distro.as_deref() == Some("12")
                    && p.source.as_ref().is_some_and(|s| s.name == "glibc")),
            "{:?}",
            back.packages
        );
    }
}
