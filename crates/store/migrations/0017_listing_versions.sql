-- What an instance's backup listing shows (its backups, their jobs, its keys)
-- moves its listing version on, from one clock for every instance: a listing
-- served before can be served again while its instance's version holds, and a
-- version is never met twice, whatever is deleted and made again. An instance
-- that never had a backup, a job or a key keeps version 0: its listing is empty.
CREATE TABLE listing_clock (id INTEGER PRIMARY KEY CHECK (id = 1), value INTEGER NOT NULL);
ALTER TABLE instances ADD COLUMN listing_version INTEGER NOT NULL DEFAULT 0;
UPDATE instances SET listing_version = id;
INSERT INTO listing_clock (id, value) VALUES (1, (SELECT coalesce(max(id), 0) FROM instances));

CREATE TRIGGER listing_backup_added AFTER INSERT ON backups BEGIN
    UPDATE listing_clock SET value = value + 1;
    UPDATE instances SET listing_version = (SELECT value FROM listing_clock) WHERE id = NEW.instance_id;
END;
CREATE TRIGGER listing_backup_changed AFTER UPDATE ON backups BEGIN
    UPDATE listing_clock SET value = value + 1;
    UPDATE instances SET listing_version = (SELECT value FROM listing_clock)
        WHERE id IN (OLD.instance_id, NEW.instance_id);
END;
CREATE TRIGGER listing_backup_removed AFTER DELETE ON backups BEGIN
    UPDATE listing_clock SET value = value + 1;
    UPDATE instances SET listing_version = (SELECT value FROM listing_clock) WHERE id = OLD.instance_id;
END;

CREATE TRIGGER listing_job_added AFTER INSERT ON jobs BEGIN
    UPDATE listing_clock SET value = value + 1;
    UPDATE instances SET listing_version = (SELECT value FROM listing_clock) WHERE id = NEW.instance_id;
END;
CREATE TRIGGER listing_job_changed AFTER UPDATE ON jobs BEGIN
    UPDATE listing_clock SET value = value + 1;
    UPDATE instances SET listing_version = (SELECT value FROM listing_clock)
        WHERE id IN (OLD.instance_id, NEW.instance_id);
END;
CREATE TRIGGER listing_job_removed AFTER DELETE ON jobs BEGIN
    UPDATE listing_clock SET value = value + 1;
    UPDATE instances SET listing_version = (SELECT value FROM listing_clock) WHERE id = OLD.instance_id;
END;

CREATE TRIGGER listing_key_added AFTER INSERT ON instance_keys BEGIN
    UPDATE listing_clock SET value = value + 1;
    UPDATE instances SET listing_version = (SELECT value FROM listing_clock) WHERE id = NEW.instance_id;
END;
CREATE TRIGGER listing_key_changed AFTER UPDATE ON instance_keys BEGIN
    UPDATE listing_clock SET value = value + 1;
    UPDATE instances SET listing_version = (SELECT value FROM listing_clock)
        WHERE id IN (OLD.instance_id, NEW.instance_id);
END;
CREATE TRIGGER listing_key_removed AFTER DELETE ON instance_keys BEGIN
    UPDATE listing_clock SET value = value + 1;
    UPDATE instances SET listing_version = (SELECT value FROM listing_clock) WHERE id = OLD.instance_id;
END;
