package suit

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/fxamacker/cbor/v2"
	"github.com/veraison/go-cose"
)

// loadHex reads a testdata envelope: '#' lines are comments, the rest hex.
func loadHex(t testing.TB, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var h strings.Builder
	for _, line := range strings.Split(string(raw), "\n") {
		if !strings.HasPrefix(line, "#") {
			h.WriteString(strings.TrimSpace(line))
		}
	}
	b, err := hex.DecodeString(h.String())
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return b
}

// exampleKey returns the draft's example signing key, checking that the
// published public key is its public half.
func exampleKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "example-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	var priv *ecdsa.PrivateKey
	var pub *ecdsa.PublicKey
	for block, rest := pem.Decode(raw); block != nil; block, rest = pem.Decode(rest) {
		switch block.Type {
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			priv = k.(*ecdsa.PrivateKey)
		case "PUBLIC KEY":
			k, err := x509.ParsePKIXPublicKey(block.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			pub = k.(*ecdsa.PublicKey)
		}
	}
	if priv == nil || pub == nil || !priv.PublicKey.Equal(pub) {
		t.Fatal("example-key.pem: want a private key and its public key")
	}
	return priv
}

func es256(t testing.TB, key *ecdsa.PrivateKey) (cose.Signer, cose.Verifier) {
	t.Helper()
	s, err := cose.NewSigner(cose.AlgorithmES256, key)
	if err != nil {
		t.Fatal(err)
	}
	v, err := cose.NewVerifier(cose.AlgorithmES256, &key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return s, v
}

func newES256(t testing.TB) (cose.Signer, cose.Verifier) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return es256(t, key)
}

func newEd25519(t testing.TB) (cose.Signer, cose.Verifier) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := cose.NewSigner(cose.AlgorithmEdDSA, priv)
	if err != nil {
		t.Fatal(err)
	}
	v, err := cose.NewVerifier(cose.AlgorithmEdDSA, pub)
	if err != nil {
		t.Fatal(err)
	}
	return s, v
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, "-", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// typical is a manifest as Steward writes it for a microcontroller product.
func typical(t testing.TB) Manifest {
	vendor := VendorID("steward-iot.example")
	return Manifest{
		SequenceNumber: 1_700_000_042,
		VendorID:       vendor,
		ClassID:        ClassID(vendor, "acme-sensor-v2/rev-c"),
		ImageDigest:    sha256.Sum256([]byte("firmware image")),
		ImageSize:      187_392,
		URI:            "https://updates.steward-iot.example/fw/acme-sensor-v2/3.4.1/4b2f9c.bin",
		ComponentID:    [][]byte{{0}},
	}
}

// The IETF examples verify with the draft's public key through Decode, and
// decode to the values the draft states.
func TestDraftExamples(t *testing.T) {
	key := exampleKey(t)
	_, es := es256(t, key)
	esp, err := NewESP256Verifier(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	// The draft's vendor id is UUIDv5 of "arm.com", as RFC 9124 recommends.
	vendor := VendorID("arm.com")
	if got := hex.EncodeToString(vendor[:]); got != "fa6b4a53d5ad5fdfbe9de663e4d41ffe" {
		t.Fatalf("VendorID(arm.com) = %s", got)
	}
	class := [16]byte(mustHex(t, "1492af14-2569-5e48-bf42-9b2d51f2ab45"))
	digest := [32]byte(mustHex(t, "00112233445566778899aabbccddeeff0123456789abcdeffedcba9876543210"))

	for _, tc := range []struct {
		file     string
		verifier cose.Verifier
		size     int
		seq      uint64
		uri      string
	}{
		{"example0-draft24.hex", es, 237, 0, ""},
		{"example0-draft27.hex", es, 237, 0, ""},
		{"example1-draft27.hex", es, 272, 1, "http://example.com/file.bin"},
		{"example0-esp256.hex", esp, 237, 0, ""},
		{"example1-esp256.hex", esp, 272, 1, "http://example.com/file.bin"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			env := loadHex(t, tc.file)
			if len(env) != tc.size {
				t.Fatalf("envelope is %d bytes, the draft says %d", len(env), tc.size)
			}
			m, err := Decode(env, tc.verifier)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			want := Manifest{
				SequenceNumber: tc.seq,
				VendorID:       vendor,
				ClassID:        class,
				ImageDigest:    digest,
				ImageSize:      34768,
				URI:            tc.uri,
				ComponentID:    [][]byte{{0}},
			}
			if !reflect.DeepEqual(*m, want) {
				t.Fatalf("decoded %+v\nwant %+v", *m, want)
			}
			// The same bytes under another key must fail.
			_, other := newES256(t)
			if tc.verifier == es {
				if _, err := Decode(env, other); !errors.Is(err, ErrSignature) {
					t.Fatalf("other key: %v, want ErrSignature", err)
				}
			}
		})
	}
}

// Encode lays out Example 1 exactly as the draft does: signing its values
// with the draft's key reproduces the draft's envelope byte for byte, except
// for the ECDSA signature, which is randomized.
func TestEncodeMatchesDraftExample1(t *testing.T) {
	key := exampleKey(t)
	signer, verifier := es256(t, key)
	want := loadHex(t, "example1-draft27.hex")
	m := Manifest{
		SequenceNumber: 1,
		VendorID:       [16]byte(mustHex(t, "fa6b4a53d5ad5fdfbe9de663e4d41ffe")),
		ClassID:        [16]byte(mustHex(t, "1492af1425695e48bf429b2d51f2ab45")),
		ImageDigest:    [32]byte(mustHex(t, "00112233445566778899aabbccddeeff0123456789abcdeffedcba9876543210")),
		ImageSize:      34768,
		URI:            "http://example.com/file.bin",
		ComponentID:    [][]byte{{0}},
	}
	got, err := Encode(m, signer)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("envelope is %d bytes, draft's is %d", len(got), len(want))
	}
	sig := bytes.Index(want, mustHex(t, "d28443a10126a0f65840")) + 10
	if !bytes.Equal(got[:sig], want[:sig]) || !bytes.Equal(got[sig+64:], want[sig+64:]) {
		t.Fatalf("envelope differs from the draft's outside the signature:\n got %x\nwant %x", got, want)
	}
	if _, err := Decode(got, verifier); err != nil {
		t.Fatalf("Decode: %v", err)
	}
}

func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		keys func(testing.TB) (cose.Signer, cose.Verifier)
	}{{"ES256", newES256}, {"Ed25519", newEd25519}} {
		t.Run(tc.name, func(t *testing.T) {
			signer, verifier := tc.keys(t)
			m := typical(t)
			m.ComponentID = [][]byte{[]byte("flash"), {1}}
			env, err := Encode(m, signer)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Decode(env, verifier)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !reflect.DeepEqual(*got, m) {
				t.Fatalf("decoded %+v\nwant %+v", *got, m)
			}
		})
	}
}

// Constrained devices hold the whole envelope in RAM while checking it.
func TestEnvelopeSize(t *testing.T) {
	const limit = 512
	for _, tc := range []struct {
		name string
		keys func(testing.TB) (cose.Signer, cose.Verifier)
	}{{"ES256", newES256}, {"Ed25519", newEd25519}} {
		signer, _ := tc.keys(t)
		m := typical(t)
		env, err := Encode(m, signer)
		if err != nil {
			t.Fatal(err)
		}
		manifest, err := encodeManifest(m)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: envelope %d bytes (manifest %d, authentication wrapper and framing %d; URI %d)",
			tc.name, len(env), len(manifest), len(env)-len(manifest), len(m.URI))
		if len(env) >= limit {
			t.Errorf("%s envelope is %d bytes, want < %d", tc.name, len(env), limit)
		}
	}
}

// splitEnvelope returns the authentication wrapper and manifest of env.
func splitEnvelope(t *testing.T, env []byte) (auth, manifest []byte) {
	t.Helper()
	var tag cbor.RawTag
	if err := cbor.Unmarshal(env, &tag); err != nil {
		t.Fatal(err)
	}
	var m map[int][]byte
	if err := cbor.Unmarshal(tag.Content, &m); err != nil {
		t.Fatal(err)
	}
	return m[envAuthentication], m[envManifest]
}

func rebuild(t *testing.T, tagNumber uint64, members map[any]any) []byte {
	t.Helper()
	b, err := encMode.Marshal(cbor.Tag{Number: tagNumber, Content: members})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestTamper(t *testing.T) {
	signer, verifier := newES256(t)
	m := typical(t)
	env, err := Encode(m, signer)
	if err != nil {
		t.Fatal(err)
	}
	auth, manifest := splitEnvelope(t, env)
	flip := func(b []byte, i int) []byte {
		c := bytes.Clone(b)
		c[i] ^= 0x01
		return c
	}
	nested := append(bytes.Repeat([]byte{0x81}, 40), 0x00) // [[[[…0…]]]]
	manyItems := append([]byte{0x99, 0x03, 0xe8}, bytes.Repeat([]byte{0x00}, 1000)...)
	manyPairs := []byte{0xb8, 100}
	for i := range 100 {
		manyPairs = append(manyPairs, 0x18, byte(i), 0x00)
	}
	withExtra := func(raw []byte) []byte {
		return rebuild(t, tagEnvelope, map[any]any{
			envAuthentication: auth, envManifest: manifest, 99: cbor.RawMessage(raw),
		})
	}
	sha512Digest := func() []byte {
		wrapped, _ := encMode.Marshal(manifest)
		sum := sha512.Sum512(wrapped)
		d, _ := encMode.Marshal(suitDigest{Alg: -44, Bytes: sum[:]})
		e, err := assemble(d, manifest, signer)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	uriAt := bytes.Index(env, []byte(m.URI))
	digestAt := bytes.Index(env, mustHex(t, "822f5820")) + 4
	sigAt := bytes.Index(env, mustHex(t, "d28443a10126a0f65840")) + 10
	_, otherKey := newES256(t)
	_, edKey := newEd25519(t)

	for _, tc := range []struct {
		name     string
		env      []byte
		verifier cose.Verifier
		want     error
	}{
		{"manifest byte flipped", flip(env, uriAt), verifier, ErrDigestMismatch},
		{"digest byte flipped", flip(env, digestAt), verifier, ErrDigestMismatch},
		{"signature byte flipped", flip(env, sigAt), verifier, ErrSignature},
		{"other key", env, otherKey, ErrSignature},
		{"other algorithm", env, edKey, ErrNoSignature},
		{"truncated", env[:len(env)-1], verifier, ErrMalformed},
		{"trailing byte", append(bytes.Clone(env), 0x00), verifier, ErrTrailingBytes},
		{"oversized", append(bytes.Clone(env), make([]byte, MaxEnvelopeSize)...), verifier, ErrTooLarge},
		{"SHA-512 manifest digest", sha512Digest(), verifier, ErrUnsupportedDigest},
		{"nesting abuse", withExtra(nested), verifier, ErrLimits},
		{"huge array", withExtra(manyItems), verifier, ErrLimits},
		{"huge map", withExtra(manyPairs), verifier, ErrLimits},
		{"wrong tag", rebuild(t, 108, map[any]any{envAuthentication: auth, envManifest: manifest}), verifier, ErrMalformed},
		{"no signature", rebuild(t, tagEnvelope, map[any]any{
			envAuthentication: must(encMode.Marshal([][]byte{must(sha256DigestOf(manifest))})),
			envManifest:       manifest,
		}), verifier, ErrNoSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Decode(tc.env, tc.verifier)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Decode = %v, %v; want %v", got, err, tc.want)
			}
			t.Log(err)
		})
	}

	// Every shorter prefix fails too.
	for n := range len(env) {
		if _, err := Decode(env[:n], verifier); err == nil {
			t.Fatalf("prefix of %d bytes decoded", n)
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// sha256DigestOf returns the encoded SUIT_Digest of an encoded manifest.
func sha256DigestOf(manifest []byte) ([]byte, error) {
	wrapped, err := encMode.Marshal(manifest)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(wrapped)
	return encMode.Marshal(suitDigest{Alg: algSHA256, Bytes: sum[:]})
}

// Decode skips what it does not know but still authenticates it, and reads
// parameters only where they reach component 0.
func TestUnknownContentSkipped(t *testing.T) {
	signer, verifier := newEd25519(t)
	want := typical(t)
	seq := func(items ...any) []byte { return must(encMode.Marshal(items)) }
	digest := func(d [32]byte) []byte { return must(encMode.Marshal(suitDigest{Alg: algSHA256, Bytes: d[:]})) }
	manifest := must(encMode.Marshal(map[int]any{
		manVersion:  1,
		manSequence: want.SequenceNumber,
		manCommon: must(encMode.Marshal(map[int]any{
			commonComponents: [][][]byte{want.ComponentID, {[]byte("other")}},
			commonShared: seq(
				-300, "custom command",
				dirOverrideParams, map[int]any{
					paramVendorID: want.VendorID[:], paramClassID: want.ClassID[:],
					paramImageDigest: digest(want.ImageDigest), paramImageSize: want.ImageSize,
					-257: "custom parameter",
				},
				dirComponentIndex, 1,
				dirOverrideParams, map[int]any{paramImageDigest: digest([32]byte{1}), paramImageSize: 1},
				dirComponentIndex, true,
				condVendorID, reportAll,
				15, []any{seq(dirOverrideParams, map[int]any{paramImageSize: 2})}, // try-each: not evaluated
			),
		})),
		manValidate: seq(condImageMatch, reportAll),
		9:           seq(23, 2), // invoke
		99:          "unknown manifest member",
		16: seq( // payload-fetch
			dirComponentIndex, []uint{1, 0},
			dirOverrideParams, map[int]any{paramURI: want.URI},
			dirFetch, reportRecordOnFail,
		),
		// A severed install sequence: only its digest stays in the manifest.
		manInstall: []any{algSHA256, make([]byte, 32)},
	}))
	env, err := seal(manifest, signer)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(env, verifier)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if !reflect.DeepEqual(*got, want) {
		t.Fatalf("decoded %+v\nwant %+v", *got, want)
	}
}

func TestDecodeRefusesBadManifests(t *testing.T) {
	signer, verifier := newES256(t)
	good := must(encodeManifest(typical(t)))
	var base map[int]cbor.RawMessage
	if err := cbor.Unmarshal(good, &base); err != nil {
		t.Fatal(err)
	}
	with := func(key int, v any) []byte {
		m := map[int]any{}
		for k, raw := range base {
			m[k] = raw
		}
		if v == nil {
			delete(m, key)
		} else {
			m[key] = v
		}
		return must(encMode.Marshal(m))
	}
	for _, tc := range []struct {
		name     string
		manifest []byte
		want     error
	}{
		{"version 2", with(manVersion, 2), ErrMalformed},
		{"no sequence number", with(manSequence, nil), ErrMalformed},
		{"negative sequence number", with(manSequence, -1), ErrMalformed},
		{"no common", with(manCommon, nil), ErrMalformed},
		{"install not a sequence", with(manInstall, "text"), ErrMalformed},
		{"odd sequence", with(manInstall, must(encMode.Marshal([]any{dirFetch}))), ErrMalformed},
		{"short vendor id", with(manInstall, must(encMode.Marshal([]any{dirOverrideParams, map[int]any{paramVendorID: []byte{1, 2}}}))), ErrMalformed},
		{"SHA-512 image digest", with(manInstall, must(encMode.Marshal([]any{dirOverrideParams, map[int]any{
			paramImageDigest: must(encMode.Marshal(suitDigest{Alg: -44, Bytes: make([]byte, 64)})),
		}}))), ErrUnsupportedDigest},
		{"uri not text", with(manInstall, must(encMode.Marshal([]any{dirOverrideParams, map[int]any{paramURI: []byte("x")}}))), ErrMalformed},
		{"duplicate key", duplicateVersion(good), ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, err := seal(tc.manifest, signer)
			if err != nil {
				t.Fatal(err)
			}
			_, err = Decode(env, verifier)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Decode: %v, want %v", err, tc.want)
			}
			t.Log(err)
		})
	}
}

// duplicateVersion adds a second manifest-version member to an encoded map.
func duplicateVersion(manifest []byte) []byte {
	dup := bytes.Clone(manifest)
	dup[0]++ // one more pair (the maps here have fewer than 23)
	return append(dup, manVersion, manifestVersion)
}

func TestEncodeRejectsInvalid(t *testing.T) {
	signer, _ := newEd25519(t)
	for _, tc := range []struct {
		name  string
		spoil func(*Manifest)
	}{
		{"no component", func(m *Manifest) { m.ComponentID = nil }},
		{"zero vendor id", func(m *Manifest) { m.VendorID = [16]byte{} }},
		{"version 1 class id", func(m *Manifest) { m.ClassID[6] = 0x10 }},
		{"zero digest", func(m *Manifest) { m.ImageDigest = [32]byte{} }},
		{"zero size", func(m *Manifest) { m.ImageSize = 0 }},
		{"no URI", func(m *Manifest) { m.URI = "" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := typical(t)
			tc.spoil(&m)
			if _, err := Encode(m, signer); !errors.Is(err, ErrInvalidManifest) {
				t.Fatalf("Encode: %v, want ErrInvalidManifest", err)
			}
		})
	}
}

func TestCheckSequence(t *testing.T) {
	m := &Manifest{SequenceNumber: 7}
	for _, tc := range []struct {
		min  uint64
		want error
	}{{0, nil}, {6, nil}, {7, nil}, {8, ErrRollback}} {
		if err := CheckSequence(m, tc.min); !errors.Is(err, tc.want) {
			t.Errorf("CheckSequence(7, %d) = %v, want %v", tc.min, err, tc.want)
		}
	}
}
