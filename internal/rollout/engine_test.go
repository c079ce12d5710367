package rollout_test

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/steward-iot/steward/agent/proto"
	"github.com/steward-iot/steward/agent/wake"
	"github.com/steward-iot/steward/internal/access"
	"github.com/steward-iot/steward/internal/clock"
	"github.com/steward-iot/steward/internal/id"
	"github.com/steward-iot/steward/internal/inventory"
	"github.com/steward-iot/steward/internal/inventory/query"
	"github.com/steward-iot/steward/internal/problem"
	"github.com/steward-iot/steward/internal/release"
	"github.com/steward-iot/steward/internal/rollout"
	"github.com/steward-iot/steward/internal/store"
	"github.com/steward-iot/steward/internal/store/storetest"
	"github.com/steward-iot/steward/internal/tenancy"
)

// t0 is 10:00 UTC, outside the 02:00-04:00 windows the tests use.
var t0 = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

type fx struct {
	t          *testing.T
	db         *store.DB
	clk        *clock.Fake
	svc        *rollout.Service
	p          access.Principal
	prod       inventory.Product
	v1, v2, v3 release.Release // counters 1, 2, 3; v2 and v3 carry a delta from v1's image
}

const fullSize, deltaSize = 1000, 100

func newFx(t *testing.T) *fx { return newFxOn(t, store.SQLite) }

// newFxOn is newFx on a database of dialect d.
func newFxOn(t *testing.T, d store.Dialect) *fx {
	t.Helper()
	f := &fx{t: t, clk: clock.NewFake(t0)}
	f.db = storetest.New(t, d, f.clk)
	f.svc = rollout.NewService(f.db.Rollout(), f.clk)
	f.write(func(tx *store.Tx) error {
		org := tenancy.Org{ID: id.New(), Slug: "acme", Name: "Acme", CreatedAt: t0}
		if err := tx.InsertOrg(context.Background(), org); err != nil {
			return err
		}
		f.p = access.Principal{OrgID: org.ID, OrgSlug: org.Slug, Role: access.RoleAdmin, Actor: access.Actor{Kind: access.ActorToken, ID: "tok", Name: "alice"}}
		f.prod = inventory.Product{ID: id.New(), OrgID: org.ID, Slug: "gw", Name: "Gateway", HardwareID: "gw-1",
			Capability: inventory.CapabilityAB, LinkClass: "cellular", CreatedAt: t0}
		if err := tx.InsertProduct(context.Background(), f.prod); err != nil {
			return err
		}
		f.v1 = f.release(tx, "1.0", 1, "")
		f.v2 = f.release(tx, "2.0", 2, f.v1.Artifacts[0].SHA256)
		f.v3 = f.release(tx, "3.0", 3, f.v1.Artifacts[0].SHA256)
		return nil
	})
	return f
}

func (f *fx) write(fn func(tx *store.Tx) error) {
	f.t.Helper()
	if err := f.db.Write(context.Background(), fn); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fx) release(tx *store.Tx, version string, counter int64, precursor string) release.Release {
	art := func(name string, size int64) release.Artifact {
		a := release.Artifact{ID: id.New(), OrgID: f.p.OrgID, Name: name, SHA256: fmt.Sprintf("%064x", len(name)*1000+int(counter)),
			SHA512: "x", Size: size, CreatedAt: t0}
		if err := tx.InsertArtifact(context.Background(), a); err != nil {
			f.t.Fatal(err)
		}
		return a
	}
	r := release.Release{ID: id.New(), OrgID: f.p.OrgID, ProductID: f.prod.ID, Product: f.prod.Slug, Version: version, Counter: counter,
		Fixes: []string{}, CreatedAt: t0, Artifacts: []release.ReleaseArtifact{{Artifact: art("fw-"+version+".img", fullSize), Kind: release.KindFull}}}
	if precursor != "" {
		r.Artifacts = append(r.Artifacts, release.ReleaseArtifact{Artifact: art("fw-"+version+".delta", deltaSize), Kind: release.KindDelta, PrecursorSHA256: precursor})
	}
	if err := tx.InsertRelease(context.Background(), r, nil); err != nil {
		f.t.Fatal(err)
	}
	return r
}

// device enrolls an active device running version 1.0.
func (f *fx) device(serial string, tags map[string]string) inventory.Device {
	f.t.Helper()
	d := inventory.Device{ID: id.New(), OrgID: f.p.OrgID, ProductID: f.prod.ID, Product: f.prod.Slug, Serial: serial, KeyID: "k-" + serial,
		Algorithm: "ed25519", PublicKeyPEM: "pem", Status: "active", EnrolledVia: "test", CreatedAt: f.clk.Now(),
		StatusChangedAt: f.clk.Now(), InstalledVersion: "1.0", Tags: tags}
	f.write(func(tx *store.Tx) error {
		if err := tx.InsertDevice(context.Background(), d); err != nil {
			return err
		}
		if err := tx.RecordSoftware(context.Background(), inventory.Software{DeviceID: d.ID, Version: "1.0",
			VersionKey: query.VersionKey("1.0"), Hash: "h", At: f.clk.Now()}); err != nil {
			return err
		}
		if len(tags) > 0 {
			return tx.SetDeviceTags(context.Background(), d.ID, tags)
		}
		return nil
	})
	return d
}

func (f *fx) devices(n int) []inventory.Device {
	out := make([]inventory.Device, n)
	for i := range out {
		out[i] = f.device(fmt.Sprintf("D%04d", i), nil)
	}
	return out
}

func (f *fx) group(name string, members ...inventory.Device) inventory.Group {
	g := inventory.Group{ID: id.New(), OrgID: f.p.OrgID, Name: name, CreatedAt: t0}
	f.write(func(tx *store.Tx) error {
		if err := tx.InsertGroup(context.Background(), g); err != nil {
			return err
		}
		ids := make([]string, len(members))
		for i, d := range members {
			ids[i] = d.ID
		}
		return tx.AddGroupMembers(context.Background(), g.ID, ids)
	})
	return g
}

func (f *fx) create(req rollout.CreateRequest) rollout.Rollout {
	f.t.Helper()
	if req.ReleaseID == "" {
		req.ReleaseID = f.v2.ID
	}
	if req.TargetQuery == "" && req.TargetGroupID == "" {
		req.TargetQuery = `product = "gw"`
	}
	if req.Urgency == "" {
		req.Urgency = rollout.UrgencyScheduled
	}
	if req.Mode == "" {
		req.Mode = rollout.ModeForced
	}
	r, err := f.svc.Create(context.Background(), f.p, req)
	if err != nil {
		f.t.Fatalf("create rollout: %v", err)
	}
	return r
}

var mains = proto.State{OnMains: true, Link: "ethernet", FreeStorage: 1 << 30}

func (f *fx) checkin(d inventory.Device, st proto.State) *proto.UpdateOffer {
	f.t.Helper()
	o, err := f.svc.Offer(context.Background(), d, st)
	if err != nil {
		f.t.Fatalf("check-in of %s: %v", d.Serial, err)
	}
	return o
}

func (f *fx) report(d inventory.Device, rel release.Release, step, reason string) {
	f.t.Helper()
	_, err := f.svc.RecordStatus(context.Background(), d, proto.UpdateStatus{ReportID: id.New(), ReleaseID: rel.ID, Step: step,
		ReasonCode: reason, At: f.clk.Now()})
	if err != nil {
		f.t.Fatalf("report %s of %s: %v", step, d.Serial, err)
	}
}

func (f *fx) tick() {
	f.t.Helper()
	if err := f.svc.Tick(context.Background()); err != nil {
		f.t.Fatalf("tick: %v", err)
	}
}

func (f *fx) show(r rollout.Rollout) rollout.Progress {
	f.t.Helper()
	pr, err := f.svc.Show(context.Background(), f.p, r.ID)
	if err != nil {
		f.t.Fatal(err)
	}
	return pr
}

func (f *fx) du(r rollout.Rollout, d inventory.Device) (rollout.DeviceUpdate, error) {
	var u rollout.DeviceUpdate
	err := f.db.Read(context.Background(), func(tx *store.Tx) error {
		var err error
		u, err = tx.DeviceUpdate(context.Background(), f.p.OrgID, r.ID, d.ID)
		return err
	})
	return u, err
}

func (f *fx) assignment(d inventory.Device) (rollout.Assignment, bool) {
	var a rollout.Assignment
	err := f.db.Read(context.Background(), func(tx *store.Tx) error {
		var err error
		a, err = tx.AssignmentOf(context.Background(), f.p.OrgID, d.ID)
		return err
	})
	if err != nil && !problem.Is(err, problem.KindNotFound) {
		f.t.Fatal(err)
	}
	return a, err == nil
}

// TestBucketDistribution: buckets of 100,000 device ids are uniform
// (each phase holds its share within 5 standard deviations), nested (a
// device in 1% is in 10%), and independent between rollouts.
func TestBucketDistribution(t *testing.T) {
	t.Parallel()
	const n = 100000
	r1, r2 := id.New(), id.New()
	in := map[float64]int{}
	both := 0
	for range n {
		d := id.New()
		for _, pct := range []float64{0.5, 1, 10, 50} {
			if rollout.InPhase(r1, d, pct) {
				in[pct]++
			}
		}
		if rollout.InPhase(r1, d, 1) && !rollout.InPhase(r1, d, 10) {
			t.Fatalf("device %s is in the 1%% phase but not the 10%% one", d)
		}
		if rollout.InPhase(r1, d, 10) && rollout.InPhase(r2, d, 10) {
			both++
		}
		if b := rollout.Bucket(r1, d); b < 0 || b >= rollout.Buckets {
			t.Fatalf("bucket %d out of range", b)
		}
	}
	check := func(what string, got int, p float64) {
		mean, sd := n*p, math.Sqrt(n*p*(1-p))
		if math.Abs(float64(got)-mean) > 5*sd {
			t.Errorf("%s: %d devices, want %.0f ± %.0f", what, got, mean, 5*sd)
		}
	}
	for pct, got := range in {
		check(fmt.Sprintf("%v%% phase", pct), got, pct/100)
	}
	check("in the 10% phase of two rollouts", both, 0.01)
	dev := id.New()
	if b := rollout.Bucket(r1, dev); rollout.Bucket(r1, dev) != b || rollout.Bucket(r1+"x", dev) == b && rollout.Bucket(r2, dev) == b {
		t.Fatal("buckets are not deterministic, or do not depend on the rollout")
	}
}

// TestPhaseAdvanceAndComplete: only the first phase's devices are offered;
// the scheduler waits out the soak time and the success threshold, enters
// the next phase once (one transition each), and completes when every
// target device has the release.
func TestPhaseAdvanceAndComplete(t *testing.T) {
	t.Parallel()
	f := newFx(t)
	devs := f.devices(30)
	// Half the fleet: with 30 devices both halves are empty with
	// probability 2^-29, so the test does not flake.
	r := f.create(rollout.CreateRequest{Phases: []rollout.Phase{{Percent: 50, MinSoakSeconds: 3600}, {Percent: 100}}})
	var first []inventory.Device
	for _, d := range devs {
		o := f.checkin(d, mains)
		if o != nil != rollout.InPhase(r.ID, d.ID, 50) {
			t.Fatalf("device %s offered=%v, in phase=%v", d.Serial, o != nil, rollout.InPhase(r.ID, d.ID, 50))
		}
		if o != nil {
			if o.RolloutID != r.ID || o.Mode != rollout.ModeForced || o.Urgency != rollout.UrgencyScheduled {
				t.Fatalf("offer: %+v", o)
			}
			a, ok := f.assignment(d)
			if !ok || a.RolloutID != r.ID || a.ReleaseID != f.v2.ID {
				t.Fatalf("offered device's assignment: %+v %v", a, ok)
			}
			first = append(first, d)
		}
	}
	if len(first) == 0 || len(first) == len(devs) {
		t.Fatalf("%d of %d devices in a 50%% phase", len(first), len(devs))
	}
	// A second check-in does not offer again (attempts stay 1).
	f.checkin(first[0], mains)
	if u, _ := f.du(r, first[0]); u.Attempts != 1 || u.State != rollout.DUOffered || u.Artifact != release.KindDelta || u.Bytes != deltaSize {
		t.Fatalf("device update after a repeated check-in: %+v", u)
	}
	for _, d := range first {
		f.report(d, f.v2, proto.StepDownloading, "")
		f.report(d, f.v2, proto.StepCommitted, "")
	}
	f.tick()
	if got := f.show(r); got.Phase != 0 || got.Succeeded != len(first) {
		t.Fatalf("advanced before the soak time: phase %d, succeeded %d", got.Phase, got.Succeeded)
	}
	f.clk.Advance(time.Hour)
	f.tick()
	f.tick() // a second tick must not enter the phase again
	pr := f.show(r)
	if pr.Phase != 1 || len(pr.Transitions) != 2 || pr.PhaseDetails[0].Devices[rollout.DUSucceeded] != len(first) {
		t.Fatalf("after the soak: %+v", pr)
	}
	for _, d := range devs {
		if d.InstalledVersion = "1.0"; containsDev(first, d) {
			d.InstalledVersion = "2.0"
		}
		if o := f.checkin(d, mains); o != nil {
			f.report(d, f.v2, proto.StepCommitted, "")
		}
	}
	// The target's devices still report 1.0 in the store until their
	// software changes; record it as check-ins would.
	f.write(func(tx *store.Tx) error {
		for _, d := range devs {
			if err := tx.RecordSoftware(context.Background(), inventory.Software{DeviceID: d.ID, Version: "2.0",
				VersionKey: query.VersionKey("2.0"), Hash: "h2", At: f.clk.Now()}); err != nil {
				return err
			}
		}
		return nil
	})
	f.tick()
	if pr := f.show(r); pr.State != rollout.StateCompleted || pr.Succeeded != len(devs) || pr.Failed != 0 {
		t.Fatalf("after every device succeeded: %s, %d succeeded, %d failed", pr.State, pr.Succeeded, pr.Failed)
	}
}

func containsDev(ds []inventory.Device, d inventory.Device) bool {
	for _, x := range ds {
		if x.ID == d.ID {
			return true
		}
	}
	return false
}

// all100 is a one-phase rollout, so every target device is in it.
var all100 = []rollout.Phase{{Percent: 100}}

// TestPauseAtFailureRatio pauses once the failure ratio over finished
// devices reaches the threshold; a paused rollout offers no one new, and
// resuming acknowledges the failures so far.
func TestPauseAtFailureRatio(t *testing.T) {
	t.Parallel()
	f := newFx(t)
	devs := f.devices(10)
	r := f.create(rollout.CreateRequest{Phases: []rollout.Phase{{Percent: 100}}, PauseFailureRatio: 0.3})
	for i, d := range devs[:6] {
		if f.checkin(d, mains) == nil {
			t.Fatal("no offer at 100%")
		}
		if i < 2 {
			f.report(d, f.v2, proto.StepFailed, proto.ReasonInstallFailed)
		} else if i < 4 {
			f.report(d, f.v2, proto.StepCommitted, "")
		}
	}
	f.tick() // 2 of 4 finished failed, but 4 is below the sample for a ratio
	if got := f.show(r); got.State != rollout.StateRunning {
		t.Fatalf("paused on a sample of 4: %s", got.StateReason)
	}
	f.report(devs[4], f.v2, proto.StepCommitted, "")
	f.tick() // 2 of 5 = 40% ≥ 30%
	got := f.show(r)
	if got.State != rollout.StatePaused || got.Failed != 2 {
		t.Fatalf("after 2 of 5 failed: %s (%s), failed %d", got.State, got.StateReason, got.Failed)
	}
	if o := f.checkin(devs[8], mains); o != nil {
		t.Fatalf("a paused rollout offered a new device: %+v", o)
	}
	if o := f.checkin(devs[5], mains); o == nil || o.RolloutID != r.ID {
		t.Fatalf("a device offered before the pause lost its offer: %+v", o)
	}
	if _, err := f.svc.Resume(context.Background(), f.p, r.ID); err != nil {
		t.Fatal(err)
	}
	f.tick()
	if got := f.show(r); got.State != rollout.StateRunning || got.FailuresAcked != 2 {
		t.Fatalf("resumed rollout paused again on old failures: %s %d", got.State, got.FailuresAcked)
	}
	if f.checkin(devs[8], mains) == nil {
		t.Fatal("a resumed rollout offers nothing")
	}
}

// TestPauseAndAbortAtFailureCount: counts act below any ratio sample;
// abort takes back offers not yet started.
func TestPauseAndAbortAtFailureCount(t *testing.T) {
	t.Parallel()
	f := newFx(t)
	devs := f.devices(4)
	r := f.create(rollout.CreateRequest{Phases: all100, PauseFailureRatio: 1, PauseFailureCount: 1, AbortFailureCount: 2, AbortFailureRatio: 1})
	for _, d := range devs {
		f.checkin(d, mains)
	}
	f.report(devs[0], f.v2, proto.StepFailed, proto.ReasonDownloadFailed)
	f.tick()
	if got := f.show(r); got.State != rollout.StatePaused {
		t.Fatalf("one failure with count threshold 1: %s", got.State)
	}
	if _, err := f.svc.Resume(context.Background(), f.p, r.ID); err != nil {
		t.Fatal(err)
	}
	f.report(devs[1], f.v2, proto.StepDownloading, "")
	f.report(devs[2], f.v2, proto.StepFailed, proto.ReasonHealthCheckFailed)
	f.tick() // 2 failures in all reach the abort count
	got := f.show(r)
	if got.State != rollout.StateAborted {
		t.Fatalf("two failures with abort count 2: %s", got.State)
	}
	if _, ok := f.assignment(devs[3]); ok {
		t.Fatal("an aborted rollout left an unstarted device its assignment")
	}
	if _, ok := f.assignment(devs[1]); !ok {
		t.Fatal("an aborted rollout pulled the release from a device downloading it")
	}
}

// TestTimeoutCountsAsFailure: an update with no progress for the device
// timeout times out, loses its assignment and counts as a failure.
func TestTimeoutCountsAsFailure(t *testing.T) {
	t.Parallel()
	f := newFx(t)
	d := f.devices(1)[0]
	r := f.create(rollout.CreateRequest{Phases: all100, PauseFailureCount: 1, DeviceTimeout: 600})
	f.checkin(d, mains)
	f.report(d, f.v2, proto.StepDownloading, "")
	f.clk.Advance(9 * time.Minute)
	f.tick()
	if u, _ := f.du(r, d); u.State != rollout.DUDownloading {
		t.Fatalf("timed out early: %+v", u)
	}
	f.clk.Advance(2 * time.Minute)
	f.tick()
	u, _ := f.du(r, d)
	pr := f.show(r)
	if u.State != rollout.DUTimedOut || pr.Failed != 1 || pr.State != rollout.StatePaused {
		t.Fatalf("after the timeout: %+v, failed %d, state %s", u, pr.Failed, pr.State)
	}
	if _, ok := f.assignment(d); ok {
		t.Fatal("a timed-out device kept its assignment")
	}
	// A late success is still the truth.
	f.report(d, f.v2, proto.StepCommitted, "")
	if u, _ := f.du(r, d); u.State != rollout.DUSucceeded {
		t.Fatalf("late commit after a timeout: %+v", u)
	}
}

// TestRetries: a failed device is offered again at a later check-in until
// it has used 1 + max_retries attempts.
func TestRetries(t *testing.T) {
	t.Parallel()
	f := newFx(t)
	d := f.devices(1)[0]
	one := 1
	r := f.create(rollout.CreateRequest{Phases: all100, MaxRetries: &one, PauseFailureRatio: 1})
	for attempt := 1; attempt <= 2; attempt++ {
		if o := f.checkin(d, mains); o == nil {
			t.Fatalf("attempt %d not offered", attempt)
		}
		f.report(d, f.v2, proto.StepFailed, proto.ReasonVerificationFailed)
		if _, ok := f.assignment(d); ok {
			t.Fatalf("attempt %d: a failed device keeps its assignment until offered again", attempt)
		}
		if u, _ := f.du(r, d); u.Attempts != attempt || u.State != rollout.DUFailed || u.Reason != proto.ReasonVerificationFailed {
			t.Fatalf("attempt %d: %+v", attempt, u)
		}
	}
	if o := f.checkin(d, mains); o != nil {
		t.Fatalf("offered after the retries ran out: %+v", o)
	}
}

// TestLateJoinersIncluded: a device that enrolls, or gets the tag the
// target asks for, after the rollout started is offered the release.
func TestLateJoinersIncluded(t *testing.T) {
	t.Parallel()
	f := newFx(t)
	r := f.create(rollout.CreateRequest{Phases: all100, TargetQuery: `tag.region = "eu"`})
	late := f.device("LATE", map[string]string{"region": "eu"})
	if o := f.checkin(late, mains); o == nil || o.RolloutID != r.ID {
		t.Fatalf("a device enrolled after the start: %+v", o)
	}
	other := f.device("US", map[string]string{"region": "us"})
	if o := f.checkin(other, mains); o != nil {
		t.Fatalf("a device outside the target was offered: %+v", o)
	}
	f.write(func(tx *store.Tx) error {
		return tx.SetDeviceTags(context.Background(), other.ID, map[string]string{"region": "eu"})
	})
	if o := f.checkin(other, mains); o == nil {
		t.Fatal("a device that joined the target later was not offered")
	}
	// A static group target includes members added later too.
	g := f.group("canary")
	f.create(rollout.CreateRequest{ReleaseID: f.v3.ID, TargetGroupID: g.ID, Phases: all100})
	member := f.device("MEMBER", nil)
	if o := f.checkin(member, mains); o != nil {
		t.Fatalf("a device not yet in the group was offered: %+v", o)
	}
	f.write(func(tx *store.Tx) error { return tx.AddGroupMembers(context.Background(), g.ID, []string{member.ID}) })
	if o := f.checkin(member, mains); o == nil {
		t.Fatal("a device added to the group later was not offered")
	}
}

// TestPriorityBetweenRollouts: immediate beats scheduled whatever the
// counters; within an urgency the higher release counter wins; a
// person's pending direct assignment beats every rollout; an update under
// way is never pre-empted.
func TestPriorityBetweenRollouts(t *testing.T) {
	t.Parallel()
	f := newFx(t)
	devs := f.devices(3)
	sched3 := f.create(rollout.CreateRequest{ReleaseID: f.v3.ID, Phases: all100})
	sched2 := f.create(rollout.CreateRequest{ReleaseID: f.v2.ID, Phases: all100})
	if o := f.checkin(devs[0], mains); o == nil || o.RolloutID != sched3.ID {
		t.Fatalf("same urgency: want the higher counter %s, got %+v", sched3.ID, o)
	}
	imm := f.create(rollout.CreateRequest{ReleaseID: f.v2.ID, Phases: all100, Urgency: rollout.UrgencyImmediate})
	if o := f.checkin(devs[1], mains); o == nil || o.RolloutID != imm.ID {
		t.Fatalf("immediate must beat scheduled: got %+v", o)
	}
	// devs[0] was only offered sched3: the immediate rollout supersedes it.
	if o := f.checkin(devs[0], mains); o == nil || o.RolloutID != imm.ID {
		t.Fatalf("an unstarted offer is superseded by a higher priority: %+v", o)
	}
	if u, _ := f.du(sched3, devs[0]); u.State != rollout.DUCancelled {
		t.Fatalf("superseded offer: %+v", u)
	}
	// A started update is not pre-empted.
	f.report(devs[1], f.v2, proto.StepDownloading, "")
	imm3 := f.create(rollout.CreateRequest{ReleaseID: f.v3.ID, Phases: all100, Urgency: rollout.UrgencyImmediate})
	if o := f.checkin(devs[1], mains); o == nil || o.RolloutID != imm.ID {
		t.Fatalf("a started update was pre-empted: %+v", o)
	}
	// Equal urgency and counter: the older rollout.
	if _, err := f.svc.Cancel(context.Background(), f.p, imm3.ID); err != nil {
		t.Fatal(err)
	}
	older := f.create(rollout.CreateRequest{ReleaseID: f.v3.ID, Phases: all100, Urgency: rollout.UrgencyImmediate, Name: "older"})
	f.clk.Advance(time.Second)
	f.create(rollout.CreateRequest{ReleaseID: f.v3.ID, Phases: all100, Urgency: rollout.UrgencyImmediate, Name: "newer"})
	if o := f.checkin(devs[2], mains); o == nil || o.RolloutID != older.ID {
		t.Fatalf("equal priority: want the older rollout %s, got %+v", older.ID, o)
	}
	// A person's direct assignment, not yet installed, wins.
	p := f.device("PINNED", nil)
	if _, err := f.svc.Assign(context.Background(), f.p, p.ID, rollout.AssignRequest{ReleaseID: f.v2.ID}); err != nil {
		t.Fatal(err)
	}
	if o := f.checkin(p, mains); o == nil || o.RolloutID != "" || o.Mode != rollout.ModeForced {
		t.Fatalf("direct assignment: %+v", o)
	}
	if a, _ := f.assignment(p); a.RolloutID != "" || a.ReleaseID != f.v2.ID {
		t.Fatalf("a rollout overwrote a person's assignment: %+v", a)
	}
	// Once it runs the assigned release, rollouts reach it again.
	p.InstalledVersion = "2.0"
	if o := f.checkin(p, mains); o == nil || o.RolloutID != older.ID {
		t.Fatalf("after installing the direct assignment: %+v", o)
	}
	_ = sched2
}

// TestWindows: a group window holds back scheduled soft rollouts until it
// opens; out-of-cycle ones wait only OutOfCycleGrace into the phase;
// immediate and forced ones ignore it. The device's own window counts too.
func TestWindows(t *testing.T) {
	t.Parallel()
	f := newFx(t)
	d := f.device("W", nil)
	g := f.group("night", d)
	if _, err := f.svc.SetGroupWindow(context.Background(), f.p, g.ID, rollout.GroupWindow{Cron: "0 2 * * *", DurationSeconds: 7200, TimeZone: "UTC"}); err != nil {
		t.Fatal(err)
	}
	soft := f.create(rollout.CreateRequest{Phases: all100, Mode: rollout.ModeSoft})
	if o := f.checkin(d, mains); o != nil {
		t.Fatalf("scheduled soft at 10:00 with a 02:00-04:00 window: %+v", o)
	}
	outsider := f.device("NOWINDOW", nil)
	if o := f.checkin(outsider, mains); o == nil {
		t.Fatal("a device in no windowed group waited")
	}
	f.clk.Advance(16*time.Hour + 30*time.Minute) // 02:30 next day
	if o := f.checkin(d, mains); o == nil || o.RolloutID != soft.ID || o.Mode != rollout.ModeSoft {
		t.Fatalf("inside the window: %+v", o)
	}

	// The device's own window.
	f2 := newFx(t)
	d2 := f2.device("DW", nil)
	f2.create(rollout.CreateRequest{Phases: all100, Mode: rollout.ModeSoft})
	st := mains
	st.MaintenanceWindow = "02:00-04:00 UTC"
	if o := f2.checkin(d2, st); o != nil {
		t.Fatalf("outside the device's own window: %+v", o)
	}
	st.MaintenanceWindow = "09:00-11:00 UTC"
	if o := f2.checkin(d2, st); o == nil {
		t.Fatal("inside the device's own window: no offer")
	}

	// Out-of-cycle: relaxed after the grace; immediate and forced: ignored.
	for _, c := range []struct {
		urgency, mode string
		wait          bool
	}{{rollout.UrgencyOutOfCycle, rollout.ModeSoft, true}, {rollout.UrgencyImmediate, rollout.ModeSoft, false}, {rollout.UrgencyScheduled, rollout.ModeForced, false}} {
		f := newFx(t)
		d := f.device("W", nil)
		g := f.group("night", d)
		if _, err := f.svc.SetGroupWindow(context.Background(), f.p, g.ID, rollout.GroupWindow{Cron: "0 2 * * *", DurationSeconds: 7200}); err != nil {
			t.Fatal(err)
		}
		f.create(rollout.CreateRequest{Phases: all100, Urgency: c.urgency, Mode: c.mode})
		if o := f.checkin(d, mains); (o == nil) != c.wait {
			t.Fatalf("%s/%s at 10:00: offer %+v, want wait=%v", c.urgency, c.mode, o, c.wait)
		}
		if c.wait {
			f.clk.Advance(rollout.OutOfCycleGrace)
			if o := f.checkin(d, mains); o == nil {
				t.Fatalf("%s after the grace: still waiting", c.urgency)
			}
		}
	}
}

// TestConstraintEligibility: low battery waits at every urgency; a
// metered link takes a delta, waits for a scheduled full image, takes a
// full one when urgency allows; too little storage fails fast with
// insufficient-storage.
func TestConstraintEligibility(t *testing.T) {
	t.Parallel()
	battery := func(pct int, mains bool) proto.State {
		return proto.State{BatteryPercent: &pct, OnMains: mains, Link: "wifi", FreeStorage: 1 << 30}
	}
	f := newFx(t)
	d := f.device("B", nil)
	f.create(rollout.CreateRequest{Phases: all100, Urgency: rollout.UrgencyImmediate})
	if o := f.checkin(d, battery(10, false)); o != nil {
		t.Fatalf("10%% battery on an immediate rollout: %+v", o)
	}
	if o := f.checkin(d, battery(10, true)); o == nil {
		t.Fatal("10% battery on mains: no offer")
	}

	// Metered: d runs 1.0, whose image v2's delta applies to.
	f = newFx(t)
	withDelta, noDelta := f.device("DELTA", nil), f.device("UNKNOWN", nil)
	noDelta.InstalledVersion = "0.9" // an image Steward has no delta from
	r := f.create(rollout.CreateRequest{Phases: all100})
	metered := proto.State{OnMains: true, Link: "cellular", Metered: true, FreeStorage: 1 << 30}
	if o := f.checkin(noDelta, metered); o != nil {
		t.Fatalf("scheduled full image over a metered link: %+v", o)
	}
	if o := f.checkin(withDelta, metered); o == nil {
		t.Fatal("a delta over a metered link: no offer")
	}
	if u, _ := f.du(r, withDelta); u.Artifact != release.KindDelta || u.Bytes != deltaSize {
		t.Fatalf("metered device's update: %+v", u)
	}
	f.create(rollout.CreateRequest{ReleaseID: f.v3.ID, Phases: all100, Urgency: rollout.UrgencyOutOfCycle})
	if o := f.checkin(noDelta, metered); o == nil {
		t.Fatal("out-of-cycle full image over a metered link: no offer")
	}

	// Storage: the full image needs 1000 bytes, the delta 100.
	f = newFx(t)
	small, smallDelta := f.device("SMALL", nil), f.device("SMALLDELTA", nil)
	small.InstalledVersion = "0.9"
	r = f.create(rollout.CreateRequest{Phases: all100})
	tight := proto.State{OnMains: true, Link: "ethernet", FreeStorage: 500}
	if o := f.checkin(small, tight); o != nil {
		t.Fatalf("500 bytes free for a 1000-byte image: %+v", o)
	}
	u, err := f.du(r, small)
	if err != nil || u.State != rollout.DUFailed || u.Reason != proto.ReasonInsufficientStorage || u.Bytes != fullSize {
		t.Fatalf("fail-fast record: %+v %v", u, err)
	}
	if o := f.checkin(smallDelta, tight); o == nil {
		t.Fatal("500 bytes free for a 100-byte delta: no offer")
	}
}

// TestCancel: devices offered but not started get nothing; started ones
// keep their release and finish.
func TestCancel(t *testing.T) {
	t.Parallel()
	f := newFx(t)
	devs := f.devices(2)
	r := f.create(rollout.CreateRequest{Phases: all100})
	for _, d := range devs {
		f.checkin(d, mains)
	}
	f.report(devs[1], f.v2, proto.StepDownloading, "")
	got, err := f.svc.Cancel(context.Background(), f.p, r.ID)
	if err != nil || got.State != rollout.StateCancelled {
		t.Fatalf("cancel: %+v %v", got, err)
	}
	if _, ok := f.assignment(devs[0]); ok {
		t.Fatal("an unstarted device kept the cancelled rollout's assignment")
	}
	if o := f.checkin(devs[0], mains); o != nil {
		t.Fatalf("an unstarted device is still told to update: %+v", o)
	}
	if u, _ := f.du(r, devs[0]); u.State != rollout.DUCancelled {
		t.Fatalf("unstarted device's update: %+v", u)
	}
	if o := f.checkin(devs[1], mains); o == nil {
		t.Fatal("a started device lost its update on cancel")
	}
	if _, err := f.svc.Cancel(context.Background(), f.p, r.ID); !problem.Is(err, problem.KindConflict) {
		t.Fatalf("cancelling twice: %v", err)
	}
	if _, err := f.svc.Pause(context.Background(), f.p, r.ID); !problem.Is(err, problem.KindConflict) {
		t.Fatalf("pausing a cancelled rollout: %v", err)
	}
}

// TestDownloadOnly: a download-only rollout tells the device so and counts
// "downloaded" as success.
func TestDownloadOnly(t *testing.T) {
	t.Parallel()
	f := newFx(t)
	d := f.devices(1)[0]
	r := f.create(rollout.CreateRequest{Phases: all100, Mode: rollout.ModeDownloadOnly})
	if o := f.checkin(d, mains); o == nil || o.Mode != proto.ModeDownloadOnly {
		t.Fatalf("offer: %+v", o)
	}
	f.report(d, f.v2, proto.StepDownloading, "")
	f.report(d, f.v2, proto.StepDownloaded, "")
	if u, _ := f.du(r, d); u.State != rollout.DUSucceeded || u.FinishedAt == nil {
		t.Fatalf("download-only after downloaded: %+v", u)
	}
}

// TestSoakAndDeadline: urgency compresses soak times; a deadline shortens
// them so the last phase starts by it, and past it the rollout advances
// without waiting for successes and soft mode becomes forced.
func TestSoakAndDeadline(t *testing.T) {
	t.Parallel()
	r := rollout.Rollout{Phases: []rollout.Phase{{1, 3600}, {10, 3600}, {100, 0}}, Urgency: rollout.UrgencyScheduled, PhaseStartedAt: t0}
	if got := rollout.EffectiveSoak(r, t0); got != time.Hour {
		t.Fatalf("scheduled soak: %v", got)
	}
	r.Urgency = rollout.UrgencyOutOfCycle
	if got := rollout.EffectiveSoak(r, t0); got != 15*time.Minute {
		t.Fatalf("out-of-cycle soak: %v", got)
	}
	r.Urgency = rollout.UrgencyImmediate
	if got := rollout.EffectiveSoak(r, t0); got != 3*time.Minute {
		t.Fatalf("immediate soak: %v", got)
	}
	r.Urgency = rollout.UrgencyScheduled
	dl := t0.Add(40 * time.Minute)
	r.Deadline = &dl
	if got := rollout.EffectiveSoak(r, t0); got != 20*time.Minute {
		t.Fatalf("soak with 2 phases left and 40m to the deadline: %v", got)
	}

	f := newFx(t)
	d := f.devices(1)[0]
	deadline := t0.Add(30 * time.Minute)
	ro := f.create(rollout.CreateRequest{Phases: []rollout.Phase{{Percent: 0.01, MinSoakSeconds: 86400}, {Percent: 100}}, Mode: rollout.ModeSoft,
		Deadline: &deadline, SuccessRatio: 1})
	f.clk.Advance(30 * time.Minute)
	f.tick()
	if pr := f.show(ro); pr.Phase != 1 || pr.Transitions[1].Reason != "deadline reached" {
		t.Fatalf("at the deadline: phase %d, %+v", pr.Phase, pr.Transitions)
	}
	if o := f.checkin(d, mains); o == nil || o.Mode != rollout.ModeForced || o.Deadline == nil {
		t.Fatalf("a soft update past its deadline: %+v", o)
	}
}

// TestCreateValidation refuses what cannot run.
func TestCreateValidation(t *testing.T) {
	t.Parallel()
	f := newFx(t)
	bad := []rollout.CreateRequest{
		{ReleaseID: id.New(), TargetQuery: `product = "gw"`, Urgency: "scheduled"},
		{ReleaseID: f.v2.ID, TargetQuery: `produkt = "gw"`, Urgency: "scheduled"},
		{ReleaseID: f.v2.ID, TargetQuery: `product = "gw"`, TargetGroupID: "g", Urgency: "scheduled"},
		{ReleaseID: f.v2.ID, TargetQuery: `product = "gw"`, Urgency: "whenever"},
		{ReleaseID: f.v2.ID, TargetQuery: `product = "gw"`, Urgency: "scheduled", Mode: "maybe"},
		{ReleaseID: f.v2.ID, TargetQuery: `product = "gw"`, Urgency: "scheduled", Phases: []rollout.Phase{{Percent: 10}, {Percent: 5}, {Percent: 100}}},
		{ReleaseID: f.v2.ID, TargetQuery: `product = "gw"`, Urgency: "scheduled", Phases: []rollout.Phase{{Percent: 10}, {Percent: 50}}},
		{ReleaseID: f.v2.ID, TargetQuery: `product = "gw"`, Urgency: "scheduled", Phases: []rollout.Phase{{Percent: 0.001}, {Percent: 100}}},
		{ReleaseID: f.v2.ID, TargetQuery: `product = "gw"`, Urgency: "scheduled", SuccessRatio: 1.5},
		{ReleaseID: f.v2.ID, TargetQuery: `product = "gw"`, Urgency: "scheduled", PauseFailureRatio: 0.5, AbortFailureRatio: 0.2},
		{ReleaseID: f.v2.ID, TargetGroupID: id.New(), Urgency: "scheduled"},
		{ReleaseID: f.v2.ID, TargetQuery: `product = "gw"`, Urgency: "scheduled", Deadline: &t0},
	}
	for i, req := range bad {
		if _, err := f.svc.Create(context.Background(), f.p, req); !problem.Is(err, problem.KindInvalid) {
			t.Errorf("case %d %+v: %v, want invalid", i, req, err)
		}
	}
	auditor := f.p
	auditor.Role = access.RoleAuditor
	if _, err := f.svc.Create(context.Background(), auditor, rollout.CreateRequest{ReleaseID: f.v2.ID, TargetQuery: `product = "gw"`, Urgency: "scheduled"}); !problem.Is(err, problem.KindForbidden) {
		t.Fatalf("auditor create: %v", err)
	}
	r := f.create(rollout.CreateRequest{TargetQuery: `product="gw"  and  not metered`})
	if r.TargetQuery != `product = "gw" and not metered` || r.Mode != rollout.ModeForced || len(r.Phases) != 1 && len(r.Phases) != 4 {
		t.Fatalf("created: %+v", r)
	}
	phases, err := rollout.ParsePhases("1:30m, 10,100")
	if err != nil || phases[0].MinSoakSeconds != 1800 || phases[1].MinSoakSeconds != 3600 || phases[2].MinSoakSeconds != 0 {
		t.Fatalf("ParsePhases: %+v %v", phases, err)
	}
	if _, err := rollout.ParsePhases("1,ten"); err == nil {
		t.Fatal("ParsePhases accepted a word")
	}
}

// TestWakeups: an immediate rollout wakes its organization at the start
// and at each phase; a scheduled one never does.
func TestWakeups(t *testing.T) {
	t.Parallel()
	f := newFx(t)
	w := &fakeWaker{}
	f.svc.SetWaker(w)
	f.create(rollout.CreateRequest{Phases: all100})
	if len(w.calls) != 0 {
		t.Fatalf("a scheduled rollout woke devices: %v", w.calls)
	}
	r := f.create(rollout.CreateRequest{Urgency: rollout.UrgencyImmediate, Phases: []rollout.Phase{{Percent: 1, MinSoakSeconds: 60}, {Percent: 100}}})
	f.clk.Advance(time.Minute)
	f.tick() // the empty 1% phase advances
	if len(w.calls) != 2 || w.calls[0] != f.p.OrgID+"/"+r.ID {
		t.Fatalf("wake-ups: %v", w.calls)
	}
}

// fakeWaker records wake-ups, refusing what the real publisher would: a
// reason or rollout id that is not a payload token.
type fakeWaker struct {
	calls   []string
	spreads []time.Duration // of WakeOrg calls
}

func (w *fakeWaker) WakeDevices(ctx context.Context, org string, ids []string, reason, rolloutID string) error {
	if _, err := (wake.Payload{V: wake.Version, Reason: reason, RolloutID: rolloutID}).Encode(); err != nil {
		return err
	}
	w.calls = append(w.calls, org+"/"+rolloutID)
	return nil
}

func (w *fakeWaker) WakeOrg(ctx context.Context, org string, spread time.Duration, reason, rolloutID string) error {
	if _, err := (wake.Payload{V: wake.Version, Reason: reason, RolloutID: rolloutID}).Encode(); err != nil {
		return err
	}
	w.calls = append(w.calls, org+"/"+rolloutID)
	w.spreads = append(w.spreads, spread)
	return nil
}
