-- Vulnerability handling: ISO/IEC 30111 stage, SLA clocks (start, due, met
-- per clock; due dates are planned by the service from its policy),
-- ownership and escalation, assessment, risk acceptance and EU CRA
-- reporting. Assessment, CRA and risk acceptance are JSON documents read
-- and written whole; what sweeps or filters need has its own column.
ALTER TABLE vulnerabilities ADD COLUMN stage TEXT NOT NULL DEFAULT 'triaging';
ALTER TABLE vulnerabilities ADD COLUMN stage_reason TEXT NOT NULL DEFAULT '';
ALTER TABLE vulnerabilities ADD COLUMN stage_changed_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE vulnerabilities ADD COLUMN duplicate_of TEXT REFERENCES vulnerabilities (id);
ALTER TABLE vulnerabilities ADD COLUMN received_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE vulnerabilities ADD COLUMN fix_released_at BIGINT;
ALTER TABLE vulnerabilities ADD COLUMN sla_class TEXT NOT NULL DEFAULT '';
ALTER TABLE vulnerabilities ADD COLUMN ack_due_at BIGINT;
ALTER TABLE vulnerabilities ADD COLUMN ack_met_at BIGINT;
ALTER TABLE vulnerabilities ADD COLUMN triage_start_at BIGINT;
ALTER TABLE vulnerabilities ADD COLUMN triage_due_at BIGINT;
ALTER TABLE vulnerabilities ADD COLUMN triage_met_at BIGINT;
ALTER TABLE vulnerabilities ADD COLUMN fix_start_at BIGINT;
ALTER TABLE vulnerabilities ADD COLUMN fix_due_at BIGINT;
ALTER TABLE vulnerabilities ADD COLUMN fix_met_at BIGINT;
ALTER TABLE vulnerabilities ADD COLUMN owner_id TEXT REFERENCES users (id);
ALTER TABLE vulnerabilities ADD COLUMN deputy_id TEXT REFERENCES users (id);
ALTER TABLE vulnerabilities ADD COLUMN escalation_chain TEXT NOT NULL DEFAULT '[]';
ALTER TABLE vulnerabilities ADD COLUMN escalation_level INTEGER NOT NULL DEFAULT 0;
ALTER TABLE vulnerabilities ADD COLUMN escalated_at BIGINT;
-- The deadline escalations refer to; when it changes they start over.
ALTER TABLE vulnerabilities ADD COLUMN watch_due_at BIGINT;
-- When the escalation runner should next act; NULL when it has nothing to do.
ALTER TABLE vulnerabilities ADD COLUMN escalate_at BIGINT;
ALTER TABLE vulnerabilities ADD COLUMN assessment TEXT NOT NULL DEFAULT '';
ALTER TABLE vulnerabilities ADD COLUMN priority TEXT NOT NULL DEFAULT '';
ALTER TABLE vulnerabilities ADD COLUMN known_exploited BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE vulnerabilities ADD COLUMN cra TEXT NOT NULL DEFAULT '';
ALTER TABLE vulnerabilities ADD COLUMN risk_acceptance TEXT NOT NULL DEFAULT '';
-- Set only while a risk acceptance is in force.
ALTER TABLE vulnerabilities ADD COLUMN risk_expires_at BIGINT;

-- Records imported before triage existed are treated like new imports
-- (stage triaging, received and acknowledged when imported), but get no
-- due dates: those are planned, from these start times, at their next
-- triage change, so an upgrade does not escalate the whole backlog at once.
UPDATE vulnerabilities SET received_at = created_at, stage_changed_at = created_at,
    ack_met_at = created_at, triage_start_at = created_at;

-- Sweeps walk these across organizations and touch only due rows.
CREATE INDEX vulnerabilities_escalate ON vulnerabilities (escalate_at, id) WHERE escalate_at IS NOT NULL;
CREATE INDEX vulnerabilities_risk_expiry ON vulnerabilities (risk_expires_at, id) WHERE risk_expires_at IS NOT NULL;
CREATE INDEX vulnerabilities_org_stage ON vulnerabilities (org_id, stage, id);
