// Package audit keeps the append-only, hash-chained record of every state
// change a person or device makes. Each organization has its own chain (so
// busy tenants do not serialize on one another); instance-level events such
// as creating an organization live in the chain of org "".
package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/steward-iot/steward/internal/access"
	"github.com/steward-iot/steward/internal/clock"
	"github.com/steward-iot/steward/internal/paging"
)

// Record is a change to be appended.
type Record struct {
	OrgID      string
	Actor      access.Actor
	Action     string // dotted verb, e.g. "token.create"
	TargetType string
	TargetID   string
	// Details is any JSON-encodable value; it must not hold secrets.
	Details any
}

// Event is a stored, chained record.
type Event struct {
	OrgID      string          `json:"org_id"`
	Seq        int64           `json:"seq" doc:"position in the organization's chain, from 1"`
	ID         string          `json:"id"`
	At         time.Time       `json:"at"`
	Actor      access.Actor    `json:"actor"`
	Action     string          `json:"action"`
	TargetType string          `json:"target_type"`
	TargetID   string          `json:"target_id"`
	Details    json.RawMessage `json:"details"`
	PrevHash   string          `json:"prev_hash" doc:"hex SHA-256 of the previous event in this chain, empty for the first"`
	Hash       string          `json:"hash"`
}

// Head is the last link of one organization's chain.
type Head struct {
	OrgID string
	Seq   int64
	Hash  string
}

// Seal fills in the chain fields of e (Seq, PrevHash, Hash) after prev, and
// normalizes Details to compact JSON so the stored bytes are the hashed bytes.
func Seal(e *Event, prev Head) error {
	e.Seq = prev.Seq + 1
	e.PrevHash = prev.Hash
	e.At = clock.Norm(e.At)
	if len(e.Details) == 0 {
		e.Details = json.RawMessage("{}")
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, e.Details); err != nil {
		return fmt.Errorf("audit details are not valid JSON: %w", err)
	}
	e.Details = buf.Bytes()
	e.Hash = ComputeHash(*e)
	return nil
}

// ComputeHash returns the hex SHA-256 that chains e. Every field a reader
// relies on is covered, so editing any stored column breaks the chain.
func ComputeHash(e Event) string {
	// A fixed struct gives encoding/json a fixed field order.
	canon := struct {
		OrgID      string           `json:"o"`
		Seq        int64            `json:"s"`
		ID         string           `json:"i"`
		At         int64            `json:"t"`
		ActorKind  access.ActorKind `json:"ak"`
		ActorID    string           `json:"ai"`
		ActorName  string           `json:"an"`
		Action     string           `json:"a"`
		TargetType string           `json:"tt"`
		TargetID   string           `json:"ti"`
		Details    json.RawMessage  `json:"d"`
		PrevHash   string           `json:"p"`
	}{e.OrgID, e.Seq, e.ID, e.At.UnixMicro(), e.Actor.Kind, e.Actor.ID, e.Actor.Name,
		e.Action, e.TargetType, e.TargetID, e.Details, e.PrevHash}
	b, err := json.Marshal(canon)
	if err != nil {
		// Details was validated by Seal or read back from the store as
		// stored; a marshal failure here means tampered, invalid JSON.
		b = fmt.Appendf(nil, "invalid:%x", e.Details)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Query selects events of one organization, newest first.
type Query struct {
	OrgID string
	// BeforeSeq, when > 0, returns events with Seq < BeforeSeq (the cursor).
	BeforeSeq int64
	Limit     int
	// Action, when set, keeps only events with this action or, if it ends
	// in ".", this prefix (e.g. "token.").
	Action string
}

// Tx is what the audit log needs from a store transaction.
type Tx interface {
	// AppendAudit seals and stores r at the end of its org's chain.
	AppendAudit(ctx context.Context, r Record) (Event, error)
	ListAudit(ctx context.Context, q Query) ([]Event, error)
	// AuditHeads returns the recorded head of every chain.
	AuditHeads(ctx context.Context) ([]Head, error)
	// ScanAudit calls fn for every event of org in Seq order.
	ScanAudit(ctx context.Context, orgID string, fn func(Event) error) error

	// SealAudit chains up to max pending events of org (recorded by
	// high-volume device traffic) and reports how many it sealed.
	SealAudit(ctx context.Context, orgID string, max int) (int, error)
	PendingAuditOrgs(ctx context.Context, limit int) ([]string, error)
	// CountPendingAudit counts unsealed events of org, or of all orgs for "".
	CountPendingAudit(ctx context.Context, orgID string) (int64, error)
}

// Store runs functions in read or write transactions.
type Store interface {
	Read(ctx context.Context, fn func(Tx) error) error
	Write(ctx context.Context, fn func(Tx) error) error
}

// Service answers audit queries for authenticated principals.
type Service struct{ store Store }

// NewService returns an audit query service over s.
func NewService(s Store) *Service { return &Service{store: s} }

// List returns a page of the principal's organization's events, newest
// first, and the BeforeSeq of the next page (0 on the last). The org is
// always the principal's: no query reaches another tenant.
func (s *Service) List(ctx context.Context, p access.Principal, q Query) ([]Event, int64, error) {
	if err := p.Require(access.AuditRead); err != nil {
		return nil, 0, err
	}
	q.OrgID = p.OrgID
	// Show what devices did a moment ago too: chain it first.
	if err := sealOrg(ctx, s.store, p.OrgID); err != nil {
		return nil, 0, err
	}
	q.Limit = paging.Limit(q.Limit)
	limit := q.Limit
	q.Limit++
	var out []Event
	err := s.store.Read(ctx, func(tx Tx) error {
		var err error
		out, err = tx.ListAudit(ctx, q)
		return err
	})
	if err != nil || len(out) <= limit {
		return out, 0, err
	}
	out = out[:limit]
	return out, out[limit-1].Seq, nil
}
