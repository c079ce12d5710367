package tenancy

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strings"
)

// SecretPrefix marks Steward API tokens so secret scanners can find leaked ones.
const SecretPrefix = "stw_"

// newSecret returns a token secret with 256 bits of entropy. Such a secret
// needs no slow password hash: SHA-256 is preimage-resistant and lets us
// look tokens up by hash in an index.
func newSecret() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return SecretPrefix + base64.RawURLEncoding.EncodeToString(b[:])
}

// HashSecret returns the stored form of a token secret.
func HashSecret(secret string) string {
	sum := sha256.Sum256([]byte(strings.TrimSpace(secret)))
	return hex.EncodeToString(sum[:])
}

// plausibleSecret rejects input that cannot be a token before any lookup.
func plausibleSecret(s string) bool {
	return strings.HasPrefix(s, SecretPrefix) && len(s) == len(SecretPrefix)+43
}
