-- The running trials (whose new observations a dashboard watches), found
-- without reading every finished one.
CREATE INDEX trials_by_state ON trials (state);
