-- Nodes of cluster instances: the role each was last seen in ('primary' or
-- 'replica', as the engine or its failover tool says) and when. NULL for single
-- nodes and for a cluster node not seen yet.
ALTER TABLE nodes ADD COLUMN role TEXT;
ALTER TABLE nodes ADD COLUMN role_seen_at TEXT;
