package wake

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Version is the payload version this package writes and accepts.
const Version = 1

// MaxPayload bounds an accepted payload in bytes. A real wake-up is about
// 150 bytes; anything far larger is not ours.
const MaxPayload = 1024

// MaxSpread is the longest spread a publisher may ask for; subscribers
// clamp larger values to it (and to their own, usually shorter,
// Config.MaxSpread). At 500 check-ins per second an hour's spread covers
// 1.8 million devices; longer spreads are better left to polling.
const MaxSpread = time.Hour

// DefaultTopicPrefix is the first topic level(s) when none is configured.
const DefaultTopicPrefix = "steward"

// MaxIDLen bounds an organization slug or device id in a topic.
const MaxIDLen = 128

// Limits of the informational fields.
const (
	MaxReasonLen    = 64
	MaxRolloutIDLen = 128
)

// Reasons the server sends. Subscribers accept any reason that is a valid
// token, so that new reasons need no agent update.
const (
	ReasonRollout = "rollout"
	ReasonUrgent  = "urgent"
)

// Payload is a wake-up as it travels over MQTT, JSON-encoded, e.g.
//
//	{"v":1,"reason":"rollout","rollout_id":"0190…","spread_seconds":30,"at":"2026-11-01T12:00:00Z"}
//
// It carries no authority: it only asks the device to check in sooner
// over its authenticated HTTPS channel.
type Payload struct {
	V int `json:"v"`
	// Reason says why, for logs: a token of letters, digits and ._- .
	Reason string `json:"reason,omitempty"`
	// RolloutID names the rollout that caused the wake-up, if any.
	RolloutID string `json:"rollout_id,omitempty"`
	// SpreadSeconds: each device waits a uniformly random delay in
	// [0, spread) before checking in, so a fleet does not arrive at once.
	SpreadSeconds int `json:"spread_seconds"`
	// At is when the server published; informational (device clocks are
	// often wrong, so nothing is decided on it).
	At time.Time `json:"at,omitzero"`
}

// Wake is a payload that passed ParsePayload.
type Wake struct {
	Reason    string
	RolloutID string
	// Spread is the payload's spread, clamped to [0, MaxSpread].
	Spread time.Duration
	At     time.Time // zero when absent
}

// Errors ParsePayload wraps, so callers can count by kind.
var (
	ErrTooLarge    = errors.New("wake-up payload too large")
	ErrMalformed   = errors.New("malformed wake-up payload")
	ErrUnsupported = errors.New("unsupported wake-up payload version")
)

// wirePayload decodes leniently typed fields itself: spread is clamped
// rather than refused, so it arrives as a raw number.
type wirePayload struct {
	V             *int            `json:"v"`
	Reason        string          `json:"reason"`
	RolloutID     string          `json:"rollout_id"`
	SpreadSeconds json.RawMessage `json:"spread_seconds"`
	At            string          `json:"at"`
}

// ParsePayload validates an untrusted payload. Unknown fields are ignored
// (newer servers may add some); a missing or other version, wrong types,
// invalid tokens or a bad timestamp are refused. The spread is clamped to
// [0, MaxSpread]: a hostile value can at worst delay one early check-in
// by MaxSpread, and polling goes on regardless.
func ParsePayload(b []byte) (Wake, error) {
	if len(b) > MaxPayload {
		return Wake{}, fmt.Errorf("%w: %d bytes, the limit is %d", ErrTooLarge, len(b), MaxPayload)
	}
	var w wirePayload
	if err := json.Unmarshal(b, &w); err != nil {
		return Wake{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if w.V == nil {
		return Wake{}, fmt.Errorf("%w: no \"v\"", ErrMalformed)
	}
	if *w.V != Version {
		return Wake{}, fmt.Errorf("%w: v=%d, this agent understands v=%d", ErrUnsupported, *w.V, Version)
	}
	if err := checkToken("reason", w.Reason, MaxReasonLen); err != nil {
		return Wake{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if err := checkToken("rollout_id", w.RolloutID, MaxRolloutIDLen); err != nil {
		return Wake{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	out := Wake{Reason: w.Reason, RolloutID: w.RolloutID}
	if len(w.SpreadSeconds) > 0 && string(w.SpreadSeconds) != "null" {
		// A JSON number is valid ParseFloat input; anything else (a
		// string, true, an object) is not a number at all. ParseFloat
		// returns ±Inf with a range error for huge numbers, which the
		// clamp below handles like any other large value.
		s, err := strconv.ParseFloat(string(w.SpreadSeconds), 64)
		if c := w.SpreadSeconds[0]; (c != '-' && (c < '0' || c > '9')) || (err != nil && !errors.Is(err, strconv.ErrRange)) {
			return Wake{}, fmt.Errorf("%w: spread_seconds %s is not a number", ErrMalformed, truncate(string(w.SpreadSeconds), 40))
		}
		out.Spread = clampSpread(s, MaxSpread)
	}
	if w.At != "" {
		at, err := time.Parse(time.RFC3339, w.At)
		if err != nil {
			return Wake{}, fmt.Errorf("%w: at %q is not an RFC 3339 time", ErrMalformed, truncate(w.At, 40))
		}
		out.At = at
	}
	return out, nil
}

// clampSpread converts seconds to a duration in [0, limit].
func clampSpread(seconds float64, limit time.Duration) time.Duration {
	switch {
	case math.IsNaN(seconds) || seconds <= 0:
		return 0
	case seconds >= limit.Seconds():
		return limit
	}
	return time.Duration(seconds * float64(time.Second))
}

// Encode renders p as JSON after checking what a subscriber would refuse.
func (p Payload) Encode() ([]byte, error) {
	if p.V != Version {
		return nil, fmt.Errorf("wake: payload version %d, want %d", p.V, Version)
	}
	if err := checkToken("reason", p.Reason, MaxReasonLen); err != nil {
		return nil, fmt.Errorf("wake: %w", err)
	}
	if err := checkToken("rollout id", p.RolloutID, MaxRolloutIDLen); err != nil {
		return nil, fmt.Errorf("wake: %w", err)
	}
	if p.SpreadSeconds < 0 || time.Duration(p.SpreadSeconds)*time.Second > MaxSpread {
		return nil, fmt.Errorf("wake: spread %ds must be between 0 and %s", p.SpreadSeconds, MaxSpread)
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	if len(b) > MaxPayload {
		return nil, fmt.Errorf("wake: payload of %d bytes exceeds %d", len(b), MaxPayload)
	}
	return b, nil
}

// checkToken accepts "" or up to max letters, digits and . _ - : — enough
// for reasons and UUIDs, and harmless in logs.
func checkToken(field, s string, max int) error {
	if len(s) > max {
		return fmt.Errorf("%s is %d bytes long; at most %d allowed", field, len(s), max)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-' || c == ':') {
			return fmt.Errorf("%s %q: only letters, digits and . _ - : are allowed", field, truncate(s, 40))
		}
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// CheckID reports whether s can be one topic level naming an organization
// or device (kind says which, for the error). MQTT gives + and # wildcard
// meaning and / separates levels, so any of them would let an id widen or
// shift the topic; brokers refuse NUL, control characters corrupt logs,
// and a leading $ collides with the broker's own topics.
func CheckID(kind, s string) error {
	if err := checkLevel(s); err != nil {
		return fmt.Errorf("wake: %s id %q: %w", kind, truncate(s, MaxIDLen), err)
	}
	return nil
}

// CheckPrefix reports whether p can start every topic: one or more
// levels separated by /, each following the rules of CheckID.
func CheckPrefix(p string) error {
	for _, level := range strings.Split(p, "/") {
		if err := checkLevel(level); err != nil {
			return fmt.Errorf("wake: topic prefix %q: level %q: %w", truncate(p, MaxIDLen), truncate(level, MaxIDLen), err)
		}
	}
	return nil
}

func checkLevel(s string) error {
	switch {
	case s == "":
		return errors.New("is empty")
	case len(s) > MaxIDLen:
		return fmt.Errorf("is %d bytes long; at most %d allowed", len(s), MaxIDLen)
	case !utf8.ValidString(s):
		return errors.New("is not valid UTF-8")
	case strings.HasPrefix(s, "$"):
		return errors.New("starts with $, which MQTT reserves for broker topics")
	}
	for _, r := range s {
		switch {
		case r == '+' || r == '#' || r == '/':
			return fmt.Errorf("contains %q, which MQTT topics reserve (wildcard or level separator)", r)
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			return fmt.Errorf("contains the control character %U", r)
		}
	}
	return nil
}

// DeviceTopic is where one device's wake-ups go:
// <prefix>/<org>/devices/<device-id>/wake.
func DeviceTopic(prefix, org, deviceID string) (string, error) {
	if err := errors.Join(CheckPrefix(prefix), CheckID("organization", org), CheckID("device", deviceID)); err != nil {
		return "", err
	}
	return prefix + "/" + org + "/devices/" + deviceID + "/wake", nil
}

// OrgTopic is where an organization's broadcast wake-ups go:
// <prefix>/<org>/wake.
func OrgTopic(prefix, org string) (string, error) {
	if err := errors.Join(CheckPrefix(prefix), CheckID("organization", org)); err != nil {
		return "", err
	}
	return prefix + "/" + org + "/wake", nil
}
