//! Rebase as a release, on a real gate (SQLite store, layout boundary, Docker Engine smoke test when one
//! answers): a published app is put on a newer approved base through the admin API and through the
//! `airlock-gate rebase` command, and each result must cross the boundary as a new, verifiable release with
//! the same commit, the new base's layers under the unchanged app layer, and provenance naming the new base.

use std::path::{Path, PathBuf};
use std::process::Command;

use airlock_cli::api::RunState;
use airlock_cli::client::{GateClient, SubmitMeta};
use airlock_gate::auth::{generate_token, hash_token};
use airlock_gate::config::GateConfig;
use airlock_gate::server::{self, RunningGate};
use airlock_oci::{
    Compression, Digest, History, LayerBuilder, LayoutRoot, OciLayout, read_image, write_image,
};
use serde_json::{Value, json};

struct Gate {
    gate: RunningGate,
    url: String,
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.gate.server.abort();
        self.gate.worker.abort();
    }
}

struct Tokens {
    dev: String,
    admin: String,
}

/// A data directory from `init`, made to build with the host builder (no toolchain image needed) and with an
/// admin token; returns the config path.
async fn data_dir(dir: &Path, tokens: &Tokens) -> PathBuf {
    let init = airlock_gate::init::init_data_dir(dir, None)
        .await
        .expect("init data dir");
    let text = std::fs::read_to_string(&init.config_path).unwrap();
    let mut text: String = text
        .lines()
        .filter(|l| !l.starts_with("builder_image") && !l.starts_with("token_hashes"))
        .map(|l| format!("{l}\n"))
        .collect();
    text = text.replace(
        "name = \"demo\"\n",
        &format!(
            "name = \"demo\"\ntoken_hashes = [\"{}\"]\n",
            hash_token(&tokens.dev)
        ),
    );
    text.push_str(&format!(
        "\n[[teams]]\nname = \"platform\"\nrole = \"admin\"\ntoken_hashes = [\"{}\"]\n",
        hash_token(&tokens.admin)
    ));
    std::fs::write(&init.config_path, text).unwrap();
    init.config_path
}

async fn start(config_path: &Path) -> Gate {
    let config = GateConfig::load(config_path).expect("config loads");
    let gate = server::start(config).await.expect("gate starts");
    let url = format!("http://{}", gate.addr);
    Gate { gate, url }
}

/// An app that needs no compiler: busybox's httpd serving `/healthz` from the source tree.
fn app_source(name: &str) -> tempfile::TempDir {
    let src = tempfile::tempdir().unwrap();
    std::fs::copy("/bin/busybox", src.path().join("busybox")).expect("busybox-static is installed");
    std::fs::create_dir(src.path().join("www")).unwrap();
    std::fs::write(src.path().join("www/healthz"), "ok\n").unwrap();
    std::fs::write(
        src.path().join("airlock.toml"),
        format!(
            r#"[app]
name = "{name}"
team = "demo"

[build]
mode = "standard"
stack = "rust-static"
command = "true"
artifacts = [{{ from = "busybox", to = "/app/busybox" }}, {{ from = "www/healthz", to = "/app/www/healthz" }}]

[run]
command = ["/app/busybox", "httpd", "-f", "-p", "8080", "-h", "/app/www"]
port = 8080
health = "/healthz"
"#
        ),
    )
    .unwrap();
    src
}

async fn submit_and_wait(gate: &Gate, token: &str, name: &str) -> String {
    let src = app_source(name);
    let packed = airlock_cli::pack::pack_dir(src.path()).expect("pack");
    let client = GateClient::new(&gate.url, token).unwrap();
    let meta = SubmitMeta {
        repository: format!("acme/{name}"),
        commit: "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678".into(),
        branch: "main".into(),
        author: "dev".into(),
        app: None,
        commit_time: Some(1_700_000_000),
    };
    let id = client
        .submit(&packed, &meta)
        .await
        .expect("accepted")
        .run_id;
    let view = client.wait(&id, |_| {}).await.expect("run ends");
    assert_eq!(
        view.state,
        RunState::Published,
        "the first build of {name} publishes: {view:?}"
    );
    id
}

/// A new version of the static base under the same tag in the bases store: its layers plus one marking
/// `version`. Returns its digest.
async fn next_base(config: &GateConfig, version: &str) -> Digest {
    let bases = OciLayout::open(&config.bases_dir()).unwrap();
    let old = read_image(&bases, "static").await.unwrap();
    let mut b = LayerBuilder::new(1_700_000_000);
    b.add_file(
        "/etc/base-version",
        0o644,
        0,
        0,
        format!("{version}\n").into_bytes(),
    )
    .unwrap();
    let layer = b.finish(Compression::Gzip).unwrap();
    let mut cfg = old.config.clone();
    cfg.rootfs.diff_ids.push(layer.diff_id.clone());
    cfg.history.push(History {
        created_by: Some(format!("base {version}")),
        ..Default::default()
    });
    let mut layers: Vec<(airlock_oci::Descriptor, Option<&[u8]>)> = old
        .manifest
        .layers
        .iter()
        .map(|d| (d.clone(), None))
        .collect();
    layers.push((layer.descriptor.clone(), Some(&layer.data)));
    write_image(&bases, &cfg, &layers, Some("static"))
        .await
        .unwrap()
}

/// Points the stack at `new` in the config file (the platform approving a new base).
fn approve(config_path: &Path, old: &Digest, new: &Digest) {
    let text = std::fs::read_to_string(config_path).unwrap();
    let from = format!("run_image_digest = \"{old}\"");
    assert!(text.contains(&from), "the stack pins {old}");
    std::fs::write(
        config_path,
        text.replace(&from, &format!("run_image_digest = \"{new}\"")),
    )
    .unwrap();
}

async fn post_rebase(gate: &Gate, token: &str, body: Value) -> (u16, Value) {
    let res = reqwest::Client::new()
        .post(format!("{}/api/v1/rebases", gate.url))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

fn rebase_cli(config_path: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_airlock-gate"))
        .arg("rebase")
        .args(args)
        .arg("--config")
        .arg(config_path)
        .env_remove("AIRLOCK_SIGNING_KEY_PEM")
        .output()
        .expect("airlock-gate runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Verifies release `sequence` of `app` at the boundary and checks it is the rebase of `from_image` onto
/// `base`: same commit, new base's layers then the app's own layer, labels and provenance naming the base.
async fn check_rebased_release(
    config: &GateConfig,
    app: &str,
    sequence: u64,
    from_image: &Digest,
    base: &Digest,
) -> Digest {
    let root = LayoutRoot::open_or_create(&config.boundary_dir()).unwrap();
    let repo = root.repo(app).unwrap();
    let key = airlock_sign::PublicKey::load(&config.public_key_path()).unwrap();
    let trust = airlock_sign::TrustSet::new(vec![key]);
    let docker_reference = format!("{}/{app}", config.boundary.reference_prefix);
    let verified = airlock_sign::verify_release(
        &repo,
        &docker_reference,
        &airlock_sign::release_tag(sequence),
        &trust,
        Some(sequence - 1),
        &[airlock_sign::predicates::SLSA_PROVENANCE_V1],
    )
    .await
    .unwrap_or_else(|e| panic!("release {sequence} of {app} verifies: {e}"));
    assert_eq!(
        verified.config.commit, "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678",
        "same commit"
    );
    let image = verified.config.image.digest.clone();
    assert_ne!(&image, from_image, "the release carries the rebased image");

    let old = read_image(&repo, from_image.as_str()).await.unwrap();
    let new = read_image(&repo, image.as_str()).await.unwrap();
    let bases = OciLayout::open(&config.bases_dir()).unwrap();
    let base_image = read_image(&bases, base.as_str()).await.unwrap();
    let k = base_image.manifest.layers.len();
    let digests = |i: &airlock_oci::Image| -> Vec<Digest> {
        i.manifest.layers.iter().map(|d| d.digest.clone()).collect()
    };
    assert_eq!(
        digests(&new)[..k],
        digests(&base_image)[..],
        "new base layers first"
    );
    assert_eq!(
        digests(&new)[k..],
        digests(&old)[digests(&old).len() - 1..],
        "the app layer is kept byte for byte"
    );
    let labels = new.config.config.labels.clone().unwrap_or_default();
    assert_eq!(
        labels.get(airlock_oci::BASE_DIGEST_LABEL),
        Some(&base.to_string())
    );

    let provenance = verified
        .attestations
        .iter()
        .find(|a| a.predicate_type == airlock_sign::predicates::SLSA_PROVENANCE_V1)
        .expect("provenance attested");
    let text = provenance.statement.to_string();
    assert!(
        text.contains(base.hex()),
        "provenance names the new base: {text}"
    );
    assert!(
        text.contains(from_image.hex()),
        "provenance names the image it was rebased from"
    );
    image
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebase_makes_new_signed_releases_through_the_api_and_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = Tokens {
        dev: generate_token(),
        admin: generate_token(),
    };
    let config_path = data_dir(dir.path(), &tokens).await;
    let config = GateConfig::load(&config_path).unwrap();
    let v1 = config.stacks[0].run_image_digest.clone();
    let gate = start(&config_path).await;
    let hello_run = submit_and_wait(&gate, &tokens.dev, "hello").await;
    submit_and_wait(&gate, &tokens.dev, "hello2").await;
    let hello_v1_image = {
        let c = GateClient::new(&gate.url, &tokens.admin).unwrap();
        let view = c.run(&hello_run).await.unwrap();
        Digest::parse(&view.image.expect("image").digest).unwrap()
    };

    // The platform publishes base v2 but has not approved it yet.
    let v2 = next_base(&config, "2").await;
    let (status, body) = post_rebase(
        &gate,
        &tokens.dev,
        json!({ "app": "hello", "onto": "static" }),
    )
    .await;
    assert_eq!(status, 403, "rebase is admin-only: {body}");
    let (status, body) = post_rebase(
        &gate,
        &tokens.admin,
        json!({ "app": "hello", "onto": "static" }),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("not an approved run base") && error.contains(v1.as_str()),
        "names the base and what is approved: {error}"
    );
    let (status, body) = post_rebase(
        &gate,
        &tokens.admin,
        json!({ "app": "nope", "onto": "static" }),
    )
    .await;
    assert_eq!(status, 404, "{body}");

    // Approved: the admin rebases every app on v1 through the API; the worker publishes new releases.
    approve(&config_path, &v1, &v2);
    drop(gate);
    let gate = start(&config_path).await;
    let (status, body) = post_rebase(
        &gate,
        &tokens.admin,
        json!({ "all_on": format!("static@{v1}"), "onto": "static" }),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let runs = body["runs"].as_array().cloned().unwrap_or_default();
    assert_eq!(runs.len(), 2, "both apps were on v1: {body}");
    let client = GateClient::new(&gate.url, &tokens.admin).unwrap();
    for r in &runs {
        let view = client
            .wait(r["run_id"].as_str().unwrap(), |_| {})
            .await
            .unwrap();
        assert_eq!(view.state, RunState::Published, "{view:?}");
    }
    let config = GateConfig::load(&config_path).unwrap();
    let hello_v2_image = check_rebased_release(&config, "hello", 2, &hello_v1_image, &v2).await;

    // Another lineage is refused by the command, with the reason.
    let other = {
        let bases = OciLayout::open(&config.bases_dir()).unwrap();
        let mut b = LayerBuilder::new(1_700_000_000);
        b.add_file("/etc/other", 0o644, 0, 0, b"other\n".to_vec())
            .unwrap();
        let layer = b.finish(Compression::Gzip).unwrap();
        let mut cfg = airlock_oci::ImageConfig::new("amd64", "linux");
        cfg.rootfs.diff_ids = vec![layer.diff_id.clone()];
        cfg.history = vec![History::default()];
        write_image(
            &bases,
            &cfg,
            &[(layer.descriptor.clone(), Some(&layer.data))],
            Some("other"),
        )
        .await
        .unwrap()
    };
    let text = std::fs::read_to_string(&config_path).unwrap();
    std::fs::write(
        &config_path,
        text.replace(
            "[[environments]]",
            &format!(
                "[[stacks]]\nname = \"other\"\nrun_image = \"other\"\nrun_image_digest = \"{other}\"\n\n[[environments]]"
            ),
        ),
    )
    .unwrap();
    let (ok, _, stderr) = rebase_cli(&config_path, &["--app", "hello", "--onto", "other"]);
    assert!(!ok, "another lineage is refused");
    assert!(stderr.contains("one lineage"), "{stderr}");

    // v3: the command rebases every app on v2, in waves; hello2's source checkout is gone, so its rebase
    // fails, is reported in the table, and does not stop hello's.
    let v3 = next_base(&config, "3").await;
    approve(&config_path, &v2, &v3);
    let hello2_newest = client
        .runs(Some("hello2"))
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.state == RunState::Published)
        .unwrap();
    std::fs::remove_dir_all(config.runs_dir().join(&hello2_newest.id).join("src")).unwrap();
    let (ok, stdout, stderr) = rebase_cli(
        &config_path,
        &[
            "--all-on",
            &format!("static@{v2}"),
            "--onto",
            "static",
            "--max-parallel",
            "1",
        ],
    );
    assert!(!ok, "one app failed, so the command fails: {stdout}");
    assert!(
        stderr.contains("1 of 2 rebase(s) did not publish"),
        "{stderr}"
    );
    let hello_row = stdout
        .lines()
        .find(|l| l.starts_with("hello "))
        .unwrap_or_else(|| panic!("a row for hello: {stdout}"));
    assert!(
        hello_row.contains("published") && hello_row.contains(" 3 "),
        "{stdout}"
    );
    let hello2_row = stdout.lines().find(|l| l.starts_with("hello2 ")).unwrap();
    assert!(
        hello2_row.contains("source checkout") && hello2_row.contains("is gone"),
        "{stdout}"
    );
    let config = GateConfig::load(&config_path).unwrap();
    check_rebased_release(&config, "hello", 3, &hello_v2_image, &v3).await;

    // The old base is inferred from the release itself: hello is on v3 now, so this is "already on".
    let (ok, _, stderr) = rebase_cli(&config_path, &["--app", "hello", "--onto", "static"]);
    assert!(!ok && stderr.contains("already on"), "{stderr}");
}
