-- Audit events of high-volume device traffic are written here in the same
-- transaction as the change they record, without touching the org's chain
-- head (a hot row); a sealer chains them into audit_events in batches.
CREATE TABLE audit_pending (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL,
    at          BIGINT NOT NULL,
    actor_kind  TEXT NOT NULL,
    actor_id    TEXT NOT NULL,
    actor_name  TEXT NOT NULL,
    action      TEXT NOT NULL,
    target_type TEXT NOT NULL,
    target_id   TEXT NOT NULL,
    details     TEXT NOT NULL
);
CREATE INDEX audit_pending_org ON audit_pending (org_id, id);
