// Package identity owns how devices prove who they are: enrollment tokens
// and pre-authorizations, enrollment of device-generated keys, signed
// authentication with replay protection, short-lived device tokens, and the
// device status machine (pending → active → rejected / revoked).
package identity

import (
	"context"
	"time"

	"github.com/steward-iot/steward/internal/inventory"
	"github.com/steward-iot/steward/internal/tenancy"
)

// EnrollmentToken lets devices enroll and go active at once. Only a hash
// of its secret is stored.
type EnrollmentToken struct {
	ID        string     `json:"id"`
	OrgID     string     `json:"org_id"`
	ProductID string     `json:"product_id,omitempty" doc:"when set, only devices of this product may use it"`
	Name      string     `json:"name"`
	MaxUses   int        `json:"max_uses"`
	Uses      int        `json:"uses"`
	CreatedAt time.Time  `json:"created_at"`
	CreatedBy string     `json:"created_by"`
	ExpiresAt time.Time  `json:"expires_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// Preauthorization lets one serial or key id go active at enrollment.
type Preauthorization struct {
	OrgID     string    `json:"org_id"`
	Kind      string    `json:"kind" enum:"serial,key"`
	Value     string    `json:"value"`
	ProductID string    `json:"product_id,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// Tx is what identity needs from a store transaction.
type Tx interface {
	inventory.Tx
	OrgBySlug(ctx context.Context, slug string) (tenancy.Org, error)

	InsertEnrollmentToken(ctx context.Context, t EnrollmentToken, secretHash string) error
	EnrollmentTokenByHash(ctx context.Context, secretHash string) (EnrollmentToken, error)
	EnrollmentTokenByID(ctx context.Context, orgID, id string) (EnrollmentToken, error)
	ListEnrollmentTokens(ctx context.Context, orgID, after string, limit int) ([]EnrollmentToken, error)
	RevokeEnrollmentToken(ctx context.Context, orgID, id string, at time.Time) error
	// UseEnrollmentToken counts one use if any are left, reporting whether it did.
	UseEnrollmentToken(ctx context.Context, id string) (bool, error)

	InsertPreauthorization(ctx context.Context, p Preauthorization) error
	Preauthorized(ctx context.Context, orgID, kind, value string) (Preauthorization, error)

	// ServerSecret returns the named secret, creating it from fresh if absent.
	ServerSecret(ctx context.Context, name string, fresh string, at time.Time) (string, error)
}

// Store runs functions in read or write transactions.
type Store interface {
	Read(ctx context.Context, fn func(Tx) error) error
	Write(ctx context.Context, fn func(Tx) error) error
}
