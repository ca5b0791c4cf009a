-- Per source, as seen at $1 (the judging clock): the newest backup, the newest success, the
-- newest valid verification, and the failures since the last success (the failure streak).
-- Safety backups (taken by restores) are not scheduled backups and are left out. $2 adds the
-- configured sources that have no backup yet. A deleted backup counts as what it was: a success
-- without an error, a failure with one (only failures set it; deletion keeps it).
WITH s AS (
    SELECT DISTINCT source FROM backup WHERE backup_type <> 'safety' AND created_at <= $1
    UNION
    SELECT unnest($2::text[])
)
SELECT s.source AS "name!",
       lb.id AS "last_id?", lb.backup_type AS "last_type?: BackupType",
       lb.state AS "last_state?: BackupState", lb.created_at AS "last_created_at?",
       ls.id AS "success_id?", ls.completed_at AS "success_at?",
       lv.id AS "verified_id?", lv.verified_at AS "verified_at?",
       (SELECT count(*) FROM backup f
         WHERE f.source = s.source AND f.backup_type <> 'safety'
           AND (f.state = 'failed' OR (f.state = 'deleted' AND f.error IS NOT NULL))
           AND f.created_at <= $1
           AND f.created_at > coalesce(ls.created_at, '-infinity')) AS "failure_streak!"
FROM s
LEFT JOIN LATERAL (
    SELECT id, backup_type, state, created_at FROM backup b
    WHERE b.source = s.source AND b.backup_type <> 'safety' AND b.created_at <= $1
    ORDER BY b.created_at DESC LIMIT 1) lb ON true
LEFT JOIN LATERAL (
    SELECT id, completed_at, created_at FROM backup b
    WHERE b.source = s.source AND b.backup_type <> 'safety'
      AND (b.state = 'completed' OR (b.state = 'deleted' AND b.error IS NULL))
      AND b.completed_at <= $1
    ORDER BY b.completed_at DESC LIMIT 1) ls ON true
LEFT JOIN LATERAL (
    SELECT id, verified_at FROM backup b
    WHERE b.source = s.source AND b.backup_type <> 'safety'
      AND b.verification->>'status' = 'valid' AND b.verified_at <= $1
    ORDER BY b.verified_at DESC LIMIT 1) lv ON true
ORDER BY s.source
