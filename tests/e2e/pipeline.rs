//! The walking skeleton end to end: what `airlock-gate demo` does, checked by tools that are not ours.

use airlock_cli::api::RunState;
use airlock_e2e::{python, repo_root};
use std::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_publishes_a_signed_release_that_the_agent_deploys_by_digest() {
    let dir = tempfile::tempdir().unwrap();
    let outcome = airlock_e2e::run_demo(dir.path()).await;

    let run = &outcome.run;
    assert_eq!(run.state, RunState::Published);
    let names: Vec<_> = run.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["fetch", "build", "scan", "gate", "sign", "publish"]);
    assert!(
        run.steps.iter().all(|s| s.duration_ms.is_some()),
        "every step has a duration: {:?}",
        run.steps
    );
    let digest = run.image.as_ref().expect("image").digest.clone();
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "{digest}"
    );
    assert_eq!(run.release.as_ref().expect("release").sequence, 1);

    // The agent wrote staging manifests that name the image by digest.
    let deployment =
        std::fs::read_to_string(outcome.deployed.join("deployment.yaml")).expect("deployment.yaml");
    assert!(
        deployment.contains(&format!("airlock.local/hello@{digest}")),
        "{deployment}"
    );
    assert!(outcome.deployed.join("kustomization.yaml").exists());

    // An implementation that is not ours (Python `cryptography`) accepts the cosign signature.
    let boundary = dir.path().join("boundary/hello");
    let out = Command::new(python())
        .arg(repo_root().join("crates/airlock-sign/tests/verify_cosign.py"))
        .arg(&boundary)
        .arg(dir.path().join("keys/airlock.pub"))
        .arg(&digest)
        .arg("airlock.local/hello")
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "independent cosign verification failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_commit_builds_to_the_same_image_digest() {
    let gate = airlock_e2e::start_gate(|_| {}).await;
    let client = airlock_cli::client::GateClient::new(&gate.url, &gate.token).expect("client");
    let app = repo_root().join("examples/hello");
    let mut digests = Vec::new();
    for _ in 0..2 {
        let packed = airlock_cli::pack::pack_dir(&app).expect("pack");
        let meta = airlock_cli::client::SubmitMeta {
            repository: "https://git.example/demo/hello".into(),
            commit: "0123456789abcdef0123456789abcdef01234567".into(),
            branch: "main".into(),
            author: "dev".into(),
            app: None,
            commit_time: Some(1_700_000_000),
        };
        let accepted = client.submit(&packed, &meta).await.expect("accepted");
        let run = client
            .wait(&accepted.run_id, |_| {})
            .await
            .expect("finished");
        assert_eq!(run.state, RunState::Published, "{:?}", run.error);
        digests.push(run.image.expect("image").digest);
    }
    assert_eq!(digests[0], digests[1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_restarted_mid_run_resumes_the_run() {
    let first = airlock_e2e::start_gate(|_| {}).await;
    let client = airlock_cli::client::GateClient::new(&first.url, &first.token).expect("client");
    let packed = airlock_cli::pack::pack_dir(&repo_root().join("examples/hello")).expect("pack");
    let meta = airlock_cli::client::SubmitMeta {
        repository: "https://git.example/demo/hello".into(),
        commit: "local".into(),
        branch: "main".into(),
        author: "dev".into(),
        app: None,
        commit_time: None,
    };
    let accepted = client.submit(&packed, &meta).await.expect("accepted");
    // Stop the gate as soon as the run has left the queue: its worker dies mid-run, as in a crash.
    loop {
        let view = client.run(&accepted.run_id).await.expect("status");
        if view.state != RunState::Queued {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    first.gate.worker.abort();
    first.gate.server.abort();

    // A new gate process on the same data directory picks the run up and finishes it.
    let second = airlock_gate::server::start(first.config.clone())
        .await
        .expect("restart");
    let client =
        airlock_cli::client::GateClient::new(&format!("http://{}", second.addr), &first.token)
            .expect("client");
    let run = client
        .wait(&accepted.run_id, |_| {})
        .await
        .expect("finished");
    second.worker.abort();
    second.server.abort();
    assert_eq!(run.state, RunState::Published, "{:?}", run.error);
    assert!(
        run.steps
            .iter()
            .all(|s| s.state == airlock_cli::api::StepState::Succeeded),
        "{:?}",
        run.steps
    );
}
