package rollout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/steward-iot/steward/internal/audit"
	"github.com/steward-iot/steward/internal/clock"
	"github.com/steward-iot/steward/internal/inventory"
	"github.com/steward-iot/steward/internal/inventory/query"
	"github.com/steward-iot/steward/internal/problem"
)

// Elector makes one scheduler at a time the leader among replicas.
type Elector interface {
	// Lead blocks until this process leads or ctx ends. The returned
	// context ends when leadership is lost; release gives it up.
	Lead(ctx context.Context) (leading context.Context, release func(), err error)
}

// ratioMinSample is how many finished devices a failure ratio needs
// before it can pause or abort a rollout; below it only the failure
// counts apply (one failure of the first device is not 100%).
const ratioMinSample = 5

// Scheduler moves rollouts on: it advances phases, pauses or aborts on
// failures, times out stuck updates and completes rollouts. Only the
// elected leader ticks.
type Scheduler struct {
	svc      *Service
	elector  Elector
	interval time.Duration
	log      *slog.Logger
}

// NewScheduler returns a scheduler ticking every interval while it leads.
func NewScheduler(svc *Service, e Elector, interval time.Duration, log *slog.Logger) *Scheduler {
	if interval <= 0 {
		interval = 10 * time.Second
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Scheduler{svc: svc, elector: e, interval: interval, log: log}
}

// Run seeks leadership and ticks while it holds it, until ctx ends.
func (sc *Scheduler) Run(ctx context.Context) {
	for ctx.Err() == nil {
		leading, release, err := sc.elector.Lead(ctx)
		if err != nil {
			if ctx.Err() == nil {
				sc.log.Warn("rollout scheduler: election failed; retrying", "err", err)
				sleep(ctx, sc.interval)
			}
			continue
		}
		sc.log.Info("rollout scheduler: leading")
		sc.lead(leading)
		release()
		if ctx.Err() == nil {
			sc.log.Warn("rollout scheduler: lost leadership; seeking it again")
		}
	}
}

func (sc *Scheduler) lead(ctx context.Context) {
	t := time.NewTicker(sc.interval)
	defer t.Stop()
	for {
		if err := sc.svc.Tick(ctx); err != nil && ctx.Err() == nil {
			sc.log.Warn("rollout scheduler: tick failed; will retry", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

var schedulerActor = rolloutActor

// Tick makes one pass over every live rollout, and times out the updates
// still in flight of rollouts that ended while devices were updating. The
// leader's scheduler calls it every interval; tests call it with a fake
// clock. Every change is a compare-and-set in its own transaction (and a
// phase entered is UNIQUE per rollout), so two ticks racing — an old
// leader that has not noticed it lost — cannot apply a transition twice.
func (s *Service) Tick(ctx context.Context) error {
	var rs, ended []Rollout
	if err := s.store.Read(ctx, func(tx Tx) error {
		var err error
		if rs, err = tx.LiveRollouts(ctx, ""); err != nil {
			return err
		}
		ended, err = tx.StoppedRolloutsInFlight(ctx)
		return err
	}); err != nil {
		return err
	}
	var errs []error
	for _, r := range rs {
		if err := s.step(ctx, r); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", describe(r), err))
		}
	}
	now := clock.Norm(s.clock.Now())
	for _, r := range ended {
		if err := s.timeOut(ctx, r, now); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", describe(r), err))
		}
	}
	return errors.Join(errs...)
}

// step moves one rollout on as far as one tick may.
func (s *Service) step(ctx context.Context, r Rollout) error {
	now := clock.Norm(s.clock.Now())
	changed := false
	defer func() {
		if changed {
			s.cache.invalidate(r.OrgID)
		}
	}()
	if err := s.timeOut(ctx, r, now); err != nil {
		return err
	}
	if r.State != StateRunning {
		return nil
	}
	var counts []StateCount
	if err := s.store.Read(ctx, func(tx Tx) error {
		var err error
		counts, err = tx.CountDeviceUpdates(ctx, r.OrgID, r.ID)
		return err
	}); err != nil {
		return err
	}
	t := tallyOf(counts)
	if to, why := judge(r, t); to != "" {
		changed = true
		return s.halt(ctx, r, to, why, now)
	}
	if r.Phase == len(r.Phases)-1 {
		done, err := s.finished(ctx, r)
		if err != nil || !done {
			return err
		}
		changed = true
		return s.complete(ctx, r, t, now)
	}
	ok, why, err := s.ready(ctx, r, t, now)
	if err != nil || !ok {
		return err
	}
	changed = true
	return s.advance(ctx, r, why, now)
}

// judge applies the failure thresholds, abort before pause, to the
// cumulative failures (every failed, rolled-back or timed-out attempt,
// retries included: a row that fails again counts again). Ratios divide
// them by the finished attempts (successes plus cumulative failures).
// Abort thresholds count every failure; pause thresholds only those since
// the last resume (which acknowledged the ones before).
func judge(r Rollout, t tally) (to, why string) {
	over := func(failed, finished, count int, limit float64) (bool, string) {
		if count > 0 && failed >= count {
			return true, fmt.Sprintf("%d update attempts failed (threshold %d)", failed, count)
		}
		if limit > 0 && finished >= ratioMinSample && float64(failed) >= limit*float64(finished) {
			return true, fmt.Sprintf("%d of %d finished update attempts failed (%.1f%%, threshold %.1f%%)", failed, finished,
				100*float64(failed)/float64(finished), 100*limit)
		}
		return false, ""
	}
	finished := t.succeeded + t.failures
	if ok, why := over(t.failures, finished, r.AbortFailureCount, r.AbortFailureRatio); ok {
		return StateAborted, why
	}
	if ok, why := over(t.failures-r.FailuresAcked, finished-r.FailuresAcked, r.PauseFailureCount, r.PauseFailureRatio); ok {
		return StatePaused, why
	}
	return "", ""
}

// EffectiveSoak is how long r's current phase must run before the next:
// its minimum soak scaled by urgency, and shortened so that the last phase
// starts by the deadline.
func EffectiveSoak(r Rollout, now time.Time) time.Duration {
	soak := time.Duration(float64(time.Duration(r.Phases[r.Phase].MinSoakSeconds)*time.Second) * soakFactor(r.Urgency))
	if r.Deadline != nil {
		left := len(r.Phases) - 1 - r.Phase
		if left > 0 {
			soak = min(soak, max(r.Deadline.Sub(r.PhaseStartedAt)/time.Duration(left), 0))
		}
	}
	return soak
}

// ready reports whether r may enter its next phase, and why.
func (s *Service) ready(ctx context.Context, r Rollout, t tally, now time.Time) (bool, string, error) {
	pastDeadline := r.Deadline != nil && !now.Before(*r.Deadline)
	if pastDeadline {
		return true, "deadline reached", nil
	}
	if now.Sub(r.PhaseStartedAt) < EffectiveSoak(r, now) {
		return false, "", nil
	}
	if t.offered > 0 {
		ratio := float64(t.succeeded) / float64(t.offered)
		if ratio >= r.SuccessRatio {
			return true, fmt.Sprintf("%d of %d offered devices succeeded (%.1f%%)", t.succeeded, t.offered, 100*ratio), nil
		}
		return false, "", nil
	}
	// Nobody offered yet: advance only if the phase holds no device to
	// wait for (a small fleet's 1% may be empty).
	empty, err := s.phaseEmpty(ctx, r)
	if err != nil || !empty {
		return false, "", err
	}
	return true, "no devices of the target fall in this phase", nil
}

// phaseEmpty reports whether no target device that still needs the
// release falls within the current phase's buckets.
func (s *Service) phaseEmpty(ctx context.Context, r Rollout) (bool, error) {
	cond, err := s.targetCond(ctx, r)
	if err != nil {
		return false, err
	}
	const page = 1000
	after := ""
	for {
		var ids []string
		if err := s.store.Read(ctx, func(tx Tx) error {
			var err error
			ids, err = tx.TargetDeviceIDs(ctx, r.OrgID, r.ProductID, cond, after, page)
			return err
		}); err != nil {
			return false, err
		}
		for _, id := range ids {
			if InPhase(r.ID, id, r.Percent()) {
				return false, nil
			}
		}
		if len(ids) < page {
			return true, nil
		}
		after = ids[len(ids)-1]
	}
}

// finished reports whether every device of the target has the release or
// is done with it (succeeded, failed for good, or cancelled).
func (s *Service) finished(ctx context.Context, r Rollout) (bool, error) {
	cond, err := s.targetCond(ctx, r)
	if err != nil {
		return false, err
	}
	var n int
	err = s.store.Read(ctx, func(tx Tx) error {
		rel, err := tx.ReleaseByID(ctx, r.OrgID, r.ReleaseID)
		if err != nil {
			return err
		}
		n, err = tx.CountTargetPending(ctx, r.OrgID, r.ProductID, rel.Version, r.ID, r.MaxRetries+1, cond)
		return err
	})
	return n == 0, err
}

// targetCond is r's target as an SQL condition.
func (s *Service) targetCond(ctx context.Context, r Rollout) (Cond, error) {
	src := r.TargetQuery
	if r.TargetGroupID != "" {
		var g string
		var static bool
		if err := s.store.Read(ctx, func(tx Tx) error {
			gr, err := tx.GroupByID(ctx, r.OrgID, r.TargetGroupID)
			g, static = gr.Query, gr.Query == ""
			return err
		}); err != nil {
			return nil, err
		}
		if static {
			gid := r.TargetGroupID
			return func(next func(any) string) (string, error) {
				return "d.id IN (SELECT device_id FROM device_group_members WHERE group_id = " + next(gid) + ")", nil
			}, nil
		}
		src = g
	}
	if src == "" {
		return nil, nil
	}
	q, err := query.Parse(src, inventory.Schema)
	if err != nil {
		return nil, fmt.Errorf("target of %s: %w", describe(r), err)
	}
	now := s.clock.Now()
	return func(next func(any) string) (string, error) { return q.SQL(inventory.Schema, now, next) }, nil
}

// timeOut marks r's stuck updates timed out and takes back their
// assignments; r may have ended (devices that had started). The timeout
// runs from a row's last progress (any report about it). A device at
// "downloaded" in a soft or download-only rollout may be deferring the
// install on purpose (the user is busy): it times out only once the
// deadline has passed by the timeout, and never without a deadline.
func (s *Service) timeOut(ctx context.Context, r Rollout, now time.Time) error {
	timeout := time.Duration(r.DeviceTimeout) * time.Second
	before := now.Add(-timeout)
	hold := (r.Mode == ModeSoft || r.Mode == ModeDownloadOnly) && (r.Deadline == nil || now.Before(r.Deadline.Add(timeout)))
	return s.store.Write(ctx, func(tx Tx) error {
		n, err := tx.TimeOutDeviceUpdates(ctx, r.OrgID, r.ID, before, now, hold)
		if err != nil || n == 0 {
			return err
		}
		if _, err := tx.DropRolloutAssignments(ctx, r.OrgID, r.ID, []string{DUTimedOut}); err != nil {
			return err
		}
		_, err = tx.AppendAudit(ctx, audit.Record{OrgID: r.OrgID, Actor: schedulerActor, Action: "rollout.timeouts", TargetType: "rollout",
			TargetID: r.ID, Details: map[string]any{"devices": n, "timeout_seconds": r.DeviceTimeout}})
		return err
	})
}

// halt pauses or aborts r on its failure thresholds.
func (s *Service) halt(ctx context.Context, r Rollout, to, why string, now time.Time) error {
	return s.store.Write(ctx, func(tx Tx) error {
		details := map[string]any{"reason": why}
		if to == StateAborted {
			d, err := stop(ctx, tx, r, StateAborted, why, now)
			if problem.Is(err, problem.KindConflict) {
				return nil // another scheduler got there first
			} else if err != nil {
				return err
			}
			details = d
		} else {
			ok, err := tx.SetRolloutState(ctx, r.OrgID, r.ID, StateRunning, StatePaused, why, now)
			if err != nil || !ok {
				return err
			}
		}
		details["from"], details["to"], details["phase"] = r.State, to, r.Phase
		action := map[string]string{StatePaused: "rollout.pause", StateAborted: "rollout.abort"}[to]
		_, err := tx.AppendAudit(ctx, audit.Record{OrgID: r.OrgID, Actor: schedulerActor, Action: action, TargetType: "rollout",
			TargetID: r.ID, Details: details})
		return err
	})
}

// advance enters r's next phase, once.
func (s *Service) advance(ctx context.Context, r Rollout, why string, now time.Time) error {
	next := r.Phase + 1
	applied := false
	err := s.store.Write(ctx, func(tx Tx) error {
		applied = false
		ok, err := tx.AdvanceRolloutPhase(ctx, r.OrgID, r.ID, r.Phase, next, now)
		if err != nil || !ok {
			return err // moved on by another tick, or paused meanwhile
		}
		if err := tx.InsertTransition(ctx, r.OrgID, Transition{RolloutID: r.ID, Phase: next, Percent: r.Phases[next].Percent,
			Reason: why, At: now}); err != nil {
			return err
		}
		_, err = tx.AppendAudit(ctx, audit.Record{OrgID: r.OrgID, Actor: schedulerActor, Action: "rollout.advance", TargetType: "rollout",
			TargetID: r.ID, Details: map[string]any{"from_phase": r.Phase, "to_phase": next, "percent": r.Phases[next].Percent, "reason": why}})
		applied = err == nil
		return err
	})
	if err != nil {
		return err
	}
	if applied {
		r.Phase = next
		s.wake(ctx, r, fmt.Sprintf("rollout-phase-%d", next+1))
	}
	return nil
}

// complete ends r: every device of its target is done with it.
func (s *Service) complete(ctx context.Context, r Rollout, t tally, now time.Time) error {
	return s.store.Write(ctx, func(tx Tx) error {
		ok, err := tx.SetRolloutState(ctx, r.OrgID, r.ID, StateRunning, StateCompleted, "every device of the target has the release or is done with it", now)
		if err != nil || !ok {
			return err
		}
		_, err = tx.AppendAudit(ctx, audit.Record{OrgID: r.OrgID, Actor: schedulerActor, Action: "rollout.complete", TargetType: "rollout",
			TargetID: r.ID, Details: map[string]any{"succeeded": t.succeeded, "failed": t.failed, "failed_attempts": t.failures, "offered": t.offered}})
		return err
	})
}
