//! `airlock-gate vulndb publish` and `vulndb import --config` as an operator runs them, on the real OSV
//! export of PyPI: the database lands at `<boundary>/airlock.vulndb:vulndb` as a signed artifact that
//! `airlock_sign::read_vulndb` verifies with the gate's public key (and refuses with another), whose layer
//! unpacks to a database answering the same lookups, and that skopeo reads as an OCI artifact.

use std::path::Path;
use std::process::{Command, Output};

use airlock_oci::LayoutRoot;
use airlock_sign::{PublicKey, SigningKey, TrustSet};
use airlock_testkit::tools::{skopeo, vulndb_source};

fn gate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_airlock-gate"))
        .args(args)
        .env_remove("AIRLOCK_CONFIG")
        .env_remove("AIRLOCK_DATA_DIR")
        .env_remove("AIRLOCK_SIGNING_KEY_PEM")
        .output()
        .expect("running airlock-gate")
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn write_config(data: &Path) -> String {
    let config = data.join("gate.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\n[boundary]\nreference_prefix = \"airlock.local\"\n",
            data.display().to_string()
        ),
    )
    .unwrap();
    config.display().to_string()
}

#[tokio::test]
async fn imported_database_is_published_signed_and_reads_back_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("keys")).unwrap();
    let config = write_config(&data);
    let key = data.join("keys/airlock.key");
    ok(&gate(&["keys", "generate", "--out", key.to_str().unwrap()]));

    // Nothing to publish yet: refused, nothing written at the boundary.
    let empty = gate(&["vulndb", "publish", "--config", &config]);
    assert!(!empty.status.success());
    assert!(
        String::from_utf8_lossy(&empty.stderr).contains("is empty"),
        "{}",
        String::from_utf8_lossy(&empty.stderr)
    );
    assert!(!data.join("boundary/airlock.vulndb").exists());

    let zip = vulndb_source("PyPI.zip");
    let out = ok(&gate(&[
        "vulndb",
        "import",
        "--config",
        &config,
        zip.to_str().unwrap(),
    ]));
    assert!(
        out.contains("published   airlock.local/airlock.vulndb:vulndb"),
        "{out}"
    );

    let root = LayoutRoot::open_or_create(&data.join("boundary")).unwrap();
    let store = root.repo(airlock_sign::VULNDB_REPOSITORY).unwrap();
    let public =
        PublicKey::from_pem(&std::fs::read_to_string(data.join("keys/airlock.pub")).unwrap())
            .unwrap();
    let trust = TrustSet::new(vec![public]);
    let reference = "airlock.local/airlock.vulndb";
    let read = airlock_sign::read_vulndb(&store, reference, &trust, None, None)
        .await
        .unwrap()
        .expect("a database was published");
    let gate_db = airlock_scan::VulnDb::open(&data.join("vulndb")).unwrap();
    let status = gate_db.status().unwrap();
    assert_eq!(read.info.newest_modified, status.newest_modified);
    assert!(read.info.per_ecosystem.get("PyPI").is_some_and(|n| *n > 0));

    let unpacked = dir.path().join("unpacked");
    std::fs::create_dir(&unpacked).unwrap();
    airlock_sign::unpack_vulndb("test", &read.layer, &unpacked).unwrap();
    let copy = airlock_scan::VulnDb::open(&unpacked).unwrap();
    let ids = |db: &airlock_scan::VulnDb| {
        let mut ids: Vec<String> = db
            .lookup("PyPI", "jinja2")
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        ids.sort();
        ids
    };
    assert!(!ids(&gate_db).is_empty());
    assert_eq!(ids(&copy), ids(&gate_db));

    let stranger = TrustSet::new(vec![SigningKey::generate().public_key()]);
    assert!(
        airlock_sign::read_vulndb(&store, reference, &stranger, None, None)
            .await
            .is_err()
    );

    // An independent OCI client reads it as an artifact of its own type.
    let raw = skopeo(&[
        "inspect",
        "--raw",
        &format!(
            "oci:{}:vulndb",
            data.join("boundary/airlock.vulndb").display()
        ),
    ]);
    let manifest: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(
        manifest["artifactType"],
        "application/vnd.airlock.vulndb.v1"
    );
}
