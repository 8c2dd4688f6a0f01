//! The kubernetes target against a STAND-IN API server.
//!
//! No Kubernetes API server can run on this machine (no kubelet, no etcd, no images to pull), so these
//! tests start a stand-in written here with axum: it keeps objects in memory and implements exactly the
//! calls the agent makes (server-side apply as `PATCH` with `application/apply-patch+yaml`, with and
//! without `dryRun=All`; `GET`; `LIST` with `labelSelector`, namespaced or across namespaces; `DELETE`),
//! gives Deployments a status that becomes Available one `GET` after a new generation (or never, when
//! the test holds rollouts), and records every request. The agent reaches it through a generated
//! kubeconfig (`http://127.0.0.1:PORT`), exactly as it would reach a cluster.
//!
//! Everything else is real: releases are rendered by airlock-manifest, signed and published into an OCI
//! layout by airlock-sign, and verified by the agent.

mod common;

use airlock_agent::evidence::{EvidenceCheck, check_evidence, has_evidence};
use airlock_agent::metrics::Counter;
use airlock_agent::{
    Agent, EvidenceConfig, KubernetesSpec, Metrics, SourceOptions, SourceSpec, SyncConfig,
    TargetSpec, load_trust,
};
use airlock_descriptor::{AppDescriptor, Resources};
use airlock_manifest::{EnvironmentSettings, RenderMeta, render};
use airlock_oci::{Digest, LayoutRoot, OciLayout};
use airlock_sign::{ReleaseConfig, ReleaseImage, SigningKey, TrustSet, publish_release};
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use common::{Release, signed_image};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const APP: &str = "hello";
const REFERENCE: &str = "airlock.local/hello";
const NAMESPACE: &str = "shop-staging";
const ENV: &str = "staging";

// ---------------------------------------------------------------------------------------------------
// The stand-in API server.

/// One request the stand-in received.
#[derive(Debug, Clone)]
struct Recorded {
    method: String,
    path: String,
    query: HashMap<String, String>,
    content_type: String,
    body: Value,
}

impl Recorded {
    fn is_apply(&self) -> bool {
        self.method == "PATCH" && !self.query.contains_key("dryRun")
    }
    fn is_dry_run(&self) -> bool {
        self.method == "PATCH" && self.query.get("dryRun").map(String::as_str) == Some("All")
    }
}

#[derive(Default)]
struct Cluster {
    /// (plural, namespace, name) -> object.
    objects: BTreeMap<(String, String, String), Value>,
    requests: Vec<Recorded>,
    /// When set, Deployments never become Available.
    hold_rollouts: bool,
    next_version: u64,
}

type Shared = Arc<Mutex<Cluster>>;

fn status_error(code: StatusCode, reason: &str, message: String) -> Response {
    (
        code,
        axum::Json(
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code.as_u16()}),
        ),
    )
        .into_response()
}

/// `/api/v1/...` or `/apis/GROUP/VERSION/...` → (namespace, plural, name).
fn parse_path(path: &str) -> Option<(Option<String>, String, Option<String>)> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let rest = match *segs.first()? {
        "api" => segs.get(2..)?,
        "apis" => segs.get(3..)?,
        _ => return None,
    };
    match rest {
        ["namespaces", ns, plural] => Some((Some(ns.to_string()), plural.to_string(), None)),
        ["namespaces", ns, plural, name] => Some((
            Some(ns.to_string()),
            plural.to_string(),
            Some(name.to_string()),
        )),
        [plural] => Some((None, plural.to_string(), None)),
        _ => None,
    }
}

fn matches_selector(obj: &Value, selector: &str) -> bool {
    let labels = obj.pointer("/metadata/labels").and_then(Value::as_object);
    selector.split(',').filter(|s| !s.is_empty()).all(|term| {
        let value = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        match term.split_once('=') {
            Some((k, v)) => value(k) == Some(v),
            None => value(term).is_some(),
        }
    })
}

fn ready_status(obj: &Value) -> Value {
    let replicas = obj
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    json!({"observedGeneration": obj["metadata"]["generation"], "replicas": replicas,
        "updatedReplicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas,
        "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"}]})
}

fn progressing_status(observed: i64) -> Value {
    json!({"observedGeneration": observed, "updatedReplicas": 0,
        "conditions": [{"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable",
            "message": "Deployment does not have minimum availability."}]})
}

async fn handle(
    State(cluster): State<Shared>,
    method: Method,
    uri: Uri,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut c = cluster.lock().unwrap();
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body_json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    c.requests.push(Recorded {
        method: method.to_string(),
        path: uri.path().to_string(),
        query: query.clone(),
        content_type: content_type.clone(),
        body: body_json.clone(),
    });
    let Some((ns, plural, name)) = parse_path(uri.path()) else {
        return status_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("no route {}", uri.path()),
        );
    };
    match (method.as_str(), name) {
        ("GET", Some(name)) => {
            let key = (plural.clone(), ns.unwrap_or_default(), name.clone());
            let Some(obj) = c.objects.get(&key).cloned() else {
                return status_error(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    format!("{plural} \"{name}\" not found"),
                );
            };
            // A Deployment's controller catches up after the agent first looks.
            if plural == "deployments" && !c.hold_rollouts {
                let ready = ready_status(&obj);
                if let Some(o) = c.objects.get_mut(&key) {
                    o["status"] = ready;
                }
            }
            axum::Json(obj).into_response()
        }
        ("GET", None) => {
            let selector = query.get("labelSelector").cloned().unwrap_or_default();
            let items: Vec<Value> = c
                .objects
                .iter()
                .filter(|((p, n, _), o)| {
                    p == &plural
                        && ns.as_ref().is_none_or(|ns| ns == n)
                        && matches_selector(o, &selector)
                })
                .map(|(_, o)| o.clone())
                .collect();
            axum::Json(json!({"kind": "List", "apiVersion": "v1", "metadata": {"resourceVersion": "1"}, "items": items}))
                .into_response()
        }
        ("PATCH", Some(name)) => {
            if content_type != "application/apply-patch+yaml" {
                return status_error(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "UnsupportedMediaType",
                    content_type,
                );
            }
            let manager = query.get("fieldManager").cloned().unwrap_or_default();
            if manager.is_empty() {
                return status_error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Invalid",
                    "fieldManager is required for apply requests".into(),
                );
            }
            let key = (plural.clone(), ns.clone().unwrap_or_default(), name.clone());
            let existing = c.objects.get(&key).cloned();
            let mut obj = body_json;
            c.next_version += 1;
            let old_gen = existing
                .as_ref()
                .and_then(|e| e.pointer("/metadata/generation"))
                .and_then(Value::as_i64);
            let spec_changed = existing
                .as_ref()
                .map(|e| e.get("spec") != obj.get("spec"))
                .unwrap_or(true);
            let generation = match old_gen {
                Some(g) if !spec_changed => g,
                Some(g) => g + 1,
                None => 1,
            };
            let api_version = obj["apiVersion"].clone();
            let meta = obj["metadata"].as_object_mut().unwrap();
            meta.insert(
                "uid".into(),
                existing
                    .as_ref()
                    .map(|e| e["metadata"]["uid"].clone())
                    .unwrap_or(json!(format!("uid-{name}-{}", c.next_version))),
            );
            meta.insert("creationTimestamp".into(), json!("2026-11-23T09:00:00Z"));
            meta.insert("resourceVersion".into(), json!(c.next_version.to_string()));
            meta.insert("generation".into(), json!(generation));
            meta.insert(
                "managedFields".into(),
                json!([{"manager": manager, "operation": "Apply",
                "apiVersion": api_version, "fieldsType": "FieldsV1", "fieldsV1": {}}]),
            );
            if plural == "deployments" {
                obj["status"] = match (&existing, spec_changed) {
                    (Some(e), false) => e["status"].clone(),
                    _ => progressing_status(old_gen.unwrap_or(0)),
                };
            }
            if query.get("dryRun").map(String::as_str) != Some("All") {
                c.objects.insert(key, obj.clone());
            }
            axum::Json(obj).into_response()
        }
        ("DELETE", Some(name)) => {
            let key = (plural.clone(), ns.unwrap_or_default(), name.clone());
            match c.objects.remove(&key) {
                Some(obj) => axum::Json(obj).into_response(),
                None => status_error(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    format!("{plural} \"{name}\" not found"),
                ),
            }
        }
        _ => status_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!("{method} {}", uri.path()),
        ),
    }
}

/// The stand-in, listening on loopback, and a kubeconfig pointing at it.
struct StandIn {
    cluster: Shared,
    kubeconfig: std::path::PathBuf,
}

impl StandIn {
    async fn start(dir: &Path) -> StandIn {
        let cluster: Shared = Arc::default();
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(cluster.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let kubeconfig = dir.join("kubeconfig.yaml");
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: standin\n  cluster:\n    server: http://127.0.0.1:{port}\nusers:\n- name: agent\n  user:\n    token: test-token\ncontexts:\n- name: standin\n  context:\n    cluster: standin\n    user: agent\ncurrent-context: standin\n"
            ),
        )
        .unwrap();
        StandIn {
            cluster,
            kubeconfig,
        }
    }

    fn spec(&self, dir: &Path, timeout: Duration) -> KubernetesSpec {
        let mut spec = KubernetesSpec::new(Some("standin".into()));
        spec.kubeconfig = Some(self.kubeconfig.clone());
        spec.state_dir = Some(dir.join("state"));
        spec.rollout_timeout = timeout;
        spec
    }

    fn take_requests(&self) -> Vec<Recorded> {
        std::mem::take(&mut self.cluster.lock().unwrap().requests)
    }

    fn object(&self, plural: &str, name: &str) -> Option<Value> {
        let c = self.cluster.lock().unwrap();
        c.objects
            .get(&(plural.to_string(), NAMESPACE.to_string(), name.to_string()))
            .cloned()
    }

    /// Sets the status of the app's Deployment, as its controller would: `None` marks it Available.
    fn set_deployment_status(&self, status: Option<Value>) {
        let mut c = self.cluster.lock().unwrap();
        let key = (
            "deployments".to_string(),
            NAMESPACE.to_string(),
            APP.to_string(),
        );
        let obj = c.objects.get_mut(&key).expect("the Deployment was applied");
        obj["status"] = status.unwrap_or_else(|| ready_status(obj));
    }

    fn kinds(&self) -> Vec<String> {
        let c = self.cluster.lock().unwrap();
        c.objects.keys().map(|(p, _, _)| p.clone()).collect()
    }
}

// ---------------------------------------------------------------------------------------------------
// Real releases: rendered by airlock-manifest, signed and published by airlock-sign.

struct World {
    dir: tempfile::TempDir,
    key: SigningKey,
}

impl World {
    fn new() -> World {
        World {
            dir: tempfile::tempdir().unwrap(),
            key: SigningKey::generate(),
        }
    }

    fn store(&self) -> OciLayout {
        LayoutRoot::open_or_create(&self.dir.path().join("boundary"))
            .unwrap()
            .repo(APP)
            .unwrap()
    }

    fn config(&self, spec: KubernetesSpec) -> SyncConfig {
        let key_path = self.dir.path().join("gate.pub");
        std::fs::write(&key_path, self.key.public_key().to_pem()).unwrap();
        SyncConfig::new(
            SourceSpec::Layout(self.dir.path().join("boundary")),
            load_trust(&[key_path]).unwrap(),
            ENV,
            TargetSpec::Kubernetes(spec),
        )
    }

    /// Publishes release `sequence`; with `autoscale` the app renders a PodDisruptionBudget and a
    /// HorizontalPodAutoscaler too. Returns the image digest.
    async fn publish(&self, sequence: u64, autoscale: bool) -> Digest {
        let store = self.store();
        // Release::new signs for `airlock.local/hello`, which is REFERENCE.
        let image = signed_image(&store, &Release::new(APP, sequence, &self.key, &[ENV])).await;

        let deploy = if autoscale {
            "[deploy.autoscale]\nmin = 2\nmax = 4\ncpu_percent = 70\n"
        } else {
            "[deploy]\nreplicas = 1\n"
        };
        let descriptor = AppDescriptor::from_toml_str(&format!(
            "[app]\nname = \"hello\"\nteam = \"shop\"\n[run]\nport = 8080\nhealth = \"/healthz\"\n{deploy}"
        ))
        .unwrap();
        let env = EnvironmentSettings {
            name: ENV.into(),
            namespace: NAMESPACE.into(),
            replicas: None,
            default_resources: Resources::default(),
            max_cpu_millis: Some(2000),
            max_memory_bytes: None,
            ingress_namespace: "ingress-nginx".into(),
            registry_rewrite: None,
        };
        let meta = RenderMeta {
            image: format!("{REFERENCE}@{image}"),
            commit: "0123456789abcdef0123456789abcdef01234567".into(),
            run_id: format!("run-{sequence}"),
            release_sequence: sequence,
            team: "shop".into(),
        };
        let rendered = render(&descriptor, &env, &meta).unwrap();
        let release = ReleaseConfig {
            app: APP.into(),
            team: "shop".into(),
            sequence,
            commit: meta.commit.clone(),
            source: "https://git.example/shop/hello".into(),
            image: ReleaseImage {
                repository: REFERENCE.into(),
                digest: image.clone(),
            },
            created: "2026-11-23T09:00:00Z".into(),
            environments: vec![ENV.into()],
            run_id: meta.run_id.clone(),
        };
        let manifests = BTreeMap::from([(ENV.to_string(), rendered.files)]);
        publish_release(&store, REFERENCE, &release, &manifests, &self.key)
            .await
            .unwrap();
        image
    }
}

fn image_of(deployment: &Value) -> String {
    deployment
        .pointer("/spec/template/spec/containers/0/image")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

// ---------------------------------------------------------------------------------------------------

#[tokio::test]
async fn applies_prunes_waits_corrects_drift_and_continues_after_restart() {
    let world = World::new();
    let standin = StandIn::start(world.dir.path()).await;
    let spec = standin.spec(world.dir.path(), Duration::from_secs(30));
    let metrics = Arc::new(Metrics::default());
    let mut agent = Agent::new(world.config(spec.clone()), metrics.clone()).unwrap();

    // Release 1: every rendered object is server-side applied by the field manager airlock.
    let image1 = world.publish(1, true).await;
    let report = agent.sync().await.unwrap();
    assert!(
        report.failed.is_empty() && report.refused.is_empty(),
        "{report:?}"
    );
    assert_eq!(report.applied.len(), 1, "{report:?}");
    let requests = standin.take_requests();
    let applies: Vec<&Recorded> = requests.iter().filter(|r| r.is_apply()).collect();
    let mut applied_paths: Vec<&str> = applies.iter().map(|r| r.path.as_str()).collect();
    applied_paths.sort();
    assert_eq!(
        applied_paths,
        [
            "/api/v1/namespaces/shop-staging/serviceaccounts/hello",
            "/api/v1/namespaces/shop-staging/services/hello",
            "/apis/apps/v1/namespaces/shop-staging/deployments/hello",
            "/apis/autoscaling/v2/namespaces/shop-staging/horizontalpodautoscalers/hello",
            "/apis/networking.k8s.io/v1/namespaces/shop-staging/networkpolicies/hello",
            "/apis/policy/v1/namespaces/shop-staging/poddisruptionbudgets/hello",
        ]
    );
    for r in &applies {
        assert_eq!(r.content_type, "application/apply-patch+yaml", "{}", r.path);
        assert_eq!(
            r.query.get("fieldManager").map(String::as_str),
            Some("airlock")
        );
        assert_eq!(r.query.get("force").map(String::as_str), Some("true"));
        assert_eq!(
            r.body["metadata"]["labels"]["agent.airlock.dev/release"],
            "1"
        );
        assert_eq!(r.body["metadata"]["labels"]["agent.airlock.dev/env"], ENV);
    }
    // The rollout was waited for: the Deployment was read after the last apply, and is available.
    let last_apply = requests.iter().rposition(Recorded::is_apply).unwrap();
    assert!(
        requests[last_apply..]
            .iter()
            .any(|r| r.method == "GET" && r.path.ends_with("/deployments/hello")),
        "no rollout check after the apply"
    );
    let deployment = standin.object("deployments", APP).unwrap();
    assert_eq!(image_of(&deployment), format!("{REFERENCE}@{image1}"));
    assert_eq!(
        deployment["metadata"]["managedFields"][0]["manager"],
        "airlock"
    );

    // Release 2 drops autoscaling: its PodDisruptionBudget and HorizontalPodAutoscaler are pruned.
    let image2 = world.publish(2, false).await;
    let report = agent.sync().await.unwrap();
    assert_eq!(report.applied.len(), 1, "{report:?}");
    assert_eq!(report.applied[0].sequence, 2);
    let requests = standin.take_requests();
    let mut deleted: Vec<&str> = requests
        .iter()
        .filter(|r| r.method == "DELETE")
        .map(|r| r.path.as_str())
        .collect();
    deleted.sort();
    assert_eq!(
        deleted,
        [
            "/apis/autoscaling/v2/namespaces/shop-staging/horizontalpodautoscalers/hello",
            "/apis/policy/v1/namespaces/shop-staging/poddisruptionbudgets/hello",
        ]
    );
    let mut kinds = standin.kinds();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "deployments",
            "networkpolicies",
            "serviceaccounts",
            "services"
        ]
    );
    let deployment = standin.object("deployments", APP).unwrap();
    assert_eq!(image_of(&deployment), format!("{REFERENCE}@{image2}"));
    assert_eq!(
        deployment["metadata"]["labels"]["agent.airlock.dev/release"],
        "2"
    );

    // An idle cycle changes nothing: dry runs only.
    let report = agent.sync().await.unwrap();
    assert_eq!(report.unchanged, [APP]);
    assert!(report.corrected.is_empty(), "{report:?}");
    let requests = standin.take_requests();
    assert!(
        !requests.iter().any(Recorded::is_apply),
        "applied on an idle cycle"
    );
    assert!(requests.iter().any(Recorded::is_dry_run));

    // Someone scales the Deployment by hand and deletes the Service: corrected next cycle and counted.
    {
        let mut c = standin.cluster.lock().unwrap();
        let key = |p: &str| (p.to_string(), NAMESPACE.to_string(), APP.to_string());
        c.objects.get_mut(&key("deployments")).unwrap()["spec"]["replicas"] = json!(5);
        c.objects.remove(&key("services"));
    }
    let report = agent.sync().await.unwrap();
    assert_eq!(report.corrected.len(), 1, "{report:?}");
    let drift = &report.corrected[0].drift;
    assert!(
        drift.contains("Deployment shop-staging/hello changed (spec)"),
        "{drift}"
    );
    assert!(
        drift.contains("Service shop-staging/hello missing"),
        "{drift}"
    );
    assert_eq!(metrics.get(ENV, Counter::Drift), 1);
    assert_eq!(
        standin.object("deployments", APP).unwrap()["spec"]["replicas"],
        json!(1)
    );
    assert!(standin.object("services", APP).is_some());
    let requests = standin.take_requests();
    let first_dry_run = requests.iter().position(Recorded::is_dry_run).unwrap();
    let first_apply = requests.iter().position(Recorded::is_apply).unwrap();
    assert!(
        first_dry_run < first_apply,
        "drift is measured by dry run before correcting"
    );

    // A restarted agent reads what runs from the annotations and applies nothing.
    drop(agent);
    let mut restarted = Agent::new(world.config(spec), Arc::new(Metrics::default())).unwrap();
    let deployed = restarted
        .target()
        .deployed(ENV, APP)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(deployed.sequence, 2);
    assert_eq!(deployed.image_digest, image2.to_string());
    let report = restarted.sync().await.unwrap();
    assert_eq!(report.unchanged, [APP], "{report:?}");
    assert!(
        report.applied.is_empty() && report.corrected.is_empty(),
        "{report:?}"
    );
    let requests = standin.take_requests();
    assert!(
        !requests
            .iter()
            .any(|r| r.is_apply() || r.method == "DELETE"),
        "{requests:?}"
    );
    let listed = restarted.target().list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].0.as_str(), listed[0].1.sequence), (ENV, 2));
}

#[tokio::test]
async fn rollout_that_never_becomes_available_fails_the_sync_with_the_reason() {
    let world = World::new();
    let standin = StandIn::start(world.dir.path()).await;
    standin.cluster.lock().unwrap().hold_rollouts = true;
    let spec = standin.spec(world.dir.path(), Duration::from_secs(1));
    let mut agent = Agent::new(world.config(spec), Arc::new(Metrics::default())).unwrap();
    world.publish(1, false).await;
    let report = agent.sync().await.unwrap();
    assert_eq!(report.exit_code(), 2, "{report:?}");
    let error = &report.failed[0].error;
    assert!(
        error.contains("rollout of Deployment shop-staging/hello did not finish within 1 s"),
        "{error}"
    );
    assert!(
        error.contains("Available=False (MinimumReplicasUnavailable"),
        "{error}"
    );
    assert!(error.contains("0 of 1 replicas updated"), "{error}");
    // The status the operator reads names it too.
    let status = agent.target().read_status(ENV);
    assert!(
        status.apps[APP]
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("did not finish")),
        "{status:?}"
    );
}

/// The requests of one cycle, in order, as `METHOD path [dry run]`.
fn request_lines(requests: &[Recorded]) -> Vec<String> {
    requests
        .iter()
        .map(|r| {
            let dry = if r.is_dry_run() { " (dry run)" } else { "" };
            format!("{} {}{dry}", r.method, r.path)
        })
        .collect()
}

#[tokio::test]
async fn unfinished_rollout_is_reported_every_cycle_until_the_deployment_is_available() {
    let world = World::new();
    let standin = StandIn::start(world.dir.path()).await;
    standin.cluster.lock().unwrap().hold_rollouts = true;
    let spec = standin.spec(world.dir.path(), Duration::from_secs(1));
    let metrics = Arc::new(Metrics::default());
    // This environment publishes health evidence, which a later environment's soak counts from.
    let agent_key = SigningKey::generate();
    let trust = TrustSet::new(vec![agent_key.public_key()]);
    let evidence_dir = world.dir.path().join("evidence");
    let mut config = world.config(spec);
    config.evidence = Some(EvidenceConfig {
        store: SourceSpec::Layout(evidence_dir.clone()),
        options: SourceOptions::default(),
        key: Some(agent_key),
        trust: trust.clone(),
    });
    let mut agent = Agent::new(config, metrics.clone()).unwrap();
    let last_error = |agent: &Agent| agent.target().read_status(ENV).apps[APP].last_error.clone();
    let evidence_store = LayoutRoot::open_or_create(&evidence_dir)
        .unwrap()
        .repo(APP)
        .unwrap();

    // Cycle 1: the rollout times out; the objects are applied and labelled anyway.
    world.publish(1, false).await;
    let report = agent.sync().await.unwrap();
    assert_eq!(report.exit_code(), 2, "{report:?}");
    assert!(
        report.failed[0].error.contains("did not finish within 1 s"),
        "{report:?}"
    );
    standin.take_requests();

    // Cycle 2: release 1 counts as deployed now, but the sync still fails for it and says why, without
    // applying again, waiting again, or calling it drift.
    let report = agent.sync().await.unwrap();
    assert_eq!(report.exit_code(), 2, "{report:?}");
    assert!(
        report.unchanged.is_empty() && report.applied.is_empty() && report.corrected.is_empty(),
        "{report:?}"
    );
    let error = &report.failed[0].error;
    assert!(
        error.starts_with(
            "release 1 of hello in staging has not rolled out: Deployment shop-staging/hello: "
        ),
        "{error}"
    );
    assert!(
        error.contains("Available=False (MinimumReplicasUnavailable)"),
        "{error}"
    );
    assert!(
        last_error(&agent).is_some_and(|e| e.contains("has not rolled out")),
        "the status lost the failure: {:?}",
        agent.target().read_status(ENV)
    );
    assert_eq!(metrics.get(ENV, Counter::Drift), 0);
    assert!(
        !has_evidence(&evidence_store, ENV, 1).await.unwrap(),
        "a release that has not rolled out was published as healthy"
    );
    let pending_cycle = request_lines(&standin.take_requests());
    assert!(
        !pending_cycle
            .iter()
            .any(|r| r.starts_with("PATCH") && !r.ends_with("(dry run)")),
        "applied again: {pending_cycle:?}"
    );
    assert!(
        !pending_cycle
            .iter()
            .any(|r| r.starts_with("DELETE") || r.starts_with("GET /apis/apps/v1/namespaces/")),
        "pruned or polled the rollout again: {pending_cycle:?}"
    );

    // The Deployment's controller gives up: the reason changes to what it reported.
    standin.set_deployment_status(Some(json!({"observedGeneration": 1, "updatedReplicas": 0,
        "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
            "message": "ReplicaSet \"hello-1\" has timed out progressing."}]})));
    let report = agent.sync().await.unwrap();
    assert_eq!(report.exit_code(), 2, "{report:?}");
    let error = &report.failed[0].error;
    assert!(
        error.contains("has not rolled out")
            && error.contains("Progressing=False (ProgressDeadlineExceeded)"),
        "{error}"
    );
    standin.take_requests();

    // It becomes available: the next cycle is clean, and clears the status by itself.
    standin.set_deployment_status(None);
    let available_from = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap();
    let report = agent.sync().await.unwrap();
    assert_eq!(report.exit_code(), 0, "{report:?}");
    assert_eq!(report.unchanged, [APP], "{report:?}");
    assert!(report.corrected.is_empty(), "{report:?}");
    assert_eq!(last_error(&agent), None);
    // Reporting the rollout cost no request an idle cycle does not make.
    let clean_cycle = request_lines(&standin.take_requests());
    assert_eq!(pending_cycle, clean_cycle);
    // Healthy since the rollout completed, not since the apply: the slow rollout is no soak time.
    let deployed = agent.target().deployed(ENV, APP).await.unwrap().unwrap();
    let release_digest = Digest::parse(&deployed.release_digest).unwrap();
    match check_evidence(&evidence_store, APP, ENV, 1, &release_digest, &trust).await {
        EvidenceCheck::Healthy(since) => assert!(
            since >= available_from,
            "healthy since {since}, but it rolled out at {available_from}"
        ),
        other => panic!("no health evidence after the rollout: {other:?}"),
    }

    // A release stuck again does not block the next one, which is what fixes it.
    world.publish(2, false).await;
    let report = agent.sync().await.unwrap();
    assert!(
        report.failed[0].error.contains("did not finish"),
        "{report:?}"
    );
    let report = agent.sync().await.unwrap();
    assert!(
        report.failed[0].error.starts_with("release 2 of hello"),
        "{report:?}"
    );
    standin.cluster.lock().unwrap().hold_rollouts = false;
    world.publish(3, false).await;
    let report = agent.sync().await.unwrap();
    assert_eq!(report.exit_code(), 0, "{report:?}");
    assert_eq!(report.applied[0].sequence, 3, "{report:?}");
    assert_eq!(last_error(&agent), None);
    let report = agent.sync().await.unwrap();
    assert_eq!(report.unchanged, [APP], "{report:?}");
}

#[tokio::test]
async fn unknown_context_fails_with_the_kubeconfig_named() {
    let world = World::new();
    let standin = StandIn::start(world.dir.path()).await;
    let mut spec = standin.spec(world.dir.path(), Duration::from_secs(1));
    spec.context = Some("nope".into());
    let mut agent = Agent::new(world.config(spec), Arc::new(Metrics::default())).unwrap();
    world.publish(1, false).await;
    let report = agent.sync().await.unwrap();
    let error = &report.failed[0].error;
    assert!(error.contains("kubernetes:nope"), "{error}");
    assert!(error.contains("kubeconfig.yaml"), "{error}");
    assert!(standin.take_requests().is_empty());
}
