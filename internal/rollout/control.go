package rollout

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	agentwake "github.com/steward-iot/steward/agent/wake"
	"github.com/steward-iot/steward/internal/access"
	"github.com/steward-iot/steward/internal/audit"
	"github.com/steward-iot/steward/internal/clock"
	"github.com/steward-iot/steward/internal/id"
	"github.com/steward-iot/steward/internal/inventory"
	"github.com/steward-iot/steward/internal/inventory/query"
	"github.com/steward-iot/steward/internal/paging"
	"github.com/steward-iot/steward/internal/problem"
	"github.com/steward-iot/steward/internal/rollout/window"
	"github.com/steward-iot/steward/internal/wake"
)

// Create validates and starts a rollout: it is running in its first phase
// at once, and devices learn of it at their next check-in.
func (s *Service) Create(ctx context.Context, p access.Principal, req CreateRequest) (Rollout, error) {
	if err := p.Require(access.DeviceWrite); err != nil {
		return Rollout{}, err
	}
	now := clock.Norm(s.clock.Now())
	req, err := req.normalize(now)
	if err != nil {
		return Rollout{}, err
	}
	if req.TargetQuery, err = canonicalQuery(req.TargetQuery); err != nil {
		return Rollout{}, err
	}
	r := Rollout{ID: id.New(), OrgID: p.OrgID, Name: req.Name, ReleaseID: req.ReleaseID, TargetGroupID: req.TargetGroupID,
		TargetQuery: req.TargetQuery, Phases: req.Phases, Urgency: req.Urgency, Mode: req.Mode, SuccessRatio: req.SuccessRatio,
		PauseFailureRatio: req.PauseFailureRatio, PauseFailureCount: req.PauseFailureCount, AbortFailureRatio: req.AbortFailureRatio,
		AbortFailureCount: req.AbortFailureCount, MaxRetries: *req.MaxRetries, DeviceTimeout: req.DeviceTimeout,
		MinBattery: *req.MinBattery, Deadline: req.Deadline, State: StateRunning, PhaseStartedAt: now,
		CreatedBy: p.Actor.Name, CreatedAt: now, UpdatedAt: now}
	err = s.store.Write(ctx, func(tx Tx) error {
		rel, err := tx.ReleaseByID(ctx, p.OrgID, req.ReleaseID)
		if problem.Is(err, problem.KindNotFound) {
			return problem.InvalidField("release_id", "no release %s in this organization", req.ReleaseID)
		} else if err != nil {
			return err
		}
		prod, err := tx.ProductByID(ctx, p.OrgID, rel.ProductID)
		if err != nil {
			return err
		}
		if prod.Capability == inventory.CapabilityNone {
			return problem.InvalidField("release_id", "product %s cannot be updated in the field (capability none)", prod.Slug)
		}
		r.ProductID = rel.ProductID
		if r.Name == "" {
			r.Name = rel.Product + " " + rel.Version
		}
		if req.TargetGroupID != "" {
			if _, err := tx.GroupByID(ctx, p.OrgID, req.TargetGroupID); problem.Is(err, problem.KindNotFound) {
				return problem.InvalidField("target_group_id", "no group %s in this organization", req.TargetGroupID)
			} else if err != nil {
				return err
			}
		}
		if err := tx.InsertRollout(ctx, r); err != nil {
			return err
		}
		if err := tx.InsertTransition(ctx, p.OrgID, Transition{RolloutID: r.ID, Phase: 0, Percent: r.Phases[0].Percent,
			Reason: "started", At: now}); err != nil {
			return err
		}
		_, err = tx.AppendAudit(ctx, audit.Record{OrgID: p.OrgID, Actor: p.Actor, Action: "rollout.create", TargetType: "rollout",
			TargetID: r.ID, Details: map[string]any{"release_id": rel.ID, "product": rel.Product, "version": rel.Version,
				"release_counter": rel.Counter, "target_group_id": r.TargetGroupID, "target_query": r.TargetQuery,
				"urgency": r.Urgency, "mode": r.Mode, "phases": len(r.Phases)}})
		return err
	})
	if err != nil {
		return Rollout{}, err
	}
	s.cache.invalidate(p.OrgID)
	s.wake(ctx, r, "rollout-started")
	return r, nil
}

// canonicalQuery checks a target query and returns its canonical form.
func canonicalQuery(src string) (string, error) {
	if src == "" {
		return "", nil
	}
	q, err := query.Parse(src, inventory.Schema)
	if err != nil {
		return "", problem.InvalidField("target_query", "%s", strings.TrimPrefix(err.Error(), "query: "))
	}
	return q.String(), nil
}

// wake asks the organization's devices to check in now, for immediate
// rollouts; a failure is logged, since polling still converges. reason is
// a token (letters, digits, . _ - :): it travels in the wake-up payload.
// The wake-up reaches every device of the organization, so it is spread
// over as long as their check-ins take at the server's check-in budget
// (WakeSpreadFor).
func (s *Service) wake(ctx context.Context, r Rollout, reason string) {
	if s.waker == nil || r.Urgency != UrgencyImmediate {
		return
	}
	var devices int
	err := s.store.Read(ctx, func(tx Tx) error {
		var err error
		devices, err = tx.CountOrgDevices(ctx, r.OrgID)
		return err
	})
	spread := WakeSpreadFor(devices, s.budget)
	if err != nil {
		// Not knowing the fleet's size, spread as wide as a wake-up may
		// rather than risk a burst the server cannot take.
		spread = agentwake.MaxSpread
		s.log.WarnContext(ctx, "cannot count the organization's devices; spreading the wake-up over the longest spread", "rollout_id", r.ID, "err", err)
	}
	if err := s.waker.WakeOrg(ctx, r.OrgID, spread, reason, r.ID); err != nil {
		s.log.WarnContext(ctx, "wake-up not published; devices will learn of the rollout at their next poll", "rollout_id", r.ID, "err", err)
	}
}

// MinWakeSpread is the least time a wake-up spreads the check-ins it
// causes over, so even a small fleet does not answer in one burst.
const MinWakeSpread = time.Minute

// DefaultCheckinBudget is the check-ins per second wake-ups are paced for
// until the server tells the service its own (SetCheckinBudget); it is
// steward serve's default --checkin-max-rate.
const DefaultCheckinBudget = 500.0

// WakeSpreadFor is the spread of a wake-up of an organization of devices
// devices when the server takes rate check-ins per second: long enough
// that their check-ins stay within the rate (wake.SpreadFor), at least
// MinWakeSpread and at most agent/wake.MaxSpread.
func WakeSpreadFor(devices int, rate float64) time.Duration {
	return max(MinWakeSpread, wake.SpreadFor(devices, rate))
}

// SetCheckinBudget sets the check-ins per second the server aims to stay
// under (steward serve --checkin-max-rate), which paces wake-ups; values
// that are not positive are ignored.
func (s *Service) SetCheckinBudget(rate float64) {
	if rate > 0 && !math.IsInf(rate, 1) {
		s.budget = rate
	}
}

// List lists rollouts, newest last, optionally of one state.
func (s *Service) List(ctx context.Context, p access.Principal, state, after string, limit int) ([]Rollout, string, error) {
	if err := p.Require(access.DeviceRead); err != nil {
		return nil, "", err
	}
	if state != "" && !validState(state) {
		return nil, "", problem.InvalidField("state", "state %q is not one of running, paused, completed, cancelled, aborted", state)
	}
	return paging.List(ctx, s.store.Read, limit, func(tx Tx, limit int) ([]Rollout, error) {
		return tx.ListRollouts(ctx, p.OrgID, state, after, limit)
	}, func(r Rollout) string { return r.ID })
}

func validState(st string) bool {
	switch st {
	case StateRunning, StatePaused, StateCompleted, StateCancelled, StateAborted:
		return true
	}
	return false
}

// PhaseProgress is one phase of a rollout and the devices it first offered
// the release to, by state.
type PhaseProgress struct {
	Phase
	Index     int            `json:"index"`
	StartedAt *time.Time     `json:"started_at,omitempty"`
	Devices   map[string]int `json:"devices" doc:"devices first offered the release in this phase, by state"`
}

// Progress is a rollout with its live progress.
type Progress struct {
	Rollout
	Version      string          `json:"version" doc:"the release's version"`
	Devices      map[string]int  `json:"devices" doc:"devices by update state, all phases"`
	Offered      int             `json:"offered" doc:"devices offered the release (cancelled offers excluded)"`
	Succeeded    int             `json:"succeeded"`
	Failed       int             `json:"failed" doc:"failed, rolled back or timed out"`
	PhaseDetails []PhaseProgress `json:"phase_progress"`
	Transitions  []Transition    `json:"transitions"`
}

// tally sums state counts: devices by their current state, and failures,
// the cumulative failed attempts of all rows (retries included).
type tally struct{ offered, succeeded, failed, inFlight, failures int }

func tallyOf(counts []StateCount) tally {
	var t tally
	for _, c := range counts {
		t.failures += c.Failures
		switch {
		case c.State == DUSucceeded:
			t.succeeded += c.Count
		case failure[c.State]:
			t.failed += c.Count
		case inFlight[c.State]:
			t.inFlight += c.Count
		default:
			continue // cancelled offers are not part of the sample
		}
		t.offered += c.Count
	}
	return t
}

// Show returns a rollout with its progress per phase and per device state.
func (s *Service) Show(ctx context.Context, p access.Principal, rolloutID string) (Progress, error) {
	if err := p.Require(access.DeviceRead); err != nil {
		return Progress{}, err
	}
	var pr Progress
	err := s.store.Read(ctx, func(tx Tx) error {
		r, err := tx.RolloutByID(ctx, p.OrgID, rolloutID)
		if err != nil {
			return err
		}
		rel, err := tx.ReleaseByID(ctx, p.OrgID, r.ReleaseID)
		if err != nil {
			return err
		}
		counts, err := tx.CountDeviceUpdates(ctx, p.OrgID, r.ID)
		if err != nil {
			return err
		}
		ts, err := tx.Transitions(ctx, p.OrgID, r.ID)
		if err != nil {
			return err
		}
		pr = progressOf(r, counts, ts)
		pr.Version = rel.Version
		return nil
	})
	return pr, err
}

func progressOf(r Rollout, counts []StateCount, ts []Transition) Progress {
	pr := Progress{Rollout: r, Devices: map[string]int{}, Transitions: ts}
	if pr.Transitions == nil {
		pr.Transitions = []Transition{}
	}
	for i, ph := range r.Phases {
		pp := PhaseProgress{Phase: ph, Index: i, Devices: map[string]int{}}
		for _, t := range ts {
			if t.Phase == i {
				at := t.At
				pp.StartedAt = &at
			}
		}
		pr.PhaseDetails = append(pr.PhaseDetails, pp)
	}
	for _, c := range counts {
		pr.Devices[c.State] += c.Count
		if c.Phase >= 0 && c.Phase < len(pr.PhaseDetails) {
			pr.PhaseDetails[c.Phase].Devices[c.State] += c.Count
		}
	}
	t := tallyOf(counts)
	pr.Offered, pr.Succeeded, pr.Failed = t.offered, t.succeeded, t.failed
	return pr
}

// Devices lists a rollout's devices and their update state, by device id.
func (s *Service) Devices(ctx context.Context, p access.Principal, rolloutID, state, after string, limit int) ([]DeviceUpdate, string, error) {
	if err := p.Require(access.DeviceRead); err != nil {
		return nil, "", err
	}
	if state != "" && !validDUState(state) {
		return nil, "", problem.InvalidField("state", "state %q is not one of %s", state, strings.Join(DUStates, ", "))
	}
	limit = paging.Limit(limit)
	var items []DeviceUpdate
	err := s.store.Read(ctx, func(tx Tx) error {
		if _, err := tx.RolloutByID(ctx, p.OrgID, rolloutID); err != nil {
			return err
		}
		var err error
		items, err = tx.ListDeviceUpdates(ctx, p.OrgID, rolloutID, state, after, limit+1)
		return err
	})
	if err != nil {
		return nil, "", err
	}
	items, next := paging.Trim(items, limit, func(u DeviceUpdate) string { return u.DeviceID })
	return items, next, nil
}

func validDUState(st string) bool {
	for _, s := range DUStates {
		if s == st {
			return true
		}
	}
	return false
}

// Pause stops a running rollout from offering its release to more devices;
// devices already told go on. Pausing a paused rollout changes nothing.
func (s *Service) Pause(ctx context.Context, p access.Principal, rolloutID string) (Rollout, error) {
	return s.change(ctx, p, rolloutID, "rollout.pause", func(tx Tx, r Rollout, now time.Time) (bool, map[string]any, error) {
		switch r.State {
		case StatePaused:
			return false, nil, nil
		case StateRunning:
			ok, err := tx.SetRolloutState(ctx, p.OrgID, r.ID, StateRunning, StatePaused, "paused by "+p.Actor.Name, now)
			if err == nil && !ok {
				err = problem.Conflict("rollout %s changed state meanwhile; try again", r.ID)
			}
			return true, nil, err
		}
		return false, nil, problem.Conflict("rollout %s is %s; only a running rollout can be paused", r.ID, r.State)
	})
}

// Resume restarts a paused rollout. It acknowledges the failures so far
// (cumulative: every failed attempt, retries included): the pause
// thresholds count only failures after the resume, so a rollout paused by
// them does not pause again at once, while a retried device that fails
// again counts anew (abort thresholds still count every failure).
func (s *Service) Resume(ctx context.Context, p access.Principal, rolloutID string) (Rollout, error) {
	return s.change(ctx, p, rolloutID, "rollout.resume", func(tx Tx, r Rollout, now time.Time) (bool, map[string]any, error) {
		switch r.State {
		case StateRunning:
			return false, nil, nil
		case StatePaused:
			counts, err := tx.CountDeviceUpdates(ctx, p.OrgID, r.ID)
			if err != nil {
				return false, nil, err
			}
			failed := tallyOf(counts).failures
			ok, err := tx.ResumeRollout(ctx, p.OrgID, r.ID, failed, now)
			if err == nil && !ok {
				err = problem.Conflict("rollout %s changed state meanwhile; try again", r.ID)
			}
			return true, map[string]any{"failures_acknowledged": failed}, err
		}
		return false, nil, problem.Conflict("rollout %s is %s; only a paused rollout can be resumed", r.ID, r.State)
	})
}

// Cancel ends a rollout: devices offered the release that have not
// started get nothing (their assignment is removed); devices that started
// finish, or roll back by their own health checks.
func (s *Service) Cancel(ctx context.Context, p access.Principal, rolloutID string) (Rollout, error) {
	return s.change(ctx, p, rolloutID, "rollout.cancel", func(tx Tx, r Rollout, now time.Time) (bool, map[string]any, error) {
		if !r.Live() {
			return false, nil, problem.Conflict("rollout %s is %s already", r.ID, r.State)
		}
		details, err := stop(ctx, tx, r, StateCancelled, "cancelled by "+p.Actor.Name, now)
		return true, details, err
	})
}

// stop ends a live rollout in state to (cancelled or aborted) and takes
// back every offer not yet started.
func stop(ctx context.Context, tx Tx, r Rollout, to, reason string, now time.Time) (map[string]any, error) {
	ok, err := tx.SetRolloutState(ctx, r.OrgID, r.ID, r.State, to, reason, now)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, problem.Conflict("rollout %s changed state meanwhile; try again", r.ID)
	}
	n, err := tx.CancelOfferedUpdates(ctx, r.OrgID, r.ID, "rollout "+to, now)
	if err != nil {
		return nil, err
	}
	dropped, err := tx.DropRolloutAssignments(ctx, r.OrgID, r.ID, []string{DUCancelled})
	if err != nil {
		return nil, err
	}
	return map[string]any{"offers_withdrawn": n, "assignments_removed": dropped, "reason": reason}, nil
}

// change runs one audited state change of a rollout; fn reports whether it
// changed anything (an idempotent repeat is not audited).
func (s *Service) change(ctx context.Context, p access.Principal, rolloutID, action string,
	fn func(tx Tx, r Rollout, now time.Time) (bool, map[string]any, error)) (Rollout, error) {
	if err := p.Require(access.DeviceWrite); err != nil {
		return Rollout{}, err
	}
	now := clock.Norm(s.clock.Now())
	var out Rollout
	err := s.store.Write(ctx, func(tx Tx) error {
		r, err := tx.RolloutByID(ctx, p.OrgID, rolloutID)
		if err != nil {
			return err
		}
		changed, details, err := fn(tx, r, now)
		if err != nil {
			return err
		}
		if out, err = tx.RolloutByID(ctx, p.OrgID, rolloutID); err != nil || !changed {
			return err
		}
		if details == nil {
			details = map[string]any{}
		}
		details["from"], details["to"] = r.State, out.State
		_, err = tx.AppendAudit(ctx, audit.Record{OrgID: p.OrgID, Actor: p.Actor, Action: action, TargetType: "rollout",
			TargetID: r.ID, Details: details})
		return err
	})
	if err != nil {
		return Rollout{}, err
	}
	s.cache.invalidate(p.OrgID)
	return out, nil
}

// SetGroupWindow sets or (with an empty cron) removes a group's
// maintenance window.
func (s *Service) SetGroupWindow(ctx context.Context, p access.Principal, groupID string, w GroupWindow) (GroupWindow, error) {
	if err := p.Require(access.DeviceWrite); err != nil {
		return GroupWindow{}, err
	}
	w.GroupID = groupID
	if w.Cron == "" {
		w.DurationSeconds, w.TimeZone = 0, ""
	} else {
		if w.DurationSeconds <= 0 {
			return GroupWindow{}, problem.InvalidField("duration_seconds", "a window needs a positive duration_seconds")
		}
		if w.TimeZone == "" {
			w.TimeZone = "UTC"
		}
		parsed, err := window.Parse(w.Cron, time.Duration(w.DurationSeconds)*time.Second, w.TimeZone)
		if err != nil {
			return GroupWindow{}, problem.InvalidField("cron", "%v", err)
		}
		w.Cron = parsed.Cron()
	}
	err := s.store.Write(ctx, func(tx Tx) error {
		g, err := tx.GroupByID(ctx, p.OrgID, groupID)
		if err != nil {
			return err
		}
		w.Query = g.Query
		if err := tx.SetGroupWindow(ctx, p.OrgID, w); err != nil {
			return err
		}
		_, err = tx.AppendAudit(ctx, audit.Record{OrgID: p.OrgID, Actor: p.Actor, Action: "group.window", TargetType: "group",
			TargetID: g.ID, Details: map[string]any{"cron": w.Cron, "duration_seconds": w.DurationSeconds, "time_zone": w.TimeZone}})
		return err
	})
	if err != nil {
		return GroupWindow{}, err
	}
	s.cache.invalidate(p.OrgID)
	return w, nil
}

// describe names a rollout for logs and messages.
func describe(r Rollout) string { return fmt.Sprintf("rollout %s (%s)", r.ID, r.Name) }
