-- Phased rollouts (docs/rollouts.md): a release sent to a target (a group
-- or a fleet query) in phases of cumulative percentages. Devices are not
-- listed up front: a device's row in device_updates is created when it
-- first becomes eligible at check-in. Ratios are fractions in [0, 1];
-- durations and times are microseconds.
CREATE TABLE rollouts (
    id                  TEXT PRIMARY KEY,
    org_id              TEXT NOT NULL REFERENCES orgs (id),
    name                TEXT NOT NULL,
    release_id          TEXT NOT NULL REFERENCES releases (id),
    product_id          TEXT NOT NULL REFERENCES products (id),
    target_group_id     TEXT REFERENCES device_groups (id),
    target_query        TEXT NOT NULL,
    phases              TEXT NOT NULL,
    urgency             TEXT NOT NULL,
    mode                TEXT NOT NULL,
    success_ratio       DOUBLE PRECISION NOT NULL,
    pause_failure_ratio DOUBLE PRECISION NOT NULL,
    pause_failure_count INTEGER NOT NULL,
    abort_failure_ratio DOUBLE PRECISION NOT NULL,
    abort_failure_count INTEGER NOT NULL,
    max_retries         INTEGER NOT NULL,
    device_timeout      BIGINT NOT NULL,
    min_battery         INTEGER NOT NULL,
    deadline            BIGINT,
    state               TEXT NOT NULL,
    state_reason        TEXT NOT NULL,
    phase               INTEGER NOT NULL,
    phase_started_at    BIGINT NOT NULL,
    failures_acked      INTEGER NOT NULL,
    created_by          TEXT NOT NULL,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL
);
CREATE INDEX rollouts_org_state ON rollouts (org_id, state, id);

-- One row per device a rollout has offered its release to.
CREATE TABLE device_updates (
    rollout_id  TEXT NOT NULL REFERENCES rollouts (id),
    device_id   TEXT NOT NULL REFERENCES devices (id),
    org_id      TEXT NOT NULL REFERENCES orgs (id),
    phase       INTEGER NOT NULL,
    state       TEXT NOT NULL,
    attempts    INTEGER NOT NULL,
    artifact    TEXT NOT NULL,
    bytes       BIGINT NOT NULL,
    reason      TEXT NOT NULL,
    offered_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    finished_at BIGINT,
    PRIMARY KEY (rollout_id, device_id)
);
CREATE INDEX device_updates_device ON device_updates (device_id);
CREATE INDEX device_updates_state ON device_updates (rollout_id, state, updated_at);

-- Every phase a rollout entered, once: UNIQUE (rollout_id, phase) makes a
-- second scheduler (or a retried transaction) unable to apply a
-- transition twice.
CREATE TABLE rollout_transitions (
    rollout_id TEXT NOT NULL REFERENCES rollouts (id),
    org_id     TEXT NOT NULL REFERENCES orgs (id),
    phase      INTEGER NOT NULL,
    percent    DOUBLE PRECISION NOT NULL,
    reason     TEXT NOT NULL,
    at         BIGINT NOT NULL,
    UNIQUE (rollout_id, phase)
);

-- A group's maintenance window: a cron expression for its start, a
-- duration (µs) and an IANA time zone; empty cron = no window.
ALTER TABLE device_groups ADD COLUMN window_cron TEXT NOT NULL DEFAULT '';
ALTER TABLE device_groups ADD COLUMN window_duration BIGINT NOT NULL DEFAULT 0;
ALTER TABLE device_groups ADD COLUMN window_tz TEXT NOT NULL DEFAULT '';

-- Which rollout made an assignment; NULL for a person's direct one.
ALTER TABLE device_assignments ADD COLUMN rollout_id TEXT REFERENCES rollouts (id);
CREATE INDEX device_assignments_rollout ON device_assignments (rollout_id);
