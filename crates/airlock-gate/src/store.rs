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
    /// Where plain reads go. On SQLite a second pool: the write pool has one connection (SQLite has one writer),
    /// and in WAL mode readers need not queue behind it, so status calls stay fast while webhooks are written.
    /// On PostgreSQL the same pool.
    reads: AnyPool,
    sqlite: bool,
    /// Hands webhook deliveries to the group-commit writer ([`Store::record_delivery`]).
    intake: tokio::sync::mpsc::Sender<IntakeJob>,
}

/// Deliveries written in one transaction at most (one commit, one fsync, for all of them).
const INTAKE_BATCH: usize = 256;

/// One webhook delivery waiting for the group-commit writer.
struct IntakeJob {
    delivery_id: String,
    run: NewRun,
    audit: crate::audit::AuditEntry,
    reply: tokio::sync::oneshot::Sender<Result<Option<String>, StoreError>>,
}

/// The current time as RFC 3339 text, the one time format the store keeps.
pub fn now_rfc3339() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// A new run id: a UUIDv7 in simple form, so ids sort by creation time.
pub fn new_run_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

fn now_unix() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// Makes a SQLite connection wait (up to 5 s) for a locked database instead of failing at once: every
/// connection of both SQLite pools, the writer and the readers, gets it.
async fn wait_when_locked(conn: &mut sqlx::AnyConnection) -> Result<(), sqlx::Error> {
    sqlx::query("PRAGMA busy_timeout=5000")
        .execute(&mut *conn)
        .await?;
    Ok(())
}

impl Store {
    /// Connects by URL (`sqlite://PATH?mode=rwc` or `postgres://...`) and applies the migrations of that backend.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        install_default_drivers();
        let sqlite = url.starts_with("sqlite:");
        let connect_err = |source| StoreError::Connect {
            url: redact_url(url),
            source,
        };
        let pool = AnyPoolOptions::new()
            .max_connections(if sqlite { 1 } else { 16 })
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if sqlite {
                        wait_when_locked(conn).await?;
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await
            .map_err(connect_err)?;
        let reads = if sqlite {
            sqlx::query("PRAGMA journal_mode=WAL")
                .execute(&pool)
                .await?;
            sqlx::migrate!("../../migrations/sqlite").run(&pool).await?;
            // Opened after the migrations: the file exists and is in WAL mode by now.
            AnyPoolOptions::new()
                .max_connections(4)
                .after_connect(|conn, _| Box::pin(wait_when_locked(conn)))
                .connect(url)
                .await
                .map_err(connect_err)?
        } else {
            sqlx::migrate!("../../migrations/postgres")
                .run(&pool)
                .await?;
            pool.clone()
        };
        let (intake, rx) = tokio::sync::mpsc::channel(4 * INTAKE_BATCH);
        tokio::spawn(intake_writer(pool.clone(), sqlite, rx));
        Ok(Store {
            pool,
            reads,
            sqlite,
            intake,
        })
    }

    /// Records a webhook delivery, its new run and its audit entry, all or nothing; returns the existing run id if
    /// the delivery was seen before (and then stores nothing).
    ///
    /// Deliveries arriving together are written by one writer task in one transaction (group commit): each
    /// caller gets its answer only after the transaction holding its delivery has committed, so accepted still
    /// means stored, but a burst of N deliveries costs one commit instead of 2N.
    pub async fn record_delivery(
        &self,
        delivery_id: &str,
        run: &NewRun,
        audit: &crate::audit::AuditEntry,
    ) -> Result<Option<String>, StoreError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job = IntakeJob {
            delivery_id: delivery_id.to_string(),
            run: run.clone(),
            audit: audit.clone(),
            reply,
        };
        let gone = || StoreError::Query(sqlx::Error::PoolClosed);
        self.intake.send(job).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }

    /// A transaction that will write. On SQLite it takes the write lock at once (`BEGIN IMMEDIATE`), so a
    /// transaction that reads before it writes waits for another writer (busy timeout) instead of failing with
    /// "database is locked" when it upgrades its lock.
    async fn write_tx(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, StoreError> {
        begin_write(&self.pool, self.sqlite).await
    }

    /// Whether this is the single-node SQLite store (leases of a previous process can be dropped at start).
    pub fn is_sqlite(&self) -> bool {
        self.sqlite
    }

    /// Stores a new run in state `queued`, with the pipeline's steps pending.
    pub async fn insert_run(&self, run: &NewRun) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        insert_run_in(&mut tx, run).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Stores a run derived from an earlier one (a rebase), in one transaction: it starts in `state` with
    /// `outputs` set and the steps of `done` (name, detail) already succeeded, so the pipeline picks it up at
    /// the step after them. With `lease` (owner, seconds) it is leased to the caller, who drives it itself; a
    /// gate worker sharing the store takes it only if that lease runs out.
    pub async fn insert_derived_run(
        &self,
        run: &NewRun,
        state: RunState,
        outputs: &Value,
        done: &[(&str, &str)],
        lease: Option<(&str, i64)>,
    ) -> Result<(), StoreError> {
        let now = now_rfc3339();
        let mut tx = self.write_tx().await?;
        insert_run_in(&mut tx, run).await?;
        sqlx::query(
            "UPDATE runs SET state = $1, outputs = $2, lease_owner = $3, lease_until = $4 WHERE id = $5",
        )
        .bind(enum_text(&state))
        .bind(outputs.to_string())
        .bind(lease.map(|l| l.0))
        .bind(lease.map(|l| now_unix() + l.1))
        .bind(&run.id)
        .execute(&mut *tx)
        .await?;
        for (step, detail) in done {
            sqlx::query(
                "UPDATE run_steps SET state = 'succeeded', started_at = $1, finished_at = $1, duration_ms = 0, \
                 detail = $2 WHERE run_id = $3 AND name = $4",
            )
            .bind(&now)
            .bind(*detail)
            .bind(&run.id)
            .bind(*step)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Whether the database answers a trivial query (for `/readyz`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.reads).await?;
        Ok(())
    }

    /// Claims the oldest unfinished run whose lease is free, for `owner`, for `lease_secs`.
    ///
    /// One atomic `UPDATE ... RETURNING`: on PostgreSQL the candidate row is picked with `FOR UPDATE SKIP LOCKED`,
    /// so replicas sharing the database never claim the same run and never wait on each other; the outer lease
    /// condition is re-checked on the locked row. SQLite serialises writers, which gives the same guarantee.
    pub async fn claim_next(
        &self,
        owner: &str,
        lease_secs: i64,
    ) -> Result<Option<RunRecord>, StoreError> {
        let now = now_unix();
        let lock = if self.sqlite {
            ""
        } else {
            " FOR UPDATE SKIP LOCKED"
        };
        let sql = format!(
            "UPDATE runs SET lease_owner = $1, lease_until = $2, attempts = attempts + 1 \
             WHERE id = (SELECT id FROM runs WHERE state NOT IN ('published', 'rejected', 'failed', 'cancelled') \
             AND (lease_until IS NULL OR lease_until < $3) ORDER BY created_at, id LIMIT 1{lock}) \
             AND (lease_until IS NULL OR lease_until < $3) RETURNING id"
        );
        let claimed = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(owner)
            .bind(now + lease_secs)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
        match claimed {
            Some(row) => {
                let id: String = row.try_get(0)?;
                self.get_run(&id).await.map(Some)
            }
            None => Ok(None),
        }
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
        let mut tx = self.write_tx().await?;
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
        let mut tx = self.write_tx().await?;
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
        let mut tx = self.write_tx().await?;
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
        .fetch_optional(&self.reads)
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
        .fetch_all(&self.reads)
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
        self.find_runs(&RunFilter {
            app: app.map(str::to_string),
            team: team.map(str::to_string),
            state: None,
            limit,
        })
        .await
    }

    /// Runs matching every given filter, newest first. A team filter matches that team exactly: a webhook run
    /// whose team is not known yet is visible only to operators.
    pub async fn find_runs(&self, filter: &RunFilter) -> Result<Vec<RunView>, StoreError> {
        let rows = sqlx::query(
            "SELECT id FROM runs WHERE ($1 = '' OR app = $1) AND ($2 = '' OR team = $2) AND ($3 = '' OR state = $3) \
             ORDER BY created_at DESC, id DESC LIMIT $4",
        )
        .bind(filter.app.as_deref().unwrap_or(""))
        .bind(filter.team.as_deref().unwrap_or(""))
        .bind(filter.state.map(|s| s.as_str()).unwrap_or(""))
        .bind(filter.limit.clamp(1, 1000))
        .fetch_all(&self.reads)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            out.push(self.run_view(&row.try_get::<String, _>(0)?).await?);
        }
        Ok(out)
    }

    /// How many runs are in each state (states with none are absent).
    pub async fn count_by_state(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query("SELECT state, COUNT(*) FROM runs GROUP BY state ORDER BY state")
            .fetch_all(&self.reads)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get::<String, _>(0)?, r.try_get::<i64, _>(1)?)))
            .collect()
    }

    /// Runs waiting for a worker: queued and not leased.
    pub async fn queue_depth(&self) -> Result<i64, StoreError> {
        let row =
            sqlx::query("SELECT COUNT(*) FROM runs WHERE state = 'queued' AND lease_owner IS NULL")
                .fetch_one(&self.reads)
                .await?;
        Ok(row.try_get::<i64, _>(0)?)
    }

    /// Durations of finished steps as a cumulative histogram per step: for each step, the count at or under each
    /// bound in `bounds_ms`, then the total count and the sum in milliseconds.
    pub async fn step_duration_histogram(
        &self,
        bounds_ms: &[i64],
    ) -> Result<Vec<StepHistogram>, StoreError> {
        let mut cols = String::new();
        for b in bounds_ms {
            cols.push_str(&format!(
                "CAST(SUM(CASE WHEN duration_ms <= {b} THEN 1 ELSE 0 END) AS BIGINT), "
            ));
        }
        let sql = format!(
            "SELECT name, {cols}COUNT(*), CAST(SUM(duration_ms) AS BIGINT) FROM run_steps WHERE duration_ms IS NOT NULL \
             GROUP BY name ORDER BY name"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.reads)
            .await?;
        let mut out = Vec::new();
        for row in rows {
            let mut buckets = Vec::with_capacity(bounds_ms.len());
            for i in 0..bounds_ms.len() {
                buckets.push(row.try_get::<i64, _>(i + 1)?);
            }
            out.push(StepHistogram {
                step: row.try_get(0)?,
                buckets,
                count: row.try_get(bounds_ms.len() + 1)?,
                sum_ms: row.try_get(bounds_ms.len() + 2)?,
            });
        }
        Ok(out)
    }

    /// The team that owns an app: the team of its newest published run, if it was ever published. Used to refuse
    /// another team's submission for the app at submit time.
    pub async fn app_owner(&self, app: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query(
            "SELECT team FROM runs WHERE app = $1 AND state = 'published' AND team <> '' \
             ORDER BY created_at DESC, id DESC LIMIT 1",
        )
        .bind(app)
        .fetch_optional(&self.reads)
        .await?;
        Ok(match row {
            Some(r) => Some(r.try_get::<String, _>(0)?),
            None => None,
        })
    }

    /// Apps that have runs, with their team and newest published release (for the web UI).
    pub async fn apps(&self) -> Result<Vec<AppSummary>, StoreError> {
        let rows = sqlx::query(
            "SELECT app, team, COUNT(*), MAX(created_at) FROM runs WHERE app <> '' GROUP BY app, team ORDER BY app, team",
        )
        .fetch_all(&self.reads)
        .await?;
        let mut out = Vec::new();
        for row in rows {
            let app: String = row.try_get(0)?;
            let releases = sqlx::query(
                "SELECT id FROM runs WHERE app = $1 AND state = 'published' ORDER BY created_at DESC LIMIT 20",
            )
            .bind(&app)
            .fetch_all(&self.reads)
            .await?;
            let mut published = Vec::new();
            for r in releases {
                published.push(self.run_view(&r.try_get::<String, _>(0)?).await?);
            }
            out.push(AppSummary {
                app,
                team: row.try_get(1)?,
                runs: row.try_get(2)?,
                last_run_at: row.try_get(3)?,
                published,
            });
        }
        Ok(out)
    }

    /// Appends one entry to the hash-chained audit log and returns it as stored.
    ///
    /// The chain is extended under a lock (a transaction-scoped advisory lock on PostgreSQL; SQLite serialises
    /// writers), so concurrent replicas append one after another and never fork the chain.
    pub async fn append_audit(
        &self,
        entry: &crate::audit::AuditEntry,
    ) -> Result<crate::audit::AuditRecord, StoreError> {
        let mut tx = self.write_tx().await?;
        let mut chain = AuditChain::lock(&mut tx, self.sqlite).await?;
        let record = chain.append(&mut tx, entry.clone()).await?;
        tx.commit().await?;
        Ok(record)
    }

    /// Audit entries with `seq > after`, oldest first, at most `limit`.
    pub async fn audit_entries(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<crate::audit::AuditRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, at, actor, team, role, action, target, source_ip, outcome, detail, prev_hash, hash \
             FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.reads)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(crate::audit::AuditRecord {
                    seq: r.try_get("seq")?,
                    at: r.try_get("at")?,
                    entry: crate::audit::AuditEntry {
                        actor: r.try_get("actor")?,
                        team: r.try_get("team")?,
                        role: r.try_get("role")?,
                        action: r.try_get("action")?,
                        target: r.try_get("target")?,
                        source_ip: r.try_get("source_ip")?,
                        outcome: r.try_get("outcome")?,
                        detail: r.try_get("detail")?,
                    },
                    prev_hash: r.try_get("prev_hash")?,
                    hash: r.try_get("hash")?,
                })
            })
            .collect()
    }

    /// Runs a raw statement; only for tests that tamper with the store on purpose.
    #[doc(hidden)]
    pub async fn execute_raw(&self, sql: &str) -> Result<u64, StoreError> {
        Ok(sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
            .execute(&self.pool)
            .await?
            .rows_affected())
    }
}

/// The head of the audit chain inside a write transaction: appends extend it in order.
struct AuditChain {
    seq: i64,
    hash: String,
}

impl AuditChain {
    /// Locks the chain for this transaction (an advisory lock on PostgreSQL; SQLite's write lock is already
    /// held) and reads its head.
    async fn lock(
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        sqlite: bool,
    ) -> Result<AuditChain, StoreError> {
        if !sqlite {
            sqlx::query("SELECT pg_advisory_xact_lock(7365840001)")
                .execute(&mut **tx)
                .await?;
        }
        let last = sqlx::query("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut **tx)
            .await?;
        Ok(match last {
            Some(row) => AuditChain {
                seq: row.try_get::<i64, _>(0)?,
                hash: row.try_get::<String, _>(1)?,
            },
            None => AuditChain {
                seq: 0,
                hash: crate::audit::GENESIS.to_string(),
            },
        })
    }

    /// The next record of the chain, which the caller inserts in this order in the same transaction.
    fn seal(&mut self, entry: crate::audit::AuditEntry) -> crate::audit::AuditRecord {
        let record =
            crate::audit::AuditRecord::seal(self.seq + 1, now_rfc3339(), entry, self.hash.clone());
        self.seq = record.seq;
        self.hash = record.hash.clone();
        record
    }

    async fn append(
        &mut self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        entry: crate::audit::AuditEntry,
    ) -> Result<crate::audit::AuditRecord, StoreError> {
        let record = self.seal(entry);
        let sql = format!("{AUDIT_INSERT} {}", rows(1, 12));
        bind_audit(sqlx::query(sqlx::AssertSqlSafe(sql)), &record)
            .execute(&mut **tx)
            .await?;
        Ok(record)
    }
}

/// The group-commit writer of webhook deliveries: takes whatever is waiting (up to [`INTAKE_BATCH`]) and writes
/// it in one transaction, then answers each caller. Ends when every `Store` handle is gone.
async fn intake_writer(
    pool: AnyPool,
    sqlite: bool,
    mut rx: tokio::sync::mpsc::Receiver<IntakeJob>,
) {
    let mut batch = Vec::with_capacity(INTAKE_BATCH);
    while rx.recv_many(&mut batch, INTAKE_BATCH).await > 0 {
        match write_deliveries(&pool, sqlite, &batch).await {
            Ok(outcomes) => {
                for (job, outcome) in batch.drain(..).zip(outcomes) {
                    let _ = job.reply.send(Ok(outcome));
                }
            }
            Err(e) => {
                // One bad delivery must not fail its neighbours: write each alone, each gets its own answer.
                tracing::warn!(error = %e, deliveries = batch.len(), "batched intake write failed; writing one by one");
                for job in batch.drain(..) {
                    let result = write_deliveries(&pool, sqlite, std::slice::from_ref(&job))
                        .await
                        .map(|mut v| v.pop().flatten());
                    let _ = job.reply.send(result);
                }
            }
        }
    }
}

/// Writes deliveries with their runs and audit entries in one transaction; per delivery, the existing run id
/// when it was a redelivery (also of one earlier in the same batch).
///
/// A handful of multi-row statements per batch, whatever its size: on PostgreSQL every statement is a round trip,
/// so writing row by row would cost the batch what batching saved.
async fn write_deliveries(
    pool: &AnyPool,
    sqlite: bool,
    jobs: &[IntakeJob],
) -> Result<Vec<Option<String>>, StoreError> {
    use std::collections::{HashMap, HashSet};
    let mut tx = begin_write(pool, sqlite).await?;
    // A redelivery inside the batch answers with the run of the first job carrying its id.
    let mut first_of: HashMap<&str, usize> = HashMap::new();
    let mut firsts = Vec::new();
    for (i, job) in jobs.iter().enumerate() {
        if !first_of.contains_key(job.delivery_id.as_str()) {
            first_of.insert(&job.delivery_id, i);
            firsts.push(i);
        }
    }
    // Same order in every transaction, so two replicas inserting overlapping batches cannot deadlock.
    firsts.sort_by(|a, b| jobs[*a].delivery_id.cmp(&jobs[*b].delivery_id));
    let now = now_rfc3339();
    // The deliveries first: ON CONFLICT leaves out those already stored (by an earlier batch or another replica,
    // whose insert this one waits for on PostgreSQL), and RETURNING says which rows are new.
    let sql = format!(
        "INSERT INTO deliveries (delivery_id, run_id, received_at) VALUES {} ON CONFLICT (delivery_id) DO NOTHING \
         RETURNING delivery_id",
        rows(firsts.len(), 3)
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for &i in &firsts {
        query = query
            .bind(&jobs[i].delivery_id)
            .bind(&jobs[i].run.id)
            .bind(&now);
    }
    let mut inserted = HashSet::new();
    for row in query.fetch_all(&mut *tx).await? {
        inserted.insert(row.try_get::<String, _>(0)?);
    }
    let seen: Vec<&str> = firsts
        .iter()
        .map(|&i| jobs[i].delivery_id.as_str())
        .filter(|d| !inserted.contains(*d))
        .collect();
    let mut existing = HashMap::new();
    if !seen.is_empty() {
        let params: Vec<String> = (1..=seen.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT delivery_id, run_id FROM deliveries WHERE delivery_id IN ({})",
            params.join(", ")
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for d in &seen {
            query = query.bind(*d);
        }
        for row in query.fetch_all(&mut *tx).await? {
            existing.insert(row.try_get::<String, _>(0)?, row.try_get::<String, _>(1)?);
        }
    }
    let new_runs: Vec<&IntakeJob> = firsts
        .iter()
        .map(|&i| &jobs[i])
        .filter(|j| inserted.contains(&j.delivery_id))
        .collect();
    if !new_runs.is_empty() {
        let sql = format!(
            "{RUN_INSERT} {}",
            (0..new_runs.len())
                .map(run_row)
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for job in &new_runs {
            query = bind_run(query, &job.run, &now);
        }
        query.execute(&mut *tx).await?;
        let mut query = sqlx::query(sqlx::AssertSqlSafe(steps_insert(new_runs.len())));
        for job in &new_runs {
            query = bind_steps(query, &job.run.id);
        }
        query.execute(&mut *tx).await?;
        let mut chain = AuditChain::lock(&mut tx, sqlite).await?;
        let records: Vec<crate::audit::AuditRecord> = new_runs
            .iter()
            .map(|job| chain.seal(job.audit.clone()))
            .collect();
        let sql = format!("{AUDIT_INSERT} {}", rows(records.len(), 12));
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for record in &records {
            query = bind_audit(query, record);
        }
        query.execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(jobs
        .iter()
        .enumerate()
        .map(|(i, job)| {
            let first = first_of[job.delivery_id.as_str()];
            match (first == i, inserted.contains(&job.delivery_id)) {
                (true, true) => None,
                (false, true) => Some(jobs[first].run.id.clone()),
                // Stored before this batch: the stored run (always found: the row exists, it conflicted).
                (_, false) => existing.get(&job.delivery_id).cloned(),
            }
        })
        .collect())
}

/// Which runs to list.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub app: Option<String>,
    pub team: Option<String>,
    pub state: Option<RunState>,
    pub limit: i64,
}

/// Finished-step durations of one step, as a cumulative histogram.
#[derive(Debug, Clone)]
pub struct StepHistogram {
    pub step: String,
    /// Count of durations at or under each bound, in the order of the bounds asked for.
    pub buckets: Vec<i64>,
    pub count: i64,
    pub sum_ms: i64,
}

/// An app as the web UI lists it.
#[derive(Debug, Clone)]
pub struct AppSummary {
    pub app: String,
    pub team: String,
    pub runs: i64,
    pub last_run_at: String,
    /// Published runs, newest first (at most 20).
    pub published: Vec<RunView>,
}

async fn insert_run_in(
    conn: &mut sqlx::Transaction<'_, sqlx::Any>,
    run: &NewRun,
) -> Result<(), StoreError> {
    let now = now_rfc3339();
    let sql = format!("{RUN_INSERT} {}", run_row(0));
    bind_run(sqlx::query(sqlx::AssertSqlSafe(sql)), run, &now)
        .execute(&mut **conn)
        .await?;
    // One statement for all steps: intake is on the webhook hot path.
    bind_steps(sqlx::query(sqlx::AssertSqlSafe(steps_insert(1))), &run.id)
        .execute(&mut **conn)
        .await?;
    Ok(())
}

/// A query of the `Any` driver, as `sqlx::query` makes it.
type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, <sqlx::Any as sqlx::Database>::Arguments>;

/// A transaction that will write; see [`Store::write_tx`].
async fn begin_write(
    pool: &AnyPool,
    sqlite: bool,
) -> Result<sqlx::Transaction<'static, sqlx::Any>, StoreError> {
    Ok(if sqlite {
        pool.begin_with("BEGIN IMMEDIATE").await?
    } else {
        pool.begin().await?
    })
}

/// `n` rows of `width` placeholders each, numbered on: `($1, $2), ($3, $4)`.
fn rows(n: usize, width: usize) -> String {
    (0..n)
        .map(|r| {
            let cols: Vec<String> = (1..=width).map(|c| format!("${}", r * width + c)).collect();
            format!("({})", cols.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

const RUN_INSERT: &str = "INSERT INTO runs (id, app, team, state, source_kind, source_ref, repository, commit_sha, \
     branch, author, outputs, created_at, updated_at) VALUES";

/// The placeholders of the `r`-th new run of a `RUN_INSERT`, bound by [`bind_run`] (11 per run; created and
/// updated share one).
fn run_row(r: usize) -> String {
    let p = |c: usize| format!("${}", r * 11 + c);
    format!(
        "({}, {}, {}, 'queued', {}, {}, {}, {}, {}, {}, {}, {}, {})",
        p(1),
        p(2),
        p(3),
        p(4),
        p(5),
        p(6),
        p(7),
        p(8),
        p(9),
        p(10),
        p(11),
        p(11)
    )
}

/// Binds one new run's values for [`run_row`].
fn bind_run<'q>(query: AnyQuery<'q>, run: &NewRun, now: &str) -> AnyQuery<'q> {
    query
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
        .bind(now)
}

/// One statement inserting the pipeline's steps, pending, for `runs` new runs; bound by [`bind_steps`] per run.
fn steps_insert(runs: usize) -> String {
    let steps = crate::pipeline::STEPS.len();
    let rows: Vec<String> = (0..runs)
        .flat_map(|r| {
            (0..steps).map(move |i| {
                format!(
                    "(${}, ${}, {i}, 'pending')",
                    r * (steps + 1) + 1,
                    r * (steps + 1) + i + 2
                )
            })
        })
        .collect();
    format!(
        "INSERT INTO run_steps (run_id, name, position, state) VALUES {}",
        rows.join(", ")
    )
}

/// Binds one run's id and step names for [`steps_insert`].
fn bind_steps<'q>(mut query: AnyQuery<'q>, run_id: &str) -> AnyQuery<'q> {
    query = query.bind(run_id);
    for step in crate::pipeline::STEPS {
        query = query.bind(step);
    }
    query
}

const AUDIT_INSERT: &str = "INSERT INTO audit_log (seq, at, actor, team, role, action, target, source_ip, outcome, \
     detail, prev_hash, hash) VALUES";

/// Binds one sealed audit record's 12 values, in `AUDIT_INSERT`'s column order.
fn bind_audit<'q>(query: AnyQuery<'q>, record: &crate::audit::AuditRecord) -> AnyQuery<'q> {
    query
        .bind(record.seq)
        .bind(&record.at)
        .bind(&record.entry.actor)
        .bind(&record.entry.team)
        .bind(&record.entry.role)
        .bind(&record.entry.action)
        .bind(&record.entry.target)
        .bind(&record.entry.source_ip)
        .bind(&record.entry.outcome)
        .bind(&record.entry.detail)
        .bind(&record.prev_hash)
        .bind(&record.hash)
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
        vulndb_age_seconds: o.get("vulndb_age_seconds").and_then(|v| v.as_i64()),
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
