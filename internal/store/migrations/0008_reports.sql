-- Inbound vulnerability reports (package disclosure): the public form and
-- API write them, the vendor's team answers them. The tracking token is
-- stored only as its SHA-256, looked up through a unique index.
CREATE TABLE reports (
    id                      TEXT PRIMARY KEY,
    org_id                  TEXT NOT NULL REFERENCES orgs (id),
    token_hash              TEXT NOT NULL UNIQUE,
    source                  TEXT NOT NULL,
    title                   TEXT NOT NULL,
    description             TEXT NOT NULL,
    product                 TEXT NOT NULL,
    product_version         TEXT NOT NULL,
    reporter_name           TEXT NOT NULL,
    reporter_email          TEXT NOT NULL,
    credit_wanted           BOOLEAN NOT NULL,
    credit_name             TEXT NOT NULL,
    language                TEXT NOT NULL,
    stage                   TEXT NOT NULL,
    stage_reason            TEXT NOT NULL,
    received_at             BIGINT NOT NULL,
    ack_due_at              BIGINT NOT NULL,
    acknowledged_at         BIGINT,
    ack_overdue_notified_at BIGINT,
    stage_changed_at        BIGINT NOT NULL,
    last_update_at          BIGINT,
    updated_at              BIGINT NOT NULL,
    -- bumped by every update; an update naming a stale revision is refused
    revision                BIGINT NOT NULL
);
CREATE INDEX reports_org ON reports (org_id, id);
CREATE INDEX reports_org_stage ON reports (org_id, stage, id);
-- The overdue sweep only ever looks at reports still waiting for a person.
CREATE INDEX reports_ack_waiting ON reports (ack_due_at)
    WHERE acknowledged_at IS NULL AND ack_overdue_notified_at IS NULL;

-- The conversation on a report; internal notes are never shown to the reporter.
CREATE TABLE report_messages (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES orgs (id),
    report_id   TEXT NOT NULL REFERENCES reports (id),
    author      TEXT NOT NULL,
    author_name TEXT NOT NULL,
    internal    BOOLEAN NOT NULL,
    body        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX report_messages_report ON report_messages (report_id, id);

-- Links from reports to tracked vulnerabilities (ids checked by the service).
CREATE TABLE report_vulnerabilities (
    report_id        TEXT NOT NULL REFERENCES reports (id),
    org_id           TEXT NOT NULL REFERENCES orgs (id),
    vulnerability_id TEXT NOT NULL,
    linked_at        BIGINT NOT NULL,
    PRIMARY KEY (report_id, vulnerability_id)
);
