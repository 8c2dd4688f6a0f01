//! The whole pipeline on each store: `examples/hello` submitted through the CLI's client to a real gate goes
//! fetch → build → scan → gate → sign → publish on SQLite and on a real PostgreSQL (Debian's package), with the
//! same result: published, release sequence 1, the same image digest (the store does not change what is built),
//! every step timed, the audit chain intact and the metrics counting one published run.

mod support;

use airlock_cli::api::{RunState, RunView};
use airlock_cli::client::{GateClient, SubmitMeta};
use support::Postgres;

async fn publish_on(database_url: Option<String>) -> (RunView, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let init = airlock_gate::init::init_data_dir(
        dir.path(),
        Some(&airlock_gate::init::default_vulndb_source()),
    )
    .await
    .expect("init data dir");
    let mut config = init.config;
    config.database_url = database_url;
    let gate = airlock_gate::server::start(config.clone())
        .await
        .expect("gate starts");
    let url = format!("http://{}", gate.addr);
    let client = GateClient::new(&url, &init.token).expect("client");
    let app = airlock_gate::config::source_root().join("examples/hello");
    let packed = airlock_cli::pack::pack_dir(&app).expect("pack");
    let meta = SubmitMeta {
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

    // What the store recorded along the way: the audit chain and the metrics.
    let records = gate
        .pipeline
        .store
        .audit_entries(0, 1000)
        .await
        .expect("audit");
    airlock_gate::audit::verify_chain(&records, None).expect("audit chain verifies");
    assert!(
        records
            .iter()
            .any(|r| r.entry.action == "run.submit" && r.entry.target == accepted.run_id),
        "{records:?}"
    );
    let metrics = reqwest::get(format!("{url}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    gate.server.abort();
    gate.worker.abort();
    // The release tag is in the boundary layout.
    let index = std::fs::read_to_string(config.boundary_dir().join("hello/index.json"))
        .expect("boundary index of hello");
    assert!(index.contains("release-"), "{index}");
    (run, metrics)
}

fn check(backend: &str, run: &RunView, metrics: &str) {
    assert_eq!(run.state, RunState::Published, "{backend}: {:?}", run.error);
    let names: Vec<_> = run.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        ["fetch", "build", "scan", "gate", "sign", "publish"],
        "{backend}"
    );
    assert!(
        run.steps.iter().all(|s| s.duration_ms.is_some()),
        "{backend}: every step timed: {:?}",
        run.steps
    );
    assert_eq!(
        run.release.as_ref().expect("release").sequence,
        1,
        "{backend}"
    );
    assert!(
        metrics.contains(r#"airlock_runs{state="published"} 1"#),
        "{backend}: {metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_to_published_on_sqlite_and_on_postgres() {
    let (sqlite_run, sqlite_metrics) = publish_on(None).await;
    check("sqlite", &sqlite_run, &sqlite_metrics);

    let pg = Postgres::start();
    let (pg_run, pg_metrics) = publish_on(Some(pg.database("pipeline"))).await;
    check("postgres", &pg_run, &pg_metrics);

    assert_eq!(
        sqlite_run.image.expect("image").digest,
        pg_run.image.expect("image").digest,
        "the same commit builds to the same image whichever store recorded it"
    );
}
