//! Availability objects: a PodDisruptionBudget when more than one pod runs, and a
//! HorizontalPodAutoscaler (autoscaling/v2, CPU utilisation) when autoscaling is on.

use airlock_descriptor::Autoscale;

use crate::labels::Meta;
use crate::node::{Node, map, seq};

/// Renders `poddisruptionbudget.yaml`'s object: at most one pod down at a time.
pub(crate) fn pod_disruption_budget(meta: &Meta) -> Node {
    map! {
        "apiVersion" => "policy/v1",
        "kind" => "PodDisruptionBudget",
        "metadata" => meta.object(),
        "spec" => map! {
            "maxUnavailable" => 1i64,
            "selector" => map! { "matchLabels" => meta.selector() },
        },
    }
}

/// Renders `horizontalpodautoscaler.yaml`'s object.
pub(crate) fn horizontal_pod_autoscaler(meta: &Meta, autoscale: &Autoscale) -> Node {
    map! {
        "apiVersion" => "autoscaling/v2",
        "kind" => "HorizontalPodAutoscaler",
        "metadata" => meta.object(),
        "spec" => map! {
            "scaleTargetRef" => map! {
                "apiVersion" => "apps/v1",
                "kind" => "Deployment",
                "name" => &meta.name,
            },
            "minReplicas" => autoscale.min,
            "maxReplicas" => autoscale.max,
            "metrics" => seq![map! {
                "type" => "Resource",
                "resource" => map! {
                    "name" => "cpu",
                    "target" => map! {
                        "type" => "Utilization",
                        "averageUtilization" => autoscale.cpu_percent,
                    },
                },
            }],
        },
    }
}
