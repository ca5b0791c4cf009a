-- What listing backups reads, made cheap at catalog sizes of 10,000 backups and more
-- (docs/BENCHMARKS.md, "API"): the `backups` query answered 20 ms a page, most of it here.

-- 1. The listing order. `backups` lists newest first and pages with the keyset cursor
-- (created_at, id): ORDER BY created_at DESC, id DESC. No index had that order, so every page
-- read the whole table and sorted it. With these a page reads about `limit` index entries at
-- any depth; the second also serves `backups(type: ...)`, and replaces (backup_type, created_at).
CREATE INDEX backup_created_id_idx ON backup (created_at DESC, id DESC);
CREATE INDEX backup_type_created_id_idx ON backup (backup_type, created_at DESC, id DESC);
DROP INDEX backup_type_created_idx;

-- 2. The statistics. `backups { statistics }` counted every matching backup on every request
-- (a GROUP BY over the whole table). These counts per (type, state) are kept by triggers in the
-- writing transaction, so they are exact; statistics sum at most 25 rows. Writes that bypass
-- triggers (session_replication_role = replica) must not touch `backup` alone.
CREATE TABLE backup_count (
    backup_type backup_type  NOT NULL,
    state       backup_state NOT NULL,
    n           bigint       NOT NULL CHECK (n >= 0),
    PRIMARY KEY (backup_type, state)
);

CREATE FUNCTION backup_count_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        DELETE FROM backup_count;
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        UPDATE backup_count SET n = n - 1
        WHERE backup_type = OLD.backup_type AND state = OLD.state;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO backup_count VALUES (NEW.backup_type, NEW.state, 1)
        ON CONFLICT (backup_type, state) DO UPDATE SET n = backup_count.n + 1;
    END IF;
    RETURN NULL;
END $$;

-- Created before the backfill: their lock holds off writers until this migration commits.
CREATE TRIGGER backup_count_insert_delete AFTER INSERT OR DELETE ON backup
    FOR EACH ROW EXECUTE FUNCTION backup_count_update();
CREATE TRIGGER backup_count_update AFTER UPDATE OF backup_type, state ON backup
    FOR EACH ROW WHEN (OLD.backup_type IS DISTINCT FROM NEW.backup_type
                       OR OLD.state IS DISTINCT FROM NEW.state)
    EXECUTE FUNCTION backup_count_update();
CREATE TRIGGER backup_count_truncate AFTER TRUNCATE ON backup
    FOR EACH STATEMENT EXECUTE FUNCTION backup_count_update();

INSERT INTO backup_count (backup_type, state, n)
SELECT backup_type, state, count(*) FROM backup GROUP BY 1, 2;
