// Package keys is `steward keys`: the offline half of TUF key ceremonies.
// It makes root and targets keys on a machine that never talks to the
// server, keeps them as PKCS#8 PEM files (optionally encrypted with a
// passphrase), and signs the unsigned metadata `steward ctl tuf unsigned`
// exports after showing a person what they are about to sign. Nothing here
// touches the network; the server side is internal/trust.
package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"

	"github.com/steward-iot/steward/internal/trust"
)

// Key algorithms.
const (
	Ed25519   = "ed25519"
	ECDSAP256 = "ecdsa-p256"
)

// PEM block types (RFC 7468), as OpenSSL writes them.
const (
	pemPrivate   = "PRIVATE KEY"
	pemEncrypted = "ENCRYPTED PRIVATE KEY"
	pemPublic    = "PUBLIC KEY"
)

// Generate makes a new private key.
func Generate(alg string) (crypto.Signer, error) {
	switch alg {
	case Ed25519:
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		return priv, err
	case ECDSAP256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	return nil, fmt.Errorf("key type %q: use %s or %s", alg, Ed25519, ECDSAP256)
}

// EncodePrivate writes priv as PKCS#8 PEM, encrypted when passphrase is
// not empty.
func EncodePrivate(priv crypto.Signer, passphrase string) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, err
	}
	if passphrase == "" {
		return pem.EncodeToMemory(&pem.Block{Type: pemPrivate, Bytes: der}), nil
	}
	enc, err := encryptPKCS8(der, passphrase)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemEncrypted, Bytes: enc}), nil
}

// Encrypted reports whether data holds an encrypted private key.
func Encrypted(data []byte) bool {
	block, _ := pem.Decode(data)
	return block != nil && block.Type == pemEncrypted
}

// DecodePrivate reads a PKCS#8 PEM private key. passphrase is asked for
// only when the key is encrypted; a wrong one gives ErrWrongPassphrase.
func DecodePrivate(data []byte, passphrase func() (string, error)) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM private key in the file")
	}
	der := block.Bytes
	switch block.Type {
	case pemPrivate:
	case pemEncrypted:
		pass, err := passphrase()
		if err != nil {
			return nil, err
		}
		if der, err = decryptPKCS8(der, pass); err != nil {
			return nil, err
		}
	case pemPublic:
		return nil, errors.New("this is a public key; signing needs the private key file")
	default:
		return nil, fmt.Errorf("PEM block %q is not a PKCS#8 private key", block.Type)
	}
	key, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		if block.Type == pemEncrypted {
			return nil, ErrWrongPassphrase
		}
		return nil, fmt.Errorf("unreadable private key: %w", err)
	}
	switch k := key.(type) {
	case ed25519.PrivateKey:
		return k, nil
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() {
			return nil, errors.New("ECDSA keys must be on P-256")
		}
		return k, nil
	}
	return nil, fmt.Errorf("unsupported key type %T: use Ed25519 or ECDSA P-256", key)
}

// EncodePublic writes pub as a PKIX PEM public key, the form
// `steward ctl tuf init` and `rotate-root` take.
func EncodePublic(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemPublic, Bytes: der}), nil
}

// KeyID is the TUF key id of pub: the hex SHA-256 of its canonical JSON
// form, the same for every role.
func KeyID(pub crypto.PublicKey) (string, error) {
	s, err := trust.NewOfflineSigner(trust.RoleRoot, pub)
	if err != nil {
		return "", err
	}
	return s.KeyID(), nil
}

// Algorithm names pub's algorithm as Generate takes it.
func Algorithm(pub crypto.PublicKey) string {
	if _, ok := pub.(*ecdsa.PublicKey); ok {
		return ECDSAP256
	}
	return Ed25519
}
