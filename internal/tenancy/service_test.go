package tenancy_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/steward-iot/steward/internal/access"
	"github.com/steward-iot/steward/internal/audit"
	"github.com/steward-iot/steward/internal/clock"
	"github.com/steward-iot/steward/internal/problem"
	"github.com/steward-iot/steward/internal/store"
	"github.com/steward-iot/steward/internal/store/storetest"
	"github.com/steward-iot/steward/internal/tenancy"
)

var errInjected = errors.New("injected failure")

// faultyStore passes writes to a real store, but fails the Nth audit
// append inside the transaction: the write has already inserted its row
// by then, so only a real rollback leaves nothing behind.
type faultyStore struct {
	tenancy.Store
	failAppend bool
}

type faultyTx struct {
	tenancy.Tx
	fail bool
}

func (f faultyTx) AppendAudit(ctx context.Context, r audit.Record) (audit.Event, error) {
	if f.fail {
		return audit.Event{}, errInjected
	}
	return f.Tx.AppendAudit(ctx, r)
}

func (f *faultyStore) Write(ctx context.Context, fn func(tenancy.Tx) error) error {
	return f.Store.Write(ctx, func(tx tenancy.Tx) error { return fn(faultyTx{tx, f.failAppend}) })
}

func setup(t *testing.T, d store.Dialect) (*store.DB, *faultyStore, *tenancy.Service, access.Principal) {
	t.Helper()
	c := clock.NewFake(time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC))
	db := storetest.New(t, d, c)
	fs := &faultyStore{Store: db.Tenancy()}
	svc := tenancy.NewService(fs, c)
	_, secret, created, err := svc.Bootstrap(context.Background(), "ops", "Ops")
	if err != nil || !created {
		t.Fatal(created, err)
	}
	p, err := svc.Authenticate(context.Background(), secret)
	if err != nil {
		t.Fatal(err)
	}
	return db, fs, svc, p
}

func counts(t *testing.T, db *store.DB) (orgs, users, tokens int, events int64) {
	t.Helper()
	ctx := context.Background()
	err := db.Read(ctx, func(tx *store.Tx) error {
		var err error
		if orgs, err = tx.CountOrgs(ctx); err != nil {
			return err
		}
		all, err := tx.ListOrgs(ctx, "", 1000)
		for _, o := range all {
			us, _ := tx.ListUsers(ctx, o.ID, "", 1000)
			ts, _ := tx.ListTokens(ctx, o.ID, "", 1000)
			users, tokens = users+len(us), tokens+len(ts)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err := audit.Verify(ctx, db.Audit())
	if err != nil || len(res.Breaks) > 0 {
		t.Fatalf("audit chain after failure: %+v %v", res, err)
	}
	return orgs, users, tokens, res.Events
}

// TestFailedWriteLeavesNothing fails each kind of write in its middle
// (after the row insert, at the audit append) and checks that no partial
// row and no audit event survive, on both databases.
func TestFailedWriteLeavesNothing(t *testing.T) {
	for _, d := range storetest.Dialects(t) {
		t.Run(string(d), func(t *testing.T) {
			db, fs, svc, p := setup(t, d)
			ctx := context.Background()
			u, err := svc.CreateUser(ctx, p, tenancy.CreateUserRequest{Email: "a@example.com", Name: "A", Role: access.RoleOperator})
			if err != nil {
				t.Fatal(err)
			}
			tok, err := svc.CreateToken(ctx, p, tenancy.CreateTokenRequest{Name: "t", Role: access.RoleOperator})
			if err != nil {
				t.Fatal(err)
			}
			o0, u0, t0, e0 := counts(t, db)
			fs.failAppend = true
			writes := map[string]func() error{
				"CreateOrg": func() error {
					_, err := svc.CreateOrg(ctx, p, tenancy.CreateOrgRequest{Slug: "ghost", Name: "Ghost"})
					return err
				},
				"CreateUser": func() error {
					_, err := svc.CreateUser(ctx, p, tenancy.CreateUserRequest{Email: "b@example.com", Name: "B", Role: access.RoleAdmin})
					return err
				},
				"CreateToken": func() error {
					_, err := svc.CreateToken(ctx, p, tenancy.CreateTokenRequest{Name: "x", Role: access.RoleAdmin})
					return err
				},
				"RevokeToken": func() error { _, err := svc.RevokeToken(ctx, p, tok.ID); return err },
				"DisableUser": func() error { _, err := svc.DisableUser(ctx, p, u.ID); return err },
			}
			for name, w := range writes {
				if err := w(); !errors.Is(err, errInjected) {
					t.Fatalf("%s: got %v, want the injected failure", name, err)
				}
			}
			fs.failAppend = false
			if o, us, ts, e := counts(t, db); o != o0 || us != u0 || ts != t0 || e != e0 {
				t.Fatalf("after failed writes: orgs %d→%d users %d→%d tokens %d→%d events %d→%d", o0, o, u0, us, t0, ts, e0, e)
			}
			if got, _ := svc.GetToken(ctx, p, tok.ID); got.RevokedAt != nil {
				t.Fatal("a failed revoke left the token revoked")
			}
			if got, _ := svc.GetUser(ctx, p, u.ID); got.DisabledAt != nil {
				t.Fatal("a failed disable left the user disabled")
			}
		})
	}
}

func TestBootstrapOnce(t *testing.T) {
	db, _, svc, _ := setup(t, store.SQLite)
	_, secret, created, err := svc.Bootstrap(context.Background(), "ops", "Ops")
	if err != nil || created || secret != "" {
		t.Fatalf("second bootstrap: created=%v secret=%q err=%v", created, secret, err)
	}
	if o, _, ts, _ := counts(t, db); o != 1 || ts != 1 {
		t.Fatalf("after two bootstraps: %d orgs, %d tokens", o, ts)
	}
}

func TestTokenRules(t *testing.T) {
	_, _, svc, p := setup(t, store.SQLite)
	ctx := context.Background()
	u, err := svc.CreateUser(ctx, p, tenancy.CreateUserRequest{Email: "ops@example.com", Name: "Op", Role: access.RoleOperator})
	if err != nil {
		t.Fatal(err)
	}
	// A person's token may carry their role or the read-only auditor role.
	for role, ok := range map[access.Role]bool{access.RoleOperator: true, access.RoleAuditor: true, access.RoleAdmin: false} {
		_, err := svc.CreateToken(ctx, p, tenancy.CreateTokenRequest{Name: "x", Role: role, UserID: u.ID})
		if (err == nil) != ok {
			t.Errorf("token with role %s for an operator: err=%v", role, err)
		}
	}
	tok, err := svc.CreateToken(ctx, p, tenancy.CreateTokenRequest{Name: "x", Role: access.RoleOperator})
	if err != nil {
		t.Fatal(err)
	}
	if tok.ExpiresAt == nil || !tok.ExpiresAt.Equal(tok.CreatedAt.Add(tenancy.DefaultTokenTTL)) {
		t.Fatalf("default expiry: %v", tok.ExpiresAt)
	}
	if !strings.HasPrefix(tok.Secret, tenancy.SecretPrefix) {
		t.Fatalf("secret %q lacks the scanner-friendly prefix", tok.Secret)
	}
	if _, err := svc.RevokeToken(ctx, p, tok.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.RevokeToken(ctx, p, tok.ID); !problem.Is(err, problem.KindConflict) {
		t.Fatalf("second revoke: %v, want conflict", err)
	}
	if _, err := svc.CreateOrg(ctx, p, tenancy.CreateOrgRequest{Slug: "Bad Slug", Name: "x"}); !problem.Is(err, problem.KindInvalid) {
		t.Fatalf("bad slug: %v", err)
	}
	if _, err := svc.CreateOrg(ctx, p, tenancy.CreateOrgRequest{Slug: "ops", Name: "dup"}); !problem.Is(err, problem.KindConflict) {
		t.Fatalf("duplicate slug: %v", err)
	}
}
