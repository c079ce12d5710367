-- Release transparency logs (internal/tlog): one Merkle tree per
-- organization, holding its releases and signed metadata versions.
--
-- tlog_heads holds each log's size; an append locks its row (an upsert, as
-- audit_heads), so appenders on several replicas queue instead of forking the
-- tree. tlog_leaves and tlog_hashes are append-only: the leaves as hashed, and
-- the stored hashes of golang.org/x/mod/sumdb/tlog (StoredHashIndex order),
-- hex. entry_key is tlog.Entry.Key, for finding a release's entry.
-- tlog_keys holds each log's checkpoint signing key (a note signer key, as
-- golang.org/x/mod/sumdb/note writes it) and its public verifier key.
CREATE TABLE tlog_keys (
    org_id     TEXT PRIMARY KEY REFERENCES orgs (id),
    signer     TEXT NOT NULL,
    verifier   TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE tlog_heads (
    org_id TEXT PRIMARY KEY REFERENCES orgs (id),
    size   BIGINT NOT NULL
);

CREATE TABLE tlog_leaves (
    org_id    TEXT NOT NULL REFERENCES orgs (id),
    idx       BIGINT NOT NULL,
    leaf      TEXT NOT NULL,
    entry_key TEXT NOT NULL,
    PRIMARY KEY (org_id, idx)
);
CREATE INDEX tlog_leaves_key ON tlog_leaves (org_id, entry_key, idx);

CREATE TABLE tlog_hashes (
    org_id TEXT NOT NULL REFERENCES orgs (id),
    idx    BIGINT NOT NULL,
    hash   TEXT NOT NULL,
    PRIMARY KEY (org_id, idx)
);
