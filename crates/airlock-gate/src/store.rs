//! The gate's durable store: runs, their steps, per-app sequences and webhook deliveries.
//!
//! One code path for SQLite and PostgreSQL through sqlx's `Any` driver. Times are RFC 3339 text, JSON is text, and
//! booleans are integers, because `Any` decodes nothing richer.

use airlock_cli::api::{ErrorView, RunState, RunView, StepState, StepView};
use serde_json::Value;
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Row};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// What can go wrong talking to the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {url}: {source}")]
    Connect { url: String, source: sqlx::Error },
    #[error("applying migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database query failed: {0}")]
    Query(#[from] sqlx::Error),
    #[error("run {0} not found")]
    NotFound(String),
    #[error("stored run {id} is corrupt: {reason}")]
    Corrupt { id: String, reason: String },
}

/// Where a run's source comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceKind {
    /// An uploaded tarball, stored under the data directory before the gate answered.
    Tarball,
    /// A git repository URL, fetched at the commit.
    Git,
}

impl SourceKind {
    fn as_str(&self) -> &'static str {
        match self {
            SourceKind::Tarball => "tarball",
            SourceKind::Git => "git",
        }
    }
}

/// A new submission, as intake accepted it.
#[derive(Debug, Clone)]
pub struct NewRun {
    pub id: String,
    pub app: String,
    pub team: String,
    pub source_kind: SourceKind,
    pub source_ref: String,
    pub repository: String,
    pub commit: String,
    pub branch: String,
    pub author: String,
    /// Commit time (unix seconds) when the submitter knows it; fixes image timestamps so builds reproduce.
    pub commit_time: Option<i64>,
}

/// A run as the pipeline sees it.
#[derive(Debug, Clone)]
pub struct RunRecord {
    pub id: String,
    pub app: String,
    pub team: String,
    pub state: RunState,
    pub source_kind: SourceKind,
    pub source_ref: String,
    pub repository: String,
    pub commit: String,
    pub branch: String,
    pub author: String,
    pub builder: Option<String>,
    pub attempts: i64,
    pub cancel_requested: bool,
    /// Outputs of finished steps (image digest, findings, decision, release), merged step by step.
    pub outputs: Value,
    pub error_step: Option<String>,
    pub error_message: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// The store handle; cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    sqlite: bool,
}

/// The current time as RFC 3339 text, the one time format the store keeps.
pub fn now_rfc3339() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default()
}

fn now_unix() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

impl Store {
    /// Connects by URL (`sqlite://PATH?mode=rwc` or `postgres://...`) and applies the migrations of that backend.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        install_default_drivers();
        let sqlite = url.starts_with("sqlite:");
        let pool = AnyPoolOptions::new()
            .max_connections(if sqlite { 1 } else { 8 })
            .connect(url)
            .await
            .map_err(|source| StoreError::Connect {
                url: redact_url(url),
                source,
            })?;
        if sqlite {
            sqlx::query("PRAGMA journal_mode=WAL")
                .execute(&pool)
                .await?;
            sqlx::query("PRAGMA busy_timeout=5000")
                .execute(&pool)
                .await?;
            sqlx::migrate!("../../migrations/sqlite").run(&pool).await?;
        } else {
            sqlx::migrate!("../../migrations/postgres")
                .run(&pool)
                .await?;
        }
        Ok(Store { pool, sqlite })
    }

    /// Whether this is the single-node SQLite store (leases of a previous process can be dropped at start).
    pub fn is_sqlite(&self) -> bool {
        self.sqlite
    }

    /// Stores a new run in state `queued`, with the pipeline's steps pending.
    pub async fn insert_run(&self, run: &NewRun) -> Result<(), StoreError> {
        let now = now_rfc3339();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO runs (id, app, team, state, source_kind, source_ref, repository, commit_sha, branch, author, \
             outputs, created_at, updated_at) VALUES ($1, $2, $3, 'queued', $4, $5, $6, $7, $8, $9, $10, $11, $11)",
        )
        .bind(&run.id)
        .bind(&run.app)
        .bind(&run.team)
        .bind(run.source_kind.as_str())
        .bind(&run.source_ref)
        .bind(&run.repository)
        .bind(&run.commit)
        .bind(&run.branch)
        .bind(&run.author)
        .bind(serde_json::json!({ "source": { "commit_time": run.commit_time } }).to_string())
        .bind(&now)
        .execute(&mut *tx)
        .await?;
        for (position, step) in crate::pipeline::STEPS.iter().enumerate() {
            sqlx::query("INSERT INTO run_steps (run_id, name, position, state) VALUES ($1, $2, $3, 'pending')")
                .bind(&run.id)
                .bind(*step)
                .bind(position as i64)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records a webhook delivery with its new run in one transaction; returns the existing run id if the delivery
    /// was seen before (and then stores nothing).
    pub async fn insert_delivery_run(
        &self,
        delivery_id: &str,
        run: &NewRun,
    ) -> Result<Option<String>, StoreError> {
        if let Some(row) = sqlx::query("SELECT run_id FROM deliveries WHERE delivery_id = $1")
            .bind(delivery_id)
            .fetch_optional(&self.pool)
            .await?
        {
            return Ok(Some(row.try_get::<String, _>(0)?));
        }
        self.insert_run(run).await?;
        let inserted = sqlx::query(
            "INSERT INTO deliveries (delivery_id, run_id, received_at) VALUES ($1, $2, $3) ON CONFLICT (delivery_id) DO NOTHING",
        )
        .bind(delivery_id)
        .bind(&run.id)
        .bind(now_rfc3339())
        .execute(&self.pool)
        .await?;
        if inserted.rows_affected() == 0 {
            // Another replica accepted the same delivery between our check and insert: drop our duplicate.
            self.set_terminal(
                &run.id,
                RunState::Cancelled,
                Some(("intake", "duplicate webhook delivery")),
            )
            .await?;
            let row = sqlx::query("SELECT run_id FROM deliveries WHERE delivery_id = $1")
                .bind(delivery_id)
                .fetch_one(&self.pool)
                .await?;
            return Ok(Some(row.try_get::<String, _>(0)?));
        }
        Ok(None)
    }

    /// Claims the oldest unfinished run whose lease is free, for `owner`, for `lease_secs`.
    pub async fn claim_next(
        &self,
        owner: &str,
        lease_secs: i64,
    ) -> Result<Option<RunRecord>, StoreError> {
        let now = now_unix();
        let candidates = sqlx::query(
            "SELECT id FROM runs WHERE state NOT IN ('published', 'rejected', 'failed', 'cancelled') \
             AND (lease_until IS NULL OR lease_until < $1) ORDER BY created_at LIMIT 5",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        for row in candidates {
            let id: String = row.try_get(0)?;
            let claimed = sqlx::query(
                "UPDATE runs SET lease_owner = $1, lease_until = $2, attempts = attempts + 1 \
                 WHERE id = $3 AND (lease_until IS NULL OR lease_until < $4)",
            )
            .bind(owner)
            .bind(now + lease_secs)
            .bind(&id)
            .bind(now)
            .execute(&self.pool)
            .await?;
            if claimed.rows_affected() == 1 {
                return self.get_run(&id).await.map(Some);
            }
        }
        Ok(None)
    }

    /// Drops every lease: used at start of a single-node (SQLite) gate so runs cut off by a restart resume at once.
    pub async fn release_all_leases(&self) -> Result<(), StoreError> {
        sqlx::query("UPDATE runs SET lease_owner = NULL, lease_until = NULL")
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Releases the lease on a run this worker holds.
    pub async fn release_lease(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE runs SET lease_owner = NULL, lease_until = NULL WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Moves a run to `state` (written before the step starts) and marks the step running.
    pub async fn start_step(
        &self,
        id: &str,
        state: RunState,
        step: &str,
    ) -> Result<(), StoreError> {
        let now = now_rfc3339();
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE runs SET state = $1, updated_at = $2 WHERE id = $3")
            .bind(enum_text(&state))
            .bind(&now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE run_steps SET state = 'running', started_at = $1, finished_at = NULL, duration_ms = NULL, \
             detail = NULL WHERE run_id = $2 AND name = $3",
        )
        .bind(&now)
        .bind(id)
        .bind(step)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Finishes a step, merging its outputs into the run's.
    pub async fn finish_step(
        &self,
        id: &str,
        step: &str,
        state: StepState,
        duration_ms: u64,
        detail: Option<&str>,
        outputs: Option<&Value>,
    ) -> Result<(), StoreError> {
        let now = now_rfc3339();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE run_steps SET state = $1, finished_at = $2, duration_ms = $3, detail = $4 WHERE run_id = $5 AND name = $6",
        )
        .bind(enum_text(&state))
        .bind(&now)
        .bind(duration_ms as i64)
        .bind(detail)
        .bind(id)
        .bind(step)
        .execute(&mut *tx)
        .await?;
        if let Some(new) = outputs {
            let row = sqlx::query("SELECT outputs FROM runs WHERE id = $1")
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
            let text: String = row.try_get(0)?;
            let mut merged: Value =
                serde_json::from_str(&text).unwrap_or_else(|_| Value::Object(Default::default()));
            if let (Some(m), Some(n)) = (merged.as_object_mut(), new.as_object()) {
                for (k, v) in n {
                    m.insert(k.clone(), v.clone());
                }
            }
            sqlx::query("UPDATE runs SET outputs = $1, updated_at = $2 WHERE id = $3")
                .bind(merged.to_string())
                .bind(&now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Sets what fetching learned about the run (app, team, commit, builder).
    pub async fn set_identity(
        &self,
        id: &str,
        app: &str,
        team: &str,
        commit: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE runs SET app = $1, team = $2, commit_sha = $3, updated_at = $4 WHERE id = $5",
        )
        .bind(app)
        .bind(team)
        .bind(commit)
        .bind(now_rfc3339())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records which builder ran the build.
    pub async fn set_builder(&self, id: &str, builder: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE runs SET builder = $1 WHERE id = $2")
            .bind(builder)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Ends a run in a terminal state, with the failing step and message for `failed` and `rejected`.
    pub async fn set_terminal(
        &self,
        id: &str,
        state: RunState,
        error: Option<(&str, &str)>,
    ) -> Result<(), StoreError> {
        let now = now_rfc3339();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE runs SET state = $1, error_step = $2, error_message = $3, updated_at = $4, lease_owner = NULL, \
             lease_until = NULL WHERE id = $5",
        )
        .bind(enum_text(&state))
        .bind(error.map(|e| e.0))
        .bind(error.map(|e| e.1))
        .bind(&now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE run_steps SET state = 'skipped' WHERE run_id = $1 AND state = 'pending'",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Asks a run to stop; the worker checks between steps. Returns false when the run had already ended.
    pub async fn request_cancel(&self, id: &str) -> Result<bool, StoreError> {
        let run = self.get_run(id).await?;
        if run.state.is_terminal() {
            return Ok(false);
        }
        sqlx::query("UPDATE runs SET cancel_requested = 1, updated_at = $1 WHERE id = $2")
            .bind(now_rfc3339())
            .bind(id)
            .execute(&self.pool)
            .await?;
        if run.state == RunState::Queued {
            self.set_terminal(
                id,
                RunState::Cancelled,
                Some(("queued", "cancelled before it started")),
            )
            .await?;
        }
        Ok(true)
    }

    /// Allocates the next release sequence number of an app (1, 2, ...).
    pub async fn next_sequence(&self, app: &str) -> Result<u64, StoreError> {
        let row = sqlx::query(
            "INSERT INTO app_sequences (app, last_sequence) VALUES ($1, 1) \
             ON CONFLICT (app) DO UPDATE SET last_sequence = app_sequences.last_sequence + 1 RETURNING last_sequence",
        )
        .bind(app)
        .fetch_one(&self.pool)
        .await?;
        let seq: i64 = row.try_get(0)?;
        Ok(seq as u64)
    }

    /// One run, as the pipeline sees it.
    pub async fn get_run(&self, id: &str) -> Result<RunRecord, StoreError> {
        let row = sqlx::query(
            "SELECT id, app, team, state, source_kind, source_ref, repository, commit_sha, branch, author, builder, \
             attempts, cancel_requested, outputs, error_step, error_message, created_at, updated_at FROM runs WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::NotFound(id.to_string()))?;
        let state_text: String = row.try_get("state")?;
        let state = parse_enum::<RunState>(&state_text).ok_or_else(|| StoreError::Corrupt {
            id: id.to_string(),
            reason: format!("unknown state {state_text:?}"),
        })?;
        let kind: String = row.try_get("source_kind")?;
        let outputs: String = row.try_get("outputs")?;
        Ok(RunRecord {
            id: row.try_get("id")?,
            app: row.try_get("app")?,
            team: row.try_get("team")?,
            state,
            source_kind: if kind == "git" {
                SourceKind::Git
            } else {
                SourceKind::Tarball
            },
            source_ref: row.try_get("source_ref")?,
            repository: row.try_get("repository")?,
            commit: row.try_get("commit_sha")?,
            branch: row.try_get("branch")?,
            author: row.try_get("author")?,
            builder: row.try_get("builder")?,
            attempts: row.try_get("attempts")?,
            cancel_requested: row.try_get::<i64, _>("cancel_requested")? != 0,
            outputs: serde_json::from_str(&outputs).map_err(|e| StoreError::Corrupt {
                id: id.to_string(),
                reason: format!("outputs: {e}"),
            })?,
            error_step: row.try_get("error_step")?,
            error_message: row.try_get("error_message")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }

    /// A run with its steps, as the API shows it.
    pub async fn run_view(&self, id: &str) -> Result<RunView, StoreError> {
        let run = self.get_run(id).await?;
        let rows = sqlx::query(
            "SELECT name, state, started_at, finished_at, duration_ms, detail FROM run_steps WHERE run_id = $1 ORDER BY position",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        let mut steps = Vec::with_capacity(rows.len());
        for row in rows {
            let state: String = row.try_get("state")?;
            let Some(state) = parse_enum::<StepState>(&state) else {
                continue; // 'pending' steps are not shown
            };
            steps.push(StepView {
                name: row.try_get("name")?,
                state,
                started_at: row.try_get("started_at")?,
                finished_at: row.try_get("finished_at")?,
                duration_ms: row
                    .try_get::<Option<i64>, _>("duration_ms")?
                    .map(|d| d as u64),
                detail: row.try_get("detail")?,
            });
        }
        Ok(view_of(run, steps))
    }

    /// Runs, newest first, optionally of one app and one team.
    pub async fn list_runs(
        &self,
        app: Option<&str>,
        team: Option<&str>,
        limit: i64,
    ) -> Result<Vec<RunView>, StoreError> {
        let rows = sqlx::query(
            "SELECT id FROM runs WHERE ($1 = '' OR app = $1) AND ($2 = '' OR team = $2 OR team = '') ORDER BY created_at DESC LIMIT $3",
        )
        .bind(app.unwrap_or(""))
        .bind(team.unwrap_or(""))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            out.push(self.run_view(&row.try_get::<String, _>(0)?).await?);
        }
        Ok(out)
    }
}

/// The wire name of a serde enum (`RunState::Published` → `published`).
pub fn enum_text<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(Value::String(s)) => s,
        _ => String::new(),
    }
}

/// The serde enum of a wire name, if it is one.
pub fn parse_enum<T: serde::de::DeserializeOwned>(text: &str) -> Option<T> {
    serde_json::from_value(Value::String(text.to_string())).ok()
}

fn view_of(run: RunRecord, steps: Vec<StepView>) -> RunView {
    let o = &run.outputs;
    fn parse<T: serde::de::DeserializeOwned>(o: &Value, key: &str) -> Option<T> {
        o.get(key)
            .cloned()
            .and_then(|v| serde_json::from_value(v).ok())
    }
    RunView {
        id: run.id,
        app: run.app,
        team: run.team,
        state: run.state,
        repository: run.repository,
        commit: run.commit,
        branch: run.branch,
        author: run.author,
        created_at: run.created_at,
        updated_at: run.updated_at,
        builder: run.builder,
        steps,
        image: parse(o, "image"),
        release: parse(o, "release"),
        findings: o
            .get("findings")
            .and_then(|f| f.as_array().cloned())
            .unwrap_or_default(),
        decision: o.get("decision").cloned(),
        error: match (run.error_step, run.error_message) {
            (Some(step), Some(message)) => Some(ErrorView { step, message }),
            _ => None,
        },
    }
}

/// A database URL with any password replaced, for messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}://{}:***@{}", &url[..scheme_end], user, &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_password_in_database_url() {
        assert_eq!(
            redact_url("postgres://gate:s3cret@db:5432/airlock"),
            "postgres://gate:***@db:5432/airlock"
        );
        assert_eq!(redact_url("sqlite:///tmp/a.db"), "sqlite:///tmp/a.db");
    }
}
