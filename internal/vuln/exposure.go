package vuln

import (
	"bytes"
	"context"
	"slices"
	"time"

	"github.com/steward-iot/steward/internal/access"
	"github.com/steward-iot/steward/internal/audit"
	"github.com/steward-iot/steward/internal/notify"
	"github.com/steward-iot/steward/internal/vuln/osv"
)

// ExposureChange is the payload of a device.exposure_changed notification.
type ExposureChange struct {
	DeviceID string `json:"device_id"`
	Serial   string `json:"serial"`
	Version  string `json:"installed_version"`
	// Added and Removed are vulnerability record ids (e.g. CVE-…, GHSA-…).
	Added   []string `json:"added"`
	Removed []string `json:"removed"`
	// Exposed lists every vulnerability the device is exposed to now.
	Exposed []string `json:"exposed"`
}

// DeviceSoftware is what a device reported running, for UpdateExposure.
type DeviceSoftware struct {
	OrgID, DeviceID, Serial, Version string
	Components                       []ComponentRef
}

// UpdateExposure re-evaluates which tracked vulnerabilities a device's
// reported components are affected by, after the device reported new
// software. When the set changed it is stored, audited and the
// organization's subscribers are told (device.exposure_changed), so owners
// learn when an update closes an exposure or a downgrade opens one.
// Rejected and duplicate vulnerabilities do not count.
func (s *Service) UpdateExposure(ctx context.Context, sw DeviceSoftware) (ExposureChange, bool, error) {
	change := ExposureChange{DeviceID: sw.DeviceID, Serial: sw.Serial, Version: sw.Version, Added: []string{}, Removed: []string{}}
	var exposed []string
	err := s.store.Read(ctx, func(tx Tx) error {
		after := ""
		for {
			page, err := tx.ListVulnerabilities(ctx, sw.OrgID, after, 500)
			if err != nil {
				return err
			}
			for _, v := range page {
				if v.Stage == Rejected || v.Stage == Duplicate {
					continue
				}
				if s.affects(v, sw.Components) {
					exposed = append(exposed, v.VulnID)
				}
			}
			if len(page) < 500 {
				return nil
			}
			after = page[len(page)-1].ID
		}
	})
	if err != nil {
		return change, false, err
	}
	slices.Sort(exposed)
	if exposed == nil {
		exposed = []string{}
	}
	change.Exposed = exposed
	changed := false
	err = s.store.Write(ctx, func(tx Tx) error {
		before, known, err := tx.DeviceExposure(ctx, sw.OrgID, sw.DeviceID)
		if err != nil {
			return err
		}
		for _, id := range exposed {
			if !slices.Contains(before, id) {
				change.Added = append(change.Added, id)
			}
		}
		for _, id := range before {
			if !slices.Contains(exposed, id) {
				change.Removed = append(change.Removed, id)
			}
		}
		if known && len(change.Added) == 0 && len(change.Removed) == 0 {
			return nil
		}
		if err := tx.PutDeviceExposure(ctx, sw.OrgID, sw.DeviceID, exposed, s.clock.Now()); err != nil {
			return err
		}
		// A device's first evaluation records its baseline; only a change
		// after that is news.
		if changed = known || len(exposed) > 0; !changed {
			return nil
		}
		_, err = tx.AppendAudit(ctx, audit.Record{OrgID: sw.OrgID, Actor: access.System("exposure"), Action: "device.exposure",
			TargetType: "device", TargetID: sw.DeviceID, Details: map[string]any{"added": change.Added, "removed": change.Removed}})
		return err
	})
	if err != nil || !changed {
		return change, false, err
	}
	if s.notifier != nil {
		subject := "Device " + sw.Serial + " exposure changed"
		if len(change.Added) > 0 {
			subject = "Device " + sw.Serial + " is now exposed to " + change.Added[0]
		}
		// After the commit: the notifier writes its own outbox.
		if err := s.notifier.Notify(ctx, notify.Message{OrgID: sw.OrgID, Type: notify.EventDeviceExposureChanged, Subject: subject, Data: change}); err != nil {
			return change, true, err
		}
	}
	return change, true, nil
}

// affects reports whether the record of v affects any of comps.
func (s *Service) affects(v Vulnerability, comps []ComponentRef) bool {
	rec := s.parsed(v)
	if rec == nil {
		return false
	}
	m := matcher{rec: rec}
	var owners []AffectedOwner
	add := m.add(&owners, 1, nil)
	for _, c := range comps {
		_ = add(c)
		if len(owners) > 0 {
			return true
		}
	}
	return false
}

// parsed returns v's OSV record, parsed once per version of the record:
// every software change of every device is matched against all of them.
func (s *Service) parsed(v Vulnerability) *osv.Record {
	s.recMu.Lock()
	defer s.recMu.Unlock()
	if c, ok := s.recs[v.ID]; ok && c.updated.Equal(v.UpdatedAt) {
		return c.rec
	}
	rec, err := osv.Parse(bytes.NewReader(v.OSV), MaxOSV)
	if err != nil {
		return nil
	}
	if s.recs == nil {
		s.recs = map[string]parsedRecord{}
	}
	s.recs[v.ID] = parsedRecord{updated: v.UpdatedAt, rec: rec}
	return rec
}

type parsedRecord struct {
	updated time.Time
	rec     *osv.Record
}
