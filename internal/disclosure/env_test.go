package disclosure_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/steward-iot/steward/internal/access"
	"github.com/steward-iot/steward/internal/audit"
	"github.com/steward-iot/steward/internal/clock"
	"github.com/steward-iot/steward/internal/disclosure"
	"github.com/steward-iot/steward/internal/id"
	"github.com/steward-iot/steward/internal/notify"
	"github.com/steward-iot/steward/internal/problem"
	"github.com/steward-iot/steward/internal/store"
	"github.com/steward-iot/steward/internal/store/storetest"
	"github.com/steward-iot/steward/internal/tenancy"
)

// t0 has a sub-microsecond part so that every stored time must be normalized.
var t0 = time.Date(2026, 11, 26, 8, 0, 0, 123456789, time.UTC)

// recorder is a Notifier that keeps what it is sent and can be told to fail.
type recorder struct {
	mu   sync.Mutex
	msgs []notify.Message
	fail error
}

func (r *recorder) Notify(_ context.Context, m notify.Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	r.msgs = append(r.msgs, m)
	return nil
}

func (r *recorder) ofType(typ string) []notify.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []notify.Message
	for _, m := range r.msgs {
		if m.Type == typ {
			out = append(out, m)
		}
	}
	return out
}

func (r *recorder) setFail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fail = err
}

// vulnSet is a VulnerabilityChecker over a fixed set of "org/id" keys.
type vulnSet map[string]bool

func (v vulnSet) CheckVulnerability(_ context.Context, orgID, vid string) error {
	if !v[orgID+"/"+vid] {
		return problem.NotFound("vulnerability %s not found", vid)
	}
	return nil
}

type env struct {
	t     testing.TB
	db    *store.DB
	clk   *clock.Fake
	svc   *disclosure.Service
	notes *recorder
	vulns vulnSet
	org   tenancy.Org // the vendor running disclosure
	other tenancy.Org
	cfg   disclosure.Config
}

func baseConfig() disclosure.Config {
	return disclosure.Config{OrgName: "Acme", BaseURL: "https://updates.example.com",
		Contacts: []string{"mailto:security@example.com"}, Acknowledgments: "https://example.com/thanks",
		PreferredLanguages: []string{"en", "de"}}
}

// newEnv opens a fresh database of dialect d with two organizations.
// change, if given, adjusts the configuration before the org id is set.
func newEnv(t testing.TB, d store.Dialect, change ...func(*disclosure.Config)) *env {
	t.Helper()
	e := &env{t: t, clk: clock.NewFake(t0), notes: &recorder{}, vulns: vulnSet{}}
	e.db = storetest.New(t, d, e.clk)
	ctx := context.Background()
	err := e.db.Write(ctx, func(tx *store.Tx) error {
		e.org = tenancy.Org{ID: id.New(), Slug: "acme", Name: "Acme", CreatedAt: e.clk.Now()}
		e.other = tenancy.Org{ID: id.New(), Slug: "other", Name: "Other", CreatedAt: e.clk.Now()}
		if err := tx.InsertOrg(ctx, e.org); err != nil {
			return err
		}
		return tx.InsertOrg(ctx, e.other)
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg := baseConfig()
	for _, c := range change {
		c(&cfg)
	}
	cfg.OrgID = e.org.ID
	e.cfg = cfg
	e.svc, err = disclosure.NewService(e.db.Disclosure(), e.clk, cfg, disclosure.Deps{Notifier: e.notes, Vulnerabilities: e.vulns})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) principal(org tenancy.Org, role access.Role) access.Principal {
	return access.Principal{OrgID: org.ID, OrgSlug: org.Slug, Role: role,
		Actor: access.Actor{Kind: access.ActorToken, ID: id.New(), Name: string(role) + "@" + org.Slug}}
}

// submit files a valid report through the service.
func (e *env) submit(title, email string) disclosure.Receipt {
	e.t.Helper()
	rc, err := e.svc.Submit(context.Background(), e.org.ID, disclosure.ReportRequest{Title: title,
		Description: "Steps:\n1. do this\n2. root shell", Product: "gateway", Version: "2.1", ReporterEmail: email}, disclosure.SourceAPI)
	if err != nil {
		e.t.Fatalf("Submit: %v", err)
	}
	return rc
}

// audit returns the org's audit events, oldest first, with the given
// action prefix (see audit.Query).
func (e *env) audit(org tenancy.Org, action string) []audit.Event {
	e.t.Helper()
	var evs []audit.Event
	err := e.db.Read(context.Background(), func(tx *store.Tx) error {
		var err error
		evs, err = tx.ListAudit(context.Background(), audit.Query{OrgID: org.ID, Action: action, Limit: 1000})
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	for i, j := 0, len(evs)-1; i < j; i, j = i+1, j-1 {
		evs[i], evs[j] = evs[j], evs[i]
	}
	return evs
}

// reportCount counts the stored reports of the vendor org.
func (e *env) reportCount() int {
	e.t.Helper()
	var n int
	err := e.db.Read(context.Background(), func(tx *store.Tx) error {
		rs, err := tx.ListReports(context.Background(), e.org.ID, "", "", 1000)
		n = len(rs)
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

func wantKind(t testing.TB, err error, k problem.Kind, what string) {
	t.Helper()
	if !problem.Is(err, k) {
		t.Fatalf("%s: got error %v, want kind %d", what, err, k)
	}
}

func wantField(t testing.TB, err error, field string) {
	t.Helper()
	var pe *problem.Error
	if !errors.As(err, &pe) || pe.Kind != problem.KindInvalid {
		t.Fatalf("want an invalid-input error naming %s, got %v", field, err)
	}
	for _, f := range pe.Fields {
		if f.Field == field {
			return
		}
	}
	t.Fatalf("error %v names fields %v, not %s", err, pe.Fields, field)
}

// noSecrets fails if any audit event or notification of either org
// carries a tracking token.
func (e *env) noSecrets(tokens ...string) {
	e.t.Helper()
	var all []string
	for _, org := range []tenancy.Org{e.org, e.other} {
		for _, ev := range e.audit(org, "") {
			b, _ := json.Marshal(ev)
			all = append(all, string(b))
		}
	}
	e.notes.mu.Lock()
	for _, m := range e.notes.msgs {
		b, _ := json.Marshal(m)
		all = append(all, string(b))
	}
	e.notes.mu.Unlock()
	for _, s := range all {
		for _, tok := range tokens {
			if strings.Contains(s, tok) || strings.Contains(s, strings.TrimPrefix(tok, disclosure.TokenPrefix)) {
				t := e.t
				t.Fatalf("a tracking token leaked into %s", s)
			}
		}
		if strings.Contains(s, disclosure.TokenPrefix) {
			e.t.Fatalf("something token-like leaked into %s", s)
		}
	}
}

func toJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}
