//! The HTTP API of a real gate on loopback: roles, the audit log, git host webhooks, metrics, readiness, the
//! OpenAPI document and server-sent events, on SQLite and on a real PostgreSQL.

mod support;

use airlock_cli::client::{GateClient, SubmitMeta};
use airlock_gate::auth::{generate_token, hash_token};
use airlock_gate::config::{GateConfig, RepositoryConfig, Role, TeamConfig, TokenConfig};
use airlock_gate::server::{self, RunningGate};
use serde_json::Value;

use support::Postgres;

const GITLAB_TOKEN: &str = "gitlab-shared-token";
const GITEA_SECRET: &str = "gitea-shared-secret";

struct Tokens {
    payments: String,
    retail: String,
    operator: String,
    admin: String,
}

struct Gate {
    gate: RunningGate,
    url: String,
    tokens: Tokens,
    _dir: tempfile::TempDir,
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.gate.server.abort();
        self.gate.worker.abort();
    }
}

async fn start(database_url: Option<String>) -> Gate {
    let dir = tempfile::tempdir().expect("temp dir");
    let init = airlock_gate::init::init_data_dir(dir.path(), None)
        .await
        .expect("init data dir");
    let mut config: GateConfig = init.config;
    config.database_url = database_url;
    let tokens = Tokens {
        payments: generate_token(),
        retail: generate_token(),
        operator: generate_token(),
        admin: generate_token(),
    };
    let team = |name: &str, role: Role, token: &str| TeamConfig {
        name: name.into(),
        role,
        token_hashes: vec![hash_token(token)],
        tokens: vec![],
    };
    let mut platform = team("platform", Role::Operator, &tokens.operator);
    platform.tokens.push(TokenConfig {
        name: "alice-admin".into(),
        hash: hash_token(&tokens.admin),
        role: Some(Role::Admin),
    });
    config.teams = vec![
        team("payments", Role::Developer, &tokens.payments),
        team("retail", Role::Developer, &tokens.retail),
        platform,
    ];
    config.webhooks.gitlab_token = Some(GITLAB_TOKEN.into());
    config.webhooks.gitea_secret = Some(GITEA_SECRET.into());
    config.webhooks.repositories = vec![
        RepositoryConfig {
            repository: "acme/hello".into(),
            app: "hello".into(),
            team: "payments".into(),
            branches: vec!["main".into()],
            tags: false,
            clone_url: None,
            fetch_token: None,
            fetch_user: None,
            ssh_key_file: None,
            ssh_known_hosts: None,
        },
        RepositoryConfig {
            repository: "acme/shop".into(),
            app: "shop".into(),
            team: "retail".into(),
            branches: vec!["main".into(), "release".into()],
            tags: true,
            clone_url: None,
            fetch_token: None,
            fetch_user: None,
            ssh_key_file: None,
            ssh_known_hosts: None,
        },
    ];
    let gate = server::start(config).await.expect("gate starts");
    let url = format!("http://{}", gate.addr);
    Gate {
        gate,
        url,
        tokens,
        _dir: dir,
    }
}

/// Submits a tree with no airlock.toml: stored and queued, then failed at fetch (fast, no build).
async fn submit(gate: &Gate, token: &str) -> String {
    let src = tempfile::tempdir().expect("src");
    std::fs::write(src.path().join("README"), "not an app\n").expect("write");
    let packed = airlock_cli::pack::pack_dir(src.path()).expect("pack");
    let client = GateClient::new(&gate.url, token).expect("client");
    let meta = SubmitMeta {
        repository: "acme/hello".into(),
        commit: "0".repeat(40),
        branch: "main".into(),
        author: "dev".into(),
        app: None,
        commit_time: None,
    };
    client
        .submit(&packed, &meta)
        .await
        .expect("accepted")
        .run_id
}

/// Submits a tree whose airlock.toml declares `app` of `team`; returns the HTTP status and the error body.
async fn submit_app(gate: &Gate, token: &str, app: &str, team: &str) -> (u16, Value) {
    let src = tempfile::tempdir().expect("src");
    std::fs::write(
        src.path().join("airlock.toml"),
        format!("[app]\nname = \"{app}\"\nteam = \"{team}\"\n"),
    )
    .expect("write");
    let packed = airlock_cli::pack::pack_dir(src.path()).expect("pack");
    let part = reqwest::multipart::Part::bytes(packed.tarball.clone())
        .file_name("source.tar.gz")
        .mime_str("application/gzip")
        .expect("mime");
    let form = reqwest::multipart::Form::new()
        .text("repository", "acme/whatever")
        .text("commit", "0".repeat(40))
        .part("source", part);
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v1/submissions", gate.url))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .expect("request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Every file under the gate's stored sources (to show a refused submission keeps nothing).
fn stored_sources(gate: &Gate) -> Vec<String> {
    std::fs::read_dir(gate._dir.path().join("sources"))
        .map(|rd| {
            rd.filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

async fn get(url: &str, token: Option<&str>) -> reqwest::Response {
    let mut req = reqwest::Client::new().get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.expect("request")
}

async fn run_ids(gate: &Gate, token: &str, query: &str) -> (u16, Vec<String>) {
    let resp = get(&format!("{}/api/v1/runs{query}", gate.url), Some(token)).await;
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.expect("json");
    let ids = body["runs"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r["id"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    (status, ids)
}

fn gitlab_push(project: &str, git_ref: &str) -> String {
    serde_json::json!({
        "object_kind": if git_ref.starts_with("refs/tags/") { "tag_push" } else { "push" },
        "ref": git_ref,
        "after": "1111111111111111111111111111111111111111",
        "user_username": "jsmith",
        "project": { "git_http_url": format!("http://127.0.0.1:9/{project}.git"), "path_with_namespace": project }
    })
    .to_string()
}

async fn gitlab(
    gate: &Gate,
    event: &str,
    uuid: &str,
    token: &str,
    body: &str,
) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/api/v1/hooks/gitlab", gate.url))
        .header("content-type", "application/json")
        .header("x-gitlab-event", event)
        .header("x-gitlab-event-uuid", uuid)
        .header("x-gitlab-token", token)
        .body(body.to_string())
        .send()
        .await
        .expect("request")
}

async fn gitea(gate: &Gate, delivery: &str, secret: &str, body: &str) -> reqwest::Response {
    let sig = airlock_gate::auth::sign_github_body(secret, body.as_bytes());
    reqwest::Client::new()
        .post(format!("{}/api/v1/hooks/gitea", gate.url))
        .header("content-type", "application/json")
        .header("x-gitea-event", "push")
        .header("x-gitea-delivery", delivery)
        .header("x-gitea-signature", sig.trim_start_matches("sha256="))
        .body(body.to_string())
        .send()
        .await
        .expect("request")
}

async fn audit_lines(gate: &Gate) -> Vec<Value> {
    let resp = get(
        &format!("{}/api/v1/audit", gate.url),
        Some(&gate.tokens.admin),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/x-ndjson");
    resp.text()
        .await
        .expect("text")
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect()
}

async fn roles_and_audit(gate: &Gate) {
    let t = &gate.tokens;
    let pay = submit(gate, &t.payments).await;
    let ret = submit(gate, &t.retail).await;

    // A developer sees only its team's runs; operators see all.
    assert_eq!(
        run_ids(gate, &t.payments, "").await,
        (200, vec![pay.clone()])
    );
    assert_eq!(run_ids(gate, &t.retail, "").await, (200, vec![ret.clone()]));
    let (status, all) = run_ids(gate, &t.operator, "").await;
    assert_eq!((status, all.len()), (200, 2));
    assert_eq!(
        run_ids(gate, &t.operator, "?team=retail").await,
        (200, vec![ret.clone()])
    );
    assert_eq!(run_ids(gate, &t.payments, "?team=retail").await.0, 403);
    let bad_state = get(
        &format!("{}/api/v1/runs?state=shipped", gate.url),
        Some(&t.operator),
    )
    .await;
    assert_eq!(bad_state.status(), 400);
    let msg: Value = bad_state.json().await.expect("json");
    assert!(
        msg["error"].as_str().unwrap_or("").contains("published"),
        "{msg}"
    );

    // Another team's run is invisible, and cannot be cancelled.
    assert_eq!(
        get(
            &format!("{}/api/v1/runs/{ret}", gate.url),
            Some(&t.payments)
        )
        .await
        .status(),
        404
    );
    assert_eq!(
        get(
            &format!("{}/api/v1/runs/{ret}", gate.url),
            Some(&t.operator)
        )
        .await
        .status(),
        200
    );
    let cancel = reqwest::Client::new()
        .post(format!("{}/api/v1/runs/{ret}/cancel", gate.url))
        .bearer_auth(&t.payments)
        .send()
        .await
        .expect("cancel");
    assert_eq!(cancel.status(), 404);

    // Admin-only routes.
    for token in [&t.payments, &t.operator] {
        let resp = get(&format!("{}/api/v1/audit", gate.url), Some(token)).await;
        assert_eq!(resp.status(), 403);
        let body: Value = resp.json().await.expect("json");
        assert!(
            body["error"].as_str().unwrap_or("").contains("role admin"),
            "{body}"
        );
        assert_eq!(
            get(&format!("{}/api/v1/waivers", gate.url), Some(token))
                .await
                .status(),
            403
        );
    }
    assert_eq!(
        get(&format!("{}/api/v1/waivers", gate.url), Some(&t.admin))
            .await
            .status(),
        200
    );

    // A developer's submission for another team's app is refused at submit time with a sentence, whether its
    // airlock.toml names the other team or claims the app (mapped to payments in the config) for its own team;
    // nothing is stored. Its own team's app is accepted.
    let sources_before = stored_sources(gate);
    let (status, body) = submit_app(gate, &t.retail, "hello", "payments").await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["code"], "wrong_team");
    let msg = body["error"].as_str().unwrap_or("");
    assert!(
        msg.contains(r#"belongs to team "payments""#)
            && msg.contains("submit with a token of team"),
        "{msg}"
    );
    let (status, body) = submit_app(gate, &t.retail, "hello", "retail").await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or("")
            .contains("the platform config maps it to that team"),
        "{body}"
    );
    assert_eq!(stored_sources(gate), sources_before);
    assert_eq!(run_ids(gate, &t.retail, "").await, (200, vec![ret.clone()]));
    let (status, body) = submit_app(gate, &t.retail, "shop", "retail").await;
    assert_eq!(status, 202, "{body}");
    let shop = body["run_id"].as_str().expect("run id").to_string();

    // Every submission is in the audit log: who, what, on what, from where; refused ones too.
    let lines = audit_lines(gate).await;
    let refused: Vec<_> = lines
        .iter()
        .filter(|l| l["action"] == "run.submit" && l["outcome"] == "refused")
        .collect();
    assert_eq!(refused.len(), 2, "{lines:?}");
    assert_eq!(
        (refused[0]["actor"].as_str(), refused[0]["target"].as_str()),
        (Some("retail token"), Some("hello"))
    );
    let submits: Vec<_> = lines
        .iter()
        .filter(|l| l["action"] == "run.submit" && l["outcome"] == "accepted")
        .filter(|l| l["target"] != shop.as_str())
        .collect();
    assert_eq!(submits.len(), 2, "{lines:?}");
    assert_eq!(submits[0]["team"], "payments");
    assert_eq!(submits[0]["target"], pay.as_str());
    assert_eq!(submits[0]["source_ip"], "127.0.0.1");
    assert_eq!(submits[1]["actor"], "retail token");
    let chain: Vec<airlock_gate::audit::AuditRecord> = lines
        .iter()
        .map(|l| serde_json::from_value(l.clone()).expect("record"))
        .collect();
    airlock_gate::audit::verify_chain(&chain, None).expect("the exported chain verifies");
}

async fn webhooks_and_metrics(gate: &Gate) {
    let push = gitlab_push("acme/hello", "refs/heads/main");
    // Wrong token, missing token, wrong content type: precise 4xx, nothing stored.
    assert_eq!(
        gitlab(gate, "Push Hook", "u1", "wrong", &push)
            .await
            .status(),
        401
    );
    let unsigned = reqwest::Client::new()
        .post(format!("{}/api/v1/hooks/gitlab", gate.url))
        .header("content-type", "application/json")
        .header("x-gitlab-event", "Push Hook")
        .body(push.clone())
        .send()
        .await
        .expect("request");
    assert_eq!(unsigned.status(), 401);
    let form = reqwest::Client::new()
        .post(format!("{}/api/v1/hooks/gitlab", gate.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-gitlab-event", "Push Hook")
        .header("x-gitlab-token", GITLAB_TOKEN)
        .body(push.clone())
        .send()
        .await
        .expect("request");
    assert_eq!(form.status(), 415);

    // A push to a configured branch starts one run; its redelivery points at the same run.
    let first = gitlab(gate, "Push Hook", "u1", GITLAB_TOKEN, &push).await;
    assert_eq!(first.status(), 202);
    let run: Value = first.json().await.expect("json");
    let again = gitlab(gate, "Push Hook", "u1", GITLAB_TOKEN, &push).await;
    assert_eq!(again.status(), 200);
    let same: Value = again.json().await.expect("json");
    assert_eq!(run["run_id"], same["run_id"]);

    // The mapped app and team are on the run at once; developers of another team do not see it.
    let id = run["run_id"].as_str().expect("run id");
    let view: Value = get(
        &format!("{}/api/v1/runs/{id}", gate.url),
        Some(&gate.tokens.payments),
    )
    .await
    .json()
    .await
    .expect("json");
    assert_eq!(
        (view["app"].as_str(), view["team"].as_str()),
        (Some("hello"), Some("payments"))
    );
    assert_eq!(
        get(
            &format!("{}/api/v1/runs/{id}", gate.url),
            Some(&gate.tokens.retail)
        )
        .await
        .status(),
        404
    );

    // Other branches, tags without `tags = true`, other events and unmapped repositories: 202, no run.
    for (event, body) in [
        ("Push Hook", gitlab_push("acme/hello", "refs/heads/feature")),
        (
            "Tag Push Hook",
            gitlab_push("acme/hello", "refs/tags/v1.0.0"),
        ),
        ("Issue Hook", r#"{"object_kind":"issue"}"#.to_string()),
        ("Push Hook", gitlab_push("acme/unknown", "refs/heads/main")),
    ] {
        let resp = gitlab(
            gate,
            event,
            &format!("x-{event}-{}", body.len()),
            GITLAB_TOKEN,
            &body,
        )
        .await;
        assert_eq!(resp.status(), 202, "{event}");
        let why: Value = resp.json().await.expect("json");
        assert!(why["ignored"].is_string(), "{event}: {why}");
        if body.contains("acme/unknown") {
            // An unmapped repository is told so, with what the operator does about it.
            let text = why["ignored"].as_str().unwrap_or("");
            assert!(
                text.contains("acme/unknown is not mapped")
                    && text.contains("[[webhooks.repositories]]"),
                "{text}"
            );
        }
    }

    // Gitea: the HMAC must match; a tag push starts a run where tags are configured.
    let tag = serde_json::json!({
        "ref": "refs/tags/v2", "after": "2222222222222222222222222222222222222222",
        "repository": { "clone_url": "http://127.0.0.1:9/acme/shop.git", "full_name": "acme/shop" },
        "pusher": { "login": "ann" }
    })
    .to_string();
    assert_eq!(
        gitea(gate, "g1", "not-the-secret", &tag).await.status(),
        401
    );
    let accepted = gitea(gate, "g1", GITEA_SECRET, &tag).await;
    assert_eq!(accepted.status(), 202);
    assert_eq!(gitea(gate, "g1", GITEA_SECRET, &tag).await.status(), 200);

    // Two runs were stored, and every accepted delivery is audited as the webhook's.
    let (_, all) = run_ids(gate, &gate.tokens.operator, "?limit=1000").await;
    let webhook_runs = {
        let mut n = 0;
        for id in &all {
            let v: Value = get(
                &format!("{}/api/v1/runs/{id}", gate.url),
                Some(&gate.tokens.operator),
            )
            .await
            .json()
            .await
            .expect("json");
            n += usize::from(v["author"] == "jsmith" || v["author"] == "ann");
        }
        n
    };
    assert_eq!(webhook_runs, 2);
    let pushes: Vec<_> = audit_lines(gate)
        .await
        .into_iter()
        .filter(|l| l["action"] == "webhook.push")
        .collect();
    assert_eq!(pushes.len(), 2);
    assert_eq!(pushes[0]["actor"], "webhook:gitlab");

    // Metrics: webhook results by host, runs by state adding up to every stored run, the queue depth.
    let metrics = get(&format!("{}/metrics", gate.url), None)
        .await
        .text()
        .await
        .expect("text");
    for line in [
        r#"airlock_webhook_deliveries_total{host="gitlab",result="accepted"} 1"#,
        r#"airlock_webhook_deliveries_total{host="gitlab",result="duplicate"} 1"#,
        r#"airlock_webhook_deliveries_total{host="gitlab",result="ignored"} 4"#,
        r#"airlock_webhook_deliveries_total{host="gitlab",result="bad_signature"} 1"#,
        r#"airlock_webhook_deliveries_total{host="gitlab",result="wrong_content_type"} 1"#,
        r#"airlock_webhook_deliveries_total{host="gitea",result="accepted"} 1"#,
    ] {
        assert!(metrics.contains(line), "missing {line} in\n{metrics}");
    }
    let total: i64 = metrics
        .lines()
        .filter(|l| l.starts_with("airlock_runs{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<i64>().ok())
        .sum();
    assert_eq!(total, all.len() as i64, "{metrics}");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("airlock_queue_depth ")),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_audit_webhooks_and_metrics_on_sqlite() {
    let gate = start(None).await;
    roles_and_audit(&gate).await;
    webhooks_and_metrics(&gate).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_audit_webhooks_and_metrics_on_postgres() {
    let pg = Postgres::start();
    let gate = start(Some(pg.database("api"))).await;
    roles_and_audit(&gate).await;
    webhooks_and_metrics(&gate).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_route_exists_with_its_method() {
    let gate = start(None).await;
    let doc: Value = get(&format!("{}/api/v1/openapi.json", gate.url), None)
        .await
        .json()
        .await
        .expect("the OpenAPI document is JSON");
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().expect("paths");
    assert!(paths.len() >= 14, "{}", paths.len());
    let client = reqwest::Client::new();
    for (path, ops) in paths {
        let concrete = path
            .replace("{id}", "nonexistent")
            .replace("{key}", "nonexistent");
        for method in ops.as_object().expect("operations").keys() {
            let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let resp = client
                .request(m, format!("{}{concrete}", gate.url))
                .send()
                .await
                .expect("request");
            let status = resp.status().as_u16();
            let body = resp.text().await.unwrap_or_default();
            assert_ne!(status, 405, "{method} {path} is documented but not routed");
            assert!(
                !body.contains("no such API route"),
                "{method} {path} is documented but falls through to the 404 fallback"
            );
            let documented: Vec<&String> = ops[method]["responses"]
                .as_object()
                .expect("responses")
                .keys()
                .collect();
            assert!(
                documented.iter().any(|c| c.as_str() == status.to_string()),
                "{method} {path} answered {status}, which is not documented ({documented:?})"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_wrong_content_type_and_run_events() {
    let gate = start(None).await;
    assert_eq!(
        get(&format!("{}/readyz", gate.url), None).await.status(),
        200
    );
    let json_submit = reqwest::Client::new()
        .post(format!("{}/api/v1/submissions", gate.url))
        .bearer_auth(&gate.tokens.payments)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .expect("request");
    assert_eq!(json_submit.status(), 415);
    let body: Value = json_submit.json().await.expect("json");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or("")
            .contains("multipart/form-data"),
        "{body}"
    );

    // Server-sent events follow the run to its end.
    let id = submit(&gate, &gate.tokens.payments).await;
    let text = get(
        &format!("{}/api/v1/runs/{id}/events", gate.url),
        Some(&gate.tokens.payments),
    )
    .await
    .text()
    .await
    .expect("the stream ends when the run does");
    assert!(text.contains("event: state\ndata: "), "{text}");
    assert!(
        text.contains("event: step\ndata: {\"name\":\"fetch\""),
        "{text}"
    );
    let end = text
        .split("event: end\ndata: ")
        .nth(1)
        .expect("an end event");
    let last: Value =
        serde_json::from_str(end.lines().next().unwrap_or("")).expect("end data is the run");
    assert_eq!(
        last["state"], "failed",
        "a tree without airlock.toml fails at fetch: {last}"
    );
    assert!(
        get(
            &format!("{}/api/v1/runs/{id}/events", gate.url),
            Some(&gate.tokens.retail)
        )
        .await
        .status()
            == 404,
        "another team cannot follow the run"
    );
}
