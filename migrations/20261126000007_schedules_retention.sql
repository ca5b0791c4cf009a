-- Schedules and retention (docs/ARCHITECTURE.md, "Schedules" and "Retention").
--
-- A schedule fires backups at the times its cron expression names in its time zone. Every
-- worker ticks the scheduler; a fire is claimed by inserting (schedule_id, fire_at) into
-- schedule_fire in the same transaction as the backup and its job, with the schedule row
-- locked, so each fire produces exactly one job without a leader. `last_fire_at` only moves
-- forward, so a fire can never repeat, even after its job and its fire row are pruned.

CREATE TABLE schedule (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name            text        NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    -- Five fields (minute hour day-of-month month day-of-week), parsed by core::schedule::CronExpr.
    cron            text        NOT NULL CHECK (char_length(cron) BETWEEN 9 AND 200),
    -- An IANA zone name, e.g. UTC or Europe/Berlin.
    time_zone       text        NOT NULL DEFAULT 'UTC' CHECK (char_length(time_zone) BETWEEN 1 AND 64),
    -- Safety backups are taken by restores only.
    backup_type     backup_type NOT NULL CHECK (backup_type <> 'safety'),
    -- The configured source by name; NULL is the default (first) source.
    source          text CHECK (char_length(source) BETWEEN 1 AND 63),
    -- Only these tables (canonical quoted `schema.name`); NULL is everything.
    tables          text[] CHECK (tables IS NULL OR cardinality(tables) BETWEEN 1 AND 1000),
    include_files   boolean     NOT NULL DEFAULT false,
    upload_to_drive boolean     NOT NULL DEFAULT false,
    -- Verification after the backup: none, quick or deep.
    verify          text        NOT NULL DEFAULT 'none' CHECK (verify IN ('none', 'quick', 'deep')),
    enabled         boolean     NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    -- Only fire times after this are due: the creation time, moved to the change time whenever
    -- the timing (cron, zone) changes or the schedule is enabled again.
    fires_after     timestamptz NOT NULL DEFAULT now(),
    -- The latest fire time that produced a job; only moves forward.
    last_fire_at    timestamptz
);

CREATE TABLE schedule_fire (
    schedule_id bigint      NOT NULL REFERENCES schedule (id) ON DELETE CASCADE,
    fire_at     timestamptz NOT NULL,
    backup_id   text        REFERENCES backup (id) ON DELETE SET NULL,
    -- No foreign key: jobs are pruned, the record stays.
    job_id      bigint,
    -- When a worker's tick claimed it (its clock: `now` of the tick).
    fired_at    timestamptz NOT NULL,
    PRIMARY KEY (schedule_id, fire_at)
);

-- The seed's three schedules.
INSERT INTO schedule (name, cron, backup_type, include_files, verify) VALUES
    ('daily',   '0 2 * * *', 'daily',   false, 'none'),
    ('weekly',  '0 3 * * 0', 'weekly',  true,  'none'),
    ('monthly', '0 4 1 * *', 'monthly', true,  'deep');

-- Which schedule fire produced a backup (NULL for manual and safety backups); pins; how to verify.
ALTER TABLE backup
    ADD COLUMN schedule_id   bigint REFERENCES schedule (id) ON DELETE SET NULL,
    ADD COLUMN scheduled_for timestamptz,
    -- A pinned backup is never deleted by retention (nor by deleteBackup until unpinned).
    ADD COLUMN pinned        boolean NOT NULL DEFAULT false,
    -- The level of the verification that follows the backup when verify_after is set.
    ADD COLUMN verify_level  text NOT NULL DEFAULT 'deep' CHECK (verify_level IN ('quick', 'deep'));

-- Retention: one policy per backup type. NULL limits are "no limit"; the keep_* columns are the
-- grandfather-father-son slots (newest backup per day / ISO week / month, UTC).
CREATE TABLE retention_policy (
    backup_type   backup_type PRIMARY KEY,
    max_count     integer CHECK (max_count IS NULL OR max_count BETWEEN 1 AND 100000),
    max_age_days  integer CHECK (max_age_days IS NULL OR max_age_days BETWEEN 1 AND 36500),
    keep_daily    integer NOT NULL DEFAULT 0 CHECK (keep_daily BETWEEN 0 AND 100000),
    keep_weekly   integer NOT NULL DEFAULT 0 CHECK (keep_weekly BETWEEN 0 AND 100000),
    keep_monthly  integer NOT NULL DEFAULT 0 CHECK (keep_monthly BETWEEN 0 AND 100000),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- The seed: maxBackupAge 90 days, maxBackupsPerType 10; safety backups 14 days.
INSERT INTO retention_policy (backup_type, max_count, max_age_days) VALUES
    ('manual', 10, 90), ('daily', 10, 90), ('weekly', 10, 90), ('monthly', 10, 90),
    ('safety', 10, 14);

-- When a scheduler tick last enqueued the periodic retention job (one row): a tick enqueues
-- it when this is older than the period, by an UPDATE that only one tick can win.
CREATE TABLE retention_run (
    id                boolean PRIMARY KEY DEFAULT true CHECK (id),
    last_enqueued_at  timestamptz NOT NULL DEFAULT '-infinity'
);
INSERT INTO retention_run DEFAULT VALUES;
