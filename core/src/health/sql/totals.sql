-- Catalog-wide counts as seen at $1: totals, the last 24 hours and 7 days, verification
-- outcomes of the last 7 days, and the bytes each location holds.
SELECT
    count(*) FILTER (WHERE state <> 'deleted' AND created_at <= $1) AS "total!",
    count(*) FILTER (WHERE created_at > $1 - interval '24 hours' AND created_at <= $1) AS "last_24h!",
    count(*) FILTER (WHERE created_at > $1 - interval '7 days' AND created_at <= $1) AS "last_week!",
    count(*) FILTER (WHERE (state = 'completed' OR (state = 'deleted' AND error IS NULL))
                       AND completed_at > $1 - interval '7 days' AND completed_at <= $1) AS "successes_week!",
    count(*) FILTER (WHERE (state = 'failed' OR (state = 'deleted' AND error IS NOT NULL))
                       AND created_at > $1 - interval '7 days' AND created_at <= $1) AS "failures_week!",
    count(*) FILTER (WHERE verified_at > $1 - interval '7 days' AND verified_at <= $1) AS "verified_week!",
    count(*) FILTER (WHERE verified_at > $1 - interval '7 days' AND verified_at <= $1
                       AND verification->>'status' = 'valid') AS "valid_week!",
    coalesce(sum(stored_bytes) FILTER (WHERE state = 'completed'
                       AND locations->>'local' = 'available'), 0)::bigint AS "local_bytes!",
    coalesce(sum(stored_bytes) FILTER (WHERE state = 'completed'
                       AND locations->>'drive' = 'available'), 0)::bigint AS "drive_bytes!"
FROM backup
