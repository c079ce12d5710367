package vuln_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/steward-iot/steward/internal/access"
	"github.com/steward-iot/steward/internal/blob"
	"github.com/steward-iot/steward/internal/clock"
	"github.com/steward-iot/steward/internal/id"
	"github.com/steward-iot/steward/internal/inventory"
	"github.com/steward-iot/steward/internal/problem"
	"github.com/steward-iot/steward/internal/release"
	"github.com/steward-iot/steward/internal/store"
	"github.com/steward-iot/steward/internal/store/storetest"
	"github.com/steward-iot/steward/internal/tenancy"
	"github.com/steward-iot/steward/internal/vuln"
)

func shared(t *testing.T, parts ...string) []byte {
	t.Helper()
	dir, _ := os.Getwd()
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		if filepath.Dir(dir) == dir {
			t.Fatal("no go.mod above the test")
		}
		dir = filepath.Dir(dir)
	}
	b, err := os.ReadFile(filepath.Join(append([]string{dir, "..", "shared", "testdata", "vulnmatch"}, parts...)...))
	if err != nil {
		t.Fatalf("shared test data is expected beside the repository (../shared): %v", err)
	}
	return b
}

// TestAffectedFromRealData imports real OSV records and matches them
// against releases built from real SBOMs and a device that reports the
// Debian 9 components: source packages, distro releases and dpkg ordering
// must all be right, and near misses must stay out.
func TestAffectedFromRealData(t *testing.T) {
	for _, d := range storetest.Dialects(t) {
		t.Run(string(d), func(t *testing.T) { testAffected(t, d) })
	}
}

func testAffected(t *testing.T, d store.Dialect) {
	ctx := context.Background()
	db := storetest.New(t, d, clock.Real)
	ten := tenancy.NewService(db.Tenancy(), nil)
	_, secret, _, err := ten.Bootstrap(ctx, "acme", "Acme")
	if err != nil {
		t.Fatal(err)
	}
	p, _ := ten.Authenticate(ctx, secret)
	blobs, _ := blob.NewDir(t.TempDir())
	inv := inventory.NewService(db.Inventory(), nil)
	rel := release.NewService(db.Release(), blobs, nil, 0)
	vs := vuln.NewService(db.Vuln(), nil)

	// Two products, each released from a real SBOM.
	releases := map[string]string{
		"deb9":  "ibmcom-mb-jenkins-slave.debian-9.5.trivy.spdx.json",
		"u2204": "balenalib-beaglebone-black-ubuntu-node.ubuntu-22.04.trivy.spdx.json",
	}
	var debRelease release.Release
	for slug, file := range releases {
		if _, err := inv.CreateProduct(ctx, p, inventory.CreateProductRequest{Slug: slug, Name: slug, HardwareID: slug,
			Capability: inventory.CapabilityAB, LinkClass: "ethernet"}); err != nil {
			t.Fatal(err)
		}
		img, _, err := rel.Upload(ctx, p, slug+".img", strings.NewReader("image "+slug), "")
		if err != nil {
			t.Fatal(err)
		}
		sb, _, err := rel.Upload(ctx, p, slug+".sbom.json", bytes.NewReader(shared(t, "sbom", file)), "")
		if err != nil {
			t.Fatal(err)
		}
		r, err := rel.CreateRelease(ctx, p, release.CreateReleaseRequest{Product: slug, Version: "1.0.0",
			Artifacts: []release.ArtifactRef{{ID: img.ID}}, SBOM: sb.ID})
		if err != nil {
			t.Fatal(err)
		}
		if slug == "deb9" {
			debRelease = r
		}
	}
	// A device reporting the Debian 9 release's components as purls.
	comps, err := rel.Components(ctx, p, debRelease.ID)
	if err != nil {
		t.Fatal(err)
	}
	devID := id.New()
	err = db.Write(ctx, func(tx *store.Tx) error {
		prod, err := tx.ProductBySlug(ctx, p.OrgID, "deb9")
		if err != nil {
			return err
		}
		if err := tx.InsertDevice(ctx, inventory.Device{ID: devID, OrgID: p.OrgID, ProductID: prod.ID, Serial: "DEV-1", KeyID: "k",
			Algorithm: "ed25519", PublicKeyPEM: "x", Status: "active", EnrolledVia: "test", CreatedAt: clock.Real.Now(), StatusChangedAt: clock.Real.Now()}); err != nil {
			return err
		}
		var dc []inventory.Component
		for _, c := range comps {
			if strings.HasPrefix(c.Purl, "pkg:deb/") {
				dc = append(dc, inventory.Component{Purl: c.Purl + "&upstream=" + c.SourceName, Version: c.Version})
			}
		}
		return tx.RecordSoftware(ctx, inventory.Software{DeviceID: devID, Version: "1.0.0", VersionKey: "1", Hash: "h", Components: dc, At: clock.Real.Now()})
	})
	if err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		record       string
		releases     []string // labels of affected releases
		devices      int
		mustInclude  string // a package that must be named
		fixedContain string
	}{
		{"DLA-3008-1.json", []string{"deb9 1.0.0"}, 1, "openssl", "deb9u"},
		{"DLA-3012-1.json", []string{"deb9 1.0.0"}, 1, "libxml2", ""},
		{"USN-5710-1.json", []string{"u2204 1.0.0"}, 0, "openssl", ""},
		{"USN-5570-1.json", nil, 0, "", ""},            // no 22.04 entry; Debian device is not Ubuntu
		{"ALPINE-CVE-2025-26519.json", nil, 0, "", ""}, // no Alpine release here
	}
	for _, c := range cases {
		v, created, err := vs.ImportOSV(ctx, p, shared(t, "osv", c.record))
		if err != nil || !created {
			t.Fatalf("import %s: %v %v", c.record, created, err)
		}
		a, err := vs.Affected(ctx, p, v.VulnID)
		if err != nil {
			t.Fatal(err)
		}
		var labels []string
		for _, r := range a.Releases {
			labels = append(labels, r.Label)
		}
		if strings.Join(labels, ",") != strings.Join(c.releases, ",") || a.DeviceCount != c.devices {
			t.Fatalf("%s: releases %v devices %d; want %v and %d", c.record, labels, a.DeviceCount, c.releases, c.devices)
		}
		if c.mustInclude != "" {
			found := false
			for _, o := range append(a.Releases, a.Devices...) {
				for _, comp := range o.Components {
					found = found || comp.Package == c.mustInclude && strings.Contains(comp.Fixed, c.fixedContain)
				}
			}
			if !found {
				t.Fatalf("%s: no affected component of %s with a fix like %q: %+v", c.record, c.mustInclude, c.fixedContain, a)
			}
		}
	}
	// Importing the same record again updates it; garbage is refused.
	if _, created, err := vs.ImportOSV(ctx, p, shared(t, "osv", "DLA-3008-1.json")); err != nil || created {
		t.Fatalf("re-import: created=%v %v", created, err)
	}
	if _, _, err := vs.ImportOSV(ctx, p, []byte(`{"summary":"no id"}`)); !problem.Is(err, problem.KindInvalid) {
		t.Fatalf("record without id: %v", err)
	}
	auditor := p
	auditor.Role = access.RoleAuditor
	if _, _, err := vs.ImportOSV(ctx, auditor, shared(t, "osv", "DLA-3012-1.json")); !problem.Is(err, problem.KindForbidden) {
		t.Fatalf("auditor import: %v", err)
	}
}
