//! A small ordered YAML tree. Maps keep insertion order, so objects read in the
//! conventional Kubernetes order (apiVersion, kind, metadata, spec) and the output
//! does not depend on serde_json's `preserve_order` feature being on or off.

use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

/// One YAML value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    Str(String),
    Int(i64),
    Bool(bool),
    Seq(Vec<Node>),
    Map(Vec<(String, Node)>),
}

impl Node {
    /// Appends `key: value` to a map node (no-op on other nodes).
    pub(crate) fn push(&mut self, key: &str, value: impl Into<Node>) {
        if let Node::Map(entries) = self {
            entries.push((key.to_string(), value.into()));
        }
    }
}

/// Builds a [`Node::Map`] in the order written: `map! { "a" => 1, "b" => "x" }`.
macro_rules! map {
    ($($k:expr => $v:expr),* $(,)?) => {
        $crate::node::Node::Map(vec![$(($k.to_string(), $crate::node::Node::from($v))),*])
    };
}
pub(crate) use map;

/// Builds a [`Node::Seq`]: `seq![a, b]`.
macro_rules! seq {
    ($($v:expr),* $(,)?) => {
        $crate::node::Node::Seq(vec![$($crate::node::Node::from($v)),*])
    };
}
pub(crate) use seq;

impl From<&str> for Node {
    fn from(v: &str) -> Self {
        Node::Str(v.to_string())
    }
}
impl From<String> for Node {
    fn from(v: String) -> Self {
        Node::Str(v)
    }
}
impl From<&String> for Node {
    fn from(v: &String) -> Self {
        Node::Str(v.clone())
    }
}
impl From<bool> for Node {
    fn from(v: bool) -> Self {
        Node::Bool(v)
    }
}
impl From<u16> for Node {
    fn from(v: u16) -> Self {
        Node::Int(i64::from(v))
    }
}
impl From<u32> for Node {
    fn from(v: u32) -> Self {
        Node::Int(i64::from(v))
    }
}
impl From<i64> for Node {
    fn from(v: i64) -> Self {
        Node::Int(v)
    }
}
impl From<Vec<Node>> for Node {
    fn from(v: Vec<Node>) -> Self {
        Node::Seq(v)
    }
}

impl Serialize for Node {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Node::Str(v) => s.serialize_str(v),
            Node::Int(v) => s.serialize_i64(*v),
            Node::Bool(v) => s.serialize_bool(*v),
            Node::Seq(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Node::Map(entries) => {
                let mut map = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn serialises_maps_in_insertion_order_and_quotes_ambiguous_strings() {
        let n = map! { "kind" => "Service", "apiVersion" => "v1", "port" => 80u16, "version" => "7", "on" => "yes" };
        let yaml = serde_saphyr::to_string(&n).unwrap();
        let kind = yaml.find("kind").unwrap();
        let api = yaml.find("apiVersion").unwrap();
        assert!(kind < api, "{yaml}");
        assert!(yaml.contains("port: 80\n"), "{yaml}");
        assert!(
            !yaml.contains("version: 7\n"),
            "a numeric string must stay a string: {yaml}"
        );
        assert!(
            !yaml.contains("on: yes\n"),
            "a YAML 1.1 bool word must be quoted: {yaml}"
        );
    }
}
