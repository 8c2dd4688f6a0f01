//! Promotion with a soak, explicit rollback, air-gap archives, the `run` loop with its metrics, and the
//! command line's exit codes. Real keys, real OCI layouts, real git; no mocks.

mod common;

use airlock_agent::config::RunConfig;
use airlock_agent::evidence::{HealthClaim, evidence_tag, publish_evidence};
use airlock_agent::metrics::Counter;
use airlock_agent::server::{Health, Shared, run_loop};
use airlock_agent::{
    Agent, EvidenceConfig, Metrics, Promotion, SourceOptions, SourceSpec, SyncConfig, TargetSpec,
    import_archive, load_trust,
};
use airlock_oci::{LayoutRoot, OciLayout, Store};
use airlock_sign::{SigningKey, TrustSet};
use common::{Release, key_file, manifest_text, publish};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn boundary(dir: &Path) -> PathBuf {
    dir.join("boundary")
}

fn repo(dir: &Path, app: &str) -> OciLayout {
    LayoutRoot::open_or_create(&boundary(dir))
        .unwrap()
        .repo(app)
        .unwrap()
}

fn config(dir: &Path, key: &SigningKey, env: &str, target: TargetSpec) -> SyncConfig {
    let trust = load_trust(&[key_file(dir, key, "gate.pub")]).unwrap();
    SyncConfig::new(SourceSpec::Layout(boundary(dir)), trust, env, target)
}

#[tokio::test]
async fn production_takes_a_release_only_after_its_signed_soak_in_staging() {
    let dir = tempfile::tempdir().unwrap();
    let gate = SigningKey::generate();
    let staging_agent_key = SigningKey::generate();
    publish(
        &repo(dir.path(), "hello"),
        Release::new("hello", 1, &gate, &["staging", "production"]),
    )
    .await;
    let evidence_store = SourceSpec::Layout(dir.path().join("evidence"));
    let evidence = |key: Option<SigningKey>| EvidenceConfig {
        store: evidence_store.clone(),
        options: SourceOptions::default(),
        key,
        trust: TrustSet::new(vec![staging_agent_key.public_key()]),
    };

    let mut staging_cfg = config(
        dir.path(),
        &gate,
        "staging",
        TargetSpec::Directory(dir.path().join("deploy")),
    );
    staging_cfg.evidence = Some(evidence(Some(staging_agent_key.clone())));
    let mut prod_cfg = config(
        dir.path(),
        &gate,
        "production",
        TargetSpec::Git {
            repo: dir.path().join("gitops"),
            path: String::new(),
        },
    );
    prod_cfg.evidence = Some(evidence(None));
    prod_cfg.promotion = Some(Promotion {
        after: "staging".into(),
        soak: Duration::from_secs(2),
    });
    let metrics = Arc::new(Metrics::default());
    let mut staging = Agent::new(staging_cfg, metrics.clone()).unwrap();
    let mut prod = Agent::new(prod_cfg, metrics.clone()).unwrap();

    // Not in staging yet: production waits, exit code 0, nothing written.
    let report = prod.sync().await.unwrap();
    assert_eq!(report.waiting.len(), 1, "{report:?}");
    assert!(
        report.waiting[0].reason.contains("no evidence"),
        "{report:?}"
    );
    assert_eq!(report.exit_code(), 0);

    assert_eq!(staging.sync().await.unwrap().applied.len(), 1);
    let evidence_repo = LayoutRoot::open_or_create(&dir.path().join("evidence"))
        .unwrap()
        .repo("hello")
        .unwrap();
    assert!(
        evidence_repo
            .list_tags_sync()
            .unwrap()
            .contains(&evidence_tag("staging", 1))
    );

    // Healthy in staging, but the soak has not passed.
    let report = prod.sync().await.unwrap();
    assert_eq!(report.waiting.len(), 1, "{report:?}");
    assert!(
        report.waiting[0].reason.contains("soaking until"),
        "{report:?}"
    );
    assert!(!dir.path().join("gitops/production/hello").exists());
    let status = prod.target().read_status("production");
    assert!(
        status.apps["hello"]
            .waiting
            .as_deref()
            .unwrap_or_default()
            .contains("soaking"),
        "{status:?}"
    );

    // After the soak, production takes it.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let report = prod.sync().await.unwrap();
    assert_eq!(report.applied.len(), 1, "{report:?}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("gitops/production/hello/deployment.yaml"))
            .unwrap(),
        manifest_text("hello", "production", 1)
    );
    assert_eq!(metrics.get("production", Counter::Applied), 1);
}

#[tokio::test]
async fn evidence_signed_by_an_untrusted_agent_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let gate = SigningKey::generate();
    let digest = publish(
        &repo(dir.path(), "hello"),
        Release::new("hello", 1, &gate, &["production"]),
    )
    .await;
    // Someone forges "healthy since long ago" with a key that is not the staging agent's.
    let forger = SigningKey::generate();
    let store = LayoutRoot::open_or_create(&dir.path().join("evidence"))
        .unwrap()
        .repo("hello")
        .unwrap();
    publish_evidence(
        &store,
        "airlock.local/hello",
        &HealthClaim {
            app: "hello",
            env: "staging",
            sequence: 1,
            release_digest: &digest,
            healthy_since: "2000-01-01T00:00:00Z",
        },
        &forger,
    )
    .await
    .unwrap();
    let mut cfg = config(
        dir.path(),
        &gate,
        "production",
        TargetSpec::Directory(dir.path().join("deploy")),
    );
    cfg.evidence = Some(EvidenceConfig {
        store: SourceSpec::Layout(dir.path().join("evidence")),
        options: SourceOptions::default(),
        key: None,
        trust: TrustSet::new(vec![SigningKey::generate().public_key()]),
    });
    cfg.promotion = Some(Promotion {
        after: "staging".into(),
        soak: Duration::from_secs(1),
    });
    let report = Agent::new(cfg, Arc::new(Metrics::default()))
        .unwrap()
        .sync()
        .await
        .unwrap();
    assert_eq!(report.refused.len(), 1, "{report:?}");
    assert_eq!(report.refused[0].kind, "evidence");
    assert!(!dir.path().join("deploy/production/hello").exists());
}

#[tokio::test]
async fn rollback_is_explicit_recorded_and_holds_back_the_bad_release() {
    let dir = tempfile::tempdir().unwrap();
    let gate = SigningKey::generate();
    let r = repo(dir.path(), "hello");
    publish(&r, Release::new("hello", 1, &gate, &["staging"])).await;
    publish(&r, Release::new("hello", 2, &gate, &["staging"])).await;
    let target = TargetSpec::Directory(dir.path().join("deploy"));
    let mut agent = Agent::new(
        config(dir.path(), &gate, "staging", target.clone()),
        Arc::new(Metrics::default()),
    )
    .unwrap();
    assert_eq!(agent.sync().await.unwrap().applied[0].sequence, 2);

    let applied = agent
        .rollback("hello", 1, "release 2 breaks checkout")
        .await
        .unwrap();
    assert_eq!(applied.sequence, 1);
    let record = agent
        .target()
        .deployed("staging", "hello")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.sequence, 1);
    let note = record.rollback.unwrap();
    assert_eq!(
        (note.from, note.reason.as_str()),
        (2, "release 2 breaks checkout")
    );
    assert_eq!(record.floor, 2);

    // The next cycles keep release 1: release 2 stays out.
    let report = agent.sync().await.unwrap();
    assert_eq!(report.unchanged, vec!["hello".to_string()], "{report:?}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("deploy/staging/hello/deployment.yaml")).unwrap(),
        manifest_text("hello", "staging", 1)
    );
    // A fixed release 3 goes out as usual.
    publish(&r, Release::new("hello", 3, &gate, &["staging"])).await;
    assert_eq!(agent.sync().await.unwrap().applied[0].sequence, 3);

    // Rolling back to a release that does not verify is refused and changes nothing.
    let err = agent.rollback("hello", 9, "typo").await.unwrap_err();
    assert!(
        err.to_string()
            .contains("cannot roll hello back to release 9"),
        "{err}"
    );
    assert_eq!(
        agent
            .target()
            .deployed("staging", "hello")
            .await
            .unwrap()
            .unwrap()
            .sequence,
        3
    );
}

fn tar_dir(dir: &Path, out: &Path) {
    let status = Command::new("tar")
        .arg("-C")
        .arg(dir)
        .arg("-czf")
        .arg(out)
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn air_gap_archive_is_synced_directly_and_through_the_import_folder() {
    let dir = tempfile::tempdir().unwrap();
    let gate = SigningKey::generate();
    publish(
        &repo(dir.path(), "hello"),
        Release::new("hello", 1, &gate, &["staging"]),
    )
    .await;
    let archive = dir.path().join("hand-off.tar.gz");
    tar_dir(&boundary(dir.path()), &archive);
    let trust = load_trust(&[key_file(dir.path(), &gate, "gate.pub")]).unwrap();

    // Directly: oci-archive:FILE.
    let cfg = SyncConfig::new(
        SourceSpec::Archive(archive.clone()),
        trust.clone(),
        "staging",
        TargetSpec::Directory(dir.path().join("direct")),
    );
    let report = airlock_agent::sync_once(&cfg).await.unwrap();
    assert_eq!(report.applied.len(), 1, "{report:?}");

    // Through the import folder.
    let inbox = dir.path().join("inbox");
    assert_eq!(
        import_archive(&archive, &inbox).await.unwrap(),
        vec!["hello".to_string()]
    );
    let cfg = SyncConfig::new(
        SourceSpec::Layout(inbox),
        trust,
        "staging",
        TargetSpec::Directory(dir.path().join("imported")),
    );
    let report = airlock_agent::sync_once(&cfg).await.unwrap();
    assert_eq!(report.applied.len(), 1, "{report:?}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("imported/staging/hello/deployment.yaml")).unwrap(),
        manifest_text("hello", "staging", 1)
    );

    // A single app's layout archived on its own works too.
    let single = dir.path().join("hello-only.tar");
    let status = Command::new("tar")
        .arg("-C")
        .arg(boundary(dir.path()).join("hello"))
        .arg("-cf")
        .arg(&single)
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success());
    let cfg = SyncConfig::new(
        SourceSpec::Archive(single),
        load_trust(&[key_file(dir.path(), &gate, "gate.pub")]).unwrap(),
        "staging",
        TargetSpec::Directory(dir.path().join("single")),
    );
    assert_eq!(
        airlock_agent::sync_once(&cfg).await.unwrap().applied.len(),
        1
    );
}

#[tokio::test]
async fn run_loop_counts_what_it_did_in_prometheus_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let gate = SigningKey::generate();
    publish(
        &repo(dir.path(), "hello"),
        Release::new("hello", 1, &gate, &["staging"]),
    )
    .await;
    publish(
        &repo(dir.path(), "evil"),
        Release::new("evil", 1, &SigningKey::generate(), &["staging"]),
    )
    .await;
    key_file(dir.path(), &gate, "gate.pub");
    let path = dir.path().join("agent.toml");
    std::fs::write(
        &path,
        "source = \"oci:boundary\"\ntrust_keys = [\"gate.pub\"]\ninterval_seconds = 1\n[[environment]]\nname = \"staging\"\ntarget = \"directory:deploy\"\n",
    )
    .unwrap();
    let config = RunConfig::load(&path).unwrap();
    let shared = Shared {
        metrics: Arc::new(Metrics::default()),
        health: Arc::new(Mutex::new(Health::default())),
    };
    let mut reports = Vec::new();
    run_loop(&config, shared.clone(), Some(2), |env, r| {
        reports.push((env.to_string(), r.as_ref().map(|r| r.exit_code()).ok()))
    })
    .await
    .unwrap();
    assert_eq!(
        reports,
        vec![
            ("staging".to_string(), Some(1)),
            ("staging".to_string(), Some(1))
        ]
    );
    let text = shared.metrics.render();
    for line in [
        "airlock_agent_releases_seen_total{env=\"staging\"} 2\n",
        "airlock_agent_releases_verified_total{env=\"staging\"} 1\n",
        "airlock_agent_releases_refused_total{env=\"staging\",reason=\"untrusted-key\"} 1\n",
        "airlock_agent_releases_applied_total{env=\"staging\"} 1\n",
        "airlock_agent_sync_duration_seconds_count{env=\"staging\"} 2\n",
    ] {
        assert!(text.contains(line), "{line:?} not in\n{text}");
    }
}

fn agent_bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_airlock-agent"))
}

#[tokio::test]
async fn command_line_exit_codes_and_status() {
    let dir = tempfile::tempdir().unwrap();
    let gate = SigningKey::generate();
    publish(
        &repo(dir.path(), "hello"),
        Release::new("hello", 1, &gate, &["staging"]),
    )
    .await;
    let key = key_file(dir.path(), &gate, "gate.pub");
    let other = key_file(dir.path(), &SigningKey::generate(), "other.pub");
    let target = format!("directory:{}", dir.path().join("deploy").display());
    let sync = |keys: &[&Path]| {
        let mut c = agent_bin();
        c.args(["sync", "--once", "--env", "staging", "--target", &target]);
        c.arg("--source")
            .arg(format!("oci:{}", boundary(dir.path()).display()));
        for k in keys {
            c.arg("--trust-key").arg(k);
        }
        c.output().unwrap()
    };
    // Refused: exit 1, the reason printed.
    let out = sync(&[&other]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("refused   hello"),
        "{out:?}"
    );
    // Several --trust-key: any of them verifies; applied, exit 0.
    let out = sync(&[&other, &key]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("applied   hello release 1"),
        "{out:?}"
    );
    // Missing source: exit 2 naming it.
    let out = agent_bin()
        .args([
            "sync",
            "--once",
            "--env",
            "staging",
            "--target",
            &target,
            "--source",
            "oci:/nonexistent/boundary",
        ])
        .arg("--trust-key")
        .arg(&key)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("/nonexistent/boundary"),
        "{out:?}"
    );

    let out = agent_bin()
        .args(["status", "--target", &target])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("APP"), "{text}");
    assert!(
        lines[0].contains("LAST SYNC") && lines[0].contains("LAST ERROR"),
        "{text}"
    );
    assert!(
        lines[1].starts_with("hello") && lines[1].contains("staging"),
        "{text}"
    );
}

#[tokio::test]
async fn run_serves_healthz_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let gate = SigningKey::generate();
    publish(
        &repo(dir.path(), "hello"),
        Release::new("hello", 1, &gate, &["staging"]),
    )
    .await;
    key_file(dir.path(), &gate, "gate.pub");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let path = dir.path().join("agent.toml");
    std::fs::write(
        &path,
        format!("source = \"oci:boundary\"\ntrust_keys = [\"gate.pub\"]\ninterval_seconds = 1\nlisten = \"127.0.0.1:{port}\"\n[[environment]]\nname = \"staging\"\ntarget = \"directory:deploy\"\n"),
    )
    .unwrap();
    let mut child = agent_bin()
        .arg("run")
        .arg("--config")
        .arg(&path)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let mut healthy = false;
    for _ in 0..100 {
        if let Ok(r) = client
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
            && r.status() == 200
        {
            healthy = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let metrics = client
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await;
    let _ = child.kill();
    let _ = child.wait();
    assert!(healthy, "/healthz never answered 200");
    let metrics = metrics.unwrap();
    assert!(
        metrics.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = metrics.text().await.unwrap();
    assert!(
        text.contains("airlock_agent_releases_applied_total{env=\"staging\"} 1"),
        "{text}"
    );
    assert!(
        dir.path()
            .join("deploy/staging/hello/deployment.yaml")
            .is_file()
    );
}

async fn revoke(dir: &Path, gate: &SigningKey, digest: &airlock_oci::Digest, reason: &str) {
    let store = repo(dir, airlock_sign::REVOCATIONS_REPOSITORY);
    airlock_sign::publish_revocation(
        &store,
        "airlock.local/airlock.revocations",
        digest,
        reason,
        "2026-11-23T10:00:00Z",
        gate,
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn revoked_release_is_replaced_by_the_newest_admitted_one_or_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let gate = SigningKey::generate();
    let r = repo(dir.path(), "hello");
    let one = publish(&r, Release::new("hello", 1, &gate, &["staging"])).await;
    let two = publish(&r, Release::new("hello", 2, &gate, &["staging"])).await;
    let deploy = dir.path().join("deploy/staging/hello/deployment.yaml");
    let metrics = Arc::new(Metrics::default());
    let mut agent = Agent::new(
        config(
            dir.path(),
            &gate,
            "staging",
            TargetSpec::Directory(dir.path().join("deploy")),
        ),
        metrics.clone(),
    )
    .unwrap();
    assert_eq!(agent.sync().await.unwrap().applied[0].sequence, 2);

    // Release 2 is revoked: the agent moves to release 1 by itself, and records why.
    revoke(dir.path(), &gate, &two, "CVE-2026-0001 in the image").await;
    let report = agent.sync().await.unwrap();
    assert_eq!(
        report
            .applied
            .iter()
            .map(|a| a.sequence)
            .collect::<Vec<_>>(),
        vec![1],
        "{report:?}"
    );
    assert_eq!(
        std::fs::read_to_string(&deploy).unwrap(),
        manifest_text("hello", "staging", 1)
    );
    let record = agent
        .target()
        .deployed("staging", "hello")
        .await
        .unwrap()
        .unwrap();
    assert!(record.rollback.unwrap().reason.contains("CVE-2026-0001"));

    // Release 1 is revoked too: nothing to move to, the app is flagged and keeps running.
    revoke(dir.path(), &gate, &one, "also affected").await;
    let report = agent.sync().await.unwrap();
    assert_eq!(report.refused.len(), 1, "{report:?}");
    assert_eq!(report.refused[0].kind, "revoked");
    assert!(
        metrics.render().contains("reason=\"revoked\"} 1"),
        "{}",
        metrics.render()
    );
    let status = agent.target().read_status("staging");
    assert!(
        status.apps["hello"]
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("is revoked"),
        "{status:?}"
    );
    assert_eq!(status.revocations_sequence, Some(2));

    // A fixed release goes out; a revoked one is never applied, not even by an explicit rollback.
    publish(&r, Release::new("hello", 3, &gate, &["staging"])).await;
    assert_eq!(agent.sync().await.unwrap().applied[0].sequence, 3);
    let err = agent
        .rollback("hello", 2, "try the old one")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("revoked"), "{err}");
}

#[tokio::test]
async fn replayed_older_revocation_list_stops_the_sync_even_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let gate = SigningKey::generate();
    let r = repo(dir.path(), "hello");
    let one = publish(&r, Release::new("hello", 1, &gate, &["staging"])).await;
    revoke(
        dir.path(),
        &gate,
        &airlock_oci::Digest::of(b"unrelated"),
        "first",
    )
    .await;
    let list_repo = repo(dir.path(), airlock_sign::REVOCATIONS_REPOSITORY);
    let old_list = list_repo.get_manifest("revocations").await.unwrap();
    revoke(dir.path(), &gate, &one, "second").await;
    let target = TargetSpec::Directory(dir.path().join("deploy"));
    let report = airlock_agent::sync_once(&config(dir.path(), &gate, "staging", target.clone()))
        .await
        .unwrap();
    assert_eq!(report.refused[0].kind, "revoked", "{report:?}");

    // Someone in the DMZ puts the older list (sequence 1, validly signed) back to lift the revocation.
    list_repo
        .put_manifest(
            &old_list.bytes,
            airlock_oci::media_type::OCI_MANIFEST,
            Some("revocations"),
        )
        .await
        .unwrap();
    // A new agent process reads the last sequence it saw from the target.
    let err = airlock_agent::sync_once(&config(dir.path(), &gate, "staging", target))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("revocation list"), "{err}");
    assert!(!dir.path().join("deploy/staging/hello").exists());
}

#[tokio::test]
async fn gate_export_archive_is_checked_and_imported_by_airlock_oci() {
    let dir = tempfile::tempdir().unwrap();
    let gate = SigningKey::generate();
    publish(
        &repo(dir.path(), "hello"),
        Release::new("hello", 1, &gate, &["staging"]),
    )
    .await;
    let archive = dir.path().join("export.tar");
    let root = LayoutRoot::open_or_create(&boundary(dir.path())).unwrap();
    airlock_oci::export_releases(&root, &["hello".to_string()], 0, &archive)
        .await
        .unwrap();
    let trust = load_trust(&[key_file(dir.path(), &gate, "gate.pub")]).unwrap();
    let cfg = SyncConfig::new(
        SourceSpec::Archive(archive.clone()),
        trust.clone(),
        "staging",
        TargetSpec::Directory(dir.path().join("direct")),
    );
    let report = airlock_agent::sync_once(&cfg).await.unwrap();
    assert_eq!(report.applied.len(), 1, "{report:?}");
    let inbox = dir.path().join("inbox");
    assert_eq!(
        import_archive(&archive, &inbox).await.unwrap(),
        vec!["hello".to_string()]
    );

    // A cut-off transfer is refused as a whole, naming the file; nothing is imported.
    let bytes = std::fs::read(&archive).unwrap();
    let cut = dir.path().join("cut.tar");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let err = import_archive(&cut, &dir.path().join("inbox2"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("cut.tar"), "{err}");
    assert!(
        LayoutRoot::open_or_create(&dir.path().join("inbox2"))
            .unwrap()
            .repositories()
            .unwrap()
            .is_empty()
    );
}
