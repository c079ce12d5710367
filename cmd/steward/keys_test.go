package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/secure-systems-lab/go-securesystemslib/cjson"
	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"

	"github.com/steward-iot/steward/internal/keys"
	"github.com/steward-iot/steward/internal/server"
	"github.com/steward-iot/steward/internal/store"
	"github.com/steward-iot/steward/internal/store/storetest"
	"github.com/steward-iot/steward/internal/trust"
)

// ceremonyServer is a live server on loopback with its bootstrap admin
// token, for driving `steward ctl` against.
type ceremonyServer struct {
	url, token string
}

func startCeremonyServer(t *testing.T, d store.Dialect) ceremonyServer {
	t.Helper()
	cfg := server.Config{Data: t.TempDir(), BootstrapOrg: "acme", Version: "test"}
	if d == store.Postgres {
		cfg.DB = storetest.DSN(t, d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s, err := server.New(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		s.Close()
	})
	tok, err := os.ReadFile(filepath.Join(cfg.Data, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	return ceremonyServer{url: "http://" + ln.Addr().String(), token: strings.TrimSpace(string(tok))}
}

// steward runs the steward command in-process and fails the test on error.
func steward(t *testing.T, args ...string) string {
	t.Helper()
	out, err := run(t, args...)
	if err != nil {
		t.Fatalf("steward %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// stewardFails runs a command that must fail with an error saying want.
func stewardFails(t *testing.T, want string, args ...string) {
	t.Helper()
	out, err := run(t, args...)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("steward %s: error %v, want one saying %q\n%s", strings.Join(args, " "), err, want, out)
	}
}

func wantIn(t *testing.T, s string, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(s, p) {
			t.Fatalf("output lacks %q:\n%s", p, s)
		}
	}
}

func httpStatus(t *testing.T, url string) int {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode
}

func httpBody(t *testing.T, url string) []byte {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", url, res.StatusCode, b)
	}
	return b
}

func goTUFClient(t *testing.T, repo, dir string, firstRoot []byte) *updater.Updater {
	t.Helper()
	root, err := os.ReadFile(filepath.Join(dir, "metadata", "root.json"))
	if err != nil {
		root = firstRoot
	}
	cfg, err := config.New(repo+"/metadata", root)
	if err != nil {
		t.Fatal(err)
	}
	cfg.LocalMetadataDir = filepath.Join(dir, "metadata")
	cfg.LocalTargetsDir = filepath.Join(dir, "targets")
	cfg.RemoteTargetsURL = repo + "/targets"
	up, err := updater.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return up
}

// TestOfflineKeyCeremony runs the whole ceremony through the command line:
// keys made on "disk", a repository whose root (2 of 2) and targets keys
// the server never sees, root and targets signed offline, a release that
// waits for its targets signature, root rotated to new keys, and the
// unmodified go-tuf updater following along, starting from the first root.
// Bad signatures on the way are refused and publish nothing.
func TestOfflineKeyCeremony(t *testing.T) {
	for _, d := range storetest.Dialects(t) {
		t.Run(string(d), func(t *testing.T) { testOfflineKeyCeremony(t, d) })
	}
}

func testOfflineKeyCeremony(t *testing.T, d store.Dialect) {
	for _, k := range []string{"STEWARD_SERVER", "STEWARD_TOKEN", "STEWARD_TOKEN_FILE"} {
		t.Setenv(k, "")
	}
	offline := t.TempDir() // the offline machine's disk
	at := func(name string) string { return filepath.Join(offline, name) }
	pass := at("passphrase")
	if err := os.WriteFile(pass, []byte("correct horse battery staple\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("ROOT2_PASSPHRASE", "another long passphrase")

	// 1. Three offline keys: two for root (one ECDSA), one for targets.
	out := steward(t, "keys", "generate", "--role", "root", "--out", at("root1.key"), "--passphrase-file", pass)
	wantIn(t, out, "generated a root key (ed25519)", "key id:", "encrypted with the passphrase", "-----BEGIN PUBLIC KEY-----")
	steward(t, "keys", "generate", "--role", "root", "--type", "ecdsa-p256", "--out", at("root2.key"), "--passphrase-env", "ROOT2_PASSPHRASE")
	steward(t, "keys", "generate", "--role", "targets", "--out", at("targets1.key"))
	for _, f := range []string{"root1.key", "root2.key", "targets1.key"} {
		fi, err := os.Stat(at(f))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v, mode %v; want 0600", f, err, fi.Mode().Perm())
		}
	}
	root1ID := keyIDOf(t, at("root1.key.pub"))
	root2ID := keyIDOf(t, at("root2.key.pub"))
	targets1ID := keyIDOf(t, at("targets1.key.pub"))
	wantIn(t, steward(t, "keys", "public", at("root2.key"), "--passphrase-env", "ROOT2_PASSPHRASE"), "key id: "+root2ID, "type:   ecdsa-p256")

	srv := startCeremonyServer(t, d)
	ctl := func(args ...string) string {
		t.Helper()
		return steward(t, append([]string{"ctl", "--server", srv.url, "--token", srv.token}, args...)...)
	}
	ctlFails := func(want string, args ...string) {
		t.Helper()
		stewardFails(t, want, append([]string{"ctl", "--server", srv.url, "--token", srv.token}, args...)...)
	}
	repo := srv.url + "/tuf/acme"

	wantIn(t, ctl("tuf", "status"), "no TUF repository yet", "EVERY key online", "ctl tuf init")

	// 2. Initialize with public keys only; root 2 of 2.
	ctlFails("this is a private key", "tuf", "init", "--root-key", at("root1.key"), "--root-threshold", "1", "--targets-key", at("targets1.key.pub"))
	out = ctl("tuf", "init", "--root-key", at("root1.key.pub"), "--root-key", at("root2.key.pub"), "--root-threshold", "2",
		"--targets-key", at("targets1.key.pub"))
	wantIn(t, out, "initialized", "root version 1", "0 of 2 signatures, waiting for 2 more", root1ID, root2ID, targets1ID)
	if c := httpStatus(t, repo+"/metadata/1.root.json"); c != 404 {
		t.Fatalf("unsigned root served: %d", c)
	}

	// 3. Root version 1, signed offline by both root keys.
	ctl("tuf", "unsigned", "root", "--out", at("root.unsigned.json"))
	stewardFails(t, "wrong passphrase", "keys", "sign", "--key", at("root1.key"), "--in", at("root.unsigned.json"), "--out", at("x.json"),
		"--passphrase-env", "ROOT2_PASSPHRASE", "--yes")
	if _, err := os.Stat(at("x.json")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a failed signing wrote a signature file")
	}
	stewardFails(t, "may not sign root version 1", "keys", "sign", "--key", at("targets1.key"), "--in", at("root.unsigned.json"),
		"--out", at("x.json"), "--yes")
	out = steward(t, "keys", "sign", "--key", at("root1.key"), "--in", at("root.unsigned.json"), "--out", at("root-sig1.json"),
		"--passphrase-file", pass, "--yes")
	wantIn(t, out, "You are about to sign root version 1", "threshold 2 of 2 key(s)", root1ID+"  ed25519   <- this key",
		"signed root version 1 with key "+root1ID)

	// Refused on the server, each leaving root unpublished: a key not in
	// the role, a signature over other bytes, a wrong version, a malformed file.
	unsignedRoot := readUnsigned(t, at("root.unsigned.json"))
	canonicalRoot, err := cjson.EncodeCanonical(unsignedRoot.Signed)
	if err != nil {
		t.Fatal(err)
	}
	forged := signRaw(t, at("targets1.key"), "", unsignedRoot, canonicalRoot)
	writeJSON(t, at("forged-key.json"), forged)
	ctlFails("may not sign root version 1", "tuf", "add-signature", "root", at("forged-key.json"))
	otherBytes := signRaw(t, at("root1.key"), pass, unsignedRoot, []byte(`{"_type":"root","version":1}`))
	writeJSON(t, at("other-bytes.json"), otherBytes)
	ctlFails("does not verify", "tuf", "add-signature", "root", at("other-bytes.json"))
	wrongVersion := signRaw(t, at("root1.key"), pass, unsignedRoot, canonicalRoot)
	wrongVersion.Version = 2
	writeJSON(t, at("wrong-version.json"), wrongVersion)
	ctlFails("root version 1 awaits signatures, not version 2", "tuf", "add-signature", "root", at("wrong-version.json"))
	if err := os.WriteFile(at("malformed.json"), []byte(`{"role":"root","version":1,"keyid":`), 0o644); err != nil {
		t.Fatal(err)
	}
	ctlFails("is not a signature file from 'steward keys sign'", "tuf", "add-signature", "root", at("malformed.json"))
	ctlFails("holds a root signature, not a targets one", "tuf", "add-signature", "targets", at("root-sig1.json"))
	if c := httpStatus(t, repo+"/metadata/1.root.json"); c != 404 {
		t.Fatalf("root published by refused signatures: %d", c)
	}

	wantIn(t, ctl("tuf", "add-signature", "root", at("root-sig1.json")), "root version 1: 1 of 2 signatures, waiting for 1 more", root2ID[:12])
	steward(t, "keys", "sign", "--key", at("root2.key"), "--in", at("root.unsigned.json"), "--out", at("root-sig2.json"),
		"--passphrase-env", "ROOT2_PASSPHRASE", "--yes")
	wantIn(t, ctl("tuf", "add-signature", "root", at("root-sig2.json")), "root version 1: 2 of 2 signatures, published")
	firstRoot := httpBody(t, repo+"/metadata/1.root.json")

	// 4. A release while targets is offline: recorded, not yet installable.
	ctl("products", "create", "gw", "--name", "Gateway", "--hardware-id", "gw-hw", "--capability", "ab", "--link", "wifi")
	image := bytes.Repeat([]byte("gateway image 1.0.0\n"), 500)
	if err := os.WriteFile(at("fw.img"), image, 0o644); err != nil {
		t.Fatal(err)
	}
	wantIn(t, ctl("releases", "create", "--product", "gw", "--version", "1.0.0", "--artifact", at("fw.img")), "release counter:", "1")
	status := ctl("tuf", "status")
	wantIn(t, status, "targets version 1 awaits signatures", "awaiting signature: gw/1.0.0/fw.img", "0 of 1 signatures, waiting for 1 more")
	if !regexp.MustCompile(`(?m)^root +offline .*\n^targets +offline `).MatchString(status) || strings.Contains(status, "keys are online") {
		t.Fatalf("status calls offline keys online:\n%s", status)
	}
	if c := httpStatus(t, repo+"/metadata/timestamp.json"); c != 404 {
		t.Fatalf("timestamp before targets are signed: %d", c)
	}

	// 5. Targets signed offline; the unmodified go-tuf updater installs.
	ctl("tuf", "unsigned", "targets", "--out", at("targets.unsigned.json"))
	out = steward(t, "keys", "sign", "--key", at("targets1.key"), "--in", at("targets.unsigned.json"), "--out", at("targets-sig1.json"), "--yes")
	wantIn(t, out, "You are about to sign targets version 1", "gw/1.0.0/fw.img  10000 bytes", `"release_counter":1`)
	wantIn(t, ctl("tuf", "add-signature", "targets", at("targets-sig1.json")), "targets version 1: 1 of 1 signatures, published")
	device := t.TempDir()
	up := goTUFClient(t, repo, device, firstRoot)
	if err := up.Refresh(); err != nil {
		t.Fatalf("refresh: %v", err)
	}
	download(t, up, "gw/1.0.0/fw.img", image)

	// A replayed signature of a published version changes nothing.
	ctlFails("no targets version awaits signatures", "tuf", "add-signature", "targets", at("targets-sig1.json"))

	// 6. Rotate root to two new keys: version 2 needs 2 of the old keys
	// and 2 of the new ones.
	steward(t, "keys", "generate", "--role", "root", "--out", at("root3.key"))
	steward(t, "keys", "generate", "--role", "root", "--out", at("root4.key"), "--type", "ecdsa-p256")
	root3ID, root4ID := keyIDOf(t, at("root3.key.pub")), keyIDOf(t, at("root4.key.pub"))
	out = ctl("tuf", "rotate-root", "--root-key", at("root3.key.pub"), "--root-key", at("root4.key.pub"), "--root-threshold", "2")
	wantIn(t, out, "root version 2: 0 of 2 signatures from root version 1 keys, 0 of 2 signatures from root version 2 keys, waiting for 4 more")
	ctl("tuf", "unsigned", "root", "--out", at("root2.unsigned.json"))
	// The old version's signature is no use for the new version.
	ctlFails("root version 1 is already published", "tuf", "add-signature", "root", at("root-sig1.json"))
	for i, k := range []struct{ key, args string }{{"root3.key", ""}, {"root1.key", "file"}, {"root4.key", ""}, {"root2.key", "env"}} {
		args := []string{"keys", "sign", "--key", at(k.key), "--in", at("root2.unsigned.json"), "--out", at(k.key + ".v2.sig"), "--yes"}
		switch k.args {
		case "file":
			args = append(args, "--passphrase-file", pass)
		case "env":
			args = append(args, "--passphrase-env", "ROOT2_PASSPHRASE")
		}
		steward(t, args...)
		out = ctl("tuf", "add-signature", "root", at(k.key+".v2.sig"))
		if i < 3 {
			wantIn(t, out, "waiting for")
			if c := httpStatus(t, repo+"/metadata/2.root.json"); c != 404 {
				t.Fatalf("root 2 served after %d of 4 signatures: %d", i+1, c)
			}
		}
		if i == 2 {
			wantIn(t, ctl("tuf", "status"), "root version 2 awaits signatures", "1 of root version 1 keys "+root2ID[:12])
		}
	}
	wantIn(t, out, "root version 2: 2 of 2 signatures from root version 1 keys, 2 of 2 signatures from root version 2 keys, published")
	wantIn(t, ctl("tuf", "status"), root3ID, root4ID)

	// 7. The next release, signed by targets; the device, still trusting
	// root 1, follows the rotation.
	image2 := bytes.Repeat([]byte("gateway image 1.1.0\n"), 500)
	if err := os.WriteFile(at("fw2.img"), image2, 0o644); err != nil {
		t.Fatal(err)
	}
	ctl("releases", "create", "--product", "gw", "--version", "1.1.0", "--artifact", at("fw2.img"))
	ctl("tuf", "unsigned", "targets", "--out", at("targets2.unsigned.json"))
	steward(t, "keys", "sign", "--key", at("targets1.key"), "--in", at("targets2.unsigned.json"), "--out", at("targets-sig2.json"), "--yes")
	wantIn(t, ctl("tuf", "add-signature", "targets", at("targets-sig2.json")), "targets version 2: 1 of 1 signatures, published")
	up = goTUFClient(t, repo, device, nil)
	if err := up.Refresh(); err != nil {
		t.Fatalf("refresh after rotation: %v", err)
	}
	if v := up.GetTrustedMetadataSet().Root.Signed.Version; v != 2 {
		t.Fatalf("device trusts root %d, want 2", v)
	}
	download(t, up, "gw/1.1.0/fw2.img", image2)
	download(t, up, "gw/1.0.0/fw.img", image)

	// Every ceremony step is in the audit log.
	audit := ctl("audit", "list", "--action", "tuf.")
	for _, action := range []string{"tuf.init", "tuf.sign", "tuf.rotate_root"} {
		wantIn(t, audit, action)
	}
}

func download(t *testing.T, up *updater.Updater, path string, want []byte) {
	t.Helper()
	info, err := up.GetTargetInfo(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if _, data, err := up.DownloadTarget(info, "", ""); err != nil || !bytes.Equal(data, want) {
		t.Fatalf("download %s: %v (content equal: %v)", path, err, bytes.Equal(data, want))
	}
}

func keyIDOf(t *testing.T, pubFile string) string {
	t.Helper()
	out := steward(t, "keys", "public", pubFile)
	id, _, _ := strings.Cut(strings.TrimPrefix(out, "key id: "), "\n")
	if len(id) != 64 {
		t.Fatalf("keys public %s: %q", pubFile, out)
	}
	return id
}

func readUnsigned(t *testing.T, file string) trust.UnsignedMetadata {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var u trust.UnsignedMetadata
	if err := json.Unmarshal(b, &u); err != nil {
		t.Fatal(err)
	}
	return u
}

// signRaw signs payload with a key file, bypassing every check keys sign
// makes, as an attacker or a broken tool would, and labels the result as
// a signature of u.
func signRaw(t *testing.T, keyFile, passphrase string, u trust.UnsignedMetadata, payload []byte) trust.OfflineSignature {
	t.Helper()
	data, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := keys.DecodePrivate(data, func() (string, error) {
		b, err := os.ReadFile(passphrase)
		return strings.TrimSpace(string(b)), err
	})
	if err != nil {
		t.Fatal(err)
	}
	s, err := trust.NewSigner(u.Role, priv)
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

func writeJSON(t *testing.T, file string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
