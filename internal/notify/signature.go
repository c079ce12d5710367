package notify

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Standard Webhooks headers (https://www.standardwebhooks.com/).
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// SecretPrefix marks a symmetric Standard Webhooks signing secret.
const SecretPrefix = "whsec_"

// secretBytes is the size of generated secrets; the spec asks for 24 to
// 64 random bytes.
const secretBytes = 32

// DefaultTolerance is how far a webhook timestamp may be from the
// receiver's clock; Verify uses it when given no tolerance.
const DefaultTolerance = 5 * time.Minute

// Verification errors, for errors.Is.
var (
	ErrBadSecret           = errors.New("webhook secret is not whsec_ followed by base64")
	ErrMissingHeaders      = errors.New("webhook-id, webhook-timestamp and webhook-signature headers are required")
	ErrMalformedHeaders    = errors.New("malformed webhook headers")
	ErrTimestamp           = errors.New("webhook timestamp is outside the tolerance (replayed or clock skew)")
	ErrNoMatchingSignature = errors.New("no webhook signature matches")
)

// Secret is a signing secret. It prints redacted so that it cannot leak
// into logs through a struct that holds it.
type Secret string

func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return SecretPrefix + "[redacted]"
}

// GoString redacts %#v too.
func (s Secret) GoString() string { return strconv.Quote(s.String()) }

// LogValue redacts it in slog records.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalJSON redacts it should a Secret ever be encoded; responses
// carry a new secret as a plain string, once.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// GenerateSecret returns a new random signing secret, whsec_<base64>.
func GenerateSecret() string {
	var b [secretBytes]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return SecretPrefix + base64.StdEncoding.EncodeToString(b[:])
}

// secretKey decodes a secret into its HMAC key. The whsec_ prefix is
// optional, as in the reference libraries.
func secretKey(secret string) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, SecretPrefix))
	if err != nil || len(key) == 0 {
		return nil, ErrBadSecret
	}
	return key, nil
}

func sign(key []byte, msgID string, ts int64, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(msgID))
	mac.Write([]byte{'.'})
	mac.Write(strconv.AppendInt(nil, ts, 10))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// Sign returns the webhook-signature entry "v1,<base64 HMAC-SHA256>" for
// msgID, the timestamp (whole seconds) and the exact body bytes.
func Sign(secret, msgID string, ts time.Time, body []byte) (string, error) {
	key, err := secretKey(secret)
	if err != nil {
		return "", err
	}
	return "v1," + sign(key, msgID, ts.Unix(), body), nil
}

// signatureHeader signs with every given secret, space-separated, as the
// spec does during a rotation.
func signatureHeader(secrets []Secret, msgID string, ts time.Time, body []byte) (string, error) {
	var sigs []string
	for _, s := range secrets {
		sig, err := Sign(string(s), msgID, ts, body)
		if err != nil {
			return "", err
		}
		sigs = append(sigs, sig)
	}
	return strings.Join(sigs, " "), nil
}

// maxSignatures bounds the work one request can ask of Verify.
const maxSignatures = 16

// Verify checks a received webhook: the three Standard Webhooks headers
// are present and well formed, the timestamp is within tolerance of now
// (DefaultTolerance when tolerance <= 0; replay protection cannot be
// turned off), and one v1 signature in the space-separated list is the
// HMAC of "id.timestamp.body" under secret. Signatures are compared in
// constant time. Receivers should also drop repeated webhook-ids.
func Verify(secret string, headers http.Header, body []byte, tolerance time.Duration, now time.Time) error {
	key, err := secretKey(secret)
	if err != nil {
		return err
	}
	msgID, tsText, sigs := headers.Get(HeaderID), headers.Get(HeaderTimestamp), headers.Get(HeaderSignature)
	if msgID == "" || tsText == "" || sigs == "" {
		return ErrMissingHeaders
	}
	// The signed content is "id.ts.body": an id with a dot or a timestamp
	// that is not plain digits could be shifted across the separators.
	if strings.ContainsAny(msgID, ". \t") || len(msgID) > 256 {
		return fmt.Errorf("%w: webhook-id", ErrMalformedHeaders)
	}
	ts, ok := parseUnixSeconds(tsText)
	if !ok {
		return fmt.Errorf("%w: webhook-timestamp must be unix seconds", ErrMalformedHeaders)
	}
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return ErrTimestamp
	}
	want := []byte(sign(key, msgID, ts, body))
	entries := strings.Fields(sigs)
	if len(entries) > maxSignatures {
		return fmt.Errorf("%w: more than %d signatures", ErrMalformedHeaders, maxSignatures)
	}
	wellFormed := false
	for _, e := range entries {
		version, sig, ok := strings.Cut(e, ",")
		if !ok || version != "v1" {
			continue // other schemes (v1a) may accompany ours
		}
		wellFormed = true
		if hmac.Equal([]byte(sig), want) {
			return nil
		}
	}
	if !wellFormed {
		return fmt.Errorf("%w: no v1 signature in webhook-signature", ErrMalformedHeaders)
	}
	return ErrNoMatchingSignature
}

// parseUnixSeconds accepts only plain decimal digits (no sign, no space).
func parseUnixSeconds(s string) (int64, bool) {
	if len(s) == 0 || len(s) > 12 {
		return 0, false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}
