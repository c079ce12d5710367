package trust_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/secure-systems-lab/go-securesystemslib/cjson"

	"github.com/steward-iot/steward/internal/access"
	"github.com/steward-iot/steward/internal/audit"
	"github.com/steward-iot/steward/internal/clock"
	"github.com/steward-iot/steward/internal/problem"
	"github.com/steward-iot/steward/internal/store"
	"github.com/steward-iot/steward/internal/store/storetest"
	"github.com/steward-iot/steward/internal/tenancy"
	"github.com/steward-iot/steward/internal/trust"
)

// ceremony is a trust.Service over a real database, with principals of
// every role in one organization and the repository served over HTTP.
type ceremony struct {
	t     *testing.T
	ctx   context.Context
	db    *store.DB
	svc   *trust.Service
	blobs *blobs
	as    map[access.Role]access.Principal
	srv   *httptest.Server
}

func newCeremony(t *testing.T, d store.Dialect) *ceremony {
	t.Helper()
	ctx := context.Background()
	db := storetest.New(t, d, clock.Real)
	ten := tenancy.NewService(db.Tenancy(), clock.Real)
	_, secret, _, err := ten.Bootstrap(ctx, "acme", "Acme")
	if err != nil {
		t.Fatal(err)
	}
	admin, err := ten.Authenticate(ctx, secret)
	if err != nil {
		t.Fatal(err)
	}
	c := &ceremony{t: t, ctx: ctx, db: db, blobs: &blobs{}, as: map[access.Role]access.Principal{access.RoleAdmin: admin}}
	for _, r := range access.Roles[1:] {
		tok, err := ten.CreateToken(ctx, admin, tenancy.CreateTokenRequest{Name: string(r), Role: r})
		if err != nil {
			t.Fatal(err)
		}
		if c.as[r], err = ten.Authenticate(ctx, tok.Secret); err != nil {
			t.Fatal(err)
		}
	}
	c.svc = trust.NewService(db.TUFMeta, db, c.blobs, clock.Real, nil)
	c.svc.SetAudit(db.Audit())
	c.srv = httptest.NewServer(c.svc.Handler(admin.OrgID))
	t.Cleanup(c.srv.Close)
	return c
}

// offlineKey is a key kept "elsewhere": the test signs with it directly.
type offlineKey struct {
	priv crypto.Signer
	pem  string
	id   string
}

func newOfflineKey(t *testing.T, role trust.Role) offlineKey {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	s, err := trust.NewSigner(role, priv)
	if err != nil {
		t.Fatal(err)
	}
	return offlineKey{priv: priv, pem: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), id: s.KeyID()}
}

// sign signs the canonical form of what Unsigned exported, as
// `steward keys sign` does.
func (k offlineKey) sign(t *testing.T, u trust.UnsignedMetadata) trust.OfflineSignature {
	t.Helper()
	canonical, err := cjson.EncodeCanonical(u.Signed)
	if err != nil {
		t.Fatal(err)
	}
	return k.signBytes(t, u, canonical)
}

func (k offlineKey) signBytes(t *testing.T, u trust.UnsignedMetadata, payload []byte) trust.OfflineSignature {
	t.Helper()
	s, err := trust.NewSigner(u.Role, k.priv)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	return trust.OfflineSignature{Role: u.Role, Version: u.Version, SignedSHA256: u.SignedSHA256, KeyID: sig.KeyID,
		Sig: hex.EncodeToString(sig.Signature)}
}

func pems(keys ...offlineKey) []string {
	var out []string
	for _, k := range keys {
		out = append(out, k.pem)
	}
	return out
}

func (c *ceremony) unsigned(role trust.Role) trust.UnsignedMetadata {
	c.t.Helper()
	u, err := c.svc.Unsigned(c.ctx, c.as[access.RoleReleaseManager], role)
	if err != nil {
		c.t.Fatal(err)
	}
	return u
}

func (c *ceremony) add(role trust.Role, sig trust.OfflineSignature) trust.SigningState {
	c.t.Helper()
	st, err := c.svc.AddSignature(c.ctx, c.as[access.RoleReleaseManager], role, sig)
	if err != nil {
		c.t.Fatal(err)
	}
	return st
}

// served reports whether the repository serves name.
func (c *ceremony) served(name string) bool {
	c.t.Helper()
	_, err := c.db.TUFMeta(c.as[access.RoleAdmin].OrgID).Get(c.ctx, name)
	if err != nil && !errors.Is(err, trust.ErrNotFound) {
		c.t.Fatal(err)
	}
	return err == nil
}

func (c *ceremony) auditActions() []string {
	c.t.Helper()
	evs, _, err := audit.NewService(c.db.Audit()).List(c.ctx, c.as[access.RoleAdmin], audit.Query{Action: "tuf.", Limit: 500})
	if err != nil {
		c.t.Fatal(err)
	}
	var out []string
	for _, e := range evs {
		out = append(out, e.Action)
	}
	slices.Reverse(out)
	return out
}

func roleStatus(t *testing.T, st trust.RepoStatus, role trust.Role) trust.RoleStatus {
	t.Helper()
	for _, r := range st.Roles {
		if r.Role == role {
			return r
		}
	}
	t.Fatalf("no %s in status %+v", role, st)
	return trust.RoleStatus{}
}

func wantProblem(t *testing.T, err error, k problem.Kind, detail string) {
	t.Helper()
	if err == nil || problem.KindOf(err) != k || !strings.Contains(err.Error(), detail) {
		t.Fatalf("error %v, want kind %d saying %q", err, k, detail)
	}
}

func TestCeremony(t *testing.T) {
	for _, d := range storetest.Dialects(t) {
		t.Run(string(d), func(t *testing.T) { testCeremony(t, d) })
	}
}

func testCeremony(t *testing.T, d store.Dialect) {
	c := newCeremony(t, d)
	rm := c.as[access.RoleReleaseManager]
	r1, r2, tk := newOfflineKey(t, trust.RoleRoot), newOfflineKey(t, trust.RoleRoot), newOfflineKey(t, trust.RoleTargets)

	st, err := c.svc.Status(c.ctx, rm)
	if err != nil || st.Initialized || len(st.Warnings) != 1 || !strings.Contains(st.Warnings[0], "EVERY key online") {
		t.Fatalf("status before init = %+v, %v", st, err)
	}
	st, err = c.svc.Init(c.ctx, rm, trust.InitRequest{RootKeys: pems(r1, r2), RootThreshold: 2, TargetsKeys: pems(tk)})
	if err != nil {
		t.Fatal(err)
	}
	root, targets := roleStatus(t, st, trust.RoleRoot), roleStatus(t, st, trust.RoleTargets)
	if root.Online || targets.Online || root.Threshold != 2 || len(root.Keys) != 2 || root.Version != 0 || root.Staged == nil ||
		root.Staged.Version != 1 || root.Staged.Requirements[0].Needed != 2 {
		t.Fatalf("root after init: %+v", root)
	}
	if targets.Staged == nil || targets.Staged.Version != 1 || targets.Keys[0].KeyID != tk.id || targets.Keys[0].Online {
		t.Fatalf("targets after init: %+v", targets)
	}
	for _, role := range []trust.Role{trust.RoleSnapshot, trust.RoleTimestamp} {
		if rs := roleStatus(t, st, role); !rs.Online || !rs.Keys[0].Online {
			t.Fatalf("%s is not online: %+v", role, rs)
		}
	}
	if slices.ContainsFunc(st.Warnings, func(w string) bool { return strings.Contains(w, "online") }) {
		t.Fatalf("warnings about online keys with offline root and targets: %v", st.Warnings)
	}
	if err := c.svc.Refresh(c.ctx); err != nil {
		t.Fatalf("refresh before anything is published: %v", err)
	}

	u := c.unsigned(trust.RoleRoot)
	canonical, err := cjson.EncodeCanonical(u.Signed)
	if sum := sha256.Sum256(canonical); err != nil || hex.EncodeToString(sum[:]) != u.SignedSHA256 || u.Version != 1 {
		t.Fatalf("unsigned root: version %d, sha256 %s, canonical sha256 %x (%v)", u.Version, u.SignedSHA256, sum, err)
	}

	// Refused, and nothing published: a key not in root, bytes other than
	// the staged version's, the wrong version, a damaged signature, a
	// signature claiming to be of other bytes, one meant for targets.
	refused := []struct {
		name   string
		role   trust.Role
		sig    trust.OfflineSignature
		kind   problem.Kind
		detail string
	}{
		{"key not in role", trust.RoleRoot, tk.sign(t, u), problem.KindInvalid, "may not sign root version 1"},
		{"other bytes", trust.RoleRoot, r1.signBytes(t, u, []byte(`{"_type":"root"}`)), problem.KindInvalid, "does not verify"},
		{"wrong version", trust.RoleRoot, func() trust.OfflineSignature { s := r1.sign(t, u); s.Version = 7; return s }(),
			problem.KindConflict, "root version 1 awaits signatures, not version 7"},
		{"not hex", trust.RoleRoot, func() trust.OfflineSignature { s := r1.sign(t, u); s.Sig = "zz"; return s }(),
			problem.KindInvalid, "not a hex signature"},
		{"claims other bytes", trust.RoleRoot, func() trust.OfflineSignature {
			s := r1.sign(t, u)
			s.SignedSHA256 = strings.Repeat("0", 64)
			return s
		}(), problem.KindConflict, "covers other bytes"},
		{"role mismatch", trust.RoleTargets, r1.sign(t, u), problem.KindInvalid, "the signature is for \"root\", not targets"},
	}
	for _, r := range refused {
		_, err := c.svc.AddSignature(c.ctx, rm, r.role, r.sig)
		wantProblem(t, err, r.kind, r.detail)
	}
	if c.served("1.root.json") || c.served("root.json") {
		t.Fatal("root published by refused signatures")
	}
	for _, role := range []access.Role{access.RoleOperator, access.RoleAuditor, access.RoleSecurityOfficer} {
		_, err := c.svc.AddSignature(c.ctx, c.as[role], trust.RoleRoot, r1.sign(t, u))
		wantProblem(t, err, problem.KindForbidden, "may not")
		_, err = c.svc.Init(c.ctx, c.as[role], trust.InitRequest{RootKeys: pems(r1), RootThreshold: 1, TargetsKeys: pems(tk)})
		wantProblem(t, err, problem.KindForbidden, "may not")
		if _, err := c.svc.Unsigned(c.ctx, c.as[role], trust.RoleRoot); err != nil {
			t.Fatalf("%s reading unsigned root: %v", role, err)
		}
	}

	state := c.add(trust.RoleRoot, r1.sign(t, u))
	if state.Published || state.Requirements[0].Needed != 1 || !slices.Equal(state.Requirements[0].Signed, []string{r1.id}) {
		t.Fatalf("after one root signature: %+v", state)
	}
	// The same key again counts once.
	if state = c.add(trust.RoleRoot, r1.sign(t, u)); state.Published || len(state.Requirements[0].Signed) != 1 {
		t.Fatalf("after the same key again: %+v", state)
	}
	if state = c.add(trust.RoleRoot, r2.sign(t, u)); !state.Published || state.Requirements[0].Needed != 0 {
		t.Fatalf("after two root signatures: %+v", state)
	}
	if !c.served("1.root.json") || c.served("timestamp.json") {
		t.Fatal("root 1 not published, or a timestamp before targets are signed")
	}
	// The same signature again is a replay of a published version.
	_, err = c.svc.AddSignature(c.ctx, rm, trust.RoleRoot, r1.sign(t, u))
	wantProblem(t, err, problem.KindConflict, "no root version awaits signatures")
	// Init is refused now that devices may trust root 1.
	_, err = c.svc.Init(c.ctx, rm, trust.InitRequest{RootKeys: pems(r1), RootThreshold: 1, TargetsKeys: pems(tk)})
	wantProblem(t, err, problem.KindConflict, "cannot be initialized again")

	// A release while targets is offline stays staged until signed.
	image := []byte("firmware 1.0")
	c.blobs.put(sha256hex(image), image)
	if err := c.svc.Publish(c.ctx, rm.OrgID, []trust.Target{target("gw/1.0/fw.bin", image, `{"release_id":"r-1","release_counter":1}`)}); err != nil {
		t.Fatal(err)
	}
	st, _ = c.svc.Status(c.ctx, rm)
	targets = roleStatus(t, st, trust.RoleTargets)
	if targets.Staged == nil || len(targets.Staged.Targets) != 1 || targets.Staged.Targets[0].ReleaseID != "r-1" || targets.Version != 0 {
		t.Fatalf("targets with a staged release: %+v", targets)
	}
	if !slices.ContainsFunc(st.Warnings, func(w string) bool { return strings.Contains(w, "devices do not see its 1 new target file(s)") }) {
		t.Fatalf("warnings: %v", st.Warnings)
	}
	tu := c.unsigned(trust.RoleTargets)
	old := tu
	// Another release changes the staged bytes: a signature over the
	// first export no longer fits.
	image2 := []byte("firmware 1.1")
	c.blobs.put(sha256hex(image2), image2)
	if err := c.svc.Publish(c.ctx, rm.OrgID, []trust.Target{target("gw/1.1/fw.bin", image2, `{"release_id":"r-2","release_counter":2}`)}); err != nil {
		t.Fatal(err)
	}
	_, err = c.svc.AddSignature(c.ctx, rm, trust.RoleTargets, tk.sign(t, old))
	wantProblem(t, err, problem.KindConflict, "export it again")
	tu = c.unsigned(trust.RoleTargets)
	if state = c.add(trust.RoleTargets, tk.sign(t, tu)); !state.Published || state.Version != 1 {
		t.Fatalf("targets signed: %+v", state)
	}
	up := newClient(t, c.srv.URL, t.TempDir(), func() []byte { b, _ := c.db.TUFMeta(rm.OrgID).Get(c.ctx, "1.root.json"); return b })
	for path, want := range map[string][]byte{"gw/1.0/fw.bin": image, "gw/1.1/fw.bin": image2} {
		info, err := up.GetTargetInfo(path)
		if err != nil {
			t.Fatal(err)
		}
		if _, data, err := up.DownloadTarget(info, "", ""); err != nil || !bytes.Equal(data, want) {
			t.Fatalf("download %s: %v", path, err)
		}
	}
	if err := c.svc.Refresh(c.ctx); err != nil {
		t.Fatal(err)
	}

	// Rotation: root 2 needs 2 of {r1, r2} and 1 of {n1}.
	n1 := newOfflineKey(t, trust.RoleRoot)
	_, err = c.svc.RotateRoot(c.ctx, c.as[access.RoleOperator], trust.RotateRootRequest{RootKeys: pems(n1), RootThreshold: 1})
	wantProblem(t, err, problem.KindForbidden, "may not")
	state, err = c.svc.RotateRoot(c.ctx, rm, trust.RotateRootRequest{RootKeys: pems(n1), RootThreshold: 1})
	if err != nil || state.Published || state.Version != 2 || len(state.Requirements) != 2 ||
		state.Requirements[0].Keys != "root version 1" || state.Requirements[0].Needed != 2 ||
		state.Requirements[1].Keys != "root version 2" || !slices.Equal(state.Requirements[1].Missing, []string{n1.id}) {
		t.Fatalf("rotate = %+v, %v", state, err)
	}
	u2 := c.unsigned(trust.RoleRoot)
	_, err = c.svc.AddSignature(c.ctx, rm, trust.RoleRoot, r1.sign(t, u)) // version 1's, replayed
	wantProblem(t, err, problem.KindConflict, "root version 1 is already published")
	c.add(trust.RoleRoot, n1.sign(t, u2))
	c.add(trust.RoleRoot, r1.sign(t, u2))
	if c.served("2.root.json") {
		t.Fatal("root 2 published with one of the two old keys")
	}
	if state = c.add(trust.RoleRoot, r2.sign(t, u2)); !state.Published || state.Requirements[0].Needed != 0 || state.Requirements[1].Needed != 0 {
		t.Fatalf("root 2 signed: %+v", state)
	}

	// Renewing targets stages a version for the offline key.
	if state, err = c.svc.RenewTargets(c.ctx, rm); err != nil || state.Published || state.Version != 2 {
		t.Fatalf("renew targets = %+v, %v", state, err)
	}

	want := []string{"tuf.init", "tuf.sign", "tuf.sign", "tuf.sign", "tuf.sign", "tuf.rotate_root", "tuf.sign", "tuf.sign", "tuf.sign", "tuf.renew_targets"}
	if got := c.auditActions(); !slices.Equal(got, want) {
		t.Fatalf("audit = %v, want %v", got, want)
	}
}

// An Init whose root was never signed may be redone; the snapshot and
// timestamp keys the server made are kept.
func TestCeremonyReinit(t *testing.T) {
	c := newCeremony(t, store.SQLite)
	rm := c.as[access.RoleReleaseManager]
	first, err := c.svc.Init(c.ctx, rm, trust.InitRequest{RootKeys: pems(newOfflineKey(t, trust.RoleRoot)), RootThreshold: 1,
		TargetsKeys: pems(newOfflineKey(t, trust.RoleTargets))})
	if err != nil {
		t.Fatal(err)
	}
	// A threshold above the keys changes nothing.
	r1, r2, tk := newOfflineKey(t, trust.RoleRoot), newOfflineKey(t, trust.RoleRoot), newOfflineKey(t, trust.RoleTargets)
	_, err = c.svc.Init(c.ctx, rm, trust.InitRequest{RootKeys: pems(r1, r2), RootThreshold: 3, TargetsKeys: pems(tk)})
	wantProblem(t, err, problem.KindInvalid, "root threshold 3 must be between 1 and its 2 keys")
	_, err = c.svc.Init(c.ctx, rm, trust.InitRequest{RootKeys: pems(r1), RootThreshold: 1, TargetsKeys: pems(r1)})
	wantProblem(t, err, problem.KindInvalid, "each role needs keys of its own")
	_, err = c.svc.Init(c.ctx, rm, trust.InitRequest{RootKeys: []string{"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"},
		RootThreshold: 1, TargetsKeys: pems(tk)})
	wantProblem(t, err, problem.KindInvalid, "this is a private key")
	st, _ := c.svc.Status(c.ctx, rm)
	if roleStatus(t, st, trust.RoleRoot).Keys[0].KeyID != roleStatus(t, first, trust.RoleRoot).Keys[0].KeyID {
		t.Fatal("a refused Init changed the repository")
	}

	second, err := c.svc.Init(c.ctx, rm, trust.InitRequest{RootKeys: pems(r1, r2), RootThreshold: 2, TargetsKeys: pems(tk)})
	if err != nil {
		t.Fatal(err)
	}
	for _, role := range []trust.Role{trust.RoleSnapshot, trust.RoleTimestamp} {
		if a, b := roleStatus(t, first, role).Keys[0].KeyID, roleStatus(t, second, role).Keys[0].KeyID; a != b {
			t.Fatalf("%s key changed from %s to %s", role, a, b)
		}
	}
	// A fresh service (a restart) sees the second Init, not the first.
	svc := trust.NewService(c.db.TUFMeta, c.db, c.blobs, clock.Real, nil)
	svc.SetAudit(c.db.Audit())
	u, err := svc.Unsigned(c.ctx, rm, trust.RoleRoot)
	if err != nil || len(u.Requirements) != 1 || !sameIDs(append(u.Requirements[0].Missing, u.Requirements[0].Signed...), r1.id, r2.id) {
		t.Fatalf("unsigned root after restart: %+v, %v", u, err)
	}
	if _, err := svc.AddSignature(c.ctx, rm, trust.RoleRoot, r1.sign(t, u)); err != nil {
		t.Fatal(err)
	}
}

func sameIDs(got []string, want ...string) bool {
	slices.Sort(got)
	slices.Sort(want)
	return slices.Equal(got, want)
}

// The embedded default keeps every key online; status says so plainly, and
// the org cannot be initialized over it.
func TestCeremonyDefaultOnline(t *testing.T) {
	c := newCeremony(t, store.SQLite)
	rm := c.as[access.RoleReleaseManager]
	image := []byte("fw")
	c.blobs.put(sha256hex(image), image)
	if err := c.svc.Publish(c.ctx, rm.OrgID, []trust.Target{target("a.bin", image, "")}); err != nil {
		t.Fatal(err)
	}
	st, err := c.svc.Status(c.ctx, c.as[access.RoleAuditor])
	if err != nil {
		t.Fatal(err)
	}
	for _, rs := range st.Roles {
		if !rs.Online || rs.Staged != nil || rs.Version == 0 || rs.Expires == nil {
			t.Fatalf("%s: %+v", rs.Role, rs)
		}
	}
	if len(st.Warnings) != 1 || !strings.Contains(st.Warnings[0], "ALL signing keys are online") {
		t.Fatalf("warnings: %v", st.Warnings)
	}
	_, err = c.svc.Init(c.ctx, rm, trust.InitRequest{RootKeys: pems(newOfflineKey(t, trust.RoleRoot)), RootThreshold: 1,
		TargetsKeys: pems(newOfflineKey(t, trust.RoleTargets))})
	wantProblem(t, err, problem.KindConflict, "rotate-root")
	if got := c.auditActions(); !slices.Equal(got, []string{"tuf.init"}) {
		t.Fatalf("audit of the default repository's creation: %v", got)
	}

	// Rotating to an offline key: the online root key signs for the old
	// root at once, the new key's signature is missing.
	n1 := newOfflineKey(t, trust.RoleRoot)
	state, err := c.svc.RotateRoot(c.ctx, rm, trust.RotateRootRequest{RootKeys: pems(n1), RootThreshold: 1})
	if err != nil || state.Published || state.Requirements[0].Needed != 0 || state.Requirements[1].Needed != 1 {
		t.Fatalf("rotate = %+v, %v", state, err)
	}
	if state = c.add(trust.RoleRoot, n1.sign(t, c.unsigned(trust.RoleRoot))); !state.Published {
		t.Fatalf("root 2 signed by the new key: %+v", state)
	}
	st, _ = c.svc.Status(c.ctx, rm)
	if rs := roleStatus(t, st, trust.RoleRoot); rs.Online || rs.Version != 2 {
		t.Fatalf("root after rotating offline: %+v", rs)
	}
	if !slices.ContainsFunc(st.Warnings, func(w string) bool { return strings.HasPrefix(w, "targets keys are online") }) {
		t.Fatalf("warnings: %v", st.Warnings)
	}
}

// Without an audit log the ceremony refuses to change anything.
func TestCeremonyNeedsAudit(t *testing.T) {
	c := newCeremony(t, store.SQLite)
	svc := trust.NewService(c.db.TUFMeta, c.db, c.blobs, clock.Real, nil)
	_, err := svc.Init(c.ctx, c.as[access.RoleAdmin], trust.InitRequest{RootKeys: pems(newOfflineKey(t, trust.RoleRoot)),
		RootThreshold: 1, TargetsKeys: pems(newOfflineKey(t, trust.RoleTargets))})
	if err == nil || !strings.Contains(err.Error(), "no audit log") {
		t.Fatalf("Init without audit: %v", err)
	}
}

// Offline root and targets expire; status warns a month ahead.
func TestCeremonyExpiryWarning(t *testing.T) {
	c := newCeremony(t, store.SQLite)
	fake := clock.NewFake(time.Now())
	svc := trust.NewService(c.db.TUFMeta, c.db, c.blobs, fake, nil)
	svc.SetAudit(c.db.Audit())
	rm := c.as[access.RoleReleaseManager]
	r1, tk := newOfflineKey(t, trust.RoleRoot), newOfflineKey(t, trust.RoleTargets)
	if _, err := svc.Init(c.ctx, rm, trust.InitRequest{RootKeys: pems(r1), RootThreshold: 1, TargetsKeys: pems(tk)}); err != nil {
		t.Fatal(err)
	}
	u, _ := svc.Unsigned(c.ctx, rm, trust.RoleRoot)
	if _, err := svc.AddSignature(c.ctx, rm, trust.RoleRoot, r1.sign(t, u)); err != nil {
		t.Fatal(err)
	}
	u, _ = svc.Unsigned(c.ctx, rm, trust.RoleTargets)
	if _, err := svc.AddSignature(c.ctx, rm, trust.RoleTargets, tk.sign(t, u)); err != nil {
		t.Fatal(err)
	}
	fake.Advance(70 * 24 * time.Hour) // targets last 90 days
	st, _ := svc.Status(c.ctx, rm)
	if !slices.ContainsFunc(st.Warnings, func(w string) bool { return strings.HasPrefix(w, "targets version 1 expires") }) ||
		slices.ContainsFunc(st.Warnings, func(w string) bool { return strings.HasPrefix(w, "root version") }) {
		t.Fatalf("warnings after 70 days: %v", st.Warnings)
	}
}
