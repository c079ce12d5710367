// Package vuln owns the vulnerabilities an organization tracks and which of
// its releases and devices they affect. Records come in as OSV JSON; the
// affected configurations are computed from release SBOM components and
// device-reported components with the OSV evaluation (package osv) and the
// ecosystem's version ordering (package version).
//
// Each vulnerability is also handled (triage.go): it moves through the
// ISO/IEC 30111 stages, has an owner and an escalation ladder, is assessed
// (CVSS, SSVC, package scoring) into a priority whose class sets its SLA
// clocks (policy.go), may have its risk accepted for a while, and, when
// actively exploited, runs the EU Cyber Resilience Act reporting clocks.
// Breached clocks escalate (escalation.go).
package vuln

import (
	"context"
	"time"

	"github.com/steward-iot/steward/internal/access"
	"github.com/steward-iot/steward/internal/audit"
	"github.com/steward-iot/steward/internal/notify"
	"github.com/steward-iot/steward/internal/vuln/scoring"
)

// Vulnerability is a tracked vulnerability.
type Vulnerability struct {
	ID        string    `json:"id"`
	OrgID     string    `json:"org_id"`
	VulnID    string    `json:"vuln_id" doc:"the record's id, e.g. DLA-3008-1, GHSA-…, CVE-…"`
	Aliases   []string  `json:"aliases"`
	Summary   string    `json:"summary,omitempty"`
	Modified  time.Time `json:"modified" doc:"the record's own modification time"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// OSV is the record as imported.
	OSV []byte `json:"-"`

	// Stage is where the vulnerability stands in the ISO/IEC 30111 process.
	Stage          Stage      `json:"stage" enum:"received,acknowledged,triaging,confirmed,rejected,duplicate,remediation,risk-accepted,fix-released,disclosed,closed"`
	StageReason    string     `json:"stage_reason,omitempty" doc:"why it entered its stage, when given"`
	StageChangedAt time.Time  `json:"stage_changed_at"`
	DuplicateOf    string     `json:"duplicate_of,omitempty" doc:"id of the vulnerability this one duplicates (stage duplicate)"`
	ReceivedAt     time.Time  `json:"received_at"`
	FixReleasedAt  *time.Time `json:"fix_released_at,omitempty" doc:"when a fix (corrective measure) was released"`

	OwnerID         string   `json:"owner_id,omitempty"`
	DeputyID        string   `json:"deputy_id,omitempty"`
	EscalationChain []string `json:"escalation_chain" doc:"user ids escalated to, in order, after the owner and the deputy"`

	// Priority is the effective priority: the SSVC deployer decision or a
	// higher override. Empty until assessed.
	Priority       scoring.Priority `json:"priority,omitempty" enum:"defer,scheduled,out-of-cycle,immediate"`
	KnownExploited bool             `json:"known_exploited"`
	Assessment     *Assessment      `json:"assessment,omitempty"`

	SLA            SLA             `json:"sla"`
	Escalation     Escalation      `json:"escalation"`
	RiskAcceptance *RiskAcceptance `json:"risk_acceptance,omitempty" doc:"the current or most recent risk acceptance"`
	CRA            *CRA            `json:"cra,omitempty" doc:"EU CRA Art. 14 reporting clocks, once active exploitation is known"`
}

// ComponentRef is one installed component, of a release or a device.
type ComponentRef struct {
	OwnerID       string // release or device id
	OwnerLabel    string // "product version" of a release, serial of a device
	Purl          string
	Version       string
	SourceName    string
	SourceVersion string
	Distro        string
}

// Person is a user as triage needs to know them: who may own, be
// escalated to, or approve a risk acceptance.
type Person struct {
	ID       string
	OrgID    string
	Email    string
	Role     access.Role
	Disabled bool
}

// DueRef names a vulnerability some sweep must act on, and the time that
// made it due (the keyset cursor of the sweep).
type DueRef struct {
	OrgID string
	ID    string
	At    time.Time
}

// Notifier delivers notifications (package notify implements it).
type Notifier interface {
	Notify(ctx context.Context, m notify.Message) error
}

// Tx is what vuln needs from a store transaction.
type Tx interface {
	AppendAudit(ctx context.Context, r audit.Record) (audit.Event, error)
	// UpsertVulnerability inserts v with its triage state, or replaces the
	// OSV record of the same vuln_id and leaves its triage state alone; it
	// returns the stored vulnerability and whether it was new.
	UpsertVulnerability(ctx context.Context, v Vulnerability) (Vulnerability, bool, error)
	VulnerabilityByID(ctx context.Context, orgID, id string) (Vulnerability, error)
	ListVulnerabilities(ctx context.Context, orgID, after string, limit int) ([]Vulnerability, error)
	// LockVulnerability reads a vulnerability (by id or vuln_id) for
	// update: on PostgreSQL the row stays locked until the transaction ends.
	LockVulnerability(ctx context.Context, orgID, id string) (Vulnerability, error)
	// UpdateVulnerabilityTriage stores the triage state of v (stage,
	// clocks, ownership, assessment, escalation, risk, CRA) if its
	// escalation level is still level; otherwise it changes nothing and
	// returns a Conflict.
	UpdateVulnerabilityTriage(ctx context.Context, v Vulnerability, level int) error
	// VulnerabilitiesToEscalate lists, across organizations, vulnerabilities
	// whose next escalation is before now, ordered by (that time, id) and
	// starting after the cursor.
	VulnerabilitiesToEscalate(ctx context.Context, now time.Time, after DueRef, limit int) ([]DueRef, error)
	// VulnerabilitiesRiskExpired lists, across organizations, vulnerabilities
	// whose risk acceptance expired at or before now, ordered by (expiry,
	// id) and starting after the cursor.
	VulnerabilitiesRiskExpired(ctx context.Context, now time.Time, after DueRef, limit int) ([]DueRef, error)
	// VulnPerson reads a user of the organization.
	VulnPerson(ctx context.Context, orgID, id string) (Person, error)
	// ScanReleaseComponents and ScanDeviceComponents stream the org's
	// components; fn is called once per component.
	ScanReleaseComponents(ctx context.Context, orgID string, fn func(ComponentRef) error) error
	ScanDeviceComponents(ctx context.Context, orgID string, fn func(ComponentRef) error) error
	// DeviceExposure returns the vulnerability record ids a device was last
	// found exposed to; known is false before its first evaluation.
	DeviceExposure(ctx context.Context, orgID, deviceID string) (ids []string, known bool, err error)
	PutDeviceExposure(ctx context.Context, orgID, deviceID string, ids []string, at time.Time) error
}

// Store runs functions in read or write transactions.
type Store interface {
	Read(ctx context.Context, fn func(Tx) error) error
	Write(ctx context.Context, fn func(Tx) error) error
}
