//! The one error type of this crate; every variant names the input that was wrong.

use std::path::PathBuf;

/// Why an `airlock.toml` could not be read or is not acceptable.
#[derive(Debug, thiserror::Error)]
pub enum DescriptorError {
    /// The file could not be read (missing, unreadable, not UTF-8).
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file that was asked for.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is larger than any real descriptor.
    #[error("{what} is {size} bytes, larger than the {limit}-byte limit for airlock.toml")]
    TooLarge {
        /// The file (or "text") that was too large.
        what: String,
        /// Its size in bytes.
        size: u64,
        /// The limit in bytes.
        limit: u64,
    },
    /// The text is not valid TOML, or a value has the wrong type.
    #[error("airlock.toml line {line}: {message}")]
    Parse {
        /// 1-based line of the offending text.
        line: usize,
        /// What is wrong, naming the key where one is known.
        message: String,
    },
    /// A key that the descriptor format does not have (often a typo).
    #[error(
        "airlock.toml line {line}: unknown key `{key}` in {section} (expected one of: {expected})"
    )]
    UnknownKey {
        /// 1-based line of the key.
        line: usize,
        /// The key as written.
        key: String,
        /// The table it appeared in, e.g. `[run]`.
        section: String,
        /// The keys that table accepts, comma separated.
        expected: String,
    },
    /// A value that parses but is not acceptable (bad name, port, quantity...).
    #[error("{}{message}", line_prefix(*.line))]
    Invalid {
        /// 1-based line of the value, when the value came from a file.
        line: Option<usize>,
        /// Dotted path of the field, e.g. `deploy.resources.memory`.
        field: String,
        /// The full explanation, naming field and value.
        message: String,
    },
}

fn line_prefix(line: Option<usize>) -> String {
    match line {
        Some(line) => format!("airlock.toml line {line}: "),
        None => "airlock.toml: ".to_string(),
    }
}
