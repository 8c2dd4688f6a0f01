//! The agent against a real registry (Debian's `docker-registry`, distribution 2.8, on loopback):
//! releases published exactly as the gate publishes them, polled through `docker://HOST/PREFIX`, applied
//! to a directory and to a git repository; and a registry that goes away and comes back.

mod common;

use airlock_agent::{Agent, GitTarget, Metrics, SyncConfig, TargetSpec};
use airlock_sign::SigningKey;
use common::{Registry, Release, manifest_text, publish};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

fn config(dir: &Path, registry: &Registry, key: &SigningKey, target: TargetSpec) -> SyncConfig {
    let mut cfg = common::registry_config(dir, registry, key, target);
    cfg.admission = Some(common::admission_dir());
    cfg
}

#[tokio::test]
async fn registry_source_to_directory_target() {
    let registry = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate();
    let store = registry.store("boundary/hello");
    publish(
        &store,
        Release::new("hello", 1, &key, &["staging", "production"]),
    )
    .await;

    let deploy = dir.path().join("deploy");
    let mut agent = Agent::new(
        config(
            dir.path(),
            &registry,
            &key,
            TargetSpec::Directory(deploy.clone()),
        ),
        Arc::new(Metrics::default()),
    )
    .unwrap();
    let report = agent.sync().await.unwrap();
    assert_eq!(report.exit_code(), 0, "{report:?}");
    assert_eq!(report.applied.len(), 1, "{report:?}");
    assert_eq!(
        std::fs::read_to_string(deploy.join("staging/hello/deployment.yaml")).unwrap(),
        manifest_text("hello", "staging", 1)
    );

    publish(
        &store,
        Release::new("hello", 2, &key, &["staging", "production"]),
    )
    .await;
    let report = agent.sync().await.unwrap();
    assert_eq!(
        report
            .applied
            .iter()
            .map(|a| a.sequence)
            .collect::<Vec<_>>(),
        vec![2]
    );
    assert_eq!(
        std::fs::read_to_string(deploy.join("staging/hello/deployment.yaml")).unwrap(),
        manifest_text("hello", "staging", 2)
    );
    let idle = agent.sync().await.unwrap();
    assert_eq!(idle.unchanged, vec!["hello".to_string()]);
}

fn git_log(repo: &Path) -> Vec<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["log", "--format=%s"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn registry_source_to_git_target_one_commit_per_release_and_drift_corrected() {
    let registry = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate();
    let store = registry.store("boundary/hello");
    // A GitOps repository with a bare origin, as Argo CD or Flux would read it.
    let origin = dir.path().join("origin.git");
    assert!(
        Command::new("git")
            .args(["init", "--quiet", "--bare"])
            .arg(&origin)
            .status()
            .unwrap()
            .success()
    );
    let work = dir.path().join("work");
    assert!(
        Command::new("git")
            .args(["clone", "--quiet"])
            .arg(&origin)
            .arg(&work)
            .status()
            .unwrap()
            .success()
    );

    let target = TargetSpec::Git {
        repo: work.clone(),
        path: "clusters".into(),
    };
    let mut agent = Agent::new(
        config(dir.path(), &registry, &key, target),
        Arc::new(Metrics::default()),
    )
    .unwrap();
    publish(&store, Release::new("hello", 1, &key, &["staging"])).await;
    assert_eq!(agent.sync().await.unwrap().applied.len(), 1);
    publish(&store, Release::new("hello", 2, &key, &["staging"])).await;
    let report = agent.sync().await.unwrap();
    assert_eq!(report.applied.len(), 1);
    assert!(report.applied[0].commit.is_some());
    assert_eq!(
        git_log(&work),
        vec![
            "airlock: deploy hello release 2 to staging",
            "airlock: deploy hello release 1 to staging"
        ]
    );
    // Pushed: the origin has the same history.
    assert_eq!(git_log(&origin), git_log(&work));
    let message = GitTarget::new(&work, "clusters").head_message().unwrap();
    assert!(message.contains("Airlock-Sequence: 2\n"), "{message}");
    assert!(
        message.contains("Airlock-Source-Commit: 0123456789abcdef"),
        "{message}"
    );

    // Someone commits a hand edit of the deployed manifest; the next cycle puts it back in one commit.
    let file = work.join("clusters/staging/hello/deployment.yaml");
    std::fs::write(&file, "kind: Deployment\n# edited by hand\n").unwrap();
    assert!(
        Command::new("git")
            .arg("-C")
            .arg(&work)
            .args([
                "-c",
                "user.name=ops",
                "-c",
                "user.email=ops@example",
                "commit",
                "--quiet",
                "-am",
                "hotfix"
            ])
            .status()
            .unwrap()
            .success()
    );
    let report = agent.sync().await.unwrap();
    assert_eq!(report.corrected.len(), 1, "{report:?}");
    assert_eq!(report.corrected[0].drift, "deployment.yaml changed");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        manifest_text("hello", "staging", 2)
    );
    assert_eq!(
        git_log(&work)[0],
        "airlock: correct drift of hello release 2 in staging"
    );

    // A new agent (restart) reads its state back from the repository: nothing to do.
    let mut fresh = Agent::new(
        config(
            dir.path(),
            &registry,
            &key,
            TargetSpec::Git {
                repo: work.clone(),
                path: "clusters".into(),
            },
        ),
        Arc::new(Metrics::default()),
    )
    .unwrap();
    let report = fresh.sync().await.unwrap();
    assert_eq!(report.unchanged, vec!["hello".to_string()], "{report:?}");
    assert_eq!(git_log(&work).len(), 4);
}

#[tokio::test]
async fn registry_unreachable_keeps_the_applied_release_and_recovers_without_restart() {
    let mut registry = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate();
    publish(
        &registry.store("boundary/hello"),
        Release::new("hello", 1, &key, &["staging"]),
    )
    .await;
    let deploy = dir.path().join("deploy");
    let target = TargetSpec::Directory(deploy.clone());
    let mut agent = Agent::new(
        config(dir.path(), &registry, &key, target.clone()),
        Arc::new(Metrics::default()),
    )
    .unwrap();
    assert_eq!(agent.sync().await.unwrap().applied.len(), 1);

    registry.stop();
    let err = agent.sync().await.unwrap_err();
    assert!(
        err.to_string().contains(&format!(
            "cannot read the release source docker://{}/boundary",
            registry.host()
        )),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(deploy.join("staging/hello/deployment.yaml")).unwrap(),
        manifest_text("hello", "staging", 1)
    );
    let status = agent.target().read_status("staging");
    assert!(
        status
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("cannot read the release source"),
        "{status:?}"
    );

    registry.restart();
    publish(
        &registry.store("boundary/hello"),
        Release::new("hello", 2, &key, &["staging"]),
    )
    .await;
    let report = agent.sync().await.unwrap();
    assert_eq!(
        report
            .applied
            .iter()
            .map(|a| a.sequence)
            .collect::<Vec<_>>(),
        vec![2],
        "{report:?}"
    );
    let status = agent.target().read_status("staging");
    assert_eq!(status.last_error, None, "{status:?}");
}
