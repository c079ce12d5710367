-- The vulnerabilities each device was last found exposed to (record ids,
-- JSON), so a change can be told to the device's owners.
CREATE TABLE device_exposure (
    device_id  TEXT PRIMARY KEY REFERENCES devices (id),
    org_id     TEXT NOT NULL REFERENCES orgs (id),
    vulns      TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
