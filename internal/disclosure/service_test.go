package disclosure_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/steward-iot/steward/internal/access"
	"github.com/steward-iot/steward/internal/clock"
	"github.com/steward-iot/steward/internal/disclosure"
	"github.com/steward-iot/steward/internal/problem"
	"github.com/steward-iot/steward/internal/store"
	"github.com/steward-iot/steward/internal/store/storetest"
)

// forDialects runs fn per database, each with a fresh environment.
func forDialects(t *testing.T, fn func(t *testing.T, e *env), change ...func(*disclosure.Config)) {
	t.Parallel()
	for _, d := range storetest.Dialects(t) {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			fn(t, newEnv(t, d, change...))
		})
	}
}

// TestTeamWorkflow walks a report from receipt to closure the way a team
// handles it, checking what the reporter sees, who is emailed and that
// every change is audited.
func TestTeamWorkflow(t *testing.T) { forDialects(t, testTeamWorkflow) }

func testTeamWorkflow(t *testing.T, e *env) {
	ctx := context.Background()
	admin := e.principal(e.org, access.RoleSecurityOfficer)
	rc := e.submit("Auth bypass in gateway", "ana@example.org")
	if rc.Stage != disclosure.StageReceived || !rc.AckDueAt.Equal(clock.Norm(t0).Add(48*time.Hour)) ||
		!strings.HasPrefix(rc.Token, disclosure.TokenPrefix) || len(rc.Token) != 47 ||
		rc.StatusURL != "https://updates.example.com/api/v1/reports/status" || !strings.Contains(rc.Message, "acknowledge") {
		t.Fatalf("receipt: %+v", rc)
	}
	if got := e.notes.ofType(disclosure.NotifyReceived); len(got) != 1 || got[0].OrgID != e.org.ID || len(got[0].To) != 0 {
		t.Fatalf("report.received notifications: %+v", got)
	}

	// The reporter sees the receipt and when the acknowledgement is due.
	st, err := e.svc.Status(ctx, e.org.ID, rc.Token)
	if err != nil || st.Stage != disclosure.StageReceived || st.AckDueAt == nil || !st.AckDueAt.Equal(rc.AckDueAt) ||
		st.NextUpdateDue == nil || !st.NextUpdateDue.Equal(rc.AckDueAt) || st.AckedAt != nil || len(st.Messages) != 0 ||
		st.MessagesLeft != disclosure.MaxReporterMessages {
		t.Fatalf("status on receipt: %+v %v", st, err)
	}

	page, next, err := e.svc.ListReports(ctx, admin, disclosure.ListQuery{})
	if err != nil || len(page) != 1 || next != "" || page[0].ID != rc.Reference || page[0].ReporterEmail != "ana@example.org" {
		t.Fatalf("ListReports: %+v %q %v", page, next, err)
	}

	e.clk.Advance(3 * time.Hour)
	r, err := e.svc.Acknowledge(ctx, admin, rc.Reference, disclosure.AcknowledgeRequest{Message: "Thanks, looking into it."})
	ackAt := e.clk.Now()
	if err != nil || r.Stage != disclosure.StageAcknowledged || r.AckedAt == nil || !r.AckedAt.Equal(ackAt) ||
		r.LastUpdateAt == nil || !r.LastUpdateAt.Equal(ackAt) {
		t.Fatalf("Acknowledge: %+v %v", r, err)
	}
	_, err = e.svc.Acknowledge(ctx, admin, rc.Reference, disclosure.AcknowledgeRequest{})
	wantKind(t, err, problem.KindConflict, "acknowledging twice")
	mails := e.notes.ofType(disclosure.NotifyReporterUpdate)
	if len(mails) != 1 || !slices.Equal(mails[0].To, []string{"ana@example.org"}) {
		t.Fatalf("reporter email after acknowledgement: %+v", mails)
	}
	if s := mails[0].Subject + " " + toJSON(mails[0].Data); strings.Contains(s, "looking into it") {
		t.Fatalf("the reporter email must not carry the message text: %s", s)
	}

	// An internal note: the reporter neither sees it nor is emailed.
	note, err := e.svc.Reply(ctx, admin, rc.Reference, disclosure.ReplyRequest{Body: "internal: reproduced on 2.0 too", Internal: true})
	if err != nil || !note.Internal || note.Author != disclosure.AuthorTeam || note.AuthorName != admin.Actor.Name {
		t.Fatalf("internal note: %+v %v", note, err)
	}
	if n := len(e.notes.ofType(disclosure.NotifyReporterUpdate)); n != 1 {
		t.Fatalf("an internal note emailed the reporter (%d mails)", n)
	}

	// The reporter answers; the team is told.
	pm, err := e.svc.AddReporterMessage(ctx, e.org.ID, rc.Token, disclosure.MessageRequest{Body: "PoC attached below\r\n\x00more"})
	if err != nil || pm.From != disclosure.AuthorReporter || pm.Body != "PoC attached below\nmore" {
		t.Fatalf("reporter message: %+v %v", pm, err)
	}
	if got := e.notes.ofType(disclosure.NotifyReporterWrote); len(got) != 1 {
		t.Fatalf("team not told of the reporter's message: %+v", got)
	}

	e.clk.Advance(24 * time.Hour)
	if _, err := e.svc.SetStage(ctx, admin, rc.Reference, disclosure.StageRequest{Stage: disclosure.StageTriaging}); err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.SetStage(ctx, admin, rc.Reference, disclosure.StageRequest{Stage: disclosure.StageTriaging})
	wantKind(t, err, problem.KindConflict, "same stage again")
	_, err = e.svc.SetStage(ctx, admin, rc.Reference, disclosure.StageRequest{Stage: disclosure.StageAcknowledged})
	wantKind(t, err, problem.KindConflict, "back to acknowledged")
	_, err = e.svc.SetStage(ctx, admin, rc.Reference, disclosure.StageRequest{Stage: disclosure.StageRejected})
	wantField(t, err, "reason")
	_, err = e.svc.SetStage(ctx, admin, rc.Reference, disclosure.StageRequest{Stage: "fixed"})
	wantField(t, err, "stage")
	e.clk.Advance(time.Hour)
	r, err = e.svc.SetStage(ctx, admin, rc.Reference, disclosure.StageRequest{Stage: disclosure.StageConfirmed,
		Reason: "CVSS 9.1, embargoed until fix", Message: "Confirmed. We are working on a fix."})
	confirmedAt := e.clk.Now()
	if err != nil || r.Stage != disclosure.StageConfirmed || !r.StageAt.Equal(confirmedAt) || r.StageReason != "CVSS 9.1, embargoed until fix" {
		t.Fatalf("SetStage confirmed: %+v %v", r, err)
	}

	// Link to a vulnerability: the hook decides what exists in the org.
	e.vulns[e.org.ID+"/CVE-2026-1234"] = true
	e.vulns[e.other.ID+"/CVE-2026-9999"] = true
	l, err := e.svc.LinkVulnerability(ctx, admin, rc.Reference, "CVE-2026-1234")
	if err != nil || l.VulnerabilityID != "CVE-2026-1234" || !l.LinkedAt.Equal(confirmedAt) {
		t.Fatalf("LinkVulnerability: %+v %v", l, err)
	}
	e.clk.Advance(time.Minute)
	if again, err := e.svc.LinkVulnerability(ctx, admin, rc.Reference, "CVE-2026-1234"); err != nil || !again.LinkedAt.Equal(l.LinkedAt) {
		t.Fatalf("linking again must return the first link: %+v %v", again, err)
	}
	_, err = e.svc.LinkVulnerability(ctx, admin, rc.Reference, "CVE-2026-9999")
	wantField(t, err, "vulnerability_id") // exists, but in another org
	_, err = e.svc.LinkVulnerability(ctx, admin, rc.Reference, "CVE 1\n")
	wantField(t, err, "vulnerability_id")

	d, err := e.svc.GetReport(ctx, admin, rc.Reference)
	if err != nil || len(d.Messages) != 4 || len(d.Vulnerabilities) != 1 || d.Description != "Steps:\n1. do this\n2. root shell" {
		t.Fatalf("GetReport: %+v %v", d, err)
	}
	internal := 0
	for _, m := range d.Messages {
		if m.Internal {
			internal++
		}
	}
	if internal != 1 {
		t.Fatalf("the team sees %d internal notes, want 1", internal)
	}

	// The reporter's view: no internal note, no reason, no team names, and
	// the next update due a StatusUpdateEvery after the last one.
	st, err = e.svc.Status(ctx, e.org.ID, rc.Token)
	if err != nil {
		t.Fatal(err)
	}
	wantNext := confirmedAt.Add(disclosure.DefaultStatusUpdateEvery)
	if st.Stage != disclosure.StageConfirmed || st.AckDueAt != nil || st.AckedAt == nil || !st.AckedAt.Equal(ackAt) ||
		st.NextUpdateDue == nil || !st.NextUpdateDue.Equal(wantNext) || len(st.Messages) != 3 || st.MessagesLeft != disclosure.MaxReporterMessages-1 {
		t.Fatalf("reporter status: %+v", st)
	}
	for _, m := range st.Messages {
		if strings.Contains(m.Body, "internal:") || strings.Contains(m.Body, "embargoed") {
			t.Fatalf("the reporter sees team-only text: %+v", m)
		}
	}
	if s := toJSON(st); strings.Contains(s, admin.Actor.Name) || strings.Contains(s, "embargoed") {
		t.Fatalf("the reporter's status names a team member or the internal reason: %s", s)
	}

	if err := e.svc.UnlinkVulnerability(ctx, admin, rc.Reference, "CVE-2026-1234"); err != nil {
		t.Fatal(err)
	}
	wantKind(t, e.svc.UnlinkVulnerability(ctx, admin, rc.Reference, "CVE-2026-1234"), problem.KindNotFound, "unlink twice")
	if _, err := e.svc.SetStage(ctx, admin, rc.Reference, disclosure.StageRequest{Stage: disclosure.StageClosed}); err != nil {
		t.Fatal(err)
	}
	st, _ = e.svc.Status(ctx, e.org.ID, rc.Token)
	if st.NextUpdateDue != nil {
		t.Fatalf("a closed report promises no further update: %+v", st.NextUpdateDue)
	}
	if n := len(e.notes.ofType(disclosure.NotifyReporterUpdate)); n != 4 { // ack, triaging, confirmed, closed
		t.Fatalf("reporter emails: %d, want 4", n)
	}

	var actions []string
	for _, ev := range e.audit(e.org, "report.") {
		actions = append(actions, ev.Action)
		if ev.TargetID != rc.Reference {
			t.Fatalf("audit event for another target: %+v", ev)
		}
	}
	want := []string{"report.submit", "report.acknowledge", "report.note", "report.message", "report.stage", "report.stage",
		"report.link_vulnerability", "report.unlink_vulnerability", "report.stage"}
	if !slices.Equal(actions, want) {
		t.Fatalf("audit actions\n got %v\nwant %v", actions, want)
	}
	e.noSecrets(rc.Token)
}

// TestImplicitAcknowledgement: a public answer or a stage change is a
// human response, so it acknowledges; an internal note does not.
func TestImplicitAcknowledgement(t *testing.T) { forDialects(t, testImplicitAck) }

func testImplicitAck(t *testing.T, e *env) {
	ctx := context.Background()
	p := e.principal(e.org, access.RoleAdmin)
	a, b, c := e.submit("a", ""), e.submit("b", ""), e.submit("c", "")
	if _, err := e.svc.Reply(ctx, p, a.Reference, disclosure.ReplyRequest{Body: "note", Internal: true}); err != nil {
		t.Fatal(err)
	}
	e.clk.Advance(time.Hour)
	if _, err := e.svc.Reply(ctx, p, b.Reference, disclosure.ReplyRequest{Body: "Hello"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.SetStage(ctx, p, c.Reference, disclosure.StageRequest{Stage: disclosure.StageRejected, Reason: "spam"}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ref   string
		stage disclosure.Stage
		acked bool
	}{{a.Reference, disclosure.StageReceived, false}, {b.Reference, disclosure.StageAcknowledged, true}, {c.Reference, disclosure.StageRejected, true}} {
		d, err := e.svc.GetReport(ctx, p, tc.ref)
		if err != nil || d.Stage != tc.stage || (d.AckedAt != nil) != tc.acked {
			t.Fatalf("report %s: stage %s acked %v, want %s %v (%v)", tc.ref, d.Stage, d.AckedAt, tc.stage, tc.acked, err)
		}
	}
	// Only a stays unacknowledged: the sweep notifies for it alone.
	e.clk.Advance(72 * time.Hour)
	n, err := e.svc.CheckOverdue(ctx, e.clk.Now())
	if err != nil || n != 1 {
		t.Fatalf("CheckOverdue = %d %v, want 1", n, err)
	}
	if got := e.notes.ofType(disclosure.NotifyAckOverdue); len(got) != 1 || !strings.Contains(toJSON(got[0].Data), a.Reference) {
		t.Fatalf("overdue notifications: %+v", got)
	}
}

// TestCheckOverdue: one notification per overdue report, however often
// the sweep runs; a failed notification is retried by the next sweep.
func TestCheckOverdue(t *testing.T) { forDialects(t, testCheckOverdue) }

func testCheckOverdue(t *testing.T, e *env) {
	ctx := context.Background()
	p := e.principal(e.org, access.RoleSecurityOfficer)
	late := e.submit("late", "")
	e.clk.Advance(time.Hour)
	acked := e.submit("acked", "")
	if _, err := e.svc.Acknowledge(ctx, p, acked.Reference, disclosure.AcknowledgeRequest{}); err != nil {
		t.Fatal(err)
	}
	e.clk.Advance(46 * time.Hour) // late is due at 48h after t0: not yet
	if n, err := e.svc.CheckOverdue(ctx, e.clk.Now()); err != nil || n != 0 {
		t.Fatalf("before the deadline: %d %v", n, err)
	}
	e.clk.Advance(time.Hour) // exactly due
	e.notes.setFail(errors.New("mail relay down"))
	if n, err := e.svc.CheckOverdue(ctx, e.clk.Now()); err == nil || n != 0 {
		t.Fatalf("a failed notification must be reported: %d %v", n, err)
	}
	e.notes.setFail(nil)
	for i := range 3 {
		n, err := e.svc.CheckOverdue(ctx, e.clk.Now())
		want := 0
		if i == 0 {
			want = 1
		}
		if err != nil || n != want {
			t.Fatalf("sweep %d = %d %v, want %d", i, n, err, want)
		}
		e.clk.Advance(time.Hour)
	}
	got := e.notes.ofType(disclosure.NotifyAckOverdue)
	if len(got) != 1 || got[0].OrgID != e.org.ID || !strings.Contains(toJSON(got[0].Data), late.Reference) {
		t.Fatalf("overdue notifications: %+v", got)
	}
	d, err := e.svc.GetReport(ctx, p, late.Reference)
	if err != nil || d.AckOverdueAt == nil {
		t.Fatalf("the report does not record the notification: %+v %v", d.AckOverdueAt, err)
	}
	// Acknowledging late is allowed, and the event says it was late.
	if _, err := e.svc.Acknowledge(ctx, p, late.Reference, disclosure.AcknowledgeRequest{}); err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, ev := range e.audit(e.org, "report.") {
		if !strings.HasPrefix(ev.Action, "report.ack") {
			continue
		}
		actions = append(actions, ev.Action)
		if ev.Action == "report.acknowledge" && ev.TargetID == late.Reference && !strings.Contains(string(ev.Details), `"late":true`) {
			t.Fatalf("late acknowledgement not marked: %s", ev.Details)
		}
	}
	want := []string{"report.acknowledge", "report.ack_overdue", "report.ack_overdue_retry", "report.ack_overdue", "report.acknowledge"}
	if !slices.Equal(actions, want) {
		t.Fatalf("audit\n got %v\nwant %v", actions, want)
	}
}

// TestPermissions: who may read and change reports, and that another
// organization's principal cannot even tell they exist.
func TestPermissions(t *testing.T) { forDialects(t, testPermissions) }

func testPermissions(t *testing.T, e *env) {
	ctx := context.Background()
	rc := e.submit("perm", "")
	writes := func(p access.Principal) []error {
		_, e1 := e.svc.Acknowledge(ctx, p, rc.Reference, disclosure.AcknowledgeRequest{})
		_, e2 := e.svc.Reply(ctx, p, rc.Reference, disclosure.ReplyRequest{Body: "x"})
		_, e3 := e.svc.SetStage(ctx, p, rc.Reference, disclosure.StageRequest{Stage: disclosure.StageClosed})
		_, e4 := e.svc.LinkVulnerability(ctx, p, rc.Reference, "CVE-1")
		e5 := e.svc.UnlinkVulnerability(ctx, p, rc.Reference, "CVE-1")
		return []error{e1, e2, e3, e4, e5}
	}
	reads := func(p access.Principal) []error {
		_, _, e1 := e.svc.ListReports(ctx, p, disclosure.ListQuery{})
		_, e2 := e.svc.GetReport(ctx, p, rc.Reference)
		return []error{e1, e2}
	}
	for _, role := range []access.Role{access.RoleOperator, access.RoleReleaseManager} {
		p := e.principal(e.org, role)
		for i, err := range append(reads(p), writes(p)...) {
			wantKind(t, err, problem.KindForbidden, string(role)+" call "+string(rune('0'+i)))
		}
	}
	auditor := e.principal(e.org, access.RoleAuditor)
	for _, err := range reads(auditor) {
		if err != nil {
			t.Fatalf("auditor read: %v", err)
		}
	}
	for _, err := range writes(auditor) {
		wantKind(t, err, problem.KindForbidden, "auditor write")
	}
	foreign := e.principal(e.other, access.RoleAdmin)
	if items, _, err := e.svc.ListReports(ctx, foreign, disclosure.ListQuery{}); err != nil || len(items) != 0 {
		t.Fatalf("a foreign org lists %v %v", items, err)
	}
	_, err := e.svc.GetReport(ctx, foreign, rc.Reference)
	wantKind(t, err, problem.KindNotFound, "foreign GetReport")
	for _, err := range writes(foreign) {
		wantKind(t, err, problem.KindNotFound, "foreign write")
	}
	_, err = e.svc.GetReport(ctx, e.principal(e.org, access.RoleAdmin), "not-an-id")
	wantKind(t, err, problem.KindNotFound, "malformed id")
	if evs := e.audit(e.org, "report."); len(evs) != 1 {
		t.Fatalf("refused calls left audit events: %v", len(evs))
	}
	// The security officer may do everything.
	so := e.principal(e.org, access.RoleSecurityOfficer)
	e.vulns[e.org.ID+"/CVE-1"] = true
	for _, err := range writes(so) {
		if err != nil {
			t.Fatalf("security officer: %v", err)
		}
	}
}

// TestTokens: wrong, missing, malformed and foreign tokens all get the
// same answer, and nothing else opens a report.
func TestTokens(t *testing.T) { forDialects(t, testTokens) }

func testTokens(t *testing.T, e *env) {
	ctx := context.Background()
	rc := e.submit("tok", "")
	other, err := disclosure.NewService(e.db.Disclosure(), e.clk, e.cfg, disclosure.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := other.Submit(ctx, e.other.ID, disclosure.ReportRequest{Title: "x", Description: "y"}, disclosure.SourceForm)
	if err != nil {
		t.Fatal(err)
	}
	flipped := []byte(rc.Token)
	flipped[10] ^= 1
	var detail string
	for _, tok := range []string{"", "rpt_", "Bearer " + rc.Token, rc.Token + "x", string(flipped), foreign.Token, strings.ToUpper(rc.Token),
		strings.TrimPrefix(rc.Token, disclosure.TokenPrefix), rc.Reference} {
		_, err := e.svc.Status(ctx, e.org.ID, tok)
		wantKind(t, err, problem.KindUnauthenticated, "token "+tok)
		if detail == "" {
			detail = err.Error()
		} else if err.Error() != detail {
			t.Fatalf("answers differ: %q vs %q", err.Error(), detail)
		}
		_, err = e.svc.AddReporterMessage(ctx, e.org.ID, tok, disclosure.MessageRequest{Body: "hi"})
		wantKind(t, err, problem.KindUnauthenticated, "message with token "+tok)
	}
	if _, err := e.svc.Status(ctx, e.org.ID, rc.Token); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Status(ctx, e.other.ID, foreign.Token); err != nil {
		t.Fatal(err)
	}
	e.noSecrets(rc.Token, foreign.Token)
}

// TestSubmitValidation: hostile and sloppy input is refused with the field
// named, or cleaned where cleaning loses nothing a reader needs.
func TestSubmitValidation(t *testing.T) {
	e := newEnv(t, store.SQLite)
	ctx := context.Background()
	ok := disclosure.ReportRequest{Title: "t", Description: "d"}
	cases := []struct {
		field  string
		change func(*disclosure.ReportRequest)
	}{
		{"title", func(r *disclosure.ReportRequest) { r.Title = " \t\x00 " }},
		{"title", func(r *disclosure.ReportRequest) { r.Title = strings.Repeat("é", disclosure.MaxTitle+1) }},
		{"title", func(r *disclosure.ReportRequest) { r.Title = "bad \xff utf8" }},
		{"description", func(r *disclosure.ReportRequest) { r.Description = "\r\n \x00" }},
		{"description", func(r *disclosure.ReportRequest) { r.Description = strings.Repeat("x", disclosure.MaxDescription+1) }},
		{"product", func(r *disclosure.ReportRequest) { r.Product = strings.Repeat("p", disclosure.MaxShortField+1) }},
		{"reporter_email", func(r *disclosure.ReportRequest) { r.ReporterEmail = "not an address" }},
		{"reporter_email", func(r *disclosure.ReportRequest) { r.ReporterEmail = "Eve <eve@example.org>" }},
		{"reporter_email", func(r *disclosure.ReportRequest) { r.ReporterEmail = "eve@example.org\r\nBcc: x@y.z" }},
		{"language", func(r *disclosure.ReportRequest) { r.Language = "en_US; drop table" }},
	}
	for _, c := range cases {
		req := ok
		c.change(&req)
		_, err := e.svc.Submit(ctx, e.org.ID, req, disclosure.SourceAPI)
		wantField(t, err, c.field)
	}
	if n := e.reportCount(); n != 0 {
		t.Fatalf("invalid reports were stored: %d", n)
	}
	// Cleaning: controls and direction overrides leave one-line fields;
	// line ends are normalized; the credit name defaults to the name.
	rc, err := e.svc.Submit(ctx, e.org.ID, disclosure.ReportRequest{Title: "  RCE\x00 in\n\t\u202eupdater\x1b[31m  ",
		Description: "a\r\nb\rc\x07\u202e", ReporterName: "Ana\u200f", ReporterEmail: " ana@example.org ", CreditWanted: true,
		Language: "pt-BR"}, disclosure.SourceForm)
	if err != nil {
		t.Fatal(err)
	}
	d, err := e.svc.GetReport(ctx, e.principal(e.org, access.RoleAuditor), rc.Reference)
	if err != nil {
		t.Fatal(err)
	}
	if d.Title != "RCE in updater[31m" || d.Description != "a\nb\nc\u202e" || d.ReporterName != "Ana" || d.CreditName != "Ana" ||
		d.ReporterEmail != "ana@example.org" || d.Language != "pt-BR" || d.Source != disclosure.SourceForm {
		t.Fatalf("cleaned report: %+v", d.Report)
	}
	if strings.ContainsFunc(d.Title, unicode.IsControl) {
		t.Fatalf("title kept control characters: %q", d.Title)
	}
	// No credit wanted: no credit name kept.
	rc, err = e.svc.Submit(ctx, e.org.ID, disclosure.ReportRequest{Title: "t", Description: "d", CreditName: "Someone"}, disclosure.SourceAPI)
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := e.svc.GetReport(ctx, e.principal(e.org, access.RoleAuditor), rc.Reference); d.CreditName != "" {
		t.Fatalf("credit name kept without credit: %q", d.CreditName)
	}
	_, err = e.svc.Submit(ctx, "", ok, disclosure.SourceAPI)
	wantKind(t, err, problem.KindNotFound, "no org")
}

// TestReporterMessageLimit: a token holder cannot grow a report without bound.
func TestReporterMessageLimit(t *testing.T) {
	e := newEnv(t, store.SQLite)
	ctx := context.Background()
	rc := e.submit("many", "")
	_, err := e.svc.AddReporterMessage(ctx, e.org.ID, rc.Token, disclosure.MessageRequest{Body: strings.Repeat("m", disclosure.MaxReporterMessage+1)})
	wantField(t, err, "body")
	_, err = e.svc.AddReporterMessage(ctx, e.org.ID, rc.Token, disclosure.MessageRequest{Body: " \n "})
	wantField(t, err, "body")
	for i := range disclosure.MaxReporterMessages {
		if _, err := e.svc.AddReporterMessage(ctx, e.org.ID, rc.Token, disclosure.MessageRequest{Body: "m"}); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	_, err = e.svc.AddReporterMessage(ctx, e.org.ID, rc.Token, disclosure.MessageRequest{Body: "one too many"})
	wantKind(t, err, problem.KindConflict, "message over the limit")
	if st, err := e.svc.Status(ctx, e.org.ID, rc.Token); err != nil || st.MessagesLeft != 0 || len(st.Messages) != disclosure.MaxReporterMessages {
		t.Fatalf("status at the limit: left %d, %d messages, %v", st.MessagesLeft, len(st.Messages), err)
	}
}

// TestListReportsPaging: pages follow ids, filter by stage, and reject
// unknown stages.
func TestListReportsPaging(t *testing.T) { forDialects(t, testListPaging) }

func testListPaging(t *testing.T, e *env) {
	ctx := context.Background()
	p := e.principal(e.org, access.RoleAuditor)
	admin := e.principal(e.org, access.RoleAdmin)
	var refs []string
	for i := range 5 {
		refs = append(refs, e.submit("r"+string(rune('0'+i)), "").Reference)
	}
	if _, err := e.svc.Acknowledge(ctx, admin, refs[1], disclosure.AcknowledgeRequest{}); err != nil {
		t.Fatal(err)
	}
	var got []string
	after := ""
	for {
		items, next, err := e.svc.ListReports(ctx, p, disclosure.ListQuery{After: after, Limit: 2})
		if err != nil || len(items) > 2 {
			t.Fatalf("page: %v %v", items, err)
		}
		for _, r := range items {
			got = append(got, r.ID)
		}
		if next == "" {
			break
		}
		after = next
	}
	if !slices.Equal(got, refs) {
		t.Fatalf("paged ids %v, want %v", got, refs)
	}
	acked, _, err := e.svc.ListReports(ctx, p, disclosure.ListQuery{Stage: disclosure.StageAcknowledged})
	if err != nil || len(acked) != 1 || acked[0].ID != refs[1] {
		t.Fatalf("stage filter: %v %v", acked, err)
	}
	_, _, err = e.svc.ListReports(ctx, p, disclosure.ListQuery{Stage: "open"})
	wantField(t, err, "stage")
}

// TestConfigTimers: the service refuses timers that make no promise.
func TestConfigTimers(t *testing.T) {
	for _, cfg := range []disclosure.Config{{AckWithin: -time.Hour}, {StatusUpdateEvery: -1}, {DisclosureAfter: -time.Second}} {
		if _, err := disclosure.NewService(nil, nil, cfg, disclosure.Deps{}); err == nil {
			t.Fatalf("NewService accepted %+v", cfg)
		}
	}
	s, err := disclosure.NewService(nil, nil, disclosure.Config{}, disclosure.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if c := s.Config(); c.AckWithin != 48*time.Hour || c.Validity != 180*24*time.Hour || c.ReportRate.N != 5 || c.StatusRate.N != 60 {
		t.Fatalf("defaults: %+v", c)
	}
}
