//! Wire types of the gate's HTTP API (`/api/v1`).
//!
//! The gate serialises these and the CLI deserialises them, so every type is
//! serde-symmetric: what one side writes the other reads back unchanged.
//! Optional fields are written as `null` and read back from `null` or absence;
//! lists read back from absence as empty, so an older gate still parses.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Answer to `POST /api/v1/submissions` (HTTP 202): the run was stored and queued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmissionAccepted {
    /// Identifier of the new run, used in every other route.
    pub run_id: String,
    /// Path or URL of the run's status (`/api/v1/runs/{id}`).
    pub status_url: String,
    /// State at acceptance, normally `queued`.
    pub state: RunState,
}

/// Where a run is in the pipeline `queued → … → published`, or how it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    /// Stored, waiting for a worker.
    Queued,
    /// Fetching the source.
    Fetching,
    /// Building the image.
    Building,
    /// Producing the SBOM and matching vulnerabilities.
    Scanning,
    /// Evaluating the gate policy.
    Gating,
    /// Signing the image, attestations and release.
    Signing,
    /// Pushing the release across the boundary.
    Publishing,
    /// Released: the outer loop can pull it.
    Published,
    /// The gate policy said no; the decision says why.
    Rejected,
    /// Something broke; `error` says where and what.
    Failed,
    /// Cancelled on request.
    Cancelled,
}

impl RunState {
    /// Every state, in pipeline order, then the terminal ones.
    pub const ALL: [RunState; 11] = [
        RunState::Queued,
        RunState::Fetching,
        RunState::Building,
        RunState::Scanning,
        RunState::Gating,
        RunState::Signing,
        RunState::Publishing,
        RunState::Published,
        RunState::Rejected,
        RunState::Failed,
        RunState::Cancelled,
    ];

    /// True when the run will not change any more (published, rejected, failed, cancelled).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunState::Published | RunState::Rejected | RunState::Failed | RunState::Cancelled
        )
    }

    /// The wire name (`"queued"`, `"published"`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Queued => "queued",
            RunState::Fetching => "fetching",
            RunState::Building => "building",
            RunState::Scanning => "scanning",
            RunState::Gating => "gating",
            RunState::Signing => "signing",
            RunState::Publishing => "publishing",
            RunState::Published => "published",
            RunState::Rejected => "rejected",
            RunState::Failed => "failed",
            RunState::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for RunState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for RunState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RunState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| format!("unknown run state {s:?}"))
    }
}

/// State of one pipeline step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepState {
    /// Started, not finished.
    Running,
    /// Finished without error.
    Succeeded,
    /// Finished with an error (see `detail`).
    Failed,
    /// Not run (e.g. the run was rejected or cancelled before it).
    Skipped,
}

impl StepState {
    /// The wire name (`"running"`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            StepState::Running => "running",
            StepState::Succeeded => "succeeded",
            StepState::Failed => "failed",
            StepState::Skipped => "skipped",
        }
    }
}

impl fmt::Display for StepState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One step of a run as the gate recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepView {
    /// Step name (`fetch`, `build`, `scan`, `gate`, `sign`, `publish`, …).
    pub name: String,
    /// Current state of the step.
    pub state: StepState,
    /// RFC 3339 start time.
    #[serde(default)]
    pub started_at: Option<String>,
    /// RFC 3339 end time, when finished.
    #[serde(default)]
    pub finished_at: Option<String>,
    /// Duration in milliseconds, when finished.
    #[serde(default)]
    pub duration_ms: Option<u64>,
    /// One line about the step (builder used, failure message, …).
    #[serde(default)]
    pub detail: Option<String>,
}

/// The image a run built.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageView {
    /// Where the image was published (`registry/repo:tag` or `oci:DIR` reference).
    pub reference: String,
    /// Manifest digest, `sha256:…`.
    pub digest: String,
}

/// The signed release a run published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseView {
    /// Per-app release sequence number (anti-rollback counter).
    pub sequence: u64,
    /// Digest of the release artifact.
    pub digest: String,
    /// Reference of the release artifact.
    pub reference: String,
}

/// Where and why a run failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorView {
    /// Step that failed.
    pub step: String,
    /// What went wrong, as a sentence.
    pub message: String,
}

/// A run as `GET /api/v1/runs/{id}` returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunView {
    /// Run identifier.
    pub id: String,
    /// App name from the descriptor.
    pub app: String,
    /// Team owning the app.
    pub team: String,
    /// Pipeline state.
    pub state: RunState,
    /// Source repository as submitted.
    pub repository: String,
    /// Commit as submitted.
    pub commit: String,
    /// Branch as submitted.
    pub branch: String,
    /// Who submitted.
    pub author: String,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// RFC 3339 time of the last change.
    pub updated_at: String,
    /// Builder used (`docker`, `standard`, `host`), once known.
    #[serde(default)]
    pub builder: Option<String>,
    /// Steps in the order they started.
    #[serde(default)]
    pub steps: Vec<StepView>,
    /// Built image, once pushed.
    #[serde(default)]
    pub image: Option<ImageView>,
    /// Published release, once published.
    #[serde(default)]
    pub release: Option<ReleaseView>,
    /// Vulnerability findings from the scan, as the scanner reported them.
    #[serde(default)]
    pub findings: Vec<serde_json::Value>,
    /// Age in seconds of the vulnerability database the scan used (newest record's `modified` to the scan);
    /// a large age means findings may be missing. None before the scan or for an empty database.
    #[serde(default)]
    pub vulndb_age_seconds: Option<i64>,
    /// The gate policy decision (allowed, violations, warnings, waivers).
    #[serde(default)]
    pub decision: Option<serde_json::Value>,
    /// Set when the run failed.
    #[serde(default)]
    pub error: Option<ErrorView>,
}

/// Body of `GET /api/v1/runs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunList {
    /// Runs, newest first.
    pub runs: Vec<RunView>,
}

/// Body of every 4xx/5xx answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// A sentence: what went wrong, why, and what to do.
    pub error: String,
    /// Machine-readable identifier, e.g. `unauthorized`, `not_found`.
    pub code: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_state_uses_lowercase_wire_names() {
        assert_eq!(
            serde_json::to_string(&RunState::Published).unwrap(),
            "\"published\""
        );
        let parsed: RunState = serde_json::from_str("\"cancelled\"").unwrap();
        assert_eq!(parsed, RunState::Cancelled);
        for state in RunState::ALL {
            assert_eq!(state.as_str().parse::<RunState>().unwrap(), state);
        }
    }

    #[test]
    fn only_end_states_are_terminal() {
        let terminal: Vec<_> = RunState::ALL
            .into_iter()
            .filter(|s| s.is_terminal())
            .collect();
        assert_eq!(
            terminal,
            vec![
                RunState::Published,
                RunState::Rejected,
                RunState::Failed,
                RunState::Cancelled
            ]
        );
    }

    #[test]
    fn run_view_round_trips_through_json() {
        let view = RunView {
            id: "r1".into(),
            app: "hello".into(),
            team: "web".into(),
            state: RunState::Building,
            repository: "https://git.example/hello".into(),
            commit: "abc".into(),
            branch: "main".into(),
            author: "dev".into(),
            created_at: "2026-01-01T00:00:00Z".into(),
            updated_at: "2026-01-01T00:00:01Z".into(),
            builder: None,
            steps: vec![StepView {
                name: "fetch".into(),
                state: StepState::Succeeded,
                started_at: Some("2026-01-01T00:00:00Z".into()),
                finished_at: Some("2026-01-01T00:00:01Z".into()),
                duration_ms: Some(1000),
                detail: None,
            }],
            image: None,
            release: None,
            findings: vec![],
            vulndb_age_seconds: None,
            decision: None,
            error: None,
        };
        let text = serde_json::to_string(&view).unwrap();
        let back: RunView = serde_json::from_str(&text).unwrap();
        assert_eq!(back, view);
    }

    #[test]
    fn run_view_reads_missing_optional_fields() {
        let text = r#"{"id":"r1","app":"a","team":"t","state":"queued","repository":"r",
            "commit":"c","branch":"b","author":"x","created_at":"t0","updated_at":"t1"}"#;
        let view: RunView = serde_json::from_str(text).unwrap();
        assert!(view.steps.is_empty());
        assert!(view.decision.is_none());
    }
}
