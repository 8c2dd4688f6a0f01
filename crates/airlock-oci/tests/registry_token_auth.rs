//! Bearer-token authentication against a real token-auth registry: Debian's `docker-registry`
//! (distribution 2.8) configured with `auth: token:`, whose tokens come from `token_server.py` (an ES256 JWT
//! issuer following distribution's token spec, started here with the checkers' venv Python). The registry
//! verifies every token against the issuer's certificate, so what passes here passes a real auth service;
//! skopeo, sharing no code with airlock, checks what was pushed with the same credentials.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use airlock_oci::{
    Compression, Digest, Error, ImageConfig, LayerBuilder, OciLayout, RegistryAuth, RegistryStore,
    Store, copy_image, read_image,
};
use airlock_testkit::Registry;
use airlock_testkit::image::layers_image;
use common::{Proxy, skopeo, start_proxy};

const USER: &str = "gate";
const PASSWORD: &str = "t0ken-s3cret";
const SERVICE: &str = "airlock-test";
const ISSUER: &str = "airlock-test-issuer";

/// `token_server.py` running for one test: killed (and its stdin closed) when dropped.
struct TokenServer {
    child: Child,
    port: u16,
    cert: PathBuf,
    http: reqwest::Client,
}

/// What the token server counted: tokens issued per scope list, refusals per reason.
#[derive(serde::Deserialize, Debug, Clone, PartialEq)]
struct Stats {
    issued: BTreeMap<String, u64>,
    refused: BTreeMap<String, u64>,
}

impl Stats {
    /// Tokens issued per set of scopes, with each scope's actions sorted: the registry lists the actions
    /// and the scopes of a challenge in no fixed order (`push,pull` or `pull,push`), and they are one scope.
    fn per_scope(&self) -> BTreeMap<BTreeSet<String>, u64> {
        let mut out = BTreeMap::new();
        for (scopes, n) in &self.issued {
            *out.entry(normalise(scopes)).or_default() += n;
        }
        out
    }

    /// All tokens issued.
    fn total(&self) -> u64 {
        self.issued.values().sum()
    }

    fn refused(&self, reason: &str) -> u64 {
        self.refused.get(reason).copied().unwrap_or(0)
    }
}

/// `repository:b:push,pull repository:a:pull` → {`repository:a:pull`, `repository:b:pull,push`}.
fn normalise(scopes: &str) -> BTreeSet<String> {
    scopes
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(|scope| match scope.rsplit_once(':') {
            Some((resource, actions)) => {
                let mut actions: Vec<&str> = actions.split(',').collect();
                actions.sort_unstable();
                format!("{resource}:{}", actions.join(","))
            }
            None => scope.to_string(),
        })
        .collect()
}

fn scopes(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

impl TokenServer {
    /// Starts the token server with its certificate in `dir`, its tokens valid for `expires_in` seconds
    /// after they are issued (as the server writes `exp`); fails (with the install hint) when the checkers'
    /// venv lacks `cryptography`.
    fn start(dir: &Path, expires_in: i64) -> TokenServer {
        let python = airlock_testkit::tools::python_importing(&["cryptography"], "cryptography");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/token_server.py");
        let mut child = Command::new(python)
            .arg(&script)
            .args([
                dir.to_str().expect("a UTF-8 temp dir"),
                USER,
                PASSWORD,
                SERVICE,
                ISSUER,
            ])
            .env("TOKEN_EXPIRES_IN", expires_in.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting token_server.py");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("piped stdout");
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .expect("reading the token server's port");
        let port = match line.trim().parse() {
            Ok(port) => port,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "token_server.py printed {line:?} instead of its port (its stderr is above)"
                );
            }
        };
        TokenServer {
            child,
            port,
            cert: dir.join("token-cert.pem"),
            http: reqwest::Client::new(),
        }
    }

    fn realm(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port)
    }

    async fn stats(&self) -> Stats {
        let body = self
            .http
            .get(format!("http://127.0.0.1:{}/stats", self.port))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        serde_json::from_slice(&body).unwrap()
    }

    /// A token for `scope`, asked for with the test user's credentials (as `docker login` + a script would).
    async fn token(&self, scope: &str) -> String {
        let response = self
            .http
            .get(self.realm())
            .query(&[("service", SERVICE), ("scope", scope)])
            .basic_auth(USER, Some(PASSWORD))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{}", response.status());
        let body: serde_json::Value =
            serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
        body["token"].as_str().unwrap().to_string()
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A token server and a registry that trusts only its tokens.
struct TokenRegistry {
    registry: Registry,
    tokens: TokenServer,
    _dir: tempfile::TempDir,
}

impl TokenRegistry {
    /// Starts both, or `None` (after a `SKIPPED` note) when `docker-registry` is not installed.
    fn start() -> Option<TokenRegistry> {
        TokenRegistry::start_expiring(300)
    }

    /// [`TokenRegistry::start`] with tokens whose `exp` is `expires_in` seconds after they are issued.
    fn start_expiring(expires_in: i64) -> Option<TokenRegistry> {
        if !Registry::installed() {
            eprintln!(
                "SKIPPED: docker-registry is not installed (apt-get install -y docker-registry)"
            );
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let tokens = TokenServer::start(dir.path(), expires_in);
        let extra = format!(
            "auth: {{ token: {{ realm: \"{}\", service: {SERVICE}, issuer: {ISSUER}, rootcertbundle: {} }} }}\n",
            tokens.realm(),
            tokens.cert.display()
        );
        let registry = Registry::try_start_with(&extra)?;
        Some(TokenRegistry {
            registry,
            tokens,
            _dir: dir,
        })
    }

    fn store(&self, host: &str, repository: &str, auth: RegistryAuth) -> RegistryStore {
        RegistryStore::new(host, repository, auth, true).unwrap()
    }
}

fn basic() -> RegistryAuth {
    RegistryAuth::Basic(USER.into(), PASSWORD.into())
}

/// A `layers`-layer gzip image tagged `tag` in `layout`; `seed` makes its layers (and digest) its own.
async fn image(layout: &OciLayout, tag: &str, seed: &str, layers: usize) -> Digest {
    let built: Vec<_> = (0..layers)
        .map(|i| {
            let mut b = LayerBuilder::new(0);
            b.add_file(
                &format!("/app/{seed}-{i}.txt"),
                0o644,
                0,
                0,
                format!("{seed} layer {i}")
                    .repeat(100 * (i + 1))
                    .into_bytes(),
            )
            .unwrap();
            b.finish(Compression::Gzip).unwrap()
        })
        .collect();
    let mut config = ImageConfig::new("amd64", "linux");
    config.config.cmd = Some(vec![format!("/app/{seed}")]);
    let refs: Vec<_> = built.iter().collect();
    layers_image(layout, config, &refs, Some(tag)).await
}

/// The digest skopeo reads for `reference`, logging in with the test user.
fn skopeo_digest(reference: &str) -> String {
    let out = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--creds",
        &format!("{USER}:{PASSWORD}"),
        &format!("docker://{reference}"),
    ]);
    let inspect: serde_json::Value = serde_json::from_str(&out).unwrap();
    inspect["Digest"].as_str().unwrap().to_string()
}

/// Registry requests the proxy forwarded whose request line starts with `prefix` (e.g. `PUT /v2/a/blobs/`).
fn requests(proxy: &Proxy, prefix: &str) -> usize {
    proxy
        .requests
        .lock()
        .unwrap()
        .iter()
        .filter(|line| line.starts_with(prefix))
        .count()
}

#[tokio::test]
async fn basic_credentials_are_exchanged_for_tokens_and_skopeo_reads_what_was_pushed() {
    let Some(env) = TokenRegistry::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let layout = OciLayout::create(&dir.path().join("src")).unwrap();
    let digest = image(&layout, "v1", "one", 3).await;
    let host = env.registry.host.clone();
    let store = env.store(&host, "team/app", basic());

    assert_eq!(
        copy_image(&layout, &store, "v1", Some("v1")).await.unwrap(),
        digest
    );
    assert_eq!(
        copy_image(&layout, &store, "v1", Some("stable"))
            .await
            .unwrap(),
        digest
    );
    let tokens = env.tokens.stats().await;
    assert!(
        tokens.total() >= 1,
        "the push asked for no token: {tokens:?}"
    );

    assert_eq!(
        store.list_tags().await.unwrap(),
        vec!["stable".to_string(), "v1".to_string()]
    );
    let read = read_image(&store, "v1").await.unwrap();
    assert_eq!(read.digest, digest);
    assert_eq!(read.manifest.layers.len(), 3);
    assert_eq!(read.config.config.cmd, Some(vec!["/app/one".to_string()]));
    for layer in &read.manifest.layers {
        // Every layer reads back verified against its digest.
        assert_eq!(
            store.get_blob(&layer.digest).await.unwrap().len() as u64,
            layer.size
        );
    }

    // A fresh store (a new process, say) reads with tokens of its own.
    let reader = env.store(&host, "team/app", basic());
    let back = OciLayout::create(&dir.path().join("back")).unwrap();
    assert_eq!(
        copy_image(&reader, &back, "stable", Some("stable"))
            .await
            .unwrap(),
        digest
    );

    // skopeo does its own token dance with the same user and sees the same image.
    assert_eq!(
        skopeo_digest(&format!("{host}/team/app:v1")),
        digest.as_str()
    );
    assert_eq!(
        skopeo_digest(&format!("{host}/team/app:stable")),
        digest.as_str()
    );
}

#[tokio::test]
async fn tokens_are_asked_for_once_per_scope_not_per_blob_or_manifest() {
    let Some(env) = TokenRegistry::start() else {
        return;
    };
    let proxy = start_proxy(&env.registry.host, vec![]).await;
    let dir = tempfile::tempdir().unwrap();
    let layout = OciLayout::create(&dir.path().join("src")).unwrap();
    // More blobs than a copy moves at once: the first requests all meet the challenge together.
    let first = image(&layout, "first", "first", 7).await;
    let second = image(&layout, "second", "second", 5).await;
    let store = env.store(&proxy.host, "app", basic());

    assert_eq!(
        copy_image(&layout, &store, "first", Some("first"))
            .await
            .unwrap(),
        first
    );
    let after_first = env.tokens.stats().await;
    let blob_puts = requests(&proxy, "PUT /v2/app/blobs/uploads/");
    assert_eq!(blob_puts, 8, "7 layers and a config uploaded");
    for (scope, n) in after_first.per_scope() {
        assert_eq!(
            n, 1,
            "{scope:?} asked for {n} times in one copy of 8 blobs: {after_first:?}"
        );
    }
    assert!(
        after_first
            .per_scope()
            .contains_key(&scopes(&["repository:app:pull,push"])),
        "{after_first:?}"
    );

    // Another image to the same store: the token it holds covers it.
    assert_eq!(
        copy_image(&layout, &store, "second", Some("second"))
            .await
            .unwrap(),
        second
    );
    assert_eq!(read_image(&store, "second").await.unwrap().digest, second);
    assert_eq!(
        store.list_tags().await.unwrap(),
        vec!["first".to_string(), "second".to_string()]
    );
    let after_second = env.tokens.stats().await;
    assert_eq!(requests(&proxy, "PUT /v2/app/blobs/uploads/"), 8 + 6);
    let before = after_first.per_scope();
    for (scope, n) in after_second.per_scope() {
        let more = n - before.get(&scope).copied().unwrap_or(0);
        assert!(
            more <= 1,
            "{scope:?} asked for {more} more times for a second image: {after_second:?}"
        );
    }
    eprintln!(
        "{} token requests for {} registry requests",
        after_second.total(),
        requests(&proxy, "")
    );
    assert_eq!(after_second.refused, BTreeMap::new());
}

#[tokio::test]
async fn anonymous_and_wrong_password_pushes_are_refused_and_the_password_never_shows() {
    let Some(env) = TokenRegistry::start() else {
        return;
    };
    let host = env.registry.host.clone();
    let dir = tempfile::tempdir().unwrap();
    let layout = OciLayout::create(&dir.path().join("src")).unwrap();
    let digest = image(&layout, "v1", "refused", 2).await;

    let anonymous = env.store(&host, "app", RegistryAuth::Anonymous);
    match copy_image(&layout, &anonymous, "v1", Some("v1")).await {
        Err(Error::Registry { store, message }) => {
            eprintln!("anonymous push refused: {store}: {message}");
            assert!(store.contains(&host), "{store}: {message}");
            assert!(message.contains("401"), "{message}");
        }
        other => panic!("anonymous push to a token registry: {other:?}"),
    }
    assert!(env.tokens.stats().await.refused("anonymous") >= 1);

    let wrong_password = "wr0ng-pw-must-not-leak";
    let wrong = env.store(
        &host,
        "app",
        RegistryAuth::Basic(USER.into(), wrong_password.into()),
    );
    let err = copy_image(&layout, &wrong, "v1", Some("v1"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Registry { store, .. } if store.contains(&host)),
        "{err:?}"
    );
    assert!(!err.to_string().contains(wrong_password), "{err}");
    assert!(!format!("{err:?}").contains(wrong_password), "{err:?}");
    assert!(!format!("{wrong:?}").contains(wrong_password), "{wrong:?}");
    let stats = env.tokens.stats().await;
    assert!(stats.refused("bad_credentials") >= 1, "{stats:?}");
    assert_eq!(stats.total(), 0, "a token was issued: {stats:?}");

    // Nothing was written: the right user sees no tag and no blob of the image.
    let good = env.store(&host, "app", basic());
    assert!(good.list_tags().await.unwrap().is_empty());
    let image = read_image(&layout, "v1").await.unwrap();
    assert!(!good.has_blob(&image.config_digest).await.unwrap());
    assert_eq!(
        copy_image(&layout, &good, "v1", Some("v1")).await.unwrap(),
        digest
    );
}

#[tokio::test]
async fn a_static_bearer_token_is_sent_from_the_first_request() {
    let Some(env) = TokenRegistry::start() else {
        return;
    };
    let host = env.registry.host.clone();
    let dir = tempfile::tempdir().unwrap();
    let layout = OciLayout::create(&dir.path().join("src")).unwrap();
    let digest = image(&layout, "v1", "static", 2).await;
    let pusher = env.store(&host, "team/app", basic());
    copy_image(&layout, &pusher, "v1", Some("v1"))
        .await
        .unwrap();

    let token = env.tokens.token("repository:team/app:pull").await;
    let before = env.tokens.stats().await;
    let reader = env.store(&host, "team/app", RegistryAuth::Bearer(token.clone()));
    assert_eq!(reader.list_tags().await.unwrap(), vec!["v1".to_string()]);
    let image = read_image(&reader, "v1").await.unwrap();
    assert_eq!(image.digest, digest);
    let back = OciLayout::create(&dir.path().join("back")).unwrap();
    assert_eq!(
        copy_image(&reader, &back, "v1", Some("v1")).await.unwrap(),
        digest
    );
    assert_eq!(
        env.tokens.stats().await,
        before,
        "reading with a static token went to the token server"
    );

    // The token grants pull only: a push is refused (the registry asks for push, and there are no
    // credentials to get a wider token with), and the token never shows in the error.
    let other = image_in(&layout, "v2").await;
    let err = copy_image(&layout, &reader, "v2", Some("v2"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Registry { store, .. } if store.contains(&host)),
        "{err:?}"
    );
    assert!(!format!("{err} {err:?} {reader:?}").contains(&token));
    assert!(matches!(
        pusher.get_manifest(other.as_str()).await,
        Err(Error::ManifestNotFound { .. })
    ));
    assert_eq!(env.tokens.stats().await.total(), before.total());
}

/// A second image in `layout`, tagged `tag`.
async fn image_in(layout: &OciLayout, tag: &str) -> Digest {
    image(layout, tag, tag, 1).await
}

#[tokio::test]
async fn a_copy_between_repositories_mounts_blobs_with_a_token_for_both() {
    let Some(env) = TokenRegistry::start() else {
        return;
    };
    let proxy = start_proxy(&env.registry.host, vec![]).await;
    let dir = tempfile::tempdir().unwrap();
    let layout = OciLayout::create(&dir.path().join("src")).unwrap();
    let digest = image(&layout, "v1", "mounted", 3).await;
    let a = env.store(&proxy.host, "team/a", basic());
    copy_image(&layout, &a, "v1", Some("v1")).await.unwrap();

    let b = env.store(&proxy.host, "team/b", basic());
    assert_eq!(copy_image(&a, &b, "v1", Some("v1")).await.unwrap(), digest);
    assert_eq!(read_image(&b, "v1").await.unwrap().digest, digest);
    assert_eq!(b.list_tags().await.unwrap(), vec!["v1".to_string()]);
    assert_eq!(
        skopeo_digest(&format!("{}/team/b:v1", env.registry.host)),
        digest.as_str()
    );

    // The registry challenged the mount for both repositories, and the token server granted both in one
    // token: each blob was mounted, none uploaded again.
    let stats = env.tokens.stats().await;
    assert_eq!(stats.refused, BTreeMap::new(), "{stats:?}");
    assert!(
        stats.per_scope().contains_key(&scopes(&[
            "repository:team/a:pull",
            "repository:team/b:pull,push"
        ])),
        "no token for the mount: {stats:?}"
    );
    // (At least: a mount that met the challenge is sent again with the token.)
    assert!(
        requests(&proxy, "POST /v2/team/b/blobs/uploads/?mount=") >= 4,
        "3 layers and a config mounted"
    );
    assert_eq!(requests(&proxy, "PUT /v2/team/b/blobs/uploads/"), 0);
}

/// A long-lived store (the agent keeps one per repository for as long as it runs) outlives its token: the
/// registry's `401` for the expired token makes it fetch a new one, and the copy goes through.
#[tokio::test]
async fn an_expired_token_is_replaced_and_the_copy_goes_through() {
    // distribution accepts a token until 60 s after its `exp`: -55 gives tokens about 5 s of life.
    let Some(env) = TokenRegistry::start_expiring(-55) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let layout = OciLayout::create(&dir.path().join("src")).unwrap();
    let first = image(&layout, "v1", "first", 2).await;
    let second = image(&layout, "v2", "second", 2).await;
    let host = env.registry.host.clone();
    let store = env.store(&host, "team/app", basic());

    assert_eq!(
        copy_image(&layout, &store, "v1", Some("v1")).await.unwrap(),
        first
    );
    let before = env.tokens.stats().await.total();
    tokio::time::sleep(std::time::Duration::from_secs(7)).await;
    assert_eq!(
        copy_image(&layout, &store, "v2", Some("v2")).await.unwrap(),
        second
    );
    assert_eq!(read_image(&store, "v1").await.unwrap().digest, first);
    let after = env.tokens.stats().await.total();
    assert!(
        after > before,
        "no new token after the first expired ({before} before, {after} after)"
    );
}
