package store

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/steward-iot/steward/internal/rollout"
)

var _ rollout.Tx = (*Tx)(nil)

// Rollout returns the rollout store.
func (db *DB) Rollout() rollout.Store { return domain[rollout.Tx]{db} }

func scanAssignment(scan func(...any) error) (rollout.Assignment, error) {
	var a rollout.Assignment
	var at int64
	var rolloutID sql.NullString
	err := scan(&a.DeviceID, &a.ReleaseID, &rolloutID, &a.AssignedBy, &at)
	a.AssignedAt, a.RolloutID = fromUS(at), rolloutID.String
	return a, err
}

// PutAssignment sets (or replaces) a device's assigned release; a
// RolloutID names the rollout that made it.
func (tx *Tx) PutAssignment(ctx context.Context, orgID string, a rollout.Assignment) error {
	_, err := tx.exec(ctx, `INSERT INTO device_assignments (device_id, org_id, release_id, rollout_id, assigned_by, assigned_at) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (device_id) DO UPDATE SET release_id = excluded.release_id, rollout_id = excluded.rollout_id,
		assigned_by = excluded.assigned_by, assigned_at = excluded.assigned_at`,
		a.DeviceID, orgID, a.ReleaseID, nullString(a.RolloutID), a.AssignedBy, us(a.AssignedAt))
	return err
}

// DeleteAssignment removes a device's assignment and reports whether it had one.
func (tx *Tx) DeleteAssignment(ctx context.Context, orgID, deviceID string) (bool, error) {
	res, err := tx.exec(ctx, "DELETE FROM device_assignments WHERE org_id = $1 AND device_id = $2", orgID, deviceID)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

// AssignmentOf returns a device's assignment.
func (tx *Tx) AssignmentOf(ctx context.Context, orgID, deviceID string) (rollout.Assignment, error) {
	return getOne(ctx, tx, "assignment of device "+deviceID, scanAssignment,
		"SELECT device_id, release_id, rollout_id, assigned_by, assigned_at FROM device_assignments WHERE org_id = $1 AND device_id = $2", orgID, deviceID)
}

const updateEventCols = "id, device_id, report_id, release_id, version, step, reason_code, detail, bytes_done, bytes_total, device_at, received_at"

func scanUpdateEvent(scan func(...any) error) (rollout.UpdateEvent, error) {
	var e rollout.UpdateEvent
	var done, total sql.NullInt64
	var deviceAt, receivedAt int64
	err := scan(&e.ID, &e.DeviceID, &e.ReportID, &e.ReleaseID, &e.Version, &e.Step, &e.ReasonCode, &e.Detail,
		&done, &total, &deviceAt, &receivedAt)
	if done.Valid {
		e.BytesDone = &done.Int64
	}
	if total.Valid {
		e.BytesTotal = &total.Int64
	}
	e.DeviceTime, e.ReceivedAt = fromUS(deviceAt), fromUS(receivedAt)
	return e, err
}

func nullInt(p *int64) any {
	if p == nil {
		return nil
	}
	return *p
}

// AddUpdateEvent appends to a device's update history; a report id the
// device used before inserts nothing (inserted is false). ON CONFLICT DO
// NOTHING makes concurrent copies of one report safe on both databases.
func (tx *Tx) AddUpdateEvent(ctx context.Context, orgID string, e rollout.UpdateEvent) (bool, error) {
	res, err := tx.exec(ctx, `INSERT INTO device_update_events (`+updateEventCols+`, org_id)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
		ON CONFLICT (device_id, report_id) DO NOTHING`,
		e.ID, e.DeviceID, e.ReportID, e.ReleaseID, e.Version, e.Step, e.ReasonCode, e.Detail,
		nullInt(e.BytesDone), nullInt(e.BytesTotal), us(e.DeviceTime), us(e.ReceivedAt), orgID)
	if err != nil {
		return false, fmt.Errorf("insert update event: %w", err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// UpdateHistory lists a device's update events in the order received.
func (tx *Tx) UpdateHistory(ctx context.Context, orgID, deviceID, after string, limit int) ([]rollout.UpdateEvent, error) {
	return list(ctx, tx, "update history", scanUpdateEvent, "SELECT "+updateEventCols+` FROM device_update_events
		WHERE org_id = $1 AND device_id = $2 AND id > $3 ORDER BY id LIMIT $4`, orgID, deviceID, after, limit)
}
