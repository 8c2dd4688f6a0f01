//! The kubernetes target: a verified release's manifests for one environment, server-side applied to a
//! cluster, the previous release's leftovers pruned, and the rollout waited for.
//!
//! Every object of the release is applied with server-side apply (field manager `airlock`, forced, so
//! the agent owns what it declares even after a hand edit) as a `DynamicObject` whose `ApiResource` comes
//! from the kinds the gate renders ([`RESOURCES`]: Deployment, Service, ServiceAccount, NetworkPolicy,
//! PodDisruptionBudget, HorizontalPodAutoscaler); a kind outside that list is refused before anything is
//! written, so no discovery request is needed. The namespace comes from the manifests.
//!
//! The agent adds labels and annotations to every object (see the constants below):
//! - labels with the app, the environment and the release sequence, so that the objects of this app in
//!   this environment are found with one label selector per kind, and objects of an earlier release that
//!   the new one no longer declares are deleted (pruned) after the apply;
//! - the [`ReleaseRecord`] as JSON, so what runs (sequence, digests, anti-rollback floor, rollback note)
//!   is read back from the cluster by a restarted or replaced agent: the state lives in the target;
//! - the list of objects of the release, so a deleted object is noticed; and the object exactly as
//!   applied (like kubectl's last-applied-configuration), so drift can be measured after a restart.
//!
//! Drift: each object as applied is sent again as a server-side **dry run** (`dryRun=All`) and the
//! object the API server would produce is compared with the live one (everything but server-managed
//! metadata and `status`). A difference, a missing object or an extra labelled object is drift; the
//! agent corrects it with a real apply of the verified release (and a prune), counted and logged by the
//! reconcile loop.
//!
//! Rollout: after applying, every Deployment of the release is polled until its `observedGeneration`
//! has reached its `generation`, `updatedReplicas` equals the desired replicas and its `Available`
//! condition is `True`; a `ProgressDeadlineExceeded` condition or the configured timeout fails the apply
//! with what the Deployment reported. The objects are applied and labelled by then, so later cycles see
//! the release as deployed: [`KubernetesTarget::drift`] therefore also checks the rollout of the current
//! release's Deployments on the objects it lists anyway (no extra request) and keeps what it found for
//! [`KubernetesTarget::rollout_pending`], so the sync keeps reporting an unfinished rollout as an error,
//! without applying again, until the Deployment becomes available.
//!
//! The agent's own status file (last sync, last errors) is local, under the state directory
//! ([`KubernetesSpec::state_dir`]); what is deployed is only ever read from the cluster.
//!
//! RBAC the agent's identity needs: `get`, `list`, `patch`, `create` (server-side apply of a new object)
//! and `delete` on the six kinds, cluster-wide for `list` (objects are found across namespaces by label).

use crate::target::{ReleaseRecord, TargetError, validate_app, validate_env};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Field manager of every server-side apply.
pub const FIELD_MANAGER: &str = "airlock";
/// Label holding the app (its name, or a hash when the name is not a valid label value).
pub const APP_LABEL: &str = "agent.airlock.dev/app";
/// Label holding the environment.
pub const ENV_LABEL: &str = "agent.airlock.dev/env";
/// Label holding the release sequence.
pub const RELEASE_LABEL: &str = "agent.airlock.dev/release";
/// Annotation holding the [`ReleaseRecord`] (JSON) of the release the object belongs to.
pub const RECORD_ANNOTATION: &str = "agent.airlock.dev/record";
/// Annotation listing every object of the release (JSON array of `Kind namespace/name`).
pub const OBJECTS_ANNOTATION: &str = "agent.airlock.dev/objects";
/// Annotation holding the object exactly as applied, minus this annotation (JSON).
pub const APPLIED_ANNOTATION: &str = "agent.airlock.dev/applied";
/// How long a rollout may take unless configured otherwise.
pub const DEFAULT_ROLLOUT_TIMEOUT: Duration = Duration::from_secs(300);
/// Environment variable naming the state directory when the spec gives none.
pub const STATE_DIR_VAR: &str = "AIRLOCK_AGENT_STATE_DIR";

/// The kinds a release may contain, in apply order (what others refer to first), as the API knows them.
pub static RESOURCES: LazyLock<[ApiResource; 6]> = LazyLock::new(|| {
    [
        ApiResource::erase::<ServiceAccount>(&()),
        ApiResource::erase::<NetworkPolicy>(&()),
        ApiResource::erase::<Service>(&()),
        ApiResource::erase::<Deployment>(&()),
        ApiResource::erase::<PodDisruptionBudget>(&()),
        ApiResource::erase::<HorizontalPodAutoscaler>(&()),
    ]
});

/// `kubernetes[:CONTEXT]` and its settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubernetesSpec {
    /// Kubeconfig context; `None` uses the current context, or the in-cluster config when there is no
    /// kubeconfig.
    pub context: Option<String>,
    /// Kubeconfig file; `None` reads `KUBECONFIG` or `~/.kube/config` (or the in-cluster config).
    pub kubeconfig: Option<PathBuf>,
    /// Where the agent keeps its status file; `None` is `$AIRLOCK_AGENT_STATE_DIR`, else
    /// `$HOME/.local/state/airlock-agent/kubernetes[-CONTEXT]`.
    pub state_dir: Option<PathBuf>,
    /// How long to wait for the Deployments of a release to become available.
    pub rollout_timeout: Duration,
}

impl KubernetesSpec {
    /// The current (or in-cluster) context with the default timeout.
    pub fn new(context: Option<String>) -> Self {
        KubernetesSpec {
            context,
            kubeconfig: None,
            state_dir: None,
            rollout_timeout: DEFAULT_ROLLOUT_TIMEOUT,
        }
    }

    /// The state directory this spec resolves to.
    pub fn resolved_state_dir(&self) -> PathBuf {
        if let Some(dir) = &self.state_dir {
            return dir.clone();
        }
        if let Some(dir) = std::env::var_os(STATE_DIR_VAR).filter(|d| !d.is_empty()) {
            return PathBuf::from(dir);
        }
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let leaf = match &self.context {
            // A context name may hold characters a file name cannot.
            Some(c) => format!(
                "kubernetes-{}",
                c.replace(|ch: char| !ch.is_ascii_alphanumeric() && ch != '-', "_")
            ),
            None => "kubernetes".to_string(),
        };
        home.join(".local/state/airlock-agent").join(leaf)
    }
}

impl fmt::Display for KubernetesSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.context {
            Some(c) => write!(f, "kubernetes:{c}"),
            None => write!(f, "kubernetes"),
        }
    }
}

/// Why the kubernetes target could not apply, read or reconcile.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// No client configuration could be loaded.
    #[error("cannot configure the Kubernetes client for {target}: {reason}")]
    Config {
        /// The target (`kubernetes:CONTEXT`).
        target: String,
        /// What failed.
        reason: String,
    },
    /// A manifest of the release cannot be applied as given.
    #[error("manifest {file} of the release: {reason}")]
    Manifest {
        /// The file (and document index).
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// An API call failed.
    #[error("cannot {action} {object}: {reason}")]
    Api {
        /// What was being done (`apply`, `list`, …).
        action: &'static str,
        /// The object or kind (`Deployment shop/hello`).
        object: String,
        /// What the API server (or the connection) said.
        reason: String,
    },
    /// An object carries an annotation of the agent that cannot be read.
    #[error("{object} has an unreadable {annotation} annotation: {reason}")]
    Annotation {
        /// The object.
        object: String,
        /// The annotation key.
        annotation: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A Deployment did not become available in time.
    #[error("rollout of {object} did not finish within {seconds} s: {state}")]
    RolloutTimeout {
        /// The Deployment.
        object: String,
        /// The timeout.
        seconds: u64,
        /// What it last reported.
        state: String,
    },
    /// A Deployment reported that its rollout cannot progress.
    #[error("rollout of {object} failed: {state}")]
    RolloutFailed {
        /// The Deployment.
        object: String,
        /// What it reported.
        state: String,
    },
}

/// Describes a kube error for a message: the API server's code, reason and message when it answered.
fn api_reason(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(status) => {
            let mut out = format!("HTTP {}", status.code);
            if !status.reason.is_empty() {
                out.push_str(&format!(" {}", status.reason));
            }
            if !status.message.is_empty() {
                out.push_str(&format!(": {}", status.message));
            }
            out
        }
        other => other.to_string(),
    }
}

fn is_not_found(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status) if status.code == 404)
}

/// Which object: kind, namespace, name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct ObjectRef {
    kind: String,
    namespace: String,
    name: String,
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

impl ObjectRef {
    fn parse(text: &str) -> Option<ObjectRef> {
        let (kind, rest) = text.split_once(' ')?;
        let (namespace, name) = rest.split_once('/')?;
        Some(ObjectRef {
            kind: kind.to_string(),
            namespace: namespace.to_string(),
            name: name.to_string(),
        })
    }
}

/// One object of a release, ready to apply.
#[derive(Debug, Clone)]
struct Desired {
    resource: &'static ApiResource,
    id: ObjectRef,
    body: Value,
}

/// The resource of `apiVersion` + `kind`, if the agent applies that kind.
fn resource_of(api_version: &str, kind: &str) -> Option<&'static ApiResource> {
    RESOURCES
        .iter()
        .find(|r| r.api_version == api_version && r.kind == kind)
}

fn resource_by_kind(kind: &str) -> Option<&'static ApiResource> {
    RESOURCES.iter().find(|r| r.kind == kind)
}

/// The value of [`APP_LABEL`] for `app`: the name itself when it is a valid label value, else a hash
/// (`team/api` has a `/`); the exact name is in the record annotation and checked on every read.
pub fn app_label_value(app: &str) -> String {
    let valid = !app.is_empty()
        && app.len() <= 63
        && app
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && app.as_bytes()[0].is_ascii_alphanumeric()
        && app.as_bytes()[app.len() - 1].is_ascii_alphanumeric();
    if valid {
        return app.to_string();
    }
    let digest = airlock_oci::Digest::of(app.as_bytes()).to_string();
    let hex = digest.strip_prefix("sha256:").unwrap_or(&digest);
    format!("h-{}", &hex[..40])
}

fn selector(env: &str, app: Option<&str>) -> String {
    match app {
        Some(app) => format!("{APP_LABEL}={},{ENV_LABEL}={env}", app_label_value(app)),
        None => ENV_LABEL.to_string(),
    }
}

/// Parses the release's files into the objects to apply, in apply order. Kustomize's
/// `kustomization.yaml` is not a cluster object and is skipped; any other unknown kind is refused.
fn parse_manifests(files: &BTreeMap<String, String>) -> Result<Vec<Desired>, KubeError> {
    let mut out: Vec<Desired> = Vec::new();
    for (file, text) in files {
        let docs: Vec<Value> =
            serde_saphyr::from_multiple(text).map_err(|e| KubeError::Manifest {
                file: file.clone(),
                reason: format!("not valid YAML: {e}"),
            })?;
        for (i, doc) in docs.into_iter().enumerate() {
            let where_ = if i == 0 {
                file.clone()
            } else {
                format!("{file} (document {})", i + 1)
            };
            let bad = |reason: String| KubeError::Manifest {
                file: where_.clone(),
                reason,
            };
            if doc.is_null() {
                continue;
            }
            let Value::Object(map) = &doc else {
                return Err(bad("is not a mapping".into()));
            };
            let field = |key: &str| map.get(key).and_then(Value::as_str).unwrap_or("");
            let (api_version, kind) = (field("apiVersion"), field("kind"));
            if api_version.starts_with("kustomize.config.k8s.io/") {
                continue;
            }
            let Some(resource) = resource_of(api_version, kind) else {
                return Err(bad(format!(
                    "kind {kind:?} of apiVersion {api_version:?} is not one the agent applies (it applies {})",
                    RESOURCES
                        .iter()
                        .map(|r| format!("{} {}", r.api_version, r.kind))
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            };
            let meta = |key: &str| {
                doc.pointer(&format!("/metadata/{key}"))
                    .and_then(Value::as_str)
                    .filter(|v| !v.is_empty())
                    .map(str::to_string)
            };
            let name = meta("name").ok_or_else(|| bad("has no metadata.name".into()))?;
            let namespace = meta("namespace").ok_or_else(|| {
                bad("has no metadata.namespace (the agent applies only namespaced objects with their namespace given)".into())
            })?;
            let id = ObjectRef {
                kind: kind.to_string(),
                namespace,
                name,
            };
            if out.iter().any(|d| d.id == id) {
                return Err(bad(format!("declares {id} a second time")));
            }
            out.push(Desired {
                resource,
                id,
                body: doc,
            });
        }
    }
    if out.is_empty() {
        return Err(KubeError::Manifest {
            file: "(all)".into(),
            reason: "the release has no Kubernetes objects for this environment".into(),
        });
    }
    let order = |d: &Desired| {
        RESOURCES
            .iter()
            .position(|r| std::ptr::eq(r, d.resource))
            .unwrap_or(usize::MAX)
    };
    out.sort_by(|a, b| order(a).cmp(&order(b)).then_with(|| a.id.cmp(&b.id)));
    Ok(out)
}

fn object_map<'a>(value: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    let Value::Object(map) = value else {
        unreachable!("parse_manifests and live objects only hold mappings");
    };
    object_map_in(map, key)
}

/// The object as the agent applies it: the manifest plus the agent's labels and annotations, with
/// [`APPLIED_ANNOTATION`] holding all of that (minus itself).
fn decorate(
    desired: &Desired,
    env: &str,
    record: &ReleaseRecord,
    objects: &str,
) -> Result<Value, KubeError> {
    let mut body = desired.body.clone();
    let record_json = serde_json::to_string(record).map_err(|e| KubeError::Manifest {
        file: desired.id.to_string(),
        reason: e.to_string(),
    })?;
    {
        let metadata = object_map(&mut body, "metadata");
        let labels = object_map_in(metadata, "labels");
        labels.insert(APP_LABEL.into(), app_label_value(&record.app).into());
        labels.insert(ENV_LABEL.into(), env.into());
        labels.insert(RELEASE_LABEL.into(), record.sequence.to_string().into());
        let annotations = object_map_in(metadata, "annotations");
        annotations.insert(RECORD_ANNOTATION.into(), record_json.into());
        annotations.insert(OBJECTS_ANNOTATION.into(), objects.into());
        annotations.remove(APPLIED_ANNOTATION);
    }
    let applied = serde_json::to_string(&body).map_err(|e| KubeError::Manifest {
        file: desired.id.to_string(),
        reason: e.to_string(),
    })?;
    let metadata = object_map(&mut body, "metadata");
    object_map_in(metadata, "annotations").insert(APPLIED_ANNOTATION.into(), applied.into());
    Ok(body)
}

fn object_map_in<'a>(map: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let entry = map
        .entry(key.to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    if !entry.is_object() {
        *entry = Value::Object(Map::new());
    }
    match entry {
        Value::Object(m) => m,
        _ => unreachable!("just made an object"),
    }
}

/// What of an object is compared for drift: everything but `apiVersion`/`kind` (absent from list
/// items), `status`, and the metadata the API server maintains.
fn comparable(value: &Value) -> Value {
    let mut v = value.clone();
    if let Value::Object(map) = &mut v {
        map.remove("status");
        map.remove("apiVersion");
        map.remove("kind");
        if let Some(Value::Object(meta)) = map.get_mut("metadata") {
            for key in [
                "managedFields",
                "resourceVersion",
                "generation",
                "creationTimestamp",
                "uid",
                "selfLink",
            ] {
                meta.remove(key);
            }
        }
    }
    v
}

/// The top-level fields (and metadata maps) where two objects differ, for the drift message.
fn differing_fields(want: &Value, live: &Value) -> Vec<String> {
    let (Value::Object(a), Value::Object(b)) = (want, live) else {
        return vec!["(whole object)".into()];
    };
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let mut out = Vec::new();
    for key in keys {
        if key == "metadata" {
            for sub in ["labels", "annotations", "name", "namespace"] {
                let pa = a.get("metadata").and_then(|m| m.get(sub));
                let pb = b.get("metadata").and_then(|m| m.get(sub));
                if pa != pb {
                    out.push(format!("metadata.{sub}"));
                }
            }
        } else if a.get(key) != b.get(key) {
            out.push(key.clone());
        }
    }
    out
}

fn annotation<'a>(obj: &'a DynamicObject, key: &str) -> Option<&'a str> {
    obj.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

fn live_ref(kind: &str, obj: &DynamicObject) -> ObjectRef {
    ObjectRef {
        kind: kind.to_string(),
        namespace: obj.metadata.namespace.clone().unwrap_or_default(),
        name: obj.metadata.name.clone().unwrap_or_default(),
    }
}

fn record_of(kind: &str, obj: &DynamicObject) -> Result<Option<ReleaseRecord>, KubeError> {
    let Some(text) = annotation(obj, RECORD_ANNOTATION) else {
        return Ok(None);
    };
    serde_json::from_str(text)
        .map(Some)
        .map_err(|e| KubeError::Annotation {
            object: live_ref(kind, obj).to_string(),
            annotation: RECORD_ANNOTATION,
            reason: e.to_string(),
        })
}

/// How far a Deployment's rollout is: `Ok(())` when done, `Err((failed, state))` otherwise.
fn rollout_state(obj: &Value) -> Result<(), (bool, String)> {
    let int = |ptr: &str| obj.pointer(ptr).and_then(Value::as_i64);
    let generation = int("/metadata/generation").unwrap_or(0);
    let observed = int("/status/observedGeneration").unwrap_or(0);
    let replicas = int("/spec/replicas").unwrap_or(1);
    let updated = int("/status/updatedReplicas").unwrap_or(0);
    let conditions = obj
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let condition = |kind: &str| {
        conditions
            .iter()
            .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
    };
    let describe = |c: &Value| {
        let get = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("");
        let mut out = format!("{}={}", get("type"), get("status"));
        if !get("reason").is_empty() {
            out.push_str(&format!(" ({})", get("reason")));
        }
        if !get("message").is_empty() {
            out.push_str(&format!(": {}", get("message")));
        }
        out
    };
    if let Some(p) = condition("Progressing")
        && p.get("reason").and_then(Value::as_str) == Some("ProgressDeadlineExceeded")
    {
        return Err((true, describe(p)));
    }
    let mut waiting = Vec::new();
    if observed < generation {
        waiting.push(format!(
            "the controller has not seen generation {generation} yet (observed {observed})"
        ));
    }
    if updated < replicas {
        waiting.push(format!("{updated} of {replicas} replicas updated"));
    }
    match condition("Available") {
        Some(c) if c.get("status").and_then(Value::as_str) == Some("True") => {}
        Some(c) => waiting.push(describe(c)),
        None => waiting.push("no Available condition yet".into()),
    }
    if waiting.is_empty() {
        Ok(())
    } else {
        Err((false, waiting.join("; ")))
    }
}

/// Why the Deployments of release `sequence` among `live` have not rolled out, as one sentence naming
/// each (`None` when all are available, or the release has none).
fn pending_rollout(
    env: &str,
    app: &str,
    sequence: u64,
    live: &[(ObjectRef, ReleaseRecord, DynamicObject)],
) -> Option<String> {
    let mut states = Vec::new();
    for (id, record, obj) in live {
        if id.kind != "Deployment" || record.sequence != sequence {
            continue;
        }
        let state = match serde_json::to_value(obj) {
            Ok(value) => match rollout_state(&value) {
                Ok(()) => continue,
                Err((_, state)) => state,
            },
            Err(e) => format!("its status cannot be read: {e}"),
        };
        states.push(format!("{id}: {state}"));
    }
    (!states.is_empty()).then(|| {
        format!(
            "release {sequence} of {app} in {env} has not rolled out: {}",
            states.join("; ")
        )
    })
}

/// A cluster reached through a kubeconfig context or the in-cluster config.
#[derive(Clone)]
pub struct KubernetesTarget {
    spec: KubernetesSpec,
    state_dir: PathBuf,
    client: Arc<tokio::sync::OnceCell<Client>>,
    /// Per (environment, app): why the current release has not rolled out, as the last
    /// [`KubernetesTarget::drift`] saw it. Shared by clones, like the client.
    rollouts: Arc<Mutex<BTreeMap<(String, String), String>>>,
}

impl fmt::Debug for KubernetesTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KubernetesTarget")
            .field("spec", &self.spec)
            .field("state_dir", &self.state_dir)
            .field("connected", &self.client.initialized())
            .finish()
    }
}

impl KubernetesTarget {
    /// A target for `spec`; the client configuration is read on the first call that needs it.
    pub fn new(spec: KubernetesSpec) -> Self {
        KubernetesTarget {
            state_dir: spec.resolved_state_dir(),
            spec,
            client: Arc::new(tokio::sync::OnceCell::new()),
            rollouts: Arc::default(),
        }
    }

    /// The spec it was made from.
    pub fn spec(&self) -> &KubernetesSpec {
        &self.spec
    }

    /// Where the agent's status for `env` is kept (a local file: the cluster holds what is deployed).
    pub fn status_path(&self, env: &str) -> PathBuf {
        self.state_dir.join(format!("status-{env}.json"))
    }

    /// The state directory.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// A printable location of `app` in `env` (`kubernetes:CONTEXT#env/app`), for reports.
    pub fn app_path(&self, env: &str, app: &str) -> PathBuf {
        PathBuf::from(format!("{}#{env}/{app}", self.spec))
    }

    async fn client(&self) -> Result<Client, KubeError> {
        let target = self.spec.to_string();
        let spec = self.spec.clone();
        self.client
            .get_or_try_init(|| async move {
                let err = |reason: String| KubeError::Config {
                    target: target.clone(),
                    reason,
                };
                let options = KubeConfigOptions {
                    context: spec.context.clone(),
                    ..Default::default()
                };
                let config = match (&spec.kubeconfig, &spec.context) {
                    (Some(path), _) => {
                        let kubeconfig = Kubeconfig::read_from(path)
                            .map_err(|e| err(format!("{}: {e}", path.display())))?;
                        Config::from_custom_kubeconfig(kubeconfig, &options)
                            .await
                            .map_err(|e| err(format!("{}: {e}", path.display())))?
                    }
                    (None, Some(_)) => Config::from_kubeconfig(&options).await.map_err(|e| {
                        err(format!("kubeconfig (KUBECONFIG or ~/.kube/config): {e}"))
                    })?,
                    (None, None) => Config::infer()
                        .await
                        .map_err(|e| err(format!("no kubeconfig and no in-cluster config: {e}")))?,
                };
                Client::try_from(config).map_err(|e| err(e.to_string()))
            })
            .await
            .cloned()
    }

    fn api(client: &Client, resource: &ApiResource, namespace: Option<&str>) -> Api<DynamicObject> {
        match namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, resource),
            None => Api::all_with(client.clone(), resource),
        }
    }

    /// Every object of `kind` labelled for `env` (and `app`), across namespaces.
    async fn list_labelled(
        &self,
        client: &Client,
        resource: &ApiResource,
        env: &str,
        app: Option<&str>,
    ) -> Result<Vec<DynamicObject>, KubeError> {
        let list = Self::api(client, resource, None)
            .list(&ListParams::default().labels(&selector(env, app)))
            .await
            .map_err(|e| KubeError::Api {
                action: "list",
                object: format!("{} objects", resource.kind),
                reason: api_reason(&e),
            })?;
        Ok(list.items)
    }

    /// The objects of `app` in `env` that belong to it exactly (the label may be a hash), by kind.
    async fn live_objects(
        &self,
        client: &Client,
        env: &str,
        app: &str,
        kinds: &[&'static ApiResource],
    ) -> Result<Vec<(ObjectRef, ReleaseRecord, DynamicObject)>, KubeError> {
        let mut out = Vec::new();
        for resource in kinds {
            for obj in self.list_labelled(client, resource, env, Some(app)).await? {
                if let Some(record) = record_of(&resource.kind, &obj)?
                    && record.app == app
                {
                    out.push((live_ref(&resource.kind, &obj), record, obj));
                }
            }
        }
        Ok(out)
    }

    /// The release applied for `app` in `env`, read from the annotations of its objects (the newest
    /// when an interrupted apply left two).
    pub async fn deployed(
        &self,
        env: &str,
        app: &str,
    ) -> Result<Option<ReleaseRecord>, TargetError> {
        validate_env(env)?;
        validate_app(app)?;
        let client = self.client().await?;
        // The Deployment answers in one request for every rendered app; other kinds only when it is gone.
        let deployment_first = RESOURCES
            .iter()
            .filter(|r| r.kind == "Deployment")
            .chain(RESOURCES.iter().filter(|r| r.kind != "Deployment"));
        for resource in deployment_first {
            let live = self.live_objects(&client, env, app, &[resource]).await?;
            if let Some(record) = live
                .into_iter()
                .map(|(_, r, _)| r)
                .max_by_key(|r| r.sequence)
            {
                return Ok(Some(record));
            }
        }
        Ok(None)
    }

    /// Applies the release: every object by server-side apply, then the objects of earlier releases
    /// that this one does not declare are deleted, then the rollout is waited for.
    pub async fn apply(
        &self,
        env: &str,
        record: &ReleaseRecord,
        files: &BTreeMap<String, String>,
    ) -> Result<(), TargetError> {
        validate_env(env)?;
        validate_app(&record.app)?;
        // Everything is parsed and checked before the first request: a bad release writes nothing.
        let desired = parse_manifests(files)?;
        let objects =
            serde_json::to_string(&desired.iter().map(|d| d.id.to_string()).collect::<Vec<_>>())
                .map_err(|e| KubeError::Manifest {
                    file: "(all)".into(),
                    reason: e.to_string(),
                })?;
        let bodies = desired
            .iter()
            .map(|d| decorate(d, env, record, &objects))
            .collect::<Result<Vec<_>, _>>()?;
        let client = self.client().await?;
        for (d, body) in desired.iter().zip(&bodies) {
            self.server_side_apply(&client, d, body, false).await?;
        }
        let keep: BTreeSet<ObjectRef> = desired.iter().map(|d| d.id.clone()).collect();
        self.prune(&client, env, &record.app, &keep).await?;
        for d in desired.iter().filter(|d| d.id.kind == "Deployment") {
            self.wait_for_rollout(&client, d).await?;
        }
        Ok(())
    }

    /// Applies the release again to undo `drift` (same as [`KubernetesTarget::apply`]).
    pub async fn repair(
        &self,
        env: &str,
        record: &ReleaseRecord,
        files: &BTreeMap<String, String>,
    ) -> Result<(), TargetError> {
        self.apply(env, record, files).await
    }

    async fn server_side_apply(
        &self,
        client: &Client,
        desired: &Desired,
        body: &Value,
        dry_run: bool,
    ) -> Result<DynamicObject, KubeError> {
        let api = Self::api(client, desired.resource, Some(&desired.id.namespace));
        let mut params = PatchParams::apply(FIELD_MANAGER).force();
        if dry_run {
            params = params.dry_run();
        }
        api.patch(&desired.id.name, &params, &Patch::Apply(body))
            .await
            .map_err(|e| KubeError::Api {
                action: if dry_run { "dry-run apply" } else { "apply" },
                object: desired.id.to_string(),
                reason: api_reason(&e),
            })
    }

    /// Deletes the objects labelled for `app` in `env` that are not in `keep`.
    async fn prune(
        &self,
        client: &Client,
        env: &str,
        app: &str,
        keep: &BTreeSet<ObjectRef>,
    ) -> Result<(), KubeError> {
        let kinds: Vec<&'static ApiResource> = RESOURCES.iter().collect();
        for (id, record, _) in self.live_objects(client, env, app, &kinds).await? {
            if keep.contains(&id) {
                continue;
            }
            let Some(resource) = resource_by_kind(&id.kind) else {
                continue;
            };
            match Self::api(client, resource, Some(&id.namespace))
                .delete(&id.name, &DeleteParams::background())
                .await
            {
                Ok(_) => {
                    tracing::info!(env, app, object = %id, from_release = record.sequence, "pruned");
                }
                Err(e) if is_not_found(&e) => {}
                Err(e) => {
                    return Err(KubeError::Api {
                        action: "prune",
                        object: id.to_string(),
                        reason: api_reason(&e),
                    });
                }
            }
        }
        Ok(())
    }

    async fn wait_for_rollout(&self, client: &Client, desired: &Desired) -> Result<(), KubeError> {
        let api = Self::api(client, desired.resource, Some(&desired.id.namespace));
        let timeout = self.spec.rollout_timeout;
        let poll = (timeout / 20).clamp(Duration::from_millis(100), Duration::from_secs(2));
        let started = Instant::now();
        loop {
            let live = api
                .get(&desired.id.name)
                .await
                .map_err(|e| KubeError::Api {
                    action: "read the rollout of",
                    object: desired.id.to_string(),
                    reason: api_reason(&e),
                })?;
            let value = serde_json::to_value(&live).map_err(|e| KubeError::Api {
                action: "read the rollout of",
                object: desired.id.to_string(),
                reason: e.to_string(),
            })?;
            match rollout_state(&value) {
                Ok(()) => return Ok(()),
                Err((true, state)) => {
                    return Err(KubeError::RolloutFailed {
                        object: desired.id.to_string(),
                        state,
                    });
                }
                Err((false, state)) if started.elapsed() >= timeout => {
                    return Err(KubeError::RolloutTimeout {
                        object: desired.id.to_string(),
                        seconds: timeout.as_secs_f64().ceil() as u64,
                        state,
                    });
                }
                Err(_) => tokio::time::sleep(poll).await,
            }
        }
    }

    /// How the cluster differs from the release applied for `app` in `env`: each object as applied is
    /// server-side dry-run applied and the result compared with the live object; objects missing, left
    /// at another release, or labelled for the app but not in the release are drift too.
    pub async fn drift(&self, env: &str, app: &str) -> Result<Option<String>, TargetError> {
        validate_env(env)?;
        validate_app(app)?;
        let client = self.client().await?;
        let kinds: Vec<&'static ApiResource> = RESOURCES.iter().collect();
        let live = self.live_objects(&client, env, app, &kinds).await?;
        let Some(current) = live
            .iter()
            .map(|(_, r, _)| r)
            .max_by_key(|r| r.sequence)
            .cloned()
        else {
            self.note_rollout(env, app, None);
            return Ok(None);
        };
        self.note_rollout(env, app, pending_rollout(env, app, current.sequence, &live));
        // The object list of the current release, from any of its objects still there.
        let mut expected: Option<BTreeSet<ObjectRef>> = None;
        for (id, record, obj) in &live {
            if record.sequence != current.sequence {
                continue;
            }
            if let Some(text) = annotation(obj, OBJECTS_ANNOTATION) {
                let names: Vec<String> =
                    serde_json::from_str(text).map_err(|e| KubeError::Annotation {
                        object: id.to_string(),
                        annotation: OBJECTS_ANNOTATION,
                        reason: e.to_string(),
                    })?;
                expected = Some(names.iter().filter_map(|n| ObjectRef::parse(n)).collect());
                break;
            }
        }
        let expected = expected.unwrap_or_default();
        let mut parts = Vec::new();
        for id in &expected {
            let Some((_, record, obj)) = live.iter().find(|(l, _, _)| l == id) else {
                parts.push(format!("{id} missing"));
                continue;
            };
            if record.sequence != current.sequence {
                parts.push(format!("{id} is still at release {}", record.sequence));
                continue;
            }
            let Some(applied) = annotation(obj, APPLIED_ANNOTATION) else {
                parts.push(format!(
                    "{id} changed (its {APPLIED_ANNOTATION} annotation was removed)"
                ));
                continue;
            };
            let Some(resource) = resource_by_kind(&id.kind) else {
                continue;
            };
            let mut body: Value =
                serde_json::from_str(applied).map_err(|e| KubeError::Annotation {
                    object: id.to_string(),
                    annotation: APPLIED_ANNOTATION,
                    reason: e.to_string(),
                })?;
            if !body.is_object() {
                parts.push(format!(
                    "{id} changed (its {APPLIED_ANNOTATION} annotation is not an object)"
                ));
                continue;
            }
            let metadata = object_map(&mut body, "metadata");
            object_map_in(metadata, "annotations")
                .insert(APPLIED_ANNOTATION.into(), applied.into());
            let desired = Desired {
                resource,
                id: id.clone(),
                body,
            };
            let would_be = self
                .server_side_apply(&client, &desired, &desired.body, true)
                .await?;
            let as_value = |o: &DynamicObject| {
                serde_json::to_value(o).map_err(|e| KubeError::Api {
                    action: "compare",
                    object: id.to_string(),
                    reason: e.to_string(),
                })
            };
            let want = comparable(&as_value(&would_be)?);
            let have = comparable(&as_value(obj)?);
            if want != have {
                parts.push(format!(
                    "{id} changed ({})",
                    differing_fields(&want, &have).join(", ")
                ));
            }
        }
        for (id, record, _) in &live {
            if !expected.contains(id) && record.sequence <= current.sequence {
                parts.push(format!("{id} added"));
            }
        }
        Ok((!parts.is_empty()).then(|| parts.join(", ")))
    }

    /// Why the release running for `app` in `env` has not rolled out (`release N of APP in ENV has not
    /// rolled out: …`), as seen by the last [`KubernetesTarget::drift`] of this target; `None` when its
    /// Deployments were available then. No request: drift already lists the Deployments, and a rollout
    /// that failed or timed out must keep being reported without the release being applied again.
    pub fn rollout_pending(&self, env: &str, app: &str) -> Option<String> {
        self.rollouts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(env.to_string(), app.to_string()))
            .cloned()
    }

    fn note_rollout(&self, env: &str, app: &str, pending: Option<String>) {
        let mut rollouts = self.rollouts.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (env.to_string(), app.to_string());
        match pending {
            Some(state) => {
                rollouts.insert(key, state);
            }
            None => {
                rollouts.remove(&key);
            }
        }
    }

    /// Every release applied in the cluster: (environment, record), found by the agent's labels.
    pub async fn list(&self) -> Result<Vec<(String, ReleaseRecord)>, TargetError> {
        let client = self.client().await?;
        let mut newest: BTreeMap<(String, String), ReleaseRecord> = BTreeMap::new();
        for resource in RESOURCES.iter() {
            let list = Self::api(&client, resource, None)
                .list(&ListParams::default().labels(ENV_LABEL))
                .await
                .map_err(|e| KubeError::Api {
                    action: "list",
                    object: format!("{} objects", resource.kind),
                    reason: api_reason(&e),
                })?;
            for obj in &list.items {
                let Some(env) = obj.metadata.labels.as_ref().and_then(|l| l.get(ENV_LABEL)) else {
                    continue;
                };
                let Some(record) = record_of(&resource.kind, obj)? else {
                    continue;
                };
                let key = (env.clone(), record.app.clone());
                if newest
                    .get(&key)
                    .is_none_or(|r| r.sequence < record.sequence)
                {
                    newest.insert(key, record);
                }
            }
        }
        Ok(newest
            .into_iter()
            .map(|((env, _), record)| (env, record))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(sequence: u64) -> ReleaseRecord {
        ReleaseRecord {
            app: "hello".into(),
            sequence,
            release_digest: format!("sha256:{:064x}", sequence),
            image_digest: format!("sha256:{:064x}", sequence + 1000),
            applied_at: "2026-11-23T09:00:00Z".into(),
            signed_by: "key-1".into(),
            commit: String::new(),
            source: String::new(),
            files: BTreeMap::new(),
            floor: sequence,
            rollback: None,
        }
    }

    const DEPLOYMENT: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: hello\n  namespace: shop\nspec:\n  replicas: 2\n";

    #[test]
    fn parses_known_kinds_in_apply_order_and_skips_kustomization() {
        let files = BTreeMap::from([
            ("deployment.yaml".to_string(), DEPLOYMENT.to_string()),
            (
                "kustomization.yaml".to_string(),
                "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [deployment.yaml]\n".to_string(),
            ),
            (
                "sa.yaml".to_string(),
                "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: hello, namespace: shop}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: hello, namespace: shop}\n".to_string(),
            ),
        ]);
        let parsed = parse_manifests(&files).unwrap();
        let ids: Vec<String> = parsed.iter().map(|d| d.id.to_string()).collect();
        assert_eq!(
            ids,
            [
                "ServiceAccount shop/hello",
                "Service shop/hello",
                "Deployment shop/hello"
            ]
        );
        assert_eq!(parsed[2].resource.plural, "deployments");
        assert_eq!(parsed[2].resource.group, "apps");
    }

    #[test]
    fn refuses_unknown_kinds_and_objects_without_namespace_naming_the_file() {
        let secret = BTreeMap::from([(
            "secret.yaml".to_string(),
            "apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: shop}\n".to_string(),
        )]);
        let err = parse_manifests(&secret).unwrap_err().to_string();
        assert!(
            err.contains("secret.yaml") && err.contains("\"Secret\""),
            "{err}"
        );
        let no_ns = BTreeMap::from([(
            "d.yaml".to_string(),
            DEPLOYMENT.replace("  namespace: shop\n", ""),
        )]);
        let err = parse_manifests(&no_ns).unwrap_err().to_string();
        assert!(
            err.contains("d.yaml") && err.contains("metadata.namespace"),
            "{err}"
        );
        let twice = BTreeMap::from([(
            "d.yaml".to_string(),
            format!("{DEPLOYMENT}---\n{DEPLOYMENT}"),
        )]);
        let err = parse_manifests(&twice).unwrap_err().to_string();
        assert!(
            err.contains("document 2") && err.contains("second time"),
            "{err}"
        );
    }

    #[test]
    fn decorated_object_carries_labels_record_and_itself_as_applied() {
        let files = BTreeMap::from([("deployment.yaml".to_string(), DEPLOYMENT.to_string())]);
        let desired = parse_manifests(&files).unwrap();
        let body = decorate(&desired[0], "staging", &record(4), "[]").unwrap();
        assert_eq!(body["metadata"]["labels"][RELEASE_LABEL], "4");
        assert_eq!(body["metadata"]["labels"][APP_LABEL], "hello");
        let rec: ReleaseRecord = serde_json::from_str(
            body["metadata"]["annotations"][RECORD_ANNOTATION]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(rec, record(4));
        let applied: Value = serde_json::from_str(
            body["metadata"]["annotations"][APPLIED_ANNOTATION]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        let mut without = body.clone();
        without["metadata"]["annotations"]
            .as_object_mut()
            .unwrap()
            .remove(APPLIED_ANNOTATION);
        assert_eq!(applied, without);
    }

    #[test]
    fn app_label_is_the_name_or_a_hash() {
        assert_eq!(app_label_value("hello"), "hello");
        let hashed = app_label_value("team/api");
        assert!(hashed.starts_with("h-") && hashed.len() == 42, "{hashed}");
        assert_ne!(hashed, app_label_value("team/apj"));
    }

    #[test]
    fn rollout_state_names_what_is_missing() {
        let mut d = serde_json::json!({
            "metadata": {"generation": 2},
            "spec": {"replicas": 3},
            "status": {"observedGeneration": 1, "updatedReplicas": 1,
                "conditions": [{"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"}]}
        });
        let (failed, state) = rollout_state(&d).unwrap_err();
        assert!(!failed);
        assert!(
            state.contains("generation 2") && state.contains("1 of 3 replicas updated"),
            "{state}"
        );
        assert!(
            state.contains("Available=False (MinimumReplicasUnavailable)"),
            "{state}"
        );
        d["status"] = serde_json::json!({"observedGeneration": 2, "updatedReplicas": 3,
            "conditions": [{"type": "Available", "status": "True"}]});
        assert!(rollout_state(&d).is_ok());
        d["status"]["conditions"] = serde_json::json!([{"type": "Progressing", "status": "False",
            "reason": "ProgressDeadlineExceeded", "message": "ReplicaSet hello-1 has timed out progressing."}]);
        let (failed, state) = rollout_state(&d).unwrap_err();
        assert!(
            failed && state.contains("ProgressDeadlineExceeded"),
            "{state}"
        );
    }

    #[test]
    fn pending_rollout_names_only_unavailable_deployments_of_the_current_release() {
        let object = |kind: &str, name: &str, sequence: u64, available: &str| {
            let obj: DynamicObject = serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "namespace": "shop", "generation": 1},
                "spec": {"replicas": 1},
                "status": {"observedGeneration": 1, "updatedReplicas": 1,
                    "conditions": [{"type": "Available", "status": available}]}
            }))
            .unwrap();
            (live_ref(kind, &obj), record(sequence), obj)
        };
        let live = vec![
            object("Deployment", "web", 4, "True"),
            object("Deployment", "worker", 4, "False"),
            // An older release's leftover and a kind without rollouts are not the release's rollout.
            object("Deployment", "old", 3, "False"),
            object("Service", "web", 4, "False"),
        ];
        assert_eq!(
            pending_rollout("staging", "hello", 4, &live).as_deref(),
            Some(
                "release 4 of hello in staging has not rolled out: Deployment shop/worker: Available=False"
            )
        );
        assert_eq!(pending_rollout("staging", "hello", 4, &live[..1]), None);
    }

    #[test]
    fn comparison_ignores_server_fields_and_names_differences() {
        let live = serde_json::json!({"metadata": {"name": "a", "resourceVersion": "7", "managedFields": []},
            "spec": {"replicas": 5}, "status": {"replicas": 5}});
        let want = serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "a", "resourceVersion": "8"}, "spec": {"replicas": 2}});
        assert_eq!(
            differing_fields(&comparable(&want), &comparable(&live)),
            vec!["spec".to_string()]
        );
        let same = serde_json::json!({"metadata": {"name": "a"}, "spec": {"replicas": 5}});
        assert_eq!(comparable(&same), comparable(&live));
    }

    #[test]
    fn spec_names_context_and_state_dir() {
        let mut spec = KubernetesSpec::new(Some("prod/eu".into()));
        assert_eq!(spec.to_string(), "kubernetes:prod/eu");
        spec.state_dir = Some("/var/lib/airlock-agent".into());
        let target = KubernetesTarget::new(spec);
        assert_eq!(
            target.status_path("staging"),
            PathBuf::from("/var/lib/airlock-agent/status-staging.json")
        );
        assert_eq!(
            target.app_path("staging", "hello"),
            PathBuf::from("kubernetes:prod/eu#staging/hello")
        );
    }
}
