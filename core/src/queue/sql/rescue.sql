-- Return jobs whose worker stopped heartbeating for $1 seconds. The attempt stays charged (the
-- worker may have died because of the job); the lease expiry is recorded as the attempt's error.
UPDATE job
SET state = CASE
        WHEN cancel_requested_at IS NOT NULL THEN 'cancelled'
        WHEN attempt >= max_attempts THEN 'discarded'
        ELSE 'retryable'
    END::job_state,
    finished_at = CASE
        WHEN cancel_requested_at IS NOT NULL OR attempt >= max_attempts THEN now()
    END,
    scheduled_at = now(),
    errors = array_append(errors, jsonb_build_object(
        'attempt', attempt,
        'at', now(),
        'error', 'lease expired: the worker stopped heartbeating (killed, crashed or cut off)',
        'worker', locked_by)),
    locked_by = NULL,
    heartbeat_at = NULL
WHERE state = 'running'
  AND heartbeat_at < now() - make_interval(secs => $1)
RETURNING id
