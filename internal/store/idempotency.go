package store

import (
	"context"
	"fmt"
	"time"

	"github.com/steward-iot/steward/internal/idempotency"
)

func (tx *Tx) ClaimIdempotencyKey(ctx context.Context, r idempotency.Record) (idempotency.Record, bool, error) {
	// An expired key is forgotten first, so the claim can reuse it.
	if _, err := tx.exec(ctx, "DELETE FROM idempotency_keys WHERE org_id = $1 AND idem_key = $2 AND created_at < $3",
		r.OrgID, r.Key, us(r.CreatedAt.Add(-idempotency.TTL))); err != nil {
		return idempotency.Record{}, false, fmt.Errorf("idempotency key: %w", err)
	}
	res, err := tx.exec(ctx, `INSERT INTO idempotency_keys (org_id, idem_key, method, path, request_hash, created_at)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (org_id, idem_key) DO NOTHING`,
		r.OrgID, r.Key, r.Method, r.Path, r.RequestHash, us(r.CreatedAt))
	if err != nil {
		return idempotency.Record{}, false, fmt.Errorf("idempotency key: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return r, true, nil
	}
	existing, err := getOne(ctx, tx, "idempotency key", func(scan func(...any) error) (idempotency.Record, error) {
		var e idempotency.Record
		var created int64
		var body string
		err := scan(&e.OrgID, &e.Key, &e.Method, &e.Path, &e.RequestHash, &e.Status, &e.ContentType, &body, &created)
		e.Body, e.CreatedAt = []byte(body), fromUS(created)
		return e, err
	}, `SELECT org_id, idem_key, method, path, request_hash, status, content_type, body, created_at
		FROM idempotency_keys WHERE org_id = $1 AND idem_key = $2`, r.OrgID, r.Key)
	return existing, false, err
}

func (tx *Tx) CompleteIdempotencyKey(ctx context.Context, orgID, key string, status int, contentType string, body []byte) error {
	return tx.updateOne(ctx, "idempotency key",
		"UPDATE idempotency_keys SET status = $3, content_type = $4, body = $5 WHERE org_id = $1 AND idem_key = $2",
		orgID, key, status, contentType, string(body))
}

func (tx *Tx) ReleaseIdempotencyKey(ctx context.Context, orgID, key string) error {
	_, err := tx.exec(ctx, "DELETE FROM idempotency_keys WHERE org_id = $1 AND idem_key = $2", orgID, key)
	return err
}

func (tx *Tx) PruneIdempotencyKeys(ctx context.Context, before time.Time) (int64, error) {
	res, err := tx.exec(ctx, "DELETE FROM idempotency_keys WHERE created_at < $1", us(before))
	if err != nil {
		return 0, fmt.Errorf("prune idempotency keys: %w", err)
	}
	return res.RowsAffected()
}
