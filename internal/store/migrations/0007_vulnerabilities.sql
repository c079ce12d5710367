-- Vulnerabilities known to an organization, imported from OSV records (the
-- record is kept whole: matching re-reads its affected ranges).
CREATE TABLE vulnerabilities (
    id         TEXT PRIMARY KEY,
    org_id     TEXT NOT NULL REFERENCES orgs (id),
    vuln_id    TEXT NOT NULL,
    aliases    TEXT NOT NULL,
    summary    TEXT NOT NULL,
    modified   BIGINT NOT NULL,
    osv        TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (org_id, vuln_id)
);
CREATE INDEX vulnerabilities_org ON vulnerabilities (org_id, id);
