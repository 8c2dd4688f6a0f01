//! Packages recorded inside compiled programs: the `cargo auditable` dependency list of Rust
//! binaries (ELF section `.dep-v0`, zlib-compressed JSON) and the build information of Go binaries
//! (the `\xff Go buildinf:` blob, in section `.go.buildinfo` or found by its magic).
//!
//! Only the ELF header, the section table and the two sections are read; every offset is checked
//! against the file's length, and the decompressed dependency list has a size limit.

use std::io::Read;

use crate::found::Found;
use crate::package::Ecosystem;

/// Largest executable read to look for embedded package lists; larger ones are skipped with a warning.
pub const MAX_BINARY: u64 = 512 << 20;
/// Largest decompressed `cargo auditable` dependency list.
pub const MAX_AUDIT_JSON: u64 = 16 << 20;
/// Most sections read from one ELF file.
const MAX_SECTIONS: usize = 65_535;
/// Most packages taken from one binary.
const MAX_BINARY_PACKAGES: usize = 100_000;

const ELF_MAGIC: &[u8] = b"\x7fELF";
const GO_MAGIC: &[u8] = b"\xff Go buildinf:";

/// Whether the first bytes of a file are an ELF header (the only format whose sections are read).
pub(crate) fn is_elf(head: &[u8]) -> bool {
    head.starts_with(ELF_MAGIC)
}

/// What a binary says it was built from: (ecosystem, package) pairs, and problems worth a warning.
pub(crate) fn packages(bytes: &[u8]) -> Result<Vec<(Ecosystem, Found)>, String> {
    let sections = elf_sections(bytes)?;
    let mut out = Vec::new();
    if let Some(dep) = sections.iter().find(|s| s.name == ".dep-v0") {
        let data = slice(bytes, dep.offset, dep.size).ok_or(".dep-v0 section out of bounds")?;
        for f in auditable(data)? {
            out.push((Ecosystem::CratesIo, f));
        }
    }
    let go = match sections.iter().find(|s| s.name == ".go.buildinfo") {
        Some(s) => slice(bytes, s.offset, s.size),
        // Some linkers drop the section name: the blob is 16-byte aligned with a fixed magic.
        None if sections
            .iter()
            .any(|s| s.name == ".gopclntab" || s.name == ".go.buildinfo") =>
        {
            find_go_blob(bytes)
        }
        None => None,
    };
    if let Some(blob) = go {
        for f in go_buildinfo(blob)? {
            out.push((Ecosystem::Go, f));
        }
    }
    out.truncate(MAX_BINARY_PACKAGES);
    Ok(out)
}

/// One section of an ELF file.
#[derive(Debug)]
struct Section {
    name: String,
    offset: u64,
    size: u64,
}

fn slice(bytes: &[u8], offset: u64, size: u64) -> Option<&[u8]> {
    let start = usize::try_from(offset).ok()?;
    let end = start.checked_add(usize::try_from(size).ok()?)?;
    bytes.get(start..end)
}

/// Reads the section table of a 32- or 64-bit, little- or big-endian ELF file.
fn elf_sections(b: &[u8]) -> Result<Vec<Section>, String> {
    if !is_elf(b) || b.len() < 0x34 {
        return Err("not an ELF file".into());
    }
    let is64 = match b[4] {
        1 => false,
        2 => true,
        c => return Err(format!("ELF class {c} is unknown")),
    };
    let le = match b[5] {
        1 => true,
        2 => false,
        d => return Err(format!("ELF data encoding {d} is unknown")),
    };
    let u16_at = |o: usize| -> Option<u64> {
        let x: [u8; 2] = b.get(o..o + 2)?.try_into().ok()?;
        Some(if le {
            u16::from_le_bytes(x)
        } else {
            u16::from_be_bytes(x)
        } as u64)
    };
    let u32_at = |o: usize| -> Option<u64> {
        let x: [u8; 4] = b.get(o..o + 4)?.try_into().ok()?;
        Some(if le {
            u32::from_le_bytes(x)
        } else {
            u32::from_be_bytes(x)
        } as u64)
    };
    let u64_at = |o: usize| -> Option<u64> {
        let x: [u8; 8] = b.get(o..o + 8)?.try_into().ok()?;
        Some(if le {
            u64::from_le_bytes(x)
        } else {
            u64::from_be_bytes(x)
        })
    };
    let word = |o: usize| if is64 { u64_at(o) } else { u32_at(o) };
    let truncated = || "ELF header is truncated".to_string();
    let (shoff, shentsize, shnum, shstrndx) = if is64 {
        (word(0x28), u16_at(0x3a), u16_at(0x3c), u16_at(0x3e))
    } else {
        (word(0x20), u16_at(0x2e), u16_at(0x30), u16_at(0x32))
    };
    let (shoff, shentsize, shnum, shstrndx) = (
        shoff.ok_or_else(truncated)?,
        shentsize.ok_or_else(truncated)?,
        shnum.ok_or_else(truncated)? as usize,
        shstrndx.ok_or_else(truncated)? as usize,
    );
    if shoff == 0 || shnum == 0 {
        return Ok(Vec::new());
    }
    let min_entry = if is64 { 0x40 } else { 0x28 };
    if shentsize < min_entry || shnum > MAX_SECTIONS {
        return Err(format!(
            "ELF section table is malformed ({shnum} entries of {shentsize} bytes)"
        ));
    }
    let header = |i: usize| -> Option<(u64, u64, u64, u64)> {
        let at = usize::try_from(shoff.checked_add((i as u64).checked_mul(shentsize)?)?).ok()?;
        let name = u32_at(at)?;
        let ty = u32_at(at + 4)?;
        let (offset, size) = if is64 {
            (u64_at(at + 0x18)?, u64_at(at + 0x20)?)
        } else {
            (u32_at(at + 0x10)?, u32_at(at + 0x14)?)
        };
        Some((name, ty, offset, size))
    };
    let (_, _, str_off, str_size) = header(shstrndx).ok_or("ELF section table is truncated")?;
    let names = slice(b, str_off, str_size).ok_or("ELF section names are out of bounds")?;
    let mut out = Vec::with_capacity(shnum);
    for i in 0..shnum {
        let (name, ty, offset, size) = header(i).ok_or("ELF section table is truncated")?;
        const SHT_NOBITS: u64 = 8;
        if ty == SHT_NOBITS {
            continue;
        }
        let name = usize::try_from(name)
            .ok()
            .and_then(|n| names.get(n..))
            .map(|rest| {
                let end = rest.iter().position(|&c| c == 0).unwrap_or(rest.len());
                String::from_utf8_lossy(&rest[..end.min(64)]).into_owned()
            })
            .unwrap_or_default();
        out.push(Section { name, offset, size });
    }
    Ok(out)
}

#[derive(serde::Deserialize)]
struct AuditInfo {
    packages: Vec<AuditPackage>,
}

#[derive(serde::Deserialize)]
struct AuditPackage {
    name: String,
    version: String,
    #[serde(default)]
    source: String,
    #[serde(default)]
    root: bool,
}

/// Decodes a `cargo auditable` section: zlib-compressed JSON listing every crate in the build.
/// Crates from crates.io are kept, and the root crate (the program itself) marked as local; other
/// local and git crates are left out, as they are not what a crates.io advisory names.
pub(crate) fn auditable(compressed: &[u8]) -> Result<Vec<Found>, String> {
    let mut json = Vec::new();
    flate2::read::ZlibDecoder::new(compressed)
        .take(MAX_AUDIT_JSON + 1)
        .read_to_end(&mut json)
        .map_err(|e| format!(".dep-v0 section is not zlib data: {e}"))?;
    if json.len() as u64 > MAX_AUDIT_JSON {
        return Err(format!(
            ".dep-v0 section decompresses to more than {MAX_AUDIT_JSON} bytes"
        ));
    }
    let info: AuditInfo = serde_json::from_slice(&json)
        .map_err(|e| format!(".dep-v0 section is not a cargo-auditable dependency list: {e}"))?;
    Ok(info
        .packages
        .into_iter()
        .filter(|p| p.root || p.source == "crates.io" || p.source.starts_with("registry"))
        .filter(|p| valid(&p.name) && valid(&p.version))
        .map(|p| {
            let local = p.source != "crates.io" && !p.source.starts_with("registry");
            Found {
                local,
                ..Found::new(p.name, p.version)
            }
        })
        .collect())
}

fn valid(s: &str) -> bool {
    !s.is_empty() && s.len() <= 256 && !s.chars().any(char::is_control)
}

/// Finds the Go build-info blob by its magic (16-byte aligned, as the Go linker writes it).
fn find_go_blob(bytes: &[u8]) -> Option<&[u8]> {
    let mut at = 0usize;
    while at + GO_MAGIC.len() <= bytes.len() {
        if bytes[at..].starts_with(GO_MAGIC) {
            return bytes.get(at..);
        }
        at += 16;
    }
    None
}

/// Reads an unsigned varint (Go's `binary.Uvarint`).
fn uvarint(b: &[u8]) -> Option<(u64, usize)> {
    let mut x = 0u64;
    for (i, &c) in b.iter().enumerate().take(10) {
        x |= u64::from(c & 0x7f) << (7 * i);
        if c < 0x80 {
            return Some((x, i + 1));
        }
    }
    None
}

/// Decodes Go build info (Go 1.18 and later store the strings inline after a 32-byte header):
/// the main module and every dependency (with `=>` replacements applied), plus the standard
/// library at the toolchain's version.
pub(crate) fn go_buildinfo(blob: &[u8]) -> Result<Vec<Found>, String> {
    if !blob.starts_with(GO_MAGIC) || blob.len() < 32 {
        return Err("Go build info is truncated".into());
    }
    const INLINE_STRINGS: u8 = 0x2;
    if blob[15] & INLINE_STRINGS == 0 {
        return Err("Go build info from before Go 1.18 (pointer format) is not read".into());
    }
    let mut at = 32usize;
    let mut next = || -> Option<&[u8]> {
        let (len, n) = uvarint(blob.get(at..)?)?;
        let start = at + n;
        let end = start.checked_add(usize::try_from(len).ok()?)?;
        let s = blob.get(start..end)?;
        at = end;
        Some(s)
    };
    let version = next().ok_or("Go build info version is truncated")?;
    let modinfo = next().ok_or("Go build info module list is truncated")?;
    let version = String::from_utf8_lossy(version).into_owned();
    // The module list is wrapped in 16-byte sentinels.
    let modinfo = if modinfo.len() >= 33 && modinfo[modinfo.len() - 17] == b'\n' {
        &modinfo[16..modinfo.len() - 16]
    } else {
        modinfo
    };
    let text = String::from_utf8_lossy(modinfo);
    let mut out: Vec<Found> = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        match f.as_slice() {
            ["mod", path, ver, ..] if *ver != "(devel)" && valid(path) && valid(ver) => {
                out.push(Found::new(*path, *ver))
            }
            ["dep", path, ver, ..] if valid(path) && valid(ver) => {
                out.push(Found::new(*path, *ver))
            }
            ["=>", path, ver, ..] if valid(path) && valid(ver) => {
                // A replacement applies to the dependency just before it.
                if let Some(last) = out.last_mut() {
                    *last = Found::new(*path, *ver);
                }
            }
            _ => {}
        }
    }
    // `go1.22.3` (possibly with a suffix such as ` X:boringcrypto`) is the standard library's version.
    if let Some(v) = version
        .strip_prefix("go")
        .and_then(|v| v.split_whitespace().next())
        .filter(|v| valid(v) && v.starts_with(|c: char| c.is_ascii_digit()))
    {
        out.push(Found::new("stdlib", format!("v{v}")));
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;

    /// A minimal 64-bit little-endian ELF file with the given sections (name, contents).
    pub(crate) fn elf(sections: &[(&str, &[u8])]) -> Vec<u8> {
        let mut names = vec![0u8];
        let mut name_at = Vec::new();
        for (n, _) in sections.iter().copied().chain([(".shstrtab", &b""[..])]) {
            name_at.push(names.len() as u32);
            names.extend_from_slice(n.as_bytes());
            names.push(0);
        }
        let mut out = vec![0u8; 0x40];
        out[..4].copy_from_slice(ELF_MAGIC);
        out[4] = 2;
        out[5] = 1;
        out[6] = 1;
        let mut placed = Vec::new();
        for (_, data) in sections {
            placed.push((out.len() as u64, data.len() as u64));
            out.extend_from_slice(data);
        }
        placed.push((out.len() as u64, names.len() as u64));
        out.extend_from_slice(&names);
        while !out.len().is_multiple_of(8) {
            out.push(0);
        }
        let shoff = out.len() as u64;
        // Section 0 is the null section.
        out.extend_from_slice(&[0u8; 0x40]);
        for (i, (off, size)) in placed.iter().enumerate() {
            let mut h = [0u8; 0x40];
            h[0..4].copy_from_slice(&name_at[i].to_le_bytes());
            h[4..8].copy_from_slice(&1u32.to_le_bytes());
            h[0x18..0x20].copy_from_slice(&off.to_le_bytes());
            h[0x20..0x28].copy_from_slice(&size.to_le_bytes());
            out.extend_from_slice(&h);
        }
        let shnum = placed.len() as u16 + 1;
        out[0x28..0x30].copy_from_slice(&shoff.to_le_bytes());
        out[0x3a..0x3c].copy_from_slice(&0x40u16.to_le_bytes());
        out[0x3c..0x3e].copy_from_slice(&shnum.to_le_bytes());
        out[0x3e..0x40].copy_from_slice(&(shnum - 1).to_le_bytes());
        out
    }

    pub(crate) fn zlib(data: &[u8]) -> Vec<u8> {
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(data).unwrap();
        z.finish().unwrap()
    }

    pub(crate) fn go_blob(version: &str, modinfo: &str) -> Vec<u8> {
        let mut b = GO_MAGIC.to_vec();
        b.push(8);
        b.push(INLINE);
        b.resize(32, 0);
        let sentinel = [0x30u8; 16];
        let mut m = sentinel.to_vec();
        m.extend_from_slice(modinfo.as_bytes());
        m.extend_from_slice(&[0x31; 16]);
        for s in [version.as_bytes(), &m[..]] {
            let mut n = s.len() as u64;
            loop {
                let c = (n & 0x7f) as u8;
                n >>= 7;
                if n == 0 {
                    b.push(c);
                    break;
                }
                b.push(c | 0x80);
            }
            b.extend_from_slice(s);
        }
        b
    }
    const INLINE: u8 = 0x2;

    #[test]
    fn reads_the_cargo_auditable_section_of_an_elf_file() {
        let json = br#"{"packages":[{"name":"app","version":"0.1.0","source":"local","dependencies":[1],"root":true},{"name":"time","version":"0.1.45","source":"crates.io"}]}"#;
        let bin = elf(&[(".text", b"\x90\x90"), (".dep-v0", &zlib(json))]);
        let p = packages(&bin).unwrap();
        let app = Found {
            local: true,
            ..Found::new("app", "0.1.0")
        };
        assert_eq!(
            p,
            vec![
                (Ecosystem::CratesIo, app),
                (Ecosystem::CratesIo, Found::new("time", "0.1.45"))
            ]
        );
    }

    #[test]
    fn reads_go_build_info_with_replacements_and_the_standard_library() {
        let mi = "path\texample.com/app\nmod\texample.com/app\t(devel)\t\ndep\tgolang.org/x/net\tv0.17.0\th1:x=\ndep\tgithub.com/a/b\tv1.0.0\th1:y=\n=>\tgithub.com/fork/b\tv1.0.1\th1:z=\n";
        let bin = elf(&[(".go.buildinfo", &go_blob("go1.21.4", mi))]);
        let p: Vec<_> = packages(&bin)
            .unwrap()
            .into_iter()
            .map(|(e, f)| (e, f.name, f.version))
            .collect();
        assert_eq!(
            p,
            [
                (Ecosystem::Go, "golang.org/x/net".into(), "v0.17.0".into()),
                (Ecosystem::Go, "github.com/fork/b".into(), "v1.0.1".into()),
                (Ecosystem::Go, "stdlib".into(), "v1.21.4".into()),
            ]
        );
    }

    #[test]
    fn hostile_sections_are_errors_not_panics() {
        // A section pointing past the end of the file.
        let mut bin = elf(&[(".dep-v0", b"abcd")]);
        let shoff = u64::from_le_bytes(bin[0x28..0x30].try_into().unwrap()) as usize;
        let first = shoff + 0x40;
        bin[first + 0x20..first + 0x28].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(packages(&bin).unwrap_err().contains("out of bounds"));
        // Not zlib.
        let bin = elf(&[(".dep-v0", b"not zlib at all")]);
        assert!(packages(&bin).unwrap_err().contains("zlib"));
        // A zlib bomb stops at the limit.
        let bomb = zlib(&vec![b' '; (MAX_AUDIT_JSON + 10) as usize]);
        let bin = elf(&[(".dep-v0", &bomb)]);
        assert!(packages(&bin).unwrap_err().contains("more than"));
        // Truncated header and section table.
        assert!(packages(b"\x7fELF\x02\x01").is_err());
        let mut bin = elf(&[(".dep-v0", b"x")]);
        bin.truncate(bin.len() - 10);
        assert!(packages(&bin).is_err());
        // Go blob cut short.
        let blob = go_blob("go1.22.0", "dep\ta\tv1\n");
        let bin = elf(&[(".go.buildinfo", &blob[..40])]);
        assert!(packages(&bin).is_err());
    }
}
