//! Times one gate evaluation with 2,000 findings against the shipped policies.
//!
//! `cargo run --release -p airlock-policy --example bench_eval [POLICIES_GATE_DIR]`

use std::path::PathBuf;
use std::time::Instant;

use airlock_policy::PolicySet;
use serde_json::json;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../policies/gate"));
    let start = Instant::now();
    let set = PolicySet::load(&dir)?;
    println!("load+compile: {:?}", start.elapsed());

    let approved = "sha256:8b0a1f2cb9e3d3a5c4f7e6d5c4b3a2918f7e6d5c4b3a2918f7e6d5c4b3a29180";
    let severities = ["critical", "high", "medium", "low", "unknown"];
    let findings: Vec<_> = (0..2000)
        .map(|i| {
            json!({"id": format!("CVE-2026-{i:05}"), "aliases": [format!("GHSA-{i}")],
                   "package": format!("pkg{}", i % 300), "ecosystem": "PyPI",
                   "installed": "1.0.0", "fixed": "1.0.1", "severity": severities[i % 5],
                   "cvss_score": 5.0, "summary": "benchmark finding", "layer": "sha256:00"})
        })
        .collect();
    let input = json!({
        "submission": {"app": "bench", "team": "demo"},
        "descriptor": {"run": {"health": "/healthz"}},
        "build": {"builder": "docker", "mode": "standard"},
        "image": {"user": "65532", "base": {"name": "static", "digest": approved}},
        "platform": {"approved_bases": [approved], "allow_host_builder": false},
        "findings": findings,
        "dockerfile": null,
    });
    let now = time::OffsetDateTime::now_utc();
    let mut times = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        let d = set.evaluate("airlock.gate", &input, &[], now)?;
        times.push(start.elapsed());
        assert_eq!(d.violations.len(), 800);
    }
    times.sort();
    println!(
        "evaluate 2000 findings: min {:?}, median {:?}, max {:?}",
        times[0], times[2], times[4]
    );
    Ok(())
}
