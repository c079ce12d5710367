package vuln

import (
	"bytes"
	"context"
	"sort"
	"sync"

	"github.com/steward-iot/steward/internal/access"
	"github.com/steward-iot/steward/internal/audit"
	"github.com/steward-iot/steward/internal/clock"
	"github.com/steward-iot/steward/internal/id"
	"github.com/steward-iot/steward/internal/paging"
	"github.com/steward-iot/steward/internal/problem"
	"github.com/steward-iot/steward/internal/vuln/osv"
)

// MaxOSV bounds one imported record.
const MaxOSV = 4 << 20

// Service implements vulnerability import, matching and triage.
type Service struct {
	store    Store
	clock    clock.Clock
	policy   Policy
	notifier Notifier

	recMu sync.Mutex
	recs  map[string]parsedRecord // parsed OSV records by vulnerability id
}

// NewService returns a vulnerability service with the default SLA policy
// and no notifier.
func NewService(s Store, c clock.Clock) *Service {
	if c == nil {
		c = clock.Real
	}
	return &Service{store: s, clock: c, policy: DefaultPolicy()}
}

// WithNotifier makes escalations and expired risk acceptances notify
// through n. Call it before the service is shared.
func (s *Service) WithNotifier(n Notifier) *Service {
	s.notifier = n
	return s
}

// WithPolicy sets the SLA and escalation policy after validating it. Call
// it before the service is shared. Due dates already planned keep the
// policy they were planned with until their vulnerability next changes.
func (s *Service) WithPolicy(p Policy) (*Service, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	s.policy = p
	return s, nil
}

// Policy returns the policy in force.
func (s *Service) Policy() Policy { return s.policy }

// ImportOSV records (or updates) a vulnerability from an OSV record. A new
// one starts at ImportStage (triaging).
func (s *Service) ImportOSV(ctx context.Context, p access.Principal, body []byte) (Vulnerability, bool, error) {
	return s.importOSV(ctx, p, body, ImportStage)
}

// ReceiveOSV records a vulnerability reported to the organization (an
// inbound report or an internal finding, written as an OSV record) at
// stage received: its acknowledgement clock runs until someone
// acknowledges it. A record already known is updated and keeps its stage.
func (s *Service) ReceiveOSV(ctx context.Context, p access.Principal, body []byte) (Vulnerability, bool, error) {
	return s.importOSV(ctx, p, body, Received)
}

func (s *Service) importOSV(ctx context.Context, p access.Principal, body []byte, stage Stage) (Vulnerability, bool, error) {
	if err := p.Require(access.VulnWrite); err != nil {
		return Vulnerability{}, false, err
	}
	rec, err := osv.Parse(bytes.NewReader(body), MaxOSV)
	if err != nil {
		return Vulnerability{}, false, problem.Invalid("%v", err)
	}
	now := s.clock.Now()
	v := Vulnerability{ID: id.New(), OrgID: p.OrgID, VulnID: rec.ID, Aliases: rec.Aliases, Summary: rec.Summary,
		Modified: rec.Modified, OSV: body, CreatedAt: now, UpdatedAt: now}
	if v.Aliases == nil {
		v.Aliases = []string{}
	}
	// A new record is received now; imported ones are acknowledged at once
	// and their triage clock runs. Re-imports keep their triage state.
	v.Stage, v.StageChangedAt, v.ReceivedAt = stage, now, now
	v.SLA.Acknowledge = &Deadline{Start: &now}
	if stage == Triaging {
		v.SLA.Acknowledge.MetAt = &now
		v.SLA.Triage = &Deadline{Start: &now}
	}
	v.EscalationChain = []string{}
	s.plan(&v)
	var created bool
	err = s.store.Write(ctx, func(tx Tx) error {
		var err error
		if v, created, err = tx.UpsertVulnerability(ctx, v); err != nil {
			return err
		}
		action := "vulnerability.update"
		if created {
			action = "vulnerability.import"
		}
		details := map[string]any{"vuln_id": v.VulnID, "modified": v.Modified}
		if created {
			details["stage"] = v.Stage
		}
		_, err = tx.AppendAudit(ctx, audit.Record{OrgID: p.OrgID, Actor: p.Actor, Action: action,
			TargetType: "vulnerability", TargetID: v.ID, Details: details})
		return err
	})
	v.view(now)
	return v, created, err
}

// List lists the organization's vulnerabilities.
func (s *Service) List(ctx context.Context, p access.Principal, after string, limit int) ([]Vulnerability, string, error) {
	if err := p.Require(access.VulnRead); err != nil {
		return nil, "", err
	}
	items, next, err := paging.List(ctx, s.store.Read, limit, func(tx Tx, limit int) ([]Vulnerability, error) {
		return tx.ListVulnerabilities(ctx, p.OrgID, after, limit)
	}, func(v Vulnerability) string { return v.ID })
	now := s.clock.Now()
	for i := range items {
		items[i].view(now)
	}
	return items, next, err
}

// Get returns one vulnerability by id or record id.
func (s *Service) Get(ctx context.Context, p access.Principal, ref string) (Vulnerability, error) {
	if err := p.Require(access.VulnRead); err != nil {
		return Vulnerability{}, err
	}
	var v Vulnerability
	err := s.store.Read(ctx, func(tx Tx) error {
		var err error
		v, err = tx.VulnerabilityByID(ctx, p.OrgID, ref)
		return err
	})
	v.view(s.clock.Now())
	return v, err
}

// AffectedComponent is a component a vulnerability affects.
type AffectedComponent struct {
	Purl    string `json:"purl"`
	Version string `json:"version"`
	// Package is the (source) package name the record names.
	Package   string `json:"package"`
	Ecosystem string `json:"ecosystem"`
	Fixed     string `json:"fixed,omitempty" doc:"first fixed version above the installed one, when known"`
}

// AffectedOwner is a release or device with affected components.
type AffectedOwner struct {
	ID         string              `json:"id"`
	Label      string              `json:"label" doc:"product and version of a release; serial of a device"`
	Components []AffectedComponent `json:"components"`
}

// Affected lists what a vulnerability affects.
type Affected struct {
	Vulnerability Vulnerability   `json:"vulnerability"`
	Releases      []AffectedOwner `json:"releases"`
	DeviceCount   int             `json:"device_count"`
	// Devices lists at most MaxAffectedDevices of them.
	Devices   []AffectedOwner `json:"devices"`
	Truncated bool            `json:"devices_truncated,omitempty"`
	Warnings  []string        `json:"warnings,omitempty" doc:"components that could not be evaluated"`
}

// MaxAffectedDevices bounds the device list of one answer.
const MaxAffectedDevices = 1000

// Affected matches a vulnerability against every release SBOM component
// and every component an active device reported.
func (s *Service) Affected(ctx context.Context, p access.Principal, ref string) (Affected, error) {
	if err := p.Require(access.VulnRead); err != nil {
		return Affected{}, err
	}
	var out Affected
	err := s.store.Read(ctx, func(tx Tx) error {
		v, err := tx.VulnerabilityByID(ctx, p.OrgID, ref)
		if err != nil {
			return err
		}
		v.view(s.clock.Now())
		out.Vulnerability = v
		rec, err := osv.Parse(bytes.NewReader(v.OSV), MaxOSV)
		if err != nil {
			return err
		}
		m := matcher{rec: rec}
		if err := tx.ScanReleaseComponents(ctx, p.OrgID, m.add(&out.Releases, 0, nil)); err != nil {
			return err
		}
		if err := tx.ScanDeviceComponents(ctx, p.OrgID, m.add(&out.Devices, MaxAffectedDevices, &out.DeviceCount)); err != nil {
			return err
		}
		out.Truncated = out.DeviceCount > len(out.Devices)
		out.Warnings = m.warnings
		return nil
	})
	if out.Releases == nil {
		out.Releases = []AffectedOwner{}
	}
	if out.Devices == nil {
		out.Devices = []AffectedOwner{}
	}
	sort.Slice(out.Releases, func(i, j int) bool { return out.Releases[i].Label < out.Releases[j].Label })
	return out, err
}

type matcher struct {
	rec      *osv.Record
	warnings []string
}

// add returns a scan callback collecting affected components per owner
// (rows arrive grouped by owner). With max > 0 only the first max affected
// owners are listed; count, if set, counts them all.
func (m *matcher) add(owners *[]AffectedOwner, max int, count *int) func(ComponentRef) error {
	var cur string
	var affected, listed bool
	return func(c ComponentRef) error {
		if c.OwnerID != cur {
			cur, affected, listed = c.OwnerID, false, false
		}
		pkgs, err := osv.PackagesFromPurl(c.Purl, c.Distro, c.SourceName, c.SourceVersion)
		if err != nil {
			if len(m.warnings) < 20 {
				m.warnings = append(m.warnings, c.Purl+": "+err.Error())
			}
			return nil
		}
		for _, pkg := range pkgs {
			match, ok := m.rec.Affects(pkg)
			if !ok {
				continue
			}
			if !affected {
				affected = true
				if count != nil {
					*count++
				}
				if listed = max == 0 || len(*owners) < max; listed {
					*owners = append(*owners, AffectedOwner{ID: c.OwnerID, Label: c.OwnerLabel})
				}
			}
			if listed {
				o := &(*owners)[len(*owners)-1]
				o.Components = append(o.Components, AffectedComponent{Purl: c.Purl, Version: pkg.Version, Package: pkg.Name,
					Ecosystem: pkg.Ecosystem, Fixed: match.Fixed})
			}
			return nil // one match per component is enough
		}
		return nil
	}
}
