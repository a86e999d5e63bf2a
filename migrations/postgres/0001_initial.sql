-- ktune's state: experiments, trials, their observations, algorithm state.
-- Times are Unix milliseconds; JSON documents are stored as text.
CREATE TABLE experiments (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    spec TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    completed_at BIGINT,
    algorithm_state TEXT,
    algorithm_state_version BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE trials (
    id BIGSERIAL PRIMARY KEY,
    experiment_id BIGINT NOT NULL REFERENCES experiments(id) ON DELETE CASCADE,
    seq BIGINT NOT NULL,
    name TEXT NOT NULL,
    assignment TEXT NOT NULL,
    labels TEXT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    message TEXT NOT NULL DEFAULT '',
    objective DOUBLE PRECISION,
    created_at BIGINT NOT NULL,
    started_at BIGINT,
    completed_at BIGINT,
    UNIQUE (experiment_id, name)
);
CREATE INDEX trials_by_experiment ON trials (experiment_id, seq);

CREATE TABLE observations (
    trial_id BIGINT NOT NULL REFERENCES trials(id) ON DELETE CASCADE,
    metric TEXT NOT NULL,
    step BIGINT NOT NULL,
    value TEXT NOT NULL,
    number DOUBLE PRECISION,
    time BIGINT,
    PRIMARY KEY (trial_id, metric, step)
);
