-- The per-row event trigger of 20261126000001 ran a plpgsql call for every claimed and every
-- completed job; under load that cost about 20% of queue throughput (docs/BENCHMARKS.md).
-- The same notifications, with the same payloads, now come from one statement-level trigger per
-- UPDATE, reading the transition tables.

DROP TRIGGER job_notify_update ON job;
DROP FUNCTION job_notify_update();

CREATE FUNCTION job_notify_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('cellar_job_event', json_build_object(
                'id', n.id, 'kind', n.kind, 'state', n.state, 'attempt', n.attempt)::text)
    FROM new_rows n JOIN old_rows o ON o.id = n.id
    WHERE n.state IS DISTINCT FROM o.state OR n.progress IS DISTINCT FROM o.progress;
    IF EXISTS (SELECT 1 FROM new_rows n JOIN old_rows o ON o.id = n.id
               WHERE n.state IN ('available', 'retryable') AND o.state = 'running'
                 AND n.scheduled_at <= now()) THEN
        PERFORM pg_notify('cellar_job_available', '');
    END IF;
    PERFORM pg_notify('cellar_job_cancel', n.id::text)
    FROM new_rows n JOIN old_rows o ON o.id = n.id
    WHERE n.cancel_requested_at IS NOT NULL AND o.cancel_requested_at IS NULL
      AND n.state = 'running';
    RETURN NULL;
END $$;

CREATE TRIGGER job_notify_update AFTER UPDATE ON job
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION job_notify_update();
