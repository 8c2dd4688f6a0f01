//! Benchmark driver for `bench/agent.sh` (not a test, not in CI): publish-to-applied latency with a 1 s
//! poll interval, and requests and CPU per idle cycle with many apps, against a real registry whose access
//! log the script passes in. The peer for requests is a naive poller that runs `skopeo list-tags` per app.
//!
//! Usage: bench_agent REGISTRY_HOST ACCESS_LOG [APPS] [RELEASES]

#[path = "../tests/common/mod.rs"]
mod common;

use airlock_agent::config::RunConfig;
use airlock_agent::server::{Health, Shared, run_loop};
use airlock_agent::{
    Agent, Metrics, SourceOptions, SourceSpec, SyncConfig, TargetSpec, load_trust,
};
use airlock_oci::{RegistryAuth, RegistryStore};
use airlock_sign::SigningKey;
use common::{Release, key_file, publish};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn requests(log: &Path) -> usize {
    std::fs::read_to_string(log)
        .map(|s| s.lines().filter(|l| l.contains(" HTTP/1.1\" ")).count())
        .unwrap_or(0)
}

/// User + system CPU of this process, in seconds (all threads), from /proc.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the comm field: state is [0], utime [11], stime [12] (clock ticks, 100 per second here).
    let ticks: f64 = fields
        .get(11)
        .and_then(|f| f.parse::<f64>().ok())
        .unwrap_or(0.0)
        + fields
            .get(12)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0);
    ticks / 100.0
}

fn store(host: &str, app: &str) -> RegistryStore {
    RegistryStore::new(
        host,
        &format!("boundary/{app}"),
        RegistryAuth::Anonymous,
        true,
    )
    .unwrap()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    // The loop runs beside the publisher on this thread (its future is not Send).
    tokio::task::LocalSet::new().run_until(bench()).await;
}

async fn bench() {
    let args: Vec<String> = std::env::args().collect();
    let host = args
        .get(1)
        .expect("usage: bench_agent REGISTRY_HOST ACCESS_LOG [APPS] [RELEASES]")
        .clone();
    let log = std::path::PathBuf::from(args.get(2).expect("ACCESS_LOG"));
    let apps: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(200);
    let releases: u64 = args.get(4).and_then(|a| a.parse().ok()).unwrap_or(10);
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate();
    let trust = load_trust(&[key_file(dir.path(), &key, "gate.pub")]).unwrap();
    let source: SourceSpec = format!("docker://{host}/boundary").parse().unwrap();

    // 1. Publish-to-applied latency: the agent loop polls every second (no jitter); the clock starts when
    //    the release tag is pushed and stops when the manifests are in the target.
    let target = dir.path().join("latency");
    let mut cfg = SyncConfig::new(
        source.clone(),
        trust.clone(),
        "staging",
        TargetSpec::Directory(target.clone()),
    );
    cfg.source_options = SourceOptions {
        apps: vec!["latency".into()],
        insecure: true,
        credentials: None,
    };
    let run = RunConfig {
        environments: vec![cfg],
        interval: Duration::from_secs(1),
        jitter: Duration::ZERO,
        listen: None,
    };
    let shared = Shared {
        metrics: Arc::new(Metrics::default()),
        health: Arc::new(Mutex::new(Health::default())),
    };
    let loop_task = tokio::task::spawn_local(async move {
        let result = run_loop(&run, shared, None, |env, r| {
            if let Err(e) = r {
                eprintln!("sync of {env} failed: {e}");
            } else if let Ok(r) = r
                && (!r.refused.is_empty() || !r.failed.is_empty())
            {
                eprintln!("sync of {env}: {r:?}");
            }
        })
        .await;
        if let Err(e) = result {
            eprintln!("the agent loop stopped: {e}");
        }
    });
    let record = target.join("staging/latency/.airlock-release.json");
    let mut latencies = Vec::new();
    for seq in 1..=releases {
        publish(
            &store(&host, "latency"),
            Release::new("latency", seq, &key, &["staging"]),
        )
        .await;
        let t0 = Instant::now();
        loop {
            let done = std::fs::read(&record)
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .is_some_and(|v| v["sequence"] == seq);
            if done {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "release {seq} not applied within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        latencies.push(t0.elapsed().as_secs_f64());
        // Publish at a random phase of the poll cycle.
        tokio::time::sleep(Duration::from_millis(137 * seq % 1000)).await;
    }
    loop_task.abort();
    latencies.sort_by(f64::total_cmp);
    let median = latencies[latencies.len() / 2];
    println!(
        "publish-to-applied, 1 s poll, {releases} releases: median {median:.3} s, max {:.3} s (target: median < 2 s)",
        latencies[latencies.len() - 1]
    );

    // 2. Idle cycles with many apps.
    let names: Vec<String> = (0..apps).map(|i| format!("app{i:03}")).collect();
    for name in &names {
        publish(
            &store(&host, name),
            Release::new(name, 1, &key, &["staging"]),
        )
        .await;
    }
    let mut cfg = SyncConfig::new(
        source,
        trust,
        "staging",
        TargetSpec::Directory(dir.path().join("idle")),
    );
    cfg.source_options = SourceOptions {
        apps: names.clone(),
        insecure: true,
        credentials: None,
    };
    let mut agent = Agent::new(cfg, Arc::new(Metrics::default())).unwrap();
    let first = agent.sync().await.unwrap();
    assert_eq!(first.applied.len(), apps, "{first:?}");
    let cycles = 10;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (r0, c0, t0) = (requests(&log), cpu_seconds(), Instant::now());
    for _ in 0..cycles {
        let report = agent.sync().await.unwrap();
        assert_eq!(report.unchanged.len(), apps);
    }
    let wall = t0.elapsed().as_secs_f64() / cycles as f64;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let per_cycle = (requests(&log) - r0) as f64 / cycles as f64;
    if std::env::var_os("BENCH_VERBOSE").is_some() {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.contains(" HTTP/1.1\" "))
            .collect();
        for line in &lines[r0..(r0 + (per_cycle as usize)).min(lines.len())] {
            eprintln!("{line}");
        }
    }
    let cpu = (cpu_seconds() - c0) / cycles as f64;
    println!(
        "idle, {apps} apps: {per_cycle:.0} requests per cycle ({:.3} per app; target <= 1), CPU {:.0} ms per cycle, wall {:.0} ms per cycle",
        per_cycle / apps as f64,
        cpu * 1000.0,
        wall * 1000.0
    );

    // Peer: a naive poller running `skopeo list-tags` for each app (sampled on 20 apps).
    let sample = names.len().min(20);
    let r1 = requests(&log);
    let t1 = Instant::now();
    for name in names.iter().take(sample) {
        let status = std::process::Command::new("skopeo")
            .args(["list-tags", "--tls-verify=false"])
            .arg(format!("docker://{host}/boundary/{name}"))
            .stdout(std::process::Stdio::null())
            .status()
            .expect("skopeo is not installed: run scripts/setup");
        assert!(status.success());
    }
    let skopeo_wall = t1.elapsed().as_secs_f64() / sample as f64;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let skopeo_per_app = (requests(&log) - r1) as f64 / sample as f64;
    println!(
        "peer skopeo list-tags: {skopeo_per_app:.1} requests per app, {:.0} ms per app; agent/peer requests ratio {:.2}, wall ratio {:.3}",
        skopeo_wall * 1000.0,
        (per_cycle / apps as f64) / skopeo_per_app,
        (wall / apps as f64) / skopeo_wall
    );
}
