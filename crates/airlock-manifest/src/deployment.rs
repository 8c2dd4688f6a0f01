//! The hardened Deployment: non-root, read-only root filesystem, no privilege escalation,
//! no capabilities, RuntimeDefault seccomp, no service-account token, probes, requests
//! and limits, writable `/tmp` only, spread across nodes.

use airlock_descriptor::AppDescriptor;

use crate::labels::Meta;
use crate::node::{Node, map, seq};
use crate::resources::Resolved;

/// UID and GID the app runs as (the "nonroot" user of distroless images).
pub const RUN_AS_ID: i64 = 65532;
/// Name of the single container in the pod.
pub const CONTAINER_NAME: &str = "app";
/// Name of the container port, used by probes and the Service.
pub const PORT_NAME: &str = "http";
/// Probe period in seconds; the startup probe allows `start_timeout` / this many failures.
const PROBE_PERIOD: u64 = 5;

/// What the Deployment needs beyond the descriptor.
pub(crate) struct DeploymentInput<'a> {
    pub meta: &'a Meta,
    pub image: &'a str,
    /// `None` when a HorizontalPodAutoscaler owns the replica count.
    pub replicas: Option<u32>,
    pub resources: &'a Resolved,
}

fn probe(app: &AppDescriptor, period: u64, failures: u64) -> Node {
    let mut p = match &app.run.health {
        Some(path) => map! { "httpGet" => map! { "path" => path, "port" => PORT_NAME } },
        None => map! { "tcpSocket" => map! { "port" => PORT_NAME } },
    };
    p.push("periodSeconds", period as i64);
    p.push("timeoutSeconds", 2i64);
    p.push("failureThreshold", failures as i64);
    p
}

fn security_context_container() -> Node {
    map! {
        "runAsNonRoot" => true,
        "runAsUser" => RUN_AS_ID,
        "runAsGroup" => RUN_AS_ID,
        "readOnlyRootFilesystem" => true,
        "allowPrivilegeEscalation" => false,
        "privileged" => false,
        "capabilities" => map! { "drop" => seq!["ALL"] },
        "seccompProfile" => map! { "type" => "RuntimeDefault" },
    }
}

fn security_context_pod() -> Node {
    map! {
        "runAsNonRoot" => true,
        "runAsUser" => RUN_AS_ID,
        "runAsGroup" => RUN_AS_ID,
        "fsGroup" => RUN_AS_ID,
        "seccompProfile" => map! { "type" => "RuntimeDefault" },
    }
}

/// Renders `deployment.yaml`'s object.
pub(crate) fn deployment(app: &AppDescriptor, input: &DeploymentInput<'_>) -> Node {
    let meta = input.meta;
    let r = input.resources;
    let mut container = map! {
        "name" => CONTAINER_NAME,
        "image" => input.image,
        "imagePullPolicy" => "IfNotPresent",
    };
    if !app.run.command.is_empty() {
        container.push(
            "command",
            app.run.command.iter().map(Node::from).collect::<Vec<_>>(),
        );
    }
    container.push(
        "ports",
        seq![map! { "name" => PORT_NAME, "containerPort" => app.run.port, "protocol" => "TCP" }],
    );
    if !app.deploy.env.is_empty() {
        container.push(
            "env",
            app.deploy
                .env
                .iter()
                .map(|(k, v)| map! { "name" => k, "value" => v })
                .collect::<Vec<_>>(),
        );
    }
    container.push(
        "resources",
        map! {
            "requests" => map! { "cpu" => &r.cpu, "memory" => &r.memory },
            "limits" => map! { "cpu" => &r.cpu_limit, "memory" => &r.memory_limit },
        },
    );
    let startup_failures = app.run.start_timeout_secs.div_ceil(PROBE_PERIOD).max(1);
    container.push("startupProbe", probe(app, PROBE_PERIOD, startup_failures));
    container.push("readinessProbe", probe(app, PROBE_PERIOD, 3));
    container.push("livenessProbe", probe(app, 10, 3));
    container.push("securityContext", security_context_container());
    container.push(
        "volumeMounts",
        seq![map! { "name" => "tmp", "mountPath" => "/tmp" }],
    );

    let pod_spec = map! {
        "serviceAccountName" => &meta.name,
        "automountServiceAccountToken" => false,
        "enableServiceLinks" => false,
        "securityContext" => security_context_pod(),
        "topologySpreadConstraints" => seq![map! {
            "maxSkew" => 1i64,
            "topologyKey" => "kubernetes.io/hostname",
            "whenUnsatisfiable" => "ScheduleAnyway",
            "labelSelector" => map! { "matchLabels" => meta.selector() },
        }],
        "containers" => seq![container],
        "volumes" => seq![map! { "name" => "tmp", "emptyDir" => map! {} }],
    };

    let mut spec = map! {};
    if let Some(replicas) = input.replicas {
        spec.push("replicas", replicas);
    }
    spec.push("revisionHistoryLimit", 5i64);
    spec.push("selector", map! { "matchLabels" => meta.selector() });
    spec.push(
        "strategy",
        map! {
            "type" => "RollingUpdate",
            "rollingUpdate" => map! { "maxSurge" => 1i64, "maxUnavailable" => 0i64 },
        },
    );
    spec.push(
        "template",
        map! { "metadata" => meta.pod(), "spec" => pod_spec },
    );

    map! {
        "apiVersion" => "apps/v1",
        "kind" => "Deployment",
        "metadata" => meta.object(),
        "spec" => spec,
    }
}
