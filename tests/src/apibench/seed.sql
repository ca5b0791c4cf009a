-- A catalog as a year and more of service leaves it: $1 backups, one an hour back from now,
-- each with the job that took it. Deterministic (hashint4 of the row number).
--   types:  70% daily, 10% weekly, 3% monthly, 15% manual, 2% safety
--   states: 93% completed, 5% failed (their job discarded after 3 attempts), 2% deleted
--   completed: 12 tables with row counts and sizes, half verified, 30% also on Drive
WITH g AS (
    SELECT i,
           date_trunc('second', now()) - make_interval(hours => $1 - i) AS ts,
           abs(hashint4(i)) % 100 AS r,
           abs(hashint4(i + 1000003)) % 100 AS s,
           (abs(hashint4(i + 7)) % 4000 + 100)::bigint * 1048576 AS plain
    FROM generate_series(1, $1) AS i
), b AS (
    SELECT g.*,
           CASE WHEN r < 70 THEN 'daily' WHEN r < 80 THEN 'weekly' WHEN r < 83 THEN 'monthly'
                WHEN r < 98 THEN 'manual' ELSE 'safety' END AS t,
           CASE WHEN s < 93 THEN 'completed' WHEN s < 98 THEN 'failed' ELSE 'deleted' END AS st
    FROM g
), ids AS (
    SELECT b.*,
           'cellar_backup_' || to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD_HH24-MI-SS') || '_' || t
               || '_' || lpad(to_hex(i), 6, '0') AS id
    FROM b
), j AS (
    INSERT INTO job (kind, args, state, attempt, max_attempts, errors, scheduled_at, attempted_at,
                     created_at, finished_at, progress, result)
    SELECT 'backup', jsonb_build_object('backupId', id),
           (CASE WHEN st = 'failed' THEN 'discarded' ELSE 'completed' END)::job_state,
           CASE WHEN st = 'failed' THEN 3 ELSE 1 END, 3,
           CASE WHEN st = 'failed'
                THEN ARRAY[jsonb_build_object('attempt', 3, 'at', ts + interval '2 minutes',
                                              'error', 'could not connect to the source: connection refused')]
                ELSE '{}'::jsonb[] END,
           ts, ts, ts, ts + interval '3 minutes',
           jsonb_build_object('phase', 'done', 'percent', 100, 'bytesDone', plain,
                              'bytesTotal', plain, 'rowsDone', plain / 96, 'tablesDone', 12,
                              'tablesTotal', 12, 'throughput', plain / 180),
           jsonb_build_object('backupId', id)
    FROM ids
    RETURNING id AS job_id, args ->> 'backupId' AS backup_id
)
INSERT INTO backup (id, backup_type, state, source, verify_after, job_id, created_at, started_at,
                    completed_at, key_id, database_name, server_version, plain_bytes,
                    stored_bytes, object_count, table_count, total_rows, manifest_blake3, tables,
                    locations, error, verification, verified_at)
SELECT id, t::backup_type, st::backup_state, 'app', s % 2 = 0, j.job_id, ts, ts,
       CASE WHEN st = 'failed' THEN NULL ELSE ts + interval '3 minutes' END,
       CASE WHEN st = 'failed' THEN NULL ELSE 'k1' END,
       'app', '15.20',
       CASE WHEN st = 'failed' THEN NULL ELSE plain END,
       CASE WHEN st = 'failed' THEN NULL ELSE plain / 4 END,
       CASE WHEN st = 'failed' THEN NULL ELSE 14 END,
       CASE WHEN st = 'failed' THEN NULL ELSE 12 END,
       CASE WHEN st = 'failed' THEN NULL ELSE plain / 96 END,
       CASE WHEN st = 'failed' THEN NULL ELSE md5(id) || md5(id || 'm') END,
       CASE WHEN st = 'failed' THEN NULL ELSE (
           SELECT jsonb_agg(jsonb_build_object('schema', 'public', 'name', n,
                                               'rows', plain / 96 * w / 78,
                                               'plainBytes', plain * w / 78,
                                               'storedBytes', plain * w / 312))
           FROM unnest(ARRAY['customers', 'orders', 'order_items', 'products', 'invoices',
                             'payments', 'events', 'sessions', 'audit_log', 'inventory',
                             'shipments', 'reviews'],
                       ARRAY[4, 12, 20, 1, 6, 6, 14, 5, 4, 2, 3, 1]) AS x(n, w)) END,
       CASE WHEN st = 'failed' THEN '{}'::jsonb
            WHEN st = 'deleted' THEN '{"local": "deleted"}'::jsonb
            WHEN r % 10 < 3 THEN '{"local": "available", "drive": "available"}'::jsonb
            ELSE '{"local": "available"}'::jsonb END,
       CASE WHEN st = 'failed' THEN 'could not connect to the source: connection refused' END,
       CASE WHEN st = 'completed' AND s % 2 = 0 THEN jsonb_build_object(
           'status', 'valid', 'level', CASE WHEN r % 7 = 0 THEN 'deep' ELSE 'quick' END,
           'objectsChecked', 14, 'failures', '[]'::jsonb,
           'summary', jsonb_build_object('totalRecords', plain / 96, 'tablesWithData', 12,
                                         'totalTables', 12)) END,
       CASE WHEN st = 'completed' AND s % 2 = 0 THEN ts + interval '4 minutes' END
FROM ids JOIN j ON j.backup_id = ids.id
