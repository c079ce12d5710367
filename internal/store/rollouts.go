package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/steward-iot/steward/internal/inventory"
	"github.com/steward-iot/steward/internal/rollout"
)

const rolloutCols = `id, org_id, name, release_id, product_id, target_group_id, target_query, phases, urgency, mode,
	success_ratio, pause_failure_ratio, pause_failure_count, abort_failure_ratio, abort_failure_count, max_retries,
	device_timeout, min_battery, deadline, state, state_reason, phase, phase_started_at, failures_acked, created_by, created_at, updated_at`

func scanRollout(scan func(...any) error) (rollout.Rollout, error) {
	var r rollout.Rollout
	var group sql.NullString
	var phases string
	var timeout, started, created, updated int64
	var deadline sql.NullInt64
	err := scan(&r.ID, &r.OrgID, &r.Name, &r.ReleaseID, &r.ProductID, &group, &r.TargetQuery, &phases, &r.Urgency, &r.Mode,
		&r.SuccessRatio, &r.PauseFailureRatio, &r.PauseFailureCount, &r.AbortFailureRatio, &r.AbortFailureCount, &r.MaxRetries,
		&timeout, &r.MinBattery, &deadline, &r.State, &r.StateReason, &r.Phase, &started, &r.FailuresAcked, &r.CreatedBy, &created, &updated)
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal([]byte(phases), &r.Phases); err != nil {
		return r, fmt.Errorf("phases of rollout %s: %w", r.ID, err)
	}
	r.TargetGroupID = group.String
	r.DeviceTimeout = timeout / int64(time.Second/time.Microsecond)
	r.Deadline = fromNullUS(deadline)
	r.PhaseStartedAt, r.CreatedAt, r.UpdatedAt = fromUS(started), fromUS(created), fromUS(updated)
	return r, nil
}

// InsertRollout stores a new rollout.
func (tx *Tx) InsertRollout(ctx context.Context, r rollout.Rollout) error {
	phases, err := json.Marshal(r.Phases)
	if err != nil {
		return err
	}
	return tx.insert(ctx, "rollout "+r.ID, `INSERT INTO rollouts (`+rolloutCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,
		$11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27)`,
		r.ID, r.OrgID, r.Name, r.ReleaseID, r.ProductID, nullString(r.TargetGroupID), r.TargetQuery, string(phases), r.Urgency, r.Mode,
		r.SuccessRatio, r.PauseFailureRatio, r.PauseFailureCount, r.AbortFailureRatio, r.AbortFailureCount, r.MaxRetries,
		r.DeviceTimeout*int64(time.Second/time.Microsecond), r.MinBattery, nullUS(r.Deadline), r.State, r.StateReason, r.Phase,
		us(r.PhaseStartedAt), r.FailuresAcked, r.CreatedBy, us(r.CreatedAt), us(r.UpdatedAt))
}

// RolloutByID returns one rollout of an organization.
func (tx *Tx) RolloutByID(ctx context.Context, orgID, id string) (rollout.Rollout, error) {
	return getOne(ctx, tx, "rollout "+id, scanRollout, "SELECT "+rolloutCols+" FROM rollouts WHERE org_id = $1 AND id = $2", orgID, id)
}

// LockRollout reads a rollout and, on PostgreSQL, share-locks its row until
// the transaction ends: a concurrent state or phase change (an UPDATE)
// waits for this transaction, and this read waits for one under way and
// then sees its result (READ COMMITTED re-reads the locked row). SQLite
// runs one writer at a time, so its plain read is already current.
func (tx *Tx) LockRollout(ctx context.Context, orgID, id string) (rollout.Rollout, error) {
	q := "SELECT " + rolloutCols + " FROM rollouts WHERE org_id = $1 AND id = $2"
	if tx.db.dialect == Postgres {
		q += " FOR SHARE"
	}
	return getOne(ctx, tx, "rollout "+id, scanRollout, q, orgID, id)
}

// ListRollouts lists an organization's rollouts, optionally of one state.
func (tx *Tx) ListRollouts(ctx context.Context, orgID, state, after string, limit int) ([]rollout.Rollout, error) {
	return list(ctx, tx, "rollouts", scanRollout, "SELECT "+rolloutCols+` FROM rollouts
		WHERE org_id = $1 AND ($2 = '' OR state = $2) AND id > $3 ORDER BY id LIMIT $4`, orgID, state, after, limit)
}

// LiveRollouts lists running and paused rollouts, of one organization or all.
func (tx *Tx) LiveRollouts(ctx context.Context, orgID string) ([]rollout.Rollout, error) {
	return list(ctx, tx, "live rollouts", scanRollout, "SELECT "+rolloutCols+` FROM rollouts
		WHERE ($1 = '' OR org_id = $1) AND state IN ('running', 'paused') ORDER BY id`, orgID)
}

// StoppedRolloutsInFlight lists ended rollouts that still have rows in
// flight. The EXISTS probes the (rollout_id, state, updated_at) index.
func (tx *Tx) StoppedRolloutsInFlight(ctx context.Context) ([]rollout.Rollout, error) {
	return list(ctx, tx, "stopped rollouts in flight", scanRollout, "SELECT "+rolloutCols+` FROM rollouts r
		WHERE r.state IN ('completed', 'cancelled', 'aborted') AND EXISTS (
		SELECT 1 FROM device_updates u WHERE u.rollout_id = r.id AND u.state IN `+inFlightStates+`) ORDER BY r.id`)
}

// ResumeRollout moves a paused rollout back to running, acknowledging
// failures failures, and reports whether it was paused.
func (tx *Tx) ResumeRollout(ctx context.Context, orgID, id string, failures int, at time.Time) (bool, error) {
	res, err := tx.exec(ctx, `UPDATE rollouts SET state = 'running', state_reason = '', failures_acked = $3, updated_at = $4
		WHERE org_id = $1 AND id = $2 AND state = 'paused'`, orgID, id, failures, us(at))
	if err != nil {
		return false, fmt.Errorf("resume rollout %s: %w", id, err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// SetRolloutState is a compare-and-set of a rollout's state.
func (tx *Tx) SetRolloutState(ctx context.Context, orgID, id, from, to, reason string, at time.Time) (bool, error) {
	res, err := tx.exec(ctx, `UPDATE rollouts SET state = $4, state_reason = $5, updated_at = $6
		WHERE org_id = $1 AND id = $2 AND state = $3`, orgID, id, from, to, reason, us(at))
	if err != nil {
		return false, fmt.Errorf("set state of rollout %s: %w", id, err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// AdvanceRolloutPhase is a compare-and-set of a running rollout's phase.
func (tx *Tx) AdvanceRolloutPhase(ctx context.Context, orgID, id string, from, to int, at time.Time) (bool, error) {
	res, err := tx.exec(ctx, `UPDATE rollouts SET phase = $4, phase_started_at = $5, updated_at = $5
		WHERE org_id = $1 AND id = $2 AND phase = $3 AND state = 'running'`, orgID, id, from, to, us(at))
	if err != nil {
		return false, fmt.Errorf("advance rollout %s: %w", id, err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// InsertTransition records a phase entered, once.
func (tx *Tx) InsertTransition(ctx context.Context, orgID string, t rollout.Transition) error {
	return tx.insert(ctx, fmt.Sprintf("transition of rollout %s to phase %d", t.RolloutID, t.Phase),
		"INSERT INTO rollout_transitions (rollout_id, org_id, phase, percent, reason, at) VALUES ($1, $2, $3, $4, $5, $6)",
		t.RolloutID, orgID, t.Phase, t.Percent, t.Reason, us(t.At))
}

// Transitions lists the phases a rollout entered, in order.
func (tx *Tx) Transitions(ctx context.Context, orgID, rolloutID string) ([]rollout.Transition, error) {
	return list(ctx, tx, "rollout transitions", func(scan func(...any) error) (rollout.Transition, error) {
		var t rollout.Transition
		var at int64
		err := scan(&t.RolloutID, &t.Phase, &t.Percent, &t.Reason, &at)
		t.At = fromUS(at)
		return t, err
	}, "SELECT rollout_id, phase, percent, reason, at FROM rollout_transitions WHERE org_id = $1 AND rollout_id = $2 ORDER BY phase", orgID, rolloutID)
}

const duCols = "rollout_id, device_id, phase, state, attempts, artifact, bytes, reason, offered_at, updated_at, finished_at, failures"

func scanDU(scan func(...any) error) (rollout.DeviceUpdate, error) {
	var u rollout.DeviceUpdate
	var offered, updated int64
	var finished sql.NullInt64
	err := scan(&u.RolloutID, &u.DeviceID, &u.Phase, &u.State, &u.Attempts, &u.Artifact, &u.Bytes, &u.Reason, &offered, &updated, &finished,
		&u.Failures)
	u.OfferedAt, u.UpdatedAt, u.FinishedAt = fromUS(offered), fromUS(updated), fromNullUS(finished)
	return u, err
}

// PutDeviceUpdate inserts or replaces a device's row of a rollout.
func (tx *Tx) PutDeviceUpdate(ctx context.Context, orgID string, u rollout.DeviceUpdate) error {
	_, err := tx.exec(ctx, `INSERT INTO device_updates (`+duCols+`, org_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
		ON CONFLICT (rollout_id, device_id) DO UPDATE SET phase = excluded.phase, state = excluded.state, attempts = excluded.attempts,
		artifact = excluded.artifact, bytes = excluded.bytes, reason = excluded.reason, offered_at = excluded.offered_at,
		updated_at = excluded.updated_at, finished_at = excluded.finished_at, failures = excluded.failures`,
		u.RolloutID, u.DeviceID, u.Phase, u.State, u.Attempts, u.Artifact, u.Bytes, u.Reason, us(u.OfferedAt), us(u.UpdatedAt),
		nullUS(u.FinishedAt), u.Failures, orgID)
	if err != nil {
		return fmt.Errorf("store update of device %s in rollout %s: %w", u.DeviceID, u.RolloutID, err)
	}
	return nil
}

// DeviceUpdate returns a device's row of a rollout.
func (tx *Tx) DeviceUpdate(ctx context.Context, orgID, rolloutID, deviceID string) (rollout.DeviceUpdate, error) {
	return getOne(ctx, tx, fmt.Sprintf("device %s in rollout %s", deviceID, rolloutID), scanDU,
		"SELECT "+duCols+" FROM device_updates WHERE org_id = $1 AND rollout_id = $2 AND device_id = $3", orgID, rolloutID, deviceID)
}

// LiveDeviceUpdates lists a device's rows in running or paused rollouts.
func (tx *Tx) LiveDeviceUpdates(ctx context.Context, orgID, deviceID string) ([]rollout.DeviceUpdate, error) {
	return list(ctx, tx, "device updates", scanDU, "SELECT "+prefixed("u.", duCols)+` FROM device_updates u
		JOIN rollouts r ON r.id = u.rollout_id
		WHERE u.device_id = $1 AND u.org_id = $2 AND r.state IN ('running', 'paused') ORDER BY u.rollout_id`, deviceID, orgID)
}

// ReleaseDeviceUpdates lists a device's rows in the rollouts of a release,
// whatever the rollouts' state.
func (tx *Tx) ReleaseDeviceUpdates(ctx context.Context, orgID, deviceID, releaseID string) ([]rollout.DeviceUpdate, error) {
	return list(ctx, tx, "device updates", scanDU, "SELECT "+prefixed("u.", duCols)+` FROM device_updates u
		JOIN rollouts r ON r.id = u.rollout_id
		WHERE u.device_id = $1 AND u.org_id = $2 AND r.release_id = $3 ORDER BY u.rollout_id`, deviceID, orgID, releaseID)
}

func prefixed(prefix, cols string) string {
	parts := strings.Split(cols, ", ")
	for i := range parts {
		parts[i] = prefix + parts[i]
	}
	return strings.Join(parts, ", ")
}

// ListDeviceUpdates pages through a rollout's rows by device id.
func (tx *Tx) ListDeviceUpdates(ctx context.Context, orgID, rolloutID, state, after string, limit int) ([]rollout.DeviceUpdate, error) {
	return list(ctx, tx, "device updates", scanDU, "SELECT "+duCols+` FROM device_updates
		WHERE org_id = $1 AND rollout_id = $2 AND ($3 = '' OR state = $3) AND device_id > $4 ORDER BY device_id LIMIT $5`,
		orgID, rolloutID, state, after, limit)
}

// CountDeviceUpdates counts a rollout's rows by phase and state, and sums
// their failures.
func (tx *Tx) CountDeviceUpdates(ctx context.Context, orgID, rolloutID string) ([]rollout.StateCount, error) {
	return list(ctx, tx, "device update counts", func(scan func(...any) error) (rollout.StateCount, error) {
		var c rollout.StateCount
		err := scan(&c.Phase, &c.State, &c.Count, &c.Failures)
		return c, err
	}, `SELECT phase, state, COUNT(*), COALESCE(SUM(failures), 0) FROM device_updates WHERE org_id = $1 AND rollout_id = $2
		GROUP BY phase, state ORDER BY phase, state`, orgID, rolloutID)
}

// inFlightStates is the SQL list of states of an update not yet finished.
const inFlightStates = "('offered', 'downloading', 'downloaded', 'installing', 'rebooting')"

// TimeOutDeviceUpdates marks stuck in-flight rows timed out, counting one
// more failure each; holdDownloaded spares rows in state downloaded.
func (tx *Tx) TimeOutDeviceUpdates(ctx context.Context, orgID, rolloutID string, before, at time.Time, holdDownloaded bool) (int, error) {
	res, err := tx.exec(ctx, `UPDATE device_updates SET state = 'timed-out', reason = 'no progress reported before the device timeout',
		updated_at = $4, finished_at = $4, failures = failures + 1
		WHERE org_id = $1 AND rollout_id = $2 AND state IN `+inFlightStates+` AND updated_at < $3 AND NOT ($5 AND state = 'downloaded')`,
		orgID, rolloutID, us(before), us(at), holdDownloaded)
	if err != nil {
		return 0, fmt.Errorf("time out updates of rollout %s: %w", rolloutID, err)
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// CancelOfferedUpdates marks rows the devices have not started as cancelled.
func (tx *Tx) CancelOfferedUpdates(ctx context.Context, orgID, rolloutID, reason string, at time.Time) (int, error) {
	res, err := tx.exec(ctx, `UPDATE device_updates SET state = 'cancelled', reason = $3, updated_at = $4, finished_at = $4
		WHERE org_id = $1 AND rollout_id = $2 AND state = 'offered'`, orgID, rolloutID, reason, us(at))
	if err != nil {
		return 0, fmt.Errorf("cancel offers of rollout %s: %w", rolloutID, err)
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// DropRolloutAssignments deletes the rollout's assignments of devices whose
// row is in one of states.
func (tx *Tx) DropRolloutAssignments(ctx context.Context, orgID, rolloutID string, states []string) (int, error) {
	if len(states) == 0 {
		return 0, nil
	}
	args := []any{orgID, rolloutID}
	ph := make([]string, len(states))
	for i, s := range states {
		args = append(args, s)
		ph[i] = fmt.Sprintf("$%d", len(args))
	}
	res, err := tx.exec(ctx, `DELETE FROM device_assignments WHERE org_id = $1 AND rollout_id = $2 AND device_id IN
		(SELECT device_id FROM device_updates WHERE rollout_id = $2 AND state IN (`+strings.Join(ph, ", ")+`))`, args...)
	if err != nil {
		return 0, fmt.Errorf("drop assignments of rollout %s: %w", rolloutID, err)
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// DeleteRolloutAssignment deletes a device's assignment if rolloutID made it.
func (tx *Tx) DeleteRolloutAssignment(ctx context.Context, orgID, deviceID, rolloutID string) (bool, error) {
	res, err := tx.exec(ctx, "DELETE FROM device_assignments WHERE org_id = $1 AND device_id = $2 AND rollout_id = $3", orgID, deviceID, rolloutID)
	if err != nil {
		return false, fmt.Errorf("drop assignment of device %s: %w", deviceID, err)
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

// DeviceGroupIDs lists a device's static groups.
func (tx *Tx) DeviceGroupIDs(ctx context.Context, deviceID string) ([]string, error) {
	return list(ctx, tx, "groups of device "+deviceID, func(scan func(...any) error) (string, error) {
		var s string
		return s, scan(&s)
	}, "SELECT group_id FROM device_group_members WHERE device_id = $1 ORDER BY group_id", deviceID)
}

// DeviceTags returns a device's tags.
func (tx *Tx) DeviceTags(ctx context.Context, deviceID string) (map[string]string, error) {
	rows, err := tx.tx.QueryContext(ctx, "SELECT key, value FROM device_tags WHERE device_id = $1", deviceID)
	if err != nil {
		return nil, fmt.Errorf("tags of device %s: %w", deviceID, err)
	}
	defer rows.Close()
	tags := map[string]string{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return nil, err
		}
		tags[k] = v
	}
	return tags, rows.Err()
}

// CountOrgDevices counts an organization's active and quarantined devices
// (the devices_org_status index answers it).
func (tx *Tx) CountOrgDevices(ctx context.Context, orgID string) (int, error) {
	var n int
	err := tx.tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM devices WHERE org_id = $1 AND status IN ('active', 'quarantined')", orgID).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count devices of organization %s: %w", orgID, err)
	}
	return n, nil
}

// SetGroupWindow sets (or, with an empty Cron, removes) a group's window.
func (tx *Tx) SetGroupWindow(ctx context.Context, orgID string, w rollout.GroupWindow) error {
	return tx.updateOne(ctx, "group "+w.GroupID, `UPDATE device_groups SET window_cron = $3, window_duration = $4, window_tz = $5
		WHERE org_id = $1 AND id = $2`, orgID, w.GroupID, w.Cron, w.DurationSeconds*int64(time.Second/time.Microsecond), w.TimeZone)
}

// GroupWindows lists an organization's groups that have a window.
func (tx *Tx) GroupWindows(ctx context.Context, orgID string) ([]rollout.GroupWindow, error) {
	return list(ctx, tx, "group windows", func(scan func(...any) error) (rollout.GroupWindow, error) {
		var w rollout.GroupWindow
		var d int64
		err := scan(&w.GroupID, &w.Cron, &d, &w.TimeZone, &w.Query)
		w.DurationSeconds = d / int64(time.Second/time.Microsecond)
		return w, err
	}, `SELECT id, window_cron, window_duration, window_tz, query FROM device_groups
		WHERE org_id = $1 AND window_cron <> '' ORDER BY id`, orgID)
}

// targetWhere builds the shared condition of a rollout's target devices.
func targetWhere(orgID, productID string, cond rollout.Cond, args *[]any) (string, error) {
	next := func(v any) string {
		*args = append(*args, v)
		return fmt.Sprintf("$%d", len(*args))
	}
	q := "d.org_id = " + next(orgID) + " AND d.product_id = " + next(productID) + " AND d.status IN ('active', 'quarantined')"
	if cond != nil {
		c, err := cond(next)
		if err != nil {
			return "", err
		}
		if c != "" {
			q += " AND (" + c + ")"
		}
	}
	return q, nil
}

// TargetDeviceIDs pages through the ids of a rollout target's devices.
func (tx *Tx) TargetDeviceIDs(ctx context.Context, orgID, productID string, cond rollout.Cond, after string, limit int) ([]string, error) {
	var args []any
	where, err := targetWhere(orgID, productID, cond, &args)
	if err != nil {
		return nil, err
	}
	args = append(args, after, limit)
	return list(ctx, tx, "target devices", func(scan func(...any) error) (string, error) {
		var s string
		return s, scan(&s)
	}, fmt.Sprintf("SELECT d.id"+deviceFrom+"WHERE %s AND d.id > $%d ORDER BY d.id LIMIT $%d", where, len(args)-1, len(args)), args...)
}

// TargetDevices pages through a rollout target's devices.
func (tx *Tx) TargetDevices(ctx context.Context, orgID, productID string, cond rollout.Cond, after string, limit int) ([]inventory.Device, error) {
	return tx.ListDevices(ctx, inventory.DeviceFilter{OrgID: orgID, After: after, Limit: limit,
		Cond: func(next func(any) string) (string, error) {
			q := "d.product_id = " + next(productID) + " AND d.status IN ('active', 'quarantined')"
			if cond == nil {
				return q, nil
			}
			c, err := cond(next)
			if err != nil || c == "" {
				return q, err
			}
			return q + " AND (" + c + ")", nil
		}})
}

// CountTargetPending counts a target's devices the rollout has not
// finished with.
func (tx *Tx) CountTargetPending(ctx context.Context, orgID, productID, version, rolloutID string, maxAttempts int, cond rollout.Cond) (int, error) {
	var args []any
	where, err := targetWhere(orgID, productID, cond, &args)
	if err != nil {
		return 0, err
	}
	args = append(args, version, rolloutID, maxAttempts)
	n := len(args)
	q := fmt.Sprintf(`SELECT COUNT(*)`+deviceFrom+`WHERE %s AND d.installed_version <> $%d AND NOT EXISTS (
		SELECT 1 FROM device_updates u WHERE u.rollout_id = $%d AND u.device_id = d.id AND
		(u.state IN ('succeeded', 'cancelled') OR (u.state IN ('failed', 'rolled-back', 'timed-out') AND u.attempts >= $%d)))`,
		where, n-2, n-1, n)
	var count int
	if err := tx.tx.QueryRowContext(ctx, q, args...).Scan(&count); err != nil {
		return 0, fmt.Errorf("count pending devices of rollout %s: %w", rolloutID, err)
	}
	return count, nil
}
