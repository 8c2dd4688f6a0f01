//! Streaming: `airlock-gate image copy` moves a 1 GiB layer layout → registry → layout while the process
//! stays under 100 MiB resident. The peak is the kernel's own figure for the child (`wait4`'s `ru_maxrss`),
//! and the copies run against a real `docker-registry`.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use airlock_oci::{Descriptor, DigestWriter, ImageConfig, ImageManifest, OciLayout, media_type};

const LAYER_BYTES: u64 = 1 << 30;
const LIMIT_KIB: i64 = 100 * 1024;

/// Writes an uncompressed layer of one ~1 GiB file straight into `layout`'s blobs, hashing as it goes, so
/// the test itself never holds it in memory. Returns its descriptor.
fn write_big_layer(layout: &OciLayout) -> Descriptor {
    let tmp = layout.path().join("big-layer.tmp");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&tmp).unwrap());
    let mut hasher = DigestWriter::new();
    let mut put = |bytes: &[u8]| {
        file.write_all(bytes).unwrap();
        hasher.write_all(bytes).unwrap();
    };
    let data_len = LAYER_BYTES - 3 * 512;
    let mut header = tar::Header::new_ustar();
    header.set_path("big").unwrap();
    header.set_size(data_len);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_cksum();
    put(header.as_bytes());
    // One MiB of noise, each copy stamped with its index: no two chunks alike, cheap to make.
    let mut chunk = vec![0u8; 1 << 20];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for b in chunk.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    let mut left = data_len;
    let mut i: u64 = 0;
    while left > 0 {
        chunk[..8].copy_from_slice(&i.to_le_bytes());
        let n = left.min(chunk.len() as u64) as usize;
        put(&chunk[..n]);
        left -= n as u64;
        i += 1;
    }
    put(&vec![0u8; (LAYER_BYTES - 512 - data_len) as usize]);
    file.flush().unwrap();
    drop(file);
    let (digest, size) = hasher.finish();
    assert_eq!(size, LAYER_BYTES);
    let target = layout.blob_path(&digest);
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    std::fs::rename(&tmp, &target).unwrap();
    Descriptor::new(media_type::OCI_LAYER_TAR, digest, size)
}

/// Runs `airlock-gate image copy SRC DST` and returns the child's peak resident set in KiB.
fn copy_peak_kib(src: &str, dst: &str, insecure: &str) -> i64 {
    let child = Command::new(env!("CARGO_BIN_EXE_airlock-gate"))
        .args(["image", "copy", src, dst, "--insecure", insecure])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("airlock-gate runs");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our own child, not yet waited for; status and usage point to live locals.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid, "wait4 on the copy");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "image copy {src} {dst} failed (status {status})"
    );
    std::mem::forget(child); // already reaped by wait4
    usage.ru_maxrss
}

#[test]
fn a_one_gib_layer_is_pushed_and_pulled_in_under_100_mib() {
    let registry = airlock_testkit::Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let src = OciLayout::create(&dir.path().join("src")).unwrap();
    let layer = write_big_layer(&src);
    let mut config = ImageConfig::new("amd64", "linux");
    config.rootfs.diff_ids = vec![layer.digest.clone()];
    let config_bytes = config.to_bytes();
    let config_desc = Descriptor::for_bytes(media_type::OCI_CONFIG, &config_bytes);
    src.put_blob_sync(&config_desc.digest, &config_bytes)
        .unwrap();
    let manifest = ImageManifest::new(config_desc, vec![layer.clone()]);
    let digest = src
        .put_manifest_sync(&manifest.to_bytes(), media_type::OCI_MANIFEST, Some("big"))
        .unwrap();

    let remote = format!("docker://{}/test/big:big", registry.host);
    let push = copy_peak_kib(&oci(src.path(), "big"), &remote, &registry.host);
    let pulled_dir = dir.path().join("pulled");
    let pull = copy_peak_kib(&remote, &oci(&pulled_dir, "big"), &registry.host);
    eprintln!("peak RSS: push {push} KiB, pull {pull} KiB (limit {LIMIT_KIB} KiB)");
    assert!(push < LIMIT_KIB, "push peaked at {push} KiB");
    assert!(pull < LIMIT_KIB, "pull peaked at {pull} KiB");

    // What came back is the same image, the layer whole in the registry and the layout.
    let stored = std::fs::metadata(registry.blob_file(&layer.digest))
        .unwrap()
        .len();
    assert_eq!(stored, LAYER_BYTES);
    let pulled = OciLayout::open(&pulled_dir).unwrap();
    assert_eq!(pulled.get_manifest_sync("big").unwrap().digest, digest);
    assert_eq!(
        std::fs::metadata(pulled.blob_path(&layer.digest))
            .unwrap()
            .len(),
        LAYER_BYTES
    );
}

fn oci(dir: &Path, tag: &str) -> String {
    format!("oci:{}:{tag}", dir.display())
}
