package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/steward-iot/steward/internal/inventory"
)

var _ inventory.Tx = (*Tx)(nil)

// Inventory returns the inventory store.
func (db *DB) Inventory() inventory.Store { return domain[inventory.Tx]{db} }

const productCols = "id, org_id, slug, name, hardware_id, capability, battery_powered, link_class, end_of_support_at, created_at"

func scanProduct(scan func(...any) error) (inventory.Product, error) {
	var p inventory.Product
	var eos sql.NullInt64
	var created int64
	err := scan(&p.ID, &p.OrgID, &p.Slug, &p.Name, &p.HardwareID, &p.Capability, &p.BatteryPowered, &p.LinkClass, &eos, &created)
	p.EndOfSupport, p.CreatedAt = fromNullUS(eos), fromUS(created)
	return p, err
}

func (tx *Tx) InsertProduct(ctx context.Context, p inventory.Product) error {
	return tx.insert(ctx, fmt.Sprintf("product %q or hardware id %q", p.Slug, p.HardwareID),
		"INSERT INTO products ("+productCols+") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
		p.ID, p.OrgID, p.Slug, p.Name, p.HardwareID, p.Capability, p.BatteryPowered, p.LinkClass, nullUS(p.EndOfSupport), us(p.CreatedAt))
}

func (tx *Tx) ProductByID(ctx context.Context, orgID, id string) (inventory.Product, error) {
	return getOne(ctx, tx, "product "+id, scanProduct, "SELECT "+productCols+" FROM products WHERE org_id = $1 AND id = $2", orgID, id)
}

func (tx *Tx) ProductBySlug(ctx context.Context, orgID, slug string) (inventory.Product, error) {
	return getOne(ctx, tx, fmt.Sprintf("product %q", slug), scanProduct, "SELECT "+productCols+" FROM products WHERE org_id = $1 AND slug = $2", orgID, slug)
}

func (tx *Tx) ProductByHardwareID(ctx context.Context, orgID, hw string) (inventory.Product, error) {
	return getOne(ctx, tx, fmt.Sprintf("product with hardware id %q", hw), scanProduct,
		"SELECT "+productCols+" FROM products WHERE org_id = $1 AND hardware_id = $2", orgID, hw)
}

func (tx *Tx) ListProducts(ctx context.Context, orgID, after string, limit int) ([]inventory.Product, error) {
	return list(ctx, tx, "products", scanProduct,
		"SELECT "+productCols+" FROM products WHERE org_id = $1 AND id > $2 ORDER BY id LIMIT $3", orgID, after, limit)
}

const deviceCols = `d.id, d.org_id, d.product_id, p.slug, d.serial, d.key_id, d.algorithm, d.public_key_pem, d.enrolled_via,
	d.created_at, d.status, d.status_changed_at, d.last_auth_at, d.last_seen_at, d.installed_version, d.software_hash,
	d.battery_percent, d.on_mains, d.link, d.metered, d.free_storage, d.maintenance_window`

const deviceFrom = " FROM devices d JOIN products p ON p.id = d.product_id "

func scanDevice(scan func(...any) error) (inventory.Device, error) {
	var d inventory.Device
	var created, changed, auth int64
	var seen, battery sql.NullInt64
	err := scan(&d.ID, &d.OrgID, &d.ProductID, &d.Product, &d.Serial, &d.KeyID, &d.Algorithm, &d.PublicKeyPEM, &d.EnrolledVia,
		&created, &d.Status, &changed, &auth, &seen, &d.InstalledVersion, &d.SoftwareHash,
		&battery, &d.State.OnMains, &d.State.Link, &d.State.Metered, &d.State.FreeStorage, &d.State.MaintenanceWindow)
	d.CreatedAt, d.StatusChangedAt, d.LastAuthAt, d.LastSeenAt = fromUS(created), fromUS(changed), fromUS(auth), fromNullUS(seen)
	if battery.Valid {
		b := int(battery.Int64)
		d.State.BatteryPercent = &b
	}
	d.Tags = map[string]string{}
	return d, err
}

func (tx *Tx) InsertDevice(ctx context.Context, d inventory.Device) error {
	return tx.insert(ctx, fmt.Sprintf("device with serial %q or key %s", d.Serial, d.KeyID),
		`INSERT INTO devices (id, org_id, product_id, serial, key_id, algorithm, public_key_pem, status, enrolled_via,
		 created_at, status_changed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		d.ID, d.OrgID, d.ProductID, d.Serial, d.KeyID, d.Algorithm, d.PublicKeyPEM, d.Status, d.EnrolledVia,
		us(d.CreatedAt), us(d.StatusChangedAt))
}

func (tx *Tx) deviceWhere(ctx context.Context, what, cond string, args ...any) (inventory.Device, error) {
	d, err := getOne(ctx, tx, what, scanDevice, "SELECT "+deviceCols+deviceFrom+"WHERE "+cond, args...)
	if err != nil {
		return d, err
	}
	if err := tx.loadTags(ctx, []*inventory.Device{&d}); err != nil {
		return d, err
	}
	return d, nil
}

func (tx *Tx) DeviceByID(ctx context.Context, orgID, id string) (inventory.Device, error) {
	return tx.deviceWhere(ctx, "device "+id, "d.org_id = $1 AND d.id = $2", orgID, id)
}

func (tx *Tx) DeviceForAuth(ctx context.Context, id string) (inventory.Device, error) {
	// No tags: this runs on every device request and needs only status.
	return getOne(ctx, tx, "device "+id, scanDevice, "SELECT "+deviceCols+deviceFrom+"WHERE d.id = $1", id)
}

func (tx *Tx) DeviceByKeyID(ctx context.Context, keyID string) (inventory.Device, error) {
	return getOne(ctx, tx, "device with key "+keyID, scanDevice, "SELECT "+deviceCols+deviceFrom+"WHERE d.key_id = $1", keyID)
}

func (tx *Tx) DeviceBySerial(ctx context.Context, orgID, serial string) (inventory.Device, error) {
	return tx.deviceWhere(ctx, fmt.Sprintf("device with serial %q", serial), "d.org_id = $1 AND d.serial = $2", orgID, serial)
}

func (tx *Tx) ListDevices(ctx context.Context, f inventory.DeviceFilter) ([]inventory.Device, error) {
	args := []any{f.OrgID, f.After}
	next := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	q := "SELECT " + deviceCols + deviceFrom + "WHERE d.org_id = $1 AND d.id > $2"
	if f.Cond != nil {
		cond, err := f.Cond(next)
		if err != nil {
			return nil, err
		}
		q += " AND (" + cond + ")"
	}
	q += " ORDER BY d.id LIMIT " + next(f.Limit)
	ds, err := list(ctx, tx, "devices", scanDevice, q, args...)
	if err != nil {
		return nil, err
	}
	ptrs := make([]*inventory.Device, len(ds))
	for i := range ds {
		ptrs[i] = &ds[i]
	}
	return ds, tx.loadTags(ctx, ptrs)
}

// loadTags fills the tags of a page of devices in one query.
func (tx *Tx) loadTags(ctx context.Context, ds []*inventory.Device) error {
	if len(ds) == 0 {
		return nil
	}
	byID := make(map[string]*inventory.Device, len(ds))
	ph := make([]string, len(ds))
	args := make([]any, len(ds))
	for i, d := range ds {
		byID[d.ID] = d
		ph[i] = fmt.Sprintf("$%d", i+1)
		args[i] = d.ID
	}
	rows, err := tx.tx.QueryContext(ctx, "SELECT device_id, key, value FROM device_tags WHERE device_id IN ("+strings.Join(ph, ", ")+")", args...)
	if err != nil {
		return fmt.Errorf("read device tags: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, k, v string
		if err := rows.Scan(&id, &k, &v); err != nil {
			return err
		}
		byID[id].Tags[k] = v
	}
	return rows.Err()
}

func (tx *Tx) CountDevices(ctx context.Context, status string) (int, error) {
	var n int
	err := tx.tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM devices WHERE status = $1", status).Scan(&n)
	return n, err
}

func (tx *Tx) SetDeviceStatus(ctx context.Context, orgID, id, status string, at time.Time) error {
	return tx.updateOne(ctx, "device "+id,
		"UPDATE devices SET status = $3, status_changed_at = $4 WHERE org_id = $1 AND id = $2", orgID, id, status, us(at))
}

func (tx *Tx) AdvanceDeviceAuth(ctx context.Context, id string, at time.Time) (bool, error) {
	res, err := tx.exec(ctx, "UPDATE devices SET last_auth_at = $2 WHERE id = $1 AND last_auth_at < $2", id, us(at))
	if err != nil {
		return false, fmt.Errorf("record device auth: %w", err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

func (tx *Tx) RecordSoftware(ctx context.Context, s inventory.Software) error {
	var prev string
	if err := tx.tx.QueryRowContext(ctx, "SELECT installed_version FROM devices WHERE id = $1", s.DeviceID).Scan(&prev); err != nil {
		return fmt.Errorf("record software of %s: %w", s.DeviceID, err)
	}
	if _, err := tx.exec(ctx, "UPDATE devices SET installed_version = $2, installed_version_key = $3, software_hash = $4 WHERE id = $1",
		s.DeviceID, s.Version, s.VersionKey, s.Hash); err != nil {
		return fmt.Errorf("record software of %s: %w", s.DeviceID, err)
	}
	if prev != s.Version {
		if _, err := tx.exec(ctx, "INSERT INTO device_versions (device_id, seen_at, version) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
			s.DeviceID, us(s.At), s.Version); err != nil {
			return fmt.Errorf("record version history of %s: %w", s.DeviceID, err)
		}
	}
	if _, err := tx.exec(ctx, "DELETE FROM device_components WHERE device_id = $1", s.DeviceID); err != nil {
		return err
	}
	for _, c := range s.Components {
		if _, err := tx.exec(ctx, "INSERT INTO device_components (device_id, purl, version) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
			s.DeviceID, c.Purl, c.Version); err != nil {
			return fmt.Errorf("record components of %s: %w", s.DeviceID, err)
		}
	}
	return nil
}

func (tx *Tx) TouchDevices(ctx context.Context, seen []inventory.Seen) error {
	stmt, err := tx.tx.PrepareContext(ctx, `UPDATE devices SET last_seen_at = $2, battery_percent = $3, on_mains = $4, link = $5,
		metered = $6, free_storage = $7, maintenance_window = $8 WHERE id = $1 AND (last_seen_at IS NULL OR last_seen_at < $2)`)
	if err != nil {
		return fmt.Errorf("touch devices: %w", err)
	}
	defer stmt.Close()
	for _, s := range seen {
		var battery any
		if s.State.BatteryPercent != nil {
			battery = *s.State.BatteryPercent
		}
		if _, err := stmt.ExecContext(ctx, s.DeviceID, us(s.At), battery, s.State.OnMains, s.State.Link, s.State.Metered,
			s.State.FreeStorage, s.State.MaintenanceWindow); err != nil {
			return fmt.Errorf("touch device %s: %w", s.DeviceID, err)
		}
	}
	return nil
}

func (tx *Tx) DeviceComponents(ctx context.Context, deviceID string) ([]inventory.Component, error) {
	return list(ctx, tx, "device components", func(scan func(...any) error) (inventory.Component, error) {
		var c inventory.Component
		err := scan(&c.Purl, &c.Version)
		return c, err
	}, "SELECT purl, version FROM device_components WHERE device_id = $1 ORDER BY purl", deviceID)
}

func (tx *Tx) SetDeviceTags(ctx context.Context, deviceID string, tags map[string]string) error {
	if _, err := tx.exec(ctx, "DELETE FROM device_tags WHERE device_id = $1", deviceID); err != nil {
		return fmt.Errorf("set tags: %w", err)
	}
	for k, v := range tags {
		if _, err := tx.exec(ctx, "INSERT INTO device_tags (device_id, key, value) VALUES ($1, $2, $3)", deviceID, k, v); err != nil {
			return fmt.Errorf("set tag %s: %w", k, err)
		}
	}
	return nil
}

func (tx *Tx) VersionHistory(ctx context.Context, deviceID string, limit int) ([]inventory.VersionEvent, error) {
	return list(ctx, tx, "version history", func(scan func(...any) error) (inventory.VersionEvent, error) {
		var e inventory.VersionEvent
		var at int64
		err := scan(&e.Version, &at)
		e.SeenAt = fromUS(at)
		return e, err
	}, "SELECT version, seen_at FROM device_versions WHERE device_id = $1 ORDER BY seen_at DESC LIMIT $2", deviceID, limit)
}

func (tx *Tx) VersionDistribution(ctx context.Context, orgID, productID string) ([]inventory.VersionCount, error) {
	return list(ctx, tx, "version distribution", func(scan func(...any) error) (inventory.VersionCount, error) {
		var v inventory.VersionCount
		var key string
		err := scan(&v.Version, &key, &v.Devices)
		return v, err
	}, `SELECT installed_version, COALESCE(installed_version_key, '') AS vkey, COUNT(*) FROM devices
		WHERE org_id = $1 AND product_id = $2 AND status = 'active'
		GROUP BY installed_version, vkey ORDER BY vkey DESC`, orgID, productID)
}

func (tx *Tx) CountNotSeenSince(ctx context.Context, orgID, productID string, before time.Time) (int, error) {
	var n int
	err := tx.tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM devices WHERE org_id = $1 AND product_id = $2 AND status = 'active'
		AND (last_seen_at IS NULL OR last_seen_at < $3)`, orgID, productID, us(before)).Scan(&n)
	return n, err
}

const groupCols = "id, org_id, name, query, created_at"

func scanGroup(scan func(...any) error) (inventory.Group, error) {
	var g inventory.Group
	var created int64
	err := scan(&g.ID, &g.OrgID, &g.Name, &g.Query, &created)
	g.CreatedAt = fromUS(created)
	return g, err
}

func (tx *Tx) InsertGroup(ctx context.Context, g inventory.Group) error {
	return tx.insert(ctx, fmt.Sprintf("group %q", g.Name),
		"INSERT INTO device_groups ("+groupCols+") VALUES ($1, $2, $3, $4, $5)", g.ID, g.OrgID, g.Name, g.Query, us(g.CreatedAt))
}

func (tx *Tx) GroupByID(ctx context.Context, orgID, id string) (inventory.Group, error) {
	return getOne(ctx, tx, "group "+id, scanGroup, "SELECT "+groupCols+" FROM device_groups WHERE org_id = $1 AND id = $2", orgID, id)
}

func (tx *Tx) GroupByName(ctx context.Context, orgID, name string) (inventory.Group, error) {
	return getOne(ctx, tx, fmt.Sprintf("group %q", name), scanGroup, "SELECT "+groupCols+" FROM device_groups WHERE org_id = $1 AND name = $2", orgID, name)
}

func (tx *Tx) ListGroups(ctx context.Context, orgID, after string, limit int) ([]inventory.Group, error) {
	return list(ctx, tx, "groups", scanGroup, "SELECT "+groupCols+" FROM device_groups WHERE org_id = $1 AND id > $2 ORDER BY id LIMIT $3", orgID, after, limit)
}

func (tx *Tx) AddGroupMembers(ctx context.Context, groupID string, deviceIDs []string) error {
	for _, id := range deviceIDs {
		if _, err := tx.exec(ctx, "INSERT INTO device_group_members (group_id, device_id) VALUES ($1, $2) ON CONFLICT DO NOTHING", groupID, id); err != nil {
			return fmt.Errorf("add device %s to group: %w", id, err)
		}
	}
	return nil
}
