package store

import (
	"context"

	"github.com/steward-iot/steward/internal/rollout"
)

var _ rollout.Tx = (*Tx)(nil)

// Rollout returns the rollout store.
func (db *DB) Rollout() rollout.Store { return domain[rollout.Tx]{db} }

func scanAssignment(scan func(...any) error) (rollout.Assignment, error) {
	var a rollout.Assignment
	var at int64
	err := scan(&a.DeviceID, &a.ReleaseID, &a.AssignedBy, &at)
	a.AssignedAt = fromUS(at)
	return a, err
}

// PutAssignment sets (or replaces) a device's assigned release.
func (tx *Tx) PutAssignment(ctx context.Context, orgID string, a rollout.Assignment) error {
	_, err := tx.exec(ctx, `INSERT INTO device_assignments (device_id, org_id, release_id, assigned_by, assigned_at) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (device_id) DO UPDATE SET release_id = excluded.release_id, assigned_by = excluded.assigned_by, assigned_at = excluded.assigned_at`,
		a.DeviceID, orgID, a.ReleaseID, a.AssignedBy, us(a.AssignedAt))
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
		"SELECT device_id, release_id, assigned_by, assigned_at FROM device_assignments WHERE org_id = $1 AND device_id = $2", orgID, deviceID)
}
