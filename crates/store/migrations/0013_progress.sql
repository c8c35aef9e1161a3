-- Long backups and restores: what a running job has processed so far and the
-- total it expects (NULL while unknown), written by the worker every second;
-- who asked to cancel it. Backups keep the size of their plain dump, which is
-- also the estimate for the next backup of the instance.
ALTER TABLE jobs ADD COLUMN progress_bytes INTEGER;
ALTER TABLE jobs ADD COLUMN progress_total INTEGER;
ALTER TABLE jobs ADD COLUMN cancelled_by TEXT;
ALTER TABLE backups ADD COLUMN plain_size INTEGER;
