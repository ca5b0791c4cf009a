-- The worker registry: one row per worker process (its random identity), so health can say how
-- many workers are live without asking them. Each worker upserts its row at start and on every
-- heartbeat tick (four times per lease), and sets stopped_at on a graceful shutdown. A worker
-- is live while stopped_at IS NULL and it was seen within a few of its own lease periods; rows
-- of dead processes stay (pruned after a while) so diagnose can name them.

CREATE TABLE worker (
    -- The process's identity: `job.locked_by` of the jobs it runs.
    id           uuid        PRIMARY KEY,
    host         text        NOT NULL CHECK (char_length(host) BETWEEN 1 AND 255),
    pid          integer     NOT NULL CHECK (pid > 0),
    version      text        NOT NULL CHECK (char_length(version) BETWEEN 1 AND 64),
    -- Job kinds it runs.
    kinds        text[]      NOT NULL DEFAULT '{}',
    -- Its CELLAR_LEASE_SECS: liveness is judged against the worker's own lease.
    lease_secs   float8      NOT NULL CHECK (lease_secs > 0),
    -- What it is configured with, without secrets: source names, Drive on/off and folder ids.
    config       jsonb       NOT NULL DEFAULT '{}'::jsonb,
    started_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    -- Set by a graceful shutdown; a killed worker just stops being seen.
    stopped_at   timestamptz,
    CONSTRAINT worker_seen_after_start CHECK (last_seen_at >= started_at)
);

CREATE INDEX worker_last_seen_idx ON worker (last_seen_at DESC);
