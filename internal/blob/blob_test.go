package blob

import (
	"encoding/hex"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// FIPS 180-2 test vectors for "abc".
const (
	abcSHA256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
	abcSHA512 = "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a" +
		"2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
)

func TestParseDigest(t *testing.T) {
	d, err := ParseDigest("sha256:" + abcSHA256)
	if err != nil {
		t.Fatalf("ParseDigest: %v", err)
	}
	if got := d.String(); got != "sha256:"+abcSHA256 {
		t.Errorf("String() = %q", got)
	}
	if got := d.Hex(); got != abcSHA256 {
		t.Errorf("Hex() = %q", got)
	}
	if d.SHA512 != [64]byte{} {
		t.Errorf("SHA512 = %x, want zero (unknown)", d.SHA512)
	}

	for _, tc := range []struct{ in, wantMsg string }{
		{"", "prefix"},
		{abcSHA256, "prefix"}, // bare hex: one spelling per blob
		{"SHA256:" + abcSHA256, "prefix"},
		{"sha512:" + abcSHA512, "prefix"},
		{"sha256:", "want 64 hex characters, got 0"},
		{"sha256:" + abcSHA256[:63], "got 63"},
		{"sha256:" + abcSHA256 + "0", "got 65"},
		{"sha256:" + strings.ToUpper(abcSHA256), "byte 0 ('B') is not lowercase hex"},
		{"sha256:" + abcSHA256[:60] + "../", "got 63"},
		{"sha256:" + abcSHA256[:62] + "/x", "byte 62 ('/')"},
		{"sha256: " + abcSHA256[1:], "byte 0 (' ')"},
	} {
		_, err := ParseDigest(tc.in)
		if !errors.Is(err, ErrInvalidDigest) {
			t.Errorf("ParseDigest(%q) error = %v, want ErrInvalidDigest", tc.in, err)
			continue
		}
		if !strings.Contains(err.Error(), tc.wantMsg) {
			t.Errorf("ParseDigest(%q) error = %q, want it to mention %q", tc.in, err, tc.wantMsg)
		}
	}
}

func TestInfoDigest(t *testing.T) {
	d, err := Info{SHA256: abcSHA256, SHA512: abcSHA512, Size: 3}.Digest()
	if err != nil {
		t.Fatalf("Digest: %v", err)
	}
	if d.Hex() != abcSHA256 {
		t.Errorf("Hex() = %q", d.Hex())
	}
	if got := hex.EncodeToString(d.SHA512[:]); got != abcSHA512 {
		t.Errorf("SHA512 = %s", got)
	}
	_, err = Info{SHA256: abcSHA256, SHA512: abcSHA256}.Digest()
	if !errors.Is(err, ErrInvalidDigest) || !strings.Contains(err.Error(), "sha512") {
		t.Errorf("short sha512: err = %v, want ErrInvalidDigest naming sha512", err)
	}
}

func TestErrorsClipUntrustedInput(t *testing.T) {
	_, err := ParseDigest("sha256:" + strings.Repeat("a", 10000))
	if !errors.Is(err, ErrInvalidDigest) {
		t.Fatalf("err = %v", err)
	}
	if len(err.Error()) > 300 {
		t.Errorf("error message is %d bytes; untrusted input should be clipped", len(err.Error()))
	}
}

// FuzzParseDigest checks the parsers of untrusted digest strings: they never
// panic, accept only the canonical spelling, and accepted keys map to a path
// inside the store root.
func FuzzParseDigest(f *testing.F) {
	for _, s := range []string{
		"sha256:" + abcSHA256,
		abcSHA256,
		"sha256:" + strings.ToUpper(abcSHA256),
		"sha256:../../etc/passwd",
		"../../etc/passwd",
		"sha256:" + abcSHA256[:62] + "/.",
		"",
		"sha256:",
	} {
		f.Add(s)
	}
	root := filepath.FromSlash("/srv/blobs")
	d := &Dir{root: root}
	f.Fuzz(func(t *testing.T, s string) {
		dg, err := ParseDigest(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidDigest) {
				t.Fatalf("ParseDigest(%q) error %v is not ErrInvalidDigest", s, err)
			}
		} else {
			if dg.String() != s {
				t.Fatalf("ParseDigest(%q).String() = %q: not canonical", s, dg.String())
			}
			if again, err := ParseDigest(dg.String()); err != nil || again != dg {
				t.Fatalf("round trip of %q: %v, %v", s, again, err)
			}
		}

		// Store keys are bare hex and become path components.
		if err := checkHex("sha256", s, 32); err != nil {
			if !errors.Is(err, ErrInvalidDigest) {
				t.Fatalf("checkHex(%q) error %v is not ErrInvalidDigest", s, err)
			}
			return
		}
		if s != strings.ToLower(s) || len(s) != 64 || strings.Trim(s, "0123456789abcdef") != "" {
			t.Fatalf("checkHex accepted non-canonical %q", s)
		}
		p := d.blobPath(s)
		rel, err := filepath.Rel(root, p)
		if err != nil || rel != filepath.Join("sha256", s[:2], s) {
			t.Fatalf("blobPath(%q) = %q escapes layout (rel %q, %v)", s, p, rel, err)
		}
	})
}
