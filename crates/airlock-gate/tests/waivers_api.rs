//! The waivers admin API on a real gate over loopback HTTP: adding, listing and removing waivers, the 90-day
//! expiry rule, the reviewed file staying read-only, the admin role, and persistence across a restart.

use airlock_gate::config::GateConfig;
use serde_json::{Value, json};
use std::path::Path;

const ADMIN: &str = "alk_admin_token_for_the_waiver_tests";
const DEVELOPER: &str = "alk_developer_token_for_the_waiver_tests";

/// A gate config over `dir` with one admin and one developer token and a reviewed waivers file holding one waiver.
fn config(dir: &Path) -> GateConfig {
    let reviewed = dir.join("waivers.toml");
    let expires = (time::OffsetDateTime::now_utc().date() + time::Duration::days(30)).to_string();
    std::fs::write(
        &reviewed,
        format!(
            "[[waiver]]\nid = \"CVE-2014-1402\"\npackage = \"jinja2\"\nexpires = \"{expires}\"\nreason = \"constant templates\"\napprover = \"security@example.com\"\n"
        ),
    )
    .unwrap();
    let text = format!(
        r#"data_dir = {data:?}
listen = "127.0.0.1:0"

[policy]
waivers = {reviewed:?}

[[teams]]
name = "platform"
role = "admin"
token_hashes = ["{admin}"]

[[teams]]
name = "demo"
token_hashes = ["{developer}"]
"#,
        data = dir.join("data"),
        reviewed = reviewed,
        admin = airlock_gate::auth::hash_token(ADMIN),
        developer = airlock_gate::auth::hash_token(DEVELOPER),
    );
    let path = dir.join("gate.toml");
    std::fs::write(&path, text).unwrap();
    let config = GateConfig::load(&path).expect("config loads");
    airlock_gate::init::ensure_keys(&config).expect("keys");
    config
}

struct Gate {
    running: airlock_gate::server::RunningGate,
    url: String,
    http: reqwest::Client,
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.running.server.abort();
        self.running.worker.abort();
    }
}

async fn start(config: GateConfig) -> Gate {
    let running = airlock_gate::server::start(config)
        .await
        .expect("gate starts");
    let url = format!("http://{}/api/v1/waivers", running.addr);
    Gate {
        running,
        url,
        http: reqwest::Client::new(),
    }
}

impl Gate {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.expect("gate answers");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
}

fn in_days(days: i64) -> String {
    (time::OffsetDateTime::now_utc().date() + time::Duration::days(days)).to_string()
}

fn new_waiver(expires: &str) -> Value {
    json!({"id": "PYSEC-2023-74", "package": "requests", "team": "demo", "expires": expires,
           "reason": "the proxy path is not used", "approver": "security@example.com"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_adds_lists_and_removes_waivers_and_they_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let gate = start(config.clone()).await;
    let get = reqwest::Method::GET;

    let (status, listed) = gate.call(get.clone(), "", ADMIN, None).await;
    assert_eq!(status, 200, "{listed}");
    let waivers = listed["waivers"].as_array().unwrap();
    assert_eq!(waivers.len(), 1);
    assert_eq!(waivers[0]["origin"], "file");
    assert_eq!(waivers[0]["active"], true);
    let file_key = waivers[0]["key"].as_str().unwrap().to_string();

    let (status, added) = gate
        .call(
            reqwest::Method::POST,
            "",
            ADMIN,
            Some(new_waiver(&in_days(90))),
        )
        .await;
    assert_eq!(status, 201, "{added}");
    assert_eq!(added["origin"], "api");
    assert_eq!(added["package"], "requests");
    let key = added["key"].as_str().unwrap().to_string();

    let (status, again) = gate
        .call(
            reqwest::Method::POST,
            "",
            ADMIN,
            Some(new_waiver(&in_days(10))),
        )
        .await;
    assert_eq!(status, 409, "{again}");
    assert_eq!(again["code"], "waiver_exists");

    // The reviewed file is changed by review, not through the API.
    let (status, refused) = gate
        .call(
            reqwest::Method::DELETE,
            &format!("/{file_key}"),
            ADMIN,
            None,
        )
        .await;
    assert_eq!(status, 409, "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("remove it there"),
        "{refused}"
    );

    // A restart keeps the API's waiver.
    drop(gate);
    let gate = start(config).await;
    let (_, listed) = gate.call(get.clone(), "", ADMIN, None).await;
    let keys: Vec<&str> = listed["waivers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, [file_key.as_str(), key.as_str()]);

    let (status, removed) = gate
        .call(reqwest::Method::DELETE, &format!("/{key}"), ADMIN, None)
        .await;
    assert_eq!(status, 200, "{removed}");
    let (status, gone) = gate
        .call(reqwest::Method::DELETE, &format!("/{key}"), ADMIN, None)
        .await;
    assert_eq!(status, 404, "{gone}");
    let (_, listed) = gate.call(get, "", ADMIN, None).await;
    assert_eq!(listed["waivers"].as_array().unwrap().len(), 1);

    // The add and the remove are in the audit log (who, what, when, from where), across the restart; the
    // refused add (409) and the refused remove of the file's waiver changed nothing and are not.
    let audit = gate
        .http
        .get(format!("http://{}/api/v1/audit", gate.running.addr))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("audit answers")
        .text()
        .await
        .expect("text");
    let lines: Vec<Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .filter(|l: &Value| l["action"].as_str().unwrap_or("").starts_with("waiver."))
        .collect();
    assert_eq!(lines.len(), 2, "{audit}");
    assert_eq!(
        (lines[0]["action"].as_str(), lines[1]["action"].as_str()),
        (Some("waiver.add"), Some("waiver.remove"))
    );
    for line in &lines {
        assert_eq!(line["target"], key.as_str(), "{line}");
        assert_eq!(line["team"], "platform", "{line}");
        assert_eq!(line["role"], "admin", "{line}");
        assert_eq!(line["source_ip"], "127.0.0.1", "{line}");
        assert!(line["at"].as_str().is_some_and(|t| t.len() >= 20), "{line}");
    }
    let detail = lines[0]["detail"].as_str().unwrap_or("");
    assert!(
        detail.contains("PYSEC-2023-74")
            && detail.contains("requests")
            && detail.contains("security@example.com"),
        "{detail}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_expiry_beyond_90_days_unknown_fields_and_non_admins() {
    let dir = tempfile::tempdir().unwrap();
    let gate = start(config(dir.path())).await;
    let post = reqwest::Method::POST;

    let too_late = in_days(91);
    let (status, body) = gate
        .call(post.clone(), "", ADMIN, Some(new_waiver(&too_late)))
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], "invalid_waiver");
    let message = body["error"].as_str().unwrap();
    assert!(
        message.contains(&format!(
            "field `expires`: {too_late} is more than 90 days away"
        )),
        "{message}"
    );

    let mut typo = new_waiver(&in_days(5));
    typo["expiry"] = json!("2026-12-01");
    let (status, body) = gate.call(post.clone(), "", ADMIN, Some(typo)).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("expiry"), "{body}");

    let mut no_approver = new_waiver(&in_days(5));
    no_approver.as_object_mut().unwrap().remove("approver");
    let (status, body) = gate.call(post.clone(), "", ADMIN, Some(no_approver)).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("approver"),
        "{body}"
    );

    let (status, body) = gate
        .call(post, "", DEVELOPER, Some(new_waiver(&in_days(5))))
        .await;
    assert_eq!(status, 403, "a developer token cannot waive: {body}");
    assert!(
        !dir.path()
            .join("data")
            .join(airlock_gate::server::API_WAIVERS_FILE)
            .exists(),
        "nothing was stored for refused requests"
    );
}
