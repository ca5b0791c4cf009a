-- The job queue (modelled on River): one table, state as an enum guarded by CHECK constraints.
-- See docs/JOB_STATES.md for the state diagram.

CREATE TYPE job_state AS ENUM (
    'available',  -- runnable now
    'scheduled',  -- runnable at scheduled_at (enqueued for the future)
    'running',    -- claimed by a worker that holds the lease (locked_by, heartbeat_at)
    'retryable',  -- failed, will run again at scheduled_at (backoff persisted here)
    'completed',  -- finished successfully
    'cancelled',  -- cancelled before or while running
    'discarded'   -- failed permanently or ran out of attempts
);

CREATE TABLE job (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind                text        NOT NULL CHECK (char_length(kind) BETWEEN 1 AND 128),
    args                jsonb       NOT NULL DEFAULT '{}'::jsonb,
    state               job_state   NOT NULL DEFAULT 'available',
    -- Higher runs first.
    priority            smallint    NOT NULL DEFAULT 0,
    -- Incremented by each claim; fencing token together with locked_by.
    attempt             integer     NOT NULL DEFAULT 0,
    max_attempts        integer     NOT NULL DEFAULT 5 CHECK (max_attempts BETWEEN 1 AND 1000),
    -- One entry per failed attempt: {attempt, at, error, worker}.
    errors              jsonb[]     NOT NULL DEFAULT '{}',
    scheduled_at        timestamptz NOT NULL DEFAULT now(),
    attempted_at        timestamptz,
    -- The lease: which process runs it and when it last said so.
    locked_by           uuid,
    heartbeat_at        timestamptz,
    cancel_requested_at timestamptz,
    progress            jsonb,
    result              jsonb,
    -- At most one active (not finished) job per dedupe key.
    dedupe_key          text CHECK (dedupe_key IS NULL OR char_length(dedupe_key) BETWEEN 1 AND 512),
    created_at          timestamptz NOT NULL DEFAULT now(),
    finished_at         timestamptz,

    CONSTRAINT job_attempt_bounds CHECK (attempt BETWEEN 0 AND max_attempts),
    -- A job holds a lease exactly while it is running.
    CONSTRAINT job_running_has_lease CHECK (
        (state = 'running') = (locked_by IS NOT NULL AND heartbeat_at IS NOT NULL)),
    CONSTRAINT job_lease_all_or_nothing CHECK ((locked_by IS NULL) = (heartbeat_at IS NULL)),
    -- finished_at is set exactly in the final states.
    CONSTRAINT job_finished_at_final CHECK (
        (state IN ('completed', 'cancelled', 'discarded')) = (finished_at IS NOT NULL)),
    -- A job that ran has a time of its last attempt.
    CONSTRAINT job_running_attempted CHECK (state <> 'running' OR (attempted_at IS NOT NULL AND attempt > 0)),
    CONSTRAINT job_completed_attempted CHECK (state <> 'completed' OR attempt > 0)
);

-- Claim order over runnable rows only: small and hot.
CREATE INDEX job_runnable_idx ON job (priority DESC, scheduled_at, id)
    WHERE state IN ('available', 'scheduled', 'retryable');
-- The rescuer's scan of leases.
CREATE INDEX job_running_heartbeat_idx ON job (heartbeat_at) WHERE state = 'running';
-- Pruning finished rows.
CREATE INDEX job_finished_idx ON job (finished_at) WHERE finished_at IS NOT NULL;
CREATE INDEX job_kind_idx ON job (kind, id DESC);
CREATE UNIQUE INDEX job_dedupe_active_idx ON job (dedupe_key)
    WHERE dedupe_key IS NOT NULL AND state IN ('available', 'scheduled', 'retryable', 'running');

-- Wake idle workers once per inserting transaction: notifications with the same channel and
-- payload are folded into one at commit.
CREATE FUNCTION job_notify_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('cellar_job_available', '');
    RETURN NULL;
END $$;

CREATE TRIGGER job_notify_insert AFTER INSERT ON job
    FOR EACH STATEMENT EXECUTE FUNCTION job_notify_insert();

-- State changes and progress feed the API's subscriptions (one LISTEN per API process); a job that
-- becomes runnable again wakes idle workers; a cancel request reaches the worker running the job.
CREATE FUNCTION job_notify_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.state IS DISTINCT FROM OLD.state OR NEW.progress IS DISTINCT FROM OLD.progress THEN
        PERFORM pg_notify('cellar_job_event', json_build_object(
            'id', NEW.id, 'kind', NEW.kind, 'state', NEW.state, 'attempt', NEW.attempt)::text);
    END IF;
    IF NEW.state IN ('available', 'retryable') AND OLD.state = 'running'
       AND NEW.scheduled_at <= now() THEN
        PERFORM pg_notify('cellar_job_available', '');
    END IF;
    IF NEW.cancel_requested_at IS NOT NULL AND OLD.cancel_requested_at IS NULL
       AND NEW.state = 'running' THEN
        PERFORM pg_notify('cellar_job_cancel', NEW.id::text);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER job_notify_update AFTER UPDATE ON job FOR EACH ROW
    WHEN (OLD.state IS DISTINCT FROM NEW.state
          OR OLD.progress IS DISTINCT FROM NEW.progress
          OR OLD.cancel_requested_at IS DISTINCT FROM NEW.cancel_requested_at)
    EXECUTE FUNCTION job_notify_update();
