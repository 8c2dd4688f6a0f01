//! `airlock-gate build DIR --to REF` as a user runs it: the image lands in the OCI layout under the digest
//! printed, skopeo (an independent client) reads it, a rebuild gives the same digest, and refusals name the
//! Dockerfile line and write nothing. Needs the Docker Engine that `scripts/setup` starts.

use std::path::Path;
use std::process::Command;

fn gate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_airlock-gate"))
}

fn hello() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/hello")
}

#[test]
fn builds_hello_to_an_oci_layout_reproducibly() {
    let tmp = tempfile::tempdir().unwrap();
    let mut digests = Vec::new();
    for i in 0..2 {
        let layout = tmp.path().join(format!("out{i}"));
        let out = gate()
            .arg("build")
            .arg(hello())
            .arg("--to")
            .arg(format!("oci:{}:v1", layout.display()))
            .args(["--source-date-epoch", "1700000000", "--revision", "abc123"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert!(stderr.contains("smoke test passed"), "{stderr}");
        let digest = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(digest.starts_with("sha256:"), "{digest}");
        let inspect = Command::new("skopeo")
            .args(["inspect", &format!("oci:{}:v1", layout.display())])
            .output()
            .unwrap();
        assert!(
            inspect.status.success(),
            "{}",
            String::from_utf8_lossy(&inspect.stderr)
        );
        let json: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
        assert_eq!(json["Digest"], digest.as_str());
        assert_eq!(
            json["Labels"]["org.opencontainers.image.revision"],
            "abc123"
        );
        digests.push(digest);
    }
    assert_eq!(digests[0], digests[1], "same source, same digest");
}

#[test]
fn refused_dockerfile_names_the_line_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("web");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(
        src.join("Dockerfile"),
        "FROM static\n# tools\nFROM alpine:3.20\n",
    )
    .unwrap();
    let layout = tmp.path().join("out");
    let out = gate()
        .arg("build")
        .arg(&src)
        .arg("--to")
        .arg(format!("oci:{}", layout.display()))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("Dockerfile line 3: FROM alpine:3.20 is not an approved base"),
        "{stderr}"
    );
    assert!(!layout.exists(), "nothing may be written on a refusal");
}
