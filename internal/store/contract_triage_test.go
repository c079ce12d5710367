package store_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/steward-iot/steward/internal/access"
	"github.com/steward-iot/steward/internal/clock"
	"github.com/steward-iot/steward/internal/id"
	"github.com/steward-iot/steward/internal/problem"
	"github.com/steward-iot/steward/internal/store"
	"github.com/steward-iot/steward/internal/store/storetest"
	"github.com/steward-iot/steward/internal/tenancy"
	"github.com/steward-iot/steward/internal/vuln"
	"github.com/steward-iot/steward/internal/vuln/scoring"
)

func TestContractTriage(t *testing.T) {
	tests := []struct {
		name string
		fn   func(t *testing.T, db *store.DB)
	}{
		{"RoundTrip", testTriageRoundTrip},
		{"UpsertKeepsTriage", testTriageUpsertKeeps},
		{"UpdateGuard", testTriageUpdateGuard},
		{"ForeignKeys", testTriageForeignKeys},
		{"EscalationIndex", testTriageEscalationIndex},
		{"RiskExpiryIndex", testTriageRiskExpiryIndex},
		{"VulnPerson", testTriageVulnPerson},
		{"LockSerializes", testTriageLockSerializes},
	}
	for _, d := range storetest.Dialects(t) {
		t.Run(string(d), func(t *testing.T) {
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					tc.fn(t, storetest.New(t, d, clock.NewFake(t0)))
				})
			}
			t.Run("MigratesExistingData", func(t *testing.T) {
				t.Parallel()
				testTriageMigratesExisting(t, d)
			})
		})
	}
}

func triageUser(t *testing.T, tx *store.Tx, org tenancy.Org, name string, role access.Role) tenancy.User {
	t.Helper()
	u := tenancy.User{ID: id.New(), OrgID: org.ID, Email: name + "@" + org.Slug + ".example", Name: name, Role: role, CreatedAt: clock.Norm(t0)}
	if err := tx.InsertUser(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	return u
}

// triageVuln is a vulnerability fresh from import: stage triaging, the
// acknowledgement met and the triage clock running.
func triageVuln(org tenancy.Org, vulnID string) vuln.Vulnerability {
	at := clock.Norm(t0)
	due := at.Add(5 * vuln.Day)
	return vuln.Vulnerability{ID: id.New(), OrgID: org.ID, VulnID: vulnID, Aliases: []string{}, Summary: "s " + vulnID, Modified: at,
		OSV: []byte(`{"id":"` + vulnID + `"}`), CreatedAt: at, UpdatedAt: at,
		Stage: vuln.Triaging, StageChangedAt: at, ReceivedAt: at, EscalationChain: []string{},
		SLA: vuln.SLA{Class: scoring.OutOfCycle, Acknowledge: &vuln.Deadline{Start: &at, MetAt: &at},
			Triage: &vuln.Deadline{Start: &at, Due: &due}},
		Escalation: vuln.Escalation{DueAt: &due, NextAt: &due}}
}

func upsertVuln(t *testing.T, tx *store.Tx, v vuln.Vulnerability) vuln.Vulnerability {
	t.Helper()
	got, created, err := tx.UpsertVulnerability(context.Background(), v)
	if err != nil || !created {
		t.Fatalf("UpsertVulnerability(%s): created=%v %v", v.VulnID, created, err)
	}
	return got
}

// sameJSON compares what a client would see.
func sameJSON(t *testing.T, what string, got, want any) {
	t.Helper()
	g, err1 := json.Marshal(got)
	w, err2 := json.Marshal(want)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if string(g) != string(w) {
		t.Fatalf("%s:\n got %s\nwant %s", what, g, w)
	}
}

// fullTriage fills every triage field of v with distinct values.
func fullTriage(v vuln.Vulnerability, owner, deputy, chain, approver tenancy.User, dupOf string) vuln.Vulnerability {
	at := func(h int) *time.Time { x := clock.Norm(t0.Add(time.Duration(h) * time.Hour)); return &x }
	v.Stage, v.StageReason, v.StageChangedAt, v.DuplicateOf = vuln.RiskAccepted, "compensating control", *at(9), dupOf
	v.FixReleasedAt = at(8)
	v.SLA = vuln.SLA{Class: scoring.Immediate,
		Acknowledge: &vuln.Deadline{Start: &v.ReceivedAt, Due: at(24), MetAt: at(1)},
		Triage:      &vuln.Deadline{Start: at(1), Due: at(49), MetAt: at(2)},
		Remediation: &vuln.Deadline{Start: at(2), Due: at(170), MetAt: at(9)}}
	v.OwnerID, v.DeputyID, v.EscalationChain = owner.ID, deputy.ID, []string{chain.ID}
	v.Escalation = vuln.Escalation{Level: 2, EscalatedAt: at(50), DueAt: at(49), NextAt: at(74)}
	v.Priority, v.KnownExploited = scoring.Immediate, true
	v.Assessment = &vuln.Assessment{CVSS: []scoring.CVSS{{Version: "3.1", Vector: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", BaseScore: 9.8, Severity: "critical"}},
		SSVC:           scoring.SSVC{Exploitation: scoring.ExploitationActive, Exposure: scoring.ExposureOpen, Automatable: true, HumanImpact: scoring.HumanImpactHigh},
		KnownExploited: true, SSVCPriority: scoring.Immediate, Cost: &scoring.Cost{Bytes: 1 << 20, EnergyMWh: 1.5, Downtime: time.Minute, BrickRisk: 0.01},
		AssessedAt: *at(2), AssessedBy: access.Actor{Kind: access.ActorToken, ID: "tok", Name: "alice"}}
	v.CRA = &vuln.CRA{AwareAt: *at(1), EarlyWarning: vuln.CRAReport{Deadline: vuln.Deadline{MetAt: at(3)}, Reference: "EW-1",
		SubmittedBy: &access.Actor{Kind: access.ActorToken, ID: "tok", Name: "alice"}}}
	v.RiskAcceptance = &vuln.RiskAcceptance{ApproverID: approver.ID, ApproverEmail: approver.Email, Justification: "segmented",
		AcceptedAt: *at(9), AcceptedBy: access.Actor{Kind: access.ActorToken, ID: "tok", Name: "alice"}, ExpiresAt: *at(24 * 30)}
	v.UpdatedAt = *at(9)
	return v
}

func testTriageRoundTrip(t *testing.T, db *store.DB) {
	ctx := context.Background()
	var a, b tenancy.Org
	var v, orig vuln.Vulnerability
	write(t, db, func(tx *store.Tx) error {
		a, b = newOrg(t, tx, "a"), newOrg(t, tx, "b")
		alice, dave := triageUser(t, tx, a, "alice", access.RoleSecurityOfficer), triageUser(t, tx, a, "dave", access.RoleAdmin)
		carol := triageUser(t, tx, a, "carol", access.RoleSecurityOfficer)
		orig = upsertVuln(t, tx, triageVuln(a, "CVE-2026-0001"))
		v = upsertVuln(t, tx, fullTriage(triageVuln(a, "CVE-2026-0002"), alice, dave, carol, dave, orig.ID))
		return nil
	})
	read(t, db, func(tx *store.Tx) error {
		for _, ref := range []string{v.ID, v.VulnID} {
			got, err := tx.VulnerabilityByID(ctx, a.ID, ref)
			if err != nil {
				t.Fatal(err)
			}
			sameJSON(t, "VulnerabilityByID("+ref+")", got, v)
		}
		got, err := tx.VulnerabilityByID(ctx, a.ID, orig.ID)
		if err != nil {
			t.Fatal(err)
		}
		sameJSON(t, "fresh vulnerability", got, orig)
		if got.SLA.Remediation != nil || got.Assessment != nil || got.CRA != nil || got.RiskAcceptance != nil || got.FixReleasedAt != nil {
			t.Fatalf("absent parts read back as present: %+v", got)
		}
		_, err = tx.VulnerabilityByID(ctx, b.ID, v.ID)
		wantKind(t, err, problem.KindNotFound, "vulnerability through another org")
		vs, err := tx.ListVulnerabilities(ctx, a.ID, "", 10)
		if err != nil || len(vs) != 2 {
			t.Fatalf("ListVulnerabilities: %d %v", len(vs), err)
		}
		return nil
	})
	write(t, db, func(tx *store.Tx) error {
		got, err := tx.LockVulnerability(ctx, a.ID, v.VulnID)
		if err != nil {
			return err
		}
		sameJSON(t, "LockVulnerability", got, v)
		_, err = tx.LockVulnerability(ctx, b.ID, v.ID)
		wantKind(t, err, problem.KindNotFound, "lock through another org")
		return nil
	})
}

func testTriageUpsertKeeps(t *testing.T, db *store.DB) {
	ctx := context.Background()
	var a tenancy.Org
	var v vuln.Vulnerability
	write(t, db, func(tx *store.Tx) error {
		a = newOrg(t, tx, "a")
		u := triageUser(t, tx, a, "alice", access.RoleSecurityOfficer)
		v = upsertVuln(t, tx, fullTriage(triageVuln(a, "CVE-2026-0003"), u, tenancy.User{}, u, u, ""))
		return nil
	})
	// A re-import carries fresh triage defaults; the stored state wins.
	again := triageVuln(a, v.VulnID)
	again.Summary, again.Aliases, again.UpdatedAt = "updated", []string{"GHSA-xxxx"}, clock.Norm(t0.Add(time.Hour))
	write(t, db, func(tx *store.Tx) error {
		got, created, err := tx.UpsertVulnerability(ctx, again)
		if err != nil || created || got.ID != v.ID {
			t.Fatalf("re-upsert: created=%v id %s %v", created, got.ID, err)
		}
		want := v
		want.Summary, want.Aliases, want.OSV, want.UpdatedAt = again.Summary, again.Aliases, again.OSV, again.UpdatedAt
		sameJSON(t, "re-upsert result", got, want)
		stored, err := tx.VulnerabilityByID(ctx, a.ID, v.ID)
		sameJSON(t, "stored after re-upsert", stored, want)
		return err
	})
}

func testTriageUpdateGuard(t *testing.T, db *store.DB) {
	ctx := context.Background()
	var a, b tenancy.Org
	var v vuln.Vulnerability
	var u tenancy.User
	write(t, db, func(tx *store.Tx) error {
		a, b = newOrg(t, tx, "a"), newOrg(t, tx, "b")
		u = triageUser(t, tx, a, "alice", access.RoleSecurityOfficer)
		v = upsertVuln(t, tx, triageVuln(a, "CVE-2026-0004"))
		return nil
	})
	changed := fullTriage(v, u, tenancy.User{}, u, u, "")
	err := db.Write(ctx, func(tx *store.Tx) error { return tx.UpdateVulnerabilityTriage(ctx, changed, 1) })
	wantKind(t, err, problem.KindConflict, "update with a stale escalation level")
	foreign := changed
	foreign.OrgID = b.ID
	err = db.Write(ctx, func(tx *store.Tx) error { return tx.UpdateVulnerabilityTriage(ctx, foreign, 0) })
	wantKind(t, err, problem.KindConflict, "update through another org")
	read(t, db, func(tx *store.Tx) error {
		got, err := tx.VulnerabilityByID(ctx, a.ID, v.ID)
		sameJSON(t, "after refused updates", got, v)
		return err
	})
	write(t, db, func(tx *store.Tx) error { return tx.UpdateVulnerabilityTriage(ctx, changed, 0) })
	read(t, db, func(tx *store.Tx) error {
		got, err := tx.VulnerabilityByID(ctx, a.ID, v.ID)
		sameJSON(t, "after the update", got, changed)
		return err
	})
	// Clearing optional parts stores them as absent.
	cleared := changed
	cleared.OwnerID, cleared.DeputyID, cleared.EscalationChain, cleared.DuplicateOf = "", "", []string{}, ""
	cleared.Assessment, cleared.CRA, cleared.RiskAcceptance, cleared.FixReleasedAt = nil, nil, nil, nil
	cleared.SLA.Remediation, cleared.Escalation = nil, vuln.Escalation{}
	cleared.Stage, cleared.Priority, cleared.KnownExploited = vuln.Triaging, "", false
	write(t, db, func(tx *store.Tx) error { return tx.UpdateVulnerabilityTriage(ctx, cleared, changed.Escalation.Level) })
	read(t, db, func(tx *store.Tx) error {
		got, err := tx.VulnerabilityByID(ctx, a.ID, v.ID)
		sameJSON(t, "after clearing", got, cleared)
		return err
	})
}

func testTriageForeignKeys(t *testing.T, db *store.DB) {
	ctx := context.Background()
	var a tenancy.Org
	var v vuln.Vulnerability
	write(t, db, func(tx *store.Tx) error {
		a = newOrg(t, tx, "a")
		v = upsertVuln(t, tx, triageVuln(a, "CVE-2026-0005"))
		return nil
	})
	for name, edit := range map[string]func(*vuln.Vulnerability){
		"unknown owner":     func(v *vuln.Vulnerability) { v.OwnerID = id.New() },
		"unknown deputy":    func(v *vuln.Vulnerability) { v.DeputyID = id.New() },
		"unknown duplicate": func(v *vuln.Vulnerability) { v.DuplicateOf = id.New() },
	} {
		bad := v
		edit(&bad)
		if err := db.Write(ctx, func(tx *store.Tx) error { return tx.UpdateVulnerabilityTriage(ctx, bad, 0) }); err == nil {
			t.Fatalf("%s: stored", name)
		}
	}
}

// dueVuln stores a vulnerability whose next escalation is at (nil: none)
// and whose risk acceptance, if expires is set, is in force until then.
func dueVuln(t *testing.T, tx *store.Tx, org tenancy.Org, vulnID string, at, expires *time.Time) vuln.Vulnerability {
	t.Helper()
	v := triageVuln(org, vulnID)
	v.Escalation.NextAt = at
	if expires != nil {
		v.Stage = vuln.RiskAccepted
		v.RiskAcceptance = &vuln.RiskAcceptance{ApproverID: "x", ExpiresAt: *expires}
	}
	return upsertVuln(t, tx, v)
}

// sweepAll pages through a sweep query two rows at a time.
func sweepAll(t *testing.T, db *store.DB, now time.Time,
	find func(tx *store.Tx, now time.Time, after vuln.DueRef, limit int) ([]vuln.DueRef, error)) []vuln.DueRef {
	t.Helper()
	var all []vuln.DueRef
	var cursor vuln.DueRef
	for {
		var page []vuln.DueRef
		read(t, db, func(tx *store.Tx) error {
			var err error
			page, err = find(tx, now, cursor, 2)
			return err
		})
		all = append(all, page...)
		if len(page) < 2 {
			return all
		}
		cursor = page[len(page)-1]
	}
}

func checkSweep(t *testing.T, what string, got []vuln.DueRef, want []vuln.Vulnerability, at func(vuln.Vulnerability) time.Time) {
	t.Helper()
	sort.Slice(want, func(i, j int) bool {
		ai, aj := at(want[i]), at(want[j])
		return ai.Before(aj) || ai.Equal(aj) && want[i].ID < want[j].ID
	})
	if len(got) != len(want) {
		t.Fatalf("%s: %d rows, want %d: %+v", what, len(got), len(want), got)
	}
	for i := range want {
		if got[i].ID != want[i].ID || got[i].OrgID != want[i].OrgID || !got[i].At.Equal(at(want[i])) {
			t.Fatalf("%s: row %d is %+v, want %s at %v", what, i, got[i], want[i].VulnID, at(want[i]))
		}
	}
}

func testTriageEscalationIndex(t *testing.T, db *store.DB) {
	ctx := context.Background()
	base := clock.Norm(t0)
	h := func(n int) *time.Time { x := base.Add(time.Duration(n) * time.Hour); return &x }
	var due []vuln.Vulnerability
	write(t, db, func(tx *store.Tx) error {
		a, b := newOrg(t, tx, "a"), newOrg(t, tx, "b")
		due = append(due,
			dueVuln(t, tx, a, "A-1", h(1), nil),
			dueVuln(t, tx, b, "B-1", h(2), nil), // another organization: the runner serves all
			dueVuln(t, tx, a, "A-2", h(2), nil), // same time: ordered by id
			dueVuln(t, tx, b, "B-2", h(2), nil),
			dueVuln(t, tx, a, "A-3", h(3), nil))
		dueVuln(t, tx, a, "A-4", h(4), nil) // exactly now: not yet
		dueVuln(t, tx, a, "A-5", h(9), nil) // later
		dueVuln(t, tx, a, "A-6", nil, nil)  // nothing to escalate
		return nil
	})
	got := sweepAll(t, db, *h(4), func(tx *store.Tx, now time.Time, after vuln.DueRef, limit int) ([]vuln.DueRef, error) {
		return tx.VulnerabilitiesToEscalate(ctx, now, after, limit)
	})
	checkSweep(t, "VulnerabilitiesToEscalate", got, due, func(v vuln.Vulnerability) time.Time { return *v.Escalation.NextAt })
}

func testTriageRiskExpiryIndex(t *testing.T, db *store.DB) {
	ctx := context.Background()
	base := clock.Norm(t0)
	h := func(n int) *time.Time { x := base.Add(time.Duration(n) * time.Hour); return &x }
	var expired []vuln.Vulnerability
	var ended vuln.Vulnerability
	write(t, db, func(tx *store.Tx) error {
		a, b := newOrg(t, tx, "a"), newOrg(t, tx, "b")
		expired = append(expired,
			dueVuln(t, tx, a, "A-1", nil, h(1)),
			dueVuln(t, tx, b, "B-1", nil, h(2)),
			dueVuln(t, tx, a, "A-2", nil, h(2)),
			dueVuln(t, tx, a, "A-3", nil, h(4))) // expires exactly now: expired
		dueVuln(t, tx, a, "A-4", nil, h(5))
		// An acceptance no longer in force (revoked: back to remediation)
		// is not swept, whatever its expiry.
		ended = dueVuln(t, tx, a, "A-5", nil, h(1))
		ended.Stage = vuln.Remediation
		return tx.UpdateVulnerabilityTriage(ctx, ended, 0)
	})
	got := sweepAll(t, db, *h(4), func(tx *store.Tx, now time.Time, after vuln.DueRef, limit int) ([]vuln.DueRef, error) {
		return tx.VulnerabilitiesRiskExpired(ctx, now, after, limit)
	})
	checkSweep(t, "VulnerabilitiesRiskExpired", got, expired, func(v vuln.Vulnerability) time.Time { return v.RiskAcceptance.ExpiresAt })
}

func testTriageVulnPerson(t *testing.T, db *store.DB) {
	ctx := context.Background()
	var a, b tenancy.Org
	var alice, dora tenancy.User
	write(t, db, func(tx *store.Tx) error {
		a, b = newOrg(t, tx, "a"), newOrg(t, tx, "b")
		alice = triageUser(t, tx, a, "alice", access.RoleSecurityOfficer)
		dora = triageUser(t, tx, a, "dora", access.RoleOperator)
		return tx.DisableUser(ctx, a.ID, dora.ID, clock.Norm(t0))
	})
	read(t, db, func(tx *store.Tx) error {
		p, err := tx.VulnPerson(ctx, a.ID, alice.ID)
		if err != nil || p != (vuln.Person{ID: alice.ID, OrgID: a.ID, Email: alice.Email, Role: access.RoleSecurityOfficer}) {
			t.Fatalf("VulnPerson(alice) = %+v, %v", p, err)
		}
		p, err = tx.VulnPerson(ctx, a.ID, dora.ID)
		if err != nil || !p.Disabled || p.Role != access.RoleOperator {
			t.Fatalf("VulnPerson(dora) = %+v, %v", p, err)
		}
		_, err = tx.VulnPerson(ctx, b.ID, alice.ID)
		wantKind(t, err, problem.KindNotFound, "user through another org")
		return nil
	})
}

// testTriageLockSerializes: a second writer that locks the same
// vulnerability waits for the first to commit and then sees its change.
func testTriageLockSerializes(t *testing.T, db *store.DB) {
	ctx := context.Background()
	var a tenancy.Org
	var v vuln.Vulnerability
	write(t, db, func(tx *store.Tx) error {
		a = newOrg(t, tx, "a")
		v = upsertVuln(t, tx, triageVuln(a, "CVE-2026-0006"))
		return nil
	})
	locked := make(chan struct{})
	var wg sync.WaitGroup
	var firstErr error
	const hold = 300 * time.Millisecond
	wg.Go(func() {
		firstErr = db.Write(ctx, func(tx *store.Tx) error {
			got, err := tx.LockVulnerability(ctx, a.ID, v.ID)
			if err != nil {
				return err
			}
			close(locked)
			time.Sleep(hold)
			got.Escalation.Level, got.StageReason = 1, "first"
			return tx.UpdateVulnerabilityTriage(ctx, got, 0)
		})
	})
	<-locked
	start := time.Now()
	var seen vuln.Vulnerability
	write(t, db, func(tx *store.Tx) error {
		var err error
		seen, err = tx.LockVulnerability(ctx, a.ID, v.ID)
		return err
	})
	waited := time.Since(start)
	wg.Wait()
	if firstErr != nil {
		t.Fatal(firstErr)
	}
	if seen.Escalation.Level != 1 || seen.StageReason != "first" || waited < hold/2 {
		t.Fatalf("second lock after %v saw level %d %q; want it to wait for the first", waited, seen.Escalation.Level, seen.StageReason)
	}
}

// testTriageMigratesExisting builds a database at schema 9 with a
// vulnerability imported before triage existed, then migrates it: the
// record becomes triaging, received and acknowledged at import, with its
// triage clock started but no due dates and nothing to escalate.
func testTriageMigratesExisting(t *testing.T, d store.Dialect) {
	ctx := context.Background()
	dsn := storetest.DSN(t, d)
	driver, raw := "pgx", dsn
	if d == store.SQLite {
		driver, raw = "sqlite", "file:"+dsn+"?_pragma=foreign_keys(1)"
	}
	conn, err := sql.Open(driver, raw)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	for v := 1; v <= 9; v++ {
		name, body := triageMigrationFile(t, v, d)
		for _, stmt := range triageStatements(body) {
			if _, err := conn.ExecContext(ctx, stmt); err != nil {
				t.Fatalf("migration %d: %v\n%s", v, err, stmt)
			}
		}
		if _, err := conn.ExecContext(ctx, "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, 0)", v, name); err != nil {
			t.Fatal(err)
		}
	}
	created := clock.Norm(t0)
	orgID, vulnID := id.New(), id.New()
	if _, err := conn.ExecContext(ctx, "INSERT INTO orgs (id, slug, name, instance, created_at) VALUES ($1, 'old', 'Old', FALSE, $2)", orgID, created.UnixMicro()); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, `INSERT INTO vulnerabilities (id, org_id, vuln_id, aliases, summary, modified, osv, created_at, updated_at)
		VALUES ($1, $2, 'DLA-1-1', '[]', 'old', $3, '{"id":"DLA-1-1"}', $3, $3)`, vulnID, orgID, created.UnixMicro()); err != nil {
		t.Fatal(err)
	}
	conn.Close()

	db, err := store.Open(ctx, dsn, store.Options{Clock: clock.NewFake(t0)})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if n, err := db.Migrate(ctx); err != nil || n != store.SchemaVersion()-9 {
		t.Fatalf("Migrate = %d, %v", n, err)
	}
	read(t, db, func(tx *store.Tx) error {
		v, err := tx.VulnerabilityByID(ctx, orgID, "DLA-1-1")
		if err != nil {
			return err
		}
		ack := v.SLA.Acknowledge
		if v.ID != vulnID || v.Stage != vuln.Triaging || !v.ReceivedAt.Equal(created) || !v.StageChangedAt.Equal(created) ||
			!ack.Start.Equal(created) || !ack.MetAt.Equal(created) || ack.Due != nil ||
			v.SLA.Triage == nil || !v.SLA.Triage.Start.Equal(created) || v.SLA.Triage.Due != nil || v.SLA.Remediation != nil ||
			v.Escalation != (vuln.Escalation{}) || v.EscalationChain == nil || len(v.EscalationChain) != 0 ||
			v.Priority != "" || v.Assessment != nil || v.OwnerID != "" || v.CRA != nil || v.RiskAcceptance != nil {
			t.Fatalf("migrated vulnerability: %+v", v)
		}
		refs, err := tx.VulnerabilitiesToEscalate(ctx, created.Add(365*vuln.Day), vuln.DueRef{}, 10)
		if err != nil || len(refs) != 0 {
			t.Fatalf("migrated data escalates: %v %v", refs, err)
		}
		return nil
	})
}

// triageMigrationFile reads migration v from disk, the dialect's variant
// when there is one.
func triageMigrationFile(t *testing.T, v int, d store.Dialect) (string, string) {
	t.Helper()
	matches, err := filepath.Glob(filepath.Join("migrations", fmt.Sprintf("%04d_*.sql", v)))
	if err != nil || len(matches) == 0 {
		t.Fatalf("migration %d: %v", v, err)
	}
	pick := ""
	for _, m := range matches {
		base := strings.TrimSuffix(filepath.Base(m), ".sql")
		if dot := strings.IndexByte(base, '.'); dot >= 0 {
			if base[dot+1:] == string(d) {
				pick = m
				break
			}
			continue
		}
		if pick == "" {
			pick = m
		}
	}
	b, err := os.ReadFile(pick)
	if err != nil {
		t.Fatal(err)
	}
	base := strings.TrimSuffix(filepath.Base(pick), ".sql")
	if dot := strings.IndexByte(base, '.'); dot >= 0 {
		base = base[:dot]
	}
	_, name, _ := strings.Cut(base, "_")
	return name, string(b)
}

// triageStatements splits a migration as the migrator does: on semicolons
// at line ends, skipping comment lines.
func triageStatements(src string) []string {
	var out []string
	var cur strings.Builder
	for line := range strings.SplitSeq(src, "\n") {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "--") {
			continue
		}
		cur.WriteString(line + "\n")
		if strings.HasSuffix(trimmed, ";") {
			out = append(out, cur.String())
			cur.Reset()
		}
	}
	if strings.TrimSpace(cur.String()) != "" {
		out = append(out, cur.String())
	}
	return out
}
