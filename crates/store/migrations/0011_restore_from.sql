-- An instance made at a moment of another instance's history: provisioning
-- restores that instance's archive up to the moment into it.
ALTER TABLE instances ADD COLUMN restore_from_instance_id INTEGER REFERENCES instances(id);
ALTER TABLE instances ADD COLUMN restore_from_time TEXT;
-- The timeline such an instance starts on (its origin's, plus one).
ALTER TABLE instances ADD COLUMN start_timeline INTEGER;
