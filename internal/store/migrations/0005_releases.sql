-- Releases: uploaded artifacts (content-addressed blobs) and releases of a
-- product with a release counter that only increases.

CREATE TABLE artifacts (
    id         TEXT PRIMARY KEY,
    org_id     TEXT NOT NULL REFERENCES orgs (id),
    name       TEXT NOT NULL,
    sha256     TEXT NOT NULL,
    sha512     TEXT NOT NULL,
    size       BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    UNIQUE (org_id, sha256)
);

CREATE TABLE releases (
    id              TEXT PRIMARY KEY,
    org_id          TEXT NOT NULL REFERENCES orgs (id),
    product_id      TEXT NOT NULL REFERENCES products (id),
    version         TEXT NOT NULL,
    release_counter BIGINT NOT NULL,
    notes           TEXT NOT NULL,
    security_fix    BOOLEAN NOT NULL,
    fixes           TEXT NOT NULL,
    sbom_artifact   TEXT REFERENCES artifacts (id),
    sbom_format     TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    created_by      TEXT NOT NULL,
    UNIQUE (product_id, version),
    UNIQUE (product_id, release_counter)
);
CREATE INDEX releases_org ON releases (org_id, id);

CREATE TABLE release_artifacts (
    release_id       TEXT NOT NULL REFERENCES releases (id),
    artifact_id      TEXT NOT NULL REFERENCES artifacts (id),
    kind             TEXT NOT NULL,
    precursor_sha256 TEXT NOT NULL,
    PRIMARY KEY (release_id, artifact_id)
);

CREATE TABLE release_components (
    release_id     TEXT NOT NULL REFERENCES releases (id),
    purl           TEXT NOT NULL,
    name           TEXT NOT NULL,
    version        TEXT NOT NULL,
    source_name    TEXT NOT NULL,
    source_version TEXT NOT NULL,
    distro         TEXT NOT NULL,
    PRIMARY KEY (release_id, purl, name, version)
);
CREATE INDEX release_components_purl ON release_components (purl);
