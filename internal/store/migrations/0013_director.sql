-- The director (Uptane): per organization a director root and online keys;
-- per device the targets, snapshot and timestamp last signed for it.
CREATE TABLE director_keys (
    org_id     TEXT NOT NULL REFERENCES orgs (id),
    key_id     TEXT NOT NULL,
    role       TEXT NOT NULL,
    private    TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, key_id),
    UNIQUE (org_id, role)
);

CREATE TABLE director_roots (
    org_id     TEXT NOT NULL REFERENCES orgs (id),
    name       TEXT NOT NULL,
    data       TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, name)
);

CREATE TABLE director_devices (
    device_id  TEXT PRIMARY KEY REFERENCES devices (id),
    org_id     TEXT NOT NULL REFERENCES orgs (id),
    targets    TEXT NOT NULL,
    snapshot   TEXT NOT NULL,
    timestamp  TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- A release assigned to one device by a person (a direct deployment);
-- rollouts assign through the same table.
CREATE TABLE device_assignments (
    device_id   TEXT PRIMARY KEY REFERENCES devices (id),
    org_id      TEXT NOT NULL REFERENCES orgs (id),
    release_id  TEXT NOT NULL REFERENCES releases (id),
    assigned_by TEXT NOT NULL,
    assigned_at BIGINT NOT NULL
);
CREATE INDEX device_assignments_release ON device_assignments (release_id);
