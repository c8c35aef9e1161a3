-- The catalog version an instance runs (NULL: created before versions were
-- recorded, taken to be the catalog's current one), and the parachute: when a
-- node's disk crossed its threshold and svcdash stopped the engine.
ALTER TABLE instances ADD COLUMN version TEXT;
ALTER TABLE nodes ADD COLUMN parachute_disk TEXT;
ALTER TABLE nodes ADD COLUMN parachute_at TEXT;
