//! GitHub push webhooks against a real local git repository.

use airlock_cli::api::RunState;
use airlock_e2e::{git_repo_of_example, start_gate};
use serde_json::json;

const SECRET: &str = "webhook-secret-for-tests";

fn push_event(clone_url: &str, commit: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "ref": "refs/heads/main",
        "before": "0000000000000000000000000000000000000000",
        "after": commit,
        "repository": { "full_name": "demo/hello", "clone_url": clone_url },
        "pusher": { "name": "dev" },
    }))
    .unwrap()
}

async fn deliver(url: &str, body: Vec<u8>, signature: &str, delivery: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{url}/api/v1/hooks/github"))
        .header("X-GitHub-Event", "push")
        .header("X-GitHub-Delivery", delivery)
        .header("X-Hub-Signature-256", signature)
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .expect("gate answers")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_push_is_accepted_fetched_with_git_and_built() {
    let gate = start_gate(|c| c.webhooks.github_secret = Some(SECRET.into())).await;
    let repo = tempfile::tempdir().unwrap();
    let commit = git_repo_of_example(repo.path());
    let body = push_event(&format!("file://{}", repo.path().display()), &commit);
    let sig = airlock_gate::auth::sign_github_body(SECRET, &body);

    let resp = deliver(&gate.url, body.clone(), &sig, "delivery-1").await;
    assert_eq!(resp.status(), 202);
    let accepted: serde_json::Value = resp.json().await.unwrap();
    let run_id = accepted["run_id"].as_str().expect("run id").to_string();
    assert_eq!(accepted["status_url"], format!("/api/v1/runs/{run_id}"));

    // A redelivery of the same event does not start a second run.
    let again = deliver(&gate.url, body, &sig, "delivery-1").await;
    assert_eq!(again.status(), 200);
    assert_eq!(
        again.json::<serde_json::Value>().await.unwrap()["run_id"],
        run_id.as_str()
    );

    let client = airlock_cli::client::GateClient::new(&gate.url, &gate.token).expect("client");
    let run = client.wait(&run_id, |_| {}).await.expect("run finishes");
    assert_eq!(run.state, RunState::Published, "{:?}", run.error);
    assert_eq!(run.commit, commit);
    assert_eq!(run.app, "hello");
    assert_eq!(client.runs(None).await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_with_wrong_signature_is_401_and_stores_nothing() {
    let gate = start_gate(|c| c.webhooks.github_secret = Some(SECRET.into())).await;
    let body = push_event(
        "file:///nonexistent",
        "0123456789abcdef0123456789abcdef01234567",
    );
    let forged = airlock_gate::auth::sign_github_body("not-the-secret", &body);
    let resp = deliver(&gate.url, body.clone(), &forged, "d-forged").await;
    assert_eq!(resp.status(), 401);
    let err: serde_json::Value = resp.json().await.unwrap();
    assert!(
        err["error"]
            .as_str()
            .unwrap()
            .contains("X-Hub-Signature-256"),
        "{err}"
    );

    let unsigned = reqwest::Client::new()
        .post(format!("{}/api/v1/hooks/github", gate.url))
        .header("X-GitHub-Event", "push")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 401);

    let client = airlock_cli::client::GateClient::new(&gate.url, &gate.token).expect("client");
    assert!(
        client.runs(None).await.unwrap().is_empty(),
        "a refused delivery stored a run"
    );
    assert!(
        !gate.config.sources_dir().exists()
            || airlock_e2e::files_below(&gate.config.sources_dir()).is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_push_body_is_400_naming_the_problem() {
    let gate = start_gate(|c| c.webhooks.github_secret = Some(SECRET.into())).await;
    let body = br#"{"ref": "refs/heads/main", "after": 42}"#.to_vec();
    let sig = airlock_gate::auth::sign_github_body(SECRET, &body);
    let resp = deliver(&gate.url, body, &sig, "d-bad").await;
    assert_eq!(resp.status(), 400);
    let err: serde_json::Value = resp.json().await.unwrap();
    let message = err["error"].as_str().unwrap();
    assert!(
        message.contains("after"),
        "the message names the field: {message}"
    );

    let client = airlock_cli::client::GateClient::new(&gate.url, &gate.token).expect("client");
    assert!(client.runs(None).await.unwrap().is_empty());
}
