// Package blob stores immutable content-addressed blobs (release artifacts, SBOMs).
package blob

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Sentinel errors; returned errors wrap them with context, so test with errors.Is.
var (
	ErrNotFound       = errors.New("blob: not found")
	ErrTooLarge       = errors.New("blob: too large")
	ErrDigestMismatch = errors.New("blob: digest mismatch")
	ErrInvalidDigest  = errors.New("blob: invalid digest")
)

// File is an open blob. It is seekable so http.ServeContent can answer Range requests.
type File = io.ReadSeekCloser

// Info describes a stored blob. Digests are lowercase hex without a prefix.
type Info struct {
	SHA256 string
	SHA512 string
	Size   int64
}

// Digest returns the parsed form of i's digests, validating both.
func (i Info) Digest() (Digest, error) {
	var d Digest
	if err := decodeHex("sha256", i.SHA256, d.SHA256[:]); err != nil {
		return Digest{}, err
	}
	if err := decodeHex("sha512", i.SHA512, d.SHA512[:]); err != nil {
		return Digest{}, err
	}
	return d, nil
}

// Store is a content-addressed blob store keyed by sha256. Every method that
// takes a digest validates it before touching storage.
type Store interface {
	// Put streams r into the store, computing sha256 and sha512 on the way.
	// Content larger than maxSize yields ErrTooLarge; content whose sha256
	// differs from a non-empty wantSHA256 yields ErrDigestMismatch. On any
	// error nothing is kept. Putting existing content again is a no-op.
	Put(ctx context.Context, r io.Reader, maxSize int64, wantSHA256 string) (Info, error)
	// Open returns the blob for reading, or ErrNotFound.
	Open(ctx context.Context, sha256hex string) (File, Info, error)
	// Stat returns the blob's Info without reading its content, or ErrNotFound.
	Stat(ctx context.Context, sha256hex string) (Info, error)
	// Delete removes the blob, or returns ErrNotFound if it is absent.
	Delete(ctx context.Context, sha256hex string) error
	// Ping reports whether the store is usable (exists and is writable).
	Ping(ctx context.Context) error
}

const digestPrefix = "sha256:"

// Digest identifies a blob's content. The store is keyed by SHA256; SHA512 is
// extra assurance for clients and is all zero when unknown (as after
// ParseDigest, since the string form carries only the sha256).
type Digest struct {
	SHA256 [sha256.Size]byte
	SHA512 [sha512.Size]byte
}

// String returns "sha256:<hex>".
func (d Digest) String() string { return digestPrefix + d.Hex() }

// Hex returns the sha256 as lowercase hex: the key Store methods expect.
func (d Digest) Hex() string { return hex.EncodeToString(d.SHA256[:]) }

// ParseDigest parses the "sha256:<64 lowercase hex>" form produced by
// Digest.String. It is strict (no uppercase, no bare hex, no whitespace) so
// that one blob has exactly one spelling.
func ParseDigest(s string) (Digest, error) {
	rest, ok := strings.CutPrefix(s, digestPrefix)
	if !ok {
		return Digest{}, fmt.Errorf("%w: %q: want prefix %q", ErrInvalidDigest, clip(s), digestPrefix)
	}
	var d Digest
	if err := decodeHex("sha256", rest, d.SHA256[:]); err != nil {
		return Digest{}, err
	}
	return d, nil
}

// decodeHex strictly decodes lowercase hex s into dst, which sets the
// expected length. name says which digest was wrong in the error.
func decodeHex(name, s string, dst []byte) error {
	if err := checkHex(name, s, len(dst)); err != nil {
		return err
	}
	_, err := hex.Decode(dst, []byte(s))
	return err // cannot fail after checkHex
}

// checkHex reports whether s is exactly 2*size lowercase hex characters.
// Store keys become path components, so this is the path-traversal guard.
func checkHex(name, s string, size int) error {
	if len(s) != 2*size {
		return fmt.Errorf("%w: %s %q: want %d hex characters, got %d",
			ErrInvalidDigest, name, clip(s), 2*size, len(s))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return fmt.Errorf("%w: %s %q: byte %d (%q) is not lowercase hex",
				ErrInvalidDigest, name, clip(s), i, c)
		}
	}
	return nil
}

// clip bounds untrusted input echoed into error messages and logs.
func clip(s string) string {
	const limit = 80
	if len(s) > limit {
		return s[:limit] + "..."
	}
	return s
}
