//! The one error type of this crate: every variant names the input that was wrong.

use std::path::PathBuf;

/// Why loading policies or waivers, or evaluating a decision, failed.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// A policy directory, policy file or waivers file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// An input was larger or more numerous than this crate accepts.
    #[error("{what} exceeds the limit of {limit}: {subject}")]
    TooLarge {
        /// What was counted (bytes of a file, number of policy files, ...).
        what: &'static str,
        /// The limit.
        limit: usize,
        /// The file or item that was too large.
        subject: String,
    },
    /// A policy set with no policy in it.
    #[error("no policy found in {0}")]
    Empty(String),
    /// Two policy sources with the same name.
    #[error("policy name {0:?} is used twice")]
    DuplicateName(String),
    /// A policy source without a usable `package` line.
    #[error("policy {name} has no `package` declaration")]
    MissingPackage {
        /// The policy source name.
        name: String,
    },
    /// A policy failed to parse or compile.
    #[error("policy {name} does not compile: {message}")]
    Compile {
        /// The policy source name (empty when the error is across policies).
        name: String,
        /// The engine's message (with line and column).
        message: String,
    },
    /// `evaluate` was asked for a package name that is not a dotted identifier
    /// or that no policy of the set declares.
    #[error("unknown policy package {0:?}")]
    UnknownPackage(String),
    /// The engine failed while evaluating a rule.
    #[error("evaluating {rule} failed: {message}")]
    Eval {
        /// The rule path, e.g. `data.airlock.gate.deny`.
        rule: String,
        /// The engine's message.
        message: String,
    },
    /// A deny/warn entry produced by a policy does not follow the entry convention.
    #[error("{rule} entry #{index} is malformed: {reason} (entry: {entry})")]
    MalformedEntry {
        /// The rule path, e.g. `data.airlock.gate.deny`.
        rule: String,
        /// Position of the entry in the (sorted) set.
        index: usize,
        /// What is wrong.
        reason: String,
        /// The entry as JSON, shortened.
        entry: String,
    },
    /// The waivers file is not valid TOML or has an unknown top-level key.
    #[error("waivers file {path}: {message}")]
    WaiversFile {
        /// The waivers file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// One waiver in a waivers file is wrong.
    #[error("waivers file {path}: waiver #{index} (id {id:?}), field `{field}`: {message}")]
    Waiver {
        /// The waivers file.
        path: PathBuf,
        /// Zero-based position of the `[[waiver]]` table in the file.
        index: usize,
        /// The waiver's id, or empty when it has none.
        id: String,
        /// The field at fault.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A waiver handed to `evaluate` has an expiry that is not `YYYY-MM-DD`.
    #[error("waiver {id:?} for package {package:?}: expiry {expires:?} is not a YYYY-MM-DD date")]
    WaiverExpiry {
        /// The waiver's id.
        id: String,
        /// The waiver's package.
        package: String,
        /// The expiry as given.
        expires: String,
    },
    /// A waiver handed in whole (admin API) is wrong.
    #[error("waiver {id:?}, field `{field}`: {message}")]
    InvalidWaiver {
        /// The waiver's advisory id as given.
        id: String,
        /// The field at fault.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A waiver with the same advisory, package and scope already exists.
    #[error(
        "a waiver for {id:?} in package {package:?} with this scope already exists (key {key})"
    )]
    WaiverExists {
        /// The existing waiver's key.
        key: String,
        /// Its advisory id.
        id: String,
        /// Its package.
        package: String,
    },
    /// No waiver has this key.
    #[error("no waiver has key {0:?}")]
    WaiverNotFound(String),
    /// The waiver comes from the reviewed waivers file, which the admin API does not edit.
    #[error("waiver {key} comes from {path}; remove it there (the file is reviewed like code)")]
    WaiverInFile {
        /// The waiver's key.
        key: String,
        /// The waivers file.
        path: PathBuf,
    },
}
