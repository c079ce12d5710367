package store

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/steward-iot/steward/internal/trust"
)

// TUFMeta returns the metadata store of one organization's repository.
func (db *DB) TUFMeta(orgID string) trust.MetaStore {
	return tufMeta{db: db, org: orgID, table: "tuf_metadata"}
}

// DirectorRoots returns the store of an organization's director root files.
func (db *DB) DirectorRoots(orgID string) trust.MetaStore {
	return tufMeta{db: db, org: orgID, table: "director_roots"}
}

// tufMeta keeps metadata files by name in one of two tables of the same
// shape (constant names, never input).
type tufMeta struct {
	db    *DB
	org   string
	table string
}

func (m tufMeta) Put(ctx context.Context, name string, data []byte) error {
	return m.db.Write(ctx, func(tx *Tx) error {
		_, err := tx.exec(ctx, `INSERT INTO `+m.table+` (org_id, name, data, updated_at) VALUES ($1, $2, $3, $4)
			ON CONFLICT (org_id, name) DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at`,
			m.org, name, string(data), us(m.db.clock.Now()))
		return err
	})
}

func (m tufMeta) Get(ctx context.Context, name string) ([]byte, error) {
	var s string
	err := m.db.reader.QueryRowContext(ctx, "SELECT data FROM "+m.table+" WHERE org_id = $1 AND name = $2", m.org, name).Scan(&s)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: %s", trust.ErrNotFound, name)
	}
	return []byte(s), err
}

// TUFOrgs lists organizations that have repository keys.
func (db *DB) TUFOrgs(ctx context.Context) ([]string, error) {
	var out []string
	err := db.Read(ctx, func(tx *Tx) error {
		var err error
		out, err = list(ctx, tx, "TUF orgs", func(scan func(...any) error) (string, error) {
			var s string
			err := scan(&s)
			return s, err
		}, "SELECT DISTINCT org_id FROM tuf_keys ORDER BY org_id")
		return err
	})
	return out, err
}

// TUFKeys returns the online keys of an organization's repository.
func (db *DB) TUFKeys(ctx context.Context, orgID string) ([]trust.StoredKey, error) {
	var out []trust.StoredKey
	err := db.Read(ctx, func(tx *Tx) error {
		var err error
		out, err = list(ctx, tx, "TUF keys", func(scan func(...any) error) (trust.StoredKey, error) {
			var k trust.StoredKey
			var priv string
			if err := scan(&k.Role, &priv); err != nil {
				return k, err
			}
			der, err := base64.StdEncoding.DecodeString(priv)
			k.PKCS8 = der
			return k, err
		}, "SELECT role, private FROM tuf_keys WHERE org_id = $1 ORDER BY created_at, key_id", orgID)
		return err
	})
	return out, err
}

// SaveTUFKeys stores new online keys of an organization's repository.
func (db *DB) SaveTUFKeys(ctx context.Context, orgID string, keys []trust.StoredKey) error {
	return db.Write(ctx, func(tx *Tx) error {
		for _, k := range keys {
			if err := tx.insert(ctx, "TUF key "+k.KeyID, "INSERT INTO tuf_keys (org_id, key_id, role, private, created_at) VALUES ($1, $2, $3, $4, $5)",
				orgID, k.KeyID, string(k.Role), base64.StdEncoding.EncodeToString(k.PKCS8), us(db.clock.Now())); err != nil {
				return err
			}
		}
		return nil
	})
}
