package keys

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/secure-systems-lab/go-securesystemslib/cjson"
	"github.com/spf13/cobra"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/steward-iot/steward/internal/clock"
	"github.com/steward-iot/steward/internal/trust"
)

func init() { pbkdf2Iterations = 1000 } // keep tests fast; the format is the same

type result struct {
	out, errOut string
	err         error
}

// runKeys runs `keys args...` under a root like steward's, with stdin.
func runKeys(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	root := &cobra.Command{Use: "steward", SilenceUsage: true, SilenceErrors: true}
	root.AddCommand(Command())
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetIn(strings.NewReader(stdin))
	root.SetArgs(append([]string{"keys"}, args...))
	err := root.ExecuteContext(context.Background())
	return result{out.String(), errOut.String(), err}
}

func must(t *testing.T, r result) result {
	t.Helper()
	if r.err != nil {
		t.Fatalf("keys failed: %v\n%s\n%s", r.err, r.out, r.errOut)
	}
	return r
}

func mustFail(t *testing.T, r result, want string) {
	t.Helper()
	if r.err == nil || !strings.Contains(r.err.Error(), want) {
		t.Fatalf("error %v, want one saying %q\n%s\n%s", r.err, want, r.out, r.errOut)
	}
}

func writeFile(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func loadKey(t *testing.T, file, pass string) crypto.Signer {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	k, err := DecodePrivate(data, func() (string, error) { return pass, nil })
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestGenerate(t *testing.T) {
	dir := t.TempDir()
	pass := writeFile(t, filepath.Join(dir, "pass"), "a good passphrase\r\n")
	key := filepath.Join(dir, "root.key")
	r := must(t, runKeys(t, "", "generate", "--role", "root", "--out", key, "--passphrase-file", pass))
	for _, f := range []struct {
		name string
		mode os.FileMode
	}{{key, 0o600}, {key + ".pub", 0o644}} {
		fi, err := os.Stat(f.name)
		if err != nil || fi.Mode().Perm() != f.mode {
			t.Fatalf("%s: %v, mode %v; want %v", f.name, err, fi.Mode().Perm(), f.mode)
		}
	}
	data, _ := os.ReadFile(key)
	if !Encrypted(data) || !strings.HasPrefix(string(data), "-----BEGIN ENCRYPTED PRIVATE KEY-----") {
		t.Fatalf("key file is not encrypted PKCS#8:\n%s", data)
	}
	// The passphrase is the file's first line without its line ending.
	priv := loadKey(t, key, "a good passphrase")
	id, _ := KeyID(priv.Public())
	pub, _ := EncodePublic(priv.Public())
	if !strings.Contains(r.out, "key id:      "+id) || !strings.Contains(r.out, string(pub)) || !strings.Contains(r.out, "encrypted with the passphrase") {
		t.Fatalf("generate output:\n%s", r.out)
	}
	if _, err := DecodePrivate(data, func() (string, error) { return "a good passphrase\r", nil }); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("wrong passphrase: %v", err)
	}
	if _, err := DecodePrivate(data, func() (string, error) { return "", errors.New("no passphrase") }); err == nil {
		t.Fatal("an encrypted key opened without a passphrase")
	}

	// public prints the same id from either half.
	must(t, runKeys(t, "", "public", key+".pub"))
	for _, args := range [][]string{{"public", key + ".pub"}, {"public", key, "--passphrase-file", pass}} {
		if out := must(t, runKeys(t, "", args...)).out; !strings.HasPrefix(out, "key id: "+id+"\ntype:   ed25519\n") || !strings.Contains(out, string(pub)) {
			t.Fatalf("keys %v:\n%s", args, out)
		}
	}
	mustFail(t, runKeys(t, "", "public", key), "the key is encrypted")

	// Never overwritten by accident; --force does.
	mustFail(t, runKeys(t, "", "generate", "--role", "root", "--out", key), "exists: keys are never overwritten")
	if after, _ := os.ReadFile(key); !bytes.Equal(after, data) {
		t.Fatal("a refused generate changed the key")
	}
	t.Setenv("TARGETS_PASS", "another passphrase")
	must(t, runKeys(t, "", "generate", "--role", "targets", "--type", "ecdsa-p256", "--out", key, "--force", "--passphrase-env", "TARGETS_PASS"))
	if _, ok := loadKey(t, key, "another passphrase").(*ecdsa.PrivateKey); !ok {
		t.Fatal("--type ecdsa-p256 did not make an ECDSA key")
	}

	// Refused inputs.
	mustFail(t, runKeys(t, "", "generate", "--role", "snapshot", "--out", filepath.Join(dir, "s")), "give root or targets")
	mustFail(t, runKeys(t, "", "generate", "--role", "root", "--type", "rsa", "--out", filepath.Join(dir, "s")), "use ed25519 or ecdsa-p256")
	mustFail(t, runKeys(t, "", "generate", "--role", "root", "--out", filepath.Join(dir, "s"), "--passphrase-env", "UNSET_PASSPHRASE_VAR"),
		"UNSET_PASSPHRASE_VAR is not set")
	t.Setenv("SHORT_PASS", "short")
	mustFail(t, runKeys(t, "", "generate", "--role", "root", "--out", filepath.Join(dir, "s"), "--passphrase-env", "SHORT_PASS"), "fewer than 8")
	mustFail(t, runKeys(t, "", "generate", "--role", "root", "--out", filepath.Join(dir, "s"), "--passphrase", "x"), "unknown flag: --passphrase")
	if _, err := os.Stat(filepath.Join(dir, "s")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a refused generate wrote a file")
	}
}

// Keys encrypted by OpenSSL's PBES2 defaults (HMAC-SHA256, AES-256-CBC,
// 2048 iterations) decrypt; this one was made with
// `openssl pkcs8 -topk8 -v2 aes-256-cbc -passout pass:steward-test`.
func TestDecryptOpenSSLKey(t *testing.T) {
	const key = `-----BEGIN ENCRYPTED PRIVATE KEY-----
MIGbMFcGCSqGSIb3DQEFDTBKMCkGCSqGSIb3DQEFDDAcBAgGKkpfpvEBVwICCAAw
DAYIKoZIhvcNAgkFADAdBglghkgBZQMEASoEEABc2SM31xFnuDKh3HQuFJYEQC3L
VXkF17saRvbXNgbtBdgoAEofDjUKFpN2ocKV9CXTWmKcdG3NRvQDoMXKdzRZv9HR
xv5nTb+0FtZGaqZRMzc=
-----END ENCRYPTED PRIVATE KEY-----
`
	const pub = `-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAGR/FINCE/0SL976GAZ9o+OeHRxlCRVlTrDL8GH7BU9I=
-----END PUBLIC KEY-----
`
	priv, err := DecodePrivate([]byte(key), func() (string, error) { return "steward-test", nil })
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := EncodePublic(priv.Public()); string(p) != pub {
		t.Fatalf("decrypted to a key whose public key is\n%s, want\n%s", p, pub)
	}
	if _, ok := priv.(ed25519.PrivateKey); !ok {
		t.Fatalf("got %T", priv)
	}
	if _, err := DecodePrivate([]byte(key), func() (string, error) { return "steward-tesT", nil }); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("wrong passphrase: %v", err)
	}
}

// export stages root version 1 of a repository with the given offline root
// keys (threshold 2 when there are two) and a targets key, and returns what
// `steward ctl tuf unsigned root` would export, with the repository.
func export(t *testing.T, c clock.Clock, root []crypto.Signer, targets crypto.Signer) (*trust.Repository, *trust.MemStore, []byte) {
	t.Helper()
	ctx := context.Background()
	store := &trust.MemStore{}
	var online []*trust.Signer
	for _, role := range []trust.Role{trust.RoleSnapshot, trust.RoleTimestamp} {
		k, _ := Generate(Ed25519)
		s, _ := trust.NewSigner(role, k)
		online = append(online, s)
	}
	repo, err := trust.Open(ctx, store, trust.Config{Clock: c, Signers: online})
	if err != nil {
		t.Fatal(err)
	}
	keys := online
	var ids []string
	for _, k := range root {
		s, err := trust.NewOfflineSigner(trust.RoleRoot, k.Public())
		if err != nil {
			t.Fatal(err)
		}
		keys, ids = append(keys, s), append(ids, s.KeyID())
	}
	ts, _ := trust.NewOfflineSigner(trust.RoleTargets, targets.Public())
	if err := repo.Init(ctx, append(keys, ts), map[trust.Role]int{trust.RoleRoot: len(root)}); err != nil {
		t.Fatal(err)
	}
	staged, err := store.Get(ctx, "staged.root.json")
	if err != nil {
		t.Fatal(err)
	}
	md, err := metadata.Root().FromBytes(staged)
	if err != nil {
		t.Fatal(err)
	}
	signed, _ := json.Marshal(md.Signed)
	canonical, _ := cjson.EncodeCanonical(md.Signed)
	sum := sha256.Sum256(canonical)
	u := trust.UnsignedMetadata{Role: trust.RoleRoot, Version: 1, SignedSHA256: hex.EncodeToString(sum[:]), Signed: signed,
		Requirements: []trust.SignatureRequirement{{Keys: "root version 1", Threshold: len(root), Signed: []string{}, Missing: ids, Needed: len(root)}}}
	b, _ := json.MarshalIndent(u, "", "  ")
	return repo, store, b
}

func TestSign(t *testing.T) {
	dir := t.TempDir()
	at := func(n string) string { return filepath.Join(dir, n) }
	pass := writeFile(t, at("pass"), "the passphrase\n")
	must(t, runKeys(t, "", "generate", "--role", "root", "--out", at("r1"), "--passphrase-file", pass))
	must(t, runKeys(t, "", "generate", "--role", "root", "--type", "ecdsa-p256", "--out", at("r2")))
	must(t, runKeys(t, "", "generate", "--role", "targets", "--out", at("t1")))
	r1, r2, t1 := loadKey(t, at("r1"), "the passphrase"), loadKey(t, at("r2"), ""), loadKey(t, at("t1"), "")
	repo, store, unsigned := export(t, clock.Real, []crypto.Signer{r1, r2}, t1)
	in := writeFile(t, at("root.unsigned.json"), string(unsigned))
	r1ID, _ := KeyID(r1.Public())

	// Declining the question signs nothing.
	r := runKeys(t, "no\n", "sign", "--key", at("r1"), "--in", in, "--out", at("sig1"), "--passphrase-file", pass)
	mustFail(t, r, "not signed")
	if !strings.Contains(r.errOut, "You are about to sign root version 1") || !strings.Contains(r.errOut, r1ID+"  ed25519   <- this key") ||
		!strings.Contains(r.errOut, "root       threshold 2 of 2 key(s)") || !strings.Contains(r.errOut, "Type yes to sign") {
		t.Fatalf("what the signer is shown:\n%s", r.errOut)
	}
	if _, err := os.Stat(at("sig1")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a declined signing wrote a file")
	}
	mustFail(t, runKeys(t, "", "sign", "--key", at("r1"), "--in", in, "--out", at("sig1"), "--passphrase-file", at("t1.pub"), "--yes"),
		"wrong passphrase")
	mustFail(t, runKeys(t, "", "sign", "--key", at("t1"), "--in", in, "--out", at("sig1"), "--yes"), "may not sign root version 1")
	mustFail(t, runKeys(t, "", "sign", "--key", at("r1.pub"), "--in", in, "--out", at("sig1"), "--yes"), "this is a public key")

	must(t, runKeys(t, "yes\n", "sign", "--key", at("r1"), "--in", in, "--out", at("sig1"), "--passphrase-file", pass))
	must(t, runKeys(t, "", "sign", "--key", at("r2"), "--in", in, "--out", at("sig2"), "--yes"))
	// What the server does with the files: both verify, and root 1 is
	// published with them.
	for i, f := range []string{"sig1", "sig2"} {
		var sig trust.OfflineSignature
		b, _ := os.ReadFile(at(f))
		if err := json.Unmarshal(b, &sig); err != nil {
			t.Fatal(err)
		}
		raw, _ := hex.DecodeString(sig.Sig)
		out, err := repo.AddSignature(context.Background(), trust.RoleRoot, sig.Version, metadata.Signature{KeyID: sig.KeyID, Signature: raw})
		if err != nil || out.Published != (i == 1) {
			t.Fatalf("%s: %+v, %v", f, out, err)
		}
	}
	if _, err := store.Get(context.Background(), "1.root.json"); err != nil {
		t.Fatal("root 1 not published by the two offline signatures")
	}
}

// Whatever is wrong with the unsigned file is found before anything is signed.
func TestSignRefusesBadFiles(t *testing.T) {
	dir := t.TempDir()
	at := func(n string) string { return filepath.Join(dir, n) }
	must(t, runKeys(t, "", "generate", "--role", "root", "--out", at("r1")))
	must(t, runKeys(t, "", "generate", "--role", "targets", "--out", at("t1")))
	r1, t1 := loadKey(t, at("r1"), ""), loadKey(t, at("t1"), "")
	_, _, unsigned := export(t, clock.Real, []crypto.Signer{r1}, t1)
	_, _, expired := export(t, clock.NewFake(time.Now().Add(-400*24*time.Hour)), []crypto.Signer{r1}, t1)
	attacker, _ := Generate(Ed25519)
	attackerID, _ := KeyID(attacker.Public())

	edit := func(fn func(u map[string]any)) string {
		var u map[string]any
		if err := json.Unmarshal(unsigned, &u); err != nil {
			t.Fatal(err)
		}
		fn(u)
		b, _ := json.Marshal(u)
		return string(b)
	}
	cases := []struct{ name, file, want string }{
		{"not JSON", "{", "not an unsigned metadata file"},
		{"no signed part", `{"role":"root","version":1}`, "lacks signed or signed_sha256"},
		{"snapshot", edit(func(u map[string]any) { u["role"] = "snapshot" }), "role \"snapshot\" is not root or targets"},
		{"changed content", edit(func(u map[string]any) { u["signed"].(map[string]any)["version"] = 5 }),
			"does not match the file's signed_sha256"},
		{"version label", edit(func(u map[string]any) { u["version"] = 2 }), "says root version 2 but its signed part is root version 1"},
		{"role label", edit(func(u map[string]any) { u["role"] = "targets" }), "signed part is root version 1"},
		{"extra signer", edit(func(u map[string]any) {
			req := u["requirements"].([]any)[0].(map[string]any)
			req["missing"] = append(req["missing"].([]any), attackerID)
		}), "does not match the signed root"},
		{"expired", string(expired), "expired at"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := writeFile(t, at(c.name+".json"), c.file)
			mustFail(t, runKeys(t, "", "sign", "--key", at("r1"), "--in", in, "--out", at(c.name+".sig"), "--yes"), c.want)
			if _, err := os.Stat(at(c.name + ".sig")); !errors.Is(err, os.ErrNotExist) {
				t.Fatal("a refused signing wrote a file")
			}
		})
	}
}

// The screen shows what is signed, not what escape sequences make of it.
func TestDescribeNeutralizesControlCharacters(t *testing.T) {
	custom := json.RawMessage("{\"note\":\"\u009b2J\u001b\"}")
	d := &Document{UnsignedMetadata: trust.UnsignedMetadata{Role: trust.RoleTargets, Version: 3}, Expires: time.Now().Add(time.Hour),
		Targets: &metadata.TargetsType{Targets: map[string]*metadata.TargetFiles{"a\u001b[31m.bin": {Length: 1, Custom: &custom}}}}
	var buf bytes.Buffer
	d.Describe(&buf, "k", time.Now())
	if strings.ContainsAny(buf.String(), "\u001b\u009b") {
		t.Fatalf("control characters reached the terminal: %q", buf.String())
	}
}
