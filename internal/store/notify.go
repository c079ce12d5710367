package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/steward-iot/steward/internal/notify"
)

var _ notify.Tx = (*Tx)(nil)

// Notify returns the notification store.
func (db *DB) Notify() notify.Store { return domain[notify.Tx]{db} }

const subscriptionCols = `id, org_id, kind, target, description, event_types, enabled, disabled_reason,
	secret, prev_secret, prev_secret_until, created_at, updated_at`

func scanSubscription(scan func(...any) error) (notify.Subscription, error) {
	var s notify.Subscription
	var target, types, secret, prev string
	var prevUntil sql.NullInt64
	var created, updated int64
	err := scan(&s.ID, &s.OrgID, &s.Kind, &target, &s.Description, &types, &s.Enabled, &s.DisabledReason,
		&secret, &prev, &prevUntil, &created, &updated)
	if err != nil {
		return s, err
	}
	if s.Kind == notify.KindEmail {
		s.Email = target
	} else {
		s.URL = target
	}
	s.SigningSecret, s.PreviousSecret = notify.Secret(secret), notify.Secret(prev)
	s.PreviousSecretUntil, s.CreatedAt, s.UpdatedAt = fromNullUS(prevUntil), fromUS(created), fromUS(updated)
	return s, json.Unmarshal([]byte(types), &s.EventTypes)
}

func (tx *Tx) InsertSubscription(ctx context.Context, s notify.Subscription) error {
	types, err := json.Marshal(s.EventTypes)
	if err != nil {
		return err
	}
	return tx.insert(ctx, fmt.Sprintf("subscription %s", s.ID),
		"INSERT INTO notify_subscriptions ("+subscriptionCols+") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
		s.ID, s.OrgID, s.Kind, s.Target(), s.Description, string(types), s.Enabled, s.DisabledReason,
		string(s.SigningSecret), string(s.PreviousSecret), nullUS(s.PreviousSecretUntil), us(s.CreatedAt), us(s.UpdatedAt))
}

func (tx *Tx) SubscriptionByID(ctx context.Context, orgID, id string) (notify.Subscription, error) {
	return getOne(ctx, tx, fmt.Sprintf("subscription %s", id), scanSubscription,
		"SELECT "+subscriptionCols+" FROM notify_subscriptions WHERE org_id = $1 AND id = $2", orgID, id)
}

func (tx *Tx) ListSubscriptions(ctx context.Context, orgID, after string, limit int) ([]notify.Subscription, error) {
	return list(ctx, tx, "subscriptions", scanSubscription,
		"SELECT "+subscriptionCols+" FROM notify_subscriptions WHERE org_id = $1 AND id > $2 ORDER BY id LIMIT $3", orgID, after, limit)
}

func (tx *Tx) EnabledSubscriptions(ctx context.Context, orgID string) ([]notify.Subscription, error) {
	return list(ctx, tx, "subscriptions", scanSubscription,
		"SELECT "+subscriptionCols+" FROM notify_subscriptions WHERE org_id = $1 AND enabled ORDER BY id", orgID)
}

func (tx *Tx) UpdateSubscription(ctx context.Context, s notify.Subscription) error {
	types, err := json.Marshal(s.EventTypes)
	if err != nil {
		return err
	}
	return tx.updateOne(ctx, fmt.Sprintf("subscription %s", s.ID),
		`UPDATE notify_subscriptions SET description = $3, event_types = $4, enabled = $5, disabled_reason = $6,
			secret = $7, prev_secret = $8, prev_secret_until = $9, updated_at = $10
		WHERE org_id = $1 AND id = $2`,
		s.OrgID, s.ID, s.Description, string(types), s.Enabled, s.DisabledReason,
		string(s.SigningSecret), string(s.PreviousSecret), nullUS(s.PreviousSecretUntil), us(s.UpdatedAt))
}

// DeleteSubscription deletes the subscription with its deliveries and
// their attempts. The schema cascades too; deleting explicitly keeps the
// outcome independent of SQLite's foreign_keys pragma.
func (tx *Tx) DeleteSubscription(ctx context.Context, orgID, id string) error {
	if _, err := tx.exec(ctx, `DELETE FROM notify_attempts WHERE delivery_id IN
		(SELECT id FROM notify_deliveries WHERE org_id = $1 AND subscription_id = $2)`, orgID, id); err != nil {
		return fmt.Errorf("delete subscription %s attempts: %w", id, err)
	}
	if _, err := tx.exec(ctx, "DELETE FROM notify_deliveries WHERE org_id = $1 AND subscription_id = $2", orgID, id); err != nil {
		return fmt.Errorf("delete subscription %s deliveries: %w", id, err)
	}
	return tx.updateOne(ctx, fmt.Sprintf("subscription %s", id),
		"DELETE FROM notify_subscriptions WHERE org_id = $1 AND id = $2", orgID, id)
}

const deliveryCols = `id, org_id, COALESCE(subscription_id, ''), msg_id, kind, target, event_type, subject, payload,
	status, attempts, next_attempt_at, last_error, created_at, updated_at`

func scanDelivery(scan func(...any) error) (notify.Delivery, error) {
	var d notify.Delivery
	var payload string
	var next, created, updated int64
	err := scan(&d.ID, &d.OrgID, &d.SubscriptionID, &d.MessageID, &d.Kind, &d.Target, &d.EventType, &d.Subject, &payload,
		&d.Status, &d.Attempts, &next, &d.LastError, &created, &updated)
	d.Payload, d.CreatedAt, d.UpdatedAt = []byte(payload), fromUS(created), fromUS(updated)
	if d.Status == notify.StatusPending {
		t := fromUS(next)
		d.NextAttemptAt = &t
	}
	return d, err
}

func (tx *Tx) InsertDelivery(ctx context.Context, d notify.Delivery) error {
	var sub any
	if d.SubscriptionID != "" {
		sub = d.SubscriptionID
	}
	var next int64
	if d.NextAttemptAt != nil {
		next = us(*d.NextAttemptAt)
	}
	return tx.insert(ctx, fmt.Sprintf("delivery %s", d.MessageID),
		`INSERT INTO notify_deliveries (id, org_id, subscription_id, msg_id, kind, target, event_type, subject, payload,
			status, attempts, next_attempt_at, claimed_until, claim_token, last_error, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 0, '', $13, $14, $15)`,
		d.ID, d.OrgID, sub, d.MessageID, d.Kind, d.Target, d.EventType, d.Subject, string(d.Payload),
		d.Status, d.Attempts, next, d.LastError, us(d.CreatedAt), us(d.UpdatedAt))
}

func (tx *Tx) DeliveryByID(ctx context.Context, orgID, id string) (notify.Delivery, error) {
	return getOne(ctx, tx, fmt.Sprintf("delivery %s", id), scanDelivery,
		"SELECT "+deliveryCols+" FROM notify_deliveries WHERE org_id = $1 AND id = $2", orgID, id)
}

func (tx *Tx) ListDeliveries(ctx context.Context, orgID, subscriptionID, before string, limit int) ([]notify.Delivery, error) {
	if before == "" {
		return list(ctx, tx, "deliveries", scanDelivery,
			"SELECT "+deliveryCols+" FROM notify_deliveries WHERE org_id = $1 AND subscription_id = $2 ORDER BY id DESC LIMIT $3",
			orgID, subscriptionID, limit)
	}
	return list(ctx, tx, "deliveries", scanDelivery,
		"SELECT "+deliveryCols+" FROM notify_deliveries WHERE org_id = $1 AND subscription_id = $2 AND id < $3 ORDER BY id DESC LIMIT $4",
		orgID, subscriptionID, before, limit)
}

// ClaimDeliveries picks candidates, then takes each with an UPDATE that
// re-checks that it is still pending, due and unleased. On PostgreSQL a
// concurrent claimer blocks on the row lock and, once the first commits,
// re-evaluates the WHERE against the new row and skips it; SQLite has one
// writer. Either way a delivery is leased to one claimer at a time.
// Candidates are taken in one order so that claimers cannot deadlock.
func (tx *Tx) ClaimDeliveries(ctx context.Context, now, until time.Time, token string, limit int) ([]notify.Delivery, error) {
	rows, err := tx.tx.QueryContext(ctx, `SELECT id FROM notify_deliveries
		WHERE status = 'pending' AND next_attempt_at <= $1 AND claimed_until <= $1
		ORDER BY next_attempt_at, id LIMIT $2`, us(now), limit)
	if err != nil {
		return nil, fmt.Errorf("find due deliveries: %w", err)
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, fmt.Errorf("find due deliveries: %w", err)
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("find due deliveries: %w", err)
	}
	var out []notify.Delivery
	for _, id := range ids {
		res, err := tx.exec(ctx, `UPDATE notify_deliveries SET claimed_until = $2, claim_token = $3
			WHERE id = $1 AND status = 'pending' AND next_attempt_at <= $4 AND claimed_until <= $4`,
			id, us(until), token, us(now))
		if err != nil {
			return nil, fmt.Errorf("claim delivery %s: %w", id, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return nil, err
		} else if n != 1 {
			continue // another dispatcher took it
		}
		d, err := getOne(ctx, tx, fmt.Sprintf("delivery %s", id), scanDelivery,
			"SELECT "+deliveryCols+" FROM notify_deliveries WHERE id = $1", id)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

func (tx *Tx) FinishDelivery(ctx context.Context, u notify.DeliveryUpdate, token string) (bool, error) {
	res, err := tx.exec(ctx, `UPDATE notify_deliveries SET status = $3, attempts = $4, next_attempt_at = $5, last_error = $6,
			updated_at = $7, claimed_until = 0, claim_token = ''
		WHERE id = $1 AND claim_token = $2`,
		u.ID, token, u.Status, u.Attempts, usOrZero(u.NextAttemptAt), u.LastError, us(u.UpdatedAt))
	if err != nil {
		return false, fmt.Errorf("update delivery %s: %w", u.ID, err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

const attemptCols = "id, delivery_id, n, at, status_code, error, latency_us, response"

func scanAttempt(scan func(...any) error) (notify.Attempt, error) {
	var a notify.Attempt
	var at int64
	err := scan(&a.ID, &a.DeliveryID, &a.N, &at, &a.StatusCode, &a.Error, &a.LatencyUS, &a.Response)
	a.At = fromUS(at)
	return a, err
}

func (tx *Tx) InsertAttempt(ctx context.Context, a notify.Attempt) error {
	return tx.insert(ctx, fmt.Sprintf("attempt %s", a.ID),
		"INSERT INTO notify_attempts ("+attemptCols+") VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
		a.ID, a.DeliveryID, a.N, us(a.At), a.StatusCode, a.Error, a.LatencyUS, a.Response)
}

func (tx *Tx) ListAttempts(ctx context.Context, deliveryID string) ([]notify.Attempt, error) {
	return list(ctx, tx, "attempts", scanAttempt,
		"SELECT "+attemptCols+" FROM notify_attempts WHERE delivery_id = $1 ORDER BY n, at, id", deliveryID)
}

func (tx *Tx) PruneDeliveries(ctx context.Context, before time.Time, limit int) (int, error) {
	// Attempts go first rather than by cascade, so the delete does not
	// depend on SQLite's foreign_keys pragma; the total order makes both
	// statements pick the same deliveries.
	const pick = "SELECT id FROM notify_deliveries WHERE status <> 'pending' AND updated_at < $1 ORDER BY updated_at, id LIMIT $2"
	if _, err := tx.exec(ctx, "DELETE FROM notify_attempts WHERE delivery_id IN ("+pick+")", us(before), limit); err != nil {
		return 0, fmt.Errorf("prune delivery attempts: %w", err)
	}
	res, err := tx.exec(ctx, "DELETE FROM notify_deliveries WHERE id IN ("+pick+")", us(before), limit)
	if err != nil {
		return 0, fmt.Errorf("prune deliveries: %w", err)
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// usOrZero stores the zero time as 0 rather than year 1.
func usOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return us(t)
}
