-- API access control and the audit trail (issue 5).
--
-- Tokens are random 32-byte secrets shown once; only their BLAKE3 hash is kept, so a leaked
-- catalog does not leak working tokens. Every mutation the API is asked to run, allowed or not,
-- leaves one audit_event row.

CREATE TYPE api_role AS ENUM (
    'master',    -- everything: backups, restores, deletes, tokens, the audit log
    'operator',  -- create and verify backups, cancel the jobs it started, read
    'viewer'     -- read only
);

CREATE TABLE api_token (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Who holds it: a person or a script (shown in the audit trail).
    name         text        NOT NULL CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.@-]{0,62}$'),
    role         api_role    NOT NULL,
    -- Lowercase hex BLAKE3 of the whole token text; the token itself is never stored.
    token_hash   text        NOT NULL UNIQUE CHECK (token_hash ~ '^[0-9a-f]{64}$'),
    created_at   timestamptz NOT NULL DEFAULT now(),
    -- Refreshed at most once a minute, not on every request.
    last_used_at timestamptz,
    expires_at   timestamptz,
    revoked_at   timestamptz,
    CONSTRAINT api_token_expires_after_creation CHECK (expires_at IS NULL OR expires_at > created_at)
);

-- One active token per name, so `cellar token revoke NAME` is unambiguous.
CREATE UNIQUE INDEX api_token_active_name_idx ON api_token (name) WHERE revoked_at IS NULL;

CREATE TYPE audit_outcome AS ENUM (
    'allowed',  -- the caller may, and it was done
    'denied',   -- no token, a bad token, or a role that may not
    'failed'    -- allowed, but refused or failed (bad input, conflict, internal error)
);

CREATE TABLE audit_event (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz   NOT NULL DEFAULT now(),
    -- The caller (all NULL for a request without a valid token). Name and role are copied so
    -- the trail stays readable after the token is revoked.
    token_id    bigint        REFERENCES api_token (id) ON DELETE SET NULL,
    token_name  text,
    role        api_role,
    -- The GraphQL mutation or REST route, e.g. createBackup.
    action      text          NOT NULL CHECK (char_length(action) BETWEEN 1 AND 64),
    -- What it acted on (a backup id, a job id), when it names one.
    target      text          CHECK (char_length(target) <= 256),
    -- The job the action started, if any: who started a job is answered from here.
    -- No foreign key: jobs are pruned, the trail stays.
    job_id      bigint,
    -- The arguments, with secrets removed.
    arguments   jsonb         NOT NULL DEFAULT '{}'::jsonb,
    outcome     audit_outcome NOT NULL,
    -- The machine-readable error code sent to the client (FORBIDDEN, INVALID_INPUT, ...).
    error_code  text,
    client_addr text,
    CONSTRAINT audit_event_error_iff_not_allowed CHECK ((outcome = 'allowed') = (error_code IS NULL))
);

-- "Did this operator start that job?" (operators may cancel only their own jobs).
CREATE INDEX audit_event_job_idx ON audit_event (job_id, token_id) WHERE job_id IS NOT NULL;
