-- SUIT envelopes for microcontroller products: one online ES256 key per
-- organization and the signed envelope of each release image (base64 CBOR).
CREATE TABLE suit_keys (
    org_id     TEXT PRIMARY KEY REFERENCES orgs (id),
    private    TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE suit_envelopes (
    release_id  TEXT NOT NULL REFERENCES releases (id),
    artifact_id TEXT NOT NULL REFERENCES artifacts (id),
    org_id      TEXT NOT NULL REFERENCES orgs (id),
    envelope    TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (release_id, artifact_id)
);
