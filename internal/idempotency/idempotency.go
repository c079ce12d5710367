// Package idempotency records the outcome of create requests sent with an
// Idempotency-Key header, so a client that retries after a lost response
// gets the original answer instead of a second resource.
package idempotency

import (
	"context"
	"time"
)

// TTL is how long a key is remembered.
const TTL = 24 * time.Hour

// Record is one remembered request. Status 0 means still in progress.
type Record struct {
	OrgID       string
	Key         string
	Method      string
	Path        string
	RequestHash string
	Status      int
	ContentType string
	Body        []byte
	CreatedAt   time.Time
}

// Tx is what idempotency needs from a store transaction.
type Tx interface {
	// ClaimIdempotencyKey inserts r as in progress. If the key already
	// exists (and is younger than TTL) it returns that record and false.
	ClaimIdempotencyKey(ctx context.Context, r Record) (existing Record, claimed bool, err error)
	CompleteIdempotencyKey(ctx context.Context, orgID, key string, status int, contentType string, body []byte) error
	// ReleaseIdempotencyKey forgets a key whose request failed, so a
	// corrected retry may run.
	ReleaseIdempotencyKey(ctx context.Context, orgID, key string) error
	PruneIdempotencyKeys(ctx context.Context, before time.Time) (int64, error)
}

// Store runs functions in write transactions.
type Store interface {
	Write(ctx context.Context, fn func(Tx) error) error
}
