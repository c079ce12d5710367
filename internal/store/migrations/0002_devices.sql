-- Devices: products, device identities, enrollment, inventory, groups.

CREATE TABLE products (
    id                TEXT PRIMARY KEY,
    org_id            TEXT NOT NULL REFERENCES orgs (id),
    slug              TEXT NOT NULL,
    name              TEXT NOT NULL,
    hardware_id       TEXT NOT NULL,
    capability        TEXT NOT NULL,
    battery_powered   BOOLEAN NOT NULL,
    link_class        TEXT NOT NULL,
    end_of_support_at BIGINT,
    created_at        BIGINT NOT NULL,
    UNIQUE (org_id, slug),
    UNIQUE (org_id, hardware_id)
);

CREATE TABLE enrollment_tokens (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES orgs (id),
    product_id  TEXT REFERENCES products (id),
    name        TEXT NOT NULL,
    secret_hash TEXT NOT NULL UNIQUE,
    max_uses    INTEGER NOT NULL,
    uses        INTEGER NOT NULL DEFAULT 0,
    created_at  BIGINT NOT NULL,
    created_by  TEXT NOT NULL,
    expires_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);
CREATE INDEX enrollment_tokens_org ON enrollment_tokens (org_id, id);

-- Serials or key ids allowed to go active at enrollment without a token.
CREATE TABLE preauthorizations (
    org_id     TEXT NOT NULL REFERENCES orgs (id),
    kind       TEXT NOT NULL,
    value      TEXT NOT NULL,
    product_id TEXT REFERENCES products (id),
    created_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, kind, value)
);

CREATE TABLE devices (
    id                    TEXT PRIMARY KEY,
    org_id                TEXT NOT NULL REFERENCES orgs (id),
    product_id            TEXT NOT NULL REFERENCES products (id),
    serial                TEXT NOT NULL,
    key_id                TEXT NOT NULL UNIQUE,
    algorithm             TEXT NOT NULL,
    public_key_pem        TEXT NOT NULL,
    status                TEXT NOT NULL,
    enrolled_via          TEXT NOT NULL,
    created_at            BIGINT NOT NULL,
    status_changed_at     BIGINT NOT NULL,
    last_auth_at          BIGINT NOT NULL DEFAULT 0,
    last_seen_at          BIGINT,
    installed_version     TEXT NOT NULL DEFAULT '',
    installed_version_key TEXT,
    software_hash         TEXT NOT NULL DEFAULT '',
    battery_percent       INTEGER,
    on_mains              BOOLEAN NOT NULL DEFAULT FALSE,
    link                  TEXT NOT NULL DEFAULT '',
    metered               BOOLEAN NOT NULL DEFAULT FALSE,
    free_storage          BIGINT NOT NULL DEFAULT 0,
    maintenance_window    TEXT NOT NULL DEFAULT '',
    UNIQUE (org_id, serial)
);
CREATE INDEX devices_org_status ON devices (org_id, status, id);
CREATE INDEX devices_org_version ON devices (org_id, product_id, installed_version_key);
CREATE INDEX devices_org_seen ON devices (org_id, last_seen_at);

CREATE TABLE device_components (
    device_id TEXT NOT NULL REFERENCES devices (id),
    purl      TEXT NOT NULL,
    version   TEXT NOT NULL,
    PRIMARY KEY (device_id, purl)
);
CREATE INDEX device_components_purl ON device_components (purl);

CREATE TABLE device_tags (
    device_id TEXT NOT NULL REFERENCES devices (id),
    key       TEXT NOT NULL,
    value     TEXT NOT NULL,
    PRIMARY KEY (device_id, key)
);
CREATE INDEX device_tags_kv ON device_tags (key, value);

CREATE TABLE device_versions (
    device_id TEXT NOT NULL REFERENCES devices (id),
    seen_at   BIGINT NOT NULL,
    version   TEXT NOT NULL,
    PRIMARY KEY (device_id, seen_at)
);

CREATE TABLE device_groups (
    id         TEXT PRIMARY KEY,
    org_id     TEXT NOT NULL REFERENCES orgs (id),
    name       TEXT NOT NULL,
    query      TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    UNIQUE (org_id, name)
);

CREATE TABLE device_group_members (
    group_id  TEXT NOT NULL REFERENCES device_groups (id),
    device_id TEXT NOT NULL REFERENCES devices (id),
    PRIMARY KEY (group_id, device_id)
);
CREATE INDEX device_group_members_device ON device_group_members (device_id);

-- Server-wide secrets shared by replicas (e.g. the device token MAC key).
CREATE TABLE server_secrets (
    name       TEXT PRIMARY KEY,
    secret     TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
