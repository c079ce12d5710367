package wake

import (
	"errors"
	"testing"
	"time"
)

// FuzzParsePayload feeds the parser what a hostile broker client could
// publish: it must never panic, must classify every refusal, and what it
// accepts must be within bounds and survive re-encoding.
func FuzzParsePayload(f *testing.F) {
	for _, s := range []string{
		`{"v":1,"reason":"rollout","rollout_id":"0190a3b4-7c2e-7f00-8000-000000000001","spread_seconds":30,"at":"2026-11-01T12:00:00Z"}`,
		`{"v":1}`, `{"v":2}`, `{"v":1,"spread_seconds":1e400}`, `{"v":1,"spread_seconds":-5}`,
		`{"v":1,"x":{"y":[1,{"z":null}]}}`, `[]`, `null`, `{"v":1,"at":"2026-13-01T00:00:00Z"}`,
		`{"v":1,"reason":"\u0000"}`, `{"v":1e0}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		w, err := ParsePayload(b)
		if err != nil {
			if !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnsupported) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		if len(b) > MaxPayload {
			t.Fatalf("accepted %d bytes", len(b))
		}
		if w.Spread < 0 || w.Spread > MaxSpread {
			t.Fatalf("spread %s out of [0, %s]", w.Spread, MaxSpread)
		}
		// What was accepted re-encodes (tokens are valid) and parses back.
		secs := int(w.Spread / time.Second)
		enc, err := Payload{V: Version, Reason: w.Reason, RolloutID: w.RolloutID, SpreadSeconds: secs, At: w.At}.Encode()
		if err != nil {
			t.Fatalf("accepted payload does not re-encode: %v", err)
		}
		w2, err := ParsePayload(enc)
		if err != nil || w2.Reason != w.Reason || w2.RolloutID != w.RolloutID || w2.Spread != time.Duration(secs)*time.Second {
			t.Fatalf("re-encoded payload parses as %+v, %v; was %+v", w2, err, w)
		}
	})
}
