// Package identity manages the device's own key pair. The key is generated
// on the device and its private half never leaves it: the server learns
// only the public key and identifies the device by its KeyID.
//
// The server side uses ParsePublicKeyPEM, PublicKeyID and Verify; they don't
// touch the file system.
package identity

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/steward-iot/steward/agent/atomicfile"
)

// Algorithm names a supported key algorithm.
type Algorithm string

const (
	Ed25519 Algorithm = "ed25519"
	// ECDSAP256 is for devices whose secure element can't do Ed25519.
	ECDSAP256 Algorithm = "ecdsa-p256"
)

// KeyFile is the private key's file name inside the state directory.
const KeyFile = "device.key"

// MaxPublicKeyPEM is the largest input ParsePublicKeyPEM accepts. Supported
// keys need under 200 bytes; the bound keeps hostile input cheap to reject.
const MaxPublicKeyPEM = 4 << 10

// maxKeyFile bounds how much of a key file is read; a PKCS#8 PEM of a
// supported key is under 300 bytes.
const maxKeyFile = 4 << 10

// ErrBadSignature is returned by Verify when the signature does not match,
// as opposed to errors about an unusable public key.
var ErrBadSignature = errors.New("identity: signature verification failed")

// Identity is the device's key pair. Obtain one with LoadOrCreate, or
// Generate for one that is not stored.
type Identity struct {
	alg Algorithm
	// A crypto.Signer rather than a concrete key so that a key held in a
	// secure element can slot in later.
	signer crypto.Signer
	pubDER []byte // PKIX
	keyID  string
}

// LoadOrCreate loads the device key from dir/device.key, or, if that file
// does not exist, generates an alg key and stores it there (PKCS#8 PEM, mode
// 0600, written crash-safely), creating dir with mode 0700 if needed.
// created reports whether a new key was generated.
//
// An existing key file is never replaced, since that would change the
// device's identity: a file that is readable or writable by group or others,
// unparsable, or holds a key of another algorithm than alg is an error.
//
// Concurrent first calls for the same dir from several processes may each
// generate a key; the last one written wins. Call it from one process.
func LoadOrCreate(dir string, alg Algorithm) (_ *Identity, created bool, _ error) {
	if alg != Ed25519 && alg != ECDSAP256 {
		return nil, false, fmt.Errorf("identity: unsupported algorithm %q (want %q or %q)", alg, Ed25519, ECDSAP256)
	}
	if dir == "" {
		return nil, false, errors.New("identity: empty state directory")
	}
	dir = filepath.Clean(dir) // mkdirAll relies on it
	path := filepath.Join(dir, KeyFile)
	id, err := load(path, alg)
	if err == nil {
		return id, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, err
	}
	// A dangling symlink also reports ErrNotExist, e.g. when the partition
	// holding the real key isn't mounted yet. Generating a key then would
	// silently replace the device's identity.
	if _, lerr := os.Lstat(path); lerr == nil {
		return nil, false, fmt.Errorf("identity: %s is a symlink to a missing file; refusing to create a new device key", path)
	}
	id, err = create(dir, path, alg)
	if err != nil {
		return nil, false, err
	}
	return id, true, nil
}

func load(path string, alg Algorithm) (*Identity, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err) // caller checks fs.ErrNotExist
	}
	defer f.Close()
	// Stat the open file, not the path, so the checks apply to what is read.
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("identity: %s is not a regular file (%v)", path, fi.Mode().Type())
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("identity: private key %s is accessible by group or others (mode %04o); fix with: chmod 600 %s", path, perm, path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("identity: reading %s: %w", path, err)
	}
	signer, err := parsePrivateKeyPEM(b)
	if err != nil {
		return nil, fmt.Errorf("identity: %s: %w; refusing to replace it (moving it away gives the device a new identity)", path, err)
	}
	id, err := newIdentity(signer)
	if err != nil {
		return nil, fmt.Errorf("identity: %s: %w", path, err)
	}
	if id.alg != alg {
		return nil, fmt.Errorf("identity: %s holds an %s key, not the requested %s; the existing device key is never replaced", path, id.alg, alg)
	}
	return id, nil
}

func parsePrivateKeyPEM(b []byte) (crypto.Signer, error) {
	if len(b) > maxKeyFile {
		return nil, fmt.Errorf("larger than %d bytes, not a device key", maxKeyFile)
	}
	block, rest := pem.Decode(b)
	if block == nil {
		return nil, errors.New("no PEM block found (corrupt or truncated?)")
	}
	if block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("PEM block is %q, want \"PRIVATE KEY\"", block.Type)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("unexpected data after the PEM block")
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("bad PKCS#8 private key: %w", err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("unsupported private key type %T", key)
	}
	return signer, nil
}

// Generate returns a new alg identity that is kept in memory only, for
// simulated devices and tests. A real device uses LoadOrCreate: an identity
// that is not stored is lost, and the device with it, when the process ends.
func Generate(alg Algorithm) (*Identity, error) {
	if alg != Ed25519 && alg != ECDSAP256 {
		return nil, fmt.Errorf("identity: unsupported algorithm %q (want %q or %q)", alg, Ed25519, ECDSAP256)
	}
	return generate(alg)
}

func generate(alg Algorithm) (*Identity, error) {
	var signer crypto.Signer
	var err error
	switch alg {
	case Ed25519:
		_, signer, err = ed25519.GenerateKey(rand.Reader)
	case ECDSAP256:
		signer, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		return nil, fmt.Errorf("identity: generating %s key: %w", alg, err)
	}
	id, err := newIdentity(signer)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	return id, nil
}

func create(dir, path string, alg Algorithm) (*Identity, error) {
	id, err := generate(alg)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(id.signer)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	if err := mkdirAll(dir); err != nil {
		return nil, fmt.Errorf("identity: creating state directory: %w", err)
	}
	if err := atomicfile.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return nil, fmt.Errorf("identity: storing new key: %w", err)
	}
	return id, nil
}

// mkdirAll is os.MkdirAll with mode 0700 that also fsyncs the parent of
// each directory it creates: otherwise a crash could lose the directory, and
// with it the new key, even though the key file itself was synced.
func mkdirAll(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := mkdirAll(parent); err != nil {
			return err
		}
	}
	// ErrExist: another process created it meanwhile, which is fine.
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return atomicfile.SyncDir(parent)
}

// newIdentity's errors lack the "identity: " prefix; callers add context.
func newIdentity(signer crypto.Signer) (*Identity, error) {
	pub := signer.Public()
	alg, err := algorithmOf(pub)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return &Identity{alg: alg, signer: signer, pubDER: der, keyID: keyID(der)}, nil
}

// Algorithm returns the key's algorithm.
func (id *Identity) Algorithm() Algorithm { return id.alg }

// PublicKey returns an ed25519.PublicKey or an *ecdsa.PublicKey (P-256).
func (id *Identity) PublicKey() crypto.PublicKey { return id.signer.Public() }

// PublicKeyPEM returns the public key as a PKIX "PUBLIC KEY" PEM block, the
// form ParsePublicKeyPEM accepts.
func (id *Identity) PublicKeyPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: id.pubDER})
}

// KeyID returns the device key's fingerprint: the hex SHA-256 of the PKIX
// DER public key. It equals PublicKeyID(id.PublicKey()).
func (id *Identity) KeyID() string { return id.keyID }

// Sign signs msg: plain Ed25519, or ECDSA P-256 over the SHA-256 of msg with
// an ASN.1 DER signature. Verify checks the result.
func (id *Identity) Sign(msg []byte) ([]byte, error) {
	if id.alg == Ed25519 {
		return id.signer.Sign(rand.Reader, msg, crypto.Hash(0))
	}
	digest := sha256.Sum256(msg)
	return id.signer.Sign(rand.Reader, digest[:], crypto.SHA256)
}

// Verify checks a signature made by Identity.Sign. pub must be an
// ed25519.PublicKey or a P-256 *ecdsa.PublicKey, as returned by
// ParsePublicKeyPEM. A mismatching signature yields ErrBadSignature.
func Verify(pub crypto.PublicKey, msg, sig []byte) error {
	alg, err := algorithmOf(pub)
	if err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	var ok bool
	switch alg {
	case Ed25519:
		ok = ed25519.Verify(pub.(ed25519.PublicKey), msg, sig)
	case ECDSAP256:
		digest := sha256.Sum256(msg)
		ok = ecdsa.VerifyASN1(pub.(*ecdsa.PublicKey), digest[:], sig)
	}
	if !ok {
		return ErrBadSignature
	}
	return nil
}

// ParsePublicKeyPEM parses a single PKIX "PUBLIC KEY" PEM block, such as one
// from Identity.PublicKeyPEM, and accepts only Ed25519 and ECDSA P-256 keys.
// Surrounding whitespace is allowed; any other data before or after the
// block, PEM headers and inputs over MaxPublicKeyPEM bytes are not.
func ParsePublicKeyPEM(b []byte) (crypto.PublicKey, Algorithm, error) {
	if len(b) > MaxPublicKeyPEM {
		return nil, "", fmt.Errorf("identity: public key PEM is %d bytes, limit %d", len(b), MaxPublicKeyPEM)
	}
	// pem.Decode silently skips anything before the block it returns,
	// including malformed blocks, so require the only BEGIN to come first.
	if !bytes.HasPrefix(bytes.TrimSpace(b), []byte("-----BEGIN ")) {
		return nil, "", errors.New("identity: public key is not a PEM block, or has data before it")
	}
	if bytes.Count(b, []byte("-----BEGIN")) > 1 {
		return nil, "", errors.New("identity: more than one PEM block; want exactly one public key")
	}
	block, rest := pem.Decode(b)
	if block == nil {
		return nil, "", errors.New("identity: malformed PEM public key (truncated?)")
	}
	if block.Type != "PUBLIC KEY" {
		return nil, "", fmt.Errorf("identity: PEM block is %q, want \"PUBLIC KEY\"", block.Type)
	}
	if len(block.Headers) != 0 {
		return nil, "", errors.New("identity: unexpected PEM headers in public key")
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, "", errors.New("identity: unexpected data after the PEM public key")
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, "", fmt.Errorf("identity: bad PKIX public key: %w", err)
	}
	alg, err := algorithmOf(pub)
	if err != nil {
		return nil, "", fmt.Errorf("identity: %w", err)
	}
	return pub, alg, nil
}

// PublicKeyID returns the KeyID of a supported public key, e.g. one from
// ParsePublicKeyPEM, so the server derives the same fingerprint as the
// device.
func PublicKeyID(pub crypto.PublicKey) (string, error) {
	if _, err := algorithmOf(pub); err != nil {
		return "", fmt.Errorf("identity: %w", err)
	}
	// Re-encoding rather than hashing received bytes keeps the ID canonical.
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("identity: %w", err)
	}
	return keyID(der), nil
}

func keyID(pkixDER []byte) string {
	sum := sha256.Sum256(pkixDER)
	return hex.EncodeToString(sum[:])
}

// algorithmOf reports the Algorithm of pub, or why it is not supported;
// callers add the "identity: " prefix.
func algorithmOf(pub crypto.PublicKey) (Algorithm, error) {
	switch k := pub.(type) {
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return "", fmt.Errorf("Ed25519 public key is %d bytes, want %d", len(k), ed25519.PublicKeySize)
		}
		return Ed25519, nil
	case *ecdsa.PublicKey:
		if k == nil || k.Curve == nil {
			return "", errors.New("empty ECDSA public key")
		}
		if k.Curve != elliptic.P256() {
			return "", fmt.Errorf("unsupported ECDSA curve %s (only P-256)", k.Curve.Params().Name)
		}
		return ECDSAP256, nil
	case *rsa.PublicKey:
		return "", errors.New("RSA keys are not supported (use Ed25519 or ECDSA P-256)")
	default:
		return "", fmt.Errorf("unsupported public key type %T (use Ed25519 or ECDSA P-256)", pub)
	}
}
