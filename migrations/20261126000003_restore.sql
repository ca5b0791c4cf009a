-- Restores: one row per restore (or rollback), created in the same transaction as its job.

CREATE TYPE restore_state AS ENUM (
    'pending',    -- enqueued, not started
    'running',    -- safety backup, build, swap
    'completed',  -- the target holds the backup's content
    'failed'      -- failed or cancelled: the target was left exactly as it was
);

CREATE TABLE restore (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The backup restored (a rollback restores the safety backup of `rollback_of`).
    backup_id       text NOT NULL REFERENCES backup (id),
    -- The configured source whose server holds the target database.
    source          text NOT NULL CHECK (char_length(source) BETWEEN 1 AND 63),
    target_database text NOT NULL CHECK (octet_length(target_database) BETWEEN 1 AND 63),
    -- NULL: the whole database; else only these tables (`schema.name`).
    tables          text[],
    -- The target may hold data and be replaced.
    confirmed       boolean NOT NULL DEFAULT false,
    create_safety_backup boolean NOT NULL DEFAULT true,
    -- A selective restore may leave foreign keys that point nowhere.
    accept_broken_references boolean NOT NULL DEFAULT false,
    -- The backup of what this restore replaced, taken before anything changed.
    safety_backup_id text REFERENCES backup (id) ON DELETE SET NULL,
    rollback_of     bigint REFERENCES restore (id) ON DELETE SET NULL,
    state           restore_state NOT NULL DEFAULT 'pending',
    job_id          bigint REFERENCES job (id) ON DELETE SET NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    completed_at    timestamptz,
    -- {tables, rows, warnings, seconds}
    result          jsonb,
    error           text,

    CONSTRAINT restore_failed_has_error CHECK (state <> 'failed' OR error IS NOT NULL),
    CONSTRAINT restore_tables_not_empty CHECK (tables IS NULL OR cardinality(tables) > 0)
);

CREATE INDEX restore_created_idx ON restore (created_at DESC);
CREATE INDEX restore_target_state_idx ON restore (source, target_database, state);
