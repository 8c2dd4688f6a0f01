//! Files whose packages are recorded inside them rather than in a package database: ELF programs
//! (`cargo auditable`, Go build info) and Java archives. They are recognised by name and mode,
//! confirmed by their first bytes, and reduced to the packages they name as soon as they are read,
//! so their bytes are never kept.

use std::io::Read;

use crate::found::Found;
use crate::package::Ecosystem;

/// What a file might be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Candidate {
    /// An executable file: an ELF program if its first bytes say so.
    Executable,
    /// A `.jar`, `.war`, `.ear` or `.par` file.
    JavaArchive,
}

/// Whether a regular file at `path` with permission bits `mode` is worth opening.
pub(crate) fn candidate(path: &str, mode: u32) -> Option<Candidate> {
    if crate::jar::is_archive_name(path) {
        Some(Candidate::JavaArchive)
    } else if mode & 0o111 != 0 {
        Some(Candidate::Executable)
    } else {
        None
    }
}

/// Reads a candidate of `size` bytes and returns the packages it names (None when it names none).
/// Problems are pushed to `warnings`, each naming `shown`.
pub(crate) fn extract(
    c: Candidate,
    shown: &str,
    reader: &mut dyn Read,
    size: u64,
    warnings: &mut Vec<String>,
) -> Option<Vec<(Ecosystem, Found)>> {
    let mut head = [0u8; 4];
    if size < 4 || reader.read_exact(&mut head).is_err() {
        return None;
    }
    let limit = match c {
        Candidate::Executable if !crate::binary::is_elf(&head) => return None,
        Candidate::Executable => crate::binary::MAX_BINARY,
        Candidate::JavaArchive => crate::jar::MAX_JAR,
    };
    if size > limit {
        warnings.push(format!(
            "{shown}: {size} bytes, over the limit of {limit} for this kind of file; not inspected"
        ));
        return None;
    }
    let mut data = Vec::with_capacity(size as usize);
    data.extend_from_slice(&head);
    if let Err(e) = reader.take(limit - 4).read_to_end(&mut data) {
        warnings.push(format!("{shown}: {e}"));
        return None;
    }
    let found: Vec<(Ecosystem, Found)> = match c {
        Candidate::Executable => match crate::binary::packages(&data) {
            Ok(p) => p,
            Err(e) => {
                warnings.push(format!("{shown}: {e}"));
                return None;
            }
        },
        Candidate::JavaArchive => match crate::jar::packages(&data) {
            Ok((p, w)) => {
                warnings.extend(w.into_iter().map(|w| format!("{shown}!/{w}")));
                p.into_iter().map(|f| (Ecosystem::Maven, f)).collect()
            }
            Err(e) => {
                warnings.push(format!("{shown}: {e}"));
                return None;
            }
        },
    };
    (!found.is_empty()).then_some(found)
}
