package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/steward-iot/steward/internal/audit"
	"github.com/steward-iot/steward/internal/id"
)

// AppendAudit seals r onto its org's chain. Bumping the head row takes a
// row lock on PostgreSQL (SQLite has a single writer anyway), so concurrent
// appends to one org cannot fork the chain; callers append last, just
// before commit, to hold that lock briefly.
func (tx *Tx) AppendAudit(ctx context.Context, r audit.Record) (audit.Event, error) {
	details, err := json.Marshal(r.Details)
	if err != nil {
		return audit.Event{}, fmt.Errorf("audit %s: encode details: %w", r.Action, err)
	}
	if string(details) == "null" {
		details = []byte("{}")
	}
	e := audit.Event{OrgID: r.OrgID, ID: id.New(), At: tx.db.clock.Now(), Actor: r.Actor, Action: r.Action,
		TargetType: r.TargetType, TargetID: r.TargetID, Details: details}
	if isDeviceTraffic(ctx) {
		// Recorded with the change, chained by SealAudit (Seq 0 until then).
		if _, err := tx.exec(ctx, `INSERT INTO audit_pending (id, org_id, at, actor_kind, actor_id, actor_name, action,
			target_type, target_id, details) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
			e.ID, e.OrgID, us(e.At), e.Actor.Kind, e.Actor.ID, e.Actor.Name, e.Action, e.TargetType, e.TargetID, string(details)); err != nil {
			return audit.Event{}, fmt.Errorf("audit %s: %w", r.Action, err)
		}
		return e, nil
	}
	// One statement creates or bumps the head and returns the previous
	// hash: the row lock it takes is held to commit, so the fewer round
	// trips after it, the more appends per second one org sustains.
	var prev audit.Head
	prev.OrgID = r.OrgID
	if err := tx.tx.QueryRowContext(ctx, `INSERT INTO audit_heads (org_id, seq, hash) VALUES ($1, 1, '')
		ON CONFLICT (org_id) DO UPDATE SET seq = audit_heads.seq + 1 RETURNING seq, hash`, r.OrgID).
		Scan(&prev.Seq, &prev.Hash); err != nil {
		return audit.Event{}, fmt.Errorf("audit %s: advance chain head: %w", r.Action, err)
	}
	prev.Seq--
	if err := audit.Seal(&e, prev); err != nil {
		return audit.Event{}, err
	}
	return e, tx.insertEvent(ctx, e)
}

func (tx *Tx) insertEvent(ctx context.Context, e audit.Event) error {
	if _, err := tx.exec(ctx, `INSERT INTO audit_events (org_id, seq, id, at, actor_kind, actor_id, actor_name, action,
		target_type, target_id, details, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
		e.OrgID, e.Seq, e.ID, us(e.At), e.Actor.Kind, e.Actor.ID, e.Actor.Name, e.Action,
		e.TargetType, e.TargetID, string(e.Details), e.PrevHash, e.Hash); err != nil {
		return fmt.Errorf("audit %s: %w", e.Action, err)
	}
	if _, err := tx.exec(ctx, "UPDATE audit_heads SET seq = $2, hash = $3 WHERE org_id = $1", e.OrgID, e.Seq, e.Hash); err != nil {
		return fmt.Errorf("audit %s: %w", e.Action, err)
	}
	return nil
}

// SealAudit chains pending events of org into audit_events, oldest id
// first, up to max of them, and reports how many it sealed. Holding the
// org's head row lock for a whole batch turns thousands of device events
// into one short critical section. Concurrent sealers (replicas) queue on
// that lock and then find the rows already gone.
func (tx *Tx) SealAudit(ctx context.Context, orgID string, max int) (int, error) {
	var head audit.Head
	head.OrgID = orgID
	if err := tx.tx.QueryRowContext(ctx, `INSERT INTO audit_heads (org_id, seq, hash) VALUES ($1, 0, '')
		ON CONFLICT (org_id) DO UPDATE SET seq = audit_heads.seq RETURNING seq, hash`, orgID).Scan(&head.Seq, &head.Hash); err != nil {
		return 0, fmt.Errorf("seal audit of %s: lock chain head: %w", orgID, err)
	}
	pending, err := list(ctx, tx, "pending audit events", func(scan func(...any) error) (audit.Event, error) {
		var e audit.Event
		var at int64
		var details string
		err := scan(&e.ID, &e.OrgID, &at, &e.Actor.Kind, &e.Actor.ID, &e.Actor.Name, &e.Action, &e.TargetType, &e.TargetID, &details)
		e.At, e.Details = fromUS(at), json.RawMessage(details)
		return e, err
	}, `SELECT id, org_id, at, actor_kind, actor_id, actor_name, action, target_type, target_id, details
		FROM audit_pending WHERE org_id = $1 ORDER BY id LIMIT $2`, orgID, max)
	if err != nil {
		return 0, err
	}
	for _, e := range pending {
		if err := audit.Seal(&e, head); err != nil {
			return 0, err
		}
		if err := tx.insertEvent(ctx, e); err != nil {
			return 0, err
		}
		if _, err := tx.exec(ctx, "DELETE FROM audit_pending WHERE id = $1", e.ID); err != nil {
			return 0, fmt.Errorf("seal audit: %w", err)
		}
		head = audit.Head{OrgID: orgID, Seq: e.Seq, Hash: e.Hash}
	}
	return len(pending), nil
}

// PendingAuditOrgs lists organizations with events waiting to be sealed.
func (tx *Tx) PendingAuditOrgs(ctx context.Context, limit int) ([]string, error) {
	return list(ctx, tx, "pending audit orgs", func(scan func(...any) error) (string, error) {
		var s string
		err := scan(&s)
		return s, err
	}, "SELECT DISTINCT org_id FROM audit_pending ORDER BY org_id LIMIT $1", limit)
}

// CountPendingAudit counts events of org (all orgs when empty) not yet sealed.
func (tx *Tx) CountPendingAudit(ctx context.Context, orgID string) (int64, error) {
	var n int64
	err := tx.tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM audit_pending WHERE $1 = '' OR org_id = $1", orgID).Scan(&n)
	return n, err
}

const eventCols = "org_id, seq, id, at, actor_kind, actor_id, actor_name, action, target_type, target_id, details, prev_hash, hash"

func scanEvent(scan func(...any) error) (audit.Event, error) {
	var e audit.Event
	var at int64
	var details string
	err := scan(&e.OrgID, &e.Seq, &e.ID, &at, &e.Actor.Kind, &e.Actor.ID, &e.Actor.Name, &e.Action,
		&e.TargetType, &e.TargetID, &details, &e.PrevHash, &e.Hash)
	e.At, e.Details = fromUS(at), json.RawMessage(details)
	return e, err
}

func (tx *Tx) ListAudit(ctx context.Context, q audit.Query) ([]audit.Event, error) {
	var sb strings.Builder
	args := []any{q.OrgID}
	sb.WriteString("SELECT " + eventCols + " FROM audit_events WHERE org_id = $1")
	if q.BeforeSeq > 0 {
		args = append(args, q.BeforeSeq)
		fmt.Fprintf(&sb, " AND seq < $%d", len(args))
	}
	if q.Action != "" {
		if prefix, ok := strings.CutSuffix(q.Action, "."); ok {
			// Range instead of LIKE: no escaping of '_' or '%' needed.
			args = append(args, prefix+".", prefix+"/")
			fmt.Fprintf(&sb, " AND action >= $%d AND action < $%d", len(args)-1, len(args))
		} else {
			args = append(args, q.Action)
			fmt.Fprintf(&sb, " AND action = $%d", len(args))
		}
	}
	args = append(args, q.Limit)
	fmt.Fprintf(&sb, " ORDER BY seq DESC LIMIT $%d", len(args))
	return list(ctx, tx, "audit events", scanEvent, sb.String(), args...)
}

func (tx *Tx) AuditHeads(ctx context.Context) ([]audit.Head, error) {
	return list(ctx, tx, "audit heads", func(scan func(...any) error) (audit.Head, error) {
		var h audit.Head
		err := scan(&h.OrgID, &h.Seq, &h.Hash)
		return h, err
	}, "SELECT org_id, seq, hash FROM audit_heads ORDER BY org_id")
}

func (tx *Tx) ScanAudit(ctx context.Context, orgID string, fn func(audit.Event) error) error {
	rows, err := tx.tx.QueryContext(ctx, "SELECT "+eventCols+" FROM audit_events WHERE org_id = $1 ORDER BY seq", orgID)
	if err != nil {
		return fmt.Errorf("scan audit: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		e, err := scanEvent(rows.Scan)
		if err != nil {
			return fmt.Errorf("scan audit: %w", err)
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	return rows.Err()
}
