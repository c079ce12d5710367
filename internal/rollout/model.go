package rollout

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/steward-iot/steward/agent/proto"
	"github.com/steward-iot/steward/internal/problem"
)

// Urgency classes of a rollout (the SSVC deployer priorities that ship a fix).
const (
	UrgencyScheduled  = "scheduled"    // maintenance windows respected, full soak times
	UrgencyOutOfCycle = "out-of-cycle" // windows relaxed, soak times quartered
	UrgencyImmediate  = "immediate"    // windows ignored, phases compressed, wake-ups
)

// Modes say what a device is asked to do with the release; the check-in
// reply carries them (proto.UpdateOffer.Mode).
const (
	ModeForced       = proto.ModeForced       // install at once; maintenance windows ignored
	ModeSoft         = proto.ModeSoft         // offered within windows; the device may defer until the deadline
	ModeDownloadOnly = proto.ModeDownloadOnly // download and verify, do not install
)

// Rollout states.
const (
	StateRunning   = "running"
	StatePaused    = "paused"
	StateCompleted = "completed"
	StateCancelled = "cancelled"
	StateAborted   = "aborted"
)

// DeviceUpdate states. A row is created "offered" when the device is told
// to update; the device's status reports move it on.
const (
	DUOffered     = "offered"
	DUDownloading = "downloading"
	DUDownloaded  = "downloaded"
	DUInstalling  = "installing"
	DURebooting   = "rebooting"
	DUSucceeded   = "succeeded"
	DUFailed      = "failed"
	DURolledBack  = "rolled-back"
	DUTimedOut    = "timed-out"
	DUCancelled   = "cancelled"
)

// DUStates lists every DeviceUpdate state in the order an update moves.
var DUStates = []string{DUOffered, DUDownloading, DUDownloaded, DUInstalling, DURebooting, DUSucceeded,
	DUFailed, DURolledBack, DUTimedOut, DUCancelled}

// inFlight: the device was told and has not finished. failure: counts
// against the failure thresholds (and may be retried).
var (
	inFlight = map[string]bool{DUOffered: true, DUDownloading: true, DUDownloaded: true, DUInstalling: true, DURebooting: true}
	failure  = map[string]bool{DUFailed: true, DURolledBack: true, DUTimedOut: true}
)

// started: the device has begun to download, so cancelling the rollout
// lets it finish rather than pulling the release from under it.
func started(state string) bool { return inFlight[state] && state != DUOffered }

// Phase is one step of a rollout: the cumulative share of the target that
// may update, and how long it must soak before the next phase starts.
type Phase struct {
	Percent float64 `json:"percent" doc:"cumulative share of the target, 0.01 to 100, in steps of 0.01"`
	// MinSoakSeconds is the least time the phase runs before the scheduler
	// may advance (scaled down by urgency; see docs/rollouts.md).
	MinSoakSeconds int64 `json:"min_soak_seconds"`
}

// Rollout sends one release to a target in phases.
type Rollout struct {
	ID        string `json:"id"`
	OrgID     string `json:"org_id"`
	Name      string `json:"name"`
	ReleaseID string `json:"release_id"`
	ProductID string `json:"product_id"`
	// Exactly one of TargetGroupID and TargetQuery is set.
	TargetGroupID     string     `json:"target_group_id,omitempty"`
	TargetQuery       string     `json:"target_query,omitempty" doc:"fleet query (docs/fleet-query.md), canonical form"`
	Phases            []Phase    `json:"phases"`
	Urgency           string     `json:"urgency" enum:"scheduled,out-of-cycle,immediate"`
	Mode              string     `json:"mode" enum:"forced,soft,download-only"`
	SuccessRatio      float64    `json:"success_ratio" doc:"share of offered devices that must succeed before the next phase"`
	PauseFailureRatio float64    `json:"pause_failure_ratio" doc:"pause when this share of finished devices failed (0 = off)"`
	PauseFailureCount int        `json:"pause_failure_count" doc:"pause when this many devices failed (0 = off)"`
	AbortFailureRatio float64    `json:"abort_failure_ratio" doc:"abort when this share of finished devices failed (0 = off)"`
	AbortFailureCount int        `json:"abort_failure_count" doc:"abort when this many devices failed (0 = off)"`
	MaxRetries        int        `json:"max_retries" doc:"offers after a failure, per device"`
	DeviceTimeout     int64      `json:"device_timeout_seconds" doc:"an update silent this long times out and counts as failed"`
	MinBattery        int        `json:"min_battery_percent" doc:"battery devices not on mains wait below this"`
	Deadline          *time.Time `json:"deadline,omitempty" doc:"by then the last phase has started and windows and soft mode no longer hold devices back"`
	State             string     `json:"state" enum:"running,paused,completed,cancelled,aborted"`
	StateReason       string     `json:"state_reason,omitempty"`
	Phase             int        `json:"phase" doc:"index of the current phase"`
	PhaseStartedAt    time.Time  `json:"phase_started_at"`
	// FailuresAcked is the cumulative failure count (every failed,
	// rolled-back or timed-out attempt, retries included) when the rollout
	// was last resumed: pause thresholds count only failures after it.
	FailuresAcked int       `json:"failures_acked"`
	CreatedBy     string    `json:"created_by"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
}

// Live reports whether the rollout still moves devices (running or paused).
func (r Rollout) Live() bool { return r.State == StateRunning || r.State == StatePaused }

// Percent is the current phase's cumulative share.
func (r Rollout) Percent() float64 { return r.Phases[r.Phase].Percent }

// DeviceUpdate is one device's progress in one rollout.
type DeviceUpdate struct {
	RolloutID  string     `json:"rollout_id"`
	DeviceID   string     `json:"device_id"`
	Phase      int        `json:"phase" doc:"the phase that first offered the release"`
	State      string     `json:"state" enum:"offered,downloading,downloaded,installing,rebooting,succeeded,failed,rolled-back,timed-out,cancelled"`
	Attempts   int        `json:"attempts"`
	Artifact   string     `json:"artifact" enum:"full,delta" doc:"what the offer expected to send"`
	Bytes      int64      `json:"bytes" doc:"size of what the offer expected to send"`
	Reason     string     `json:"reason,omitempty" doc:"why it failed, was rolled back, timed out or was cancelled"`
	OfferedAt  time.Time  `json:"offered_at"`
	UpdatedAt  time.Time  `json:"updated_at"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	// Failures counts how often this row became failed, rolled-back or
	// timed-out, retries included; it only grows. Summed over a rollout it
	// is the cumulative failure count the thresholds compare.
	Failures int `json:"-"`
}

// Transition is a phase a rollout entered.
type Transition struct {
	RolloutID string    `json:"rollout_id"`
	Phase     int       `json:"phase"`
	Percent   float64   `json:"percent"`
	Reason    string    `json:"reason"`
	At        time.Time `json:"at"`
}

// StateCount counts a rollout's devices in one state in one phase.
// Failures sums those rows' DeviceUpdate.Failures.
type StateCount struct {
	Phase    int
	State    string
	Count    int
	Failures int
}

// CreateRequest creates (and starts) a rollout. Zero values take the
// defaults named in docs/rollouts.md.
type CreateRequest struct {
	Name              string     `json:"name,omitempty"`
	ReleaseID         string     `json:"release_id"`
	TargetGroupID     string     `json:"target_group_id,omitempty" doc:"a device group; or give target_query"`
	TargetQuery       string     `json:"target_query,omitempty" doc:"a fleet query; or give target_group_id"`
	Urgency           string     `json:"urgency" enum:"scheduled,out-of-cycle,immediate"`
	Mode              string     `json:"mode,omitempty" enum:"forced,soft,download-only" doc:"default: forced for immediate, soft otherwise"`
	Phases            []Phase    `json:"phases,omitempty" doc:"default 1, 10, 50, 100 percent soaking 1h, 4h, 12h"`
	SuccessRatio      float64    `json:"success_ratio,omitempty" doc:"default 0.95"`
	PauseFailureRatio float64    `json:"pause_failure_ratio,omitempty" doc:"default 0.05"`
	PauseFailureCount int        `json:"pause_failure_count,omitempty" doc:"default 0 (off)"`
	AbortFailureRatio float64    `json:"abort_failure_ratio,omitempty" doc:"default 0 (off)"`
	AbortFailureCount int        `json:"abort_failure_count,omitempty" doc:"default 0 (off)"`
	MaxRetries        *int       `json:"max_retries,omitempty" doc:"default 2"`
	DeviceTimeout     int64      `json:"device_timeout_seconds,omitempty" doc:"default 7200"`
	MinBattery        *int       `json:"min_battery_percent,omitempty" doc:"default 30"`
	Deadline          *time.Time `json:"deadline,omitempty"`
}

// Defaults of a CreateRequest.
const (
	DefaultSuccessRatio      = 0.95
	DefaultPauseFailureRatio = 0.05
	DefaultMaxRetries        = 2
	DefaultDeviceTimeout     = 2 * time.Hour
	DefaultMinBattery        = 30
	maxPhases                = 20
	maxSoak                  = 30 * 24 * time.Hour
)

// DefaultPhases are 1% → 10% → 50% → 100%.
func DefaultPhases() []Phase {
	return []Phase{{1, 3600}, {10, 4 * 3600}, {50, 12 * 3600}, {100, 0}}
}

// ParsePhases reads the CLI's phase list "1:1h,10:4h,50,100": percentages,
// each optionally with its minimum soak time; a phase without one soaks
// an hour, except the last, which needs none.
func ParsePhases(s string) ([]Phase, error) {
	fields := strings.Split(s, ",")
	out := make([]Phase, 0, len(fields))
	for i, f := range fields {
		pct, soak, hasSoak := strings.Cut(strings.TrimSpace(f), ":")
		p, err := strconv.ParseFloat(pct, 64)
		if err != nil {
			return nil, fmt.Errorf("phase %d: %q is not a percentage like 10 or 0.5", i+1, pct)
		}
		ph := Phase{Percent: p}
		switch {
		case hasSoak:
			d, err := time.ParseDuration(soak)
			if err != nil || d < 0 {
				return nil, fmt.Errorf("phase %d: soak %q is not a duration like 30m or 4h", i+1, soak)
			}
			ph.MinSoakSeconds = int64(d / time.Second)
		case i < len(fields)-1:
			ph.MinSoakSeconds = 3600
		}
		out = append(out, ph)
	}
	return out, nil
}

func validUrgency(u string) bool {
	return u == UrgencyScheduled || u == UrgencyOutOfCycle || u == UrgencyImmediate
}

func validMode(m string) bool { return m == ModeForced || m == ModeSoft || m == ModeDownloadOnly }

// normalize fills defaults and checks everything that needs no store.
func (req CreateRequest) normalize(now time.Time) (CreateRequest, error) {
	if req.ReleaseID == "" {
		return req, problem.InvalidField("release_id", "name the release to roll out")
	}
	if (req.TargetGroupID == "") == (strings.TrimSpace(req.TargetQuery) == "") {
		return req, problem.InvalidField("target_query", "give exactly one target: target_group_id or target_query")
	}
	if !validUrgency(req.Urgency) {
		return req, problem.InvalidField("urgency", "urgency %q is not one of scheduled, out-of-cycle, immediate", req.Urgency)
	}
	if req.Mode == "" {
		req.Mode = ModeSoft
		if req.Urgency == UrgencyImmediate {
			req.Mode = ModeForced
		}
	}
	if !validMode(req.Mode) {
		return req, problem.InvalidField("mode", "mode %q is not one of forced, soft, download-only", req.Mode)
	}
	if len(req.Name) > 200 {
		return req, problem.InvalidField("name", "name is %d bytes; at most 200", len(req.Name))
	}
	if len(req.Phases) == 0 {
		req.Phases = DefaultPhases()
	}
	if err := validPhases(req.Phases); err != nil {
		return req, err
	}
	for _, r := range []struct {
		field string
		v     *float64
		def   float64
	}{{"success_ratio", &req.SuccessRatio, DefaultSuccessRatio}, {"pause_failure_ratio", &req.PauseFailureRatio, DefaultPauseFailureRatio},
		{"abort_failure_ratio", &req.AbortFailureRatio, 0}} {
		if math.IsNaN(*r.v) || *r.v < 0 || *r.v > 1 {
			return req, problem.InvalidField(r.field, "%s must be a ratio from 0 to 1, not %v", r.field, *r.v)
		}
		if *r.v == 0 {
			*r.v = r.def
		}
	}
	if req.PauseFailureCount < 0 || req.AbortFailureCount < 0 {
		return req, problem.InvalidField("pause_failure_count", "failure counts must not be negative")
	}
	if req.AbortFailureRatio > 0 && req.AbortFailureRatio < req.PauseFailureRatio {
		return req, problem.InvalidField("abort_failure_ratio", "abort_failure_ratio %v is below pause_failure_ratio %v: the rollout would abort before it could pause", req.AbortFailureRatio, req.PauseFailureRatio)
	}
	if req.MaxRetries == nil {
		n := DefaultMaxRetries
		req.MaxRetries = &n
	} else if *req.MaxRetries < 0 || *req.MaxRetries > 20 {
		return req, problem.InvalidField("max_retries", "max_retries must be 0 to 20, not %d", *req.MaxRetries)
	}
	if req.DeviceTimeout == 0 {
		req.DeviceTimeout = int64(DefaultDeviceTimeout / time.Second)
	} else if req.DeviceTimeout < 60 || req.DeviceTimeout > int64(maxSoak/time.Second) {
		return req, problem.InvalidField("device_timeout_seconds", "device_timeout_seconds must be 60 to %d, not %d", int64(maxSoak/time.Second), req.DeviceTimeout)
	}
	if req.MinBattery == nil {
		n := DefaultMinBattery
		req.MinBattery = &n
	} else if *req.MinBattery < 0 || *req.MinBattery > 100 {
		return req, problem.InvalidField("min_battery_percent", "min_battery_percent must be 0 to 100, not %d", *req.MinBattery)
	}
	if req.Deadline != nil {
		if !req.Deadline.After(now) {
			return req, problem.InvalidField("deadline", "deadline %s is not in the future", req.Deadline.UTC().Format(time.RFC3339))
		}
		d := req.Deadline.UTC()
		req.Deadline = &d
	}
	return req, nil
}

func validPhases(ps []Phase) error {
	if len(ps) > maxPhases {
		return problem.InvalidField("phases", "%d phases; at most %d", len(ps), maxPhases)
	}
	prev := 0.0
	for i, p := range ps {
		if math.IsNaN(p.Percent) || p.Percent <= prev || p.Percent > 100 {
			return problem.InvalidField("phases", "phase %d: percent %v must be above the previous phase's %v and at most 100", i+1, p.Percent, prev)
		}
		if bp := p.Percent * 100; math.Abs(bp-math.Round(bp)) > 1e-6 {
			return problem.InvalidField("phases", "phase %d: percent %v has more than two decimals", i+1, p.Percent)
		}
		if p.MinSoakSeconds < 0 || p.MinSoakSeconds > int64(maxSoak/time.Second) {
			return problem.InvalidField("phases", "phase %d: min_soak_seconds must be 0 to %d", i+1, int64(maxSoak/time.Second))
		}
		prev = p.Percent
	}
	if prev != 100 {
		return problem.InvalidField("phases", "the last phase must be 100 percent, not %v", prev)
	}
	return nil
}

// Buckets is the number of hash buckets; a phase of p percent admits
// buckets below p×100.
const Buckets = 10000

// Bucket places a device in [0, Buckets) for one rollout: deterministic,
// uniform, and independent between rollouts, so the 1% canary of one
// rollout is not the canary of every rollout.
func Bucket(rolloutID, deviceID string) int {
	h := sha256.New()
	h.Write([]byte(rolloutID))
	h.Write([]byte{0})
	h.Write([]byte(deviceID))
	var sum [sha256.Size]byte
	return int(binary.BigEndian.Uint64(h.Sum(sum[:0])[:8]) % Buckets)
}

// InPhase reports whether the device's bucket is within percent.
func InPhase(rolloutID, deviceID string, percent float64) bool {
	return Bucket(rolloutID, deviceID) < int(math.Round(percent*100))
}

func urgencyRank(u string) int {
	switch u {
	case UrgencyImmediate:
		return 3
	case UrgencyOutOfCycle:
		return 2
	}
	return 1
}

// soakFactor compresses soak times by urgency.
func soakFactor(u string) float64 {
	switch u {
	case UrgencyImmediate:
		return 0.05
	case UrgencyOutOfCycle:
		return 0.25
	}
	return 1
}
