package rollout_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/steward-iot/steward/agent/proto"
	"github.com/steward-iot/steward/internal/audit"
	"github.com/steward-iot/steward/internal/id"
	"github.com/steward-iot/steward/internal/inventory"
	"github.com/steward-iot/steward/internal/problem"
	"github.com/steward-iot/steward/internal/rollout"
	"github.com/steward-iot/steward/internal/store"
	"github.com/steward-iot/steward/internal/store/storetest"
)

// eachDialect runs fn with a fresh fixture on every database, in parallel.
func eachDialect(t *testing.T, fn func(t *testing.T, f *fx)) {
	t.Helper()
	t.Parallel()
	for _, d := range storetest.Dialects(t) {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			fn(t, newFxOn(t, d))
		})
	}
}

func (f *fx) mustState(r rollout.Rollout, d inventory.Device, want string) rollout.DeviceUpdate {
	f.t.Helper()
	u, err := f.du(r, d)
	if err != nil || u.State != want {
		f.t.Fatalf("device %s in rollout %s: %+v %v, want state %s", d.Serial, r.Name, u, err, want)
	}
	return u
}

func (f *fx) noOffer(d inventory.Device, why string) {
	f.t.Helper()
	if o := f.checkin(d, mains); o != nil {
		f.t.Fatalf("%s: device %s offered %+v", why, d.Serial, o)
	}
}

// TestStoppedRolloutReports: after a cancel or an abort, a device that had
// started and then rolls back or fails loses the ended rollout's
// assignment, its row records the failure, and its next check-in gets no
// update; a device that commits after the cancel is recorded succeeded.
// While it is still updating, a higher-priority rollout does not pull it
// off.
func TestStoppedRolloutReports(t *testing.T) {
	eachDialect(t, func(t *testing.T, f *fx) {
		ctx := context.Background()
		devs := f.devices(5)
		r := f.create(rollout.CreateRequest{Name: "cancelled", Phases: all100})
		for _, d := range devs[:3] {
			f.checkin(d, mains)
			f.report(d, f.v2, proto.StepDownloading, "")
		}
		if _, err := f.svc.Cancel(ctx, f.p, r.ID); err != nil {
			t.Fatal(err)
		}
		if o := f.checkin(devs[0], mains); o == nil || o.RolloutID != r.ID {
			t.Fatalf("a device downloading when the rollout was cancelled lost its update: %+v", o)
		}
		f.report(devs[0], f.v2, proto.StepRolledBack, proto.ReasonHealthCheckFailed)
		if u := f.mustState(r, devs[0], rollout.DURolledBack); u.FinishedAt == nil || u.Reason != proto.ReasonHealthCheckFailed {
			t.Fatalf("rolled-back row: %+v", u)
		}
		if a, ok := f.assignment(devs[0]); ok {
			t.Fatalf("a rolled-back device kept the cancelled rollout's assignment: %+v", a)
		}
		f.noOffer(devs[0], "rolled back after the cancel")
		f.noOffer(devs[0], "second check-in after the roll-back")

		f.report(devs[1], f.v2, proto.StepCommitted, "")
		f.mustState(r, devs[1], rollout.DUSucceeded)
		devs[1].InstalledVersion = "2.0"
		f.noOffer(devs[1], "committed after the cancel")

		// An immediate rollout of v3 does not pre-empt devs[2], still
		// downloading the cancelled rollout's release.
		imm := f.create(rollout.CreateRequest{Name: "aborted", ReleaseID: f.v3.ID, Phases: all100, Urgency: rollout.UrgencyImmediate,
			AbortFailureCount: 1, PauseFailureRatio: 1})
		if o := f.checkin(devs[2], mains); o == nil || o.RolloutID != r.ID {
			t.Fatalf("a device updating in a cancelled rollout was pulled off by another: %+v", o)
		}
		if a, _ := f.assignment(devs[2]); a.RolloutID != r.ID {
			t.Fatalf("another rollout overwrote the assignment of an update under way: %+v", a)
		}

		// Abort: devs[3] downloads, devs[4] fails, the scheduler aborts.
		for _, d := range devs[3:] {
			if o := f.checkin(d, mains); o == nil || o.RolloutID != imm.ID {
				t.Fatalf("immediate rollout offer: %+v", o)
			}
		}
		f.report(devs[3], f.v3, proto.StepDownloading, "")
		f.report(devs[4], f.v3, proto.StepFailed, proto.ReasonInstallFailed)
		f.tick()
		if got := f.show(imm); got.State != rollout.StateAborted {
			t.Fatalf("abort count 1 with one failure: %s", got.State)
		}
		f.report(devs[3], f.v3, proto.StepFailed, proto.ReasonDownloadFailed)
		f.mustState(imm, devs[3], rollout.DUFailed)
		if _, ok := f.assignment(devs[3]); ok {
			t.Fatal("a device failing after the abort kept the aborted rollout's assignment")
		}
		f.noOffer(devs[3], "failed after the abort")
	})
}

// TestStoppedRolloutTimesOut: an update of an ended rollout that makes no
// progress times out like a live one's and loses its assignment; and an
// assignment of an ended rollout whose row finished (as the engine left
// them before) is not offered.
func TestStoppedRolloutTimesOut(t *testing.T) {
	eachDialect(t, func(t *testing.T, f *fx) {
		ctx := context.Background()
		devs := f.devices(2)
		r := f.create(rollout.CreateRequest{Phases: all100, DeviceTimeout: 600})
		f.checkin(devs[0], mains)
		f.report(devs[0], f.v2, proto.StepDownloading, "")
		if _, err := f.svc.Cancel(ctx, f.p, r.ID); err != nil {
			t.Fatal(err)
		}
		f.clk.Advance(9 * time.Minute)
		f.tick()
		f.mustState(r, devs[0], rollout.DUDownloading)
		f.clk.Advance(2 * time.Minute)
		f.tick()
		if u := f.mustState(r, devs[0], rollout.DUTimedOut); u.FinishedAt == nil {
			t.Fatalf("timed-out row: %+v", u)
		}
		if _, ok := f.assignment(devs[0]); ok {
			t.Fatal("a timed-out device of a cancelled rollout kept its assignment")
		}
		f.noOffer(devs[0], "timed out after the cancel")

		// A finished row of an ended rollout whose assignment remained.
		now := f.clk.Now()
		f.write(func(tx *store.Tx) error {
			if err := tx.PutDeviceUpdate(ctx, f.p.OrgID, rollout.DeviceUpdate{RolloutID: r.ID, DeviceID: devs[1].ID, State: rollout.DURolledBack,
				Attempts: 1, Artifact: "delta", Bytes: deltaSize, OfferedAt: now, UpdatedAt: now, FinishedAt: &now, Failures: 1}); err != nil {
				return err
			}
			return tx.PutAssignment(ctx, f.p.OrgID, rollout.Assignment{DeviceID: devs[1].ID, ReleaseID: f.v2.ID, RolloutID: r.ID,
				AssignedBy: "rollout " + r.ID, AssignedAt: now})
		})
		f.noOffer(devs[1], "a finished row of a cancelled rollout")
	})
}

// hookStore runs before once before the next write transaction: a
// deterministic stand-in for a change that lands between a check-in's
// reads and its write.
type hookStore struct {
	rollout.Store
	before func()
}

func (h *hookStore) Write(ctx context.Context, fn func(rollout.Tx) error) error {
	if b := h.before; b != nil {
		h.before = nil
		b()
	}
	return h.Store.Write(ctx, fn)
}

// TestOfferRechecksRollout: an offer decided from a stale view writes
// nothing when the rollout was cancelled or paused meanwhile — through
// another replica (whose cache this one does not see) or in this process
// between the check-in's reads and its write — and never overwrites a
// person's assignment made in between. The storage fail-fast re-checks
// likewise.
func TestOfferRechecksRollout(t *testing.T) {
	eachDialect(t, func(t *testing.T, f *fx) {
		ctx := context.Background()
		devs := f.devices(8)
		none := func(r rollout.Rollout, d inventory.Device, why string) {
			t.Helper()
			if a, ok := f.assignment(d); ok {
				t.Fatalf("%s: assignment written: %+v", why, a)
			}
			if u, err := f.du(r, d); !problem.Is(err, problem.KindNotFound) {
				t.Fatalf("%s: row written: %+v %v", why, u, err)
			}
		}

		// Replica B caches the running rollout; replica A cancels it.
		r := f.create(rollout.CreateRequest{Phases: all100})
		b := rollout.NewService(f.db.Rollout(), f.clk)
		if o, err := b.Offer(ctx, devs[0], mains); err != nil || o == nil {
			t.Fatalf("replica B's first offer: %+v %v", o, err)
		}
		if _, err := f.svc.Cancel(ctx, f.p, r.ID); err != nil {
			t.Fatal(err)
		}
		if o, err := b.Offer(ctx, devs[1], mains); err != nil || o != nil {
			t.Fatalf("replica B offered a rollout replica A cancelled: %+v %v", o, err)
		}
		none(r, devs[1], "offer after another replica's cancel")

		// Pause through A while B's cache says running.
		f.clk.Advance(rollout.CacheTTL)
		p := f.create(rollout.CreateRequest{ReleaseID: f.v3.ID, Phases: all100})
		if o, err := b.Offer(ctx, devs[2], mains); err != nil || o == nil || o.RolloutID != p.ID {
			t.Fatalf("replica B's offer of the second rollout: %+v %v", o, err)
		}
		if _, err := f.svc.Pause(ctx, f.p, p.ID); err != nil {
			t.Fatal(err)
		}
		if o, err := b.Offer(ctx, devs[3], mains); err != nil || o != nil {
			t.Fatalf("replica B offered a rollout replica A paused: %+v %v", o, err)
		}
		none(p, devs[3], "offer after another replica's pause")
		if _, err := f.svc.Resume(ctx, f.p, p.ID); err != nil {
			t.Fatal(err)
		}

		// In one process: the cancel lands between the reads and the write.
		hs := &hookStore{Store: f.db.Rollout()}
		c := rollout.NewService(hs, f.clk)
		hs.before = func() {
			if _, err := c.Cancel(ctx, f.p, p.ID); err != nil {
				t.Error(err)
			}
		}
		if o, err := c.Offer(ctx, devs[4], mains); err != nil || o != nil {
			t.Fatalf("offered a rollout cancelled during the check-in: %+v %v", o, err)
		}
		none(p, devs[4], "offer racing a cancel")

		// A person's assignment made during the check-in wins.
		f.clk.Advance(rollout.CacheTTL)
		q := f.create(rollout.CreateRequest{ReleaseID: f.v3.ID, Phases: all100})
		if _, err := c.Offer(ctx, devs[7], mains); err != nil { // loads c's cache
			t.Fatal(err)
		}
		hs.before = func() {
			if _, err := f.svc.Assign(ctx, f.p, devs[5].ID, rollout.AssignRequest{ReleaseID: f.v2.ID}); err != nil {
				t.Error(err)
			}
		}
		o, err := c.Offer(ctx, devs[5], mains)
		if err != nil || o == nil || o.RolloutID != "" || o.Mode != proto.ModeForced {
			t.Fatalf("a person's assignment made during the check-in: reply %+v %v", o, err)
		}
		if a, _ := f.assignment(devs[5]); a.RolloutID != "" || a.ReleaseID != f.v2.ID || a.AssignedBy != "alice" {
			t.Fatalf("the rollout overwrote a person's assignment: %+v", a)
		}
		if _, err := f.du(q, devs[5]); !problem.Is(err, problem.KindNotFound) {
			t.Fatalf("a row was written for a device a person pinned: %v", err)
		}

		// Fail-fast (too little storage) racing a cancel records nothing.
		hs.before = func() {
			if _, err := c.Cancel(ctx, f.p, q.ID); err != nil {
				t.Error(err)
			}
		}
		tight := proto.State{OnMains: true, Link: "ethernet", FreeStorage: 10}
		if o, err := c.Offer(ctx, devs[6], tight); err != nil || o != nil {
			t.Fatalf("fail-fast racing a cancel: %+v %v", o, err)
		}
		none(q, devs[6], "fail-fast racing a cancel")
	})
}

// TestResumeCountsRetriedFailures: failures are cumulative. 10 devices
// fail and pause the rollout (count 10); after the resume acknowledged
// them, the same 10 retry and fail again and 9 more fail: 19 new failures,
// so it pauses again (counting current states, 19 − 10 = 9 hid them).
func TestResumeCountsRetriedFailures(t *testing.T) {
	eachDialect(t, func(t *testing.T, f *fx) {
		ctx := context.Background()
		devs := f.devices(24)
		r := f.create(rollout.CreateRequest{Phases: all100, PauseFailureCount: 10, PauseFailureRatio: 1})
		for _, d := range devs {
			if f.checkin(d, mains) == nil {
				t.Fatalf("%s not offered", d.Serial)
			}
		}
		ok, retried, more := devs[:5], devs[5:15], devs[15:]
		for _, d := range ok {
			f.report(d, f.v2, proto.StepCommitted, "")
		}
		for _, d := range retried {
			f.report(d, f.v2, proto.StepFailed, proto.ReasonInstallFailed)
		}
		f.tick()
		if got := f.show(r); got.State != rollout.StatePaused {
			t.Fatalf("10 failures with count 10: %s", got.State)
		}
		got, err := f.svc.Resume(ctx, f.p, r.ID)
		if err != nil || got.FailuresAcked != 10 {
			t.Fatalf("resume: %+v %v", got, err)
		}
		for _, d := range retried {
			if o := f.checkin(d, mains); o == nil {
				t.Fatalf("%s not offered a retry", d.Serial)
			}
			f.report(d, f.v2, proto.StepFailed, proto.ReasonInstallFailed)
			if u := f.mustState(r, d, rollout.DUFailed); u.Attempts != 2 || u.Failures != 2 {
				t.Fatalf("retried row: %+v", u)
			}
		}
		for _, d := range more {
			f.report(d, f.v2, proto.StepFailed, proto.ReasonInstallFailed)
		}
		f.tick()
		got2 := f.show(r)
		if got2.State != rollout.StatePaused || !strings.Contains(got2.StateReason, "19 update attempts failed") {
			t.Fatalf("19 failures after the resume with count 10: %s (%s)", got2.State, got2.StateReason)
		}
		got, err = f.svc.Resume(ctx, f.p, r.ID)
		if err != nil || got.FailuresAcked != 29 {
			t.Fatalf("second resume acknowledges all 29 failed attempts: %+v %v", got, err)
		}
	})
}

// TestProgressKeepsSlowUpdatesAlive: periodic progress reports (repeated
// "downloading" with bytes_done and new report ids) refresh the row's
// last progress, so a download longer than the device timeout does not
// time out; silence for the timeout still does.
func TestProgressKeepsSlowUpdatesAlive(t *testing.T) {
	eachDialect(t, func(t *testing.T, f *fx) {
		d := f.devices(1)[0]
		r := f.create(rollout.CreateRequest{Phases: all100, DeviceTimeout: 600, PauseFailureRatio: 1})
		f.checkin(d, mains)
		total := int64(100 << 20)
		for i := range int64(10) { // 10 × 4 min = 40 min, four times the timeout
			done := i * total / 10
			if _, err := f.svc.RecordStatus(context.Background(), d, proto.UpdateStatus{ReportID: id.New(), ReleaseID: f.v2.ID,
				Step: proto.StepDownloading, BytesDone: &done, BytesTotal: &total, At: f.clk.Now()}); err != nil {
				t.Fatal(err)
			}
			f.clk.Advance(4 * time.Minute)
			f.tick()
			if u := f.mustState(r, d, rollout.DUDownloading); !u.UpdatedAt.Equal(f.clk.Now().Add(-4 * time.Minute)) {
				t.Fatalf("progress report %d did not refresh the row: %+v", i, u)
			}
		}
		f.clk.Advance(7 * time.Minute) // 11 min since the last report
		f.tick()
		f.mustState(r, d, rollout.DUTimedOut)
	})
}

// TestDeferredInstallDoesNotTimeOut: a device at "downloaded" in a soft
// rollout may defer the install; it does not time out before the
// deadline (then it has the device timeout to go on), nor at all without
// a deadline. A forced rollout's device at "downloaded" still times out.
func TestDeferredInstallDoesNotTimeOut(t *testing.T) {
	eachDialect(t, func(t *testing.T, f *fx) {
		devs := f.devices(3)
		g := []inventory.Group{f.group("soft", devs[0]), f.group("deadline", devs[1]), f.group("forced", devs[2])}
		deadline := t0.Add(2 * time.Hour)
		rs := []rollout.Rollout{
			f.create(rollout.CreateRequest{TargetGroupID: g[0].ID, Phases: all100, Mode: rollout.ModeSoft, DeviceTimeout: 600}),
			f.create(rollout.CreateRequest{TargetGroupID: g[1].ID, Phases: all100, Mode: rollout.ModeSoft, DeviceTimeout: 600, Deadline: &deadline}),
			f.create(rollout.CreateRequest{TargetGroupID: g[2].ID, Phases: all100, Mode: rollout.ModeForced, DeviceTimeout: 600}),
		}
		for i, d := range devs {
			if o := f.checkin(d, mains); o == nil || o.RolloutID != rs[i].ID {
				t.Fatalf("device %d: %+v", i, o)
			}
			f.report(d, f.v2, proto.StepDownloading, "")
			f.report(d, f.v2, proto.StepDownloaded, "")
		}
		f.clk.Advance(20 * time.Minute)
		f.tick()
		f.mustState(rs[0], devs[0], rollout.DUDownloaded)
		f.mustState(rs[1], devs[1], rollout.DUDownloaded)
		f.mustState(rs[2], devs[2], rollout.DUTimedOut)
		f.clk.Advance(deadline.Add(5 * time.Minute).Sub(f.clk.Now()))
		f.tick()
		f.mustState(rs[1], devs[1], rollout.DUDownloaded) // 5 min past the deadline, of a 10 min timeout
		f.clk.Advance(6 * time.Minute)
		f.tick()
		f.mustState(rs[1], devs[1], rollout.DUTimedOut)
		f.clk.Advance(10 * time.Hour)
		f.tick()
		f.mustState(rs[0], devs[0], rollout.DUDownloaded)
	})
}

// TestDownloadOnlyNotOfferedAgain: once a device downloaded a
// download-only rollout's release it is not offered it again at every
// check-in (live or ended rollout); a later forced rollout of the same
// release installs it.
func TestDownloadOnlyNotOfferedAgain(t *testing.T) {
	eachDialect(t, func(t *testing.T, f *fx) {
		d := f.devices(1)[0]
		r := f.create(rollout.CreateRequest{Phases: all100, Mode: rollout.ModeDownloadOnly})
		if o := f.checkin(d, mains); o == nil || o.Mode != proto.ModeDownloadOnly {
			t.Fatalf("offer: %+v", o)
		}
		f.report(d, f.v2, proto.StepDownloading, "")
		f.report(d, f.v2, proto.StepDownloaded, "")
		f.mustState(r, d, rollout.DUSucceeded)
		f.noOffer(d, "download-only, downloaded, rollout live")
		f.tick()
		if got := f.show(r); got.State != rollout.StateCompleted {
			t.Fatalf("download-only rollout with its one device done: %s", got.State)
		}
		f.noOffer(d, "download-only, downloaded, rollout completed")
		install := f.create(rollout.CreateRequest{Phases: all100, Mode: rollout.ModeForced})
		if o := f.checkin(d, mains); o == nil || o.RolloutID != install.ID || o.Mode != proto.ModeForced {
			t.Fatalf("installing a downloaded release through a forced rollout: %+v", o)
		}
	})
}

// TestSupersededOfferAudited: the rollout.offer event of an offer that
// superseded another rollout's names it.
func TestSupersededOfferAudited(t *testing.T) {
	eachDialect(t, func(t *testing.T, f *fx) {
		d := f.devices(1)[0]
		sched := f.create(rollout.CreateRequest{ReleaseID: f.v3.ID, Phases: all100})
		f.checkin(d, mains)
		imm := f.create(rollout.CreateRequest{ReleaseID: f.v2.ID, Phases: all100, Urgency: rollout.UrgencyImmediate})
		if o := f.checkin(d, mains); o == nil || o.RolloutID != imm.ID {
			t.Fatalf("immediate offer: %+v", o)
		}
		f.mustState(sched, d, rollout.DUCancelled)
		var evs []audit.Event
		if err := f.db.Read(context.Background(), func(tx *store.Tx) error {
			var err error
			evs, err = tx.ListAudit(context.Background(), audit.Query{OrgID: f.p.OrgID, Action: "rollout.offer", Limit: 10})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if len(evs) != 2 {
			t.Fatalf("%d rollout.offer events, want 2", len(evs))
		}
		var last, first map[string]any
		if err := json.Unmarshal(evs[0].Details, &last); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(evs[1].Details, &first); err != nil {
			t.Fatal(err)
		}
		if last["rollout_id"] != imm.ID || last["superseded_rollout_id"] != sched.ID {
			t.Fatalf("superseding offer's audit details: %v", last)
		}
		if _, ok := first["superseded_rollout_id"]; ok {
			t.Fatalf("a first offer names a superseded rollout: %v", first)
		}
	})
}

// TestImmediateWakeSpread: an immediate rollout's wake-ups spread over as
// long as the organization's devices take at the server's check-in
// budget, at least a minute and at most agent/wake.MaxSpread.
func TestImmediateWakeSpread(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		devices int
		rate    float64
		want    time.Duration
	}{
		{0, 500, time.Minute},
		{1000, 500, time.Minute},
		{100000, 500, 200 * time.Second},
		{100001, 500, 201 * time.Second},
		{100000, 1667, time.Minute},
		{10_000_000, 500, time.Hour},
		{100, 0, time.Minute},
	} {
		if got := rollout.WakeSpreadFor(c.devices, c.rate); got != c.want {
			t.Errorf("WakeSpreadFor(%d, %v) = %v, want %v", c.devices, c.rate, got, c.want)
		}
	}
	f := newFx(t)
	w := &fakeWaker{}
	f.svc.SetWaker(w)
	f.devices(30)
	f.create(rollout.CreateRequest{Urgency: rollout.UrgencyImmediate, Phases: all100})
	f.svc.SetCheckinBudget(0.25) // 30 devices at 0.25/s: 2 minutes
	f.svc.SetCheckinBudget(-1)   // ignored
	f.create(rollout.CreateRequest{Urgency: rollout.UrgencyImmediate, ReleaseID: f.v3.ID, Phases: all100})
	if len(w.spreads) != 2 || w.spreads[0] != time.Minute || w.spreads[1] != 2*time.Minute {
		t.Fatalf("wake-up spreads: %v, want [1m 2m]", w.spreads)
	}
}

// TestCancelRacingOffers: check-ins on several replicas racing a cancel
// leave no offer behind. Each replica decided from a view that says
// running; whichever commits first, no device ends up with an offered row
// or an assignment of the cancelled rollout (on PostgreSQL the offers'
// share lock orders them against the cancel).
func TestCancelRacingOffers(t *testing.T) {
	eachDialect(t, func(t *testing.T, f *fx) {
		ctx := context.Background()
		devs := f.devices(48)
		r := f.create(rollout.CreateRequest{Phases: all100})
		replicas := make([]*rollout.Service, 4)
		for i := range replicas {
			replicas[i] = rollout.NewService(f.db.Rollout(), f.clk)
			if _, err := replicas[i].Offer(ctx, devs[i], mains); err != nil { // load its cache: running
				t.Fatal(err)
			}
		}
		errs := make(chan error, len(devs))
		start := make(chan struct{})
		for i, d := range devs[len(replicas):] {
			go func() {
				<-start
				_, err := replicas[i%len(replicas)].Offer(ctx, d, mains)
				errs <- err
			}()
		}
		close(start)
		if _, err := f.svc.Cancel(ctx, f.p, r.ID); err != nil {
			t.Fatal(err)
		}
		for range devs[len(replicas):] {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		for _, d := range devs {
			if a, ok := f.assignment(d); ok {
				t.Errorf("device %s kept an assignment of the cancelled rollout: %+v", d.Serial, a)
			}
			if u, err := f.du(r, d); err == nil && u.State != rollout.DUCancelled {
				t.Errorf("device %s: %s in a cancelled rollout", d.Serial, u.State)
			}
		}
	})
}
