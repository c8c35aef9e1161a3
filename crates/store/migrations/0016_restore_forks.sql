-- When the instance began running on a restore to a point in time's data: the
-- moment its new timeline starts, recorded as soon as the restored node runs
-- (a cluster's other nodes copy it afterwards, and may fail to).
ALTER TABLE restores ADD COLUMN forked_at TEXT;

-- A cluster node whose data lies on the history such a restore left: it copies
-- the primary (as a new replica does) before it runs again, never starts on it.
ALTER TABLE nodes ADD COLUMN copy_pending INTEGER NOT NULL DEFAULT 0;
