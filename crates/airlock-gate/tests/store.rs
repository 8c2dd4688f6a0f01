//! The store and its queue on both backends: SQLite and a real PostgreSQL started from Debian's package.

mod support;

use airlock_cli::api::{RunState, StepState};
use airlock_gate::audit::{AuditEntry, ChainError, verify_chain};
use airlock_gate::store::{NewRun, RunFilter, SourceKind, Store};
use std::collections::BTreeSet;
use support::Postgres;

/// One SQLite URL in `dir` and one fresh PostgreSQL database, named after the test.
fn backends(pg: &Postgres, dir: &std::path::Path, name: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "sqlite",
            format!(
                "sqlite://{}?mode=rwc",
                dir.join(format!("{name}.db")).display()
            ),
        ),
        ("postgres", pg.database(name)),
    ]
}

fn new_run(id: &str, app: &str, team: &str) -> NewRun {
    NewRun {
        id: id.into(),
        app: app.into(),
        team: team.into(),
        source_kind: SourceKind::Tarball,
        source_ref: format!("/tmp/{id}.tar.gz"),
        repository: "example/hello".into(),
        commit: "0123456789abcdef".into(),
        branch: "main".into(),
        author: "dev".into(),
        commit_time: Some(1_700_000_000),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn runs_round_trip_and_filter_on_both_backends() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().expect("temp dir");
    for (backend, url) in backends(&pg, dir.path(), "roundtrip") {
        let store = Store::connect(&url).await.expect("connect");
        // Migrations are applied at start and a second start finds them applied.
        let store2 = Store::connect(&url)
            .await
            .expect("reconnect applies nothing twice");
        store
            .insert_run(&new_run("r1", "hello", "payments"))
            .await
            .expect("insert r1");
        store2
            .insert_run(&new_run("r2", "shop", "retail"))
            .await
            .expect("insert r2");
        store
            .start_step("r1", RunState::Fetching, "fetch")
            .await
            .expect("start");
        store
            .finish_step(
                "r1",
                "fetch",
                StepState::Succeeded,
                1234,
                Some("hello of team payments"),
                Some(&serde_json::json!({"image": {"digest": "sha256:abc", "reference": "x"}})),
            )
            .await
            .expect("finish");
        store
            .set_terminal("r2", RunState::Rejected, Some(("gate", "policy said no")))
            .await
            .expect("terminal");

        let v = store.run_view("r1").await.expect("view");
        assert_eq!(v.state, RunState::Fetching, "{backend}");
        assert_eq!(v.steps.len(), 1, "{backend}: only started steps are shown");
        assert_eq!(v.steps[0].duration_ms, Some(1234), "{backend}");
        let rec = store.get_run("r1").await.expect("record");
        assert_eq!(
            rec.outputs["source"]["commit_time"], 1_700_000_000,
            "{backend}"
        );
        assert_eq!(rec.outputs["image"]["digest"], "sha256:abc", "{backend}");

        let rejected = store2.run_view("r2").await.expect("view r2");
        assert_eq!(
            rejected.error.expect("error").message,
            "policy said no",
            "{backend}"
        );

        let by_team = store
            .find_runs(&RunFilter {
                team: Some("retail".into()),
                limit: 50,
                ..Default::default()
            })
            .await
            .expect("filter");
        assert_eq!(
            by_team.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["r2"],
            "{backend}"
        );
        let by_state = store
            .find_runs(&RunFilter {
                state: Some(RunState::Fetching),
                limit: 50,
                ..Default::default()
            })
            .await
            .expect("filter");
        assert_eq!(
            by_state.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["r1"],
            "{backend}"
        );
        assert_eq!(
            store.list_runs(None, None, 10).await.expect("all").len(),
            2,
            "{backend}"
        );

        let counts = store.count_by_state().await.expect("counts");
        assert!(
            counts.contains(&("rejected".to_string(), 1)),
            "{backend}: {counts:?}"
        );
        let hist = store
            .step_duration_histogram(&[1000, 5000])
            .await
            .expect("histogram");
        let fetch = hist
            .iter()
            .find(|h| h.step == "fetch")
            .expect("fetch histogram");
        assert_eq!(
            (fetch.buckets.clone(), fetch.count, fetch.sum_ms),
            (vec![0, 1], 1, 1234),
            "{backend}"
        );
        assert_eq!(
            store.next_sequence("hello").await.expect("seq"),
            1,
            "{backend}"
        );
        assert_eq!(
            store2.next_sequence("hello").await.expect("seq"),
            2,
            "{backend}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_claiming_concurrently_never_run_a_job_twice() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().expect("temp dir");
    for (backend, url) in backends(&pg, dir.path(), "claims") {
        let a = Store::connect(&url).await.expect("replica a");
        let b = Store::connect(&url).await.expect("replica b");
        let total = 60;
        for i in 0..total {
            a.insert_run(&new_run(&format!("run{i:03}"), "hello", "payments"))
                .await
                .expect("insert");
        }
        assert_eq!(a.queue_depth().await.expect("depth"), total, "{backend}");
        // Four workers, two per replica, each claiming until the queue is empty.
        let mut tasks = Vec::new();
        for (w, store) in [a.clone(), a.clone(), b.clone(), b.clone()]
            .into_iter()
            .enumerate()
        {
            tasks.push(tokio::spawn(async move {
                let mut mine = Vec::new();
                while let Some(run) = store
                    .claim_next(&format!("worker-{w}"), 600)
                    .await
                    .expect("claim")
                {
                    mine.push(run.id);
                }
                mine
            }));
        }
        let mut all = Vec::new();
        let mut workers_that_claimed = 0;
        for t in tasks {
            let mine = t.await.expect("worker");
            workers_that_claimed += usize::from(!mine.is_empty());
            all.extend(mine);
        }
        let unique: BTreeSet<_> = all.iter().cloned().collect();
        assert_eq!(
            all.len(),
            total as usize,
            "{backend}: every run claimed exactly once"
        );
        assert_eq!(
            unique.len(),
            total as usize,
            "{backend}: no run claimed twice"
        );
        assert!(workers_that_claimed >= 1, "{backend}");
        // Leased runs are not claimable again until the lease is released.
        assert!(
            b.claim_next("late", 600).await.expect("claim").is_none(),
            "{backend}"
        );
        a.release_lease("run007").await.expect("release");
        let again = b
            .claim_next("late", 600)
            .await
            .expect("claim")
            .expect("released run");
        assert_eq!(again.id, "run007", "{backend}");
        assert_eq!(again.attempts, 2, "{backend}: the retry is counted");
    }
}

fn audit_entry(i: usize) -> AuditEntry {
    AuditEntry {
        actor: format!("token-{i}"),
        team: "payments".into(),
        role: "developer".into(),
        action: "run.submit".into(),
        target: format!("run{i}"),
        source_ip: "127.0.0.1".into(),
        outcome: "accepted".into(),
        detail: String::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn audit_chain_survives_concurrent_appends_and_detects_tampering() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().expect("temp dir");
    for (backend, url) in backends(&pg, dir.path(), "audit") {
        let a = Store::connect(&url).await.expect("replica a");
        let b = Store::connect(&url).await.expect("replica b");
        let mut tasks = Vec::new();
        for i in 0..20 {
            let store = if i % 2 == 0 { a.clone() } else { b.clone() };
            tasks.push(tokio::spawn(async move {
                store.append_audit(&audit_entry(i)).await.expect("append")
            }));
        }
        for t in tasks {
            t.await.expect("task");
        }
        let records = a.audit_entries(0, 1000).await.expect("entries");
        assert_eq!(records.len(), 20, "{backend}");
        verify_chain(&records, None).unwrap_or_else(|e| panic!("{backend}: intact chain: {e}"));

        a.execute_raw("UPDATE audit_log SET actor = 'mallory' WHERE seq = 7")
            .await
            .expect("tamper");
        let records = a.audit_entries(0, 1000).await.expect("entries");
        assert_eq!(
            verify_chain(&records, None),
            Err(ChainError::Edited { seq: 7 }),
            "{backend}"
        );

        a.execute_raw("DELETE FROM audit_log WHERE seq = 7")
            .await
            .expect("remove");
        let records = a.audit_entries(0, 1000).await.expect("entries");
        assert_eq!(
            verify_chain(&records, None),
            Err(ChainError::Broken {
                seq: 8,
                expected_prev_seq: 6
            }),
            "{backend}"
        );
    }
}

/// The group-commit intake path of webhooks: many deliveries at once through two replicas, every id sent three
/// times. Each id stores exactly one run with its steps and one audit entry, every redelivery answers with that
/// run, and the audit chain (written in the same transactions, interleaved with single appends) verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn batched_deliveries_store_each_once_with_its_audit_entry() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().expect("temp dir");
    for (backend, url) in backends(&pg, dir.path(), "intake") {
        let a = Store::connect(&url).await.expect("replica a");
        let b = Store::connect(&url).await.expect("replica b");
        let mut tasks = Vec::new();
        for i in 0..300 {
            let store = if i % 2 == 0 { a.clone() } else { b.clone() };
            let delivery = format!("d-{}", i % 100);
            tasks.push(tokio::spawn(async move {
                if i % 50 == 0 {
                    store.append_audit(&audit_entry(i)).await.expect("append");
                }
                let outcome = store
                    .record_delivery(
                        &delivery,
                        &new_run(&format!("run{i}"), "", ""),
                        &audit_entry(i),
                    )
                    .await
                    .expect("record delivery");
                (delivery, format!("run{i}"), outcome)
            }));
        }
        let mut run_of = std::collections::BTreeMap::new();
        let mut answers = Vec::new();
        for t in tasks {
            let (delivery, candidate, outcome) = t.await.expect("task");
            match outcome {
                None => {
                    assert!(
                        run_of.insert(delivery.clone(), candidate).is_none(),
                        "{backend}: {delivery} started two runs"
                    );
                }
                Some(existing) => answers.push((delivery, existing)),
            }
        }
        assert_eq!(
            run_of.len(),
            100,
            "{backend}: every delivery id started a run"
        );
        for (delivery, existing) in &answers {
            assert_eq!(
                Some(existing),
                run_of.get(delivery),
                "{backend}: {delivery}"
            );
        }
        let stored = a.list_runs(None, None, 1000).await.expect("list");
        assert_eq!(stored.len(), 100, "{backend}");
        let view = a.run_view(&stored[0].id).await.expect("view");
        assert_eq!(view.state, RunState::Queued, "{backend}");
        let records = a.audit_entries(0, 10_000).await.expect("entries");
        assert_eq!(
            records.len(),
            100 + 6,
            "{backend}: one entry per run plus the single appends"
        );
        verify_chain(&records, None).expect("the chain verifies");
        // Every new run is claimable with its steps in order.
        let claimed = a.claim_next("w", 60).await.expect("claim").expect("a run");
        let full = a.run_view(&claimed.id).await.expect("view");
        assert_eq!(full.id, claimed.id, "{backend}");
    }
}
