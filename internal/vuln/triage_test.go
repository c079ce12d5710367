package vuln_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/steward-iot/steward/internal/access"
	"github.com/steward-iot/steward/internal/audit"
	"github.com/steward-iot/steward/internal/clock"
	"github.com/steward-iot/steward/internal/id"
	"github.com/steward-iot/steward/internal/notify"
	"github.com/steward-iot/steward/internal/problem"
	"github.com/steward-iot/steward/internal/store"
	"github.com/steward-iot/steward/internal/store/storetest"
	"github.com/steward-iot/steward/internal/tenancy"
	"github.com/steward-iot/steward/internal/vuln"
	"github.com/steward-iot/steward/internal/vuln/scoring"
)

// t0 has a sub-microsecond part: times must be normalized before storage.
var t0 = time.Date(2026, 3, 2, 9, 0, 0, 500, time.UTC)

// Well-known SSVC inputs: the least and the most severe ends of the tree.
var (
	ssvcDefer     = scoring.SSVC{Exploitation: scoring.ExploitationNone, Exposure: scoring.ExposureSmall, HumanImpact: scoring.HumanImpactLow}
	ssvcImmediate = scoring.SSVC{Exploitation: scoring.ExploitationActive, Exposure: scoring.ExposureOpen, Automatable: true, HumanImpact: scoring.HumanImpactVeryHigh}
)

// fakeNotifier records messages; fail makes Notify return an error.
type fakeNotifier struct {
	mu   sync.Mutex
	msgs []notify.Message
	fail error
}

func (n *fakeNotifier) Notify(_ context.Context, m notify.Message) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.fail != nil {
		return n.fail
	}
	n.msgs = append(n.msgs, m)
	return nil
}

func (n *fakeNotifier) take() []notify.Message {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := n.msgs
	n.msgs = nil
	return out
}

// env is one organization with people in every situation triage cares
// about, a second organization, and the service under test.
type env struct {
	t      *testing.T
	ctx    context.Context
	db     *store.DB
	clk    *clock.Fake
	svc    *vuln.Service
	notes  *fakeNotifier
	org    tenancy.Org
	other  tenancy.Org
	users  map[string]tenancy.User // by short name
	admin  access.Principal        // a security officer's token (alice)
	seq    int
	failOn string // AppendAudit fails for this action (see failingStore)
}

func newEnv(t *testing.T, d store.Dialect) *env {
	t.Helper()
	clk := clock.NewFake(t0)
	e := &env{t: t, ctx: context.Background(), clk: clk, notes: &fakeNotifier{}, users: map[string]tenancy.User{}}
	e.db = storetest.New(t, d, clk)
	e.svc = vuln.NewService(failingStore{e.db.Vuln(), &e.failOn}, clk).WithNotifier(e.notes)
	people := []struct {
		name, org string
		role      access.Role
		disabled  bool
	}{
		{"alice", "acme", access.RoleSecurityOfficer, false},
		{"dave", "acme", access.RoleAdmin, false},
		{"carol", "acme", access.RoleSecurityOfficer, false},
		{"oscar", "acme", access.RoleOperator, false},       // may not triage
		{"rita", "acme", access.RoleReleaseManager, false},  // may not triage
		{"dora", "acme", access.RoleSecurityOfficer, true},  // disabled
		{"bob", "other", access.RoleSecurityOfficer, false}, // another organization
	}
	err := e.db.Write(e.ctx, func(tx *store.Tx) error {
		e.org = tenancy.Org{ID: id.New(), Slug: "acme", Name: "Acme", CreatedAt: clk.Now()}
		e.other = tenancy.Org{ID: id.New(), Slug: "other", Name: "Other", CreatedAt: clk.Now()}
		for _, o := range []tenancy.Org{e.org, e.other} {
			if err := tx.InsertOrg(e.ctx, o); err != nil {
				return err
			}
		}
		for _, p := range people {
			u := tenancy.User{ID: id.New(), OrgID: e.org.ID, Email: p.name + "@acme.example", Name: p.name, Role: p.role, CreatedAt: clk.Now()}
			if p.org == "other" {
				u.OrgID, u.Email = e.other.ID, p.name+"@other.example"
			}
			if p.disabled {
				now := clk.Now()
				u.DisabledAt = &now
			}
			if err := tx.InsertUser(e.ctx, u); err != nil {
				return err
			}
			e.users[p.name] = u
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	e.admin = e.principal("alice")
	return e
}

// principal is a token of the named user, with that user's role.
func (e *env) principal(name string) access.Principal {
	u := e.users[name]
	return access.Principal{OrgID: u.OrgID, Role: u.Role, UserID: u.ID,
		Actor: access.Actor{Kind: access.ActorToken, ID: "tok-" + name, Name: u.Email}}
}

// failingStore makes AppendAudit fail for one action, to prove that a
// failed write leaves nothing behind.
type failingStore struct {
	vuln.Store
	action *string
}

func (s failingStore) Write(ctx context.Context, fn func(vuln.Tx) error) error {
	return s.Store.Write(ctx, func(tx vuln.Tx) error { return fn(failingTx{tx, *s.action}) })
}

type failingTx struct {
	vuln.Tx
	action string
}

func (tx failingTx) AppendAudit(ctx context.Context, r audit.Record) (audit.Event, error) {
	if tx.action != "" && r.Action == tx.action {
		return audit.Event{}, errors.New("audit log unavailable")
	}
	return tx.Tx.AppendAudit(ctx, r)
}

func osvRecord(id string) []byte {
	return fmt.Appendf(nil, `{"id":%q,"modified":"2026-01-01T00:00:00Z","summary":"test vulnerability %s"}`, id, id)
}

// imported imports a new vulnerability (stage triaging).
func (e *env) imported() vuln.Vulnerability {
	e.t.Helper()
	e.seq++
	v, created, err := e.svc.ImportOSV(e.ctx, e.admin, osvRecord(fmt.Sprintf("TEST-%d", e.seq)))
	if err != nil || !created {
		e.t.Fatalf("import: %v %v", created, err)
	}
	return v
}

// received records a new reported vulnerability (stage received).
func (e *env) received() vuln.Vulnerability {
	e.t.Helper()
	e.seq++
	v, created, err := e.svc.ReceiveOSV(e.ctx, e.admin, osvRecord(fmt.Sprintf("REPORT-%d", e.seq)))
	if err != nil || !created {
		e.t.Fatalf("receive: %v %v", created, err)
	}
	return v
}

func (e *env) get(ref string) vuln.Vulnerability {
	e.t.Helper()
	v, err := e.svc.Get(e.ctx, e.admin, ref)
	if err != nil {
		e.t.Fatal(err)
	}
	return v
}

func (e *env) move(v vuln.Vulnerability, to vuln.Stage) vuln.Vulnerability {
	e.t.Helper()
	req := vuln.TransitionRequest{To: to, Reason: "because " + string(to)}
	if to == vuln.Duplicate {
		req.DuplicateOf = e.imported().ID
	}
	out, err := e.svc.Transition(e.ctx, e.admin, v.ID, req)
	if err != nil {
		e.t.Fatalf("%s → %s: %v", v.Stage, to, err)
	}
	if out.Stage != to {
		e.t.Fatalf("stage %s after moving to %s", out.Stage, to)
	}
	return out
}

func (e *env) assess(v vuln.Vulnerability, in scoring.SSVC) vuln.Vulnerability {
	e.t.Helper()
	out, err := e.svc.Assess(e.ctx, e.admin, v.ID, vuln.AssessRequest{SSVC: in})
	if err != nil {
		e.t.Fatalf("assess: %v", err)
	}
	return out
}

func (e *env) acceptRisk(v vuln.Vulnerability, expires time.Time) vuln.Vulnerability {
	e.t.Helper()
	out, err := e.svc.AcceptRisk(e.ctx, e.admin, v.ID, vuln.AcceptRiskRequest{ApproverID: e.users["dave"].ID,
		Justification: "compensating firewall rule", ExpiresAt: expires})
	if err != nil {
		e.t.Fatalf("accept risk: %v", err)
	}
	return out
}

// at returns a vulnerability driven to stage through legal transitions.
func (e *env) at(stage vuln.Stage) vuln.Vulnerability {
	e.t.Helper()
	switch stage {
	case vuln.Received:
		return e.received()
	case vuln.Acknowledged:
		return e.move(e.received(), vuln.Acknowledged)
	case vuln.Triaging:
		return e.imported()
	case vuln.Confirmed:
		return e.move(e.assess(e.imported(), ssvcDefer), vuln.Confirmed)
	case vuln.Rejected, vuln.Duplicate:
		return e.move(e.imported(), stage)
	case vuln.Remediation:
		return e.move(e.at(vuln.Confirmed), vuln.Remediation)
	case vuln.RiskAccepted:
		return e.acceptRisk(e.at(vuln.Remediation), e.clk.Now().Add(30*vuln.Day))
	case vuln.FixReleased:
		return e.move(e.at(vuln.Remediation), vuln.FixReleased)
	case vuln.Disclosed:
		return e.move(e.at(vuln.FixReleased), vuln.Disclosed)
	case vuln.Closed:
		return e.move(e.at(vuln.Disclosed), vuln.Closed)
	}
	e.t.Fatalf("no path to %s", stage)
	return vuln.Vulnerability{}
}

// events returns the organization's audit events of action (all if "").
func (e *env) events(action string) []audit.Event {
	e.t.Helper()
	var out []audit.Event
	err := e.db.Read(e.ctx, func(tx *store.Tx) error {
		return tx.ScanAudit(e.ctx, e.org.ID, func(ev audit.Event) error {
			if action == "" || ev.Action == action {
				out = append(out, ev)
			}
			return nil
		})
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

func details(t *testing.T, ev audit.Event) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(ev.Details, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func wantKind(t *testing.T, err error, k problem.Kind, what string) {
	t.Helper()
	if !problem.Is(err, k) {
		t.Fatalf("%s: got %v, want kind %d", what, err, k)
	}
}

func wantField(t *testing.T, err error, field, what string) {
	t.Helper()
	var pe *problem.Error
	if !errors.As(err, &pe) || pe.Kind != problem.KindInvalid || len(pe.Fields) == 0 || pe.Fields[0].Field != field {
		t.Fatalf("%s: got %v, want an invalid %s", what, err, field)
	}
}

func forEachDialect(t *testing.T, fn func(t *testing.T, e *env)) {
	for _, d := range storetest.Dialects(t) {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			fn(t, newEnv(t, d))
		})
	}
}

// legal is the transition table as this test states it, independently of
// the implementation's.
var legal = map[vuln.Stage][]vuln.Stage{
	vuln.Received:     {vuln.Acknowledged},
	vuln.Acknowledged: {vuln.Triaging},
	vuln.Triaging:     {vuln.Confirmed, vuln.Rejected, vuln.Duplicate},
	vuln.Confirmed:    {vuln.Remediation},
	vuln.Remediation:  {vuln.FixReleased, vuln.RiskAccepted},
	vuln.RiskAccepted: {vuln.Remediation},
	vuln.FixReleased:  {vuln.Disclosed},
	vuln.Disclosed:    {vuln.Closed},
	vuln.Rejected:     {vuln.Closed, vuln.Triaging},
	vuln.Duplicate:    {vuln.Closed, vuln.Triaging},
	vuln.Closed:       {vuln.Triaging, vuln.Remediation},
}

// TestEveryTransition tries every (from, to) pair of stages: legal ones
// succeed and are audited with from, to and reason; illegal ones are a
// Conflict naming the current stage and the allowed next ones, and change
// nothing.
func TestEveryTransition(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		done := 0
		for _, from := range vuln.Stages {
			if got := from.Next(); !slices.Equal(got, legal[from]) {
				t.Fatalf("%s.Next() = %v, want %v", from, got, legal[from])
			}
			v := e.at(from)
			for _, to := range vuln.Stages {
				if slices.Contains(legal[from], to) {
					continue
				}
				before := len(e.events("vulnerability.transition"))
				_, err := e.svc.Transition(e.ctx, e.admin, v.ID, vuln.TransitionRequest{To: to, Reason: "try"})
				wantKind(t, err, problem.KindConflict, fmt.Sprintf("%s → %s", from, to))
				var next []string
				for _, n := range legal[from] {
					next = append(next, string(n))
				}
				if msg := err.Error(); !strings.Contains(msg, "is "+string(from)+";") || !strings.Contains(msg, "only to "+strings.Join(next, ", ")) {
					t.Fatalf("%s → %s: message %q does not name the stage and %v", from, to, msg, next)
				}
				if got := e.get(v.ID); got.Stage != from || len(e.events("vulnerability.transition")) != before {
					t.Fatalf("%s → %s: a refused transition changed something", from, to)
				}
			}
			for _, to := range legal[from] {
				v := e.at(from)
				if to == vuln.RiskAccepted || from == vuln.RiskAccepted {
					// Only through AcceptRisk / RevokeRiskAcceptance (TestRiskAcceptance).
					_, err := e.svc.Transition(e.ctx, e.admin, v.ID, vuln.TransitionRequest{To: to, Reason: "try"})
					wantKind(t, err, problem.KindConflict, fmt.Sprintf("plain %s → %s", from, to))
					continue
				}
				if to == vuln.Confirmed {
					v = e.assess(v, ssvcDefer) // confirming needs a priority (TestTransitionRules)
				}
				got := e.move(v, to)
				done++
				if got.StageReason != "because "+string(to) || !got.StageChangedAt.Equal(e.clk.Now()) {
					t.Fatalf("%s → %s: reason %q at %v", from, to, got.StageReason, got.StageChangedAt)
				}
				evs := e.events("vulnerability.transition")
				d := details(t, evs[len(evs)-1])
				if evs[len(evs)-1].TargetID != v.ID || d["from"] != string(from) || d["to"] != string(to) || d["reason"] != "because "+string(to) {
					t.Fatalf("%s → %s audited as %v", from, to, d)
				}
			}
		}
		if done < 15 {
			t.Fatalf("only %d legal transitions exercised", done)
		}
	})
}

// TestTransitionRules covers what a transition needs besides being legal.
func TestTransitionRules(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		tr := func(v vuln.Vulnerability, req vuln.TransitionRequest) error {
			_, err := e.svc.Transition(e.ctx, e.admin, v.ID, req)
			return err
		}
		v := e.imported()
		wantField(t, tr(v, vuln.TransitionRequest{To: vuln.Rejected}), "reason", "reject without a reason")
		wantField(t, tr(v, vuln.TransitionRequest{To: vuln.Duplicate}), "duplicate_of", "duplicate of nothing")
		wantField(t, tr(v, vuln.TransitionRequest{To: vuln.Duplicate, DuplicateOf: v.ID}), "duplicate_of", "duplicate of itself")
		wantField(t, tr(v, vuln.TransitionRequest{To: vuln.Duplicate, DuplicateOf: id.New()}), "duplicate_of", "duplicate of an unknown id")
		wantField(t, tr(v, vuln.TransitionRequest{To: vuln.Confirmed, DuplicateOf: v.ID}), "duplicate_of", "duplicate_of on confirm")
		wantField(t, tr(v, vuln.TransitionRequest{To: "fixed"}), "to", "unknown stage")
		wantKind(t, tr(v, vuln.TransitionRequest{To: vuln.Confirmed}), problem.KindConflict, "confirm before assessment")
		auditor := e.admin
		auditor.Role = access.RoleAuditor
		_, err := e.svc.Transition(e.ctx, auditor, v.ID, vuln.TransitionRequest{To: vuln.Rejected, Reason: "x"})
		wantKind(t, err, problem.KindForbidden, "auditor transition")
		_, err = e.svc.Transition(e.ctx, e.admin, "GHSA-none", vuln.TransitionRequest{To: vuln.Rejected, Reason: "x"})
		wantKind(t, err, problem.KindNotFound, "unknown vulnerability")

		// A vulnerability of another organization is not found.
		otherP := e.principal("bob")
		_, err = e.svc.Transition(e.ctx, otherP, v.ID, vuln.TransitionRequest{To: vuln.Rejected, Reason: "x"})
		wantKind(t, err, problem.KindNotFound, "another org's vulnerability")
		// Nor can it be named as the original of a duplicate.
		foreign, _, err := e.svc.ImportOSV(e.ctx, otherP, osvRecord("FOREIGN-1"))
		if err != nil {
			t.Fatal(err)
		}
		wantField(t, tr(v, vuln.TransitionRequest{To: vuln.Duplicate, DuplicateOf: foreign.ID}), "duplicate_of", "duplicate of another org's")

		// Duplicate by vuln_id; a duplicate's duplicate must name the original.
		orig := e.imported()
		dup, err := e.svc.Transition(e.ctx, e.admin, v.ID, vuln.TransitionRequest{To: vuln.Duplicate, DuplicateOf: orig.VulnID})
		if err != nil || dup.DuplicateOf != orig.ID || dup.SLA.Triage.State != vuln.StateMet {
			t.Fatalf("duplicate: %+v %v", dup, err)
		}
		third := e.imported()
		wantField(t, tr(third, vuln.TransitionRequest{To: vuln.Duplicate, DuplicateOf: v.ID}), "duplicate_of", "duplicate of a duplicate")
		// Re-opening needs a reason and forgets the duplicate link.
		wantField(t, tr(dup, vuln.TransitionRequest{To: vuln.Triaging}), "reason", "re-open without a reason")
		re, err := e.svc.Transition(e.ctx, e.admin, v.ID, vuln.TransitionRequest{To: vuln.Triaging, Reason: "not the same bug after all"})
		if err != nil || re.DuplicateOf != "" || re.SLA.Triage.State != vuln.StateRunning || !re.SLA.Triage.Start.Equal(e.clk.Now()) {
			t.Fatalf("re-open: %+v %v", re, err)
		}

		// A closed vulnerability re-opens to remediation only if it was
		// confirmed once; the remediation clock starts afresh.
		closedRejected := e.move(e.move(e.imported(), vuln.Rejected), vuln.Closed)
		wantKind(t, tr(closedRejected, vuln.TransitionRequest{To: vuln.Remediation, Reason: "x"}), problem.KindConflict, "re-open never-confirmed to remediation")
		closed := e.at(vuln.Closed)
		e.clk.Advance(time.Hour)
		wantField(t, tr(closed, vuln.TransitionRequest{To: vuln.Remediation}), "reason", "re-open closed without a reason")
		back, err := e.svc.Transition(e.ctx, e.admin, closed.ID, vuln.TransitionRequest{To: vuln.Remediation, Reason: "fix incomplete"})
		if err != nil || back.SLA.Remediation.State != vuln.StateRunning || !back.SLA.Remediation.Start.Equal(e.clk.Now()) {
			t.Fatalf("re-open to remediation: %+v %v", back.SLA.Remediation, err)
		}
	})
}

// TestClocks follows the SLA clocks of a reported vulnerability: default
// class before assessment, the assessed class after, each clock counted
// from its own start, and running / met / breached states.
func TestClocks(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		pol := vuln.DefaultPolicy()
		def := pol.Classes[pol.DefaultClass]
		v := e.received()
		start := clock.Norm(t0)
		if v.SLA.Class != pol.DefaultClass || !v.ReceivedAt.Equal(start) || !v.SLA.Acknowledge.Due.Equal(start.Add(def.Acknowledge.D())) ||
			v.SLA.Acknowledge.State != vuln.StateRunning || v.SLA.Triage != nil || v.SLA.Remediation != nil {
			t.Fatalf("new report clocks: %+v", v.SLA)
		}
		if v.Escalation.Deadline != "acknowledge" || !v.Escalation.DueAt.Equal(*v.SLA.Acknowledge.Due) {
			t.Fatalf("watched: %+v", v.Escalation)
		}
		e.clk.Advance(def.Acknowledge.D() + time.Second)
		if got := e.get(v.ID); got.SLA.Acknowledge.State != vuln.StateBreached {
			t.Fatalf("ack past due: %+v", got.SLA.Acknowledge)
		}
		v = e.move(v, vuln.Acknowledged)
		ackAt := e.clk.Now()
		if v.SLA.Acknowledge.State != vuln.StateBreached || !v.SLA.Acknowledge.MetAt.Equal(ackAt) {
			t.Fatalf("late acknowledgement must stay breached: %+v", v.SLA.Acknowledge)
		}
		if !v.SLA.Triage.Start.Equal(ackAt) || !v.SLA.Triage.Due.Equal(ackAt.Add(def.Triage.D())) {
			t.Fatalf("triage counts from acknowledgement: %+v", v.SLA.Triage)
		}
		e.clk.Advance(time.Hour)
		v = e.move(v, vuln.Triaging)
		// Assessed immediate: the running triage clock is re-planned from
		// the same start with the immediate deadline; the met
		// acknowledgement keeps the due date it was judged against.
		v, err := e.svc.Assess(e.ctx, e.admin, v.ID, vuln.AssessRequest{SSVC: ssvcDefer, PriorityOverride: scoring.Immediate, OverrideReason: "fleet-wide exposure"})
		if err != nil {
			t.Fatal(err)
		}
		imm := pol.Classes[scoring.Immediate]
		if v.Priority != scoring.Immediate || v.SLA.Class != scoring.Immediate || !v.SLA.Triage.Due.Equal(ackAt.Add(imm.Triage.D())) ||
			!v.SLA.Acknowledge.Due.Equal(start.Add(def.Acknowledge.D())) || v.SLA.Acknowledge.State != vuln.StateBreached {
			t.Fatalf("after assessment: %s %+v", v.Priority, v.SLA)
		}
		e.clk.Advance(time.Hour)
		v = e.move(v, vuln.Confirmed)
		confirmedAt := e.clk.Now()
		if v.SLA.Triage.State != vuln.StateMet || !v.SLA.Remediation.Start.Equal(confirmedAt) ||
			!v.SLA.Remediation.Due.Equal(confirmedAt.Add(imm.Remediation.D())) || v.Escalation.Deadline != "remediation" {
			t.Fatalf("after confirmation: %+v %+v", v.SLA, v.Escalation)
		}
		v = e.move(v, vuln.Remediation)
		e.clk.Advance(24 * time.Hour)
		v = e.move(v, vuln.FixReleased)
		if v.SLA.Remediation.State != vuln.StateMet || !v.FixReleasedAt.Equal(e.clk.Now()) || v.Escalation.DueAt != nil || v.Escalation.NextAt != nil {
			t.Fatalf("after the fix: %+v %+v", v.SLA.Remediation, v.Escalation)
		}

		// Defer has no remediation deadline: the clock runs without one.
		d := e.move(e.assess(e.imported(), ssvcDefer), vuln.Confirmed)
		if d.Priority != scoring.Defer || d.SLA.Remediation.Due != nil || d.SLA.Remediation.State != vuln.StateRunning || d.Escalation.NextAt != nil {
			t.Fatalf("defer: %+v %+v", d.SLA.Remediation, d.Escalation)
		}
	})
}

// TestAssessment covers CVSS, SSVC, known exploitation, cost and the
// upward-only override, and that refused assessments change nothing.
func TestAssessment(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		v := e.imported()
		const v31 = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"
		const v40 = "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"
		assess := func(req vuln.AssessRequest) (vuln.Vulnerability, error) {
			return e.svc.Assess(e.ctx, e.admin, v.ID, req)
		}
		low := scoring.SSVC{Exploitation: scoring.ExploitationNone, Exposure: scoring.ExposureSmall, HumanImpact: scoring.HumanImpactLow}
		_, err := assess(vuln.AssessRequest{SSVC: low, CVSS: []string{"CVSS:3.1/AV:N"}})
		wantField(t, err, "cvss[0]", "truncated vector")
		_, err = assess(vuln.AssessRequest{SSVC: low, CVSS: []string{v31, "CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}})
		wantField(t, err, "cvss[1]", "two 3.x vectors")
		_, err = assess(vuln.AssessRequest{SSVC: scoring.SSVC{Exploitation: "rumoured", Exposure: scoring.ExposureOpen, HumanImpact: scoring.HumanImpactLow}})
		wantField(t, err, "ssvc", "unknown exploitation")
		_, err = assess(vuln.AssessRequest{SSVC: ssvcImmediate, PriorityOverride: scoring.Scheduled, OverrideReason: "cheaper"})
		wantField(t, err, "priority_override", "override downward")
		_, err = assess(vuln.AssessRequest{SSVC: low, PriorityOverride: scoring.Immediate})
		wantField(t, err, "override_reason", "override without a reason")
		_, err = assess(vuln.AssessRequest{SSVC: low, Cost: &scoring.Cost{BrickRisk: 2}})
		wantField(t, err, "cost.brick_risk", "brick risk above 1")
		_, err = assess(vuln.AssessRequest{SSVC: low, AwareAt: ptrTime(e.clk.Now())})
		wantField(t, err, "aware_at", "aware_at without exploitation")
		_, err = e.svc.Assess(e.ctx, e.principal("oscar"), v.ID, vuln.AssessRequest{SSVC: low})
		wantKind(t, err, problem.KindForbidden, "operator assessment")
		if got := e.get(v.ID); got.Assessment != nil || got.Priority != "" || len(e.events("vulnerability.assess")) != 0 {
			t.Fatalf("refused assessments left %+v", got.Assessment)
		}

		cost := &scoring.Cost{Bytes: 3 << 20, EnergyMWh: 12.5, Downtime: 90 * time.Second, BrickRisk: 0.001}
		got, err := assess(vuln.AssessRequest{SSVC: low, CVSS: []string{v31, v40}, Cost: cost, PriorityOverride: scoring.OutOfCycle, OverrideReason: "customer escalation"})
		if err != nil {
			t.Fatal(err)
		}
		a := got.Assessment
		if got.Priority != scoring.OutOfCycle || a.SSVCPriority != scoring.Defer || a.Override != scoring.OutOfCycle ||
			len(a.CVSS) != 2 || a.CVSS[0].BaseScore != 9.8 || a.CVSS[0].Severity != "critical" || a.CVSS[1].Version != "4.0" ||
			*a.Cost != *cost || a.AssessedBy.Name != "alice@acme.example" || !a.AssessedAt.Equal(e.clk.Now()) || got.KnownExploited || got.CRA != nil {
			t.Fatalf("assessment: %s %+v", got.Priority, a)
		}
		if reread := e.get(v.ID); reread.Assessment.CVSS[1].BaseScore != a.CVSS[1].BaseScore || reread.Priority != scoring.OutOfCycle {
			t.Fatalf("stored assessment: %+v", reread.Assessment)
		}
		evs := e.events("vulnerability.assess")
		if d := details(t, evs[0]); len(evs) != 1 || d["priority"] != "out-of-cycle" || d["ssvc_priority"] != "defer" || d["override_reason"] != "customer escalation" ||
			d["ssvc"].(map[string]any)["exposure"] != "small" || d["cvss"].([]any)[0].(map[string]any)["vector"] != v31 {
			t.Fatalf("assess audit: %v", d)
		}

		// Known exploited forces exploitation active in the inputs, which
		// raises the decision; and SSVC active means known exploited.
		got, err = assess(vuln.AssessRequest{SSVC: low, KnownExploited: true})
		if err != nil {
			t.Fatal(err)
		}
		forced := low
		forced.Exploitation = scoring.ExploitationActive
		if got.Assessment.SSVC != forced || got.Priority != scoring.Deployer(forced) || got.Priority.Rank() <= scoring.Defer.Rank() || !got.KnownExploited || got.CRA == nil {
			t.Fatalf("known exploited: %s %+v", got.Priority, got.Assessment)
		}
		// Never below the SSVC result, even for an override.
		_, err = assess(vuln.AssessRequest{SSVC: low, KnownExploited: true, PriorityOverride: scoring.Defer, OverrideReason: "no"})
		wantField(t, err, "priority_override", "override below a known-exploited decision")
		got, err = assess(vuln.AssessRequest{SSVC: ssvcImmediate})
		if err != nil || !got.KnownExploited || got.Priority != scoring.Immediate {
			t.Fatalf("SSVC active: %v %+v", err, got)
		}

		// Done vulnerabilities are not re-assessed until re-opened.
		r := e.move(e.imported(), vuln.Rejected)
		_, err = e.svc.Assess(e.ctx, e.admin, r.ID, vuln.AssessRequest{SSVC: low})
		wantKind(t, err, problem.KindConflict, "assess a rejected vulnerability")
	})
}

func ptrTime(t time.Time) *time.Time { return &t }

// TestOwnership validates owner, deputy and chain: active users of the
// organization whose role may triage, each once.
func TestOwnership(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		v := e.imported()
		u := e.users
		set := func(req vuln.OwnershipRequest) error {
			_, err := e.svc.SetOwnership(e.ctx, e.admin, v.ID, req)
			return err
		}
		good := vuln.OwnershipRequest{OwnerID: u["alice"].ID, DeputyID: u["dave"].ID, EscalationChain: []string{u["carol"].ID}}
		got, err := e.svc.SetOwnership(e.ctx, e.admin, v.ID, good)
		if err != nil || got.OwnerID != u["alice"].ID || got.DeputyID != u["dave"].ID || !slices.Equal(got.EscalationChain, good.EscalationChain) {
			t.Fatalf("set ownership: %+v %v", got, err)
		}
		bad := []struct {
			name  string
			req   vuln.OwnershipRequest
			field string
		}{
			{"user of another organization", vuln.OwnershipRequest{OwnerID: u["bob"].ID}, "owner_id"},
			{"unknown user", vuln.OwnershipRequest{OwnerID: id.New()}, "owner_id"},
			{"disabled user", vuln.OwnershipRequest{OwnerID: u["alice"].ID, DeputyID: u["dora"].ID}, "deputy_id"},
			{"operator may not triage", vuln.OwnershipRequest{OwnerID: u["oscar"].ID}, "owner_id"},
			{"release manager may not triage", vuln.OwnershipRequest{OwnerID: u["alice"].ID, EscalationChain: []string{u["carol"].ID, u["rita"].ID}}, "escalation_chain[1]"},
			{"twice on the ladder", vuln.OwnershipRequest{OwnerID: u["alice"].ID, EscalationChain: []string{u["alice"].ID}}, "escalation_chain[0]"},
			{"deputy without owner", vuln.OwnershipRequest{DeputyID: u["dave"].ID}, "owner_id"},
			{"empty chain entry", vuln.OwnershipRequest{OwnerID: u["alice"].ID, EscalationChain: []string{""}}, "escalation_chain[0]"},
			{"chain too long", vuln.OwnershipRequest{OwnerID: u["alice"].ID, EscalationChain: make([]string, 9)}, "escalation_chain"},
		}
		for _, c := range bad {
			wantField(t, set(c.req), c.field, c.name)
		}
		_, err = e.svc.SetOwnership(e.ctx, e.principal("oscar"), v.ID, good)
		wantKind(t, err, problem.KindForbidden, "operator sets ownership")
		if got := e.get(v.ID); got.OwnerID != u["alice"].ID || got.DeputyID != u["dave"].ID || !slices.Equal(got.EscalationChain, good.EscalationChain) {
			t.Fatalf("refused changes altered ownership: %+v", got)
		}
		evs := e.events("vulnerability.ownership")
		if len(evs) != 1 {
			t.Fatalf("%d ownership events, want 1", len(evs))
		}
		if d := details(t, evs[0]); d["to"].(map[string]any)["owner_id"] != u["alice"].ID || d["from"].(map[string]any)["owner_id"] != "" {
			t.Fatalf("ownership audit: %v", d)
		}
		// Clearing is allowed.
		if got, err := e.svc.SetOwnership(e.ctx, e.admin, v.ID, vuln.OwnershipRequest{}); err != nil || got.OwnerID != "" || len(got.EscalationChain) != 0 {
			t.Fatalf("clear: %+v %v", got, err)
		}
	})
}

// TestEscalation: a breached deadline escalates one level per interval up
// owner → deputy → chain, notifying each person by email, once per run
// however often it runs; a met deadline starts escalation over.
func TestEscalation(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		u := e.users
		pol := vuln.DefaultPolicy()
		interval := pol.EscalationInterval.D()
		v := e.imported()
		// Another vulnerability that never breaches must never be touched.
		quiet := e.move(e.assess(e.imported(), ssvcDefer), vuln.Confirmed)
		if _, err := e.svc.SetOwnership(e.ctx, e.admin, v.ID, vuln.OwnershipRequest{OwnerID: u["alice"].ID, DeputyID: u["dave"].ID,
			EscalationChain: []string{u["carol"].ID}}); err != nil {
			t.Fatal(err)
		}
		v, err := e.svc.Assess(e.ctx, e.admin, v.ID, vuln.AssessRequest{SSVC: ssvcDefer, PriorityOverride: scoring.Immediate, OverrideReason: "fleet-wide"})
		if err != nil {
			t.Fatal(err)
		}
		due := *v.SLA.Triage.Due
		run := func(want int) {
			t.Helper()
			res, err := e.svc.RunEscalations(e.ctx, e.clk.Now())
			if err != nil || res.Escalated != want || res.Expired != 0 {
				t.Fatalf("run at +%v: %+v %v, want %d escalated", e.clk.Now().Sub(due), res, err, want)
			}
		}
		// Not yet due: nothing, however often.
		e.clk.Advance(due.Sub(e.clk.Now()))
		run(0)
		if msgs := e.notes.take(); len(msgs) != 0 {
			t.Fatalf("notified before the deadline: %v", msgs)
		}
		steps := []struct {
			name  string
			level int
		}{{"alice", 1}, {"dave", 2}, {"carol", 3}}
		for i, step := range steps {
			if i == 0 {
				e.clk.Advance(time.Microsecond)
			} else {
				e.clk.Advance(interval - time.Hour)
				run(0) // before the interval has passed
				e.clk.Advance(time.Hour + time.Microsecond)
			}
			run(1)
			run(0) // idempotent at the same instant
			msgs := e.notes.take()
			if len(msgs) != 1 {
				t.Fatalf("level %d: %d messages", step.level, len(msgs))
			}
			m := msgs[0]
			n, ok := m.Data.(vuln.EscalationNotice)
			if m.Type != "vulnerability.escalated" || m.OrgID != e.org.ID || !slices.Equal(m.To, []string{step.name + "@acme.example"}) ||
				!ok || n.Level != step.level || n.Deadline != "triage" || !n.DueAt.Equal(due) || n.UserID != u[step.name].ID ||
				!strings.Contains(m.Subject, v.VulnID) {
				t.Fatalf("level %d message: %+v", step.level, m)
			}
			got := e.get(v.ID)
			if got.Escalation.Level != step.level || !got.Escalation.EscalatedAt.Equal(e.clk.Now()) || got.SLA.Triage.State != vuln.StateBreached {
				t.Fatalf("after level %d: %+v", step.level, got.Escalation)
			}
		}
		// The ladder is exhausted: no further escalation.
		if got := e.get(v.ID); got.Escalation.NextAt != nil {
			t.Fatalf("exhausted ladder still schedules: %+v", got.Escalation)
		}
		e.clk.Advance(10 * interval)
		run(0)
		evs := e.events("vulnerability.escalate")
		if len(evs) != 3 {
			t.Fatalf("%d escalation events", len(evs))
		}
		for i, ev := range evs {
			d := details(t, ev)
			if ev.Actor != access.System("escalation") || ev.TargetID != v.ID || d["level"] != float64(i+1) || d["email"] != steps[i].name+"@acme.example" || d["deadline"] != "triage" {
				t.Fatalf("escalation event %d: %+v %v", i, ev.Actor, d)
			}
		}
		if got := e.get(quiet.ID); got.Escalation.Level != 0 || got.Escalation.EscalatedAt != nil {
			t.Fatalf("a vulnerability without a breach was escalated: %+v", got.Escalation)
		}

		// Meeting the deadline starts over: confirming watches the
		// remediation deadline at level 0.
		got := e.move(v, vuln.Confirmed)
		if got.Escalation.Level != 0 || got.Escalation.Deadline != "remediation" || !got.Escalation.NextAt.Equal(*got.SLA.Remediation.Due) {
			t.Fatalf("after confirming: %+v", got.Escalation)
		}
	})
}

// TestEscalationLadderGaps: people disabled since being named are skipped,
// and a vulnerability without owner escalates once to the organization's
// subscriptions (a message with no direct recipient).
func TestEscalationLadderGaps(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		u := e.users
		v := e.received()
		if _, err := e.svc.SetOwnership(e.ctx, e.admin, v.ID, vuln.OwnershipRequest{OwnerID: u["alice"].ID, DeputyID: u["dave"].ID,
			EscalationChain: []string{u["carol"].ID}}); err != nil {
			t.Fatal(err)
		}
		orphan := e.received()
		err := e.db.Write(e.ctx, func(tx *store.Tx) error { return tx.DisableUser(e.ctx, e.org.ID, u["alice"].ID, e.clk.Now()) })
		if err != nil {
			t.Fatal(err)
		}
		e.clk.Advance(vuln.DefaultPolicy().Classes[vuln.DefaultPolicy().DefaultClass].Acknowledge.D() + time.Second)
		res, err := e.svc.RunEscalations(e.ctx, e.clk.Now())
		if err != nil || res.Escalated != 2 {
			t.Fatalf("run: %+v %v", res, err)
		}
		byVuln := map[string]notify.Message{}
		for _, m := range e.notes.take() {
			byVuln[m.Data.(vuln.EscalationNotice).VulnerabilityID] = m
		}
		if m := byVuln[v.ID]; !slices.Equal(m.To, []string{"dave@acme.example"}) || m.Data.(vuln.EscalationNotice).Level != 2 ||
			m.Data.(vuln.EscalationNotice).Deadline != "acknowledge" {
			t.Fatalf("disabled owner not skipped: %+v", m)
		}
		if m := byVuln[orphan.ID]; len(m.To) != 0 || m.Data.(vuln.EscalationNotice).Level != 1 || m.Type != "vulnerability.escalated" {
			t.Fatalf("ownerless escalation: %+v", m)
		}
		if got := e.get(orphan.ID); got.Escalation.Level != 1 || got.Escalation.NextAt != nil {
			t.Fatalf("ownerless escalation goes on: %+v", got.Escalation)
		}
		// Naming an owner later gives the ladder another rung.
		got, err := e.svc.SetOwnership(e.ctx, e.admin, orphan.ID, vuln.OwnershipRequest{OwnerID: u["carol"].ID, DeputyID: u["dave"].ID})
		if err != nil || got.Escalation.NextAt == nil || !got.Escalation.NextAt.Equal(got.Escalation.EscalatedAt.Add(vuln.DefaultPolicy().EscalationInterval.D())) {
			t.Fatalf("new ladder: %+v %v", got.Escalation, err)
		}
	})
}

// TestConcurrentEscalation: runners on two goroutines (replicas) escalate
// each breached vulnerability exactly once and notify once.
func TestConcurrentEscalation(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		const n = 6
		ids := map[string]bool{}
		for range n {
			v := e.received()
			if _, err := e.svc.SetOwnership(e.ctx, e.admin, v.ID, vuln.OwnershipRequest{OwnerID: e.users["carol"].ID}); err != nil {
				t.Fatal(err)
			}
			ids[v.ID] = true
		}
		e.clk.Advance(30 * vuln.Day)
		now := e.clk.Now()
		var wg sync.WaitGroup
		results := make([]vuln.SweepResult, 4)
		errs := make([]error, 4)
		for i := range results {
			wg.Go(func() { results[i], errs[i] = e.svc.RunEscalations(e.ctx, now) })
		}
		wg.Wait()
		total := 0
		for i, r := range results {
			if errs[i] != nil {
				t.Fatalf("runner %d: %v", i, errs[i])
			}
			total += r.Escalated
		}
		msgs := e.notes.take()
		if total != n || len(msgs) != n || len(e.events("vulnerability.escalate")) != n {
			t.Fatalf("escalated %d, notified %d, audited %d; want %d each", total, len(msgs), len(e.events("vulnerability.escalate")), n)
		}
		for _, m := range msgs {
			id := m.Data.(vuln.EscalationNotice).VulnerabilityID
			if !ids[id] {
				t.Fatalf("vulnerability %s notified twice or unknown", id)
			}
			delete(ids, id)
		}
	})
}

// TestRiskAcceptance: who may accept, the bounds of an acceptance, and an
// expired acceptance returning the vulnerability to remediation.
func TestRiskAcceptance(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		u := e.users
		v := e.at(vuln.Remediation)
		if _, err := e.svc.SetOwnership(e.ctx, e.admin, v.ID, vuln.OwnershipRequest{OwnerID: u["carol"].ID}); err != nil {
			t.Fatal(err)
		}
		now := e.clk.Now()
		ok := vuln.AcceptRiskRequest{ApproverID: u["dave"].ID, Justification: "segmented network; vendor patch pending", ExpiresAt: now.Add(90 * vuln.Day)}
		accept := func(p access.Principal, edit func(r *vuln.AcceptRiskRequest)) error {
			req := ok
			if edit != nil {
				edit(&req)
			}
			_, err := e.svc.AcceptRisk(e.ctx, p, v.ID, req)
			return err
		}
		wantKind(t, accept(e.principal("oscar"), nil), problem.KindForbidden, "operator accepts risk")
		wantKind(t, accept(e.principal("rita"), func(r *vuln.AcceptRiskRequest) { r.ApproverID = u["rita"].ID }), problem.KindForbidden, "release manager approves self")
		wantField(t, accept(e.admin, func(r *vuln.AcceptRiskRequest) { r.ApproverID = u["oscar"].ID }), "approver_id", "operator as approver")
		wantField(t, accept(e.admin, func(r *vuln.AcceptRiskRequest) { r.ApproverID = u["bob"].ID }), "approver_id", "approver of another org")
		wantField(t, accept(e.admin, func(r *vuln.AcceptRiskRequest) { r.ApproverID = u["dora"].ID }), "approver_id", "disabled approver")
		wantField(t, accept(e.admin, func(r *vuln.AcceptRiskRequest) { r.ApproverID = "" }), "approver_id", "no approver")
		wantField(t, accept(e.admin, func(r *vuln.AcceptRiskRequest) { r.Justification = "  " }), "justification", "no justification")
		wantField(t, accept(e.admin, func(r *vuln.AcceptRiskRequest) { r.ExpiresAt = time.Time{} }), "expires_at", "no expiry")
		wantField(t, accept(e.admin, func(r *vuln.AcceptRiskRequest) { r.ExpiresAt = now.Add(-time.Second) }), "expires_at", "past expiry")
		wantField(t, accept(e.admin, func(r *vuln.AcceptRiskRequest) { r.ExpiresAt = now.Add(366 * vuln.Day) }), "expires_at", "expiry beyond a year")
		triaging := e.imported()
		_, err := e.svc.AcceptRisk(e.ctx, e.admin, triaging.ID, ok)
		wantKind(t, err, problem.KindConflict, "accept risk while triaging")
		if got := e.get(v.ID); got.Stage != vuln.Remediation || got.RiskAcceptance != nil || len(e.events("vulnerability.risk_accept")) != 0 {
			t.Fatalf("refused acceptances changed %+v", got)
		}

		// The caller (alice) records dave's approval.
		got, err := e.svc.AcceptRisk(e.ctx, e.admin, v.ID, ok)
		if err != nil {
			t.Fatal(err)
		}
		ra := got.RiskAcceptance
		if got.Stage != vuln.RiskAccepted || ra.ApproverID != u["dave"].ID || ra.ApproverEmail != "dave@acme.example" || ra.AcceptedBy.Name != "alice@acme.example" ||
			!ra.ExpiresAt.Equal(clock.Norm(ok.ExpiresAt)) || got.SLA.Remediation.State != vuln.StateMet || got.Escalation.NextAt != nil {
			t.Fatalf("accepted: %+v %+v", got, ra)
		}
		if d := details(t, e.events("vulnerability.risk_accept")[0]); d["approver_id"] != u["dave"].ID || d["justification"] != ok.Justification {
			t.Fatalf("accept audit: %v", d)
		}

		// Expiry: nothing the moment before, back to remediation at it.
		e.clk.Advance(ok.ExpiresAt.Sub(e.clk.Now()) - time.Second)
		if res, err := e.svc.RunEscalations(e.ctx, e.clk.Now()); err != nil || res.Expired != 0 {
			t.Fatalf("early sweep: %+v %v", res, err)
		}
		e.clk.Advance(time.Second)
		res, err := e.svc.RunEscalations(e.ctx, e.clk.Now())
		if err != nil || res.Expired != 1 {
			t.Fatalf("sweep: %+v %v", res, err)
		}
		if res, _ := e.svc.RunEscalations(e.ctx, e.clk.Now()); res.Expired != 0 {
			t.Fatal("an acceptance expired twice")
		}
		got = e.get(v.ID)
		fix := vuln.DefaultPolicy().Classes[got.Priority].Remediation.D()
		if got.Stage != vuln.Remediation || got.RiskAcceptance.EndReason != "expired" || !got.RiskAcceptance.EndedAt.Equal(e.clk.Now()) ||
			!got.SLA.Remediation.Start.Equal(e.clk.Now()) || got.SLA.Remediation.State != vuln.StateRunning ||
			(fix > 0) != (got.SLA.Remediation.Due != nil) {
			t.Fatalf("after expiry: %s %+v %+v", got.Stage, got.RiskAcceptance, got.SLA.Remediation)
		}
		evs := e.events("vulnerability.risk_expire")
		if len(evs) != 1 || evs[0].Actor != access.System("risk-expiry") {
			t.Fatalf("expiry audit: %+v", evs)
		}
		var msgs []notify.Message
		for _, m := range e.notes.take() {
			if m.Type != "vulnerability.escalated" { // the ownerless triaging one breached its triage clock meanwhile
				msgs = append(msgs, m)
			}
		}
		if len(msgs) != 1 || msgs[0].Type != "vulnerability.risk_expired" || !slices.Equal(msgs[0].To, []string{"carol@acme.example", "dave@acme.example"}) {
			t.Fatalf("expiry notice: %+v", msgs)
		}

		// Revoking: only with risk.accept and a reason; fresh remediation clock.
		e.acceptRisk(got, e.clk.Now().Add(vuln.Day))
		_, err = e.svc.RevokeRiskAcceptance(e.ctx, e.principal("oscar"), v.ID, vuln.RevokeRiskRequest{Reason: "x"})
		wantKind(t, err, problem.KindForbidden, "operator revokes")
		_, err = e.svc.RevokeRiskAcceptance(e.ctx, e.admin, v.ID, vuln.RevokeRiskRequest{})
		wantField(t, err, "reason", "revoke without a reason")
		e.clk.Advance(time.Hour)
		got, err = e.svc.RevokeRiskAcceptance(e.ctx, e.admin, v.ID, vuln.RevokeRiskRequest{Reason: "exploit published"})
		if err != nil || got.Stage != vuln.Remediation || got.RiskAcceptance.EndReason != "revoked" || got.RiskAcceptance.RevokeReason != "exploit published" ||
			!got.SLA.Remediation.Start.Equal(e.clk.Now()) {
			t.Fatalf("revoke: %+v %v", got.RiskAcceptance, err)
		}
		_, err = e.svc.RevokeRiskAcceptance(e.ctx, e.admin, v.ID, vuln.RevokeRiskRequest{Reason: "again"})
		wantKind(t, err, problem.KindConflict, "revoke twice")
		// A revoked acceptance does not expire later.
		e.clk.Advance(2 * vuln.Day)
		if res, err := e.svc.RunEscalations(e.ctx, e.clk.Now()); err != nil || res.Expired != 0 {
			t.Fatalf("revoked acceptance expired: %+v %v", res, err)
		}
	})
}

// TestCRAClocks: awareness of active exploitation starts the 24 h and
// 72 h clocks; the final report is due 14 days after the fix; reports go
// in order, once each, audited; a breached CRA deadline escalates.
func TestCRAClocks(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		v := e.imported()
		if _, err := e.svc.SetOwnership(e.ctx, e.admin, v.ID, vuln.OwnershipRequest{OwnerID: e.users["carol"].ID}); err != nil {
			t.Fatal(err)
		}
		submit := func(report string, at *time.Time) (vuln.Vulnerability, error) {
			return e.svc.SubmitCRAReport(e.ctx, e.admin, v.ID, vuln.CRASubmission{Report: report, SubmittedAt: at, Reference: "ENISA-" + report})
		}
		_, err := submit(vuln.ReportEarlyWarning, nil)
		wantKind(t, err, problem.KindConflict, "CRA report without exploitation")

		aware := e.clk.Now().Add(-2 * time.Hour)
		_, err = e.svc.Assess(e.ctx, e.admin, v.ID, vuln.AssessRequest{SSVC: ssvcDefer, KnownExploited: true, AwareAt: ptrTime(e.clk.Now().Add(time.Hour))})
		wantField(t, err, "aware_at", "awareness in the future")
		v, err = e.svc.Assess(e.ctx, e.admin, v.ID, vuln.AssessRequest{SSVC: ssvcDefer, KnownExploited: true, AwareAt: &aware})
		if err != nil {
			t.Fatal(err)
		}
		c := v.CRA
		if c == nil || !c.Applies || !c.AwareAt.Equal(clock.Norm(aware)) || !c.EarlyWarning.Due.Equal(c.AwareAt.Add(24*time.Hour)) ||
			!c.Notification.Due.Equal(c.AwareAt.Add(72*time.Hour)) || c.FinalReport.State != vuln.StatePending || c.FinalReport.Due != nil ||
			c.EarlyWarning.State != vuln.StateRunning {
			t.Fatalf("CRA clocks: %+v", c)
		}
		if v.Escalation.Deadline != "cra_early_warning" {
			t.Fatalf("watching %q, want the early warning (earlier than triage)", v.Escalation.Deadline)
		}
		_, err = submit(vuln.ReportNotification, nil)
		wantKind(t, err, problem.KindConflict, "notification before early warning")
		_, err = submit(vuln.ReportFinal, nil)
		wantKind(t, err, problem.KindConflict, "final report before a fix")
		_, err = submit("summary", nil)
		wantField(t, err, "report", "unknown report")
		_, err = submit(vuln.ReportEarlyWarning, ptrTime(aware.Add(-time.Hour)))
		wantField(t, err, "submitted_at", "submitted before awareness")

		// The early warning is late: breached, escalated, then submitted
		// late (and stays breached).
		e.clk.Advance(23 * time.Hour)
		res, err := e.svc.RunEscalations(e.ctx, e.clk.Now())
		if err != nil || res.Escalated != 1 {
			t.Fatalf("run: %+v %v", res, err)
		}
		msgs := e.notes.take()
		if len(msgs) != 1 || msgs[0].Data.(vuln.EscalationNotice).Deadline != "cra_early_warning" || !slices.Equal(msgs[0].To, []string{"carol@acme.example"}) {
			t.Fatalf("CRA escalation: %+v", msgs)
		}
		v, err = submit(vuln.ReportEarlyWarning, nil)
		if err != nil || v.CRA.EarlyWarning.State != vuln.StateBreached || v.CRA.EarlyWarning.Reference != "ENISA-early-warning" ||
			v.CRA.EarlyWarning.SubmittedBy.Name != "alice@acme.example" {
			t.Fatalf("late early warning: %+v %v", v.CRA.EarlyWarning, err)
		}
		if v.Escalation.Deadline != "cra_notification" || v.Escalation.Level != 0 {
			t.Fatalf("next watched: %+v", v.Escalation)
		}
		_, err = submit(vuln.ReportEarlyWarning, nil)
		wantKind(t, err, problem.KindConflict, "early warning twice")
		// Awareness cannot move once reporting started.
		_, err = e.svc.Assess(e.ctx, e.admin, v.ID, vuln.AssessRequest{SSVC: ssvcDefer, KnownExploited: true, AwareAt: ptrTime(aware.Add(time.Hour))})
		wantKind(t, err, problem.KindConflict, "move awareness after reporting")

		e.clk.Advance(time.Hour)
		v, err = submit(vuln.ReportNotification, nil)
		if err != nil || v.CRA.Notification.State != vuln.StateMet {
			t.Fatalf("notification: %+v %v", v.CRA.Notification, err)
		}
		v = e.move(e.move(v, vuln.Confirmed), vuln.Remediation)
		v = e.move(v, vuln.FixReleased)
		fix := *v.FixReleasedAt
		if !v.CRA.FinalReport.Due.Equal(fix.Add(14*24*time.Hour)) || v.CRA.FinalReport.State != vuln.StateRunning || v.Escalation.Deadline != "cra_final_report" {
			t.Fatalf("final report clock: %+v %+v", v.CRA.FinalReport, v.Escalation)
		}
		e.clk.Advance(10 * vuln.Day)
		v, err = submit(vuln.ReportFinal, nil)
		if err != nil || v.CRA.FinalReport.State != vuln.StateMet || v.Escalation.NextAt != nil {
			t.Fatalf("final report: %+v %v", v.CRA.FinalReport, err)
		}
		evs := e.events("vulnerability.cra_submit")
		if len(evs) != 3 {
			t.Fatalf("%d CRA submissions audited", len(evs))
		}
		for i, want := range []string{vuln.ReportEarlyWarning, vuln.ReportNotification, vuln.ReportFinal} {
			if d := details(t, evs[i]); d["report"] != want || d["reference"] != "ENISA-"+want {
				t.Fatalf("CRA audit %d: %v", i, d)
			}
		}
	})
}

// TestFailedWriteLeavesNothing: when the audit append fails, the change
// it records is rolled back and nobody is notified.
func TestFailedWriteLeavesNothing(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		v := e.received()
		if _, err := e.svc.SetOwnership(e.ctx, e.admin, v.ID, vuln.OwnershipRequest{OwnerID: e.users["alice"].ID}); err != nil {
			t.Fatal(err)
		}
		before := e.get(v.ID)
		nEvents := len(e.events(""))

		e.failOn = "vulnerability.transition"
		if _, err := e.svc.Transition(e.ctx, e.admin, v.ID, vuln.TransitionRequest{To: vuln.Acknowledged}); err == nil {
			t.Fatal("transition succeeded without its audit record")
		}
		e.failOn = "vulnerability.assess"
		if _, err := e.svc.Assess(e.ctx, e.admin, v.ID, vuln.AssessRequest{SSVC: ssvcImmediate}); err == nil {
			t.Fatal("assessment succeeded without its audit record")
		}
		e.failOn = "vulnerability.import"
		if _, _, err := e.svc.ImportOSV(e.ctx, e.admin, osvRecord("LOST-1")); err == nil {
			t.Fatal("import succeeded without its audit record")
		}
		e.failOn = "vulnerability.escalate"
		e.clk.Advance(30 * vuln.Day)
		if _, err := e.svc.RunEscalations(e.ctx, e.clk.Now()); err == nil {
			t.Fatal("escalation succeeded without its audit record")
		}
		e.failOn = ""
		if msgs := e.notes.take(); len(msgs) != 0 {
			t.Fatalf("a rolled-back escalation notified: %+v", msgs)
		}
		after := e.get(v.ID)
		if after.Stage != before.Stage || after.Assessment != nil || after.CRA != nil || after.Escalation.Level != 0 ||
			!after.UpdatedAt.Equal(before.UpdatedAt) || len(e.events("")) != nEvents {
			t.Fatalf("failed writes left traces: %+v", after)
		}
		if _, err := e.svc.Get(e.ctx, e.admin, "LOST-1"); !problem.Is(err, problem.KindNotFound) {
			t.Fatalf("failed import left a vulnerability: %v", err)
		}
		// The same escalation succeeds afterwards; a failing notifier is
		// reported but the escalation stays recorded.
		e.notes.fail = errors.New("mail relay down")
		res, err := e.svc.RunEscalations(e.ctx, e.clk.Now())
		if err == nil || !strings.Contains(err.Error(), "mail relay down") || res.Escalated != 1 {
			t.Fatalf("escalation with a failing notifier: %+v %v", res, err)
		}
		if got := e.get(v.ID); got.Escalation.Level != 1 {
			t.Fatalf("escalation not recorded: %+v", got.Escalation)
		}
	})
}

// TestReimportKeepsTriage: importing a record again updates the record and
// leaves its handling alone.
func TestReimportKeepsTriage(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		v := e.move(e.assess(e.imported(), ssvcDefer), vuln.Confirmed)
		e.clk.Advance(time.Hour)
		body := fmt.Appendf(nil, `{"id":%q,"modified":"2026-02-01T00:00:00Z","summary":"updated"}`, v.VulnID)
		got, created, err := e.svc.ImportOSV(e.ctx, e.admin, body)
		if err != nil || created || got.ID != v.ID || got.Summary != "updated" || got.Stage != vuln.Confirmed || got.Priority != scoring.Defer ||
			!got.SLA.Remediation.Start.Equal(*v.SLA.Remediation.Start) {
			t.Fatalf("re-import: %+v %v", got, err)
		}
		if reread := e.get(v.ID); reread.Stage != vuln.Confirmed || reread.Summary != "updated" {
			t.Fatalf("stored: %+v", reread)
		}
	})
}

// TestWithPolicy: a configured policy sets the clocks; an invalid one is refused.
func TestWithPolicy(t *testing.T) {
	e := newEnv(t, store.SQLite)
	p := vuln.DefaultPolicy()
	p.DefaultClass = scoring.Scheduled
	if _, err := e.svc.WithPolicy(p); err != nil {
		t.Fatal(err)
	}
	v := e.imported()
	if v.SLA.Class != scoring.Scheduled || !v.SLA.Triage.Due.Equal(v.SLA.Triage.Start.Add(14*vuln.Day)) {
		t.Fatalf("scheduled default: %+v", v.SLA.Triage)
	}
	p.EscalationInterval = 0
	if _, err := e.svc.WithPolicy(p); !problem.Is(err, problem.KindInvalid) {
		t.Fatalf("invalid policy accepted: %v", err)
	}
	if e.svc.Policy().EscalationInterval == 0 {
		t.Fatal("an invalid policy replaced the valid one")
	}
}
