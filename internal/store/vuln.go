package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/steward-iot/steward/internal/problem"
	"github.com/steward-iot/steward/internal/vuln"
)

var _ vuln.Tx = (*Tx)(nil)

// Vuln returns the vulnerability store.
func (db *DB) Vuln() vuln.Store { return domain[vuln.Tx]{db} }

// vulnCols are read: the OSV record columns, then the triage state in the
// order of vulnTriageCols (less risk_expires_at, which only feeds the
// expiry index: the risk acceptance document holds the expiry).
const vulnCols = "id, org_id, vuln_id, aliases, summary, modified, osv, created_at, updated_at, " +
	"stage, stage_reason, stage_changed_at, COALESCE(duplicate_of, ''), received_at, fix_released_at, sla_class, " +
	"ack_due_at, ack_met_at, triage_start_at, triage_due_at, triage_met_at, fix_start_at, fix_due_at, fix_met_at, " +
	"COALESCE(owner_id, ''), COALESCE(deputy_id, ''), escalation_chain, escalation_level, escalated_at, watch_due_at, escalate_at, " +
	"assessment, priority, known_exploited, cra, risk_acceptance"

const vulnOSVCols = "id, org_id, vuln_id, aliases, summary, modified, osv, created_at, updated_at"

const vulnTriageCols = "stage, stage_reason, stage_changed_at, duplicate_of, received_at, fix_released_at, sla_class, " +
	"ack_due_at, ack_met_at, triage_start_at, triage_due_at, triage_met_at, fix_start_at, fix_due_at, fix_met_at, " +
	"owner_id, deputy_id, escalation_chain, escalation_level, escalated_at, watch_due_at, escalate_at, " +
	"assessment, priority, known_exploited, cra, risk_acceptance, risk_expires_at"

func scanVuln(scan func(...any) error) (vuln.Vulnerability, error) {
	var v vuln.Vulnerability
	var aliases, osv, chain, assessment, cra, risk string
	var modified, created, updated, stageChanged, received int64
	var fixReleased, ackDue, ackMet, triageStart, triageDue, triageMet, fixStart, fixDue, fixMet,
		escalated, watchDue, escalateAt sql.NullInt64
	err := scan(&v.ID, &v.OrgID, &v.VulnID, &aliases, &v.Summary, &modified, &osv, &created, &updated,
		&v.Stage, &v.StageReason, &stageChanged, &v.DuplicateOf, &received, &fixReleased, &v.SLA.Class,
		&ackDue, &ackMet, &triageStart, &triageDue, &triageMet, &fixStart, &fixDue, &fixMet,
		&v.OwnerID, &v.DeputyID, &chain, &v.Escalation.Level, &escalated, &watchDue, &escalateAt,
		&assessment, &v.Priority, &v.KnownExploited, &cra, &risk)
	if err != nil {
		return v, err
	}
	v.OSV, v.Modified, v.CreatedAt, v.UpdatedAt = []byte(osv), fromUS(modified), fromUS(created), fromUS(updated)
	v.StageChangedAt, v.ReceivedAt, v.FixReleasedAt = fromUS(stageChanged), fromUS(received), fromNullUS(fixReleased)
	ackStart := v.ReceivedAt // a copy: the deadline must not alias the struct it is in
	v.SLA.Acknowledge = &vuln.Deadline{Start: &ackStart, Due: fromNullUS(ackDue), MetAt: fromNullUS(ackMet)}
	v.SLA.Triage = vulnDeadline(triageStart, triageDue, triageMet)
	v.SLA.Remediation = vulnDeadline(fixStart, fixDue, fixMet)
	v.Escalation.EscalatedAt, v.Escalation.DueAt, v.Escalation.NextAt = fromNullUS(escalated), fromNullUS(watchDue), fromNullUS(escalateAt)
	err = errors.Join(json.Unmarshal([]byte(aliases), &v.Aliases), json.Unmarshal([]byte(chain), &v.EscalationChain),
		vulnOptJSON(assessment, &v.Assessment), vulnOptJSON(cra, &v.CRA), vulnOptJSON(risk, &v.RiskAcceptance))
	return v, err
}

func vulnDeadline(start, due, met sql.NullInt64) *vuln.Deadline {
	if !start.Valid {
		return nil
	}
	return &vuln.Deadline{Start: fromNullUS(start), Due: fromNullUS(due), MetAt: fromNullUS(met)}
}

// vulnOptJSON decodes a JSON column that holds the empty string when absent.
func vulnOptJSON[T any](s string, dst **T) error {
	if s == "" {
		*dst = nil
		return nil
	}
	*dst = new(T)
	return json.Unmarshal([]byte(s), *dst)
}

func vulnMarshalOpt[T any](v *T) (string, error) {
	if v == nil {
		return "", nil
	}
	b, err := json.Marshal(v)
	return string(b), err
}

func vulnNullText(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// vulnTriageArgs returns the values of vulnTriageCols for v.
func vulnTriageArgs(v vuln.Vulnerability) ([]any, error) {
	chain := v.EscalationChain
	if chain == nil {
		chain = []string{}
	}
	chainJSON, err := json.Marshal(chain)
	if err != nil {
		return nil, err
	}
	assessment, err1 := vulnMarshalOpt(v.Assessment)
	cra, err2 := vulnMarshalOpt(v.CRA)
	risk, err3 := vulnMarshalOpt(v.RiskAcceptance)
	if err := errors.Join(err1, err2, err3); err != nil {
		return nil, err
	}
	// The expiry index holds only acceptances in force.
	var riskExpires any
	if v.Stage == vuln.RiskAccepted && v.RiskAcceptance != nil {
		riskExpires = us(v.RiskAcceptance.ExpiresAt)
	}
	clk := func(d *vuln.Deadline) (start, due, met any) {
		if d == nil {
			return nil, nil, nil
		}
		return nullUS(d.Start), nullUS(d.Due), nullUS(d.MetAt)
	}
	var ackDue, ackMet any
	if a := v.SLA.Acknowledge; a != nil {
		ackDue, ackMet = nullUS(a.Due), nullUS(a.MetAt)
	}
	tStart, tDue, tMet := clk(v.SLA.Triage)
	fStart, fDue, fMet := clk(v.SLA.Remediation)
	e := v.Escalation
	return []any{string(v.Stage), v.StageReason, us(v.StageChangedAt), vulnNullText(v.DuplicateOf), us(v.ReceivedAt),
		nullUS(v.FixReleasedAt), string(v.SLA.Class),
		ackDue, ackMet, tStart, tDue, tMet, fStart, fDue, fMet,
		vulnNullText(v.OwnerID), vulnNullText(v.DeputyID), string(chainJSON), e.Level, nullUS(e.EscalatedAt), nullUS(e.DueAt), nullUS(e.NextAt),
		assessment, string(v.Priority), v.KnownExploited, cra, risk, riskExpires}, nil
}

// vulnPlaceholders returns "$from, …, $(from+n-1)".
func vulnPlaceholders(from, n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "$%d", from+i)
	}
	return b.String()
}

// UpsertVulnerability inserts v, or replaces the record of the same
// vuln_id, and reports whether it was new. Replacing keeps the stored
// triage state.
func (tx *Tx) UpsertVulnerability(ctx context.Context, v vuln.Vulnerability) (vuln.Vulnerability, bool, error) {
	aliases, err := json.Marshal(v.Aliases)
	if err != nil {
		return v, false, err
	}
	existing, err := getOne(ctx, tx, "vulnerability", scanVuln, "SELECT "+vulnCols+" FROM vulnerabilities WHERE org_id = $1 AND vuln_id = $2", v.OrgID, v.VulnID)
	if err == nil {
		err = tx.updateOne(ctx, "vulnerability "+v.VulnID, `UPDATE vulnerabilities SET aliases = $3, summary = $4, modified = $5, osv = $6, updated_at = $7
			WHERE org_id = $1 AND id = $2`, v.OrgID, existing.ID, string(aliases), v.Summary, us(v.Modified), string(v.OSV), us(v.UpdatedAt))
		if err != nil {
			return v, false, err
		}
		existing.Aliases, existing.Summary, existing.Modified, existing.OSV, existing.UpdatedAt = v.Aliases, v.Summary, v.Modified, v.OSV, v.UpdatedAt
		return existing, false, nil
	}
	if !problem.Is(err, problem.KindNotFound) {
		return v, false, err
	}
	args, err := vulnTriageArgs(v)
	if err != nil {
		return v, false, err
	}
	args = append([]any{v.ID, v.OrgID, v.VulnID, string(aliases), v.Summary, us(v.Modified), string(v.OSV), us(v.CreatedAt), us(v.UpdatedAt)}, args...)
	err = tx.insert(ctx, "vulnerability "+v.VulnID, "INSERT INTO vulnerabilities ("+vulnOSVCols+", "+vulnTriageCols+") VALUES ("+vulnPlaceholders(1, len(args))+")", args...)
	return v, err == nil, err
}

func (tx *Tx) VulnerabilityByID(ctx context.Context, orgID, id string) (vuln.Vulnerability, error) {
	return getOne(ctx, tx, "vulnerability "+id, scanVuln, "SELECT "+vulnCols+" FROM vulnerabilities WHERE org_id = $1 AND (id = $2 OR vuln_id = $2)", orgID, id)
}

// LockVulnerability reads a vulnerability and, on PostgreSQL, locks its row
// until the transaction ends, so read-modify-write changes of one
// vulnerability queue instead of overwriting each other. SQLite has a
// single writer, which already serializes them.
func (tx *Tx) LockVulnerability(ctx context.Context, orgID, id string) (vuln.Vulnerability, error) {
	q := "SELECT " + vulnCols + " FROM vulnerabilities WHERE org_id = $1 AND (id = $2 OR vuln_id = $2)"
	if tx.db.dialect == Postgres {
		q += " FOR UPDATE"
	}
	return getOne(ctx, tx, "vulnerability "+id, scanVuln, q, orgID, id)
}

// UpdateVulnerabilityTriage stores v's triage state if its escalation
// level is still level, so two escalation runners cannot both raise it.
func (tx *Tx) UpdateVulnerabilityTriage(ctx context.Context, v vuln.Vulnerability, level int) error {
	args, err := vulnTriageArgs(v)
	if err != nil {
		return err
	}
	cols := strings.Split(vulnTriageCols, ", ")
	sets := make([]string, len(cols))
	for i, c := range cols {
		sets[i] = fmt.Sprintf("%s = $%d", c, i+5)
	}
	res, err := tx.exec(ctx, "UPDATE vulnerabilities SET updated_at = $4, "+strings.Join(sets, ", ")+
		" WHERE org_id = $1 AND id = $2 AND escalation_level = $3", append([]any{v.OrgID, v.ID, level, us(v.UpdatedAt)}, args...)...)
	if err != nil {
		return fmt.Errorf("update vulnerability %s: %w", v.VulnID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n != 1 {
		return problem.Conflict("vulnerability %s changed concurrently (or is gone)", v.VulnID)
	}
	return nil
}

func scanVulnDueRef(scan func(...any) error) (vuln.DueRef, error) {
	var r vuln.DueRef
	var at int64
	err := scan(&r.OrgID, &r.ID, &at)
	r.At = fromUS(at)
	return r, err
}

// VulnerabilitiesToEscalate walks the escalate_at index across
// organizations: the runner never loads vulnerabilities that are not due.
func (tx *Tx) VulnerabilitiesToEscalate(ctx context.Context, now time.Time, after vuln.DueRef, limit int) ([]vuln.DueRef, error) {
	return list(ctx, tx, "vulnerabilities to escalate", scanVulnDueRef, `SELECT org_id, id, escalate_at FROM vulnerabilities
		WHERE escalate_at < $1 AND (escalate_at, id) > ($2, $3)
		ORDER BY escalate_at, id LIMIT $4`, us(now), us(after.At), after.ID, limit)
}

// VulnerabilitiesRiskExpired walks the risk_expires_at index across
// organizations.
func (tx *Tx) VulnerabilitiesRiskExpired(ctx context.Context, now time.Time, after vuln.DueRef, limit int) ([]vuln.DueRef, error) {
	return list(ctx, tx, "expired risk acceptances", scanVulnDueRef, `SELECT org_id, id, risk_expires_at FROM vulnerabilities
		WHERE risk_expires_at <= $1 AND (risk_expires_at, id) > ($2, $3)
		ORDER BY risk_expires_at, id LIMIT $4`, us(now), us(after.At), after.ID, limit)
}

// VulnPerson reads a user of orgID as triage sees them.
func (tx *Tx) VulnPerson(ctx context.Context, orgID, id string) (vuln.Person, error) {
	return getOne(ctx, tx, "user "+id, func(scan func(...any) error) (vuln.Person, error) {
		var p vuln.Person
		var disabled sql.NullInt64
		err := scan(&p.ID, &p.OrgID, &p.Email, &p.Role, &disabled)
		p.Disabled = disabled.Valid
		return p, err
	}, "SELECT id, org_id, email, role, disabled_at FROM users WHERE org_id = $1 AND id = $2", orgID, id)
}

func (tx *Tx) ListVulnerabilities(ctx context.Context, orgID, after string, limit int) ([]vuln.Vulnerability, error) {
	return list(ctx, tx, "vulnerabilities", scanVuln, "SELECT "+vulnCols+" FROM vulnerabilities WHERE org_id = $1 AND id > $2 ORDER BY id LIMIT $3", orgID, after, limit)
}

func (tx *Tx) scanComponents(ctx context.Context, q string, orgID string, fn func(vuln.ComponentRef) error) error {
	rows, err := tx.tx.QueryContext(ctx, q, orgID)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var c vuln.ComponentRef
		if err := rows.Scan(&c.OwnerID, &c.OwnerLabel, &c.Purl, &c.Version, &c.SourceName, &c.SourceVersion, &c.Distro); err != nil {
			return err
		}
		if err := fn(c); err != nil {
			return err
		}
	}
	return rows.Err()
}

func (tx *Tx) ScanReleaseComponents(ctx context.Context, orgID string, fn func(vuln.ComponentRef) error) error {
	return tx.scanComponents(ctx, `SELECT c.release_id, p.slug || ' ' || r.version, c.purl, c.version, c.source_name, c.source_version, c.distro
		FROM release_components c JOIN releases r ON r.id = c.release_id JOIN products p ON p.id = r.product_id
		WHERE r.org_id = $1 AND c.purl <> '' ORDER BY c.release_id`, orgID, fn)
}

func (tx *Tx) ScanDeviceComponents(ctx context.Context, orgID string, fn func(vuln.ComponentRef) error) error {
	return tx.scanComponents(ctx, `SELECT c.device_id, d.serial, c.purl, c.version, '', '', ''
		FROM device_components c JOIN devices d ON d.id = c.device_id
		WHERE d.org_id = $1 AND d.status IN ('active', 'quarantined') ORDER BY c.device_id`, orgID, fn)
}

// DeviceExposure returns the vulnerabilities a device was last exposed to.
func (tx *Tx) DeviceExposure(ctx context.Context, orgID, deviceID string) ([]string, bool, error) {
	var raw string
	err := tx.tx.QueryRowContext(ctx, "SELECT vulns FROM device_exposure WHERE org_id = $1 AND device_id = $2", orgID, deviceID).Scan(&raw)
	if errors.Is(err, sql.ErrNoRows) {
		return []string{}, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	var ids []string
	err = json.Unmarshal([]byte(raw), &ids)
	return ids, true, err
}

// PutDeviceExposure records the vulnerabilities a device is exposed to.
func (tx *Tx) PutDeviceExposure(ctx context.Context, orgID, deviceID string, ids []string, at time.Time) error {
	raw, err := json.Marshal(ids)
	if err != nil {
		return err
	}
	_, err = tx.exec(ctx, `INSERT INTO device_exposure (device_id, org_id, vulns, updated_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (device_id) DO UPDATE SET vulns = excluded.vulns, updated_at = excluded.updated_at`, deviceID, orgID, string(raw), us(at))
	return err
}
