//! Names, labels and annotations shared by every object of one app in one environment.

use crate::node::{Node, map};

/// Metadata common to all objects of one rendered app.
pub(crate) struct Meta {
    pub name: String,
    pub namespace: String,
    /// Stable labels used in selectors (never change between releases).
    pub selector: Vec<(String, String)>,
    /// All labels: selector plus version, part-of, managed-by, team.
    pub labels: Vec<(String, String)>,
    pub annotations: Vec<(String, String)>,
}

/// Label key holding the owning team.
pub const TEAM_LABEL: &str = "airlock.dev/team";
/// Annotation holding the source commit.
pub const COMMIT_ANNOTATION: &str = "airlock.dev/commit";
/// Annotation holding the gate run id.
pub const RUN_ANNOTATION: &str = "airlock.dev/run";
/// Annotation holding the release sequence number.
pub const RELEASE_ANNOTATION: &str = "airlock.dev/release";

fn pairs(items: &[(String, String)]) -> Node {
    Node::Map(
        items
            .iter()
            .map(|(k, v)| (k.clone(), Node::Str(v.clone())))
            .collect(),
    )
}

impl Meta {
    /// `matchLabels`-style map of the selector labels.
    pub fn selector(&self) -> Node {
        pairs(&self.selector)
    }

    /// `metadata` of a namespaced object named after the app.
    pub fn object(&self) -> Node {
        map! {
            "name" => &self.name,
            "namespace" => &self.namespace,
            "labels" => pairs(&self.labels),
            "annotations" => pairs(&self.annotations),
        }
    }

    /// `metadata` of the pod template (no name or namespace).
    pub fn pod(&self) -> Node {
        map! {
            "labels" => pairs(&self.labels),
            "annotations" => pairs(&self.annotations),
        }
    }
}
