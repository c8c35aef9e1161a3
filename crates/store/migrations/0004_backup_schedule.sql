-- The last slot of the operator's backup schedule each instance was backed up for:
-- a slot missed while svcdash was down is made up once, not once per slot.
CREATE TABLE backup_schedule (
    instance_id  INTEGER PRIMARY KEY REFERENCES instances(id),
    last_slot    TEXT    NOT NULL
);
