//! SPDX 2.3 JSON SBOM of an inventory.

use serde_json::{Value, json};

use crate::cyclonedx::{image_purl, now_rfc3339, sha256_hex, uuid_from};
use crate::package::Inventory;

/// An SPDX 2.3 document describing the image as a package that CONTAINS one package per
/// inventory entry, each with its package URL and the file and layer it was found in.
pub fn spdx(inv: &Inventory, subject_name: &str, subject_digest: &str) -> Value {
    let mut image = json!({
        "SPDXID": "SPDXRef-Image",
        "name": subject_name,
        "versionInfo": subject_digest,
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
        "primaryPackagePurpose": "CONTAINER",
        "externalRefs": [{
            "referenceCategory": "PACKAGE-MANAGER",
            "referenceType": "purl",
            "referenceLocator": image_purl(subject_name, subject_digest),
        }],
    });
    if let Some(hex) = sha256_hex(subject_digest) {
        image["checksums"] = json!([{ "algorithm": "SHA256", "checksumValue": hex }]);
    }
    let mut packages = vec![image];
    let mut relationships = vec![json!({
        "spdxElementId": "SPDXRef-DOCUMENT",
        "relationshipType": "DESCRIBES",
        "relatedSpdxElement": "SPDXRef-Image",
    })];
    if let Some(os) = &inv.os {
        let mut p = json!({
            "SPDXID": "SPDXRef-OperatingSystem",
            "name": os.id,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "primaryPackagePurpose": "OPERATING-SYSTEM",
        });
        if let Some(v) = &os.version_id {
            p["versionInfo"] = json!(v);
        }
        if let Some(d) = &os.pretty_name {
            p["description"] = json!(d);
        }
        packages.push(p);
        relationships.push(json!({
            "spdxElementId": "SPDXRef-Image",
            "relationshipType": "CONTAINS",
            "relatedSpdxElement": "SPDXRef-OperatingSystem",
        }));
    }
    for (i, p) in inv.packages.iter().enumerate() {
        let id = format!("SPDXRef-Package-{}", i + 1);
        let mut source_info = format!("found in {}", p.path);
        if let Some(l) = &p.layer {
            source_info.push_str(&format!(" (layer {l})"));
        }
        packages.push(json!({
            "SPDXID": id,
            "name": p.name,
            "versionInfo": p.version,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "primaryPackagePurpose": "LIBRARY",
            "sourceInfo": source_info,
            "externalRefs": [{
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": p.purl,
            }],
        }));
        relationships.push(json!({
            "spdxElementId": "SPDXRef-Image",
            "relationshipType": "CONTAINS",
            "relatedSpdxElement": id,
        }));
    }
    let names: Vec<&str> = inv.packages.iter().map(|p| p.purl.as_str()).collect();
    let uuid = uuid_from(&["spdx", subject_name, subject_digest, &names.join("\n")]);
    json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": subject_name,
        "documentNamespace": format!("https://airlock.invalid/spdx/{uuid}"),
        "creationInfo": {
            "created": now_rfc3339(),
            "creators": [format!("Tool: airlock-scan-{}", env!("CARGO_PKG_VERSION"))],
        },
        "packages": packages,
        "relationships": relationships,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cyclonedx::tests::{DIGEST, sample};
    use crate::testutil::venv_python;

    #[test]
    fn pyspdxtools_accepts_the_document() {
        let doc = spdx(&sample(), "registry.local/team/hello:1.0", DIGEST);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("doc.spdx.json");
        std::fs::write(&file, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
        let tool = venv_python().with_file_name("pyspdxtools");
        assert!(
            tool.exists(),
            "{} missing: pip install spdx-tools into the venv",
            tool.display()
        );
        let out = std::process::Command::new(tool)
            .arg("-i")
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pyspdxtools rejected the document: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // Image + OS + 3 packages.
        assert_eq!(doc["packages"].as_array().unwrap().len(), 5);
    }
}
