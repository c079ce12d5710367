package rollout

import (
	"context"
	"slices"
	"time"

	"github.com/steward-iot/steward/agent/proto"
	"github.com/steward-iot/steward/internal/access"
	"github.com/steward-iot/steward/internal/audit"
	"github.com/steward-iot/steward/internal/inventory"
	"github.com/steward-iot/steward/internal/problem"
	"github.com/steward-iot/steward/internal/release"
	"github.com/steward-iot/steward/internal/rollout/window"
)

// OutOfCycleGrace is how long an out-of-cycle rollout's phase honours
// maintenance windows: after it, devices of the phase update at their next
// check-in, window or not.
const OutOfCycleGrace = 4 * time.Hour

// Reasons a device waits; recorded nowhere (no row is made for a waiting
// device) but returned by decide for tests and logs.
const (
	waitWindow  = "outside its maintenance window"
	waitBattery = "battery below the rollout's minimum and not on mains"
	waitMetered = "on a metered link and no delta applies to its image"
)

// deviceView is what one check-in reads about the device, in one read
// transaction, when its organization has live rollouts for its product.
type deviceView struct {
	assignment *Assignment
	assigned   release.Release // the release of a person's assignment
	installed  *release.Release
	updates    map[string]DeviceUpdate // by rollout id, live rollouts only
	// held is the ended rollout whose update the device had started when
	// the rollout was cancelled or aborted: it finishes that first.
	held   *Rollout
	groups []string
	tags   map[string]string
}

// Offer decides, at a device's check-in, whether it should update now and
// how; nil means nothing to do. st is the state the device reports now.
// It is the hot path: with no live rollout for the device's product it
// costs what a direct assignment always cost (one read); otherwise one
// read transaction of indexed lookups, plus one write when the device
// becomes eligible.
func (s *Service) Offer(ctx context.Context, d inventory.Device, st proto.State) (*proto.UpdateOffer, error) {
	now := s.clock.Now()
	view, err := s.cache.get(ctx, d.OrgID, now, s.loadView)
	if err != nil {
		return nil, err
	}
	var cands []*live
	for _, l := range view.rollouts {
		if l.ProductID == d.ProductID {
			cands = append(cands, l)
		}
	}
	if len(cands) == 0 {
		return s.direct(ctx, d)
	}
	dv, err := s.readDevice(ctx, d, cands, view)
	if err != nil {
		return nil, err
	}
	return s.decide(ctx, d, inventory.State(st), dv, cands, view, now)
}

// direct answers from the assignment alone: update when it names a
// release other than the one the device runs. A rollout's assignment is
// offered only while the device's row of that rollout is in flight: not
// once the device is done with it (a download-only rollout it downloaded,
// a failure, a withdrawn offer), whatever the rollout's state.
func (s *Service) direct(ctx context.Context, d inventory.Device) (*proto.UpdateOffer, error) {
	var off *proto.UpdateOffer
	now := s.clock.Now()
	err := s.store.Read(ctx, func(tx Tx) error {
		off = nil
		a, err := tx.AssignmentOf(ctx, d.OrgID, d.ID)
		if problem.Is(err, problem.KindNotFound) {
			return nil
		} else if err != nil {
			return err
		}
		r, err := tx.ReleaseByID(ctx, d.OrgID, a.ReleaseID)
		if err != nil || r.Version == d.InstalledVersion {
			return err
		}
		if a.RolloutID == "" {
			off = &proto.UpdateOffer{Mode: proto.ModeForced}
			return nil
		}
		ro, err := tx.RolloutByID(ctx, d.OrgID, a.RolloutID)
		if err != nil {
			return err
		}
		u, err := tx.DeviceUpdate(ctx, d.OrgID, ro.ID, d.ID)
		switch {
		case err == nil && !inFlight[u.State]:
			return nil
		case err != nil && !problem.Is(err, problem.KindNotFound):
			return err
		}
		off = offerOf(ro, now)
		return nil
	})
	return off, err
}

func (s *Service) readDevice(ctx context.Context, d inventory.Device, cands []*live, view *orgView) (deviceView, error) {
	needTags := slices.ContainsFunc(cands, func(l *live) bool { return l.needTags }) ||
		slices.ContainsFunc(view.windows, func(w groupWin) bool { return w.needTags })
	var dv deviceView
	err := s.store.Read(ctx, func(tx Tx) error {
		dv = deviceView{updates: map[string]DeviceUpdate{}}
		a, err := tx.AssignmentOf(ctx, d.OrgID, d.ID)
		switch {
		case err == nil:
			dv.assignment = &a
			if a.RolloutID == "" {
				if dv.assigned, err = tx.ReleaseByID(ctx, d.OrgID, a.ReleaseID); err != nil {
					return err
				}
			}
		case !problem.Is(err, problem.KindNotFound):
			return err
		}
		if d.InstalledVersion != "" {
			r, err := tx.ReleaseByVersion(ctx, d.OrgID, d.ProductID, d.InstalledVersion)
			if err == nil {
				dv.installed = &r
			} else if !problem.Is(err, problem.KindNotFound) {
				return err
			}
		}
		us, err := tx.LiveDeviceUpdates(ctx, d.OrgID, d.ID)
		if err != nil {
			return err
		}
		for _, u := range us {
			dv.updates[u.RolloutID] = u
		}
		if a := dv.assignment; a != nil && a.RolloutID != "" {
			if _, live := dv.updates[a.RolloutID]; !live {
				if dv.held, err = heldBy(ctx, tx, d, a.RolloutID); err != nil {
					return err
				}
			}
		}
		if dv.groups, err = tx.DeviceGroupIDs(ctx, d.ID); err != nil {
			return err
		}
		if needTags {
			dv.tags, err = tx.DeviceTags(ctx, d.ID)
		}
		return err
	})
	return dv, err
}

// heldBy returns the ended rollout rolloutID when the device had started
// its update (and does not run its release yet), else nil.
func heldBy(ctx context.Context, tx Tx, d inventory.Device, rolloutID string) (*Rollout, error) {
	u, err := tx.DeviceUpdate(ctx, d.OrgID, rolloutID, d.ID)
	if problem.Is(err, problem.KindNotFound) {
		return nil, nil
	} else if err != nil || !started(u.State) {
		return nil, err
	}
	r, err := tx.RolloutByID(ctx, d.OrgID, rolloutID)
	if err != nil {
		return nil, err
	}
	rel, err := tx.ReleaseByID(ctx, d.OrgID, r.ReleaseID)
	if err != nil || rel.Version == d.InstalledVersion {
		return nil, err
	}
	return &r, nil
}

// offerOf is what the check-in reply says about r's update; past the
// deadline a soft update is no longer optional.
func offerOf(r Rollout, now time.Time) *proto.UpdateOffer {
	o := &proto.UpdateOffer{RolloutID: r.ID, Mode: r.Mode, Urgency: r.Urgency, Deadline: r.Deadline}
	if r.Mode == ModeSoft && r.Deadline != nil && !now.IsZero() && !now.Before(*r.Deadline) {
		o.Mode = ModeForced
	}
	return o
}

// higher orders rollouts by the priority rule of docs/rollouts.md:
// urgency, then the higher release counter, then the older rollout.
func higher(a, b *live) bool {
	if ua, ub := urgencyRank(a.Urgency), urgencyRank(b.Urgency); ua != ub {
		return ua > ub
	}
	if a.release.Counter != b.release.Counter {
		return a.release.Counter > b.release.Counter
	}
	if !a.CreatedAt.Equal(b.CreatedAt) {
		return a.CreatedAt.Before(b.CreatedAt)
	}
	return a.ID < b.ID
}

func (s *Service) decide(ctx context.Context, d inventory.Device, st inventory.State, dv deviceView, cands []*live, view *orgView, now time.Time) (*proto.UpdateOffer, error) {
	// A person's assignment the device has not installed yet wins over
	// every rollout: people pin devices on purpose.
	if a := dv.assignment; a != nil && a.RolloutID == "" && dv.assigned.Version != d.InstalledVersion {
		return &proto.UpdateOffer{Mode: proto.ModeForced}, nil
	}
	// An update under way continues, whatever else has started since: a
	// device is never pulled off a download or install, not even by the
	// end of its rollout.
	if dv.held != nil {
		return offerOf(*dv.held, now), nil
	}
	byID := map[string]*live{}
	for _, l := range cands {
		byID[l.ID] = l
	}
	var offered *live
	for rid, u := range dv.updates {
		l := byID[rid]
		if l == nil || !inFlight[u.State] || l.release.Version == d.InstalledVersion {
			continue
		}
		if started(u.State) || l.State == StatePaused {
			return offerOf(l.Rollout, now), nil
		}
		offered = l
	}
	rec := record{d: d, st: st, tags: dv.tags, now: now}
	var ranked []*live
	for _, l := range cands {
		if l.State != StateRunning || l.release.Version == d.InstalledVersion {
			continue
		}
		if dv.installed != nil && dv.installed.Counter >= l.release.Counter {
			continue // the device would refuse it (anti-rollback) or already has newer
		}
		if !InPhase(l.ID, d.ID, l.Percent()) {
			continue
		}
		rec.hardwareID = l.hardwareID
		if !l.targets(rec, dv.groups, now) {
			continue
		}
		if u, ok := dv.updates[l.ID]; ok {
			if u.State == DUSucceeded || u.State == DUCancelled || failure[u.State] && u.Attempts > l.MaxRetries {
				continue
			}
		}
		ranked = append(ranked, l)
	}
	slices.SortFunc(ranked, func(a, b *live) int {
		if higher(a, b) {
			return -1
		}
		return 1
	})
	if len(ranked) == 0 {
		if offered != nil {
			return offerOf(offered.Rollout, now), nil
		}
		return s.fallback(ctx, d, dv)
	}
	top := ranked[0]
	if top == offered {
		return offerOf(top.Rollout, now), nil
	}
	artifact, bytes := top.sends(dv.installed)
	if reason := top.waits(st, artifact, s.windowOpen(view, rec, dv.groups, st, now), now); reason != "" {
		if offered != nil {
			return offerOf(offered.Rollout, now), nil
		}
		return nil, nil
	}
	if st.FreeStorage > 0 && st.FreeStorage < bytes {
		return nil, s.failFast(ctx, d, top, artifact, bytes, st.FreeStorage, now)
	}
	return s.offer(ctx, d, top, offered, artifact, bytes, now)
}

// fallback serves an assignment no live rollout decides about any more
// (say, of a cancelled rollout the device had started).
func (s *Service) fallback(ctx context.Context, d inventory.Device, dv deviceView) (*proto.UpdateOffer, error) {
	if dv.assignment == nil || dv.assignment.RolloutID == "" {
		return nil, nil
	}
	return s.direct(ctx, d)
}

// targets reports whether the device is in the rollout's target.
func (l *live) targets(rec record, groups []string, now time.Time) bool {
	if l.staticGroup != "" {
		return slices.Contains(groups, l.staticGroup)
	}
	return l.query == nil || l.query.Match(rec, now)
}

// sends is what the device would download: the delta whose precursor is
// the image it runs, else the full image.
func (l *live) sends(installed *release.Release) (string, int64) {
	if installed != nil {
		best := int64(-1)
		for _, a := range installed.Artifacts {
			if n, ok := l.deltas[a.SHA256]; ok && a.Kind == release.KindFull && (best < 0 || n < best) {
				best = n
			}
		}
		if best >= 0 {
			return release.KindDelta, best
		}
	}
	return release.KindFull, l.fullBytes
}

// waits returns why the device should wait rather than start now, or "".
func (l *live) waits(st inventory.State, artifact string, windowOpen bool, now time.Time) string {
	pastDeadline := l.Deadline != nil && !now.Before(*l.Deadline)
	// Low battery is never overridden: an update that dies halfway can
	// brick a device, which no urgency justifies.
	if st.BatteryPercent != nil && !st.OnMains && *st.BatteryPercent < l.MinBattery {
		return waitBattery
	}
	if st.Metered && artifact != release.KindDelta && l.Urgency == UrgencyScheduled && !pastDeadline {
		return waitMetered
	}
	ignoreWindows := l.Mode == ModeForced || l.Urgency == UrgencyImmediate || pastDeadline
	switch {
	case ignoreWindows || windowOpen:
		return ""
	case l.Urgency == UrgencyOutOfCycle && now.Sub(l.PhaseStartedAt) >= OutOfCycleGrace:
		return ""
	}
	return waitWindow
}

// windowOpen reports whether every window that applies to the device is
// open: the device's own (if it reports one that parses) and, if it is in
// groups with windows, at least one of those.
func (s *Service) windowOpen(view *orgView, rec record, groups []string, st inventory.State, now time.Time) bool {
	if st.MaintenanceWindow != "" {
		if w, err := window.ParseDevice(st.MaintenanceWindow); err == nil && !w.Open(now) {
			return false
		}
	}
	applies, open := false, false
	for _, gw := range view.windows {
		member := gw.static && slices.Contains(groups, gw.groupID) || !gw.static && gw.query.Match(rec, now)
		if member {
			applies = true
			if gw.win.Open(now) {
				open = true
				break
			}
		}
	}
	return !applies || open
}

var rolloutActor = access.System("rollout")

// offer records the device's update as offered and assigns the release.
// The decision came from a cache that may be seconds old and from reads
// outside this transaction, so the transaction checks again what it
// depends on: the rollout is still running with the device in its current
// phase (read under a share lock, so a cancel, abort, pause or advance
// waits for this offer or this offer sees it), no person assigned the
// device a release it does not run yet, and the device has not started
// another rollout's update meanwhile. When the rollout changed, nothing is
// written and the device is offered nothing now; its next check-in decides
// afresh.
func (s *Service) offer(ctx context.Context, d inventory.Device, l *live, superseded *live, artifact string, bytes int64, now time.Time) (*proto.UpdateOffer, error) {
	var off *proto.UpdateOffer
	stale := false
	err := s.store.Write(ctx, func(tx Tx) error {
		off, stale = nil, false // a retried transaction starts over
		r, ok, err := stillOffering(ctx, tx, d, l.ID)
		if err != nil || !ok {
			stale = err == nil
			return err
		}
		a, err := tx.AssignmentOf(ctx, d.OrgID, d.ID)
		hasA := err == nil
		if err != nil && !problem.Is(err, problem.KindNotFound) {
			return err
		}
		if hasA && a.RolloutID == "" {
			rel, err := tx.ReleaseByID(ctx, d.OrgID, a.ReleaseID)
			if err != nil {
				return err
			}
			if rel.Version != d.InstalledVersion {
				off = &proto.UpdateOffer{Mode: proto.ModeForced} // a person pinned the device meanwhile
				return nil
			}
		}
		u, err := tx.DeviceUpdate(ctx, d.OrgID, r.ID, d.ID)
		var prev DeviceUpdate
		switch {
		case err == nil && inFlight[u.State]:
			off = offerOf(r, now) // a concurrent check-in of the same device got here first
			return nil
		case err == nil:
			prev = u
		case !problem.Is(err, problem.KindNotFound):
			return err
		}
		// Offers of other rollouts the device has not started give way:
		// the one the check-in saw, and the one the assignment names now.
		var others []string
		if superseded != nil && superseded.ID != r.ID {
			others = append(others, superseded.ID)
		}
		if hasA && a.RolloutID != "" && a.RolloutID != r.ID && !slices.Contains(others, a.RolloutID) {
			others = append(others, a.RolloutID)
		}
		var cancelled []string
		for _, rid := range others {
			old, err := tx.DeviceUpdate(ctx, d.OrgID, rid, d.ID)
			if problem.Is(err, problem.KindNotFound) {
				continue
			} else if err != nil {
				return err
			}
			if started(old.State) {
				// The device began that update since the check-in read:
				// it continues with it.
				cur, err := tx.RolloutByID(ctx, d.OrgID, rid)
				if err != nil {
					return err
				}
				off = offerOf(cur, now)
				return nil
			}
			if old.State == DUOffered {
				old.State, old.Reason, old.UpdatedAt, old.FinishedAt = DUCancelled, "superseded by rollout "+r.ID, now, &now
				if err := tx.PutDeviceUpdate(ctx, d.OrgID, old); err != nil {
					return err
				}
				cancelled = append(cancelled, rid)
			}
		}
		nu := DeviceUpdate{RolloutID: r.ID, DeviceID: d.ID, Phase: r.Phase, State: DUOffered, Attempts: prev.Attempts + 1,
			Artifact: artifact, Bytes: bytes, OfferedAt: now, UpdatedAt: now, Failures: prev.Failures}
		if err := tx.PutDeviceUpdate(ctx, d.OrgID, nu); err != nil {
			return err
		}
		if err := tx.PutAssignment(ctx, d.OrgID, Assignment{DeviceID: d.ID, ReleaseID: r.ReleaseID, RolloutID: r.ID,
			AssignedBy: "rollout " + r.ID, AssignedAt: now}); err != nil {
			return err
		}
		details := map[string]any{"rollout_id": r.ID, "release_id": r.ReleaseID, "phase": r.Phase, "attempt": nu.Attempts,
			"artifact": artifact, "bytes": bytes}
		switch len(cancelled) {
		case 0:
		case 1:
			details["superseded_rollout_id"] = cancelled[0]
		default:
			details["superseded_rollout_id"], details["superseded_rollout_ids"] = cancelled[0], cancelled
		}
		_, err = tx.AppendAudit(ctx, audit.Record{OrgID: d.OrgID, Actor: rolloutActor, Action: "rollout.offer",
			TargetType: "device", TargetID: d.ID, Details: details})
		off = offerOf(r, now)
		return err
	})
	if err != nil {
		return nil, err
	}
	if stale {
		s.cache.invalidate(d.OrgID)
	}
	return off, nil
}

// stillOffering re-reads rollout id under a share lock and reports
// whether it may still offer to the device: running, with the device's
// bucket in its current phase.
func stillOffering(ctx context.Context, tx Tx, d inventory.Device, id string) (Rollout, bool, error) {
	r, err := tx.LockRollout(ctx, d.OrgID, id)
	if err != nil {
		return r, false, err
	}
	return r, r.State == StateRunning && InPhase(r.ID, d.ID, r.Percent()), nil
}

// failFast records that the device cannot hold what it would be sent.
func (s *Service) failFast(ctx context.Context, d inventory.Device, l *live, artifact string, bytes, free int64, now time.Time) error {
	stale := false
	err := s.store.Write(ctx, func(tx Tx) error {
		r, ok, err := stillOffering(ctx, tx, d, l.ID)
		if stale = err == nil && !ok; err != nil || !ok {
			return err
		}
		var prev DeviceUpdate
		u, err := tx.DeviceUpdate(ctx, d.OrgID, r.ID, d.ID)
		if err == nil {
			if inFlight[u.State] {
				return nil
			}
			prev = u
		} else if !problem.Is(err, problem.KindNotFound) {
			return err
		}
		nu := DeviceUpdate{RolloutID: r.ID, DeviceID: d.ID, Phase: r.Phase, State: DUFailed, Attempts: prev.Attempts + 1,
			Artifact: artifact, Bytes: bytes, Reason: proto.ReasonInsufficientStorage, OfferedAt: now, UpdatedAt: now, FinishedAt: &now,
			Failures: prev.Failures + 1}
		if err := tx.PutDeviceUpdate(ctx, d.OrgID, nu); err != nil {
			return err
		}
		_, err = tx.AppendAudit(ctx, audit.Record{OrgID: d.OrgID, Actor: rolloutActor, Action: "rollout.fail_fast",
			TargetType: "device", TargetID: d.ID, Details: map[string]any{"rollout_id": r.ID, "reason": proto.ReasonInsufficientStorage,
				"artifact": artifact, "bytes": bytes, "free_storage_bytes": free, "attempt": nu.Attempts}})
		return err
	})
	if stale {
		s.cache.invalidate(d.OrgID)
	}
	return err
}
