//! The NetworkPolicy: no ingress except the app port from the ingress controller's
//! namespace, no egress except DNS (port 53, UDP and TCP, to any destination so that
//! node-local DNS caches work too).

use airlock_descriptor::AppDescriptor;

use crate::labels::Meta;
use crate::node::{Node, map, seq};

/// Label every namespace carries with its own name (Kubernetes 1.21+).
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// Renders `networkpolicy.yaml`'s object.
pub(crate) fn network_policy(app: &AppDescriptor, meta: &Meta, ingress_namespace: &str) -> Node {
    map! {
        "apiVersion" => "networking.k8s.io/v1",
        "kind" => "NetworkPolicy",
        "metadata" => meta.object(),
        "spec" => map! {
            "podSelector" => map! { "matchLabels" => meta.selector() },
            "policyTypes" => seq!["Ingress", "Egress"],
            "ingress" => seq![map! {
                "from" => seq![map! {
                    "namespaceSelector" => map! {
                        "matchLabels" => map! { NAMESPACE_NAME_LABEL => ingress_namespace },
                    },
                }],
                "ports" => seq![map! { "protocol" => "TCP", "port" => app.run.port }],
            }],
            "egress" => seq![map! {
                "ports" => seq![
                    map! { "protocol" => "UDP", "port" => 53i64 },
                    map! { "protocol" => "TCP", "port" => 53i64 },
                ],
            }],
        },
    }
}
