package store

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/steward-iot/steward/internal/trust"
)

var _ trust.DirectorStore = (*DB)(nil)

// DirectorKeys returns an organization's online director keys.
func (db *DB) DirectorKeys(ctx context.Context, orgID string) ([]trust.StoredKey, error) {
	var out []trust.StoredKey
	err := db.Read(ctx, func(tx *Tx) error {
		var err error
		out, err = list(ctx, tx, "director keys", func(scan func(...any) error) (trust.StoredKey, error) {
			var k trust.StoredKey
			var priv string
			if err := scan(&k.Role, &k.KeyID, &priv); err != nil {
				return k, err
			}
			der, err := base64.StdEncoding.DecodeString(priv)
			k.PKCS8 = der
			return k, err
		}, "SELECT role, key_id, private FROM director_keys WHERE org_id = $1 ORDER BY created_at, key_id", orgID)
		return err
	})
	return out, err
}

// SaveDirectorKeys stores an organization's first director keys; a second
// set (a race between replicas) fails on the existing rows' org.
func (db *DB) SaveDirectorKeys(ctx context.Context, orgID string, keys []trust.StoredKey) error {
	return db.Write(ctx, func(tx *Tx) error {
		var n int
		if err := tx.tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM director_keys WHERE org_id = $1", orgID).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("store: organization %s already has director keys", orgID)
		}
		for _, k := range keys {
			if err := tx.insert(ctx, "director key "+k.KeyID, "INSERT INTO director_keys (org_id, key_id, role, private, created_at) VALUES ($1, $2, $3, $4, $5)",
				orgID, k.KeyID, string(k.Role), base64.StdEncoding.EncodeToString(k.PKCS8), us(db.clock.Now())); err != nil {
				return err
			}
		}
		return nil
	})
}

// DeviceMeta returns a device's current director metadata.
func (db *DB) DeviceMeta(ctx context.Context, orgID, deviceID string) (trust.DeviceMeta, error) {
	var t, s, ts string
	err := db.reader.QueryRowContext(ctx, "SELECT targets, snapshot, timestamp FROM director_devices WHERE org_id = $1 AND device_id = $2",
		orgID, deviceID).Scan(&t, &s, &ts)
	if errors.Is(err, sql.ErrNoRows) {
		return trust.DeviceMeta{}, nil
	}
	if err != nil {
		return trust.DeviceMeta{}, err
	}
	return trust.DeviceMeta{Targets: []byte(t), Snapshot: []byte(s), Timestamp: []byte(ts)}, nil
}

// SaveDeviceMeta replaces a device's director metadata if it is still prev.
func (db *DB) SaveDeviceMeta(ctx context.Context, orgID, deviceID string, prev, next trust.DeviceMeta) error {
	return db.Write(ctx, func(tx *Tx) error {
		now := us(db.clock.Now())
		if prev.Timestamp == nil {
			_, err := tx.exec(ctx, `INSERT INTO director_devices (device_id, org_id, targets, snapshot, timestamp, updated_at)
				VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (device_id) DO NOTHING`,
				deviceID, orgID, string(next.Targets), string(next.Snapshot), string(next.Timestamp), now)
			if err != nil {
				return err
			}
		} else {
			_, err := tx.exec(ctx, `UPDATE director_devices SET targets = $3, snapshot = $4, timestamp = $5, updated_at = $6
				WHERE org_id = $1 AND device_id = $2 AND timestamp = $7`,
				orgID, deviceID, string(next.Targets), string(next.Snapshot), string(next.Timestamp), now, string(prev.Timestamp))
			if err != nil {
				return err
			}
		}
		// Read back rather than trust RowsAffected: what counts is whether
		// our timestamp is the one stored now.
		var got string
		err := tx.tx.QueryRowContext(ctx, "SELECT timestamp FROM director_devices WHERE device_id = $1 AND org_id = $2", deviceID, orgID).Scan(&got)
		if err != nil {
			return err
		}
		if got != string(next.Timestamp) {
			return trust.ErrDirectorConflict
		}
		return nil
	})
}
