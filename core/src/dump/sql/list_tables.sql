-- Every relation of the snapshot that holds rows of its own: plain tables (relkind 'r'), which
-- covers partition leaves, inheritance parents and children, and unlogged tables. Partitioned
-- parents ('p') hold no rows; views, foreign tables and temporary tables are not ours to copy;
-- tables that belong to an extension are recreated by CREATE EXTENSION.
-- $1: the oids to keep, or NULL for all of them.
SELECT c.oid AS "oid!: Oid",
       n.nspname AS "schema!",
       c.relname AS "name!",
       c.relpages AS "relpages!",
       pg_relation_size(c.oid) AS "size_bytes!",
       c.reltuples AS "reltuples!",
       c.relpersistence = 'u' AS "unlogged!",
       c.relispartition AS "is_partition!",
       EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhparent = c.oid) AS "has_children!",
       c.relrowsecurity AS "row_security!",
       c.relforcerowsecurity AS "force_row_security!",
       pg_has_role(c.relowner, 'USAGE') AS "owned_by_role!",
       -- Generated columns are computed on restore; COPY FROM refuses them anyway.
       COALESCE((SELECT array_agg(a.attname::text ORDER BY a.attnum)
                 FROM pg_attribute a
                 WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                   AND a.attgenerated = ''), '{}') AS "columns!"
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r'
  AND c.relpersistence <> 't'
  AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\_%'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d
                  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
  AND ($1::oid[] IS NULL OR c.oid = ANY ($1))
ORDER BY n.nspname, c.relname
