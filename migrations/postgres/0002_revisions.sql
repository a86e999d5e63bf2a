-- Change counters for readers that follow a store (the dashboard): every
-- write that changes trial rows bumps its experiment's revision in the
-- same transaction and stamps those rows with it, so a reader asks only
-- for the trials changed since the revision it last saw. The experiment
-- row is locked first, so revisions become visible in commit order.
ALTER TABLE experiments ADD COLUMN revision BIGINT NOT NULL DEFAULT 0;
ALTER TABLE trials ADD COLUMN revision BIGINT NOT NULL DEFAULT 0;
CREATE INDEX trials_by_revision ON trials (experiment_id, revision);
