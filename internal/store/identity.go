package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/steward-iot/steward/internal/identity"
)

var _ identity.Tx = (*Tx)(nil)

// Identity returns the device identity store.
func (db *DB) Identity() identity.Store { return domain[identity.Tx]{db} }

const enrollTokenCols = "id, org_id, COALESCE(product_id, ''), name, max_uses, uses, created_at, created_by, expires_at, revoked_at"

func scanEnrollToken(scan func(...any) error) (identity.EnrollmentToken, error) {
	var t identity.EnrollmentToken
	var created, expires int64
	var revoked sql.NullInt64
	err := scan(&t.ID, &t.OrgID, &t.ProductID, &t.Name, &t.MaxUses, &t.Uses, &created, &t.CreatedBy, &expires, &revoked)
	t.CreatedAt, t.ExpiresAt, t.RevokedAt = fromUS(created), fromUS(expires), fromNullUS(revoked)
	return t, err
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func (tx *Tx) InsertEnrollmentToken(ctx context.Context, t identity.EnrollmentToken, secretHash string) error {
	return tx.insert(ctx, "enrollment token "+t.ID,
		`INSERT INTO enrollment_tokens (id, org_id, product_id, name, secret_hash, max_uses, uses, created_at, created_by, expires_at, revoked_at)
		 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		t.ID, t.OrgID, nullString(t.ProductID), t.Name, secretHash, t.MaxUses, t.Uses, us(t.CreatedAt), t.CreatedBy, us(t.ExpiresAt), nullUS(t.RevokedAt))
}

func (tx *Tx) EnrollmentTokenByHash(ctx context.Context, secretHash string) (identity.EnrollmentToken, error) {
	return getOne(ctx, tx, "enrollment token", scanEnrollToken, "SELECT "+enrollTokenCols+" FROM enrollment_tokens WHERE secret_hash = $1", secretHash)
}

func (tx *Tx) EnrollmentTokenByID(ctx context.Context, orgID, id string) (identity.EnrollmentToken, error) {
	return getOne(ctx, tx, "enrollment token "+id, scanEnrollToken,
		"SELECT "+enrollTokenCols+" FROM enrollment_tokens WHERE org_id = $1 AND id = $2", orgID, id)
}

func (tx *Tx) ListEnrollmentTokens(ctx context.Context, orgID, after string, limit int) ([]identity.EnrollmentToken, error) {
	return list(ctx, tx, "enrollment tokens", scanEnrollToken,
		"SELECT "+enrollTokenCols+" FROM enrollment_tokens WHERE org_id = $1 AND id > $2 ORDER BY id LIMIT $3", orgID, after, limit)
}

func (tx *Tx) RevokeEnrollmentToken(ctx context.Context, orgID, id string, at time.Time) error {
	return tx.updateOne(ctx, "enrollment token "+id,
		"UPDATE enrollment_tokens SET revoked_at = $3 WHERE org_id = $1 AND id = $2 AND revoked_at IS NULL", orgID, id, us(at))
}

func (tx *Tx) UseEnrollmentToken(ctx context.Context, id string) (bool, error) {
	res, err := tx.exec(ctx, "UPDATE enrollment_tokens SET uses = uses + 1 WHERE id = $1 AND uses < max_uses", id)
	if err != nil {
		return false, fmt.Errorf("use enrollment token: %w", err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

func (tx *Tx) InsertPreauthorization(ctx context.Context, p identity.Preauthorization) error {
	_, err := tx.exec(ctx, `INSERT INTO preauthorizations (org_id, kind, value, product_id, created_at) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (org_id, kind, value) DO UPDATE SET product_id = excluded.product_id`,
		p.OrgID, p.Kind, p.Value, nullString(p.ProductID), us(p.CreatedAt))
	if err != nil {
		return fmt.Errorf("pre-authorize %s %s: %w", p.Kind, p.Value, err)
	}
	return nil
}

func (tx *Tx) Preauthorized(ctx context.Context, orgID, kind, value string) (identity.Preauthorization, error) {
	return getOne(ctx, tx, "pre-authorization", func(scan func(...any) error) (identity.Preauthorization, error) {
		var p identity.Preauthorization
		var created int64
		err := scan(&p.OrgID, &p.Kind, &p.Value, &p.ProductID, &created)
		p.CreatedAt = fromUS(created)
		return p, err
	}, "SELECT org_id, kind, value, COALESCE(product_id, ''), created_at FROM preauthorizations WHERE org_id = $1 AND kind = $2 AND value = $3",
		orgID, kind, value)
}

func (tx *Tx) ServerSecret(ctx context.Context, name, fresh string, at time.Time) (string, error) {
	if _, err := tx.exec(ctx, "INSERT INTO server_secrets (name, secret, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
		name, fresh, us(at)); err != nil {
		return "", fmt.Errorf("server secret %s: %w", name, err)
	}
	var s string
	err := tx.tx.QueryRowContext(ctx, "SELECT secret FROM server_secrets WHERE name = $1", name).Scan(&s)
	return s, err
}
