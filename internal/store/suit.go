package store

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"

	"github.com/steward-iot/steward/internal/suit"
)

var _ suit.Store = (*DB)(nil)

// SUITKey returns an organization's SUIT signing key, nil when none.
func (db *DB) SUITKey(ctx context.Context, orgID string) ([]byte, error) {
	var s string
	err := db.reader.QueryRowContext(ctx, "SELECT private FROM suit_keys WHERE org_id = $1", orgID).Scan(&s)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return base64.StdEncoding.DecodeString(s)
}

// SaveSUITKey stores an organization's first SUIT signing key.
func (db *DB) SaveSUITKey(ctx context.Context, orgID string, pkcs8 []byte) error {
	return db.Write(ctx, func(tx *Tx) error {
		return tx.insert(ctx, "SUIT key of org "+orgID, "INSERT INTO suit_keys (org_id, private, created_at) VALUES ($1, $2, $3)",
			orgID, base64.StdEncoding.EncodeToString(pkcs8), us(db.clock.Now()))
	})
}

// PutEnvelope stores (or replaces) the envelope of one release image.
func (db *DB) PutEnvelope(ctx context.Context, orgID string, e suit.Envelope) error {
	return db.Write(ctx, func(tx *Tx) error {
		_, err := tx.exec(ctx, `INSERT INTO suit_envelopes (release_id, artifact_id, org_id, envelope, created_at) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (release_id, artifact_id) DO UPDATE SET envelope = excluded.envelope, created_at = excluded.created_at`,
			e.ReleaseID, e.ArtifactID, orgID, base64.StdEncoding.EncodeToString(e.Envelope), us(db.clock.Now()))
		return err
	})
}

// Envelopes returns the envelopes of an organization's release.
func (db *DB) Envelopes(ctx context.Context, orgID, releaseID string) ([]suit.Envelope, error) {
	var out []suit.Envelope
	err := db.Read(ctx, func(tx *Tx) error {
		var err error
		out, err = list(ctx, tx, "SUIT envelopes", func(scan func(...any) error) (suit.Envelope, error) {
			var e suit.Envelope
			var b64 string
			if err := scan(&e.ReleaseID, &e.ArtifactID, &b64); err != nil {
				return e, err
			}
			e.Envelope, err = base64.StdEncoding.DecodeString(b64)
			return e, err
		}, "SELECT release_id, artifact_id, envelope FROM suit_envelopes WHERE org_id = $1 AND release_id = $2 ORDER BY artifact_id", orgID, releaseID)
		return err
	})
	return out, err
}
