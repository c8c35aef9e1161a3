-- The name an instance goes by on the host that runs it: its folder and, when
-- svcdash runs as root, its own account. svcdash makes it; it is never an id from a
-- request. Instances made before it existed get one here (their files, under the
-- instance's id, are not moved: such instances cannot start, and are restored from
-- a backup into a new instance).
ALTER TABLE instances ADD COLUMN local_name TEXT;
UPDATE instances SET local_name = 'sd-' || lower(hex(randomblob(5))) WHERE local_name IS NULL;
CREATE UNIQUE INDEX instances_local_name ON instances(local_name);
