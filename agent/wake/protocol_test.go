package wake

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParsePayloadAccepts(t *testing.T) {
	at := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name, in string
		want     Wake
	}{
		{"full", `{"v":1,"reason":"rollout","rollout_id":"0190a3b4-7c2e-7f00-8000-000000000001","spread_seconds":30,"at":"2026-11-01T12:00:00Z"}`,
			Wake{Reason: "rollout", RolloutID: "0190a3b4-7c2e-7f00-8000-000000000001", Spread: 30 * time.Second, At: at}},
		{"minimal", `{"v":1}`, Wake{}},
		{"unknown fields ignored", `{"v":1,"reason":"urgent","future":{"x":[1,2]},"priority":9}`, Wake{Reason: "urgent"}},
		{"fractional spread", `{"v":1,"spread_seconds":1.5}`, Wake{Spread: 1500 * time.Millisecond}},
		{"negative spread clamps to 0", `{"v":1,"spread_seconds":-100}`, Wake{}},
		{"huge spread clamps", `{"v":1,"spread_seconds":1e9}`, Wake{Spread: MaxSpread}},
		{"overflowing spread clamps", `{"v":1,"spread_seconds":1e400}`, Wake{Spread: MaxSpread}},
		{"overflowing negative spread clamps", `{"v":1,"spread_seconds":-1e400}`, Wake{}},
		{"offset time", `{"v":1,"at":"2026-11-01T13:00:00+01:00"}`, Wake{At: at.In(time.FixedZone("", 3600))}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParsePayload([]byte(tc.in))
			if err != nil {
				t.Fatalf("ParsePayload(%s): %v", tc.in, err)
			}
			if got.Reason != tc.want.Reason || got.RolloutID != tc.want.RolloutID || got.Spread != tc.want.Spread || !got.At.Equal(tc.want.At) {
				t.Errorf("ParsePayload(%s) = %+v, want %+v", tc.in, got, tc.want)
			}
		})
	}
}

func TestParsePayloadRefuses(t *testing.T) {
	big := `{"v":1,"reason":"x"` + strings.Repeat(" ", MaxPayload) + `}`
	for _, tc := range []struct {
		name, in string
		want     error
	}{
		{"oversized even if valid", big, ErrTooLarge},
		{"empty", ``, ErrMalformed},
		{"not json", `wake up`, ErrMalformed},
		{"array", `[1]`, ErrMalformed},
		{"null", `null`, ErrMalformed},
		{"no version", `{"reason":"rollout"}`, ErrMalformed},
		{"version as string", `{"v":"1"}`, ErrMalformed},
		{"fractional version", `{"v":1.5}`, ErrMalformed},
		{"trailing data", `{"v":1}{"v":1}`, ErrMalformed},
		{"reason with space", `{"v":1,"reason":"roll out"}`, ErrMalformed},
		{"reason with newline (log injection)", `{"v":1,"reason":"a\nlevel=ERROR msg=forged"}`, ErrMalformed},
		{"reason too long", `{"v":1,"reason":"` + strings.Repeat("a", MaxReasonLen+1) + `"}`, ErrMalformed},
		{"rollout id with slash", `{"v":1,"rollout_id":"../x"}`, ErrMalformed},
		{"spread as string", `{"v":1,"spread_seconds":"30"}`, ErrMalformed},
		{"spread as bool", `{"v":1,"spread_seconds":true}`, ErrMalformed},
		{"bad time", `{"v":1,"at":"yesterday"}`, ErrMalformed},
		{"time as number", `{"v":1,"at":12}`, ErrMalformed},
		{"version 2", `{"v":2,"reason":"rollout"}`, ErrUnsupported},
		{"version 0", `{"v":0}`, ErrUnsupported},
		{"negative version", `{"v":-1}`, ErrUnsupported},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParsePayload([]byte(tc.in))
			if !errors.Is(err, tc.want) {
				t.Fatalf("ParsePayload(%.60q) = %v, want %v", tc.in, err, tc.want)
			}
		})
	}
}

func TestPayloadRoundTrip(t *testing.T) {
	at := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	p := Payload{V: Version, Reason: ReasonRollout, RolloutID: "r-1", SpreadSeconds: 300, At: at}
	b, err := p.Encode()
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"v":1,"reason":"rollout","rollout_id":"r-1","spread_seconds":300,"at":"2026-11-01T12:00:00Z"}`
	if string(b) != want {
		t.Errorf("Encode = %s, want %s", b, want)
	}
	w, err := ParsePayload(b)
	if err != nil {
		t.Fatal(err)
	}
	if w.Reason != p.Reason || w.RolloutID != p.RolloutID || w.Spread != 300*time.Second || !w.At.Equal(at) {
		t.Errorf("round trip gave %+v", w)
	}
	// A zero time is left out rather than sent as year 1.
	b, err = Payload{V: Version}.Encode()
	if err != nil || string(b) != `{"v":1,"spread_seconds":0}` {
		t.Errorf("Encode of a minimal payload = %s, %v", b, err)
	}
}

func TestEncodeRefusesWhatSubscribersWould(t *testing.T) {
	for _, p := range []Payload{
		{V: 2},
		{V: Version, Reason: "two words"},
		{V: Version, RolloutID: strings.Repeat("x", MaxRolloutIDLen+1)},
		{V: Version, SpreadSeconds: -1},
		{V: Version, SpreadSeconds: int(MaxSpread/time.Second) + 1},
	} {
		if b, err := p.Encode(); err == nil {
			t.Errorf("Encode(%+v) = %s, want an error", p, b)
		}
	}
}

func TestTopics(t *testing.T) {
	got, err := DeviceTopic("steward", "acme", "0190a3b4-7c2e-7f00-8000-000000000001")
	if err != nil || got != "steward/acme/devices/0190a3b4-7c2e-7f00-8000-000000000001/wake" {
		t.Errorf("DeviceTopic = %q, %v", got, err)
	}
	got, err = OrgTopic("fleet/eu", "acme")
	if err != nil || got != "fleet/eu/acme/wake" {
		t.Errorf("OrgTopic with a two-level prefix = %q, %v", got, err)
	}
}

func TestInvalidIDsRefused(t *testing.T) {
	for _, tc := range []struct{ id, want string }{
		{"", "empty"},
		{"a/b", `'/'`},
		{"dev+", `'+'`},
		{"#", `'#'`},
		{"a\x00b", "control character"},
		{"a\nb", "control character"},
		{"a\u0085b", "control character"},
		{"$SYS", "starts with $"},
		{"\xff\xfe", "UTF-8"},
		{strings.Repeat("a", MaxIDLen+1), "at most"},
	} {
		err := CheckID("device", tc.id)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "device id") {
			t.Errorf("CheckID(%q) = %v, want an error naming the device id and %q", tc.id, err, tc.want)
		}
		if _, err := DeviceTopic("steward", "acme", tc.id); err == nil {
			t.Errorf("DeviceTopic accepted device id %q", tc.id)
		}
		if _, err := DeviceTopic("steward", tc.id, "d1"); err == nil {
			t.Errorf("DeviceTopic accepted org %q", tc.id)
		}
		if _, err := OrgTopic("steward", tc.id); err == nil {
			t.Errorf("OrgTopic accepted org %q", tc.id)
		}
	}
	for _, ok := range []string{"acme", "ACME-eu_1.x", "0190a3b4-7c2e-7f00-8000-000000000001", "München"} {
		if err := CheckID("org", ok); err != nil {
			t.Errorf("CheckID(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "/steward", "steward/", "a//b", "st+", "#", "$SYS"} {
		if err := CheckPrefix(bad); err == nil {
			t.Errorf("CheckPrefix(%q) accepted it", bad)
		}
	}
}
