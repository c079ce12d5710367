package ctl

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/steward-iot/steward/internal/api"
	"github.com/steward-iot/steward/internal/audit"
	"github.com/steward-iot/steward/internal/blob"
	"github.com/steward-iot/steward/internal/clock"
	"github.com/steward-iot/steward/internal/inventory"
	"github.com/steward-iot/steward/internal/keys"
	"github.com/steward-iot/steward/internal/release"
	"github.com/steward-iot/steward/internal/store"
	"github.com/steward-iot/steward/internal/store/storetest"
	"github.com/steward-iot/steward/internal/tenancy"
	"github.com/steward-iot/steward/internal/trust"
)

// newTUFTestServer is the admin API with TUF key ceremonies and releases
// signed into the organization's repository, as `steward serve` wires them.
func newTUFTestServer(t *testing.T) *testServer {
	t.Helper()
	isolate(t)
	ctx := context.Background()
	db := storetest.New(t, store.SQLite, clock.Real)
	ten := tenancy.NewService(db.Tenancy(), clock.Real)
	_, secret, _, err := ten.Bootstrap(ctx, "acme", "Acme Corp")
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := blob.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tuf := trust.NewService(db.TUFMeta, db, nil, clock.Real, nil)
	tuf.SetAudit(db.Audit())
	rel := release.NewService(db.Release(), blobs, clock.Real, maxTestArtifact)
	rel.SetPublisher(tuf)
	srv, err := api.New(api.Deps{Tenancy: ten, Audit: audit.NewService(db.Audit()), Idempotency: db.Idempotency(),
		Inventory: inventory.NewService(db.Inventory(), clock.Real), Release: rel, Trust: tuf, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	return &testServer{url: hs.URL, secret: secret, ten: ten}
}

// offlineKeys makes key files as `steward keys generate` does.
func offlineKeys(t *testing.T, dir string, names ...string) map[string]string {
	t.Helper()
	ids := map[string]string{}
	for _, n := range names {
		priv, err := keys.Generate(keys.Ed25519)
		if err != nil {
			t.Fatal(err)
		}
		privPEM, _ := keys.EncodePrivate(priv, "")
		pubPEM, _ := keys.EncodePublic(priv.Public())
		if err := os.WriteFile(filepath.Join(dir, n), privPEM, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, n+".pub"), pubPEM, 0o644); err != nil {
			t.Fatal(err)
		}
		ids[n], _ = keys.KeyID(priv.Public())
	}
	return ids
}

// signFile signs an exported file with a key file, as `steward keys sign
// --yes` does, and writes the signature file.
func signFile(t *testing.T, keyFile, unsignedFile, out string) {
	t.Helper()
	data, err := os.ReadFile(unsignedFile)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := keys.ReadUnsigned(data, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	kd, _ := os.ReadFile(keyFile)
	priv, err := keys.DecodePrivate(kd, nil)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := doc.Sign(priv)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(sig)
	if err := os.WriteFile(out, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestTUFCeremonyCommands(t *testing.T) {
	s := newTUFTestServer(t)
	dir := t.TempDir()
	at := func(n string) string { return filepath.Join(dir, n) }
	ids := offlineKeys(t, dir, "r1", "r2", "t1", "n1")

	r := ok(t, s.ctl(t, "tuf", "status"))
	contains(t, r.out, "no TUF repository yet", "warning: no TUF repository yet: the first release creates one with EVERY key online")

	// Only public keys leave the machine: a private key file is refused
	// before any request.
	s.requests()
	failed(t, s.ctl(t, "tuf", "init", "--root-key", at("r1"), "--root-threshold", "1", "--targets-key", at("t1.pub")),
		"error: --root-key "+at("r1")+": this is a private key")
	for _, req := range s.requests() {
		if req.method == http.MethodPost {
			t.Fatalf("a request was sent with a private key file named: %+v", req)
		}
	}
	failed(t, s.ctl(t, "tuf", "init", "--root-key", at("r1.pub"), "--targets-key", at("t1.pub")), `"root-threshold" not set`)
	failed(t, s.ctl(t, "tuf", "init", "--root-key", at("r1.pub"), "--root-threshold", "3", "--targets-key", at("t1.pub")),
		"error: Bad Request (400): root threshold 3 must be between 1 and its 1 keys")

	r = ok(t, s.ctl(t, "tuf", "init", "--root-key", at("r1.pub"), "--root-key", at("r2.pub"), "--root-threshold", "2",
		"--targets-key", at("t1.pub")))
	contains(t, r.out, "initialized the TUF repository with offline root and targets keys", ids["r1"]+"  ed25519  offline",
		ids["t1"]+"  ed25519  offline", "online (held by the server)", "0 of 2 signatures, waiting for 2 more",
		"warning: root version 1 awaits signatures", "next: steward ctl tuf unsigned root")
	contains(t, rowStarting(t, r.out, "root "), "offline", "2 of 2", "version 1")
	contains(t, rowStarting(t, r.out, "snapshot "), "ONLINE", "1 of 1")
	st := decode[trust.RepoStatus](t, ok(t, s.ctl(t, "--json", "tuf", "status")).out)
	if !st.Initialized || len(st.Roles) != 4 || st.Roles[0].Staged == nil || st.Roles[0].Staged.Requirements[0].Needed != 2 {
		t.Fatalf("status --json = %+v", st)
	}

	// Export to stdout, or to a file with a summary on stderr.
	r = ok(t, s.ctl(t, "tuf", "unsigned", "root"))
	u := decode[trust.UnsignedMetadata](t, r.out)
	if u.Role != trust.RoleRoot || u.Version != 1 || len(u.SignedSHA256) != 64 {
		t.Fatalf("unsigned root = %+v", u)
	}
	r = ok(t, s.ctl(t, "tuf", "unsigned", "root", "--out", at("root.json")))
	contains(t, r.errOut, "root version 1 (sha256 "+u.SignedSHA256+") awaits signatures: 0 of 2 signatures, waiting for 2 more")
	failed(t, s.ctl(t, "tuf", "unsigned", "snapshot"), "give root or targets")

	// Signature files: wrong, damaged, or for the other role.
	signFile(t, at("r1"), at("root.json"), at("r1.sig"))
	signFile(t, at("r2"), at("root.json"), at("r2.sig"))
	failed(t, s.ctl(t, "tuf", "add-signature", "root", at("absent.sig")), "no such file or directory")
	for name, content := range map[string]string{
		"truncated": `{"role":"root","version":1,"keyid":"ab`,
		"unknown":   `{"role":"root","version":1,"signed_sha256":"00","keyid":"ab","sig":"00","extra":1}`,
		"partial":   `{"role":"root","version":1}`,
	} {
		if err := os.WriteFile(at(name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		failed(t, s.ctl(t, "tuf", "add-signature", "root", at(name)), "is not a signature file from 'steward keys sign'")
	}
	failed(t, s.ctl(t, "tuf", "add-signature", "targets", at("r1.sig")), "holds a root signature, not a targets one")

	// Operators and auditors look but do not sign.
	for _, role := range []string{"operator", "auditor"} {
		tok := decode[tenancy.CreatedToken](t, ok(t, s.ctl(t, "--json", "tokens", "create", "--name", role, "--role", role)).out)
		ok(t, s.ctlAs(t, tok.Secret, "tuf", "status"))
		ok(t, s.ctlAs(t, tok.Secret, "tuf", "unsigned", "root"))
		failed(t, s.ctlAs(t, tok.Secret, "tuf", "add-signature", "root", at("r1.sig")), "error: "+at("r1.sig")+": Forbidden (403): role "+role+" may not do release.write")
		failed(t, s.ctlAs(t, tok.Secret, "tuf", "init", "--root-key", at("r1.pub"), "--root-threshold", "1", "--targets-key", at("t1.pub")),
			"Forbidden (403)")
		failed(t, s.ctlAs(t, tok.Secret, "tuf", "rotate-root", "--root-key", at("n1.pub"), "--root-threshold", "1"), "Forbidden (403)")
		failed(t, s.ctlAs(t, tok.Secret, "tuf", "renew-targets"), "Forbidden (403)")
	}

	// Both signatures in one call: the first waits, the second publishes.
	r = ok(t, s.ctl(t, "tuf", "add-signature", "root", at("r1.sig"), at("r2.sig")))
	contains(t, r.out, at("r1.sig")+": root version 1: 1 of 2 signatures, waiting for 1 more: 1 of root version 1 keys "+ids["r2"][:12],
		at("r2.sig")+": root version 1: 2 of 2 signatures, published")
	failed(t, s.ctl(t, "tuf", "add-signature", "root", at("r1.sig")),
		"Conflict (409): no root version awaits signatures (version 1 is published); this signature for version 1 is not needed")

	// A release while targets is offline: recorded, waiting for its signature.
	ok(t, s.ctl(t, "products", "create", "gw", "--name", "Gateway", "--hardware-id", "gw-hw", "--capability", "ab", "--link", "wifi"))
	img, _, _ := randomFile(t, "fw.img", 4096, 9)
	rel := decode[release.Release](t, ok(t, s.ctl(t, "--json", "releases", "create", "--product", "gw", "--version", "1.0", "--artifact", img)).out)
	r = ok(t, s.ctl(t, "tuf", "status"))
	contains(t, r.out, "awaiting signature: gw/1.0/fw.img (4.0 KiB, release "+rel.ID+")",
		"warning: targets version 1 awaits signatures: devices do not see its 1 new target file(s) until it is signed")
	ok(t, s.ctl(t, "tuf", "unsigned", "targets", "--out", at("targets.json")))
	signFile(t, at("t1"), at("targets.json"), at("t1.sig"))
	contains(t, ok(t, s.ctl(t, "tuf", "add-signature", "targets", at("t1.sig"))).out, "targets version 1: 1 of 1 signatures, published")
	if r = ok(t, s.ctl(t, "tuf", "status")); strings.Contains(r.out, "awaiting signature") {
		t.Fatalf("status after signing:\n%s", r.out)
	}

	// Rotation needs both old keys and the new one.
	r = ok(t, s.ctl(t, "tuf", "rotate-root", "--root-key", at("n1.pub"), "--root-threshold", "1"))
	contains(t, r.out, "root version 2: 0 of 2 signatures from root version 1 keys, 0 of 1 signatures from root version 2 keys, waiting for 3 more")
	contains(t, ok(t, s.ctl(t, "tuf", "status")).out, "root version 2 awaits signatures; devices keep trusting version 1 until it is signed",
		"staged version 2")
	contains(t, ok(t, s.ctl(t, "tuf", "renew-targets")).out, "targets version 2: 0 of 1 signatures, waiting for 1 more")

	// The audit log has each step.
	r = ok(t, s.ctl(t, "audit", "list", "--action", "tuf."))
	for _, a := range []string{"tuf.init", "tuf.sign", "tuf.rotate_root", "tuf.renew_targets"} {
		contains(t, r.out, a)
	}
}

// rowStarting returns the line of out that starts with prefix.
func rowStarting(t *testing.T, out, prefix string) string {
	t.Helper()
	for line := range strings.Lines(out) {
		if strings.HasPrefix(line, prefix) {
			return line
		}
	}
	t.Fatalf("no line starting with %q in:\n%s", prefix, out)
	return ""
}
