package tenancy

import (
	"context"

	"fmt"
	"net/mail"
	"regexp"
	"strings"
	"time"

	"github.com/steward-iot/steward/internal/access"
	"github.com/steward-iot/steward/internal/audit"
	"github.com/steward-iot/steward/internal/clock"
	"github.com/steward-iot/steward/internal/id"
	"github.com/steward-iot/steward/internal/paging"
	"github.com/steward-iot/steward/internal/problem"
)

// Token lifetimes: short enough that a forgotten token dies, long enough
// for CI pipelines. Longer-lived credentials should be rotated by script.
const (
	DefaultTokenTTL = 90 * 24 * time.Hour
	MaxTokenTTL     = 2 * 365 * 24 * time.Hour
)

// Service implements organization, user and token management.
type Service struct {
	store Store
	clock clock.Clock
}

// NewService returns a tenancy service.
// A nil clock means the system clock.
func NewService(s Store, c clock.Clock) *Service {
	if c == nil {
		c = clock.Real
	}
	return &Service{store: s, clock: c}
}

// Page is one page of a list: the items and the cursor of the next page
// (empty on the last).
type Page[T any] struct {
	Items []T    `json:"items"`
	Next  string `json:"next_cursor,omitempty" doc:"pass as ?cursor= to fetch the next page; absent on the last page"`
}

// page trims a list fetched with limit+1 rows into a Page.
func page[T any](items []T, limit int, idOf func(T) string) Page[T] {
	items, next := paging.Trim(items, limit, idOf)
	return Page[T]{Items: items, Next: next}
}

var slugRE = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$`)

func validSlug(s string) error {
	if !slugRE.MatchString(s) {
		return problem.InvalidField("slug", "%q is not a valid slug: use 1-63 lowercase letters, digits and '-', not starting or ending with '-'", s)
	}
	return nil
}

func validName(field, s string, max int) error {
	switch {
	case strings.TrimSpace(s) == "":
		return problem.InvalidField(field, "must not be empty")
	case len(s) > max:
		return problem.InvalidField(field, "is %d bytes long; the limit is %d", len(s), max)
	case strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return problem.InvalidField(field, "must not contain control characters")
	}
	return nil
}

// Bootstrap creates the instance organization and its first admin token
// when the store holds no organization yet. It returns created=false (and
// no secret) when the store was already initialized.
func (s *Service) Bootstrap(ctx context.Context, slug, name string) (org Org, secret string, created bool, err error) {
	if err := validSlug(slug); err != nil {
		return Org{}, "", false, err
	}
	actor := access.System("bootstrap")
	err = s.store.Write(ctx, func(tx Tx) error {
		n, err := tx.CountOrgs(ctx)
		if err != nil || n > 0 {
			return err
		}
		now := s.clock.Now()
		org = Org{ID: id.New(), Slug: slug, Name: name, Instance: true, CreatedAt: now}
		if err := tx.InsertOrg(ctx, org); err != nil {
			return err
		}
		if _, err := tx.AppendAudit(ctx, audit.Record{OrgID: org.ID, Actor: actor, Action: "org.create",
			TargetType: "org", TargetID: org.ID, Details: map[string]any{"slug": slug, "instance": true}}); err != nil {
			return err
		}
		_, secret, err = s.insertToken(ctx, tx, actor, org.ID, Token{Name: "bootstrap admin", Role: access.RoleAdmin}, nil)
		created = err == nil
		return err
	})
	if err != nil {
		return Org{}, "", false, fmt.Errorf("bootstrap: %w", err)
	}
	if !created {
		return Org{}, "", false, nil
	}
	return org, secret, true, nil
}

// Authenticate resolves a bearer secret to the principal it acts for.
func (s *Service) Authenticate(ctx context.Context, secret string) (access.Principal, error) {
	if !plausibleSecret(secret) {
		return access.Principal{}, problem.Unauthenticated("the bearer token is malformed: expected a Steward API token starting with %q", SecretPrefix)
	}
	var p access.Principal
	err := s.store.Read(ctx, func(tx Tx) error {
		tok, err := tx.TokenByHash(ctx, HashSecret(secret))
		if problem.Is(err, problem.KindNotFound) {
			return problem.Unauthenticated("the bearer token is not valid")
		} else if err != nil {
			return err
		}
		now := s.clock.Now()
		switch {
		case tok.RevokedAt != nil:
			return problem.Unauthenticated("the bearer token was revoked at %s", tok.RevokedAt.Format(time.RFC3339))
		case tok.ExpiresAt != nil && !now.Before(*tok.ExpiresAt):
			return problem.Unauthenticated("the bearer token expired at %s; create a new one", tok.ExpiresAt.Format(time.RFC3339))
		}
		org, err := tx.OrgByID(ctx, tok.OrgID)
		if err != nil {
			return err
		}
		if tok.UserID != "" {
			u, err := tx.UserByID(ctx, tok.OrgID, tok.UserID)
			if err != nil {
				return err
			}
			if u.DisabledAt != nil {
				return problem.Unauthenticated("the user this token acts for was disabled")
			}
		}
		p = access.Principal{OrgID: org.ID, OrgSlug: org.Slug, Instance: org.Instance, Role: tok.Role,
			UserID: tok.UserID, Actor: access.Actor{Kind: access.ActorToken, ID: tok.ID, Name: tok.Name}}
		return nil
	})
	return p, err
}

// PublicOrgID maps a slug to an organization id for public endpoints
// (update metadata is public by design: it is signed, not secret).
func (s *Service) PublicOrgID(ctx context.Context, slug string) (string, error) {
	var id string
	err := s.store.Read(ctx, func(tx Tx) error {
		o, err := tx.OrgBySlug(ctx, slug)
		id = o.ID
		return err
	})
	return id, err
}

// InstanceOrg returns the organization that operates this installation.
func (s *Service) InstanceOrg(ctx context.Context) (Org, error) {
	var org Org
	err := s.store.Read(ctx, func(tx Tx) error {
		orgs, err := tx.ListOrgs(ctx, "", paging.MaxLimit)
		for _, o := range orgs {
			if o.Instance {
				org = o
				return nil
			}
		}
		if err == nil {
			err = problem.NotFound("no instance organization: the store was not bootstrapped")
		}
		return err
	})
	return org, err
}

// Whoami returns the caller's organization and token.
func (s *Service) Whoami(ctx context.Context, p access.Principal) (Org, Token, error) {
	var (
		org Org
		tok Token
	)
	err := s.store.Read(ctx, func(tx Tx) error {
		var err error
		if org, err = tx.OrgByID(ctx, p.OrgID); err != nil {
			return err
		}
		tok, err = tx.TokenByID(ctx, p.OrgID, p.Actor.ID)
		return err
	})
	return org, tok, err
}

// ResolveOrg maps an organization slug from a URL to the org the caller
// acts in. Any other org answers "not found", even when it exists, so a
// caller cannot probe for other tenants.
func (s *Service) ResolveOrg(p access.Principal, slug string) error {
	if slug != p.OrgSlug {
		return problem.NotFound("organization %q not found", slug)
	}
	return nil
}

// ListOrgs lists the organizations the caller may see: all of them for
// instance admins, otherwise only its own.
func (s *Service) ListOrgs(ctx context.Context, p access.Principal, after string, limit int) (Page[Org], error) {
	if err := p.Require(access.OrgRead); err != nil {
		return Page[Org]{}, err
	}
	limit = paging.Limit(limit)
	var orgs []Org
	err := s.store.Read(ctx, func(tx Tx) error {
		if p.Instance && p.Role == access.RoleAdmin {
			var err error
			orgs, err = tx.ListOrgs(ctx, after, limit+1)
			return err
		}
		if after != "" && after >= p.OrgID {
			return nil
		}
		o, err := tx.OrgByID(ctx, p.OrgID)
		orgs = []Org{o}
		return err
	})
	return page(orgs, limit, func(o Org) string { return o.ID }), err
}

// GetOrg returns one organization by slug, if the caller may see it.
func (s *Service) GetOrg(ctx context.Context, p access.Principal, slug string) (Org, error) {
	if err := p.Require(access.OrgRead); err != nil {
		return Org{}, err
	}
	if !(p.Instance && p.Role == access.RoleAdmin) {
		if err := s.ResolveOrg(p, slug); err != nil {
			return Org{}, err
		}
	}
	var o Org
	err := s.store.Read(ctx, func(tx Tx) error {
		var err error
		o, err = tx.OrgBySlug(ctx, slug)
		return err
	})
	return o, err
}

// CreateOrgRequest creates an organization.
type CreateOrgRequest struct {
	Slug string `json:"slug" doc:"URL name: 1-63 lowercase letters, digits and '-'"`
	Name string `json:"name"`
}

// CreatedOrg is a new organization and its first admin token.
type CreatedOrg struct {
	Org   Org          `json:"org"`
	Token CreatedToken `json:"admin_token" doc:"an admin token for the new organization; its secret is shown only here"`
}

// CreateOrg creates a tenant with an initial admin token. Only instance
// admins may; the instance admin gets no standing access to the new org.
func (s *Service) CreateOrg(ctx context.Context, p access.Principal, req CreateOrgRequest) (CreatedOrg, error) {
	if err := p.Require(access.OrgCreate); err != nil {
		return CreatedOrg{}, err
	}
	if err := validSlug(req.Slug); err != nil {
		return CreatedOrg{}, err
	}
	if err := validName("name", req.Name, 200); err != nil {
		return CreatedOrg{}, err
	}
	var out CreatedOrg
	err := s.store.Write(ctx, func(tx Tx) error {
		org := Org{ID: id.New(), Slug: req.Slug, Name: req.Name, CreatedAt: s.clock.Now()}
		if err := tx.InsertOrg(ctx, org); err != nil {
			return err
		}
		details := map[string]any{"slug": org.Slug, "name": org.Name}
		// Both chains record it: the operator's, and the new tenant's own.
		for _, chain := range []string{p.OrgID, org.ID} {
			if _, err := tx.AppendAudit(ctx, audit.Record{OrgID: chain, Actor: p.Actor, Action: "org.create",
				TargetType: "org", TargetID: org.ID, Details: details}); err != nil {
				return err
			}
		}
		tok, secret, err := s.insertToken(ctx, tx, p.Actor, org.ID, Token{Name: "initial admin", Role: access.RoleAdmin},
			ptr(s.clock.Now().Add(DefaultTokenTTL)))
		out = CreatedOrg{Org: org, Token: CreatedToken{Token: tok, Secret: secret}}
		return err
	})
	return out, err
}

// CreateUserRequest adds a person to the caller's organization.
type CreateUserRequest struct {
	Email string      `json:"email"`
	Name  string      `json:"name"`
	Role  access.Role `json:"role" enum:"admin,release-manager,security-officer,operator,auditor"`
}

// CreateUser adds a person to the caller's organization.
func (s *Service) CreateUser(ctx context.Context, p access.Principal, req CreateUserRequest) (User, error) {
	if err := p.Require(access.UserWrite); err != nil {
		return User{}, err
	}
	addr, err := mail.ParseAddress(req.Email)
	if err != nil || addr.Address != req.Email || len(req.Email) > 254 {
		return User{}, problem.InvalidField("email", "%q is not a plain e-mail address like ada@example.com", req.Email)
	}
	if err := validName("name", req.Name, 200); err != nil {
		return User{}, err
	}
	if _, err := access.ParseRole(string(req.Role)); err != nil {
		return User{}, err
	}
	u := User{ID: id.New(), OrgID: p.OrgID, Email: strings.ToLower(req.Email), Name: req.Name, Role: req.Role, CreatedAt: s.clock.Now()}
	err = s.store.Write(ctx, func(tx Tx) error {
		if err := tx.InsertUser(ctx, u); err != nil {
			return err
		}
		_, err := tx.AppendAudit(ctx, audit.Record{OrgID: p.OrgID, Actor: p.Actor, Action: "user.create",
			TargetType: "user", TargetID: u.ID, Details: map[string]any{"email": u.Email, "role": u.Role}})
		return err
	})
	return u, err
}

// ListUsers lists the people in the caller's organization.
func (s *Service) ListUsers(ctx context.Context, p access.Principal, after string, limit int) (Page[User], error) {
	if err := p.Require(access.UserRead); err != nil {
		return Page[User]{}, err
	}
	limit = paging.Limit(limit)
	var us []User
	err := s.store.Read(ctx, func(tx Tx) error {
		var err error
		us, err = tx.ListUsers(ctx, p.OrgID, after, limit+1)
		return err
	})
	return page(us, limit, func(u User) string { return u.ID }), err
}

// GetUser returns one person of the caller's organization.
func (s *Service) GetUser(ctx context.Context, p access.Principal, userID string) (User, error) {
	if err := p.Require(access.UserRead); err != nil {
		return User{}, err
	}
	var u User
	err := s.store.Read(ctx, func(tx Tx) error {
		var err error
		u, err = tx.UserByID(ctx, p.OrgID, userID)
		return err
	})
	return u, err
}

// DisableUser stops a person's access; their tokens stop working at once.
// The record stays so the audit log keeps naming them.
func (s *Service) DisableUser(ctx context.Context, p access.Principal, userID string) (User, error) {
	if err := p.Require(access.UserWrite); err != nil {
		return User{}, err
	}
	var u User
	err := s.store.Write(ctx, func(tx Tx) error {
		var err error
		if u, err = tx.UserByID(ctx, p.OrgID, userID); err != nil {
			return err
		}
		if u.DisabledAt != nil {
			return problem.Conflict("user %s was already disabled at %s", u.ID, u.DisabledAt.Format(time.RFC3339))
		}
		now := s.clock.Now()
		if err := tx.DisableUser(ctx, p.OrgID, userID, now); err != nil {
			return err
		}
		u.DisabledAt = &now
		_, err = tx.AppendAudit(ctx, audit.Record{OrgID: p.OrgID, Actor: p.Actor, Action: "user.disable",
			TargetType: "user", TargetID: u.ID, Details: map[string]any{"email": u.Email}})
		return err
	})
	return u, err
}

// CreateTokenRequest creates an API token in the caller's organization.
type CreateTokenRequest struct {
	Name string      `json:"name"`
	Role access.Role `json:"role" enum:"admin,release-manager,security-officer,operator,auditor"`
	// UserID ties the token to a person: it dies with their account, and
	// may carry only their role or the read-only auditor role.
	UserID    string `json:"user_id,omitempty"`
	ExpiresIn string `json:"expires_in,omitempty" doc:"lifetime as a Go duration such as 720h; default 2160h (90 days), at most 17520h (2 years)"`
}

// CreatedToken is a new token with its secret, which is shown only once.
type CreatedToken struct {
	Token
	Secret string `json:"secret,omitempty" doc:"the bearer secret; shown only in the response that created it"`
}

// CreateToken mints an API token in the caller's organization.
func (s *Service) CreateToken(ctx context.Context, p access.Principal, req CreateTokenRequest) (CreatedToken, error) {
	if err := p.Require(access.TokenWrite); err != nil {
		return CreatedToken{}, err
	}
	if err := validName("name", req.Name, 200); err != nil {
		return CreatedToken{}, err
	}
	if _, err := access.ParseRole(string(req.Role)); err != nil {
		return CreatedToken{}, err
	}
	ttl := DefaultTokenTTL
	if req.ExpiresIn != "" {
		d, err := time.ParseDuration(req.ExpiresIn)
		if err != nil || d <= 0 || d > MaxTokenTTL {
			return CreatedToken{}, problem.InvalidField("expires_in", "%q is not a duration between 1s and %s (for example 720h)", req.ExpiresIn, MaxTokenTTL)
		}
		ttl = d
	}
	var out CreatedToken
	err := s.store.Write(ctx, func(tx Tx) error {
		if req.UserID != "" {
			if !id.Valid(req.UserID) {
				return problem.InvalidField("user_id", "%q is not a user id", req.UserID)
			}
			u, err := tx.UserByID(ctx, p.OrgID, req.UserID)
			if problem.Is(err, problem.KindNotFound) {
				return problem.InvalidField("user_id", "no user %s in this organization", req.UserID)
			} else if err != nil {
				return err
			}
			if u.DisabledAt != nil {
				return problem.InvalidField("user_id", "user %s is disabled", u.ID)
			}
			if req.Role != u.Role && req.Role != access.RoleAuditor {
				return problem.InvalidField("role", "a token for user %s may have their role %s or auditor, not %s", u.Email, u.Role, req.Role)
			}
		}
		tok, secret, err := s.insertToken(ctx, tx, p.Actor, p.OrgID,
			Token{Name: req.Name, Role: req.Role, UserID: req.UserID}, ptr(s.clock.Now().Add(ttl)))
		out = CreatedToken{Token: tok, Secret: secret}
		return err
	})
	return out, err
}

func (s *Service) insertToken(ctx context.Context, tx Tx, actor access.Actor, orgID string, t Token, expires *time.Time) (Token, string, error) {
	t.ID = id.New()
	t.OrgID = orgID
	t.CreatedAt = s.clock.Now()
	t.CreatedBy = actor.ID
	t.ExpiresAt = expires
	secret := newSecret()
	if err := tx.InsertToken(ctx, t, HashSecret(secret)); err != nil {
		return Token{}, "", err
	}
	details := map[string]any{"name": t.Name, "role": t.Role}
	if t.UserID != "" {
		details["user_id"] = t.UserID
	}
	if expires != nil {
		details["expires_at"] = expires.Format(time.RFC3339)
	}
	_, err := tx.AppendAudit(ctx, audit.Record{OrgID: orgID, Actor: actor, Action: "token.create",
		TargetType: "token", TargetID: t.ID, Details: details})
	return t, secret, err
}

// ListTokens lists the caller's organization's tokens (never their secrets).
func (s *Service) ListTokens(ctx context.Context, p access.Principal, after string, limit int) (Page[Token], error) {
	if err := p.Require(access.TokenRead); err != nil {
		return Page[Token]{}, err
	}
	limit = paging.Limit(limit)
	var ts []Token
	err := s.store.Read(ctx, func(tx Tx) error {
		var err error
		ts, err = tx.ListTokens(ctx, p.OrgID, after, limit+1)
		return err
	})
	return page(ts, limit, func(t Token) string { return t.ID }), err
}

// GetToken returns one token of the caller's organization.
func (s *Service) GetToken(ctx context.Context, p access.Principal, tokenID string) (Token, error) {
	if err := p.Require(access.TokenRead); err != nil {
		return Token{}, err
	}
	var t Token
	err := s.store.Read(ctx, func(tx Tx) error {
		var err error
		t, err = tx.TokenByID(ctx, p.OrgID, tokenID)
		return err
	})
	return t, err
}

// RevokeToken revokes a token; it fails authentication from the next
// request on. Any caller may revoke its own token (to retire a leaked one);
// revoking others' needs token.write.
func (s *Service) RevokeToken(ctx context.Context, p access.Principal, tokenID string) (Token, error) {
	if tokenID != p.Actor.ID {
		if err := p.Require(access.TokenWrite); err != nil {
			return Token{}, err
		}
	}
	var t Token
	err := s.store.Write(ctx, func(tx Tx) error {
		var err error
		if t, err = tx.TokenByID(ctx, p.OrgID, tokenID); err != nil {
			return err
		}
		if t.RevokedAt != nil {
			return problem.Conflict("token %s was already revoked at %s", t.ID, t.RevokedAt.Format(time.RFC3339))
		}
		now := s.clock.Now()
		if err := tx.RevokeToken(ctx, p.OrgID, tokenID, now); err != nil {
			return err
		}
		t.RevokedAt = &now
		_, err = tx.AppendAudit(ctx, audit.Record{OrgID: p.OrgID, Actor: p.Actor, Action: "token.revoke",
			TargetType: "token", TargetID: t.ID, Details: map[string]any{"name": t.Name}})
		return err
	})
	return t, err
}

// IssueAdminToken mints a fresh admin token for an organization from the
// server host (break-glass, e.g. after the bootstrap token was lost). It
// bypasses API authorization because whoever runs it already holds the
// database; the audit log records it as a system action.
func (s *Service) IssueAdminToken(ctx context.Context, orgSlug, name string) (CreatedToken, error) {
	var out CreatedToken
	err := s.store.Write(ctx, func(tx Tx) error {
		org, err := tx.OrgBySlug(ctx, orgSlug)
		if err != nil {
			return err
		}
		tok, secret, err := s.insertToken(ctx, tx, access.System("host cli"), org.ID,
			Token{Name: name, Role: access.RoleAdmin}, ptr(s.clock.Now().Add(DefaultTokenTTL)))
		out = CreatedToken{Token: tok, Secret: secret}
		return err
	})
	return out, err
}

func ptr[T any](v T) *T { return &v }
