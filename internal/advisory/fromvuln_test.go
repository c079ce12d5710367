package advisory_test

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/steward-iot/steward/internal/advisory"
	"github.com/steward-iot/steward/internal/inventory"
	"github.com/steward-iot/steward/internal/release"
	"github.com/steward-iot/steward/internal/vuln"
	"github.com/steward-iot/steward/internal/vuln/scoring"
)

func TestDraftFromVulnerability(t *testing.T) {
	now := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	eos := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	gw := inventory.Product{ID: "p-gw", Slug: "gw", Name: "GW-100", HardwareID: "gw-hw"}
	old := inventory.Product{ID: "p-old", Slug: "old", Name: "GW-50", HardwareID: "gw50", EndOfSupport: &eos}
	cam := inventory.Product{ID: "p-cam", Slug: "cam", Name: "Cam", HardwareID: "cam-hw"}
	rel := func(id, product, version string, counter int64, sbom bool, fixes ...string) release.Release {
		r := release.Release{ID: id, ProductID: product, Version: version, Counter: counter, Fixes: fixes}
		if sbom {
			r.SBOMArtifact = "sbom-" + id
		}
		return r
	}
	src := advisory.Source{
		Publisher: advisory.Publisher{Name: "Acme", Namespace: "https://acme.example", Category: "vendor"},
		Vulnerability: vuln.Vulnerability{VulnID: "DLA-3008-1", Aliases: []string{"CVE-2022-1271"}, Summary: "gzip: arbitrary-file-write vulnerability",
			KnownExploited: true, Assessment: &vuln.Assessment{CVSS: []scoring.CVSS{
				{Version: "3.1", Vector: "CVSS:3.1/AV:L/AC:L/PR:N/UI:R/S:U/C:H/I:H/A:H", BaseScore: 7.8, Severity: "high"},
				{Version: "4.0", Vector: "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N", BaseScore: 9.3, Severity: "critical"}}}},
		Affected: vuln.Affected{Releases: []vuln.AffectedOwner{{ID: "gw-2"}, {ID: "gw-3"}, {ID: "old-1"}}},
		Products: []inventory.Product{gw, old, cam},
		Releases: []release.Release{
			rel("gw-1", "p-gw", "1.0", 1, true), rel("gw-2", "p-gw", "1.1", 2, true), rel("gw-3", "p-gw", "1.2", 3, true),
			rel("gw-4", "p-gw", "1.3", 4, true, "CVE-2022-1271"), rel("gw-5", "p-gw", "1.4", 5, true), rel("gw-6", "p-gw", "1.5", 6, false),
			rel("old-1", "p-old", "0.9", 1, true),
			rel("cam-1", "p-cam", "2.0", 1, true), rel("cam-2", "p-cam", "2.1", 2, false),
		},
		Now: now,
	}
	d := advisory.DraftFrom(src)
	if len(d.Vulnerabilities) != 1 {
		t.Fatalf("%d vulnerabilities", len(d.Vulnerabilities))
	}
	v := d.Vulnerabilities[0]
	check := func(what string, got, want []string) {
		t.Helper()
		if !slices.Equal(got, want) {
			t.Errorf("%s = %v, want %v", what, got, want)
		}
	}
	check("known affected", v.KnownAffected, []string{"gw-1.1", "gw-1.2", "old-0.9"})
	check("fixed", v.Fixed, []string{"gw-1.3", "gw-1.4"})
	check("under investigation", v.UnderInvestigation, []string{"gw-1.5", "cam-2.1"}) // no SBOM, no claim
	var na []string
	for _, n := range v.KnownNotAffected {
		na = append(na, n.ProductID+":"+n.Justification)
	}
	check("not affected", na, []string{"gw-1.0:vulnerable_code_not_present", "cam-2.0:component_not_present"})
	if v.CVE != "CVE-2022-1271" || len(v.IDs) != 1 || v.IDs[0].Text != "DLA-3008-1" {
		t.Errorf("ids: %q %+v", v.CVE, v.IDs)
	}
	if v.CVSS3 == nil || v.CVSS3.Vector != "CVSS:3.1/AV:L/AC:L/PR:N/UI:R/S:U/C:H/I:H/A:H" || v.CVSS4 == "" {
		t.Errorf("scores: %+v %q", v.CVSS3, v.CVSS4)
	}
	if len(v.Remediations) != 2 || v.Remediations[0].Category != advisory.RemediationVendorFix ||
		!slices.Equal(v.Remediations[0].ProductIDs, []string{"gw-1.1", "gw-1.2"}) ||
		v.Remediations[1].Category != advisory.RemediationNoFixPlanned {
		t.Errorf("remediations: %+v", v.Remediations)
	}
	if len(v.Threats) != 1 || v.Threats[0].Details != "This vulnerability is known to be exploited." {
		t.Errorf("threats: %+v", v.Threats)
	}
	// What it drafts generates schema-valid documents in both profiles.
	n, err := d.Normalize()
	if err != nil {
		t.Fatalf("the drafted advisory does not validate: %v", err)
	}
	for _, prof := range []advisory.Profile{advisory.ProfileSecurityAdvisory, advisory.ProfileVEX} {
		n.TrackingID = "ACME-2026-0001"
		doc, err := advisory.Generate(n, advisory.Tracking{Status: "final", Version: 1, InitialReleaseDate: now, CurrentReleaseDate: now,
			Revisions: []advisory.Revision{{Number: 1, Date: now, Summary: "Initial release"}}, Engine: "test"}, prof)
		if err != nil {
			t.Fatalf("%s: %v", prof, err)
		}
		var parsed map[string]any
		if err := json.Unmarshal(doc, &parsed); err != nil {
			t.Fatal(err)
		}
	}
}
