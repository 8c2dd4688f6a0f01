//! The ClusterIP Service in front of the app's port, and the app's own ServiceAccount
//! (so it never runs as `default`), which mounts no API token.

use airlock_descriptor::AppDescriptor;

use crate::deployment::PORT_NAME;
use crate::labels::Meta;
use crate::node::{Node, map, seq};

/// Renders `service.yaml`'s object.
pub(crate) fn service(app: &AppDescriptor, meta: &Meta) -> Node {
    map! {
        "apiVersion" => "v1",
        "kind" => "Service",
        "metadata" => meta.object(),
        "spec" => map! {
            "type" => "ClusterIP",
            "selector" => meta.selector(),
            "ports" => seq![map! {
                "name" => PORT_NAME,
                "port" => app.run.port,
                "targetPort" => PORT_NAME,
                "protocol" => "TCP",
            }],
        },
    }
}

/// Renders `serviceaccount.yaml`'s object.
pub(crate) fn service_account(meta: &Meta) -> Node {
    map! {
        "apiVersion" => "v1",
        "kind" => "ServiceAccount",
        "metadata" => meta.object(),
        "automountServiceAccountToken" => false,
    }
}
