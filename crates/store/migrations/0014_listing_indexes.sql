-- Every listing of an instance's backups reads its current key; without an index
-- that read scanned every key of every instance.
CREATE INDEX instance_keys_by_instance ON instance_keys(instance_id, kind, id);
