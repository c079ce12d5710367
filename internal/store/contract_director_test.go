package store_test

import (
	"context"
	"errors"
	"testing"

	"github.com/steward-iot/steward/internal/clock"
	"github.com/steward-iot/steward/internal/id"
	"github.com/steward-iot/steward/internal/problem"
	"github.com/steward-iot/steward/internal/release"
	"github.com/steward-iot/steward/internal/rollout"
	"github.com/steward-iot/steward/internal/store"
	"github.com/steward-iot/steward/internal/store/storetest"
	"github.com/steward-iot/steward/internal/tenancy"
	"github.com/steward-iot/steward/internal/trust"
)

func TestContractDirector(t *testing.T) {
	for _, d := range storetest.Dialects(t) {
		t.Run(string(d), func(t *testing.T) {
			t.Run("Director", func(t *testing.T) { testDirector(t, storetest.New(t, d, clock.NewFake(t0))) })
			t.Run("Assignments", func(t *testing.T) { testAssignments(t, storetest.New(t, d, clock.NewFake(t0))) })
		})
	}
}

func testDirector(t *testing.T, db *store.DB) {
	ctx := context.Background()
	var a, b tenancy.Org
	var devID string
	write(t, db, func(tx *store.Tx) error {
		a, b = newOrg(t, tx, "a"), newOrg(t, tx, "b")
		devID = newDevice(t, tx, a, newProduct(t, tx, a, "gw"), "S1", "active").ID
		return nil
	})
	keys := []trust.StoredKey{{Role: trust.RoleTargets, KeyID: "k1", PKCS8: []byte{0x30, 0x00, 0xff}}}
	if err := db.SaveDirectorKeys(ctx, a.ID, keys); err != nil {
		t.Fatal(err)
	}
	if err := db.SaveDirectorKeys(ctx, a.ID, []trust.StoredKey{{Role: trust.RoleTargets, KeyID: "k2", PKCS8: []byte{1}}}); err == nil {
		t.Fatal("a second set of director keys was accepted")
	}
	if got, err := db.DirectorKeys(ctx, a.ID); err != nil || len(got) != 1 || got[0].KeyID != "k1" || string(got[0].PKCS8) != "\x30\x00\xff" {
		t.Fatalf("keys: %+v %v", got, err)
	}
	if got, err := db.DirectorKeys(ctx, b.ID); err != nil || len(got) != 0 {
		t.Fatalf("another org's keys: %+v %v", got, err)
	}

	roots := db.DirectorRoots(a.ID)
	if err := roots.Put(ctx, "1.root.json", []byte("r1")); err != nil {
		t.Fatal(err)
	}
	if _, err := db.DirectorRoots(b.ID).Get(ctx, "1.root.json"); !errors.Is(err, trust.ErrNotFound) {
		t.Fatalf("another org's root: %v", err)
	}
	if _, err := db.TUFMeta(a.ID).Get(ctx, "1.root.json"); !errors.Is(err, trust.ErrNotFound) {
		t.Fatalf("director root leaked into the image repository: %v", err)
	}

	// Compare-and-swap on the timestamp.
	if m, err := db.DeviceMeta(ctx, a.ID, devID); err != nil || m.Timestamp != nil {
		t.Fatalf("before any: %+v %v", m, err)
	}
	m1 := trust.DeviceMeta{Targets: []byte("t1"), Snapshot: []byte("s1"), Timestamp: []byte("ts1")}
	if err := db.SaveDeviceMeta(ctx, a.ID, devID, trust.DeviceMeta{}, m1); err != nil {
		t.Fatal(err)
	}
	m2 := trust.DeviceMeta{Targets: []byte("t2"), Snapshot: []byte("s2"), Timestamp: []byte("ts2")}
	if err := db.SaveDeviceMeta(ctx, a.ID, devID, trust.DeviceMeta{}, m2); !errors.Is(err, trust.ErrDirectorConflict) {
		t.Fatalf("insert over existing: %v", err)
	}
	if err := db.SaveDeviceMeta(ctx, a.ID, devID, m2, m2); !errors.Is(err, trust.ErrDirectorConflict) {
		t.Fatalf("stale prev: %v", err)
	}
	if err := db.SaveDeviceMeta(ctx, a.ID, devID, m1, m2); err != nil {
		t.Fatal(err)
	}
	if m, err := db.DeviceMeta(ctx, a.ID, devID); err != nil || string(m.Targets) != "t2" || string(m.Timestamp) != "ts2" {
		t.Fatalf("after swap: %+v %v", m, err)
	}
	if m, err := db.DeviceMeta(ctx, b.ID, devID); err != nil || m.Timestamp != nil {
		t.Fatalf("another org reads the device's metadata: %+v %v", m, err)
	}
}

func testAssignments(t *testing.T, db *store.DB) {
	ctx := context.Background()
	write(t, db, func(tx *store.Tx) error {
		a, b := newOrg(t, tx, "a"), newOrg(t, tx, "b")
		p := newProduct(t, tx, a, "gw")
		dev := newDevice(t, tx, a, p, "S1", "active")
		art := release.Artifact{ID: id.New(), OrgID: a.ID, Name: "fw.img", SHA256: "aa", SHA512: "bb", Size: 1, CreatedAt: clock.Norm(t0)}
		if err := tx.InsertArtifact(ctx, art); err != nil {
			return err
		}
		var rels []release.Release
		for i, v := range []string{"1.0", "1.1"} {
			r := release.Release{ID: id.New(), OrgID: a.ID, ProductID: p.ID, Product: p.Slug, Version: v, Counter: int64(i + 1),
				Fixes: []string{}, Artifacts: []release.ReleaseArtifact{{Artifact: art, Kind: release.KindFull}}, CreatedAt: clock.Norm(t0)}
			if err := tx.InsertRelease(ctx, r, nil); err != nil {
				return err
			}
			rels = append(rels, r)
		}
		if _, err := tx.AssignmentOf(ctx, a.ID, dev.ID); !problem.Is(err, problem.KindNotFound) {
			t.Fatalf("before: %v", err)
		}
		for _, r := range rels {
			if err := tx.PutAssignment(ctx, a.ID, rollout.Assignment{DeviceID: dev.ID, ReleaseID: r.ID, AssignedBy: "me", AssignedAt: clock.Norm(t0)}); err != nil {
				return err
			}
		}
		got, err := tx.AssignmentOf(ctx, a.ID, dev.ID)
		if err != nil || got.ReleaseID != rels[1].ID || got.AssignedBy != "me" || !got.AssignedAt.Equal(clock.Norm(t0)) {
			t.Fatalf("replaced assignment: %+v %v", got, err)
		}
		if _, err := tx.AssignmentOf(ctx, b.ID, dev.ID); !problem.Is(err, problem.KindNotFound) {
			t.Fatalf("another org: %v", err)
		}
		if ok, err := tx.DeleteAssignment(ctx, b.ID, dev.ID); err != nil || ok {
			t.Fatalf("another org deleted it: %v %v", ok, err)
		}
		if ok, err := tx.DeleteAssignment(ctx, a.ID, dev.ID); err != nil || !ok {
			t.Fatalf("delete: %v %v", ok, err)
		}
		if ok, err := tx.DeleteAssignment(ctx, a.ID, dev.ID); err != nil || ok {
			t.Fatalf("second delete: %v %v", ok, err)
		}
		return nil
	})
}
