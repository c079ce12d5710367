package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/steward-iot/steward/internal/problem"
	"github.com/steward-iot/steward/internal/tenancy"
)

const orgCols = "id, slug, name, instance, created_at"

func scanOrg(scan func(...any) error) (tenancy.Org, error) {
	var o tenancy.Org
	var created int64
	err := scan(&o.ID, &o.Slug, &o.Name, &o.Instance, &created)
	o.CreatedAt = fromUS(created)
	return o, err
}

func (tx *Tx) InsertOrg(ctx context.Context, o tenancy.Org) error {
	return tx.insert(ctx, fmt.Sprintf("organization %q", o.Slug),
		"INSERT INTO orgs ("+orgCols+") VALUES ($1, $2, $3, $4, $5)", o.ID, o.Slug, o.Name, o.Instance, us(o.CreatedAt))
}

func (tx *Tx) OrgByID(ctx context.Context, id string) (tenancy.Org, error) {
	return getOne(ctx, tx, fmt.Sprintf("organization %s", id), scanOrg, "SELECT "+orgCols+" FROM orgs WHERE id = $1", id)
}

func (tx *Tx) OrgBySlug(ctx context.Context, slug string) (tenancy.Org, error) {
	return getOne(ctx, tx, fmt.Sprintf("organization %q", slug), scanOrg, "SELECT "+orgCols+" FROM orgs WHERE slug = $1", slug)
}

func (tx *Tx) ListOrgs(ctx context.Context, after string, limit int) ([]tenancy.Org, error) {
	return list(ctx, tx, "organizations", scanOrg,
		"SELECT "+orgCols+" FROM orgs WHERE id > $1 ORDER BY id LIMIT $2", after, limit)
}

func (tx *Tx) CountOrgs(ctx context.Context) (int, error) {
	var n int
	err := tx.tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM orgs").Scan(&n)
	return n, err
}

const userCols = "id, org_id, email, name, role, created_at, disabled_at"

func scanUser(scan func(...any) error) (tenancy.User, error) {
	var u tenancy.User
	var created int64
	var disabled sql.NullInt64
	err := scan(&u.ID, &u.OrgID, &u.Email, &u.Name, &u.Role, &created, &disabled)
	u.CreatedAt, u.DisabledAt = fromUS(created), fromNullUS(disabled)
	return u, err
}

func (tx *Tx) InsertUser(ctx context.Context, u tenancy.User) error {
	return tx.insert(ctx, fmt.Sprintf("user %q", u.Email),
		"INSERT INTO users ("+userCols+") VALUES ($1, $2, $3, $4, $5, $6, $7)",
		u.ID, u.OrgID, u.Email, u.Name, u.Role, us(u.CreatedAt), nullUS(u.DisabledAt))
}

func (tx *Tx) UserByID(ctx context.Context, orgID, id string) (tenancy.User, error) {
	return getOne(ctx, tx, fmt.Sprintf("user %s", id), scanUser,
		"SELECT "+userCols+" FROM users WHERE org_id = $1 AND id = $2", orgID, id)
}

func (tx *Tx) ListUsers(ctx context.Context, orgID, after string, limit int) ([]tenancy.User, error) {
	return list(ctx, tx, "users", scanUser,
		"SELECT "+userCols+" FROM users WHERE org_id = $1 AND id > $2 ORDER BY id LIMIT $3", orgID, after, limit)
}

func (tx *Tx) DisableUser(ctx context.Context, orgID, id string, at time.Time) error {
	return tx.updateOne(ctx, fmt.Sprintf("user %s", id),
		"UPDATE users SET disabled_at = $3 WHERE org_id = $1 AND id = $2", orgID, id, us(at))
}

const tokenCols = "id, org_id, COALESCE(user_id, ''), name, role, created_at, created_by, expires_at, revoked_at"

func scanToken(scan func(...any) error) (tenancy.Token, error) {
	var t tenancy.Token
	var created int64
	var expires, revoked sql.NullInt64
	err := scan(&t.ID, &t.OrgID, &t.UserID, &t.Name, &t.Role, &created, &t.CreatedBy, &expires, &revoked)
	t.CreatedAt, t.ExpiresAt, t.RevokedAt = fromUS(created), fromNullUS(expires), fromNullUS(revoked)
	return t, err
}

func (tx *Tx) InsertToken(ctx context.Context, t tenancy.Token, secretHash string) error {
	var user any
	if t.UserID != "" {
		user = t.UserID
	}
	return tx.insert(ctx, fmt.Sprintf("token %s", t.ID),
		`INSERT INTO api_tokens (id, org_id, user_id, name, role, secret_hash, created_at, created_by, expires_at, revoked_at)
		 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		t.ID, t.OrgID, user, t.Name, t.Role, secretHash, us(t.CreatedAt), t.CreatedBy, nullUS(t.ExpiresAt), nullUS(t.RevokedAt))
}

func (tx *Tx) TokenByID(ctx context.Context, orgID, id string) (tenancy.Token, error) {
	return getOne(ctx, tx, fmt.Sprintf("token %s", id), scanToken,
		"SELECT "+tokenCols+" FROM api_tokens WHERE org_id = $1 AND id = $2", orgID, id)
}

func (tx *Tx) TokenByHash(ctx context.Context, secretHash string) (tenancy.Token, error) {
	return getOne(ctx, tx, "token", scanToken, "SELECT "+tokenCols+" FROM api_tokens WHERE secret_hash = $1", secretHash)
}

func (tx *Tx) ListTokens(ctx context.Context, orgID, after string, limit int) ([]tenancy.Token, error) {
	return list(ctx, tx, "tokens", scanToken,
		"SELECT "+tokenCols+" FROM api_tokens WHERE org_id = $1 AND id > $2 ORDER BY id LIMIT $3", orgID, after, limit)
}

func (tx *Tx) RevokeToken(ctx context.Context, orgID, id string, at time.Time) error {
	return tx.updateOne(ctx, fmt.Sprintf("token %s", id),
		"UPDATE api_tokens SET revoked_at = $3 WHERE org_id = $1 AND id = $2 AND revoked_at IS NULL", orgID, id, us(at))
}

// getOne runs a single-row query and scans it with scan; no row is
// NotFound naming what.
func getOne[T any](ctx context.Context, tx *Tx, what string, scan func(func(...any) error) (T, error), q string, args ...any) (T, error) {
	v, err := scan(tx.tx.QueryRowContext(ctx, q, args...).Scan)
	if errors.Is(err, sql.ErrNoRows) {
		return v, problem.NotFound("%s not found", what)
	}
	if err != nil {
		return v, fmt.Errorf("read %s: %w", what, err)
	}
	return v, nil
}

// list runs a query and scans every row with scan.
func list[T any](ctx context.Context, tx *Tx, what string, scan func(func(...any) error) (T, error), q string, args ...any) ([]T, error) {
	rows, err := tx.tx.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", what, err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows.Scan)
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", what, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list %s: %w", what, err)
	}
	return out, nil
}
