-- Each device's update history: one row per status report (downloading,
-- downloaded, installing, rebooting, committed, failed, rolled-back).
-- Devices retry a report until acknowledged; UNIQUE (device_id, report_id)
-- stores each report once, even when two copies race.
CREATE TABLE device_update_events (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES orgs (id),
    device_id   TEXT NOT NULL REFERENCES devices (id),
    report_id   TEXT NOT NULL,
    release_id  TEXT NOT NULL REFERENCES releases (id),
    version     TEXT NOT NULL,
    step        TEXT NOT NULL,
    reason_code TEXT NOT NULL,
    detail      TEXT NOT NULL,
    bytes_done  BIGINT,
    bytes_total BIGINT,
    device_at   BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    UNIQUE (device_id, report_id)
);
CREATE INDEX device_update_events_device ON device_update_events (org_id, device_id, id);
