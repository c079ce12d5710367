package advisory_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/steward-iot/steward/internal/access"
	"github.com/steward-iot/steward/internal/advisory"
	"github.com/steward-iot/steward/internal/problem"
	"github.com/steward-iot/steward/internal/store/storetest"
)

func TestService(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		fn   func(t *testing.T, e *env)
	}{
		{"DraftsAndTrackingIDs", testDrafts},
		{"PublishVersions", testPublishVersions},
		{"Permissions", testPermissions},
		{"ImportKey", testImportKey},
		{"NotificationFailure", testNotificationFailure},
	}
	for _, d := range storetest.Dialects(t) {
		t.Run(string(d), func(t *testing.T) {
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					tc.fn(t, newEnv(t, d, nil))
				})
			}
		})
	}
}

func testDrafts(t *testing.T, e *env) {
	ctx := context.Background()
	p := e.officer()
	a1, err := e.svc.CreateDraft(ctx, p, realisticDraft())
	if err != nil {
		t.Fatal(err)
	}
	if a1.TrackingID != "STEWARD-2026-0001" || a1.Status != advisory.StatusDraft || a1.Version != 0 || !a1.Pending || a1.TLP != "WHITE" {
		t.Fatalf("first draft: %+v", a1)
	}
	// A hand-written id that takes the next generated number is skipped.
	d := realisticDraft()
	d.TrackingID = "STEWARD-2026-0002"
	if _, err := e.svc.CreateDraft(ctx, p, d); err != nil {
		t.Fatal(err)
	}
	a3, err := e.svc.CreateDraft(ctx, p, realisticDraft())
	if err != nil || a3.TrackingID != "STEWARD-2026-0003" {
		t.Fatalf("third draft: %v %v", a3.TrackingID, err)
	}
	_, err = e.svc.CreateDraft(ctx, p, d)
	wantKind(t, err, problem.KindConflict, "duplicate tracking id")
	// Different ids with the same CSAF file name cannot coexist.
	d.TrackingID = "steward.2026.0002"
	if _, err := e.svc.CreateDraft(ctx, p, d); err != nil {
		t.Fatal(err)
	}
	d.TrackingID = "Steward_2026_0002"
	_, err = e.svc.CreateDraft(ctx, p, d)
	wantKind(t, err, problem.KindConflict, "same file name")

	bad := realisticDraft()
	bad.Vulnerabilities[0].CVE = "nope"
	_, err = e.svc.CreateDraft(ctx, p, bad)
	wantKind(t, err, problem.KindInvalid, "invalid draft")

	// Get by id, tracking id, file name.
	for _, ref := range []string{a1.ID, "STEWARD-2026-0001", "steward-2026-0001", "steward-2026-0001.json"} {
		got, err := e.svc.Get(ctx, p, ref)
		if err != nil || got.ID != a1.ID || got.Draft.Title != realisticDraft().Title {
			t.Fatalf("Get(%s) = %+v, %v", ref, got.ID, err)
		}
	}
	// UpdateDraft may rename an unpublished advisory.
	up := realisticDraft()
	up.TrackingID = "ACME-SA-2026-0001"
	up.Title = "Renamed"
	a1, err = e.svc.UpdateDraft(ctx, p, a1.ID, up)
	if err != nil || a1.TrackingID != "ACME-SA-2026-0001" || a1.Title != "Renamed" {
		t.Fatalf("UpdateDraft: %+v %v", a1, err)
	}
	if _, err := e.svc.Get(ctx, p, "STEWARD-2026-0001"); !problem.Is(err, problem.KindNotFound) {
		t.Fatalf("old tracking id still resolves: %v", err)
	}

	page1, next, err := e.svc.List(ctx, p, "", 2)
	if err != nil || len(page1) != 2 || next == "" {
		t.Fatalf("List page 1: %d %q %v", len(page1), next, err)
	}
	page2, next, err := e.svc.List(ctx, p, next, 2)
	if err != nil || len(page2) != 2 || next != "" || page2[0].ID <= page1[1].ID {
		t.Fatalf("List page 2: %d %q %v", len(page2), next, err)
	}
	if got := e.actions(t); !slices.Equal(got[len(got)-5:], []string{"advisory.create", "advisory.create", "advisory.create",
		"advisory.create", "advisory.update"}) {
		t.Fatalf("audit: %v", got)
	}

	// The draft preview is unsigned, status draft, version 1.
	doc, err := e.svc.Document(ctx, p, a1.ID, 0, advisory.ProfileVEX)
	if err != nil {
		t.Fatal(err)
	}
	pd := decode(t, doc.Data)
	if at(t, pd, "document", "tracking", "status") != "draft" || at(t, pd, "document", "tracking", "id") != "ACME-SA-2026-0001-VEX" ||
		doc.Signature != "" || doc.Version != 0 {
		t.Fatalf("preview: %+v", doc)
	}
	_, err = e.svc.Document(ctx, p, a1.ID, 1, advisory.ProfileVEX)
	wantKind(t, err, problem.KindNotFound, "unpublished version")
}

func sum256(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
func sum512(b []byte) string { s := sha512.Sum512(b); return hex.EncodeToString(s[:]) }

func testPublishVersions(t *testing.T, e *env) {
	ctx := context.Background()
	p := e.officer()
	a, err := e.svc.CreateDraft(ctx, p, realisticDraft())
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Hour)
	v1, err := e.svc.Publish(ctx, p, a.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	if v1.Version != 1 || v1.Summary != "Initial release" || len(v1.Documents) != 2 || v1.Severity != "Critical" ||
		!v1.InitialReleaseDate.Equal(v1.ReleasedAt) {
		t.Fatalf("v1: %+v", v1)
	}
	keys, err := e.svc.SigningKeys(ctx, p)
	if err != nil || len(keys) != 1 || keys[0].Fingerprint != v1.KeyFingerprint || keys[0].Private != "" {
		t.Fatalf("generated key: %+v %v", keys, err)
	}
	stored1 := map[advisory.Profile]advisory.Document{}
	for _, prof := range advisory.Profiles {
		d, err := e.svc.Document(ctx, p, a.ID, 1, prof)
		if err != nil {
			t.Fatal(err)
		}
		if sum256(d.Data) != d.SHA256 || sum512(d.Data) != d.SHA512 {
			t.Fatalf("%s: stored digests do not match the bytes", prof)
		}
		if err := advisory.Verify(keys[0].PublicKey, d.Data, d.Signature, e.clock.Now()); err != nil {
			t.Fatalf("%s: signature does not verify: %v", prof, err)
		}
		if err := advisory.Verify(keys[0].PublicKey, append(bytes.Clone(d.Data), ' '), d.Signature, e.clock.Now()); err == nil {
			t.Fatalf("%s: signature verifies changed bytes", prof)
		}
		stored1[prof] = d
	}
	if d := stored1[advisory.ProfileSecurityAdvisory]; d.Path != "white/2026/steward-2026-0001.json" || d.FileName != "steward-2026-0001.json" {
		t.Fatalf("path: %+v", d)
	}
	if d := stored1[advisory.ProfileVEX]; d.Path != "white/2026/steward-2026-0001-vex.json" || d.TrackingID != "STEWARD-2026-0001-VEX" {
		t.Fatalf("VEX path: %+v", d)
	}

	_, err = e.svc.Publish(ctx, p, a.ID, "again")
	wantKind(t, err, problem.KindConflict, "publish without changes")

	// An update: the tracking id is fixed now.
	up := realisticDraft()
	up.TrackingID = "OTHER-1"
	_, err = e.svc.UpdateDraft(ctx, p, a.ID, up)
	wantKind(t, err, problem.KindInvalid, "renaming a published advisory")
	// Saving the published content again leaves nothing to publish.
	if got, err := e.svc.UpdateDraft(ctx, p, a.ID, realisticDraft()); err != nil || got.Pending {
		t.Fatalf("unchanged update: pending=%v %v", got.Pending, err)
	}
	up = realisticDraft()
	up.Vulnerabilities[0].UnderInvestigation = nil
	up.Vulnerabilities[0].KnownNotAffected = append(up.Vulnerabilities[0].KnownNotAffected,
		advisory.NotAffected{ProductID: "gw200-3.0.0", Justification: "vulnerable_code_not_present"})
	if got, err := e.svc.UpdateDraft(ctx, p, a.ID, up); err != nil || !got.Pending || got.Version != 1 {
		t.Fatalf("update: %+v %v", got, err)
	}
	e.clock.Advance(24 * time.Hour)
	v2, err := e.svc.Publish(ctx, p, a.ID, "GW-200 is not affected")
	if err != nil {
		t.Fatal(err)
	}
	if v2.Version != 2 || !v2.InitialReleaseDate.Equal(v1.ReleasedAt) || !v2.ReleasedAt.After(v1.ReleasedAt) {
		t.Fatalf("v2: %+v", v2)
	}
	d2, err := e.svc.Document(ctx, p, a.ID, 2, advisory.ProfileSecurityAdvisory)
	if err != nil {
		t.Fatal(err)
	}
	doc := decode(t, d2.Data)
	hist := at(t, doc, "document", "tracking", "revision_history").([]any)
	if len(hist) != 2 || at(t, hist[0], "number") != "1" || at(t, hist[0], "summary") != "Initial release" ||
		at(t, hist[1], "number") != "2" || at(t, hist[1], "summary") != "GW-200 is not affected" {
		t.Fatalf("revision history: %v", hist)
	}
	if at(t, doc, "document", "tracking", "version") != "2" ||
		at(t, doc, "document", "tracking", "initial_release_date") != at(t, decode(t, stored1[advisory.ProfileSecurityAdvisory].Data), "document", "tracking", "initial_release_date") ||
		at(t, doc, "document", "tracking", "current_release_date") != v2.ReleasedAt.UTC().Truncate(time.Second).Format(time.RFC3339) {
		t.Fatalf("tracking: %v", at(t, doc, "document", "tracking"))
	}
	// Version 1 is untouched, byte for byte.
	for _, prof := range advisory.Profiles {
		d, err := e.svc.Document(ctx, p, a.ID, 1, prof)
		if err != nil || !bytes.Equal(d.Data, stored1[prof].Data) || d.Signature != stored1[prof].Signature {
			t.Fatalf("version 1 %s changed: %v", prof, err)
		}
	}
	got, err := e.svc.Get(ctx, p, a.ID)
	if err != nil || got.Status != advisory.StatusPublished || got.Version != 2 || got.Pending || len(got.Versions) != 2 ||
		got.Versions[0].Summary != "Initial release" || len(got.Versions[1].Documents) != 2 || !got.CurrentReleaseDate.Equal(v2.ReleasedAt) {
		t.Fatalf("Get after v2: %+v %v", got, err)
	}
	if got.Versions[0].PublishedBy.Name != p.Actor.Name {
		t.Fatalf("published by: %+v", got.Versions[0].PublishedBy)
	}

	if acts := e.actions(t); !slices.Equal(acts[len(acts)-6:], []string{"advisory.create", "advisory.key.generate",
		"advisory.publish", "advisory.update", "advisory.update", "advisory.publish"}) {
		t.Fatalf("audit: %v", acts)
	}
	msgs := e.note.all()
	if len(msgs) != 2 || msgs[1].Type != advisory.NotificationType || msgs[1].OrgID != e.org.ID {
		t.Fatalf("notifications: %+v", msgs)
	}
	ev := msgs[1].Data.(advisory.PublishedEvent)
	if ev.Version != 2 || ev.TrackingID != "STEWARD-2026-0001" || !slices.Equal(ev.CVEs, []string{"CVE-2026-21001"}) ||
		ev.Severity != "Critical" || len(ev.Documents) != 2 || !strings.Contains(msgs[1].Subject, "STEWARD-2026-0001 version 2") {
		t.Fatalf("event: %+v subject %q", ev, msgs[1].Subject)
	}
}

func testPermissions(t *testing.T, e *env) {
	ctx := context.Background()
	a, err := e.svc.CreateDraft(ctx, e.as[access.RoleAdmin], realisticDraft())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []access.Role{access.RoleOperator, access.RoleReleaseManager, access.RoleAuditor} {
		p := e.as[r]
		_, err := e.svc.CreateDraft(ctx, p, realisticDraft())
		wantKind(t, err, problem.KindForbidden, string(r)+" creates")
		_, err = e.svc.UpdateDraft(ctx, p, a.ID, realisticDraft())
		wantKind(t, err, problem.KindForbidden, string(r)+" updates")
		_, err = e.svc.Publish(ctx, p, a.ID, "")
		wantKind(t, err, problem.KindForbidden, string(r)+" publishes")
		_, err = e.svc.ImportKey(ctx, p, "x", "")
		wantKind(t, err, problem.KindForbidden, string(r)+" imports a key")
		// Everyone with vuln.read may read.
		if _, err := e.svc.Get(ctx, p, a.ID); err != nil {
			t.Fatalf("%s reads: %v", r, err)
		}
		if _, err := e.svc.Document(ctx, p, a.ID, 0, advisory.ProfileSecurityAdvisory); err != nil {
			t.Fatalf("%s previews: %v", r, err)
		}
	}
	if _, err := e.svc.Publish(ctx, e.as[access.RoleAdmin], a.ID, ""); err != nil {
		t.Fatal(err)
	}
	// Another organization's principal sees nothing.
	other := e.officer()
	other.OrgID = "00000000-0000-7000-8000-000000000000"
	_, err = e.svc.Get(ctx, other, a.ID)
	wantKind(t, err, problem.KindNotFound, "foreign org")
}

// armoredTestKey makes an RSA key elsewhere (as an operator would with
// GnuPG), protected by a passphrase.
func armoredTestKey(t *testing.T, passphrase string) (string, string) {
	t.Helper()
	ent, err := openpgp.NewEntity("Acme PSIRT", "imported", "psirt@acme.example",
		&packet.Config{Algorithm: packet.PubKeyAlgoRSA, RSABits: 2048, Time: func() time.Time { return t0.Add(-time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	if passphrase != "" {
		if err := ent.EncryptPrivateKeys([]byte(passphrase), nil); err != nil {
			t.Fatal(err)
		}
	}
	var b bytes.Buffer
	w, _ := armor.Encode(&b, openpgp.PrivateKeyType, nil)
	if err := ent.SerializePrivateWithoutSigning(w, nil); err != nil {
		t.Fatal(err)
	}
	w.Close()
	return b.String(), strings.ToUpper(hex.EncodeToString(ent.PrimaryKey.Fingerprint))
}

func testImportKey(t *testing.T, e *env) {
	ctx := context.Background()
	p := e.officer()
	a, err := e.svc.CreateDraft(ctx, p, realisticDraft())
	if err != nil {
		t.Fatal(err)
	}
	v1, err := e.svc.Publish(ctx, p, a.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	armored, fp := armoredTestKey(t, "correct horse")
	e.clock.Advance(time.Hour)
	_, err = e.svc.ImportKey(ctx, p, armored, "")
	wantKind(t, err, problem.KindInvalid, "protected key without passphrase")
	_, err = e.svc.ImportKey(ctx, p, armored, "wrong")
	wantKind(t, err, problem.KindInvalid, "wrong passphrase")
	_, err = e.svc.ImportKey(ctx, p, "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nnope\n-----END PGP PUBLIC KEY BLOCK-----", "")
	wantKind(t, err, problem.KindInvalid, "garbage")
	k, err := e.svc.ImportKey(ctx, p, armored, "correct horse")
	if err != nil || k.Fingerprint != fp || k.Private != "" {
		t.Fatalf("ImportKey: %+v %v", k, err)
	}
	if again, err := e.svc.ImportKey(ctx, p, armored, "correct horse"); err != nil || again.Fingerprint != fp {
		t.Fatalf("importing the active key again: %v", err)
	}
	keys, _ := e.svc.SigningKeys(ctx, p)
	if len(keys) != 2 || keys[0].Fingerprint != v1.KeyFingerprint || keys[0].RetiredAt == nil || keys[1].Fingerprint != fp || keys[1].RetiredAt != nil {
		t.Fatalf("keys after import: %+v", keys)
	}
	up := realisticDraft()
	up.Title += " (updated)"
	if _, err := e.svc.UpdateDraft(ctx, p, a.ID, up); err != nil {
		t.Fatal(err)
	}
	v2, err := e.svc.Publish(ctx, p, a.ID, "New signing key")
	if err != nil || v2.KeyFingerprint != fp {
		t.Fatalf("v2 signed by %s, want %s: %v", v2.KeyFingerprint, fp, err)
	}
	d2, _ := e.svc.Document(ctx, p, a.ID, 2, advisory.ProfileVEX)
	d1, _ := e.svc.Document(ctx, p, a.ID, 1, advisory.ProfileVEX)
	if advisory.Verify(keys[1].PublicKey, d2.Data, d2.Signature, e.clock.Now()) != nil || advisory.Verify(keys[0].PublicKey, d1.Data, d1.Signature, e.clock.Now()) != nil {
		t.Fatal("signatures do not verify against their keys")
	}
	if advisory.Verify(keys[0].PublicKey, d2.Data, d2.Signature, e.clock.Now()) == nil {
		t.Fatal("v2 verifies against the retired key")
	}
	if acts := e.actions(t); !slices.Contains(acts, "advisory.key.import") {
		t.Fatalf("audit: %v", acts)
	}
}

func testNotificationFailure(t *testing.T, e *env) {
	ctx := context.Background()
	e.note.fail = true
	a, err := e.svc.CreateDraft(ctx, e.officer(), realisticDraft())
	if err != nil {
		t.Fatal(err)
	}
	v, err := e.svc.Publish(ctx, e.officer(), a.ID, "")
	if err != nil || v.Version != 1 || len(e.note.all()) != 1 {
		t.Fatalf("publish with a failing notifier: %+v %v", v, err)
	}
}

// TestPublishConcurrently: two publishes of the same draft race; exactly
// one becomes version 1.
func TestPublishConcurrently(t *testing.T) {
	t.Parallel()
	for _, d := range storetest.Dialects(t) {
		t.Run(string(d), func(t *testing.T) {
			e := newEnv(t, d, nil)
			ctx := context.Background()
			a, err := e.svc.CreateDraft(ctx, e.officer(), realisticDraft())
			if err != nil {
				t.Fatal(err)
			}
			errs := make(chan error, 4)
			for range 4 {
				go func() { _, err := e.svc.Publish(ctx, e.officer(), a.ID, ""); errs <- err }()
			}
			var ok int
			for range 4 {
				if err := <-errs; err == nil {
					ok++
				} else if !problem.Is(err, problem.KindConflict) {
					t.Fatalf("concurrent publish: %v", err)
				}
			}
			got, _ := e.svc.Get(ctx, e.officer(), a.ID)
			if ok != 1 || got.Version != 1 || len(got.Versions) != 1 {
				t.Fatalf("%d publishes won; version %d", ok, got.Version)
			}
			keys, _ := e.svc.SigningKeys(ctx, e.officer())
			if len(keys) != 1 {
				t.Fatalf("%d keys generated", len(keys))
			}
		})
	}
}
