-- Security advisories: a working draft per advisory, immutable published
-- versions with their CSAF documents (bytes, digests, detached OpenPGP
-- signatures), per-org tracking counters and OpenPGP signing keys.

CREATE TABLE advisories (
    id                 TEXT PRIMARY KEY,
    org_id             TEXT NOT NULL REFERENCES orgs (id),
    tracking_id        TEXT NOT NULL,
    -- The tracking id as a CSAF file name (lower case, runs of other
    -- characters as "_"): two ids with one file name cannot coexist.
    file_stem          TEXT NOT NULL,
    title              TEXT NOT NULL,
    tlp                TEXT NOT NULL,
    status             TEXT NOT NULL,
    version            INTEGER NOT NULL,
    pending            BOOLEAN NOT NULL,
    draft              TEXT NOT NULL,
    initial_release_at BIGINT,
    current_release_at BIGINT,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL,
    UNIQUE (org_id, tracking_id),
    UNIQUE (org_id, file_stem)
);
CREATE INDEX advisories_org ON advisories (org_id, id);

CREATE TABLE advisory_versions (
    advisory_id        TEXT NOT NULL REFERENCES advisories (id),
    version            INTEGER NOT NULL,
    org_id             TEXT NOT NULL REFERENCES orgs (id),
    tracking_id        TEXT NOT NULL,
    title              TEXT NOT NULL,
    tlp                TEXT NOT NULL,
    summary            TEXT NOT NULL,
    severity           TEXT NOT NULL,
    draft              TEXT NOT NULL,
    released_at        BIGINT NOT NULL,
    initial_release_at BIGINT NOT NULL,
    published_by       TEXT NOT NULL,
    key_fingerprint    TEXT NOT NULL,
    PRIMARY KEY (advisory_id, version)
);

-- document is the exact bytes served and signed; never updated.
CREATE TABLE advisory_documents (
    advisory_id TEXT NOT NULL,
    version     INTEGER NOT NULL,
    profile     TEXT NOT NULL,
    org_id      TEXT NOT NULL REFERENCES orgs (id),
    tracking_id TEXT NOT NULL,
    file_name   TEXT NOT NULL,
    document    TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    sha512      TEXT NOT NULL,
    signature   TEXT NOT NULL,
    PRIMARY KEY (advisory_id, version, profile),
    FOREIGN KEY (advisory_id, version) REFERENCES advisory_versions (advisory_id, version)
);
CREATE INDEX advisory_documents_file ON advisory_documents (org_id, file_name);

-- Generated tracking ids count per organization and year.
CREATE TABLE advisory_counters (
    org_id TEXT NOT NULL REFERENCES orgs (id),
    year   INTEGER NOT NULL,
    last   INTEGER NOT NULL,
    PRIMARY KEY (org_id, year)
);

-- OpenPGP keys that sign advisories. The private key is armored and
-- unencrypted, like the other online keys (tuf_keys). Retired keys stay so
-- that documents they signed still verify against the provider metadata.
CREATE TABLE advisory_keys (
    org_id      TEXT NOT NULL REFERENCES orgs (id),
    fingerprint TEXT NOT NULL,
    public_key  TEXT NOT NULL,
    private_key TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    retired_at  BIGINT,
    PRIMARY KEY (org_id, fingerprint)
);
-- One active key per organization.
CREATE UNIQUE INDEX advisory_keys_active ON advisory_keys (org_id) WHERE retired_at IS NULL;
