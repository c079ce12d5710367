// Package vuln owns the vulnerabilities an organization tracks and which of
// its releases and devices they affect. Records come in as OSV JSON; the
// affected configurations are computed from release SBOM components and
// device-reported components with the OSV evaluation (package osv) and the
// ecosystem's version ordering (package version).
package vuln

import (
	"context"
	"time"

	"github.com/steward-iot/steward/internal/audit"
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

// Tx is what vuln needs from a store transaction.
type Tx interface {
	AppendAudit(ctx context.Context, r audit.Record) (audit.Event, error)
	UpsertVulnerability(ctx context.Context, v Vulnerability) (Vulnerability, bool, error)
	VulnerabilityByID(ctx context.Context, orgID, id string) (Vulnerability, error)
	ListVulnerabilities(ctx context.Context, orgID, after string, limit int) ([]Vulnerability, error)
	// ScanReleaseComponents and ScanDeviceComponents stream the org's
	// components; fn is called once per component.
	ScanReleaseComponents(ctx context.Context, orgID string, fn func(ComponentRef) error) error
	ScanDeviceComponents(ctx context.Context, orgID string, fn func(ComponentRef) error) error
}

// Store runs functions in read or write transactions.
type Store interface {
	Read(ctx context.Context, fn func(Tx) error) error
	Write(ctx context.Context, fn func(Tx) error) error
}
