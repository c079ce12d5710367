package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/steward-iot/steward/internal/access"
	"github.com/steward-iot/steward/internal/audit"
	"github.com/steward-iot/steward/internal/clock"
	"github.com/steward-iot/steward/internal/id"
	"github.com/steward-iot/steward/internal/idempotency"
	"github.com/steward-iot/steward/internal/problem"
	"github.com/steward-iot/steward/internal/store"
	"github.com/steward-iot/steward/internal/store/storetest"
	"github.com/steward-iot/steward/internal/tenancy"
)

// t0 has a sub-microsecond part on purpose: it must be truncated, not
// rounded differently by each database.
var t0 = time.Date(2026, 11, 26, 8, 0, 0, 123456789, time.UTC)

func newOrg(t *testing.T, tx *store.Tx, slug string) tenancy.Org {
	t.Helper()
	o := tenancy.Org{ID: id.New(), Slug: slug, Name: "Org " + slug, CreatedAt: clock.Norm(t0)}
	if err := tx.InsertOrg(context.Background(), o); err != nil {
		t.Fatalf("InsertOrg(%s): %v", slug, err)
	}
	return o
}

func write(t *testing.T, db *store.DB, fn func(tx *store.Tx) error) {
	t.Helper()
	if err := db.Write(context.Background(), fn); err != nil {
		t.Fatal(err)
	}
}

func wantKind(t *testing.T, err error, k problem.Kind, what string) {
	t.Helper()
	if !problem.Is(err, k) {
		t.Fatalf("%s: got error %v, want kind %d", what, err, k)
	}
}

func TestContract(t *testing.T) {
	tests := []struct {
		name string
		fn   func(t *testing.T, db *store.DB)
	}{
		{"Migrate", testMigrate},
		{"Orgs", testOrgs},
		{"Users", testUsers},
		{"Tokens", testTokens},
		{"AuditChain", testAuditChain},
		{"AuditList", testAuditList},
		{"AuditConcurrentAppends", testAuditConcurrent},
		{"AuditTamper", testAuditTamper},
		{"Idempotency", testIdempotency},
		{"WriteRollsBack", testWriteRollsBack},
		{"DeviceTrafficDurability", testDeviceTrafficDurability},
		{"AuditDeferred", testAuditDeferred},
	}
	for _, d := range storetest.Dialects(t) {
		t.Run(string(d), func(t *testing.T) {
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					tc.fn(t, storetest.New(t, d, clock.NewFake(t0)))
				})
			}
		})
	}
}

func testMigrate(t *testing.T, db *store.DB) {
	ctx := context.Background()
	n, err := db.Migrate(ctx)
	if err != nil || n != 0 {
		t.Fatalf("second Migrate = %d, %v; want 0 applied", n, err)
	}
	if err := db.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	// A database from a newer binary must be refused, not misread.
	write(t, db, func(tx *store.Tx) error {
		return tx.ExecForTest(ctx, "INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, 'future', 0)")
	})
	if _, err := db.Migrate(ctx); err == nil {
		t.Fatal("Migrate accepted a schema newer than the binary")
	}
}

func testOrgs(t *testing.T, db *store.DB) {
	ctx := context.Background()
	var a, b tenancy.Org
	write(t, db, func(tx *store.Tx) error {
		a, b = newOrg(t, tx, "alpha"), newOrg(t, tx, "beta")
		return nil
	})
	err := db.Write(ctx, func(tx *store.Tx) error {
		return tx.InsertOrg(ctx, tenancy.Org{ID: id.New(), Slug: "alpha", Name: "dup", CreatedAt: t0})
	})
	wantKind(t, err, problem.KindConflict, "duplicate slug")
	err = db.Read(ctx, func(tx *store.Tx) error {
		got, err := tx.OrgBySlug(ctx, "alpha")
		if err != nil {
			return err
		}
		if got != a {
			return fmt.Errorf("OrgBySlug = %+v, want %+v", got, a)
		}
		if got, err = tx.OrgByID(ctx, b.ID); err != nil || got != b {
			return fmt.Errorf("OrgByID = %+v, %v", got, err)
		}
		_, err = tx.OrgByID(ctx, id.New())
		wantKind(t, err, problem.KindNotFound, "missing org")
		n, err := tx.CountOrgs(ctx)
		if err != nil || n != 2 {
			return fmt.Errorf("CountOrgs = %d, %v", n, err)
		}
		first, err := tx.ListOrgs(ctx, "", 1)
		if err != nil || len(first) != 1 || first[0] != a {
			return fmt.Errorf("ListOrgs page 1 = %+v, %v", first, err)
		}
		rest, err := tx.ListOrgs(ctx, first[0].ID, 10)
		if err != nil || len(rest) != 1 || rest[0] != b {
			return fmt.Errorf("ListOrgs page 2 = %+v, %v", rest, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func testUsers(t *testing.T, db *store.DB) {
	ctx := context.Background()
	var a, b tenancy.Org
	u := tenancy.User{ID: id.New(), Email: "ada@example.com", Name: "Ada", Role: access.RoleOperator, CreatedAt: clock.Norm(t0)}
	write(t, db, func(tx *store.Tx) error {
		a, b = newOrg(t, tx, "a"), newOrg(t, tx, "b")
		u.OrgID = a.ID
		if err := tx.InsertUser(ctx, u); err != nil {
			return err
		}
		// The same address in another org is another person record.
		return tx.InsertUser(ctx, tenancy.User{ID: id.New(), OrgID: b.ID, Email: u.Email, Name: "Ada B", Role: access.RoleAdmin, CreatedAt: t0})
	})
	err := db.Write(ctx, func(tx *store.Tx) error {
		return tx.InsertUser(ctx, tenancy.User{ID: id.New(), OrgID: a.ID, Email: u.Email, Name: "dup", Role: access.RoleAdmin, CreatedAt: t0})
	})
	wantKind(t, err, problem.KindConflict, "duplicate email in org")
	err = db.Read(ctx, func(tx *store.Tx) error {
		got, err := tx.UserByID(ctx, a.ID, u.ID)
		if err != nil || got != u {
			return fmt.Errorf("UserByID = %+v, %v; want %+v", got, err, u)
		}
		_, err = tx.UserByID(ctx, b.ID, u.ID)
		wantKind(t, err, problem.KindNotFound, "user through another org")
		us, err := tx.ListUsers(ctx, a.ID, "", 10)
		if err != nil || len(us) != 1 || us[0].ID != u.ID {
			return fmt.Errorf("ListUsers(a) = %+v, %v", us, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	at := clock.Norm(t0.Add(time.Hour))
	write(t, db, func(tx *store.Tx) error { return tx.DisableUser(ctx, a.ID, u.ID, at) })
	err = db.Write(ctx, func(tx *store.Tx) error { return tx.DisableUser(ctx, b.ID, u.ID, at) })
	wantKind(t, err, problem.KindNotFound, "disable through another org")
	err = db.Read(ctx, func(tx *store.Tx) error {
		got, err := tx.UserByID(ctx, a.ID, u.ID)
		if err != nil || got.DisabledAt == nil || !got.DisabledAt.Equal(at) {
			return fmt.Errorf("after DisableUser: %+v, %v", got, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func testTokens(t *testing.T, db *store.DB) {
	ctx := context.Background()
	var a, b tenancy.Org
	exp := clock.Norm(t0.Add(24 * time.Hour))
	tok := tenancy.Token{ID: id.New(), Name: "ci", Role: access.RoleReleaseManager, CreatedAt: clock.Norm(t0), CreatedBy: "x", ExpiresAt: &exp}
	write(t, db, func(tx *store.Tx) error {
		a, b = newOrg(t, tx, "a"), newOrg(t, tx, "b")
		tok.OrgID = a.ID
		if err := tx.InsertToken(ctx, tok, "hash-1"); err != nil {
			return err
		}
		return tx.InsertToken(ctx, tenancy.Token{ID: id.New(), OrgID: b.ID, Name: "other", Role: access.RoleAdmin, CreatedAt: t0, CreatedBy: "x"}, "hash-2")
	})
	err := db.Write(ctx, func(tx *store.Tx) error {
		return tx.InsertToken(ctx, tenancy.Token{ID: id.New(), OrgID: a.ID, Name: "dup", Role: access.RoleAdmin, CreatedAt: t0, CreatedBy: "x"}, "hash-1")
	})
	wantKind(t, err, problem.KindConflict, "duplicate secret hash")
	equal := func(got tenancy.Token) error {
		if got.ID != tok.ID || got.OrgID != a.ID || got.Role != tok.Role || got.Name != tok.Name || !got.CreatedAt.Equal(tok.CreatedAt) ||
			got.ExpiresAt == nil || !got.ExpiresAt.Equal(exp) || got.RevokedAt != nil || got.UserID != "" {
			return fmt.Errorf("token = %+v, want %+v", got, tok)
		}
		return nil
	}
	err = db.Read(ctx, func(tx *store.Tx) error {
		got, err := tx.TokenByHash(ctx, "hash-1")
		if err != nil {
			return err
		}
		if err := equal(got); err != nil {
			return err
		}
		if got, err = tx.TokenByID(ctx, a.ID, tok.ID); err != nil {
			return err
		}
		if err := equal(got); err != nil {
			return err
		}
		_, err = tx.TokenByID(ctx, b.ID, tok.ID)
		wantKind(t, err, problem.KindNotFound, "token through another org")
		_, err = tx.TokenByHash(ctx, "nope")
		wantKind(t, err, problem.KindNotFound, "unknown hash")
		ts, err := tx.ListTokens(ctx, a.ID, "", 10)
		if err != nil || len(ts) != 1 {
			return fmt.Errorf("ListTokens(a) = %+v, %v", ts, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	at := clock.Norm(t0.Add(time.Minute))
	write(t, db, func(tx *store.Tx) error { return tx.RevokeToken(ctx, a.ID, tok.ID, at) })
	err = db.Write(ctx, func(tx *store.Tx) error { return tx.RevokeToken(ctx, a.ID, tok.ID, at) })
	wantKind(t, err, problem.KindNotFound, "revoking a revoked token")
	err = db.Write(ctx, func(tx *store.Tx) error { return tx.RevokeToken(ctx, b.ID, tok.ID, at) })
	wantKind(t, err, problem.KindNotFound, "revoke through another org")
}

func appendN(t *testing.T, db *store.DB, org string, n int, action string) []audit.Event {
	t.Helper()
	var out []audit.Event
	for i := range n {
		write(t, db, func(tx *store.Tx) error {
			e, err := tx.AppendAudit(context.Background(), audit.Record{OrgID: org, Actor: access.System("test"), Action: action,
				TargetType: "thing", TargetID: fmt.Sprint(i), Details: map[string]any{"i": i}})
			out = append(out, e)
			return err
		})
	}
	return out
}

func verify(t *testing.T, db *store.DB) audit.Result {
	t.Helper()
	res, err := audit.Verify(context.Background(), db.Audit())
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func testAuditChain(t *testing.T, db *store.DB) {
	es := appendN(t, db, "org-1", 3, "thing.create")
	appendN(t, db, "", 2, "org.create")
	for i, e := range es {
		if e.Seq != int64(i+1) {
			t.Fatalf("event %d has seq %d", i, e.Seq)
		}
		if i > 0 && e.PrevHash != es[i-1].Hash {
			t.Fatalf("event %d not chained to %d", i, i-1)
		}
	}
	res := verify(t, db)
	if res.Chains != 2 || res.Events != 5 || len(res.Breaks) != 0 {
		t.Fatalf("Verify = %+v, want 2 intact chains of 5 events", res)
	}
	// What is read back is exactly what was hashed.
	var got []audit.Event
	err := db.Audit().Read(context.Background(), func(tx audit.Tx) error {
		return tx.ScanAudit(context.Background(), "org-1", func(e audit.Event) error { got = append(got, e); return nil })
	})
	if err != nil || len(got) != 3 {
		t.Fatalf("ScanAudit: %d events, %v", len(got), err)
	}
	for i := range got {
		if got[i].Hash != es[i].Hash || audit.ComputeHash(got[i]) != got[i].Hash || !got[i].At.Equal(es[i].At) {
			t.Fatalf("event %d read back differs: %+v vs %+v", i, got[i], es[i])
		}
	}
}

func testAuditList(t *testing.T, db *store.DB) {
	appendN(t, db, "o", 3, "token.create")
	appendN(t, db, "o", 2, "user.create")
	appendN(t, db, "other", 4, "token.create")
	list := func(q audit.Query) []audit.Event {
		var out []audit.Event
		err := db.Audit().Read(context.Background(), func(tx audit.Tx) error {
			var err error
			out, err = tx.ListAudit(context.Background(), q)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	all := list(audit.Query{OrgID: "o", Limit: 100})
	if len(all) != 5 || all[0].Seq != 5 || all[4].Seq != 1 {
		t.Fatalf("ListAudit newest-first: got %d events", len(all))
	}
	if got := list(audit.Query{OrgID: "o", BeforeSeq: 4, Limit: 2}); len(got) != 2 || got[0].Seq != 3 || got[1].Seq != 2 {
		t.Fatalf("ListAudit page before 4: %+v", got)
	}
	if got := list(audit.Query{OrgID: "o", Action: "token.", Limit: 100}); len(got) != 3 {
		t.Fatalf("ListAudit prefix token.: %d events", len(got))
	}
	if got := list(audit.Query{OrgID: "o", Action: "user.create", Limit: 100}); len(got) != 2 {
		t.Fatalf("ListAudit exact user.create: %d events", len(got))
	}
	if got := list(audit.Query{OrgID: "o", Action: "token", Limit: 100}); len(got) != 0 {
		t.Fatalf("ListAudit exact 'token' matched %d", len(got))
	}
}

func testAuditConcurrent(t *testing.T, db *store.DB) {
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 5 {
				errs <- db.Write(context.Background(), func(tx *store.Tx) error {
					_, err := tx.AppendAudit(context.Background(), audit.Record{OrgID: "busy", Actor: access.System("t"),
						Action: "x.y", TargetID: fmt.Sprint(g, i)})
					return err
				})
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if res := verify(t, db); res.Events != 40 || len(res.Breaks) != 0 {
		t.Fatalf("after concurrent appends: %+v", res)
	}
}

func testAuditTamper(t *testing.T, db *store.DB) {
	ctx := context.Background()
	cases := []struct {
		name, sql string
		seq       int64
	}{
		{"edit details", "UPDATE audit_events SET details = '{\"i\":99}' WHERE org_id = 'o' AND seq = 3", 3},
		{"edit actor", "UPDATE audit_events SET actor_id = 'mallory' WHERE org_id = 'o' AND seq = 2", 2},
		{"edit time", "UPDATE audit_events SET at = at + 1 WHERE org_id = 'o' AND seq = 4", 4},
		{"delete middle", "DELETE FROM audit_events WHERE org_id = 'o' AND seq = 3", 4},
		{"delete tail", "DELETE FROM audit_events WHERE org_id = 'o' AND seq = 5", 5},
		{"rehash edited row", "UPDATE audit_events SET action = 'x.forged', hash = 'ab' WHERE org_id = 'o' AND seq = 2", 2},
	}
	for _, c := range cases {
		// Each case starts from a clean chain in its own org.
		org := "o"
		write(t, db, func(tx *store.Tx) error {
			return tx.ExecForTest(ctx, "DELETE FROM audit_events WHERE org_id = 'o'")
		})
		write(t, db, func(tx *store.Tx) error { return tx.ExecForTest(ctx, "DELETE FROM audit_heads WHERE org_id = 'o'") })
		appendN(t, db, org, 5, "thing.update")
		if res := verify(t, db); len(res.Breaks) != 0 {
			t.Fatalf("%s: clean chain reported broken: %+v", c.name, res.Breaks)
		}
		write(t, db, func(tx *store.Tx) error { return tx.ExecForTest(ctx, c.sql) })
		res := verify(t, db)
		if len(res.Breaks) != 1 || res.Breaks[0].OrgID != "o" || res.Breaks[0].Seq != c.seq {
			t.Fatalf("%s: Verify breaks = %+v, want first break at #%d", c.name, res.Breaks, c.seq)
		}
	}
}

func testIdempotency(t *testing.T, db *store.DB) {
	ctx := context.Background()
	s := db.Idempotency()
	rec := idempotency.Record{OrgID: "o", Key: "k1", Method: "POST", Path: "/x", RequestHash: "h", CreatedAt: t0}
	claim := func(r idempotency.Record) (idempotency.Record, bool) {
		var got idempotency.Record
		var ok bool
		if err := s.Write(ctx, func(tx idempotency.Tx) error {
			var err error
			got, ok, err = tx.ClaimIdempotencyKey(ctx, r)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return got, ok
	}
	if _, ok := claim(rec); !ok {
		t.Fatal("first claim refused")
	}
	if got, ok := claim(rec); ok || got.Status != 0 || got.RequestHash != "h" {
		t.Fatalf("second claim = %+v, %v; want existing in-progress record", got, ok)
	}
	if err := s.Write(ctx, func(tx idempotency.Tx) error {
		return tx.CompleteIdempotencyKey(ctx, "o", "k1", 201, "application/json", []byte(`{"id":"1"}`))
	}); err != nil {
		t.Fatal(err)
	}
	if got, ok := claim(rec); ok || got.Status != 201 || string(got.Body) != `{"id":"1"}` || got.ContentType != "application/json" {
		t.Fatalf("claim after completion = %+v, %v", got, ok)
	}
	other := rec
	other.OrgID = "p"
	if _, ok := claim(other); !ok {
		t.Fatal("same key in another org was refused")
	}
	later := rec
	later.CreatedAt = t0.Add(idempotency.TTL + time.Second)
	if _, ok := claim(later); !ok {
		t.Fatal("expired key was not reclaimable")
	}
	if err := s.Write(ctx, func(tx idempotency.Tx) error { return tx.ReleaseIdempotencyKey(ctx, "o", "k1") }); err != nil {
		t.Fatal(err)
	}
	if _, ok := claim(rec); !ok {
		t.Fatal("released key was not reclaimable")
	}
	var pruned int64
	if err := s.Write(ctx, func(tx idempotency.Tx) error {
		var err error
		pruned, err = tx.PruneIdempotencyKeys(ctx, t0.Add(time.Second))
		return err
	}); err != nil || pruned != 2 {
		t.Fatalf("PruneIdempotencyKeys = %d, %v; want 2", pruned, err)
	}
}

func testWriteRollsBack(t *testing.T, db *store.DB) {
	ctx := context.Background()
	boom := errors.New("boom")
	err := db.Write(ctx, func(tx *store.Tx) error {
		newOrg(t, tx, "ghost")
		if _, err := tx.AppendAudit(ctx, audit.Record{OrgID: "ghost", Actor: access.System("t"), Action: "org.create"}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Write returned %v, want boom", err)
	}
	err = db.Read(ctx, func(tx *store.Tx) error {
		n, err := tx.CountOrgs(ctx)
		if err != nil || n != 0 {
			return fmt.Errorf("after rollback: %d orgs, %v", n, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if res := verify(t, db); res.Chains != 0 || res.Events != 0 {
		t.Fatalf("after rollback the audit log holds %+v", res)
	}
}

func testDeviceTrafficDurability(t *testing.T, db *store.DB) {
	if db.Dialect() != store.Postgres {
		return // SQLite WAL with synchronous=NORMAL never waits per commit
	}
	for _, c := range []struct {
		ctx  context.Context
		want string
	}{{context.Background(), "on"}, {store.DeviceTraffic(context.Background()), "off"}} {
		var got string
		if err := db.Write(c.ctx, func(tx *store.Tx) error {
			var err error
			got, err = tx.QueryStringForTest(c.ctx, "SHOW synchronous_commit")
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Fatalf("synchronous_commit = %q, want %q", got, c.want)
		}
	}
}

// testAuditDeferred: device-traffic events are recorded with their change,
// invisible to the chain until sealed, then chained in order exactly once,
// even with concurrent writers and sealers.
func testAuditDeferred(t *testing.T, db *store.DB) {
	ctx := store.DeviceTraffic(context.Background())
	appendN(t, db, "o", 2, "user.create") // synchronous events first
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 10 {
				errs <- db.Write(ctx, func(tx *store.Tx) error {
					e, err := tx.AppendAudit(ctx, audit.Record{OrgID: "o", Actor: access.System("dev"), Action: "device.software",
						TargetID: fmt.Sprint(g, i)})
					if err == nil && e.Seq != 0 {
						err = fmt.Errorf("deferred event got seq %d before sealing", e.Seq)
					}
					return err
				})
			}
		}()
	}
	// A failed device write leaves no pending event either.
	errs <- func() error {
		err := db.Write(ctx, func(tx *store.Tx) error {
			if _, err := tx.AppendAudit(ctx, audit.Record{OrgID: "o", Actor: access.System("dev"), Action: "device.ghost"}); err != nil {
				return err
			}
			return errors.New("rolled back")
		})
		if err == nil {
			return errors.New("write did not fail")
		}
		return nil
	}()
	// Sealers run while writers write.
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 5 {
				if _, err := audit.SealPending(context.Background(), db.Audit()); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := audit.SealPending(context.Background(), db.Audit()); err != nil {
		t.Fatal(err)
	}
	res := verify(t, db)
	if res.Events != 42 || res.Pending != 0 || len(res.Breaks) != 0 {
		t.Fatalf("after sealing: %+v, want 42 chained events, none pending", res)
	}
	seen := map[string]bool{}
	err := db.Audit().Read(context.Background(), func(tx audit.Tx) error {
		return tx.ScanAudit(context.Background(), "o", func(e audit.Event) error {
			if e.Action == "device.ghost" || seen[e.TargetID+e.Action] {
				return fmt.Errorf("event %s %s sealed twice or from a rolled-back write", e.Action, e.TargetID)
			}
			seen[e.TargetID+e.Action] = true
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
}
