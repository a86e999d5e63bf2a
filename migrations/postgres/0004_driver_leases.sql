-- Who drives an experiment now: one row per experiment while a `ktune run`
-- (or `ktune delete`) holds it. A holder renews `expires_at` while it runs
-- and deletes its row on a clean exit; a row whose `expires_at` has passed
-- (by the database's clock) may be taken over, as may one whose holder runs
-- on the same `node` (boot and PID namespace) under a PID that is gone.
-- Keyed by the experiment's store key, not its id: the lease is taken
-- before the experiment row is written or read.
CREATE TABLE driver_leases (
    experiment TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    host TEXT NOT NULL,
    node TEXT NOT NULL,
    pid BIGINT NOT NULL,
    acquired_at BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
