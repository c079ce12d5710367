package advisory

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/steward-iot/steward/internal/problem"
)

// maxArmoredKey bounds an imported key.
const maxArmoredKey = 64 << 10

func pgpConfig(now time.Time) *packet.Config {
	// EdDSA (legacy, v4 keys): small, fast, and verifiable by every
	// OpenPGP implementation CSAF tooling uses (gopenpgp v2, GnuPG ≥ 2.1).
	return &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA, Time: func() time.Time { return now }}
}

// newSigningKey generates an organization's advisory key.
func newSigningKey(orgID, publisher string, now time.Time) (SigningKey, error) {
	e, err := openpgp.NewEntity(publisher+" CSAF advisories", "Steward", "", pgpConfig(now))
	if err != nil {
		return SigningKey{}, fmt.Errorf("generate OpenPGP key: %w", err)
	}
	return signingKeyOf(orgID, e, now)
}

// signingKeyOf armors an entity's private and public keys.
func signingKeyOf(orgID string, e *openpgp.Entity, now time.Time) (SigningKey, error) {
	var priv, pub bytes.Buffer
	w, err := armor.Encode(&priv, openpgp.PrivateKeyType, nil)
	if err != nil {
		return SigningKey{}, err
	}
	if err := e.SerializePrivateWithoutSigning(w, nil); err != nil {
		return SigningKey{}, fmt.Errorf("serialize OpenPGP private key: %w", err)
	}
	if err := w.Close(); err != nil {
		return SigningKey{}, err
	}
	if pub, err = armoredPublic(e); err != nil {
		return SigningKey{}, err
	}
	return SigningKey{OrgID: orgID, Fingerprint: fingerprint(e), PublicKey: pub.String(), Private: priv.String(), CreatedAt: now}, nil
}

func armoredPublic(e *openpgp.Entity) (bytes.Buffer, error) {
	var pub bytes.Buffer
	w, err := armor.Encode(&pub, openpgp.PublicKeyType, nil)
	if err != nil {
		return pub, err
	}
	if err := e.Serialize(w); err != nil {
		return pub, fmt.Errorf("serialize OpenPGP public key: %w", err)
	}
	err = w.Close()
	pub.WriteByte('\n')
	return pub, err
}

func fingerprint(e *openpgp.Entity) string {
	return strings.ToUpper(fmt.Sprintf("%x", e.PrimaryKey.Fingerprint))
}

// parseSigningKey reads an armored private key that can sign at now. A
// passphrase-protected key is decrypted with passphrase.
func parseSigningKey(armored, passphrase string, now time.Time) (*openpgp.Entity, error) {
	if len(armored) > maxArmoredKey {
		return nil, problem.InvalidField("private_key", "is longer than %d bytes", maxArmoredKey)
	}
	list, err := openpgp.ReadArmoredKeyRing(strings.NewReader(armored))
	if err != nil {
		return nil, problem.InvalidField("private_key", "is not an armored OpenPGP key: %v", err)
	}
	if len(list) != 1 {
		return nil, problem.InvalidField("private_key", "holds %d keys; import exactly one", len(list))
	}
	e := list[0]
	if e.PrivateKey == nil {
		return nil, problem.InvalidField("private_key", "is a public key; the private key is needed to sign")
	}
	if e.PrivateKey.Encrypted {
		if passphrase == "" {
			return nil, problem.InvalidField("passphrase", "the private key is protected by a passphrase")
		}
		if err := e.DecryptPrivateKeys([]byte(passphrase)); err != nil {
			return nil, problem.InvalidField("passphrase", "does not decrypt the private key")
		}
	}
	k, ok := e.SigningKey(now)
	if !ok || k.PrivateKey == nil || k.PrivateKey.Encrypted {
		return nil, problem.InvalidField("private_key", "has no usable signing key (expired, revoked or without the signing flag)")
	}
	return e, nil
}

// sign makes an armored detached signature over data.
func sign(e *openpgp.Entity, data []byte, now time.Time) (string, error) {
	var sig bytes.Buffer
	if err := openpgp.ArmoredDetachSign(&sig, e, bytes.NewReader(data), pgpConfig(now)); err != nil {
		return "", fmt.Errorf("sign: %w", err)
	}
	sig.WriteByte('\n')
	return sig.String(), nil
}

// Verify checks an armored detached signature over data against an
// armored public key, as a consumer of the distribution does, at time at
// (now when zero): neither key nor signature may be from a later time.
func Verify(publicKey string, data []byte, signature string, at time.Time) error {
	keys, err := openpgp.ReadArmoredKeyRing(strings.NewReader(publicKey))
	if err != nil {
		return fmt.Errorf("read public key: %w", err)
	}
	if len(keys) == 0 {
		return errors.New("no public key")
	}
	var cfg *packet.Config
	if !at.IsZero() {
		cfg = &packet.Config{Time: func() time.Time { return at }}
	}
	_, err = openpgp.CheckArmoredDetachedSignature(keys, bytes.NewReader(data), strings.NewReader(signature), cfg)
	return err
}
