-- The Backups page shows, beside the listing, the instance's restores, its
-- backup settings and how many nodes it has: changes to those move the listing
-- version on too, so a page rendered at a version is current while it holds.
-- (Its jobs, backups and keys move it already.)
CREATE TRIGGER listing_restore_added AFTER INSERT ON restores BEGIN
    UPDATE listing_clock SET value = value + 1;
    UPDATE instances SET listing_version = (SELECT value FROM listing_clock) WHERE id = NEW.instance_id;
END;
CREATE TRIGGER listing_restore_changed AFTER UPDATE ON restores BEGIN
    UPDATE listing_clock SET value = value + 1;
    UPDATE instances SET listing_version = (SELECT value FROM listing_clock)
        WHERE id IN (OLD.instance_id, NEW.instance_id);
END;
CREATE TRIGGER listing_restore_removed AFTER DELETE ON restores BEGIN
    UPDATE listing_clock SET value = value + 1;
    UPDATE instances SET listing_version = (SELECT value FROM listing_clock) WHERE id = OLD.instance_id;
END;

CREATE TRIGGER listing_settings_added AFTER INSERT ON backup_settings BEGIN
    UPDATE listing_clock SET value = value + 1;
    UPDATE instances SET listing_version = (SELECT value FROM listing_clock) WHERE id = NEW.instance_id;
END;
CREATE TRIGGER listing_settings_changed AFTER UPDATE ON backup_settings BEGIN
    UPDATE listing_clock SET value = value + 1;
    UPDATE instances SET listing_version = (SELECT value FROM listing_clock)
        WHERE id IN (OLD.instance_id, NEW.instance_id);
END;
CREATE TRIGGER listing_settings_removed AFTER DELETE ON backup_settings BEGIN
    UPDATE listing_clock SET value = value + 1;
    UPDATE instances SET listing_version = (SELECT value FROM listing_clock) WHERE id = OLD.instance_id;
END;

CREATE TRIGGER listing_node_added AFTER INSERT ON nodes BEGIN
    UPDATE listing_clock SET value = value + 1;
    UPDATE instances SET listing_version = (SELECT value FROM listing_clock) WHERE id = NEW.instance_id;
END;
CREATE TRIGGER listing_node_removed AFTER DELETE ON nodes BEGIN
    UPDATE listing_clock SET value = value + 1;
    UPDATE instances SET listing_version = (SELECT value FROM listing_clock) WHERE id = OLD.instance_id;
END;
