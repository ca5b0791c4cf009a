-- The backup catalog: one row per backup, created in the same transaction as its job.

CREATE TYPE backup_type AS ENUM ('manual', 'daily', 'weekly', 'monthly', 'safety');

CREATE TYPE backup_state AS ENUM (
    'pending',    -- enqueued, not started
    'running',    -- being taken
    'completed',  -- manifest written: the backup exists
    'failed',     -- failed or cancelled; its objects were removed
    'deleted'     -- removed by an operator or by retention
);

CREATE TABLE backup (
    -- Readable and sortable: cellar_backup_2026-11-26_10-30-00_daily_3f9a
    id              text PRIMARY KEY
                    CHECK (id ~ '^cellar_backup_[0-9]{4}-[0-9]{2}-[0-9]{2}_[0-9]{2}-[0-9]{2}-[0-9]{2}_[a-z]+_[0-9a-f]{4,16}$'),
    backup_type     backup_type  NOT NULL,
    state           backup_state NOT NULL DEFAULT 'pending',
    -- Which configured source (by name) and what was asked for.
    source          text         NOT NULL CHECK (char_length(source) BETWEEN 1 AND 63),
    requested_tables text[],
    include_files   boolean      NOT NULL DEFAULT false,
    verify_after    boolean      NOT NULL DEFAULT false,
    job_id          bigint       REFERENCES job (id) ON DELETE SET NULL,
    created_at      timestamptz  NOT NULL DEFAULT now(),
    started_at      timestamptz,
    completed_at    timestamptz,
    -- Filled when the manifest is written.
    key_id          text,
    database_name   text,
    server_version  text,
    plain_bytes     bigint CHECK (plain_bytes >= 0),
    stored_bytes    bigint CHECK (stored_bytes >= 0),
    object_count    integer,
    table_count     integer,
    total_rows      bigint,
    manifest_blake3 text,
    -- [{schema, name, rows, plainBytes, storedBytes}]
    tables          jsonb,
    -- {"local": "available"}: each destination's state.
    locations       jsonb NOT NULL DEFAULT '{}'::jsonb,
    warnings        text[] NOT NULL DEFAULT '{}',
    error           text,
    -- {status: valid|invalid, level, summary {totalRecords, tablesWithData, totalTables}, failures}
    verification    jsonb,
    verified_at     timestamptz,

    CONSTRAINT backup_completed_has_manifest CHECK (
        state <> 'completed' OR (manifest_blake3 IS NOT NULL AND completed_at IS NOT NULL
                                 AND key_id IS NOT NULL)),
    CONSTRAINT backup_failed_has_error CHECK (state <> 'failed' OR error IS NOT NULL)
);

CREATE INDEX backup_type_created_idx ON backup (backup_type, created_at DESC);
CREATE INDEX backup_source_created_idx ON backup (source, created_at DESC);
CREATE INDEX backup_state_idx ON backup (state);
