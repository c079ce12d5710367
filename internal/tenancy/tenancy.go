// Package tenancy owns organizations (tenants), the people in them and the
// API tokens that act for them. Every query is scoped to the caller's
// organization; instance admins may additionally create and list orgs.
package tenancy

import (
	"context"
	"time"

	"github.com/steward-iot/steward/internal/access"
	"github.com/steward-iot/steward/internal/audit"
)

// Org is a tenant: a vendor, a device owner, or both.
type Org struct {
	ID   string `json:"id"`
	Slug string `json:"slug" doc:"URL name, unique: lowercase letters, digits and '-'"`
	Name string `json:"name"`
	// Instance marks the organization that operates this installation.
	Instance  bool      `json:"instance"`
	CreatedAt time.Time `json:"created_at"`
}

// User is a person in one organization.
type User struct {
	ID         string      `json:"id"`
	OrgID      string      `json:"org_id"`
	Email      string      `json:"email"`
	Name       string      `json:"name"`
	Role       access.Role `json:"role" enum:"admin,release-manager,security-officer,operator,auditor"`
	CreatedAt  time.Time   `json:"created_at"`
	DisabledAt *time.Time  `json:"disabled_at,omitempty"`
}

// Token is an API credential scoped to one organization and role. Only a
// hash of its secret is stored.
type Token struct {
	ID    string      `json:"id"`
	OrgID string      `json:"org_id"`
	Name  string      `json:"name"`
	Role  access.Role `json:"role" enum:"admin,release-manager,security-officer,operator,auditor"`
	// UserID is the person the token acts for; empty for service tokens.
	UserID    string     `json:"user_id,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	CreatedBy string     `json:"created_by" doc:"actor id that created the token"`
	ExpiresAt *time.Time `json:"expires_at,omitempty" doc:"absent: never expires (only the bootstrap token)"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// Active reports whether t may authenticate at now.
func (t Token) Active(now time.Time) bool {
	return t.RevokedAt == nil && (t.ExpiresAt == nil || now.Before(*t.ExpiresAt))
}

// Tx is what tenancy needs from a store transaction. Methods scoped to an
// organization take its id first and never return another org's rows.
type Tx interface {
	AppendAudit(ctx context.Context, r audit.Record) (audit.Event, error)

	InsertOrg(ctx context.Context, o Org) error
	OrgByID(ctx context.Context, id string) (Org, error)
	OrgBySlug(ctx context.Context, slug string) (Org, error)
	ListOrgs(ctx context.Context, after string, limit int) ([]Org, error)
	CountOrgs(ctx context.Context) (int, error)

	InsertUser(ctx context.Context, u User) error
	UserByID(ctx context.Context, orgID, id string) (User, error)
	ListUsers(ctx context.Context, orgID, after string, limit int) ([]User, error)
	DisableUser(ctx context.Context, orgID, id string, at time.Time) error

	InsertToken(ctx context.Context, t Token, secretHash string) error
	TokenByID(ctx context.Context, orgID, id string) (Token, error)
	TokenByHash(ctx context.Context, secretHash string) (Token, error)
	ListTokens(ctx context.Context, orgID, after string, limit int) ([]Token, error)
	RevokeToken(ctx context.Context, orgID, id string, at time.Time) error
}

// Store runs functions in read or write transactions; a write commits only
// if fn returns nil.
type Store interface {
	Read(ctx context.Context, fn func(Tx) error) error
	Write(ctx context.Context, fn func(Tx) error) error
}
