//! Inventory of an image from its layers, applying OCI whiteouts so deleted files are not reported.

use std::io::Read;

use crate::error::ScanError;
use crate::package::Inventory;
use crate::tree::{FileTree, Kind, Node, normalize};

/// Most uncompressed bytes read from one layer (a decompression bomb stops here).
pub const MAX_LAYER_UNCOMPRESSED: u64 = 16 << 30;
/// Most tar entries read from one layer.
pub const MAX_LAYER_ENTRIES: u64 = 2_000_000;
/// Most layers in one image.
pub const MAX_LAYERS: usize = 256;

/// Opens the tar stream of a layer. The compression is taken from the bytes themselves (gzip and
/// zstd magic numbers), so Docker and OCI media types, and mislabelled layers, all work.
fn tar_reader<'a>(
    digest: &str,
    media_type: &str,
    data: &'a [u8],
) -> Result<Box<dyn Read + 'a>, ScanError> {
    let inner: Box<dyn Read + 'a> = if data.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(data))
    } else if data.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(
            zstd::stream::read::Decoder::new(data).map_err(|e| ScanError::Layer {
                layer: digest.to_string(),
                message: format!("zstd: {e}"),
            })?,
        )
    } else if media_type.ends_with("gzip") || media_type.ends_with("zstd") {
        return Err(ScanError::Layer {
            layer: digest.to_string(),
            message: format!("media type {media_type} but the data is not compressed that way"),
        });
    } else {
        Box::new(data)
    };
    Ok(Box::new(inner.take(MAX_LAYER_UNCOMPRESSED)))
}

/// One change a layer makes.
enum Change {
    /// `.wh.NAME`: NAME (and everything below it) is deleted from the layers below.
    Whiteout(String),
    /// `.wh..wh..opq` in DIR: everything in DIR from the layers below is hidden.
    Opaque(String),
    /// A directory (replaces a lower file or symlink of the same name).
    Dir(String),
    /// A file, symlink or hard link (replaces anything lower of that name, including a directory).
    Entry(String, Node),
    /// A regular file not kept by the inventory (still hides lower entries).
    Other(String),
    /// A hard link to an earlier path.
    HardLink(String, String),
}

/// Inventories an image from its layers, bottom first: (layer digest, media type, compressed bytes).
/// Whiteouts (`.wh.NAME`, `.wh..wh..opq`) are applied so a file deleted in a later layer is not
/// reported, and each package names the layer that introduced its file. Only the files the
/// inventory needs are kept, with a size limit per kind of file.
pub fn inventory_layers(layers: &[(String, String, Vec<u8>)]) -> Result<Inventory, ScanError> {
    let mut walker = LayerWalker::default();
    for (digest, media_type, data) in layers {
        walker.add_layer(digest, media_type, data)?;
    }
    Ok(walker.finish())
}

/// Applies layers one at a time, bottom first, so a caller never holds more than one layer's
/// bytes (used by [`crate::scan_image`]).
#[derive(Debug, Default)]
pub struct LayerWalker {
    tree: FileTree,
    warnings: Vec<String>,
    layers: usize,
}

impl LayerWalker {
    /// Applies the next layer (its digest, media type and compressed bytes).
    pub fn add_layer(
        &mut self,
        digest: &str,
        media_type: &str,
        data: &[u8],
    ) -> Result<(), ScanError> {
        self.layers += 1;
        if self.layers > MAX_LAYERS {
            return Err(ScanError::Limit {
                what: format!("layers in the image (at layer {digest})"),
                limit: MAX_LAYERS as u64,
            });
        }
        let tree = &mut self.tree;
        let warnings = &mut self.warnings;
        let changes = read_layer(digest, media_type, data, tree, warnings)?;
        // Whiteouts apply to the layers below, so they go first; then this layer's entries.
        for change in &changes {
            match change {
                Change::Whiteout(p) => tree.remove_tree(p),
                Change::Opaque(d) => tree.remove_below(d),
                _ => {}
            }
        }
        for change in changes {
            match change {
                Change::Dir(p) => tree.remove_exact(&p),
                Change::Other(p) => tree.remove_tree(&p),
                Change::Entry(p, node) => {
                    tree.remove_below(&p);
                    if !tree.insert(p.clone(), node) {
                        warnings.push(format!(
                            "/{p} in layer {digest}: limit of kept files reached; skipped"
                        ));
                    }
                }
                Change::HardLink(p, target) => {
                    tree.remove_tree(&p);
                    let linked = match tree.nodes.get(&target).cloned() {
                        Some(Node::File { data, .. }) => Some(Node::File {
                            data,
                            layer: Some(digest.to_string()),
                        }),
                        Some(Node::Found { found, .. }) => Some(Node::Found {
                            found,
                            layer: Some(digest.to_string()),
                        }),
                        _ => None,
                    };
                    if let Some(node) = linked {
                        tree.insert(p, node);
                    } else if Kind::of(&p).is_some() {
                        warnings.push(format!(
                            "/{p} in layer {digest}: hard link to /{target}, which was not kept"
                        ));
                    }
                }
                Change::Whiteout(_) | Change::Opaque(_) => {}
            }
        }
        Ok(())
    }

    /// The inventory of the image as the layers applied so far make it.
    pub fn finish(self) -> Inventory {
        crate::inventory::from_tree(&self.tree, self.warnings)
    }
}

/// Reads one layer's tar stream into the list of changes it makes.
/// `below` is the tree of the layers underneath: entries that cannot hide anything in it are not recorded.
fn read_layer(
    digest: &str,
    media_type: &str,
    data: &[u8],
    below: &FileTree,
    warnings: &mut Vec<String>,
) -> Result<Vec<Change>, ScanError> {
    let layer_err = |message: String| ScanError::Layer {
        layer: digest.to_string(),
        message,
    };
    let mut archive = tar::Archive::new(tar_reader(digest, media_type, data)?);
    let entries = archive
        .entries()
        .map_err(|e| layer_err(format!("tar: {e}")))?;
    let mut changes = Vec::new();
    for (count, entry) in entries.enumerate() {
        if count as u64 >= MAX_LAYER_ENTRIES {
            return Err(ScanError::Limit {
                what: format!("entries in layer {digest}"),
                limit: MAX_LAYER_ENTRIES,
            });
        }
        let mut entry = entry.map_err(|e| layer_err(format!("tar: {e}")))?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let Some(path) = normalize(&raw) else {
            warnings.push(format!(
                "{raw} in layer {digest}: path climbs out of the root; ignored"
            ));
            continue;
        };
        if path.is_empty() {
            continue;
        }
        let (parent, name) = match path.rsplit_once('/') {
            Some((p, n)) => (p.to_string(), n.to_string()),
            None => (String::new(), path.clone()),
        };
        if name == ".wh..wh..opq" {
            changes.push(Change::Opaque(parent));
            continue;
        }
        if let Some(hidden) = name.strip_prefix(".wh.") {
            let hidden = if parent.is_empty() {
                hidden.to_string()
            } else {
                format!("{parent}/{hidden}")
            };
            changes.push(Change::Whiteout(hidden));
            continue;
        }
        let ty = entry.header().entry_type();
        let layer = Some(digest.to_string());
        if ty.is_dir() {
            if below.nodes.contains_key(&path) {
                changes.push(Change::Dir(path));
            }
        } else if ty.is_symlink() {
            let target = entry
                .link_name_bytes()
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            changes.push(Change::Entry(path, Node::Symlink { target }));
        } else if ty.is_hard_link() {
            let target = entry
                .link_name_bytes()
                .and_then(|b| normalize(&String::from_utf8_lossy(&b)))
                .unwrap_or_default();
            changes.push(Change::HardLink(path, target));
        } else if ty.is_file() || ty == tar::EntryType::Continuous {
            let Some(kind) = Kind::of(&path) else {
                let mode = entry.header().mode().unwrap_or(0);
                let found = crate::evidence::candidate(&path, mode).and_then(|c| {
                    let size = entry.size();
                    let shown = format!("/{path} in layer {digest}");
                    crate::evidence::extract(c, &shown, &mut entry, size, warnings)
                });
                match found {
                    Some(found) => changes.push(Change::Entry(path, Node::Found { found, layer })),
                    None if below.touches(&path) => changes.push(Change::Other(path)),
                    None => {}
                }
                continue;
            };
            let size = entry.size();
            if size > kind.max_size() {
                changes.push(Change::Entry(path, Node::TooLarge { size }));
                continue;
            }
            let mut buf = Vec::with_capacity(size as usize);
            (&mut entry)
                .take(kind.max_size())
                .read_to_end(&mut buf)
                .map_err(|e| layer_err(format!("reading /{path}: {e}")))?;
            changes.push(Change::Entry(path, Node::File { data: buf, layer }));
        } else {
            // Devices, FIFOs: they still replace whatever was below.
            if below.touches(&path) {
                changes.push(Change::Other(path));
            }
        }
    }
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{Entry, layer, metadata};

    const JINJA: &str = "usr/lib/python3/dist-packages/Jinja2-2.7.1.dist-info/METADATA";

    fn l(digest: &str, entries: &[Entry<'_>]) -> (String, String, Vec<u8>) {
        (
            digest.to_string(),
            "application/vnd.oci.image.layer.v1.tar+gzip".to_string(),
            layer(entries),
        )
    }

    #[test]
    fn package_names_the_layer_that_introduced_it() {
        let md = metadata("Jinja2", "2.7.1");
        let inv = inventory_layers(&[
            l(
                "sha256:base",
                &[Entry::File(
                    "etc/os-release",
                    b"ID=debian\nVERSION_ID=\"12\"\n",
                )],
            ),
            l("sha256:app", &[Entry::Dir("usr/"), Entry::File(JINJA, &md)]),
        ])
        .unwrap();
        assert_eq!(inv.os.as_ref().unwrap().version_id.as_deref(), Some("12"));
        assert_eq!(inv.packages.len(), 1);
        let p = &inv.packages[0];
        assert_eq!((p.name.as_str(), p.version.as_str()), ("jinja2", "2.7.1"));
        assert_eq!(p.layer.as_deref(), Some("sha256:app"));
        assert_eq!(p.path, format!("/{JINJA}"));
        assert_eq!(p.purl, "pkg:pypi/jinja2@2.7.1");
    }

    #[test]
    fn whiteout_hides_a_deleted_package() {
        let md = metadata("Jinja2", "2.7.1");
        let other = metadata("six", "1.16.0");
        let inv = inventory_layers(&[
            l(
                "sha256:one",
                &[
                    Entry::File(JINJA, &md),
                    Entry::File(
                        "usr/lib/python3/dist-packages/six-1.16.0.dist-info/METADATA",
                        &other,
                    ),
                ],
            ),
            l(
                "sha256:two",
                &[Entry::File(
                    "usr/lib/python3/dist-packages/.wh.Jinja2-2.7.1.dist-info",
                    b"",
                )],
            ),
        ])
        .unwrap();
        let names: Vec<_> = inv.packages.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["six"]);
    }

    #[test]
    fn opaque_directory_hides_everything_below_from_lower_layers_only() {
        let a = metadata("a", "1");
        let b = metadata("b", "2");
        let inv = inventory_layers(&[
            l(
                "sha256:one",
                &[Entry::File("site/a-1.dist-info/METADATA", &a)],
            ),
            l(
                "sha256:two",
                &[
                    Entry::File("site/.wh..wh..opq", b""),
                    Entry::File("site/b-2.dist-info/METADATA", &b),
                ],
            ),
        ])
        .unwrap();
        let names: Vec<_> = inv.packages.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["b"]);
    }

    #[test]
    fn a_file_replacing_a_directory_removes_what_was_below_it() {
        let a = metadata("a", "1");
        let inv = inventory_layers(&[
            l(
                "sha256:one",
                &[Entry::File("site/a-1.dist-info/METADATA", &a)],
            ),
            l(
                "sha256:two",
                &[Entry::File("site/a-1.dist-info", b"not a dir any more")],
            ),
        ])
        .unwrap();
        assert!(inv.packages.is_empty());
    }

    #[test]
    fn symlinked_os_release_and_hard_links_are_followed_inside_the_image() {
        let a = metadata("a", "1");
        let inv = inventory_layers(&[l(
            "sha256:one",
            &[
                Entry::File("usr/lib/os-release", b"ID=alpine\nVERSION_ID=3.20.3\n"),
                Entry::Symlink("etc/os-release", "../usr/lib/os-release"),
                Entry::File("site/a-1.dist-info/METADATA", &a),
                Entry::HardLink(
                    "other/a-1.dist-info/METADATA",
                    "site/a-1.dist-info/METADATA",
                ),
                Entry::File(
                    "lib/apk/db/installed",
                    b"P:musl\nV:1.2.5-r0\nA:x86_64\no:musl\n",
                ),
            ],
        )])
        .unwrap();
        assert_eq!(inv.os.as_ref().unwrap().id, "alpine");
        let alpine = inv.packages.iter().find(|p| p.name == "musl").unwrap();
        assert_eq!(
            alpine.purl,
            "pkg:apk/alpine/musl@1.2.5-r0?arch=x86_64&distro=alpine-3.20.3"
        );
        assert_eq!(
            alpine.ecosystem.osv_name(alpine.distro.as_deref()),
            "Alpine:v3.20"
        );
        assert_eq!(inv.packages.iter().filter(|p| p.name == "a").count(), 2);
    }

    #[test]
    fn time_0_1_45_in_a_cargo_lock_is_inventoried_as_a_crate() {
        let lock = b"version = 3\n\n[[package]]\nname = \"time\"\nversion = \"0.1.45\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\n";
        let inv =
            inventory_layers(&[l("sha256:one", &[Entry::File("app/Cargo.lock", lock)])]).unwrap();
        let f = crate::match_inventory(&inv, crate::testutil::real_db()).unwrap();
        assert!(
            f.iter()
                .any(|f| f.aliases.contains(&"RUSTSEC-2020-0071".to_string())
                    && f.path == "/app/Cargo.lock"),
            "{f:#?}"
        );
    }

    #[test]
    fn rejects_a_layer_that_is_not_what_its_media_type_says() {
        let err = inventory_layers(&[(
            "sha256:broken".into(),
            "application/vnd.oci.image.layer.v1.tar+gzip".into(),
            b"plain bytes".to_vec(),
        )])
        .unwrap_err()
        .to_string();
        assert!(err.contains("sha256:broken"), "{err}");
    }

    #[test]
    fn a_truncated_layer_fails_naming_the_layer() {
        let md = metadata("a", "1");
        let mut data = layer(&[Entry::File("site/a-1.dist-info/METADATA", &md)]);
        data.truncate(data.len() / 2);
        let err = inventory_layers(&[(
            "sha256:cut".into(),
            "application/vnd.oci.image.layer.v1.tar+gzip".into(),
            data,
        )])
        .unwrap_err()
        .to_string();
        assert!(err.contains("sha256:cut"), "{err}");
    }

    #[test]
    fn hostile_package_json_and_binaries_in_a_layer_are_skipped_with_warnings() {
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let ctrl = br#"{"name":"evil\u0000name","version":"1.0.0"}"#;
        let elf = crate::binary::tests::elf(&[(".dep-v0", b"not zlib")]);
        let mut b = tar::Builder::new(Vec::new());
        let mut add = |path: &str, mode: u32, data: &[u8]| {
            let mut h = tar::Header::new_gnu();
            h.set_mode(mode);
            h.set_size(data.len() as u64);
            h.set_entry_type(tar::EntryType::Regular);
            b.append_data(&mut h, path, data).unwrap();
        };
        add("app/node_modules/deep/package.json", 0o644, deep.as_bytes());
        add("app/node_modules/ctrl/package.json", 0o644, ctrl);
        add("usr/bin/broken", 0o755, &elf);
        add("usr/bin/script", 0o755, b"#!/bin/sh\necho hi\n");
        let tar = b.into_inner().unwrap();
        let inv = inventory_layers(&[(
            "sha256:one".into(),
            "application/vnd.oci.image.layer.v1.tar".into(),
            tar,
        )])
        .unwrap();
        assert!(inv.packages.is_empty(), "{:?}", inv.packages);
        for needle in [
            "/app/node_modules/deep/package.json",
            "/app/node_modules/ctrl/package.json",
            "/usr/bin/broken in layer sha256:one",
        ] {
            assert!(
                inv.warnings.iter().any(|w| w.contains(needle)),
                "no warning naming {needle}: {:?}",
                inv.warnings
            );
        }
        assert!(!inv.warnings.iter().any(|w| w.contains("/usr/bin/script")));
    }

    #[test]
    fn oversized_metadata_in_a_layer_is_skipped_with_a_warning() {
        let mut huge = metadata("big", "1");
        huge.resize(3 << 20, b'x');
        let inv = inventory_layers(&[l(
            "sha256:one",
            &[Entry::File("site/big-1.dist-info/METADATA", &huge)],
        )])
        .unwrap();
        assert!(inv.packages.is_empty());
        assert!(
            inv.warnings
                .iter()
                .any(|w| w.contains("/site/big-1.dist-info/METADATA") && w.contains("limit"))
        );
    }
}
