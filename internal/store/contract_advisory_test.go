package store_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/steward-iot/steward/internal/access"
	"github.com/steward-iot/steward/internal/advisory"
	"github.com/steward-iot/steward/internal/clock"
	"github.com/steward-iot/steward/internal/id"
	"github.com/steward-iot/steward/internal/problem"
	"github.com/steward-iot/steward/internal/store"
	"github.com/steward-iot/steward/internal/store/storetest"
	"github.com/steward-iot/steward/internal/tenancy"
)

func TestContractAdvisories(t *testing.T) {
	tests := []struct {
		name string
		fn   func(t *testing.T, db *store.DB)
	}{
		{"Advisories", testAdvisories},
		{"TrackingNumbers", testTrackingNumbers},
		{"AdvisoryVersions", testAdvisoryVersions},
		{"SigningKeys", testSigningKeys},
	}
	for _, d := range storetest.Dialects(t) {
		t.Run(string(d), func(t *testing.T) {
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					tc.fn(t, storetest.New(t, d, clock.NewFake(t0)))
				})
			}
		})
	}
}

func newAdvisory(org tenancy.Org, trackingID string) advisory.Advisory {
	d := advisory.Draft{TrackingID: trackingID, Title: "Title " + trackingID, TLP: "WHITE", Summary: "s",
		Products: []advisory.Product{{ID: "p1", Vendor: "V", Name: "N", Version: "1"}}}
	return advisory.Advisory{ID: id.New(), OrgID: org.ID, TrackingID: trackingID, FileStem: advisory.FileStem(trackingID), Title: d.Title,
		TLP: d.TLP, Status: advisory.StatusDraft, Pending: true, Draft: d, CreatedAt: clock.Norm(t0), UpdatedAt: clock.Norm(t0)}
}

func testAdvisories(t *testing.T, db *store.DB) {
	ctx := context.Background()
	var a, b tenancy.Org
	var x, y advisory.Advisory
	write(t, db, func(tx *store.Tx) error {
		a, b = newOrg(t, tx, "a"), newOrg(t, tx, "b")
		x, y = newAdvisory(a, "ACME-1"), newAdvisory(a, "ACME-2")
		for _, adv := range []advisory.Advisory{x, y, newAdvisory(b, "ACME-1")} { // same id in another org is fine
			if err := tx.InsertAdvisory(ctx, adv); err != nil {
				t.Fatal(err)
			}
		}
		return nil
	})
	for _, dup := range []string{"ACME-1", "acme-1"} { // same tracking id, same file name
		err := db.Write(ctx, func(tx *store.Tx) error { return tx.InsertAdvisory(ctx, newAdvisory(a, dup)) })
		wantKind(t, err, problem.KindConflict, "duplicate "+dup)
	}
	read(t, db, func(tx *store.Tx) error {
		for _, ref := range []string{x.ID, "ACME-1", "acme-1"} {
			got, err := tx.AdvisoryByID(ctx, a.ID, ref)
			if err != nil || got.ID != x.ID || got.FileStem != "acme-1" || got.Draft.Products[0].ID != "p1" || !got.Pending ||
				!got.CreatedAt.Equal(clock.Norm(t0)) || got.InitialReleaseDate != nil || got.Status != advisory.StatusDraft {
				t.Fatalf("AdvisoryByID(%s) = %+v, %v", ref, got, err)
			}
		}
		_, err := tx.AdvisoryByID(ctx, b.ID, x.ID)
		wantKind(t, err, problem.KindNotFound, "advisory through another org")
		page, err := tx.ListAdvisories(ctx, a.ID, "", 1)
		if err != nil || len(page) != 1 || page[0].ID != x.ID {
			t.Fatalf("ListAdvisories page 1: %v %v", page, err)
		}
		page, err = tx.ListAdvisories(ctx, a.ID, x.ID, 10)
		if err != nil || len(page) != 1 || page[0].ID != y.ID {
			t.Fatalf("ListAdvisories page 2: %v %v", page, err)
		}
		return nil
	})

	// UpdateAdvisory succeeds only from the version it read.
	rel := clock.Norm(t0.Add(time.Hour))
	x.Status, x.Version, x.Pending, x.InitialReleaseDate, x.CurrentReleaseDate, x.Title = advisory.StatusPublished, 1, false, &rel, &rel, "New"
	write(t, db, func(tx *store.Tx) error { return tx.UpdateAdvisory(ctx, x, 0) })
	err := db.Write(ctx, func(tx *store.Tx) error { return tx.UpdateAdvisory(ctx, x, 0) })
	wantKind(t, err, problem.KindNotFound, "update from a stale version")
	y.TrackingID, y.FileStem = "ACME-1", "acme-1"
	err = db.Write(ctx, func(tx *store.Tx) error { return tx.UpdateAdvisory(ctx, y, 0) })
	wantKind(t, err, problem.KindConflict, "rename onto another advisory")
	read(t, db, func(tx *store.Tx) error {
		got, err := tx.AdvisoryByID(ctx, a.ID, x.ID)
		if err != nil || got.Version != 1 || got.Pending || got.Title != "New" || !got.InitialReleaseDate.Equal(rel) ||
			!got.CurrentReleaseDate.Equal(rel) || got.Status != advisory.StatusPublished {
			t.Fatalf("after update: %+v %v", got, err)
		}
		return nil
	})
}

func testTrackingNumbers(t *testing.T, db *store.DB) {
	ctx := context.Background()
	var a, b tenancy.Org
	write(t, db, func(tx *store.Tx) error {
		a, b = newOrg(t, tx, "a"), newOrg(t, tx, "b")
		return nil
	})
	next := func(org tenancy.Org, year int) int {
		var n int
		write(t, db, func(tx *store.Tx) error {
			var err error
			n, err = tx.NextTrackingNumber(ctx, org.ID, year)
			return err
		})
		return n
	}
	got := []int{next(a, 2026), next(a, 2026), next(b, 2026), next(a, 2027), next(a, 2026)}
	if !slices.Equal(got, []int{1, 2, 1, 1, 3}) {
		t.Fatalf("tracking numbers %v", got)
	}
	// A rolled-back transaction gives its number back.
	_ = db.Write(ctx, func(tx *store.Tx) error {
		_, _ = tx.NextTrackingNumber(ctx, a.ID, 2026)
		return problem.Conflict("roll back")
	})
	if n := next(a, 2026); n != 4 {
		t.Fatalf("after rollback: %d", n)
	}
}

func version(adv advisory.Advisory, n int, tlp string, at time.Time, initial time.Time) advisory.Version {
	d := adv.Draft
	v := advisory.Version{AdvisoryID: adv.ID, OrgID: adv.OrgID, Version: n, TrackingID: adv.TrackingID, Title: adv.Title, TLP: tlp,
		Summary: "v" + string(rune('0'+n)), Severity: "High", ReleasedAt: clock.Norm(at), InitialReleaseDate: clock.Norm(initial),
		PublishedBy: access.Actor{Kind: access.ActorToken, ID: "tok", Name: "officer@acme.example"}, KeyFingerprint: "ABCD", Draft: &d}
	for _, p := range advisory.Profiles {
		name := adv.FileStem + ".json"
		if p == advisory.ProfileVEX {
			name = adv.FileStem + "-vex.json"
		}
		data := []byte(`{"v":` + string(rune('0'+n)) + `,"p":"` + string(p) + `"}`)
		v.Documents = append(v.Documents, advisory.Document{Profile: p, TrackingID: adv.TrackingID, FileName: name, Data: data,
			SHA256: "sha256-" + name, SHA512: "sha512-" + name, Signature: "sig " + name})
	}
	return v
}

func testAdvisoryVersions(t *testing.T, db *store.DB) {
	ctx := context.Background()
	var a, b tenancy.Org
	var x, y advisory.Advisory
	t1, t2 := t0.Add(time.Hour), t0.Add(2*time.Hour)
	write(t, db, func(tx *store.Tx) error {
		a, b = newOrg(t, tx, "a"), newOrg(t, tx, "b")
		x, y = newAdvisory(a, "ACME-1"), newAdvisory(a, "ACME-2")
		for _, adv := range []advisory.Advisory{x, y} {
			if err := tx.InsertAdvisory(ctx, adv); err != nil {
				return err
			}
		}
		// x: versions 1 and 2 (WHITE); y: version 1, AMBER.
		for _, v := range []advisory.Version{version(x, 1, "WHITE", t0, t0), version(x, 2, "WHITE", t2, t0), version(y, 1, "AMBER", t1, t1)} {
			if err := tx.InsertAdvisoryVersion(ctx, v); err != nil {
				return err
			}
		}
		x.Version, y.Version = 2, 1
		if err := tx.UpdateAdvisory(ctx, x, 0); err != nil {
			return err
		}
		return tx.UpdateAdvisory(ctx, y, 0)
	})
	err := db.Write(ctx, func(tx *store.Tx) error { return tx.InsertAdvisoryVersion(ctx, version(x, 2, "WHITE", t2, t0)) })
	wantKind(t, err, problem.KindConflict, "a version twice")

	read(t, db, func(tx *store.Tx) error {
		vs, err := tx.AdvisoryVersions(ctx, a.ID, x.ID)
		if err != nil || len(vs) != 2 || vs[0].Version != 1 || vs[1].Version != 2 || vs[0].Draft != nil ||
			vs[1].Summary != "v2" || vs[1].Severity != "High" || !vs[1].ReleasedAt.Equal(clock.Norm(t2)) || !vs[1].InitialReleaseDate.Equal(clock.Norm(t0)) ||
			vs[0].PublishedBy.Name != "officer@acme.example" || len(vs[1].Documents) != 2 {
			t.Fatalf("AdvisoryVersions: %+v %v", vs, err)
		}
		doc := vs[1].Documents[1]
		if doc.Profile != advisory.ProfileVEX || doc.Data != nil || doc.Path != "white/2026/acme-1-vex.json" || doc.SHA256 != "sha256-acme-1-vex.json" ||
			doc.Signature != "sig acme-1-vex.json" || doc.KeyFingerprint != "ABCD" || doc.Version != 2 {
			t.Fatalf("document metadata: %+v", doc)
		}
		if vs, err := tx.AdvisoryVersions(ctx, b.ID, x.ID); err != nil || len(vs) != 0 {
			t.Fatalf("versions through another org: %v %v", vs, err)
		}
		v, err := tx.AdvisoryVersion(ctx, a.ID, x.ID, 1)
		if err != nil || v.Draft == nil || v.Draft.TrackingID != "ACME-1" || len(v.Documents) != 2 || v.Documents[0].Version != 1 {
			t.Fatalf("AdvisoryVersion: %+v %v", v, err)
		}
		_, err = tx.AdvisoryVersion(ctx, a.ID, x.ID, 3)
		wantKind(t, err, problem.KindNotFound, "missing version")

		d, err := tx.AdvisoryDocument(ctx, a.ID, x.ID, 1, advisory.ProfileSecurityAdvisory)
		if err != nil || string(d.Data) != `{"v":1,"p":"csaf_security_advisory"}` || d.FileName != "acme-1.json" || d.TLP != "WHITE" {
			t.Fatalf("AdvisoryDocument: %+v %v", d, err)
		}
		_, err = tx.AdvisoryDocument(ctx, b.ID, x.ID, 1, advisory.ProfileSecurityAdvisory)
		wantKind(t, err, problem.KindNotFound, "document through another org")

		// Published: the latest version of each advisory with the label.
		docs, err := tx.PublishedDocuments(ctx, a.ID, "WHITE")
		if err != nil || len(docs) != 2 || docs[0].Version != 2 || docs[1].Version != 2 || docs[0].Data != nil {
			t.Fatalf("PublishedDocuments WHITE: %+v %v", docs, err)
		}
		if docs, err := tx.PublishedDocuments(ctx, a.ID, "AMBER"); err != nil || len(docs) != 2 || docs[0].AdvisoryID != y.ID {
			t.Fatalf("PublishedDocuments AMBER: %+v %v", docs, err)
		}
		if docs, err := tx.PublishedDocuments(ctx, b.ID, "WHITE"); err != nil || len(docs) != 0 {
			t.Fatalf("PublishedDocuments of another org: %+v %v", docs, err)
		}
		d, err = tx.PublishedDocument(ctx, a.ID, "WHITE", "acme-1-vex.json")
		if err != nil || d.Version != 2 || string(d.Data) != `{"v":2,"p":"csaf_vex"}` {
			t.Fatalf("PublishedDocument: %+v %v", d, err)
		}
		_, err = tx.PublishedDocument(ctx, a.ID, "WHITE", "acme-2.json")
		wantKind(t, err, problem.KindNotFound, "AMBER document as WHITE")
		_, err = tx.PublishedDocument(ctx, b.ID, "WHITE", "acme-1.json")
		wantKind(t, err, problem.KindNotFound, "published document through another org")
		return nil
	})
}

func testSigningKeys(t *testing.T, db *store.DB) {
	ctx := context.Background()
	var a, b tenancy.Org
	k1 := advisory.SigningKey{Fingerprint: "AAAA", PublicKey: "pub1", Private: "priv1", CreatedAt: clock.Norm(t0)}
	k2 := advisory.SigningKey{Fingerprint: "BBBB", PublicKey: "pub2", Private: "priv2", CreatedAt: clock.Norm(t0.Add(time.Hour))}
	write(t, db, func(tx *store.Tx) error {
		a, b = newOrg(t, tx, "a"), newOrg(t, tx, "b")
		k1.OrgID, k2.OrgID = a.ID, a.ID
		_, err := tx.ActiveSigningKey(ctx, a.ID)
		wantKind(t, err, problem.KindNotFound, "no key yet")
		return tx.InsertSigningKey(ctx, k1)
	})
	err := db.Write(ctx, func(tx *store.Tx) error { return tx.InsertSigningKey(ctx, k2) })
	wantKind(t, err, problem.KindConflict, "a second active key")
	write(t, db, func(tx *store.Tx) error {
		if err := tx.RetireSigningKey(ctx, a.ID, "AAAA", t0.Add(time.Hour)); err != nil {
			return err
		}
		return tx.InsertSigningKey(ctx, k2)
	})
	err = db.Write(ctx, func(tx *store.Tx) error { return tx.RetireSigningKey(ctx, a.ID, "AAAA", t0) })
	wantKind(t, err, problem.KindNotFound, "retiring a retired key")
	read(t, db, func(tx *store.Tx) error {
		k, err := tx.ActiveSigningKey(ctx, a.ID)
		if err != nil || k.Fingerprint != "BBBB" || k.Private != "priv2" || k.PublicKey != "pub2" || k.RetiredAt != nil {
			t.Fatalf("ActiveSigningKey: %+v %v", k, err)
		}
		_, err = tx.ActiveSigningKey(ctx, b.ID)
		wantKind(t, err, problem.KindNotFound, "key of another org")
		keys, err := tx.SigningKeys(ctx, a.ID)
		if err != nil || len(keys) != 2 || keys[0].Fingerprint != "AAAA" || keys[0].RetiredAt == nil ||
			!keys[0].RetiredAt.Equal(clock.Norm(t0.Add(time.Hour))) || keys[0].Private != "" || keys[1].Fingerprint != "BBBB" {
			t.Fatalf("SigningKeys: %+v %v", keys, err)
		}
		if keys, err := tx.SigningKeys(ctx, b.ID); err != nil || len(keys) != 0 {
			t.Fatalf("SigningKeys of another org: %v %v", keys, err)
		}
		return nil
	})
}
