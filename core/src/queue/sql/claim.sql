-- Claim up to $3 runnable jobs of the kinds $2 for worker $1, in one statement. SKIP LOCKED lets
-- concurrent claimers take disjoint rows; the partial index job_runnable_idx serves the scan.
WITH picked AS (
    SELECT id
    FROM job
    WHERE state IN ('available', 'scheduled', 'retryable')
      AND scheduled_at <= now()
      AND kind = ANY($2::text[])
    ORDER BY priority DESC, scheduled_at, id
    LIMIT $3
    FOR UPDATE SKIP LOCKED
)
UPDATE job j
SET state = 'running',
    attempt = j.attempt + 1,
    attempted_at = now(),
    locked_by = $1,
    heartbeat_at = now()
FROM picked
WHERE j.id = picked.id
RETURNING j.id, j.kind, j.args, j.attempt, j.max_attempts, j.created_at, j.scheduled_at,
          j.result AS checkpoint
