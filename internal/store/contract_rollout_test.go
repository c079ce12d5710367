package store_test

import (
	"context"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

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

func TestContractRollouts(t *testing.T) {
	for _, d := range storetest.Dialects(t) {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			t.Run("Rollouts", func(t *testing.T) { testRolloutRows(t, storetest.New(t, d, clock.NewFake(t0))) })
			t.Run("DeviceUpdates", func(t *testing.T) { testDeviceUpdates(t, storetest.New(t, d, clock.NewFake(t0))) })
			t.Run("Targets", func(t *testing.T) { testRolloutTargets(t, storetest.New(t, d, clock.NewFake(t0))) })
			t.Run("Elector", func(t *testing.T) { testElector(t, storetest.New(t, d, clock.NewFake(t0))) })
			t.Run("Lock", func(t *testing.T) { testLockRollout(t, d, storetest.New(t, d, clock.NewFake(t0))) })
			t.Run("FailureMigration", func(t *testing.T) { testFailureMigration(t, storetest.New(t, d, clock.NewFake(t0))) })
		})
	}
}

type rolloutFixture struct {
	a, b     tenancy.Org
	prod     inventory.Product
	dev, dv2 inventory.Device // org a
	other    inventory.Device // org b
	rel      release.Release
	foreign  release.Release // org b
}

func rolloutSetup(t *testing.T, db *store.DB) rolloutFixture {
	var f rolloutFixture
	write(t, db, func(tx *store.Tx) error {
		f.a, f.b = newOrg(t, tx, "a"), newOrg(t, tx, "b")
		f.prod = newProduct(t, tx, f.a, "gw")
		pb := newProduct(t, tx, f.b, "gw")
		f.dev, f.dv2, f.other = newDevice(t, tx, f.a, f.prod, "S1", "active"), newDevice(t, tx, f.a, f.prod, "S2", "active"), newDevice(t, tx, f.b, pb, "S3", "active")
		f.rel, f.foreign = newRel(t, tx, f.a, f.prod, "2.0"), newRel(t, tx, f.b, pb, "2.0")
		return nil
	})
	return f
}

func newRollout(f rolloutFixture, org tenancy.Org, rel release.Release, state string) rollout.Rollout {
	dl := clock.Norm(t0.Add(48 * time.Hour))
	return rollout.Rollout{ID: id.New(), OrgID: org.ID, Name: "r", ReleaseID: rel.ID, ProductID: rel.ProductID,
		TargetQuery: `tag.region = "eu"`, Phases: []rollout.Phase{{Percent: 0.5, MinSoakSeconds: 60}, {Percent: 100}},
		Urgency: rollout.UrgencyOutOfCycle, Mode: rollout.ModeSoft, SuccessRatio: 0.9, PauseFailureRatio: 0.1, PauseFailureCount: 3,
		AbortFailureRatio: 0.5, AbortFailureCount: 9, MaxRetries: 2, DeviceTimeout: 3600, MinBattery: 25, Deadline: &dl,
		State: state, Phase: 0, PhaseStartedAt: clock.Norm(t0), FailuresAcked: 1, CreatedBy: "alice",
		CreatedAt: clock.Norm(t0), UpdatedAt: clock.Norm(t0)}
}

func testRolloutRows(t *testing.T, db *store.DB) {
	ctx := context.Background()
	f := rolloutSetup(t, db)
	r1 := newRollout(f, f.a, f.rel, rollout.StateRunning)
	r2 := newRollout(f, f.a, f.rel, rollout.StateCompleted)
	r2.Deadline, r2.TargetQuery = nil, ""
	write(t, db, func(tx *store.Tx) error {
		g := inventory.Group{ID: id.New(), OrgID: f.a.ID, Name: "canary", CreatedAt: clock.Norm(t0)}
		if err := tx.InsertGroup(ctx, g); err != nil {
			return err
		}
		r2.TargetGroupID = g.ID
		rf := newRollout(f, f.b, f.foreign, rollout.StatePaused)
		for _, r := range []rollout.Rollout{r1, r2, rf} {
			if err := tx.InsertRollout(ctx, r); err != nil {
				return err
			}
		}
		return nil
	})
	read(t, db, func(tx *store.Tx) error {
		for _, want := range []rollout.Rollout{r1, r2} {
			got, err := tx.RolloutByID(ctx, f.a.ID, want.ID)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
			}
		}
		_, err := tx.RolloutByID(ctx, f.b.ID, r1.ID)
		wantKind(t, err, problem.KindNotFound, "another org's rollout")
		all, err := tx.ListRollouts(ctx, f.a.ID, "", "", 10)
		if err != nil || len(all) != 2 {
			t.Fatalf("list: %d %v", len(all), err)
		}
		page, _ := tx.ListRollouts(ctx, f.a.ID, "", "", 1)
		rest, _ := tx.ListRollouts(ctx, f.a.ID, "", page[0].ID, 10)
		if len(page) != 1 || len(rest) != 1 || rest[0].ID == page[0].ID {
			t.Fatalf("paging: %v %v", page, rest)
		}
		done, _ := tx.ListRollouts(ctx, f.a.ID, rollout.StateCompleted, "", 10)
		if len(done) != 1 || done[0].ID != r2.ID {
			t.Fatalf("state filter: %v", done)
		}
		live, err := tx.LiveRollouts(ctx, f.a.ID)
		if err != nil || len(live) != 1 || live[0].ID != r1.ID {
			t.Fatalf("live of org a: %v %v", live, err)
		}
		everywhere, _ := tx.LiveRollouts(ctx, "")
		if len(everywhere) != 2 {
			t.Fatalf("live everywhere: %d, want 2 (running in a, paused in b)", len(everywhere))
		}
		return nil
	})
	at := clock.Norm(t0.Add(time.Hour))
	write(t, db, func(tx *store.Tx) error {
		if ok, err := tx.SetRolloutState(ctx, f.a.ID, r1.ID, rollout.StatePaused, rollout.StateRunning, "x", at); err != nil || ok {
			t.Fatalf("CAS from the wrong state: %v %v", ok, err)
		}
		if ok, err := tx.AdvanceRolloutPhase(ctx, f.a.ID, r1.ID, 1, 2, at); err != nil || ok {
			t.Fatalf("advance from the wrong phase: %v %v", ok, err)
		}
		if ok, err := tx.AdvanceRolloutPhase(ctx, f.b.ID, r1.ID, 0, 1, at); err != nil || ok {
			t.Fatalf("advance in another org: %v %v", ok, err)
		}
		if ok, err := tx.AdvanceRolloutPhase(ctx, f.a.ID, r1.ID, 0, 1, at); err != nil || !ok {
			t.Fatalf("advance: %v %v", ok, err)
		}
		if ok, err := tx.SetRolloutState(ctx, f.a.ID, r1.ID, rollout.StateRunning, rollout.StatePaused, "too many failures", at); err != nil || !ok {
			t.Fatalf("pause: %v %v", ok, err)
		}
		if ok, err := tx.AdvanceRolloutPhase(ctx, f.a.ID, r1.ID, 1, 2, at); err != nil || ok {
			t.Fatalf("a paused rollout advanced: %v %v", ok, err)
		}
		if ok, err := tx.ResumeRollout(ctx, f.a.ID, r1.ID, 7, at.Add(time.Minute)); err != nil || !ok {
			t.Fatalf("resume: %v %v", ok, err)
		}
		if ok, err := tx.ResumeRollout(ctx, f.a.ID, r1.ID, 8, at); err != nil || ok {
			t.Fatalf("resumed a running rollout: %v %v", ok, err)
		}
		return nil
	})
	read(t, db, func(tx *store.Tx) error {
		got, _ := tx.RolloutByID(ctx, f.a.ID, r1.ID)
		if got.Phase != 1 || !got.PhaseStartedAt.Equal(at) || got.State != rollout.StateRunning || got.StateReason != "" ||
			got.FailuresAcked != 7 || !got.UpdatedAt.Equal(at.Add(time.Minute)) {
			t.Fatalf("after advance, pause, resume: %+v", got)
		}
		return nil
	})
	// A phase is entered once: the second record of it is a Conflict.
	tr := rollout.Transition{RolloutID: r1.ID, Phase: 1, Percent: 100, Reason: "ok", At: at}
	write(t, db, func(tx *store.Tx) error {
		if err := tx.InsertTransition(ctx, f.a.ID, rollout.Transition{RolloutID: r1.ID, Phase: 0, Percent: 0.5, Reason: "started", At: clock.Norm(t0)}); err != nil {
			return err
		}
		return tx.InsertTransition(ctx, f.a.ID, tr)
	})
	err := db.Write(ctx, func(tx *store.Tx) error { return tx.InsertTransition(ctx, f.a.ID, tr) })
	wantKind(t, err, problem.KindConflict, "the same transition twice")
	read(t, db, func(tx *store.Tx) error {
		ts, err := tx.Transitions(ctx, f.a.ID, r1.ID)
		if err != nil || len(ts) != 2 || ts[0].Phase != 0 || !reflect.DeepEqual(ts[1], tr) {
			t.Fatalf("transitions: %+v %v", ts, err)
		}
		if ts, _ := tx.Transitions(ctx, f.b.ID, r1.ID); len(ts) != 0 {
			t.Fatalf("another org sees transitions: %v", ts)
		}
		return nil
	})
}

func testDeviceUpdates(t *testing.T, db *store.DB) {
	ctx := context.Background()
	f := rolloutSetup(t, db)
	r := newRollout(f, f.a, f.rel, rollout.StateRunning)
	done := newRollout(f, f.a, f.rel, rollout.StateCancelled)
	at := func(m int) time.Time { return clock.Norm(t0.Add(time.Duration(m) * time.Minute)) }
	fin := at(9)
	u1 := rollout.DeviceUpdate{RolloutID: r.ID, DeviceID: f.dev.ID, Phase: 0, State: rollout.DUOffered, Attempts: 1, Artifact: "delta",
		Bytes: 1234, OfferedAt: at(0), UpdatedAt: at(0)}
	u2 := rollout.DeviceUpdate{RolloutID: r.ID, DeviceID: f.dv2.ID, Phase: 1, State: rollout.DUFailed, Attempts: 2, Artifact: "full",
		Bytes: 99, Reason: "install-failed", OfferedAt: at(1), UpdatedAt: at(5), FinishedAt: &fin, Failures: 2}
	old := rollout.DeviceUpdate{RolloutID: done.ID, DeviceID: f.dev.ID, State: rollout.DUOffered, Attempts: 1, Artifact: "full", OfferedAt: at(0), UpdatedAt: at(0)}
	write(t, db, func(tx *store.Tx) error {
		for _, x := range []rollout.Rollout{r, done} {
			if err := tx.InsertRollout(ctx, x); err != nil {
				return err
			}
		}
		for _, u := range []rollout.DeviceUpdate{u1, u2, old} {
			if err := tx.PutDeviceUpdate(ctx, f.a.ID, u); err != nil {
				return err
			}
		}
		return nil
	})
	read(t, db, func(tx *store.Tx) error {
		for _, want := range []rollout.DeviceUpdate{u1, u2} {
			got, err := tx.DeviceUpdate(ctx, f.a.ID, want.RolloutID, want.DeviceID)
			if err != nil || !reflect.DeepEqual(got, want) {
				t.Fatalf("round trip: %+v %v, want %+v", got, err, want)
			}
		}
		_, err := tx.DeviceUpdate(ctx, f.b.ID, r.ID, f.dev.ID)
		wantKind(t, err, problem.KindNotFound, "another org's device update")
		live, err := tx.LiveDeviceUpdates(ctx, f.a.ID, f.dev.ID)
		if err != nil || len(live) != 1 || live[0].RolloutID != r.ID {
			t.Fatalf("live updates exclude the cancelled rollout: %+v %v", live, err)
		}
		byRelease, err := tx.ReleaseDeviceUpdates(ctx, f.a.ID, f.dev.ID, f.rel.ID)
		if err != nil || len(byRelease) != 2 {
			t.Fatalf("a device's rows of a release include the cancelled rollout's: %+v %v", byRelease, err)
		}
		if rows, _ := tx.ReleaseDeviceUpdates(ctx, f.a.ID, f.dev.ID, f.foreign.ID); len(rows) != 0 {
			t.Fatalf("rows of another release: %+v", rows)
		}
		if rows, _ := tx.ReleaseDeviceUpdates(ctx, f.b.ID, f.dev.ID, f.rel.ID); len(rows) != 0 {
			t.Fatalf("rows seen from another org: %+v", rows)
		}
		stopped, err := tx.StoppedRolloutsInFlight(ctx)
		if err != nil || len(stopped) != 1 || stopped[0].ID != done.ID {
			t.Fatalf("ended rollouts with rows in flight: %+v %v", stopped, err)
		}
		failed, _ := tx.ListDeviceUpdates(ctx, f.a.ID, r.ID, rollout.DUFailed, "", 10)
		if len(failed) != 1 || failed[0].DeviceID != f.dv2.ID {
			t.Fatalf("list by state: %+v", failed)
		}
		all, _ := tx.ListDeviceUpdates(ctx, f.a.ID, r.ID, "", "", 1)
		rest, _ := tx.ListDeviceUpdates(ctx, f.a.ID, r.ID, "", all[0].DeviceID, 10)
		if len(all) != 1 || len(rest) != 1 {
			t.Fatalf("paging: %v %v", all, rest)
		}
		counts, err := tx.CountDeviceUpdates(ctx, f.a.ID, r.ID)
		want := []rollout.StateCount{{Phase: 0, State: rollout.DUOffered, Count: 1}, {Phase: 1, State: rollout.DUFailed, Count: 1, Failures: 2}}
		if err != nil || !reflect.DeepEqual(counts, want) {
			t.Fatalf("counts: %+v %v", counts, err)
		}
		return nil
	})
	// Upsert replaces the row.
	u1.State, u1.UpdatedAt = rollout.DUDownloading, at(2)
	write(t, db, func(tx *store.Tx) error { return tx.PutDeviceUpdate(ctx, f.a.ID, u1) })
	read(t, db, func(tx *store.Tx) error {
		if got, _ := tx.DeviceUpdate(ctx, f.a.ID, r.ID, f.dev.ID); !reflect.DeepEqual(got, u1) {
			t.Fatalf("after upsert: %+v", got)
		}
		return nil
	})
	// Assignments: the rollout's own, and a person's that must survive.
	write(t, db, func(tx *store.Tx) error {
		for _, a := range []rollout.Assignment{
			{DeviceID: f.dev.ID, ReleaseID: f.rel.ID, RolloutID: r.ID, AssignedBy: "rollout " + r.ID, AssignedAt: at(0)},
			{DeviceID: f.dv2.ID, ReleaseID: f.rel.ID, AssignedBy: "alice", AssignedAt: at(0)},
		} {
			if err := tx.PutAssignment(ctx, f.a.ID, a); err != nil {
				return err
			}
		}
		return nil
	})
	read(t, db, func(tx *store.Tx) error {
		a, err := tx.AssignmentOf(ctx, f.a.ID, f.dev.ID)
		if err != nil || a.RolloutID != r.ID {
			t.Fatalf("assignment keeps its rollout: %+v %v", a, err)
		}
		if a, _ := tx.AssignmentOf(ctx, f.a.ID, f.dv2.ID); a.RolloutID != "" {
			t.Fatalf("a person's assignment has a rollout: %+v", a)
		}
		return nil
	})
	write(t, db, func(tx *store.Tx) error {
		// Nothing in flight before minute 1; dev's row changed at minute 2.
		if n, err := tx.TimeOutDeviceUpdates(ctx, f.a.ID, r.ID, at(1), at(10), false); err != nil || n != 0 {
			t.Fatalf("time out too early: %d %v", n, err)
		}
		if n, err := tx.TimeOutDeviceUpdates(ctx, f.a.ID, r.ID, at(3), at(10), false); err != nil || n != 1 {
			t.Fatalf("time out: %d %v", n, err)
		}
		if n, err := tx.DropRolloutAssignments(ctx, f.a.ID, r.ID, []string{rollout.DUTimedOut}); err != nil || n != 1 {
			t.Fatalf("drop timed-out assignments: %d %v", n, err)
		}
		if ok, err := tx.DeleteRolloutAssignment(ctx, f.a.ID, f.dv2.ID, r.ID); err != nil || ok {
			t.Fatalf("deleted a person's assignment: %v %v", ok, err)
		}
		// A downloaded row is spared while held (a deferred soft install).
		dl := rollout.DeviceUpdate{RolloutID: done.ID, DeviceID: f.dv2.ID, State: rollout.DUDownloaded, Attempts: 1, Artifact: "full",
			OfferedAt: at(0), UpdatedAt: at(0), Failures: 1}
		if err := tx.PutDeviceUpdate(ctx, f.a.ID, dl); err != nil {
			return err
		}
		if n, err := tx.TimeOutDeviceUpdates(ctx, f.a.ID, done.ID, at(3), at(10), true); err != nil || n != 1 {
			t.Fatalf("time out holding downloaded rows: %d %v, want only the offered row", n, err)
		}
		if got, _ := tx.DeviceUpdate(ctx, f.a.ID, done.ID, f.dv2.ID); got.State != rollout.DUDownloaded {
			t.Fatalf("a held downloaded row timed out: %+v", got)
		}
		if n, err := tx.TimeOutDeviceUpdates(ctx, f.a.ID, done.ID, at(3), at(10), false); err != nil || n != 1 {
			t.Fatalf("time out downloaded rows: %d %v", n, err)
		}
		if got, _ := tx.DeviceUpdate(ctx, f.a.ID, done.ID, f.dv2.ID); got.State != rollout.DUTimedOut || got.Failures != 2 {
			t.Fatalf("timed-out downloaded row: %+v, want failures 2", got)
		}
		if stopped, _ := tx.StoppedRolloutsInFlight(ctx); len(stopped) != 0 {
			t.Fatalf("ended rollouts in flight after their rows timed out: %+v", stopped)
		}
		// Give dev's row of done back its offer, for the cancel below.
		if err := tx.PutDeviceUpdate(ctx, f.a.ID, old); err != nil {
			return err
		}
		if n, err := tx.CancelOfferedUpdates(ctx, f.a.ID, done.ID, "rollout cancelled", at(11)); err != nil || n != 1 {
			t.Fatalf("cancel offered: %d %v", n, err)
		}
		if n, err := tx.CancelOfferedUpdates(ctx, f.a.ID, r.ID, "rollout cancelled", at(11)); err != nil || n != 0 {
			t.Fatalf("cancel offered of a rollout with none: %d %v", n, err)
		}
		return nil
	})
	read(t, db, func(tx *store.Tx) error {
		got, _ := tx.DeviceUpdate(ctx, f.a.ID, r.ID, f.dev.ID)
		if got.State != rollout.DUTimedOut || got.FinishedAt == nil || !got.FinishedAt.Equal(at(10)) || got.Reason == "" || got.Failures != 1 {
			t.Fatalf("timed out row: %+v", got)
		}
		if _, err := tx.AssignmentOf(ctx, f.a.ID, f.dev.ID); !problem.Is(err, problem.KindNotFound) {
			t.Fatalf("timed-out device kept its assignment: %v", err)
		}
		if _, err := tx.AssignmentOf(ctx, f.a.ID, f.dv2.ID); err != nil {
			t.Fatalf("a person's assignment went: %v", err)
		}
		if got, _ := tx.DeviceUpdate(ctx, f.a.ID, done.ID, f.dev.ID); got.State != rollout.DUCancelled || got.Reason != "rollout cancelled" {
			t.Fatalf("cancelled row: %+v", got)
		}
		return nil
	})
	// DeleteRolloutAssignment removes only its own rollout's assignment.
	write(t, db, func(tx *store.Tx) error {
		if err := tx.PutAssignment(ctx, f.a.ID, rollout.Assignment{DeviceID: f.dev.ID, ReleaseID: f.rel.ID, RolloutID: r.ID, AssignedBy: "x", AssignedAt: at(12)}); err != nil {
			return err
		}
		if ok, err := tx.DeleteRolloutAssignment(ctx, f.a.ID, f.dev.ID, done.ID); err != nil || ok {
			t.Fatalf("deleted another rollout's assignment: %v %v", ok, err)
		}
		if ok, err := tx.DeleteRolloutAssignment(ctx, f.a.ID, f.dev.ID, r.ID); err != nil || !ok {
			t.Fatalf("delete own assignment: %v %v", ok, err)
		}
		return nil
	})
}

func testRolloutTargets(t *testing.T, db *store.DB) {
	ctx := context.Background()
	f := rolloutSetup(t, db)
	var static, dynamic inventory.Group
	var extra []inventory.Device
	write(t, db, func(tx *store.Tx) error {
		static = inventory.Group{ID: id.New(), OrgID: f.a.ID, Name: "static", CreatedAt: clock.Norm(t0)}
		dynamic = inventory.Group{ID: id.New(), OrgID: f.a.ID, Name: "dynamic", Query: `tag.region = "eu"`, CreatedAt: clock.Norm(t0)}
		for _, g := range []inventory.Group{static, dynamic} {
			if err := tx.InsertGroup(ctx, g); err != nil {
				return err
			}
		}
		if err := tx.AddGroupMembers(ctx, static.ID, []string{f.dev.ID}); err != nil {
			return err
		}
		if err := tx.SetDeviceTags(ctx, f.dev.ID, map[string]string{"region": "eu"}); err != nil {
			return err
		}
		extra = append(extra, newDevice(t, tx, f.a, f.prod, "S4", "pending"), newDevice(t, tx, f.a, f.prod, "S5", "quarantined"))
		return tx.RecordSoftware(ctx, inventory.Software{DeviceID: f.dv2.ID, Version: "2.0", VersionKey: "2.0", Hash: "h", At: clock.Norm(t0)})
	})
	read(t, db, func(tx *store.Tx) error {
		if gs, err := tx.DeviceGroupIDs(ctx, f.dev.ID); err != nil || !reflect.DeepEqual(gs, []string{static.ID}) {
			t.Fatalf("device groups: %v %v", gs, err)
		}
		if gs, _ := tx.DeviceGroupIDs(ctx, f.dv2.ID); len(gs) != 0 {
			t.Fatalf("groups of a device in none: %v", gs)
		}
		if tags, err := tx.DeviceTags(ctx, f.dev.ID); err != nil || !reflect.DeepEqual(tags, map[string]string{"region": "eu"}) {
			t.Fatalf("tags: %v %v", tags, err)
		}
		return nil
	})
	// Group windows.
	w := rollout.GroupWindow{GroupID: dynamic.ID, Cron: "0 2 * * *", DurationSeconds: 7200, TimeZone: "Europe/Berlin"}
	write(t, db, func(tx *store.Tx) error { return tx.SetGroupWindow(ctx, f.a.ID, w) })
	err := db.Write(ctx, func(tx *store.Tx) error { return tx.SetGroupWindow(ctx, f.b.ID, w) })
	wantKind(t, err, problem.KindNotFound, "window of another org's group")
	read(t, db, func(tx *store.Tx) error {
		ws, err := tx.GroupWindows(ctx, f.a.ID)
		w.Query = dynamic.Query
		if err != nil || len(ws) != 1 || !reflect.DeepEqual(ws[0], w) {
			t.Fatalf("group windows: %+v %v", ws, err)
		}
		if ws, _ := tx.GroupWindows(ctx, f.b.ID); len(ws) != 0 {
			t.Fatalf("another org's windows: %v", ws)
		}
		return nil
	})
	write(t, db, func(tx *store.Tx) error {
		return tx.SetGroupWindow(ctx, f.a.ID, rollout.GroupWindow{GroupID: dynamic.ID})
	})
	read(t, db, func(tx *store.Tx) error {
		if ws, _ := tx.GroupWindows(ctx, f.a.ID); len(ws) != 0 {
			t.Fatalf("a removed window remains: %v", ws)
		}
		return nil
	})
	// Target devices: active and quarantined devices of the product.
	inStatic := func(next func(any) string) (string, error) {
		return "d.id IN (SELECT device_id FROM device_group_members WHERE group_id = " + next(static.ID) + ")", nil
	}
	read(t, db, func(tx *store.Tx) error {
		ids, err := tx.TargetDeviceIDs(ctx, f.a.ID, f.prod.ID, nil, "", 10)
		want := []string{f.dev.ID, f.dv2.ID, extra[1].ID}
		sort.Strings(want)
		if err != nil || !reflect.DeepEqual(ids, want) {
			t.Fatalf("all targets: %v %v, want %v", ids, err, want)
		}
		first, _ := tx.TargetDeviceIDs(ctx, f.a.ID, f.prod.ID, nil, "", 1)
		if rest, _ := tx.TargetDeviceIDs(ctx, f.a.ID, f.prod.ID, nil, first[0], 10); len(rest) != 2 {
			t.Fatalf("paging: %v", rest)
		}
		if ids, _ := tx.TargetDeviceIDs(ctx, f.a.ID, f.prod.ID, inStatic, "", 10); !reflect.DeepEqual(ids, []string{f.dev.ID}) {
			t.Fatalf("static group target: %v", ids)
		}
		if ids, _ := tx.TargetDeviceIDs(ctx, f.b.ID, f.prod.ID, nil, "", 10); len(ids) != 0 {
			t.Fatalf("another org's product: %v", ids)
		}
		return nil
	})
	read(t, db, func(tx *store.Tx) error {
		if n, err := tx.CountOrgDevices(ctx, f.a.ID); err != nil || n != 3 {
			t.Fatalf("devices a wake-up reaches: %d %v, want 3 (2 active, 1 quarantined; not the pending one)", n, err)
		}
		if n, err := tx.CountOrgDevices(ctx, f.b.ID); err != nil || n != 1 {
			t.Fatalf("devices of org b: %d %v", n, err)
		}
		return nil
	})
	r := newRollout(f, f.a, f.rel, rollout.StateRunning)
	write(t, db, func(tx *store.Tx) error { return tx.InsertRollout(ctx, r) })
	pending := func(maxAttempts int, cond rollout.Cond) int {
		t.Helper()
		var n int
		read(t, db, func(tx *store.Tx) error {
			var err error
			n, err = tx.CountTargetPending(ctx, f.a.ID, f.prod.ID, "2.0", r.ID, maxAttempts, cond)
			return err
		})
		return n
	}
	// dv2 runs 2.0 already; dev and the quarantined device need it.
	if n := pending(3, nil); n != 2 {
		t.Fatalf("pending: %d, want 2", n)
	}
	if n := pending(3, inStatic); n != 1 {
		t.Fatalf("pending in the static group: %d, want 1", n)
	}
	fin := clock.Norm(t0)
	put := func(u rollout.DeviceUpdate) {
		write(t, db, func(tx *store.Tx) error { return tx.PutDeviceUpdate(ctx, f.a.ID, u) })
	}
	put(rollout.DeviceUpdate{RolloutID: r.ID, DeviceID: f.dev.ID, State: rollout.DUFailed, Attempts: 2, OfferedAt: fin, UpdatedAt: fin, FinishedAt: &fin})
	if n := pending(3, nil); n != 2 {
		t.Fatalf("a failure with a retry left still pends: %d, want 2", n)
	}
	if n := pending(2, nil); n != 1 {
		t.Fatalf("a failure with no retries left is done: %d, want 1", n)
	}
	put(rollout.DeviceUpdate{RolloutID: r.ID, DeviceID: extra[1].ID, State: rollout.DUSucceeded, Attempts: 1, OfferedAt: fin, UpdatedAt: fin, FinishedAt: &fin})
	if n := pending(2, nil); n != 0 {
		t.Fatalf("pending after all are done: %d", n)
	}
}

func testElector(t *testing.T, db *store.DB) {
	ctx := context.Background()
	e1, e2 := db.Elector(20*time.Millisecond), db.Elector(20*time.Millisecond)
	leading, release, err := e1.Lead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 150*time.Millisecond)
	defer cancel()
	if _, _, err := e2.Lead(short); err == nil {
		t.Fatal("a second elector led while the first held leadership")
	}
	if leading.Err() != nil {
		t.Fatalf("the leader lost leadership: %v", leading.Err())
	}
	release()
	if leading.Err() == nil {
		t.Fatal("released leadership's context is still live")
	}
	release() // twice is harmless
	l2, r2, err := e2.Lead(ctx)
	if err != nil {
		t.Fatalf("the second elector could not lead after the release: %v", err)
	}
	defer r2()
	if l2.Err() != nil {
		t.Fatal(fmt.Errorf("new leader's context ended: %w", l2.Err()))
	}
}

// testLockRollout: LockRollout reads the rollout of its organization only
// and, on PostgreSQL, holds its row: a state change from another
// transaction cannot take it until the holder ends (FOR UPDATE NOWAIT
// fails at once instead of waiting).
func testLockRollout(t *testing.T, d store.Dialect, db *store.DB) {
	ctx := context.Background()
	f := rolloutSetup(t, db)
	r := newRollout(f, f.a, f.rel, rollout.StateRunning)
	write(t, db, func(tx *store.Tx) error { return tx.InsertRollout(ctx, r) })
	// No t.Fatal inside the transaction: it would leave it open, holding
	// the lock the schema's cleanup waits for.
	err := db.Write(ctx, func(tx *store.Tx) error {
		got, err := tx.LockRollout(ctx, f.a.ID, r.ID)
		if err != nil || !reflect.DeepEqual(got, r) {
			return fmt.Errorf("LockRollout: %+v %v", got, err)
		}
		if _, err := tx.LockRollout(ctx, f.b.ID, r.ID); !problem.Is(err, problem.KindNotFound) {
			return fmt.Errorf("locking another org's rollout: %v", err)
		}
		if d != store.Postgres {
			return nil // SQLite: one writer at a time; nothing to race
		}
		other := db.Write(ctx, func(tx2 *store.Tx) error {
			return tx2.ExecForTest(ctx, "SELECT id FROM rollouts WHERE id = '"+r.ID+"' FOR UPDATE NOWAIT")
		})
		if other == nil || !strings.Contains(other.Error(), "55P03") {
			return fmt.Errorf("another transaction could lock a share-locked rollout: %v", other)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if d == store.Postgres { // the holder ended: the row is free again
		write(t, db, func(tx *store.Tx) error {
			return tx.ExecForTest(ctx, "SELECT id FROM rollouts WHERE id = '"+r.ID+"' FOR UPDATE NOWAIT")
		})
	}
}

// testFailureMigration: migration 0018 counts one failure per row in a
// failure state and caps a rollout's acknowledged failures at that count,
// so an upgrade neither pauses nor aborts a running rollout.
func testFailureMigration(t *testing.T, db *store.DB) {
	ctx := context.Background()
	f := rolloutSetup(t, db)
	r := newRollout(f, f.a, f.rel, rollout.StateRunning) // FailuresAcked 1
	r2 := newRollout(f, f.a, f.rel, rollout.StatePaused)
	r2.FailuresAcked = 5
	at := clock.Norm(t0)
	write(t, db, func(tx *store.Tx) error {
		for _, x := range []rollout.Rollout{r, r2} {
			if err := tx.InsertRollout(ctx, x); err != nil {
				return err
			}
		}
		for _, u := range []rollout.DeviceUpdate{
			{RolloutID: r.ID, DeviceID: f.dev.ID, State: rollout.DUTimedOut, Attempts: 2},
			{RolloutID: r.ID, DeviceID: f.dv2.ID, State: rollout.DURolledBack, Attempts: 1},
			{RolloutID: r2.ID, DeviceID: f.dev.ID, State: rollout.DUOffered, Attempts: 3},
			{RolloutID: r2.ID, DeviceID: f.dv2.ID, State: rollout.DUFailed, Attempts: 1},
		} {
			u.Artifact, u.OfferedAt, u.UpdatedAt = "full", at, at
			if err := tx.PutDeviceUpdate(ctx, f.a.ID, u); err != nil {
				return err
			}
		}
		// Back to schema 17, as an older steward left it.
		for _, q := range []string{"ALTER TABLE device_updates DROP COLUMN failures", "DELETE FROM schema_migrations WHERE version = 18"} {
			if err := tx.ExecForTest(ctx, q); err != nil {
				return err
			}
		}
		return nil
	})
	if n, err := db.Migrate(ctx); err != nil || n != store.SchemaVersion()-17 {
		t.Fatalf("migrate from 17: %d %v", n, err)
	}
	read(t, db, func(tx *store.Tx) error {
		for _, c := range []struct {
			r      rollout.Rollout
			failed int
			acked  int
		}{{r, 2, 1}, {r2, 1, 1}} {
			counts, err := tx.CountDeviceUpdates(ctx, f.a.ID, c.r.ID)
			if err != nil {
				return err
			}
			sum := 0
			for _, n := range counts {
				sum += n.Failures
			}
			got, err := tx.RolloutByID(ctx, f.a.ID, c.r.ID)
			if err != nil {
				return err
			}
			if sum != c.failed || got.FailuresAcked != c.acked {
				t.Errorf("rollout %s after 0018: failures %d, acknowledged %d; want %d, %d", c.r.State, sum, got.FailuresAcked, c.failed, c.acked)
			}
		}
		return nil
	})
}
