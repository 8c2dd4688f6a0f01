//! Times gate evaluations with 2,000 findings against the shipped policies (`bench/policy.sh`
//! runs it next to a second engine on the same input).
//!
//! `cargo run --release -p airlock-policy --example bench_eval [POLICIES_GATE_DIR] [--write-input FILE]`
//!
//! Prints the load time, then min/median/max of 20 evaluations of `deny` and `warn` plus the
//! waivers step, and a last line `median_ms=<float>` for scripts. `--write-input` saves the
//! input it used, so another engine can be timed on exactly the same JSON.

use std::path::PathBuf;
use std::time::Instant;

use airlock_policy::PolicySet;
use serde_json::json;

const RUNS: usize = 20;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../policies/gate");
    let mut write_input = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--write-input" {
            write_input = Some(PathBuf::from(
                args.next().ok_or("--write-input needs a file")?,
            ));
        } else {
            dir = PathBuf::from(arg);
        }
    }
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
        "submission": {"app": "bench", "team": "demo", "repository": "https://git.example/demo/bench",
                       "commit": "0123456789abcdef0123456789abcdef01234567"},
        "descriptor": {"run": {"health": "/healthz", "port": 8080}},
        "build": {"builder": "docker", "mode": "standard", "stack": "rust-static"},
        "image": {"digest": approved, "user": "65532", "ports": [8080], "env_names": ["PORT"],
                  "base": {"name": "static", "digest": approved}, "builder_image": null},
        "platform": {"approved_bases": [approved], "allow_host_builder": false},
        "sbom": {"package_count": 300, "ecosystems": {"PyPI": 300}},
        "findings": findings,
        "manifests": {},
        "dockerfile": null,
    });
    if let Some(path) = write_input {
        std::fs::write(&path, serde_json::to_vec(&input)?)?;
    }
    let now = time::OffsetDateTime::now_utc();
    let cpu_start = process_cpu_ticks();
    let mut times = Vec::new();
    for _ in 0..RUNS {
        let start = Instant::now();
        let d = set.evaluate("airlock.gate", &input, &[], now)?;
        times.push(start.elapsed());
        if d.violations.len() != 800 || d.warnings.len() != 800 {
            return Err(format!(
                "unexpected decision: {} violations, {} warnings",
                d.violations.len(),
                d.warnings.len()
            )
            .into());
        }
    }
    // CPU time as well as wall time: on a shared machine other processes stretch the wall clock.
    let cpu_ms = cpu_start
        .zip(process_cpu_ticks())
        .map(|(a, b)| (b - a) as f64 * 10.0 / RUNS as f64);
    times.sort();
    let median = times[RUNS / 2];
    println!(
        "evaluate 2000 findings ({RUNS} runs): min {:?}, median {:?}, max {:?}",
        times[0],
        median,
        times[RUNS - 1]
    );
    if let Some(cpu) = cpu_ms {
        println!("cpu per evaluation (mean of {RUNS}, 10 ms ticks): {cpu:.1} ms");
        println!("cpu_ms={cpu:.3}");
    }
    println!("median_ms={:.3}", median.as_secs_f64() * 1000.0);
    Ok(())
}

/// User + system CPU time of this process in clock ticks (1/100 s on Linux), from /proc.
fn process_cpu_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}
