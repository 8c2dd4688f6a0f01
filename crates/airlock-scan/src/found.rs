//! The result of parsing one package-manager file, before it becomes a [`crate::Package`].

use crate::package::SourcePackage;

/// A package as one file records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Found {
    /// Name as recorded.
    pub name: String,
    /// Version as recorded.
    pub version: String,
    /// Architecture, for OS packages.
    pub arch: Option<String>,
    /// Source package, for OS packages.
    pub source: Option<SourcePackage>,
    /// Built from local sources, not taken from the ecosystem's registry (see [`crate::Package::local`]).
    pub local: bool,
}

impl Found {
    /// A package with only a name and a version.
    pub(crate) fn new(name: impl Into<String>, version: impl Into<String>) -> Self {
        Found {
            name: name.into(),
            version: version.into(),
            arch: None,
            source: None,
            local: false,
        }
    }
}
