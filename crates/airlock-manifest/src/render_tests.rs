use airlock_descriptor::{AppDescriptor, Resources};
use serde_json::Value;

use super::*;

const APP: &str = r#"
[app]
name = "hello"
team = "shop"

[run]
command = ["/app/hello", "--port", "8080"]
port = 8080
health = "/healthz"

[deploy]
replicas = 3
env = { RUST_LOG = "info", GREETING = "yes" }

[deploy.resources]
cpu = "250m"
memory = "128Mi"
"#;

fn app(text: &str) -> AppDescriptor {
    AppDescriptor::from_toml_str(text).unwrap()
}

fn env() -> EnvironmentSettings {
    EnvironmentSettings {
        name: "prod".into(),
        namespace: "shop-prod".into(),
        replicas: None,
        default_resources: Resources::default(),
        max_cpu_millis: Some(2000),
        max_memory_bytes: Some(1 << 30),
        ingress_namespace: "ingress-nginx".into(),
        registry_rewrite: Some(("gate.local:5000/".into(), "mirror.prod/".into())),
    }
}

fn meta() -> RenderMeta {
    RenderMeta {
        image: format!("gate.local:5000/shop/hello@sha256:{}", "0f".repeat(32)),
        commit: "4b825dc642cb6eb9a060e54bf8d69288fbee4904".into(),
        run_id: "01J0RUN".into(),
        release_sequence: 12,
        team: "shop".into(),
    }
}

fn yaml(out: &RenderedEnvironment, file: &str) -> Value {
    serde_saphyr::from_str(&out.files[file]).unwrap()
}

#[test]
fn renders_core_files_and_kustomization_listing_them() {
    let out = render(&app(APP), &env(), &meta()).unwrap();
    let names: Vec<&str> = out.files.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "deployment.yaml",
            "kustomization.yaml",
            "networkpolicy.yaml",
            "poddisruptionbudget.yaml",
            "service.yaml",
            "serviceaccount.yaml"
        ]
    );
    let k = yaml(&out, "kustomization.yaml");
    let listed: Vec<&str> = k["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for name in names.iter().filter(|n| **n != "kustomization.yaml") {
        assert!(listed.contains(name), "{name} not in kustomization");
    }
}

#[test]
fn output_is_byte_identical_for_identical_input() {
    let a = render(&app(APP), &env(), &meta()).unwrap();
    let b = render(&app(APP), &env(), &meta()).unwrap();
    assert_eq!(a, b);
}

#[test]
fn deployment_uses_rewritten_image_by_digest() {
    let out = render(&app(APP), &env(), &meta()).unwrap();
    let d = yaml(&out, "deployment.yaml");
    let c = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        c["image"],
        format!("mirror.prod/shop/hello@sha256:{}", "0f".repeat(32))
    );
    assert_eq!(c["imagePullPolicy"], "IfNotPresent");
}

#[test]
fn deployment_is_hardened() {
    let out = render(&app(APP), &env(), &meta()).unwrap();
    let d = yaml(&out, "deployment.yaml");
    let pod = &d["spec"]["template"]["spec"];
    assert_eq!(pod["automountServiceAccountToken"], false);
    assert_eq!(pod["serviceAccountName"], "hello");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["fsGroup"], 65532);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    assert_eq!(
        pod["topologySpreadConstraints"][0]["topologyKey"],
        "kubernetes.io/hostname"
    );
    assert_eq!(pod["volumes"][0]["name"], "tmp");
    assert!(
        pod["volumes"][0]["emptyDir"].is_object(),
        "/tmp is an emptyDir: {:?}",
        pod["volumes"][0]
    );
    let c = &pod["containers"][0];
    let sc = &c["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["runAsUser"], 65532);
    assert_eq!(sc["capabilities"]["drop"][0], "ALL");
    assert_eq!(c["volumeMounts"][0]["mountPath"], "/tmp");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["port"], "http");
    assert_eq!(c["startupProbe"]["failureThreshold"], 6);
    assert_eq!(c["resources"]["requests"]["cpu"], "250m");
    assert_eq!(c["resources"]["limits"]["memory"], "128Mi");
    assert_eq!(c["resources"]["limits"]["cpu"], "2");
    assert_eq!(c["command"][0], "/app/hello");
    assert_eq!(c["env"][0]["name"], "GREETING");
    assert_eq!(
        c["env"][0]["value"], "yes",
        "a YAML 1.1 boolean word must stay a string"
    );
    assert_eq!(d["spec"]["replicas"], 3);
}

#[test]
fn labels_and_annotations_record_the_release() {
    let out = render(&app(APP), &env(), &meta()).unwrap();
    let d = yaml(&out, "deployment.yaml");
    let l = &d["metadata"]["labels"];
    assert_eq!(l["app.kubernetes.io/name"], "hello");
    assert_eq!(l["app.kubernetes.io/instance"], "hello-prod");
    assert_eq!(l["app.kubernetes.io/version"], "12");
    assert_eq!(l["app.kubernetes.io/managed-by"], "airlock");
    assert_eq!(l["airlock.dev/team"], "shop");
    let a = &d["metadata"]["annotations"];
    assert_eq!(
        a["airlock.dev/commit"],
        "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
    );
    assert_eq!(a["airlock.dev/run"], "01J0RUN");
    assert_eq!(a["airlock.dev/release"], "12");
    assert_eq!(d["metadata"]["namespace"], "shop-prod");
    let selector = &d["spec"]["selector"]["matchLabels"];
    assert!(
        selector.get("app.kubernetes.io/version").is_none(),
        "selectors must not change between releases"
    );
}

#[test]
fn network_policy_admits_only_ingress_namespace_on_app_port() {
    let out = render(&app(APP), &env(), &meta()).unwrap();
    let n = yaml(&out, "networkpolicy.yaml");
    assert_eq!(
        n["spec"]["policyTypes"],
        serde_json::json!(["Ingress", "Egress"])
    );
    let rule = &n["spec"]["ingress"][0];
    assert_eq!(
        rule["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
        "ingress-nginx"
    );
    assert_eq!(rule["ports"][0]["port"], 8080);
    assert_eq!(n["spec"]["egress"][0]["ports"][0]["port"], 53);
}

#[test]
fn omits_pdb_for_single_replica_and_renders_hpa_for_autoscale() {
    let single = APP.replace("replicas = 3", "replicas = 1");
    let out = render(&app(&single), &env(), &meta()).unwrap();
    assert!(!out.files.contains_key("poddisruptionbudget.yaml"));
    assert!(!out.files.contains_key("horizontalpodautoscaler.yaml"));

    let scaled = format!("{APP}\n[deploy.autoscale]\nmin = 2\nmax = 6\ncpu_percent = 75\n");
    let out = render(&app(&scaled), &env(), &meta()).unwrap();
    let h = yaml(&out, "horizontalpodautoscaler.yaml");
    assert_eq!(h["spec"]["minReplicas"], 2);
    assert_eq!(h["spec"]["maxReplicas"], 6);
    assert_eq!(
        h["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
        75
    );
    assert!(
        yaml(&out, "deployment.yaml")["spec"]
            .get("replicas")
            .is_none()
    );
    assert!(out.files["kustomization.yaml"].contains("horizontalpodautoscaler.yaml"));
}

#[test]
fn environment_replicas_override_descriptor_and_autoscale() {
    let scaled = format!("{APP}\n[deploy.autoscale]\nmin = 2\nmax = 6\ncpu_percent = 75\n");
    let mut env = env();
    env.replicas = Some(1);
    let out = render(&app(&scaled), &env, &meta()).unwrap();
    assert_eq!(yaml(&out, "deployment.yaml")["spec"]["replicas"], 1);
    assert!(!out.files.contains_key("horizontalpodautoscaler.yaml"));
    assert!(!out.files.contains_key("poddisruptionbudget.yaml"));
}

#[test]
fn uses_tcp_probes_without_health_path() {
    let text = APP.replace("health = \"/healthz\"\n", "");
    let out = render(&app(&text), &env(), &meta()).unwrap();
    let c = &yaml(&out, "deployment.yaml")["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["livenessProbe"]["tcpSocket"]["port"], "http");
}

#[test]
fn rejects_image_not_pinned_by_digest() {
    let mut m = meta();
    m.image = "gate.local:5000/shop/hello:latest".into();
    let e = render(&app(APP), &env(), &m).unwrap_err().to_string();
    assert!(
        e.starts_with("meta.image \"gate.local:5000/shop/hello:latest\" is not pinned by digest"),
        "{e}"
    );
}

#[test]
fn rejects_request_above_environment_ceiling() {
    let text = APP.replace("memory = \"128Mi\"", "memory = \"4Gi\"");
    let e = render(&app(&text), &env(), &meta())
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "deploy.resources.memory \"4Gi\" is above the ceiling of environment \"prod\" (1Gi)"
    );
}

#[test]
fn rejects_invalid_values_in_hand_built_descriptor() {
    let mut a = app(APP);
    a.app.name = "Hello_World".into();
    let e = render(&a, &env(), &meta()).unwrap_err().to_string();
    assert!(
        e.starts_with("app.name \"Hello_World\" is not a DNS-1123 label"),
        "{e}"
    );
    let mut a = app(APP);
    a.deploy.env.insert("BAD-NAME".into(), "x".into());
    let e = render(&a, &env(), &meta()).unwrap_err().to_string();
    assert!(
        e.starts_with("deploy.env.BAD-NAME \"BAD-NAME\" is not a valid environment variable name"),
        "{e}"
    );
}

#[test]
fn rejects_default_namespace() {
    let mut env = env();
    env.namespace = "default".into();
    let e = render(&app(APP), &env, &meta()).unwrap_err().to_string();
    assert!(
        e.starts_with("environment.namespace \"default\" is not allowed"),
        "{e}"
    );
}

#[test]
fn environment_settings_deserialise_from_gate_config() {
    let text = r#"{
        "name": "staging", "namespace": "shop-staging", "ingress_namespace": "ingress-nginx",
        "max_cpu_millis": 1000, "registry_rewrite": ["gate:5000/", "mirror/"],
        "default_resources": { "cpu": "100m" }
    }"#;
    let env: EnvironmentSettings = serde_json::from_str(text).unwrap();
    assert_eq!(
        env.registry_rewrite,
        Some(("gate:5000/".into(), "mirror/".into()))
    );
    assert_eq!(env.default_resources.cpu.as_deref(), Some("100m"));
    assert_eq!(env.replicas, None);
    let typo = text.replace("max_cpu_millis", "max_cpu");
    let e = serde_json::from_str::<EnvironmentSettings>(&typo)
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown field `max_cpu`"), "{e}");
}
