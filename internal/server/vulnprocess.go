package server

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/steward-iot/steward/agent/proto"
	"github.com/steward-iot/steward/internal/advisory"
	"github.com/steward-iot/steward/internal/disclosure"
	"github.com/steward-iot/steward/internal/inventory"
	"github.com/steward-iot/steward/internal/notify"
	"github.com/steward-iot/steward/internal/store"
	"github.com/steward-iot/steward/internal/tenancy"
	"github.com/steward-iot/steward/internal/vuln"
)

// vulnProcess is the vulnerability-handling side of Steward: notifications,
// inbound reports, advisories, and the sweeps that keep their clocks.
type vulnProcess struct {
	notify     *notify.Service
	reports    *disclosure.Service
	advisories *advisory.Service
	// mounts are the public pages and APIs: security.txt, the report form
	// and API, the CSAF provider and advisory pages.
	mounts map[string]http.Handler
}

// buildVulnProcess assembles the services; the public side serves the
// disclosure organization (the vendor running this instance).
func (s *Server) buildVulnProcess(ctx context.Context, db *store.DB, ten *tenancy.Service, vulns vulnChecker) (*vulnProcess, error) {
	cfg := s.cfg
	nc := cfg.Notify
	if err := nc.SMTP.LoadPassword(envLookup); err != nil {
		return nil, err
	}
	notes, err := notify.NewService(db.Notify(), cfg.Clock, nc, s.log)
	if err != nil {
		return nil, fmt.Errorf("notifications: %w", err)
	}
	// The disclosure organization is named, or else the instance's own.
	var orgID, slug string
	if slug = cfg.DisclosureOrg; slug != "" {
		if orgID, err = ten.PublicOrgID(ctx, slug); err != nil {
			return nil, fmt.Errorf("disclosure organization %q: %w (set --disclosure-org to an existing organization's slug)", slug, err)
		}
	} else {
		org, err := ten.InstanceOrg(ctx)
		if err != nil {
			return nil, fmt.Errorf("the instance organization (for security.txt and advisories): %w", err)
		}
		orgID, slug = org.ID, org.Slug
	}
	base := cfg.publicURL()
	lab := strings.HasPrefix(base, "http://")
	if lab {
		s.log.Warn("the public URL is http: security.txt and the CSAF provider are served for a lab only (RFC 9116 and CSAF require https); set --public-url https://…",
			"public_url", base)
	}
	provider := advisory.ProviderConfig{OrgID: orgID, BaseURL: base, AllowHTTP: lab,
		Publisher: advisory.Publisher{Name: slug, Namespace: base, Category: "vendor"}}
	dc := disclosure.Config{OrgID: orgID, OrgName: slug, BaseURL: base, AllowHTTP: lab, Contacts: cfg.SecurityContacts}
	reports, err := disclosure.NewService(db.Disclosure(), cfg.Clock, dc, disclosure.Deps{Notifier: notes, Vulnerabilities: vulns, Log: s.log})
	if err != nil {
		return nil, fmt.Errorf("vulnerability reports: %w", err)
	}
	advisories := advisory.NewService(db.Advisory(), cfg.Clock, advisory.Options{Notifier: notes, Logger: s.log, Engine: cfg.Version})
	vp := &vulnProcess{notify: notes, reports: reports, advisories: advisories, mounts: map[string]http.Handler{}}
	public, err := disclosure.NewHandler(reports, s.log)
	if err != nil {
		return nil, fmt.Errorf("disclosure pages: %w", err)
	}
	for _, p := range disclosure.Routes() {
		vp.mounts[p] = public
	}
	csaf, err := advisory.NewProviderHandler(advisories, provider)
	if err != nil {
		return nil, fmt.Errorf("CSAF provider: %w", err)
	}
	for _, p := range advisory.Routes() {
		vp.mounts[p] = csaf
	}
	return vp, nil
}

// runSweeps checks the clocks of the vulnerability process every interval:
// reports not acknowledged in time, breached SLA and CRA deadlines
// (escalated), and risk acceptances that expired. Every replica may run
// it: each step is guarded against running twice.
func (s *Server) runSweeps(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if n, err := s.vp.reports.CheckOverdue(ctx, s.cfg.Clock.Now()); err != nil && ctx.Err() == nil {
			s.log.Warn("checking overdue report acknowledgements failed", "err", err)
		} else if n > 0 {
			s.log.Info("reports overdue for acknowledgement: notified", "count", n)
		}
		if r, err := s.vulns.RunEscalations(ctx, s.cfg.Clock.Now()); err != nil && ctx.Err() == nil {
			s.log.Warn("escalating breached vulnerability deadlines failed", "err", err)
		} else if r.Escalated > 0 || r.Expired > 0 {
			s.log.Info("vulnerability clocks", "escalated", r.Escalated, "risk_acceptances_expired", r.Expired)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

var envLookup = os.Getenv

// vulnChecker confirms a vulnerability id belongs to an organization, for
// linking reports to vulnerabilities.
type vulnChecker struct{ db *store.DB }

func (c vulnChecker) CheckVulnerability(ctx context.Context, orgID, id string) error {
	return c.db.Vuln().Read(ctx, func(tx vuln.Tx) error {
		_, err := tx.VulnerabilityByID(ctx, orgID, id)
		return err
	})
}

// exposureHook re-evaluates a device's vulnerability exposure when it
// reports new software.
func (s *Server) exposureHook(ctx context.Context, d inventory.Device, installed proto.Installed) error {
	comps := make([]vuln.ComponentRef, len(installed.Components))
	for i, c := range installed.Components {
		comps[i] = vuln.ComponentRef{OwnerID: d.ID, OwnerLabel: d.Serial, Purl: c.Purl, Version: c.Version}
	}
	_, _, err := s.vulns.UpdateExposure(ctx, vuln.DeviceSoftware{OrgID: d.OrgID, DeviceID: d.ID, Serial: d.Serial,
		Version: installed.Version, Components: comps})
	return err
}
