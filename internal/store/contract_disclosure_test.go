package store_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/steward-iot/steward/internal/clock"
	"github.com/steward-iot/steward/internal/disclosure"
	"github.com/steward-iot/steward/internal/id"
	"github.com/steward-iot/steward/internal/problem"
	"github.com/steward-iot/steward/internal/store"
	"github.com/steward-iot/steward/internal/store/storetest"
	"github.com/steward-iot/steward/internal/tenancy"
)

func TestContractDisclosure(t *testing.T) {
	tests := []struct {
		name string
		fn   func(t *testing.T, db *store.DB)
	}{
		{"Reports", testReports},
		{"ReportUpdate", testReportUpdate},
		{"ReportMessages", testReportMessages},
		{"ReportVulnerabilities", testReportVulnerabilities},
		{"ReportAckOverdue", testReportAckOverdue},
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

func newReport(t *testing.T, tx *store.Tx, org tenancy.Org, title string, received time.Time) disclosure.Report {
	t.Helper()
	received = clock.Norm(received)
	r := disclosure.Report{ID: id.New(), OrgID: org.ID, Source: disclosure.SourceAPI, Title: title,
		Description: "line one\nline two \u202e RTL 🙂", Product: "gw", Version: "1.2", ReporterName: "Ana",
		ReporterEmail: "ana@example.org", CreditWanted: true, CreditName: "Ana B.", Language: "de-AT",
		Stage: disclosure.StageReceived, ReceivedAt: received, AckDueAt: received.Add(48 * time.Hour), StageAt: received,
		UpdatedAt: received}
	if err := tx.InsertReport(context.Background(), r, "hash-"+r.ID); err != nil {
		t.Fatalf("InsertReport: %v", err)
	}
	return r
}

func testReports(t *testing.T, db *store.DB) {
	ctx := context.Background()
	var a, b tenancy.Org
	var r1, r2, r3 disclosure.Report
	write(t, db, func(tx *store.Tx) error {
		a, b = newOrg(t, tx, "a"), newOrg(t, tx, "b")
		r1 = newReport(t, tx, a, "first", t0)
		r2 = newReport(t, tx, a, "second", t0.Add(time.Minute))
		r3 = newReport(t, tx, b, "foreign", t0)
		return nil
	})
	// The same token hash twice is refused (the unique index is the lookup).
	err := db.Write(ctx, func(tx *store.Tx) error {
		r := r2
		r.ID = id.New()
		return tx.InsertReport(ctx, r, "hash-"+r1.ID)
	})
	wantKind(t, err, problem.KindConflict, "duplicate token hash")
	read(t, db, func(tx *store.Tx) error {
		got, err := tx.ReportByID(ctx, a.ID, r1.ID)
		if err != nil || !reflect.DeepEqual(got, r1) {
			t.Fatalf("ReportByID:\n got %+v %v\nwant %+v", got, err, r1)
		}
		if got, err := tx.ReportByTokenHash(ctx, a.ID, "hash-"+r2.ID); err != nil || got.ID != r2.ID {
			t.Fatalf("ReportByTokenHash: %+v %v", got, err)
		}
		_, err = tx.ReportByTokenHash(ctx, b.ID, "hash-"+r2.ID)
		wantKind(t, err, problem.KindNotFound, "token of another org")
		_, err = tx.ReportByTokenHash(ctx, a.ID, "hash-nope")
		wantKind(t, err, problem.KindNotFound, "unknown token hash")
		_, err = tx.ReportByID(ctx, b.ID, r1.ID)
		wantKind(t, err, problem.KindNotFound, "report through another org")

		all, err := tx.ListReports(ctx, a.ID, "", "", 10)
		if err != nil || len(all) != 2 || all[0].ID != r1.ID || all[1].ID != r2.ID {
			t.Fatalf("ListReports: %v %v", all, err)
		}
		page, err := tx.ListReports(ctx, a.ID, "", r1.ID, 10)
		if err != nil || len(page) != 1 || page[0].ID != r2.ID {
			t.Fatalf("ListReports after cursor: %v %v", page, err)
		}
		one, err := tx.ListReports(ctx, a.ID, "", "", 1)
		if err != nil || len(one) != 1 {
			t.Fatalf("ListReports limit: %v %v", one, err)
		}
		none, err := tx.ListReports(ctx, a.ID, disclosure.StageClosed, "", 10)
		if err != nil || len(none) != 0 {
			t.Fatalf("ListReports closed: %v %v", none, err)
		}
		foreign, err := tx.ListReports(ctx, b.ID, disclosure.StageReceived, "", 10)
		if err != nil || len(foreign) != 1 || foreign[0].ID != r3.ID {
			t.Fatalf("ListReports of b: %v %v", foreign, err)
		}
		return nil
	})
}

func testReportUpdate(t *testing.T, db *store.DB) {
	ctx := context.Background()
	var a, b tenancy.Org
	var r disclosure.Report
	write(t, db, func(tx *store.Tx) error {
		a, b = newOrg(t, tx, "a"), newOrg(t, tx, "b")
		r = newReport(t, tx, a, "r", t0)
		return nil
	})
	acked := clock.Norm(t0.Add(time.Hour))
	r.Stage, r.StageReason, r.AckedAt, r.StageAt, r.LastUpdateAt, r.UpdatedAt = disclosure.StageTriaging, "looks real", &acked, acked, &acked, acked
	write(t, db, func(tx *store.Tx) error { return tx.UpdateReport(ctx, r) })
	read(t, db, func(tx *store.Tx) error {
		got, err := tx.ReportByID(ctx, a.ID, r.ID)
		want := r
		want.Revision = 1
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("after UpdateReport:\n got %+v %v\nwant %+v", got, err, want)
		}
		return nil
	})
	// r still names revision 0: a writer that read before the update loses.
	err := db.Write(ctx, func(tx *store.Tx) error { return tx.UpdateReport(ctx, r) })
	wantKind(t, err, problem.KindConflict, "stale revision")
	r.Revision = 1
	r.OrgID = b.ID
	err = db.Write(ctx, func(tx *store.Tx) error { return tx.UpdateReport(ctx, r) })
	wantKind(t, err, problem.KindNotFound, "update through another org")
}

func testReportMessages(t *testing.T, db *store.DB) {
	ctx := context.Background()
	var a, b tenancy.Org
	var r disclosure.Report
	msgs := []disclosure.Message{}
	write(t, db, func(tx *store.Tx) error {
		a, b = newOrg(t, tx, "a"), newOrg(t, tx, "b")
		r = newReport(t, tx, a, "r", t0)
		for i, m := range []struct {
			author   disclosure.Author
			internal bool
		}{{disclosure.AuthorReporter, false}, {disclosure.AuthorTeam, true}, {disclosure.AuthorTeam, false}, {disclosure.AuthorReporter, false}} {
			msg := disclosure.Message{ID: id.New(), OrgID: a.ID, ReportID: r.ID, Author: m.author, Internal: m.internal,
				Body: "<b>body</b> " + string(rune('a'+i)), CreatedAt: clock.Norm(t0.Add(time.Duration(i) * time.Minute))}
			if m.author == disclosure.AuthorTeam {
				msg.AuthorName = "alice@acme"
			}
			if err := tx.InsertReportMessage(ctx, msg); err != nil {
				t.Fatal(err)
			}
			msgs = append(msgs, msg)
		}
		return nil
	})
	read(t, db, func(tx *store.Tx) error {
		all, err := tx.ListReportMessages(ctx, a.ID, r.ID, true)
		if err != nil || !reflect.DeepEqual(all, msgs) {
			t.Fatalf("ListReportMessages(internal):\n got %+v %v\nwant %+v", all, err, msgs)
		}
		public, err := tx.ListReportMessages(ctx, a.ID, r.ID, false)
		want := []disclosure.Message{msgs[0], msgs[2], msgs[3]}
		if err != nil || !reflect.DeepEqual(public, want) {
			t.Fatalf("ListReportMessages(public) must leave out internal notes: %+v %v", public, err)
		}
		if foreign, err := tx.ListReportMessages(ctx, b.ID, r.ID, true); err != nil || len(foreign) != 0 {
			t.Fatalf("messages through another org: %v %v", foreign, err)
		}
		for author, want := range map[disclosure.Author]int{disclosure.AuthorReporter: 2, disclosure.AuthorTeam: 2} {
			if n, err := tx.CountReportMessages(ctx, a.ID, r.ID, author); err != nil || n != want {
				t.Fatalf("CountReportMessages(%s) = %d %v, want %d", author, n, err, want)
			}
		}
		if n, err := tx.CountReportMessages(ctx, b.ID, r.ID, disclosure.AuthorReporter); err != nil || n != 0 {
			t.Fatalf("CountReportMessages through another org = %d %v", n, err)
		}
		return nil
	})
}

func testReportVulnerabilities(t *testing.T, db *store.DB) {
	ctx := context.Background()
	var a, b tenancy.Org
	var r disclosure.Report
	write(t, db, func(tx *store.Tx) error {
		a, b = newOrg(t, tx, "a"), newOrg(t, tx, "b")
		r = newReport(t, tx, a, "r", t0)
		return nil
	})
	l1 := disclosure.Link{OrgID: a.ID, ReportID: r.ID, VulnerabilityID: "CVE-2026-0001", LinkedAt: clock.Norm(t0)}
	l2 := disclosure.Link{OrgID: a.ID, ReportID: r.ID, VulnerabilityID: "GHSA-xxxx-yyyy-zzzz", LinkedAt: clock.Norm(t0.Add(time.Second))}
	write(t, db, func(tx *store.Tx) error {
		for _, l := range []disclosure.Link{l1, l2} {
			if created, err := tx.LinkReportVulnerability(ctx, l); err != nil || !created {
				t.Fatalf("LinkReportVulnerability(%s) = %v %v", l.VulnerabilityID, created, err)
			}
		}
		// A repeated link is no error (and must not abort a PostgreSQL
		// transaction): the next statement in it still works.
		again := l1
		again.LinkedAt = clock.Norm(t0.Add(time.Hour))
		if created, err := tx.LinkReportVulnerability(ctx, again); err != nil || created {
			t.Fatalf("repeated link = %v %v, want false, nil", created, err)
		}
		_, err := tx.ReportByID(ctx, a.ID, r.ID)
		return err
	})
	read(t, db, func(tx *store.Tx) error {
		links, err := tx.ListReportVulnerabilities(ctx, a.ID, r.ID)
		if err != nil || !reflect.DeepEqual(links, []disclosure.Link{l1, l2}) {
			t.Fatalf("ListReportVulnerabilities: %+v %v", links, err)
		}
		if links, err := tx.ListReportVulnerabilities(ctx, b.ID, r.ID); err != nil || len(links) != 0 {
			t.Fatalf("links through another org: %v %v", links, err)
		}
		return nil
	})
	err := db.Write(ctx, func(tx *store.Tx) error { return tx.UnlinkReportVulnerability(ctx, b.ID, r.ID, l1.VulnerabilityID) })
	wantKind(t, err, problem.KindNotFound, "unlink through another org")
	write(t, db, func(tx *store.Tx) error { return tx.UnlinkReportVulnerability(ctx, a.ID, r.ID, l1.VulnerabilityID) })
	err = db.Write(ctx, func(tx *store.Tx) error { return tx.UnlinkReportVulnerability(ctx, a.ID, r.ID, l1.VulnerabilityID) })
	wantKind(t, err, problem.KindNotFound, "unlink twice")
	read(t, db, func(tx *store.Tx) error {
		links, err := tx.ListReportVulnerabilities(ctx, a.ID, r.ID)
		if err != nil || !reflect.DeepEqual(links, []disclosure.Link{l2}) {
			t.Fatalf("after unlink: %+v %v", links, err)
		}
		return nil
	})
}

func testReportAckOverdue(t *testing.T, db *store.DB) {
	ctx := context.Background()
	var a, b tenancy.Org
	var early, late, acked, foreign disclosure.Report
	write(t, db, func(tx *store.Tx) error {
		a, b = newOrg(t, tx, "a"), newOrg(t, tx, "b")
		early = newReport(t, tx, a, "early", t0)
		late = newReport(t, tx, a, "late", t0.Add(24*time.Hour))
		acked = newReport(t, tx, a, "acked", t0)
		foreign = newReport(t, tx, b, "foreign", t0.Add(time.Minute))
		at := clock.Norm(t0.Add(time.Hour))
		acked.AckedAt, acked.Stage, acked.UpdatedAt = &at, disclosure.StageAcknowledged, at
		return tx.UpdateReport(ctx, acked)
	})
	ids := func(rs []disclosure.Report) []string {
		out := []string{}
		for _, r := range rs {
			out = append(out, r.ID)
		}
		return out
	}
	due := early.AckDueAt // early and foreign are due by due+1m; late a day after
	var got []disclosure.Report
	read(t, db, func(tx *store.Tx) error {
		var err error
		if got, err = tx.ListAckOverdue(ctx, due.Add(-time.Microsecond), 10); err != nil || len(got) != 0 {
			t.Fatalf("before anything is due: %v %v", ids(got), err)
		}
		// Due exactly now counts; every org is swept; oldest due first.
		got, err = tx.ListAckOverdue(ctx, foreign.AckDueAt, 10)
		if err != nil || !reflect.DeepEqual(ids(got), []string{early.ID, foreign.ID}) {
			t.Fatalf("ListAckOverdue: %v %v", ids(got), err)
		}
		if got, err = tx.ListAckOverdue(ctx, foreign.AckDueAt, 1); err != nil || len(got) != 1 {
			t.Fatalf("ListAckOverdue limit: %v %v", ids(got), err)
		}
		return nil
	})
	now := clock.Norm(late.AckDueAt.Add(time.Hour))
	write(t, db, func(tx *store.Tx) error {
		if ok, err := tx.ClaimAckOverdue(ctx, a.ID, early.ID, now); err != nil || !ok {
			t.Fatalf("first claim = %v %v", ok, err)
		}
		if ok, err := tx.ClaimAckOverdue(ctx, a.ID, early.ID, now); err != nil || ok {
			t.Fatalf("second claim = %v %v, want false", ok, err)
		}
		if ok, err := tx.ClaimAckOverdue(ctx, a.ID, acked.ID, now); err != nil || ok {
			t.Fatalf("claim of an acknowledged report = %v %v, want false", ok, err)
		}
		if ok, err := tx.ClaimAckOverdue(ctx, b.ID, late.ID, now); err != nil || ok {
			t.Fatalf("claim through another org = %v %v, want false", ok, err)
		}
		return nil
	})
	read(t, db, func(tx *store.Tx) error {
		got, err := tx.ListAckOverdue(ctx, now, 10)
		if err != nil || !reflect.DeepEqual(ids(got), []string{foreign.ID, late.ID}) {
			t.Fatalf("after claim: %v %v", ids(got), err)
		}
		r, err := tx.ReportByID(ctx, a.ID, early.ID)
		if err != nil || r.AckOverdueAt == nil || !r.AckOverdueAt.Equal(now) {
			t.Fatalf("claim time not stored: %+v %v", r.AckOverdueAt, err)
		}
		return nil
	})
	write(t, db, func(tx *store.Tx) error { return tx.ReleaseAckOverdue(ctx, a.ID, early.ID) })
	err := db.Write(ctx, func(tx *store.Tx) error { return tx.ReleaseAckOverdue(ctx, b.ID, early.ID) })
	wantKind(t, err, problem.KindNotFound, "release through another org")
	read(t, db, func(tx *store.Tx) error {
		got, err := tx.ListAckOverdue(ctx, now, 10)
		if err != nil || !reflect.DeepEqual(ids(got), []string{early.ID, foreign.ID, late.ID}) {
			t.Fatalf("after release: %v %v", ids(got), err)
		}
		return nil
	})
}
