//! The web UI in a real headless Chromium driven over WebDriver (chromium-driver from Debian, installed by
//! scripts/setup): sign in with a token, list runs, open a run, and take a screenshot of it.

use airlock_cli::client::{GateClient, SubmitMeta};
use base64::Engine as _;
use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};

use airlock_testkit::tools::free_port;

struct Driver {
    child: Child,
    profile: String,
    url: String,
    http: reqwest::Client,
    session: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Chromium outlives its driver when the session was not ended (a failed assertion): stop the browser
        // processes of this test's own profile, by pid.
        if let Ok(out) = Command::new("pgrep")
            .args(["-f", &format!("--user-data-dir={}", self.profile)])
            .output()
        {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").arg(pid).status();
            }
        }
    }
}

impl Driver {
    async fn start(profile: &std::path::Path) -> Driver {
        let port = free_port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver is missing: run scripts/setup (apt-get install chromium chromium-driver)");
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let mut ready = false;
        for _ in 0..100 {
            if let Ok(r) = http.get(format!("{url}/status")).send().await
                && r.status().is_success()
            {
                ready = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(ready, "chromedriver did not answer on {url}");
        let caps = json!({ "capabilities": { "alwaysMatch": { "browserName": "chrome",
            "goog:chromeOptions": { "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=1280,900",
                format!("--user-data-dir={}", profile.display())
            ] } } } });
        let mut d = Driver {
            child,
            profile: profile.display().to_string(),
            url,
            http,
            session: String::new(),
        };
        let created = d.call("POST", "/session", caps).await;
        d.session = created["sessionId"]
            .as_str()
            .expect("session id")
            .to_string();
        d
    }

    async fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let url = if path == "/session" {
            format!("{}/session", self.url)
        } else {
            format!("{}/session/{}{path}", self.url, self.session)
        };
        let req = match method {
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            _ => self.http.post(url).json(&body),
        };
        let v: Value = req
            .send()
            .await
            .expect("webdriver call")
            .json()
            .await
            .expect("json");
        assert!(
            v["value"]["error"].is_null(),
            "webdriver {method} {path}: {v}"
        );
        v.get("sessionId")
            .map(|_| v.clone())
            .unwrap_or_else(|| v["value"].clone())
    }

    async fn find(&self, css: &str) -> String {
        let v = self
            .call(
                "POST",
                "/element",
                json!({"using": "css selector", "value": css}),
            )
            .await;
        v.as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .expect("element id")
            .to_string()
    }

    async fn source(&self) -> String {
        self.call("GET", "/source", Value::Null)
            .await
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// The page source once it contains `text` (a click's navigation may still be loading when it returns).
    async fn source_with(&self, text: &str) -> String {
        let mut last = String::new();
        for _ in 0..100 {
            last = self.source().await;
            if last.contains(text) {
                return last;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("the page never showed {text:?}; last source:\n{last}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signs_in_lists_runs_and_shows_a_run_in_headless_chromium() {
    let dir = tempfile::tempdir().expect("temp dir");
    let init = airlock_gate::init::init_data_dir(dir.path(), None)
        .await
        .expect("init");
    let gate = airlock_gate::server::start(init.config)
        .await
        .expect("gate");
    let base = format!("http://{}", gate.addr);

    // One run that fails at fetch (no airlock.toml), so its page has a state, steps and an error.
    let src = tempfile::tempdir().expect("src");
    std::fs::write(src.path().join("README"), "<b>not</b> an app\n").expect("write");
    let packed = airlock_cli::pack::pack_dir(src.path()).expect("pack");
    let client = GateClient::new(&base, &init.token).expect("client");
    let meta = SubmitMeta {
        repository: "acme/<script>alert(1)</script>".into(),
        commit: "a".repeat(40),
        branch: "main".into(),
        author: "dev".into(),
        app: None,
        commit_time: None,
    };
    let run = client
        .submit(&packed, &meta)
        .await
        .expect("accepted")
        .run_id;
    let ended = client.wait(&run, |_| {}).await.expect("run ends");
    assert_eq!(ended.state.as_str(), "failed");

    let profile = tempfile::tempdir().expect("profile");
    let d = Driver::start(profile.path()).await;
    // Signed out, the runs page sends the browser to the sign-in form.
    d.call("POST", "/url", json!({"url": format!("{base}/ui/runs")}))
        .await;
    let here = d.call("GET", "/url", Value::Null).await;
    assert_eq!(here.as_str(), Some(format!("{base}/ui/login").as_str()));
    let field = d.find("#token").await;
    d.call(
        "POST",
        &format!("/element/{field}/value"),
        json!({"text": init.token}),
    )
    .await;
    let button = d.find("#signin").await;
    d.call("POST", &format!("/element/{button}/click"), json!({}))
        .await;

    let list = d.source_with("<h1>Runs</h1>").await;
    assert!(
        list.contains(&format!("/ui/runs/{run}")),
        "the run is listed: {list}"
    );
    assert!(!list.contains("<script>alert"), "submitted text is escaped");

    let link = d.find(&format!("a[href='/ui/runs/{run}']")).await;
    d.call("POST", &format!("/element/{link}/click"), json!({}))
        .await;
    let page = d.source_with(&format!("Run <code>{run}</code>")).await;
    assert!(
        page.contains(r#"<span class="state failed">failed</span>"#),
        "{page}"
    );
    assert!(page.contains("<td>fetch</td>"), "{page}");
    assert!(page.contains("fetch failed:"), "{page}");

    let shot = d.call("GET", "/screenshot", Value::Null).await;
    let png = base64::engine::general_purpose::STANDARD
        .decode(shot.as_str().expect("base64 screenshot"))
        .expect("screenshot decodes");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "the screenshot is a PNG");
    let width = u32::from_be_bytes([png[16], png[17], png[18], png[19]]);
    let height = u32::from_be_bytes([png[20], png[21], png[22], png[23]]);
    assert_eq!(
        (width, height > 300),
        (1280, true),
        "a full window was rendered"
    );
    // A blank page compresses to almost nothing; a page with a table and text does not.
    assert!(
        png.len() > 20_000,
        "the screenshot has content ({} bytes)",
        png.len()
    );
    let out = std::env::temp_dir().join("airlock-ui-run.png");
    let _ = std::fs::write(&out, &png);
    eprintln!("screenshot: {}", out.display());

    // The apps page answers for the signed-in browser.
    d.call("POST", "/url", json!({"url": format!("{base}/ui/apps")}))
        .await;
    d.source_with("<h1>Apps</h1>").await;
    d.call("DELETE", "", Value::Null).await;
    gate.server.abort();
    gate.worker.abort();
}
