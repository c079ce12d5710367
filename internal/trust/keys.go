package trust

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/steward-iot/steward/internal/problem"
)

// Signer is one key of one role. It holds the private key when this process
// may sign with it (online keys, or an offline key brought in for a
// ceremony) and only the public key otherwise, so that a repository can list
// keys whose signatures arrive later through AddSignature.
type Signer struct {
	role Role
	id   string
	key  *metadata.Key
	priv crypto.Signer // nil for a key held elsewhere
}

// NewSigner wraps a private key: an ed25519.PrivateKey, an *ecdsa.PrivateKey
// on P-256, or any crypto.Signer (an HSM, a KMS) with such a public key.
func NewSigner(role Role, priv crypto.Signer) (*Signer, error) {
	s, err := NewOfflineSigner(role, priv.Public())
	if err != nil {
		return nil, err
	}
	s.priv = priv
	return s, nil
}

// NewOfflineSigner names a key whose private half is kept elsewhere; its
// signatures come in through Repository.AddSignature.
func NewOfflineSigner(role Role, pub crypto.PublicKey) (*Signer, error) {
	if !role.valid() {
		return nil, problem.Invalid("unknown role %q", role)
	}
	switch k := pub.(type) {
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return nil, problem.Invalid("ed25519 public key has %d bytes, want %d", len(k), ed25519.PublicKeySize)
		}
	case *ecdsa.PublicKey:
		// go-tuf names every ECDSA key "ecdsa-sha2-nistp256" and verifies with SHA-256.
		if k.Curve != elliptic.P256() {
			return nil, problem.Invalid("ECDSA keys must be on P-256")
		}
	default:
		return nil, problem.Invalid("unsupported key type %T: use Ed25519 or ECDSA P-256", pub)
	}
	key, err := metadata.KeyFromPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("trust: %w", err)
	}
	id, err := key.ID()
	if err != nil {
		return nil, fmt.Errorf("trust: %w", err)
	}
	return &Signer{role: role, id: id, key: key}, nil
}

// Role returns the role the key signs for.
func (s *Signer) Role() Role { return s.role }

// KeyID returns the TUF key id: the hex SHA-256 of the key's canonical JSON.
func (s *Signer) KeyID() string { return s.id }

// Sign signs the canonical bytes of a document's "signed" part, as
// Repository.UnsignedRoot and UnsignedTargets export them; an offline
// signing tool calls it where the private key lives.
func (s *Signer) Sign(signed []byte) (metadata.Signature, error) {
	if s.priv == nil {
		return metadata.Signature{}, fmt.Errorf("trust: key %s has no private key here", short(s.id))
	}
	var sig []byte
	var err error
	if s.key.Type == metadata.KeyTypeEd25519 {
		sig, err = s.priv.Sign(rand.Reader, signed, crypto.Hash(0))
	} else { // ECDSA P-256: ASN.1 over SHA-256, as go-tuf verifies it
		digest := sha256.Sum256(signed)
		sig, err = s.priv.Sign(rand.Reader, digest[:], crypto.SHA256)
	}
	if err != nil {
		return metadata.Signature{}, fmt.Errorf("trust: sign with key %s: %w", short(s.id), err)
	}
	return metadata.Signature{KeyID: s.id, Signature: sig}, nil
}

var errBadSignature = errors.New("signature does not verify")

// verifySignature checks one signature the way go-tuf's client does, so a
// bad offline signature is refused when it arrives instead of being stored.
func verifySignature(key *metadata.Key, signed, sig []byte) error {
	pub, err := key.ToPublicKey()
	if err != nil {
		return err
	}
	ok := false
	switch k := pub.(type) {
	case ed25519.PublicKey:
		ok = ed25519.Verify(k, signed, sig)
	case *ecdsa.PublicKey:
		digest := sha256.Sum256(signed)
		ok = ecdsa.VerifyASN1(k, digest[:], sig)
	}
	if !ok {
		return errBadSignature
	}
	return nil
}
