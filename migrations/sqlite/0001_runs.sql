-- Runs of the pipeline: one row per submission, written before the gate answers 202.
CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    app TEXT NOT NULL,
    team TEXT NOT NULL,
    state TEXT NOT NULL,
    source_kind TEXT NOT NULL,
    source_ref TEXT NOT NULL,
    repository TEXT NOT NULL,
    commit_sha TEXT NOT NULL,
    branch TEXT NOT NULL,
    author TEXT NOT NULL,
    builder TEXT,
    attempts BIGINT NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_until BIGINT,
    cancel_requested BIGINT NOT NULL DEFAULT 0,
    outputs TEXT NOT NULL DEFAULT '{}',
    error_step TEXT,
    error_message TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX runs_state_idx ON runs (state, created_at);
CREATE INDEX runs_app_idx ON runs (app, created_at);

-- One row per step of a run, so a developer sees where time went and where it stopped.
CREATE TABLE run_steps (
    run_id TEXT NOT NULL,
    name TEXT NOT NULL,
    position BIGINT NOT NULL,
    state TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    duration_ms BIGINT,
    detail TEXT,
    PRIMARY KEY (run_id, name)
);

-- Per-app release sequence numbers (anti-rollback on the agent's side relies on them growing).
CREATE TABLE app_sequences (
    app TEXT PRIMARY KEY,
    last_sequence BIGINT NOT NULL
);

-- Webhook deliveries already accepted, so a redelivery does not start a second run.
CREATE TABLE deliveries (
    delivery_id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    received_at TEXT NOT NULL
);
