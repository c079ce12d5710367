package identity

import (
	"bytes"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var algorithms = []Algorithm{Ed25519, ECDSAP256}

// rsaPublicPEM is a 2048-bit RSA key, fixed because generating one is slow.
const rsaPublicPEM = `-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAqF2ho1TfLg7xmbxlw+6Q
B3Gi4WNEzZCfPHg09rO9GXktaqst+6XZXvNfZv7RrBo4rujCZ78uOxDF7xOnnser
E9wVEaN19dPYcVskfDRZ/dxs2q26VeyKXaAUKcENXe1kRHZcxHww7B+s5NWn5c4X
VMBSiICTt7ZTC/cwsYbd0J0Gvwps/EosfkzssDQdI42flH8jyuUmgBbiNKlMx5Af
wy4xQ0LBrIfdIAt7g8qVf9dkEv0DesnHDrq3eEuK2WNXf+tcn54hbF1cf0VzpWRH
GVwVrBCZx+FLJ24JewC/s/y0HSgxO+OzsJG+daKZnqEYMARztFGp2eZkGzA5ngLr
FwIDAQAB
-----END PUBLIC KEY-----
`

func newIdentityIn(t *testing.T, dir string, alg Algorithm) *Identity {
	t.Helper()
	id, created, err := LoadOrCreate(dir, alg)
	if err != nil {
		t.Fatalf("LoadOrCreate(%s): %v", alg, err)
	}
	if !created {
		t.Fatalf("LoadOrCreate(%s) loaded an existing key, want a new one", alg)
	}
	return id
}

func pemOf(t *testing.T, typ string, key any) []byte {
	t.Helper()
	var der []byte
	var err error
	if typ == "PUBLIC KEY" {
		der, err = x509.MarshalPKIXPublicKey(key)
	} else {
		der, err = x509.MarshalPKCS8PrivateKey(key)
	}
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func p384Key(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestLoadOrCreateRoundTrip(t *testing.T) {
	for _, alg := range algorithms {
		t.Run(string(alg), func(t *testing.T) {
			parent := filepath.Join(t.TempDir(), "var")
			dir := filepath.Join(parent, "state") + "/" // both created by LoadOrCreate
			id := newIdentityIn(t, dir, alg)
			if id.Algorithm() != alg {
				t.Errorf("Algorithm() = %q, want %q", id.Algorithm(), alg)
			}

			for _, d := range []string{parent, dir} {
				if fi, err := os.Stat(d); err != nil || fi.Mode().Perm() != 0o700 {
					t.Errorf("%s: %v, %v; want a directory with mode 0700", d, fi, err)
				}
			}
			keyPath := filepath.Join(dir, KeyFile)
			fi, err := os.Stat(keyPath)
			if err != nil || fi.Mode() != 0o600 {
				t.Errorf("key file: %v, %v; want mode 0600", fi, err)
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != 1 {
				t.Errorf("state dir holds %d entries, want only %s", len(entries), KeyFile)
			}
			raw, err := os.ReadFile(keyPath)
			if err != nil {
				t.Fatal(err)
			}
			if block, _ := pem.Decode(raw); block == nil || block.Type != "PRIVATE KEY" {
				t.Fatalf("key file is not a PKCS#8 PEM:\n%s", raw)
			}

			// KeyID is defined as the hex SHA-256 of the PKIX DER.
			block, _ := pem.Decode(id.PublicKeyPEM())
			if block == nil || block.Type != "PUBLIC KEY" {
				t.Fatalf("PublicKeyPEM() is not a PUBLIC KEY block:\n%s", id.PublicKeyPEM())
			}
			sum := sha256.Sum256(block.Bytes)
			if want := hex.EncodeToString(sum[:]); id.KeyID() != want {
				t.Errorf("KeyID() = %s, want %s", id.KeyID(), want)
			}
			if got, err := PublicKeyID(id.PublicKey()); err != nil || got != id.KeyID() {
				t.Errorf("PublicKeyID = %s, %v; want %s", got, err, id.KeyID())
			}

			loaded, created, err := LoadOrCreate(dir, alg)
			if err != nil || created {
				t.Fatalf("second LoadOrCreate: created=%v, err=%v", created, err)
			}
			if loaded.KeyID() != id.KeyID() || !bytes.Equal(loaded.PublicKeyPEM(), id.PublicKeyPEM()) {
				t.Errorf("reloaded identity differs: %s vs %s", loaded.KeyID(), id.KeyID())
			}
			if after, _ := os.ReadFile(keyPath); !bytes.Equal(after, raw) {
				t.Error("loading rewrote the key file")
			}

			// The server's view: the public key as parsed from the PEM.
			serverPub, gotAlg, err := ParsePublicKeyPEM(id.PublicKeyPEM())
			if err != nil || gotAlg != alg {
				t.Fatalf("ParsePublicKeyPEM: %v, %v", gotAlg, err)
			}
			msg := []byte("check-in nonce 42")
			sig, err := id.Sign(msg)
			if err != nil {
				t.Fatalf("Sign: %v", err)
			}
			if err := Verify(serverPub, msg, sig); err != nil {
				t.Errorf("Verify(own signature): %v", err)
			}
			if sig2, err := loaded.Sign(msg); err != nil || Verify(id.PublicKey(), msg, sig2) != nil {
				t.Errorf("signature from the reloaded key does not verify: %v", err)
			}
		})
	}
}

// TestSignatureFormat checks the documented wire format with the standard
// library directly, independent of Verify.
func TestSignatureFormat(t *testing.T) {
	msg := []byte("format")
	for _, alg := range algorithms {
		id := newIdentityIn(t, t.TempDir(), alg)
		sig, err := id.Sign(msg)
		if err != nil {
			t.Fatal(err)
		}
		var ok bool
		switch pub := id.PublicKey().(type) {
		case ed25519.PublicKey:
			ok = ed25519.Verify(pub, msg, sig)
		case *ecdsa.PublicKey:
			digest := sha256.Sum256(msg)
			ok = ecdsa.VerifyASN1(pub, digest[:], sig)
		default:
			t.Fatalf("%s: PublicKey() is %T", alg, pub)
		}
		if !ok {
			t.Errorf("%s: signature does not verify with the standard library", alg)
		}
	}
}

func TestVerifyRejects(t *testing.T) {
	msg := []byte("firmware manifest")
	for _, alg := range algorithms {
		t.Run(string(alg), func(t *testing.T) {
			id := newIdentityIn(t, t.TempDir(), alg)
			sig, err := id.Sign(msg)
			if err != nil {
				t.Fatal(err)
			}
			other := newIdentityIn(t, t.TempDir(), alg)
			otherAlg := newIdentityIn(t, t.TempDir(), algorithms[0])
			if alg == algorithms[0] {
				otherAlg = newIdentityIn(t, t.TempDir(), algorithms[1])
			}
			tamperedMsg := bytes.Clone(msg)
			tamperedMsg[0] ^= 1
			flipped := bytes.Clone(sig)
			flipped[len(flipped)/2] ^= 0x40

			for _, c := range []struct {
				name     string
				pub      crypto.PublicKey
				msg, sig []byte
			}{
				{"tampered message", id.PublicKey(), tamperedMsg, sig},
				{"flipped signature bit", id.PublicKey(), msg, flipped},
				{"truncated signature", id.PublicKey(), msg, sig[:len(sig)-1]},
				{"empty signature", id.PublicKey(), msg, nil},
				{"other device's key", other.PublicKey(), msg, sig},
				{"other algorithm's key", otherAlg.PublicKey(), msg, sig},
			} {
				if err := Verify(c.pub, c.msg, c.sig); !errors.Is(err, ErrBadSignature) {
					t.Errorf("%s: Verify = %v, want ErrBadSignature", c.name, err)
				}
			}
		})
	}
}

func TestVerifyUnsupportedKey(t *testing.T) {
	rsaPub, err := x509.ParsePKIXPublicKey(mustDecodePEM(t, rsaPublicPEM))
	if err != nil {
		t.Fatal(err)
	}
	for name, pub := range map[string]crypto.PublicKey{
		"rsa":           rsaPub,
		"p384":          p384Key(t).Public(),
		"nil":           nil,
		"nil ecdsa":     (*ecdsa.PublicKey)(nil),
		"short ed25519": ed25519.PublicKey(make([]byte, 31)),
	} {
		err := Verify(pub, []byte("m"), []byte("sig"))
		if err == nil || errors.Is(err, ErrBadSignature) {
			t.Errorf("%s: Verify = %v, want an unsupported-key error", name, err)
		}
		if _, err := PublicKeyID(pub); err == nil {
			t.Errorf("%s: PublicKeyID succeeded", name)
		}
	}
}

func mustDecodePEM(t *testing.T, s string) []byte {
	t.Helper()
	block, _ := pem.Decode([]byte(s))
	if block == nil {
		t.Fatal("bad test PEM")
	}
	return block.Bytes
}

func TestLoadOrCreateRefusesExposedKey(t *testing.T) {
	dir := t.TempDir()
	newIdentityIn(t, dir, Ed25519)
	keyPath := filepath.Join(dir, KeyFile)
	for _, perm := range []os.FileMode{0o640, 0o604, 0o620, 0o602, 0o644} {
		if err := os.Chmod(keyPath, perm); err != nil {
			t.Fatal(err)
		}
		_, _, err := LoadOrCreate(dir, Ed25519)
		if err == nil {
			t.Errorf("mode %04o: key loaded", perm)
			continue
		}
		for _, want := range []string{keyPath, "chmod 600 " + keyPath} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("mode %04o: error %q does not mention %q", perm, err, want)
			}
		}
	}
	// Fixing the mode as told makes the same key load again.
	if err := os.Chmod(keyPath, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, created, err := LoadOrCreate(dir, Ed25519); err != nil || created {
		t.Errorf("after chmod 600: created=%v, err=%v", created, err)
	}
}

func TestLoadOrCreateAlgorithmMismatch(t *testing.T) {
	for _, have := range algorithms {
		want := algorithms[0]
		if have == want {
			want = algorithms[1]
		}
		dir := t.TempDir()
		newIdentityIn(t, dir, have)
		before, _ := os.ReadFile(filepath.Join(dir, KeyFile))
		_, _, err := LoadOrCreate(dir, want)
		if err == nil {
			t.Fatalf("%s key loaded as %s", have, want)
		}
		for _, s := range []string{string(have), string(want), KeyFile} {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("error %q does not mention %q", err, s)
			}
		}
		if after, _ := os.ReadFile(filepath.Join(dir, KeyFile)); !bytes.Equal(after, before) {
			t.Error("key file changed")
		}
	}
}

func TestLoadOrCreateRefusesCorruptKey(t *testing.T) {
	good := newIdentityIn(t, t.TempDir(), Ed25519)
	goodPEM := pemOf(t, "PRIVATE KEY", good.signer)
	x25519, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	badDER := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("\x30\x03\x02\x01\x00")})

	for _, c := range []struct {
		name    string
		content []byte
		wantErr string
	}{
		{"empty", nil, "no PEM block"},
		{"garbage", []byte("not a key\n"), "no PEM block"},
		{"truncated", goodPEM[:len(goodPEM)/2], "no PEM block"},
		{"public key block", good.PublicKeyPEM(), `"PUBLIC KEY"`},
		{"bad DER", badDER, "PKCS#8"},
		{"trailing data", append(bytes.Clone(goodPEM), "junk"...), "after the PEM block"},
		{"oversized", append(bytes.Clone(goodPEM), bytes.Repeat([]byte("\n"), maxKeyFile)...), "larger than"},
		{"x25519", pemOf(t, "PRIVATE KEY", x25519), "unsupported private key type"},
		{"p384", pemOf(t, "PRIVATE KEY", p384Key(t)), "P-384"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			keyPath := filepath.Join(dir, KeyFile)
			if err := os.WriteFile(keyPath, c.content, 0o600); err != nil {
				t.Fatal(err)
			}
			_, _, err := LoadOrCreate(dir, Ed25519)
			if err == nil {
				t.Fatal("corrupt key loaded")
			}
			if !strings.Contains(err.Error(), c.wantErr) || !strings.Contains(err.Error(), keyPath) {
				t.Errorf("error %q should mention %q and %s", err, c.wantErr, keyPath)
			}
			if after, _ := os.ReadFile(keyPath); !bytes.Equal(after, c.content) {
				t.Error("corrupt key file was replaced")
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 1 {
				t.Errorf("state dir holds %d entries, want 1", len(entries))
			}
		})
	}
}

func TestLoadOrCreateKeyPathIsDirectory(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, KeyFile), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadOrCreate(dir, Ed25519); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("LoadOrCreate = %v, want a not-a-regular-file error", err)
	}
}

func TestLoadOrCreateDanglingSymlink(t *testing.T) {
	dir := t.TempDir()
	keyPath := filepath.Join(dir, KeyFile)
	target := filepath.Join(dir, "unmounted", KeyFile)
	if err := os.Symlink(target, keyPath); err != nil {
		t.Skipf("symlinks unavailable: %v", err)
	}
	if _, _, err := LoadOrCreate(dir, Ed25519); err == nil || !strings.Contains(err.Error(), "symlink") {
		t.Errorf("LoadOrCreate = %v, want a dangling-symlink error", err)
	}
	if got, err := os.Readlink(keyPath); err != nil || got != target {
		t.Errorf("symlink replaced: %q, %v", got, err)
	}
}

func TestLoadOrCreateBadArguments(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	for _, alg := range []Algorithm{"", "rsa", "ED25519"} {
		if _, _, err := LoadOrCreate(dir, alg); err == nil || !strings.Contains(err.Error(), "unsupported algorithm") {
			t.Errorf("LoadOrCreate(%q) = %v, want an unsupported-algorithm error", alg, err)
		}
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state dir created despite the error: %v", err)
	}
	if _, _, err := LoadOrCreate("", Ed25519); err == nil {
		t.Error("LoadOrCreate with an empty dir succeeded")
	}
}

func TestParsePublicKeyPEMRejects(t *testing.T) {
	id := newIdentityIn(t, t.TempDir(), ECDSAP256)
	good := id.PublicKeyPEM()
	withHeader := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED"}, Bytes: id.pubDER})
	// A broken block before a good one: pem.Decode alone would skip it.
	brokenThenGood := append([]byte("-----BEGIN PUBLIC KEY-----\n!!!\n"), good...)

	for _, c := range []struct {
		name    string
		in      []byte
		wantErr string
	}{
		{"rsa", []byte(rsaPublicPEM), "RSA"},
		{"p384", pemOf(t, "PUBLIC KEY", p384Key(t).Public()), "P-384"},
		{"junk", []byte("ssh-ed25519 AAAA... user@host"), "not a PEM block"},
		{"empty", nil, "not a PEM block"},
		{"two blocks", append(bytes.Clone(good), good...), "more than one PEM block"},
		{"broken block first", brokenThenGood, "more than one PEM block"},
		{"leading data", append([]byte("key:\n"), good...), "data before"},
		{"trailing data", append(bytes.Clone(good), "junk"...), "after the PEM"},
		{"oversized", append(bytes.Clone(good), bytes.Repeat([]byte(" "), MaxPublicKeyPEM)...), "limit"},
		{"truncated", good[:len(good)-10], "malformed"},
		{"private key", pemOf(t, "PRIVATE KEY", id.signer), `"PRIVATE KEY"`},
		{"headers", withHeader, "headers"},
		{"bad DER", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte{0x30, 0x00}}), "PKIX"},
	} {
		pub, alg, err := ParsePublicKeyPEM(c.in)
		if err == nil || pub != nil || alg != "" {
			t.Errorf("%s: ParsePublicKeyPEM = %v, %q, %v; want an error", c.name, pub, alg, err)
			continue
		}
		if !strings.Contains(err.Error(), c.wantErr) {
			t.Errorf("%s: error %q does not mention %q", c.name, err, c.wantErr)
		}
	}
}

func TestParsePublicKeyPEMAcceptsSurroundingWhitespace(t *testing.T) {
	id := newIdentityIn(t, t.TempDir(), Ed25519)
	in := append(append([]byte("\n  \r\n"), id.PublicKeyPEM()...), "\n\n"...)
	pub, alg, err := ParsePublicKeyPEM(in)
	if err != nil || alg != Ed25519 {
		t.Fatalf("ParsePublicKeyPEM = %v, %v", alg, err)
	}
	if !id.PublicKey().(ed25519.PublicKey).Equal(pub) {
		t.Error("parsed key differs")
	}
}

func FuzzParsePublicKeyPEM(f *testing.F) {
	for _, alg := range algorithms {
		dir := f.TempDir()
		id, _, err := LoadOrCreate(dir, alg)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(id.PublicKeyPEM())
		f.Add(append(id.PublicKeyPEM(), id.PublicKeyPEM()...))
		f.Add(bytes.ReplaceAll(id.PublicKeyPEM(), []byte("\n"), []byte("\r\n")))
	}
	f.Add([]byte(rsaPublicPEM))
	f.Add([]byte("-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n"))
	f.Add([]byte("junk"))

	f.Fuzz(func(t *testing.T, in []byte) {
		pub, alg, err := ParsePublicKeyPEM(in)
		if err != nil {
			if pub != nil || alg != "" {
				t.Fatalf("error %v with non-zero results %v, %q", err, pub, alg)
			}
			return
		}
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			t.Fatalf("accepted key does not re-encode: %v", err)
		}
		again, alg2, err := ParsePublicKeyPEM(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
		if err != nil || alg2 != alg {
			t.Fatalf("re-encoded key: %q, %v; want %q", alg2, err, alg)
		}
		if !pub.(interface{ Equal(crypto.PublicKey) bool }).Equal(again) {
			t.Fatal("re-encoded key is not equal to the accepted one")
		}
		id1, err1 := PublicKeyID(pub)
		id2, err2 := PublicKeyID(again)
		if err1 != nil || err2 != nil || id1 != id2 {
			t.Fatalf("PublicKeyID: %s, %v vs %s, %v", id1, err1, id2, err2)
		}
		// Garbage signatures on accepted keys must fail cleanly.
		if err := Verify(pub, in, in); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("Verify(garbage) = %v, want ErrBadSignature", err)
		}
	})
}

func TestGenerate(t *testing.T) {
	for _, alg := range algorithms {
		a, err := Generate(alg)
		if err != nil {
			t.Fatal(err)
		}
		b, err := Generate(alg)
		if err != nil {
			t.Fatal(err)
		}
		if a.Algorithm() != alg {
			t.Errorf("Generate(%s).Algorithm() = %s", alg, a.Algorithm())
		}
		if a.KeyID() == b.KeyID() {
			t.Errorf("%s: two generated identities share key id %s", alg, a.KeyID())
		}
		pub, gotAlg, err := ParsePublicKeyPEM(a.PublicKeyPEM())
		if err != nil || gotAlg != alg {
			t.Fatalf("%s: PublicKeyPEM does not parse: %v, %v", alg, gotAlg, err)
		}
		if keyID, _ := PublicKeyID(pub); keyID != a.KeyID() {
			t.Errorf("%s: KeyID %s does not match the public key (%s)", alg, a.KeyID(), keyID)
		}
		msg := []byte("in memory")
		sig, err := a.Sign(msg)
		if err != nil {
			t.Fatal(err)
		}
		if err := Verify(pub, msg, sig); err != nil {
			t.Errorf("%s: %v", alg, err)
		}
	}
	if _, err := Generate("rsa"); err == nil || !strings.Contains(err.Error(), "unsupported algorithm") {
		t.Errorf("Generate(rsa): %v, want an unsupported algorithm error", err)
	}
}
