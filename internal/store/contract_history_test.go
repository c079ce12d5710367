package store_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/steward-iot/steward/agent/proto"
	"github.com/steward-iot/steward/internal/access"
	"github.com/steward-iot/steward/internal/clock"
	"github.com/steward-iot/steward/internal/id"
	"github.com/steward-iot/steward/internal/inventory"
	"github.com/steward-iot/steward/internal/problem"
	"github.com/steward-iot/steward/internal/release"
	"github.com/steward-iot/steward/internal/rollout"
	"github.com/steward-iot/steward/internal/store"
	"github.com/steward-iot/steward/internal/store/storetest"
	"github.com/steward-iot/steward/internal/tenancy"
)

func TestContractUpdateHistory(t *testing.T) {
	for _, d := range storetest.Dialects(t) {
		t.Run(string(d), func(t *testing.T) {
			t.Run("Store", func(t *testing.T) { testHistoryStore(t, storetest.New(t, d, clock.NewFake(t0))) })
			t.Run("Service", func(t *testing.T) { testHistoryService(t, storetest.New(t, d, clock.NewFake(t0))) })
		})
	}
}

type historyFixture struct {
	a, b       tenancy.Org
	dev, other inventory.Device // other is in org b
	rel        release.Release  // org a, the device's product
	foreign    release.Release  // org b
	otherProd  release.Release  // org a, another product
}

func newRel(t *testing.T, tx *store.Tx, org tenancy.Org, p inventory.Product, version string) release.Release {
	t.Helper()
	art := release.Artifact{ID: id.New(), OrgID: org.ID, Name: "fw.img", SHA256: "aa" + version, SHA512: "bb", Size: 1, CreatedAt: clock.Norm(t0)}
	if err := tx.InsertArtifact(context.Background(), art); err != nil {
		t.Fatal(err)
	}
	r := release.Release{ID: id.New(), OrgID: org.ID, ProductID: p.ID, Product: p.Slug, Version: version, Counter: 1,
		Fixes: []string{}, Artifacts: []release.ReleaseArtifact{{Artifact: art, Kind: release.KindFull}}, CreatedAt: clock.Norm(t0)}
	if err := tx.InsertRelease(context.Background(), r, nil); err != nil {
		t.Fatal(err)
	}
	return r
}

func historySetup(t *testing.T, db *store.DB) historyFixture {
	var f historyFixture
	write(t, db, func(tx *store.Tx) error {
		f.a, f.b = newOrg(t, tx, "a"), newOrg(t, tx, "b")
		pa, pb, pc := newProduct(t, tx, f.a, "gw"), newProduct(t, tx, f.b, "gw"), newProduct(t, tx, f.a, "cam")
		f.dev, f.other = newDevice(t, tx, f.a, pa, "S1", "active"), newDevice(t, tx, f.b, pb, "S2", "active")
		f.rel, f.foreign, f.otherProd = newRel(t, tx, f.a, pa, "1.0"), newRel(t, tx, f.b, pb, "1.0"), newRel(t, tx, f.a, pc, "2.0")
		return nil
	})
	return f
}

func testHistoryStore(t *testing.T, db *store.DB) {
	ctx := context.Background()
	f := historySetup(t, db)
	n := int64(10)
	ev := func(report, step string) rollout.UpdateEvent {
		return rollout.UpdateEvent{ID: id.New(), DeviceID: f.dev.ID, ReportID: report, ReleaseID: f.rel.ID, Version: "1.0", Step: step,
			DeviceTime: clock.Norm(t0), ReceivedAt: clock.Norm(t0.Add(time.Second))}
	}
	write(t, db, func(tx *store.Tx) error {
		e1 := ev("r1", proto.StepDownloading)
		e1.BytesDone, e1.BytesTotal = &n, &n
		if ok, err := tx.AddUpdateEvent(ctx, f.a.ID, e1); err != nil || !ok {
			t.Fatalf("first insert: %v %v", ok, err)
		}
		if ok, err := tx.AddUpdateEvent(ctx, f.a.ID, ev("r1", proto.StepCommitted)); err != nil || ok {
			t.Fatalf("same report id inserted again: %v %v", ok, err)
		}
		e2 := ev("r2", proto.StepFailed)
		e2.ReasonCode, e2.Detail = proto.ReasonPowerLoss, "lost power"
		if ok, err := tx.AddUpdateEvent(ctx, f.a.ID, e2); err != nil || !ok {
			t.Fatalf("second report: %v %v", ok, err)
		}
		// Report ids are per device: another device may reuse one.
		o := ev("r1", proto.StepDownloading)
		o.DeviceID, o.ReleaseID = f.other.ID, f.foreign.ID
		if ok, err := tx.AddUpdateEvent(ctx, f.b.ID, o); err != nil || !ok {
			t.Fatalf("other device's r1: %v %v", ok, err)
		}
		return nil
	})
	read(t, db, func(tx *store.Tx) error {
		got, err := tx.UpdateHistory(ctx, f.a.ID, f.dev.ID, "", 10)
		if err != nil || len(got) != 2 {
			t.Fatalf("history: %+v %v", got, err)
		}
		g := got[0]
		if g.ReportID != "r1" || g.Step != proto.StepDownloading || g.BytesDone == nil || *g.BytesDone != 10 || *g.BytesTotal != 10 ||
			!g.DeviceTime.Equal(clock.Norm(t0)) || !g.ReceivedAt.Equal(clock.Norm(t0.Add(time.Second))) || g.Version != "1.0" {
			t.Fatalf("first event: %+v", g)
		}
		if g := got[1]; g.ReportID != "r2" || g.ReasonCode != proto.ReasonPowerLoss || g.Detail != "lost power" || g.BytesDone != nil {
			t.Fatalf("second event: %+v", g)
		}
		if page, err := tx.UpdateHistory(ctx, f.a.ID, f.dev.ID, got[0].ID, 10); err != nil || len(page) != 1 || page[0].ID != got[1].ID {
			t.Fatalf("after the first: %+v %v", page, err)
		}
		if other, err := tx.UpdateHistory(ctx, f.b.ID, f.dev.ID, "", 10); err != nil || len(other) != 0 {
			t.Fatalf("another org sees the history: %+v %v", other, err)
		}
		return nil
	})
}

func testHistoryService(t *testing.T, db *store.DB) {
	f := historySetup(t, db)
	svc := rollout.NewService(db.Rollout(), clock.NewFake(t0))
	ctx := store.DeviceTraffic(context.Background())
	st := func(report, step string) proto.UpdateStatus {
		return proto.UpdateStatus{ReportID: report, ReleaseID: f.rel.ID, Step: step, At: t0}
	}
	for i, step := range []string{proto.StepDownloading, proto.StepDownloaded, proto.StepInstalling, proto.StepRebooting, proto.StepCommitted} {
		if dup, err := svc.RecordStatus(ctx, f.dev, st(string(rune('a'+i)), step)); err != nil || dup {
			t.Fatalf("%s: %v %v", step, dup, err)
		}
	}
	if dup, err := svc.RecordStatus(ctx, f.dev, st("b", proto.StepDownloaded)); err != nil || !dup {
		t.Fatalf("replay: %v %v", dup, err)
	}
	// Concurrent copies of one report: exactly one is stored.
	var wg sync.WaitGroup
	var mu sync.Mutex
	fresh := 0
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dup, err := svc.RecordStatus(ctx, f.dev, st("race", proto.StepRolledBack))
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			if !dup {
				fresh++
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	if fresh != 1 {
		t.Fatalf("%d racing copies were stored, want 1", fresh)
	}

	bad := map[string]proto.UpdateStatus{
		"no reason":       st("x1", proto.StepFailed),
		"unknown step":    st("x2", "exploded"),
		"unknown reason":  {ReportID: "x3", ReleaseID: f.rel.ID, Step: proto.StepFailed, ReasonCode: "gremlins", At: t0},
		"reason on ok":    {ReportID: "x4", ReleaseID: f.rel.ID, Step: proto.StepCommitted, ReasonCode: proto.ReasonPowerLoss, At: t0},
		"foreign release": {ReportID: "x5", ReleaseID: f.foreign.ID, Step: proto.StepDownloading, At: t0},
		"other product":   {ReportID: "x6", ReleaseID: f.otherProd.ID, Step: proto.StepDownloading, At: t0},
		"no report id":    st("", proto.StepDownloading),
		"bad report id":   st("a b", proto.StepDownloading),
		"no time":         {ReportID: "x7", ReleaseID: f.rel.ID, Step: proto.StepDownloading},
		"long detail":     {ReportID: "x8", ReleaseID: f.rel.ID, Step: proto.StepDownloading, Detail: string(make([]byte, proto.MaxStatusDetail+1)), At: t0},
	}
	for name, req := range bad {
		if _, err := svc.RecordStatus(ctx, f.dev, req); !problem.Is(err, problem.KindInvalid) {
			t.Errorf("%s: %v, want invalid", name, err)
		}
	}

	as := func(org tenancy.Org, role access.Role) access.Principal {
		return access.Principal{OrgID: org.ID, OrgSlug: org.Slug, Role: role, Actor: access.Actor{Kind: access.ActorToken, ID: "t", Name: "t"}}
	}
	items, next, err := svc.History(context.Background(), as(f.a, access.RoleAuditor), f.dev.ID, "", 3)
	if err != nil || len(items) != 3 || next == "" {
		t.Fatalf("first page: %+v %q %v", items, next, err)
	}
	rest, next2, err := svc.History(context.Background(), as(f.a, access.RoleAuditor), f.dev.ID, next, 0)
	if err != nil || next2 != "" {
		t.Fatalf("second page: %+v %q %v", rest, next2, err)
	}
	var got []string
	for _, e := range append(items, rest...) {
		got = append(got, e.Step)
	}
	want := []string{"downloading", "downloaded", "installing", "rebooting", "committed", "rolled-back"}
	if len(got) != len(want) {
		t.Fatalf("history steps %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("history steps %v, want %v", got, want)
		}
	}
	if _, _, err := svc.History(context.Background(), as(f.b, access.RoleAdmin), f.dev.ID, "", 0); !problem.Is(err, problem.KindNotFound) {
		t.Fatalf("foreign device: %v, want not found", err)
	}
	// Device reports are audited through audit_pending, one per stored report.
	read(t, db, func(tx *store.Tx) error {
		n, err := tx.CountPendingAudit(context.Background(), f.a.ID)
		if err != nil || n != 6 {
			t.Fatalf("pending audit events: %d %v, want 6", n, err)
		}
		return nil
	})
}
