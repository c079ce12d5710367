-- TUF image repositories: one per vendor organization. Metadata files are
-- stored under the names clients fetch them by; keys held online by this
-- server (the embedded default keeps all four roles online) are base64 PKCS#8 DER.
CREATE TABLE tuf_metadata (
    org_id     TEXT NOT NULL REFERENCES orgs (id),
    name       TEXT NOT NULL,
    data       TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, name)
);

CREATE TABLE tuf_keys (
    org_id     TEXT NOT NULL REFERENCES orgs (id),
    key_id     TEXT NOT NULL,
    role       TEXT NOT NULL,
    private    TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, key_id)
);
