-- Notifications: subscriptions (signed webhooks, email), the outbox of
-- deliveries and the log of every delivery attempt.

-- target is the webhook URL or the email address, by kind. secret is the
-- Standard Webhooks signing secret (whsec_…), kept because signing needs
-- it; prev_secret also signs until prev_secret_until after a rotation.
CREATE TABLE notify_subscriptions (
    id                TEXT PRIMARY KEY,
    org_id            TEXT NOT NULL REFERENCES orgs (id),
    kind              TEXT NOT NULL,
    target            TEXT NOT NULL,
    description       TEXT NOT NULL,
    event_types       TEXT NOT NULL,
    enabled           BOOLEAN NOT NULL,
    disabled_reason   TEXT NOT NULL,
    secret            TEXT NOT NULL,
    prev_secret       TEXT NOT NULL,
    prev_secret_until BIGINT,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL
);
CREATE INDEX notify_subscriptions_org ON notify_subscriptions (org_id, id);

-- One row per message and destination, written in the same transaction as
-- its siblings (the outbox). subscription_id is NULL for email sent to a
-- named person. A dispatcher owns a pending row while claimed_until is in
-- the future and claim_token is its own.
CREATE TABLE notify_deliveries (
    id              TEXT PRIMARY KEY,
    org_id          TEXT NOT NULL REFERENCES orgs (id),
    subscription_id TEXT REFERENCES notify_subscriptions (id) ON DELETE CASCADE,
    msg_id          TEXT NOT NULL UNIQUE,
    kind            TEXT NOT NULL,
    target          TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    subject         TEXT NOT NULL,
    payload         TEXT NOT NULL,
    status          TEXT NOT NULL,
    attempts        INTEGER NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    claimed_until   BIGINT NOT NULL,
    claim_token     TEXT NOT NULL,
    last_error      TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX notify_deliveries_due ON notify_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX notify_deliveries_subscription ON notify_deliveries (subscription_id, id);
CREATE INDEX notify_deliveries_finished ON notify_deliveries (updated_at) WHERE status <> 'pending';

-- Attempts are keyed by their own id: a dispatcher that lost its lease
-- still records the request it made.
CREATE TABLE notify_attempts (
    id          TEXT PRIMARY KEY,
    delivery_id TEXT NOT NULL REFERENCES notify_deliveries (id) ON DELETE CASCADE,
    n           INTEGER NOT NULL,
    at          BIGINT NOT NULL,
    status_code INTEGER NOT NULL,
    error       TEXT NOT NULL,
    latency_us  BIGINT NOT NULL,
    response    TEXT NOT NULL
);
CREATE INDEX notify_attempts_delivery ON notify_attempts (delivery_id, n);
