package advisory_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/steward-iot/steward/internal/access"
	"github.com/steward-iot/steward/internal/advisory"
	"github.com/steward-iot/steward/internal/audit"
	"github.com/steward-iot/steward/internal/clock"
	"github.com/steward-iot/steward/internal/notify"
	"github.com/steward-iot/steward/internal/problem"
	"github.com/steward-iot/steward/internal/store"
	"github.com/steward-iot/steward/internal/store/storetest"
	"github.com/steward-iot/steward/internal/tenancy"
)

// t0 is mid-morning of a working day; the fake clock starts there.
var t0 = time.Date(2026, 11, 26, 8, 0, 0, 123456789, time.UTC)

// realisticDraft is an advisory about an out-of-bounds write in the
// firmware update parser of two gateway lines: one version line fixed,
// one past end of support, a sensor that does not ship the component,
// and a newer gateway still under investigation.
func realisticDraft() advisory.Draft {
	discovered := time.Date(2026, 10, 2, 14, 30, 0, 0, time.UTC)
	return advisory.Draft{
		Title: "Out-of-bounds write in the GW-100 firmware update parser",
		Publisher: advisory.Publisher{Name: "Acme Industrial", Namespace: "https://acme.example",
			ContactDetails: "psirt@acme.example"},
		TLP:     "CLEAR",
		Summary: "A crafted update bundle can overwrite memory in the update agent of GW-100 gateways.",
		Details: "The bundle parser trusts the length field of the manifest section.\nAn attacker on the network path can run code as root.",
		References: []advisory.Reference{
			{URL: "https://acme.example/psirt", Summary: "Acme PSIRT"},
		},
		Products: []advisory.Product{
			{ID: "gw100-2.2.5", Vendor: "Acme Industrial", Name: "GW-100", Version: "2.2.5", Purl: "pkg:generic/acme/gw100-firmware@2.2.5", HardwareID: "GW100-A"},
			{ID: "gw100-2.3.0", Vendor: "Acme Industrial", Name: "GW-100", Version: "2.3.0", Purl: "pkg:generic/acme/gw100-firmware@2.3.0", HardwareID: "GW100-A"},
			{ID: "gw100-2.3.1", Vendor: "Acme Industrial", Name: "GW-100", Version: "2.3.1", Purl: "pkg:generic/acme/gw100-firmware@2.3.1", HardwareID: "GW100-A"},
			{ID: "s10-1.4.0", Vendor: "Acme Industrial", Name: "S-10 Sensor", Version: "1.4.0",
				CPE: "cpe:2.3:o:acme:s10_firmware:1.4.0:*:*:*:*:*:*:*"},
			{ID: "gw200-3.0.0", Vendor: "Acme Industrial", Name: "GW-200", Version: "3.0.0"},
		},
		Vulnerabilities: []advisory.Vulnerability{{
			CVE:     "CVE-2026-21001",
			IDs:     []advisory.VulnID{{System: "OSV", Text: "ACME-2026-7"}},
			Title:   "Update bundle length field overflow",
			Summary: "The update agent copies the manifest section without checking its declared length.",
			Details: "Fixed by bounding the copy to the bundle size.",
			CWE:     &advisory.CWE{ID: "CWE-787", Name: "Out-of-bounds Write"},
			CVSS3:   &advisory.CVSS3{Vector: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", BaseScore: 9.8, Severity: "critical"},
			CVSS4:   "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N",

			DiscoveryDate:      &discovered,
			Fixed:              []string{"gw100-2.3.1"},
			KnownAffected:      []string{"gw100-2.3.0", "gw100-2.2.5"},
			KnownNotAffected:   []advisory.NotAffected{{ProductID: "s10-1.4.0", Justification: "component_not_present"}},
			UnderInvestigation: []string{"gw200-3.0.0"},
			Remediations: []advisory.Remediation{
				{Category: advisory.RemediationVendorFix, Details: "Update to release 2.3.1.", URL: "https://acme.example/releases/gw100/2.3.1",
					ProductIDs: []string{"gw100-2.3.0"}},
				{Category: advisory.RemediationNoFixPlanned, Details: "Release line 2.2 reached its end of support on 2026-06-30; replace or upgrade the device.",
					ProductIDs: []string{"gw100-2.2.5"}},
			},
			Threats: []advisory.Threat{{Category: "exploit_status", Details: "No exploitation known.", ProductIDs: []string{"gw100-2.3.0", "gw100-2.2.5"}}},
			References: []advisory.Reference{
				{URL: "https://www.cve.org/CVERecord?id=CVE-2026-21001", Summary: "CVE-2026-21001"},
			},
		}, {
			IDs:                []advisory.VulnID{{System: "GHSA", Text: "GHSA-abcd-1234-wxyz"}},
			Summary:            "The diagnostics page reflects the device name without escaping.",
			CVSS3:              &advisory.CVSS3{Vector: "CVSS:3.1/AV:A/AC:L/PR:L/UI:R/S:C/C:L/I:L/A:N"},
			KnownAffected:      []string{"gw100-2.3.0"},
			Fixed:              []string{"gw100-2.3.1"},
			KnownNotAffected:   []advisory.NotAffected{{ProductID: "gw200-3.0.0", Impact: "GW-200 has no diagnostics page."}},
			UnderInvestigation: nil,
			Remediations: []advisory.Remediation{{Category: advisory.RemediationWorkaround,
				Details: "Disable the diagnostics page in the local console.", ProductIDs: []string{"gw100-2.3.0"}}},
		}},
	}
}

// env is a database with one organization and principals of each role.
type env struct {
	db    *store.DB
	clock *clock.Fake
	org   tenancy.Org
	svc   *advisory.Service
	note  *recorder
	as    map[access.Role]access.Principal
}

func newEnv(t *testing.T, d store.Dialect, c *clock.Fake) *env {
	t.Helper()
	if c == nil {
		c = clock.NewFake(t0)
	}
	ctx := context.Background()
	db := storetest.New(t, d, c)
	ten := tenancy.NewService(db.Tenancy(), c)
	org, _, _, err := ten.Bootstrap(ctx, "acme", "Acme Industrial")
	if err != nil {
		t.Fatal(err)
	}
	e := &env{db: db, clock: c, org: org, note: &recorder{}, as: map[access.Role]access.Principal{}}
	e.svc = advisory.NewService(db.Advisory(), c, advisory.Options{Notifier: e.note, Engine: "test"})
	for _, r := range access.Roles {
		e.as[r] = access.Principal{OrgID: org.ID, OrgSlug: org.Slug, Role: r,
			Actor: access.Actor{Kind: access.ActorToken, ID: "tok-" + string(r), Name: string(r) + "@acme.example"}}
	}
	return e
}

func (e *env) officer() access.Principal { return e.as[access.RoleSecurityOfficer] }

// actions lists the org's audit actions in chain order.
func (e *env) actions(t *testing.T) []string {
	t.Helper()
	var out []string
	err := e.db.Read(context.Background(), func(tx *store.Tx) error {
		return tx.ScanAudit(context.Background(), e.org.ID, func(ev audit.Event) error {
			out = append(out, ev.Action)
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// recorder is a Notifier that remembers what it was told, and fails when
// told to.
type recorder struct {
	mu   sync.Mutex
	msgs []notify.Message
	fail bool
}

func (r *recorder) Notify(_ context.Context, m notify.Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, m)
	if r.fail {
		return errors.New("mail server down")
	}
	return nil
}

func (r *recorder) all() []notify.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]notify.Message(nil), r.msgs...)
}

func wantKind(t *testing.T, err error, k problem.Kind, what string) {
	t.Helper()
	if !problem.Is(err, k) {
		t.Fatalf("%s: got error %v, want kind %d", what, err, k)
	}
}

// decode parses a document as csaf_checker does (plain encoding/json).
func decode(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var doc map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("document is not JSON: %v", err)
	}
	return doc
}

// at walks a decoded document: at(doc, "document", "tracking", "id").
func at(t *testing.T, v any, path ...any) any {
	t.Helper()
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				t.Fatalf("at %v: %q is not in an object", path, k)
			}
			v = m[k]
		case int:
			a, ok := v.([]any)
			if !ok || k >= len(a) {
				t.Fatalf("at %v: no element %d", path, k)
			}
			v = a[k]
		}
	}
	return v
}
