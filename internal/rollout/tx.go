package rollout

import (
	"context"
	"time"

	"github.com/steward-iot/steward/internal/inventory"
)

// Cond builds an SQL condition over devices (alias d) and products (alias
// p), binding each value through next; see inventory.DeviceFilter.
type Cond func(next func(arg any) string) (string, error)

// GroupWindow is a group's maintenance window: updates of scheduled
// rollouts start only while it is open.
type GroupWindow struct {
	GroupID string `json:"group_id"`
	// Cron is a five-field cron expression for when the window opens;
	// empty means the group has no window.
	Cron            string `json:"cron" doc:"five-field cron expression of the window's start, e.g. \"0 2 * * *\"; empty removes the window"`
	DurationSeconds int64  `json:"duration_seconds"`
	TimeZone        string `json:"time_zone" doc:"IANA time zone the cron expression is read in, e.g. Europe/Berlin"`
	// Query is the group's fleet query (dynamic groups), for membership.
	Query string `json:"-"`
}

// RolloutTx is what phased rollouts need from a store transaction.
type RolloutTx interface {
	GroupByID(ctx context.Context, orgID, id string) (inventory.Group, error)

	InsertRollout(ctx context.Context, r Rollout) error
	RolloutByID(ctx context.Context, orgID, id string) (Rollout, error)
	// LockRollout reads a rollout and holds it against state and phase
	// changes until the transaction ends (FOR SHARE on PostgreSQL; SQLite
	// serializes writers anyway), so that an offer written in the same
	// transaction cannot outlive a cancel, abort or pause.
	LockRollout(ctx context.Context, orgID, id string) (Rollout, error)
	// ListRollouts lists an organization's rollouts by id after after,
	// only those in state when state is set.
	ListRollouts(ctx context.Context, orgID, state, after string, limit int) ([]Rollout, error)
	// LiveRollouts lists running and paused rollouts: of one organization,
	// or of all when orgID is empty.
	LiveRollouts(ctx context.Context, orgID string) ([]Rollout, error)
	// StoppedRolloutsInFlight lists completed, cancelled and aborted
	// rollouts of all organizations that still have rows in flight
	// (devices that had started when the rollout ended).
	StoppedRolloutsInFlight(ctx context.Context) ([]Rollout, error)
	// SetRolloutState moves a rollout from state from to state to and
	// reports whether it was in from (nothing changes otherwise).
	SetRolloutState(ctx context.Context, orgID, id, from, to, reason string, at time.Time) (bool, error)
	// ResumeRollout moves a paused rollout to running with failures
	// acknowledged, and reports whether it was paused.
	ResumeRollout(ctx context.Context, orgID, id string, failures int, at time.Time) (bool, error)
	// AdvanceRolloutPhase moves a running rollout from phase from to
	// phase to and reports whether it was running in from.
	AdvanceRolloutPhase(ctx context.Context, orgID, id string, from, to int, at time.Time) (bool, error)
	// InsertTransition records a phase entered; a second record of the
	// same (rollout, phase) is a Conflict.
	InsertTransition(ctx context.Context, orgID string, t Transition) error
	Transitions(ctx context.Context, orgID, rolloutID string) ([]Transition, error)

	// PutDeviceUpdate inserts or replaces a device's row of a rollout.
	PutDeviceUpdate(ctx context.Context, orgID string, u DeviceUpdate) error
	DeviceUpdate(ctx context.Context, orgID, rolloutID, deviceID string) (DeviceUpdate, error)
	// LiveDeviceUpdates lists a device's rows in live rollouts.
	LiveDeviceUpdates(ctx context.Context, orgID, deviceID string) ([]DeviceUpdate, error)
	// ReleaseDeviceUpdates lists a device's rows in the rollouts of one
	// release, whatever the rollouts' state.
	ReleaseDeviceUpdates(ctx context.Context, orgID, deviceID, releaseID string) ([]DeviceUpdate, error)
	ListDeviceUpdates(ctx context.Context, orgID, rolloutID, state, after string, limit int) ([]DeviceUpdate, error)
	// CountDeviceUpdates counts a rollout's rows by phase and state, with
	// the failures those rows ever had.
	CountDeviceUpdates(ctx context.Context, orgID, rolloutID string) ([]StateCount, error)
	// TimeOutDeviceUpdates marks in-flight rows last changed before
	// before as timed out (adding one to their failures) and returns how
	// many it marked. holdDownloaded leaves rows in state downloaded
	// alone (devices deferring a soft install).
	TimeOutDeviceUpdates(ctx context.Context, orgID, rolloutID string, before, at time.Time, holdDownloaded bool) (int, error)
	// CancelOfferedUpdates marks rows still only offered as cancelled.
	CancelOfferedUpdates(ctx context.Context, orgID, rolloutID, reason string, at time.Time) (int, error)
	// DropRolloutAssignments deletes the rollout's assignments of devices
	// whose row is in one of states, and returns how many it deleted.
	DropRolloutAssignments(ctx context.Context, orgID, rolloutID string, states []string) (int, error)
	// DeleteRolloutAssignment deletes a device's assignment if the
	// rollout made it.
	DeleteRolloutAssignment(ctx context.Context, orgID, deviceID, rolloutID string) (bool, error)

	// DeviceGroupIDs lists the static groups a device is a member of.
	DeviceGroupIDs(ctx context.Context, deviceID string) ([]string, error)
	DeviceTags(ctx context.Context, deviceID string) (map[string]string, error)
	// CountOrgDevices counts an organization's active and quarantined
	// devices: those a wake-up of the organization reaches.
	CountOrgDevices(ctx context.Context, orgID string) (int, error)
	SetGroupWindow(ctx context.Context, orgID string, w GroupWindow) error
	// GroupWindows lists the organization's groups that have a window.
	GroupWindows(ctx context.Context, orgID string) ([]GroupWindow, error)
	// TargetDeviceIDs pages through the ids of the organization's active
	// or quarantined devices of a product that satisfy cond.
	TargetDeviceIDs(ctx context.Context, orgID, productID string, cond Cond, after string, limit int) ([]string, error)
	// TargetDevices pages through those devices themselves.
	TargetDevices(ctx context.Context, orgID, productID string, cond Cond, after string, limit int) ([]inventory.Device, error)
	// CountTargetPending counts the active or quarantined devices of a
	// product satisfying cond that do not run version and whose row of
	// the rollout is absent or not finished for good (succeeded,
	// cancelled, or a failure with maxAttempts used).
	CountTargetPending(ctx context.Context, orgID, productID, version, rolloutID string, maxAttempts int, cond Cond) (int, error)
}
