-- The caller behind token hash $1: active (not revoked, not expired). last_used_at is refreshed
-- in the same round trip, at most once a minute, so busy clients do not write on every request.
WITH t AS (
    SELECT id, name, role
    FROM api_token
    WHERE token_hash = $1
      AND revoked_at IS NULL
      AND (expires_at IS NULL OR expires_at > now())
), touched AS (
    UPDATE api_token a SET last_used_at = now()
    FROM t
    WHERE a.id = t.id
      AND (a.last_used_at IS NULL OR a.last_used_at < now() - interval '60 seconds')
)
SELECT t.id AS token_id, t.name, t.role AS "role: Role" FROM t
