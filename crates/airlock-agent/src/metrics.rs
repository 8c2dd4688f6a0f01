//! The agent's Prometheus metrics: releases seen, verified, refused (by reason), applied, drift
//! corrections, sync errors and sync duration, per environment. Rendered in the text exposition format.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// Counters shared by every environment's agent and the `/metrics` endpoint.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    seen: BTreeMap<String, u64>,
    verified: BTreeMap<String, u64>,
    refused: BTreeMap<(String, String), u64>,
    applied: BTreeMap<String, u64>,
    drift: BTreeMap<String, u64>,
    errors: BTreeMap<String, u64>,
    sync_count: BTreeMap<String, u64>,
    sync_seconds: BTreeMap<String, f64>,
    last_sync: BTreeMap<String, f64>,
    waiting: BTreeMap<String, u64>,
    /// (env, app, severity) → new findings of the running release's last rescan.
    findings: BTreeMap<(String, String, String), u64>,
    vulndb_refused: BTreeMap<String, u64>,
}

/// What can be counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    /// A release (by digest) looked at for the first time.
    Seen,
    /// A release passed verification (counted once per digest).
    Verified,
    /// A release was applied.
    Applied,
    /// A drift was corrected.
    Drift,
    /// A sync or an app's sync failed (source unreachable, target unwritable).
    Error,
}

impl Metrics {
    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut inner)
    }

    /// Adds one to `counter` for `env`.
    pub fn inc(&self, env: &str, counter: Counter) {
        self.with(|i| {
            let map = match counter {
                Counter::Seen => &mut i.seen,
                Counter::Verified => &mut i.verified,
                Counter::Applied => &mut i.applied,
                Counter::Drift => &mut i.drift,
                Counter::Error => &mut i.errors,
            };
            *map.entry(env.to_string()).or_default() += 1;
        });
    }

    /// Counts a refused release under its reason (a short kebab-case word, e.g. `untrusted-key`).
    pub fn refused(&self, env: &str, reason: &str) {
        self.with(|i| {
            *i.refused
                .entry((env.to_string(), reason.to_string()))
                .or_default() += 1
        });
    }

    /// Records a finished sync of `env` that took `seconds`, at unix time `now`, with `waiting` releases
    /// held back by promotion.
    pub fn sync_done(&self, env: &str, seconds: f64, now: f64, waiting: u64) {
        self.with(|i| {
            *i.sync_count.entry(env.to_string()).or_default() += 1;
            *i.sync_seconds.entry(env.to_string()).or_default() += seconds;
            i.last_sync.insert(env.to_string(), now);
            i.waiting.insert(env.to_string(), waiting);
        });
    }

    /// Sets the new findings of `app` in `env` from its last rescan, as counts per severity (a severity
    /// missing from `counts` goes to zero).
    pub fn set_findings(&self, env: &str, app: &str, counts: &BTreeMap<String, u64>) {
        self.with(|i| {
            for ((e, a, _), v) in i.findings.iter_mut() {
                if e == env && a == app {
                    *v = 0;
                }
            }
            for (severity, n) in counts {
                i.findings
                    .insert((env.to_string(), app.to_string(), severity.clone()), *n);
            }
        });
    }

    /// Counts a vulnerability database refused in `env` (unsigned, wrong key, older than the one held).
    pub fn vulndb_refused(&self, env: &str) {
        self.with(|i| *i.vulndb_refused.entry(env.to_string()).or_default() += 1);
    }

    /// The value of a counter for `env` (tests and `status`).
    pub fn get(&self, env: &str, counter: Counter) -> u64 {
        self.with(|i| {
            let map = match counter {
                Counter::Seen => &i.seen,
                Counter::Verified => &i.verified,
                Counter::Applied => &i.applied,
                Counter::Drift => &i.drift,
                Counter::Error => &i.errors,
            };
            map.get(env).copied().unwrap_or(0)
        })
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        self.with(|i| {
            let mut out = String::new();
            let counter = |out: &mut String, name: &str, help: &str, map: &BTreeMap<String, u64>| {
                out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} counter\n"));
                for (env, v) in map {
                    out.push_str(&format!("{name}{{env=\"{}\"}} {v}\n", escape(env)));
                }
            };
            counter(&mut out, "airlock_agent_releases_seen_total", "Releases (by digest) looked at.", &i.seen);
            counter(&mut out, "airlock_agent_releases_verified_total", "Releases that passed verification.", &i.verified);
            out.push_str("# HELP airlock_agent_releases_refused_total Releases refused, by reason.\n# TYPE airlock_agent_releases_refused_total counter\n");
            for ((env, reason), v) in &i.refused {
                out.push_str(&format!(
                    "airlock_agent_releases_refused_total{{env=\"{}\",reason=\"{}\"}} {v}\n",
                    escape(env),
                    escape(reason)
                ));
            }
            counter(&mut out, "airlock_agent_releases_applied_total", "Releases applied to the target.", &i.applied);
            counter(&mut out, "airlock_agent_drift_corrections_total", "Drift corrected in the target.", &i.drift);
            counter(&mut out, "airlock_agent_sync_errors_total", "Syncs or app syncs that failed.", &i.errors);
            out.push_str("# HELP airlock_agent_sync_duration_seconds Time one sync of an environment took.\n# TYPE airlock_agent_sync_duration_seconds summary\n");
            for (env, count) in &i.sync_count {
                let sum = i.sync_seconds.get(env).copied().unwrap_or(0.0);
                out.push_str(&format!(
                    "airlock_agent_sync_duration_seconds_sum{{env=\"{}\"}} {sum}\nairlock_agent_sync_duration_seconds_count{{env=\"{}\"}} {count}\n",
                    escape(env),
                    escape(env)
                ));
            }
            out.push_str("# HELP airlock_agent_last_sync_timestamp_seconds Unix time the last sync finished.\n# TYPE airlock_agent_last_sync_timestamp_seconds gauge\n");
            for (env, t) in &i.last_sync {
                out.push_str(&format!("airlock_agent_last_sync_timestamp_seconds{{env=\"{}\"}} {t}\n", escape(env)));
            }
            out.push_str("# HELP airlock_agent_releases_waiting Releases held back by a promotion soak.\n# TYPE airlock_agent_releases_waiting gauge\n");
            for (env, n) in &i.waiting {
                out.push_str(&format!("airlock_agent_releases_waiting{{env=\"{}\"}} {n}\n", escape(env)));
            }
            out.push_str("# HELP airlock_agent_findings Vulnerabilities a rescan of the running release found that its own report did not list.\n# TYPE airlock_agent_findings gauge\n");
            for ((env, app, severity), n) in &i.findings {
                out.push_str(&format!(
                    "airlock_agent_findings{{env=\"{}\",app=\"{}\",severity=\"{}\"}} {n}\n",
                    escape(env),
                    escape(app),
                    escape(severity)
                ));
            }
            counter(&mut out, "airlock_agent_vulndb_refused_total", "Vulnerability databases refused (the previous one is kept).", &i.vulndb_refused);
            out
        })
    }
}

/// Escapes a label value (backslash, quote, newline) as the exposition format requires.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_with_labels() {
        let m = Metrics::default();
        m.inc("staging", Counter::Applied);
        m.inc("staging", Counter::Applied);
        m.refused("staging", "untrusted-key");
        m.sync_done("staging", 0.5, 1700000000.0, 0);
        let text = m.render();
        assert!(
            text.contains("airlock_agent_releases_applied_total{env=\"staging\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "airlock_agent_releases_refused_total{env=\"staging\",reason=\"untrusted-key\"} 1\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("airlock_agent_sync_duration_seconds_count{env=\"staging\"} 1\n"),
            "{text}"
        );
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
