package store_test

import (
	"context"
	"testing"

	"github.com/steward-iot/steward/internal/clock"
	"github.com/steward-iot/steward/internal/id"
	"github.com/steward-iot/steward/internal/release"
	"github.com/steward-iot/steward/internal/store"
	"github.com/steward-iot/steward/internal/store/storetest"
	"github.com/steward-iot/steward/internal/suit"
	"github.com/steward-iot/steward/internal/tenancy"
)

func TestContractSUIT(t *testing.T) {
	for _, d := range storetest.Dialects(t) {
		t.Run(string(d), func(t *testing.T) {
			db := storetest.New(t, d, clock.NewFake(t0))
			ctx := context.Background()
			var a, b tenancy.Org
			var rel release.Release
			write(t, db, func(tx *store.Tx) error {
				a, b = newOrg(t, tx, "a"), newOrg(t, tx, "b")
				p := newProduct(t, tx, a, "sensor")
				art := release.Artifact{ID: id.New(), OrgID: a.ID, Name: "fw.bin", SHA256: "aa", SHA512: "bb", Size: 1, CreatedAt: clock.Norm(t0)}
				if err := tx.InsertArtifact(ctx, art); err != nil {
					return err
				}
				rel = release.Release{ID: id.New(), OrgID: a.ID, ProductID: p.ID, Product: p.Slug, Version: "1", Counter: 1,
					Fixes: []string{}, Artifacts: []release.ReleaseArtifact{{Artifact: art, Kind: release.KindFull}}, CreatedAt: clock.Norm(t0)}
				return tx.InsertRelease(ctx, rel, nil)
			})
			if k, err := db.SUITKey(ctx, a.ID); err != nil || k != nil {
				t.Fatalf("before: %v %v", k, err)
			}
			if err := db.SaveSUITKey(ctx, a.ID, []byte{0x30, 0xff, 0x00}); err != nil {
				t.Fatal(err)
			}
			if err := db.SaveSUITKey(ctx, a.ID, []byte{1}); err == nil {
				t.Fatal("a second key replaced the first")
			}
			if k, err := db.SUITKey(ctx, a.ID); err != nil || string(k) != "\x30\xff\x00" {
				t.Fatalf("key: %x %v", k, err)
			}
			if k, err := db.SUITKey(ctx, b.ID); err != nil || k != nil {
				t.Fatalf("another org's key: %x %v", k, err)
			}
			env := suit.Envelope{ReleaseID: rel.ID, ArtifactID: rel.Artifacts[0].ID, Envelope: []byte{0xd8, 0x6b, 0x00, 0xff}}
			for range 2 { // a re-emitted envelope replaces the old one
				if err := db.PutEnvelope(ctx, a.ID, env); err != nil {
					t.Fatal(err)
				}
			}
			got, err := db.Envelopes(ctx, a.ID, rel.ID)
			if err != nil || len(got) != 1 || string(got[0].Envelope) != string(env.Envelope) {
				t.Fatalf("envelopes: %+v %v", got, err)
			}
			if got, err := db.Envelopes(ctx, b.ID, rel.ID); err != nil || len(got) != 0 {
				t.Fatalf("another org's envelopes: %+v %v", got, err)
			}
		})
	}
}
