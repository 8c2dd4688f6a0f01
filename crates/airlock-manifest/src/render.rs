//! Putting it together: check the inputs, resolve image, replicas and resources, render
//! every object and the kustomization that lists them.

use std::collections::BTreeMap;

use airlock_descriptor::AppDescriptor;

use crate::check;
use crate::deployment::{self, DeploymentInput};
use crate::error::ManifestError;
use crate::labels::{COMMIT_ANNOTATION, Meta, RELEASE_ANNOTATION, RUN_ANNOTATION, TEAM_LABEL};
use crate::networkpolicy;
use crate::node::{Node, map};
use crate::resources;
use crate::scaling;
use crate::service;
use crate::settings::{EnvironmentSettings, RenderMeta};

/// First line of every rendered file.
const HEADER: &str =
    "# Rendered by airlock from airlock.toml; edits are overwritten by the next release.\n";

/// The manifests of one app for one environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedEnvironment {
    /// File name (`deployment.yaml`, ...) → YAML text; includes `kustomization.yaml`.
    pub files: BTreeMap<String, String>,
}

fn check_inputs(
    app: &AppDescriptor,
    env: &EnvironmentSettings,
    meta: &RenderMeta,
) -> Result<(), ManifestError> {
    check::dns_label("app.name", &app.app.name)?;
    check::dns_label("environment.name", &env.name)?;
    check::dns_label("environment.namespace", &env.namespace)?;
    if env.namespace == "default" {
        return Err(ManifestError::invalid(
            "environment.namespace",
            &env.namespace,
            "is not allowed: apps get their own namespace",
        ));
    }
    check::dns_label("environment.ingress_namespace", &env.ingress_namespace)?;
    check::label_value("meta.team", &meta.team)?;
    check::annotation_text("meta.commit", &meta.commit)?;
    check::annotation_text("meta.run_id", &meta.run_id)?;
    check::image_by_digest("meta.image", &meta.image)?;
    if app.run.port == 0 {
        return Err(ManifestError::invalid(
            "run.port",
            "0",
            "is not a TCP port (1 to 65535)",
        ));
    }
    if let Some(health) = &app.run.health
        && !health.starts_with('/')
    {
        return Err(ManifestError::invalid(
            "run.health",
            health,
            "must start with '/'",
        ));
    }
    for name in app.deploy.env.keys() {
        check::env_name(&format!("deploy.env.{name}"), name)?;
    }
    if let Some(a) = &app.deploy.autoscale
        && (a.min == 0 || a.max < a.min || a.cpu_percent == 0)
    {
        return Err(ManifestError::invalid(
            "deploy.autoscale",
            format!("min={} max={} cpu_percent={}", a.min, a.max, a.cpu_percent),
            "needs 1 <= min <= max and cpu_percent >= 1",
        ));
    }
    Ok(())
}

/// Applies the environment's registry prefix rewrite and checks the result is still by digest.
fn rewrite_image(env: &EnvironmentSettings, image: &str) -> Result<String, ManifestError> {
    let rewritten = match &env.registry_rewrite {
        Some((from, to)) if !from.is_empty() && image.starts_with(from.as_str()) => {
            format!("{to}{}", &image[from.len()..])
        }
        _ => image.to_string(),
    };
    check::image_by_digest("image after registry_rewrite", &rewritten)?;
    Ok(rewritten)
}

fn meta_for(app: &AppDescriptor, env: &EnvironmentSettings, meta: &RenderMeta) -> Meta {
    let name = app.app.name.clone();
    let instance = {
        let candidate = format!("{name}-{}", env.name);
        if candidate.len() <= 63 {
            candidate
        } else {
            name.clone()
        }
    };
    let selector = vec![
        ("app.kubernetes.io/name".to_string(), name.clone()),
        ("app.kubernetes.io/instance".to_string(), instance),
    ];
    let mut labels = selector.clone();
    labels.extend([
        (
            "app.kubernetes.io/version".to_string(),
            meta.release_sequence.to_string(),
        ),
        ("app.kubernetes.io/part-of".to_string(), meta.team.clone()),
        (
            "app.kubernetes.io/managed-by".to_string(),
            "airlock".to_string(),
        ),
        (TEAM_LABEL.to_string(), meta.team.clone()),
    ]);
    let annotations = vec![
        (COMMIT_ANNOTATION.to_string(), meta.commit.clone()),
        (RUN_ANNOTATION.to_string(), meta.run_id.clone()),
        (
            RELEASE_ANNOTATION.to_string(),
            meta.release_sequence.to_string(),
        ),
    ];
    Meta {
        name,
        namespace: env.namespace.clone(),
        selector,
        labels,
        annotations,
    }
}

fn to_yaml(file: &str, node: &Node) -> Result<String, ManifestError> {
    let body = serde_saphyr::to_string(node).map_err(|e| ManifestError::Yaml {
        file: file.to_string(),
        message: e.to_string(),
    })?;
    Ok(format!("{HEADER}{body}"))
}

/// Renders the hardened manifests of `app` for `env`; identical inputs give byte-identical files.
pub fn render(
    app: &AppDescriptor,
    env: &EnvironmentSettings,
    meta: &RenderMeta,
) -> Result<RenderedEnvironment, ManifestError> {
    check_inputs(app, env, meta)?;
    let image = rewrite_image(env, &meta.image)?;
    let resolved = resources::resolve(&app.deploy.resources, env)?;
    let labels = meta_for(app, env, meta);

    // An environment's fixed replica count wins over the app's autoscaling.
    let (replicas, autoscale) = match (env.replicas, app.deploy.autoscale) {
        (Some(n), _) => (Some(n), None),
        (None, Some(a)) => (None, Some(a)),
        (None, None) => (Some(app.deploy.replicas), None),
    };
    let many_pods = replicas.is_some_and(|n| n > 1) || autoscale.is_some_and(|a| a.max > 1);

    let mut objects: Vec<(&str, Node)> = vec![
        ("serviceaccount.yaml", service::service_account(&labels)),
        (
            "networkpolicy.yaml",
            networkpolicy::network_policy(app, &labels, &env.ingress_namespace),
        ),
        ("service.yaml", service::service(app, &labels)),
        (
            "deployment.yaml",
            deployment::deployment(
                app,
                &DeploymentInput {
                    meta: &labels,
                    image: &image,
                    replicas,
                    resources: &resolved,
                },
            ),
        ),
    ];
    if many_pods {
        objects.push((
            "poddisruptionbudget.yaml",
            scaling::pod_disruption_budget(&labels),
        ));
    }
    if let Some(a) = &autoscale {
        objects.push((
            "horizontalpodautoscaler.yaml",
            scaling::horizontal_pod_autoscaler(&labels, a),
        ));
    }

    let mut files = BTreeMap::new();
    let resources: Vec<Node> = objects.iter().map(|(f, _)| Node::from(*f)).collect();
    for (file, node) in &objects {
        files.insert(file.to_string(), to_yaml(file, node)?);
    }
    let kustomization = map! {
        "apiVersion" => "kustomize.config.k8s.io/v1beta1",
        "kind" => "Kustomization",
        "resources" => resources,
    };
    files.insert(
        "kustomization.yaml".to_string(),
        to_yaml("kustomization.yaml", &kustomization)?,
    );
    Ok(RenderedEnvironment { files })
}

#[cfg(test)]
#[path = "render_tests.rs"]
mod tests;
