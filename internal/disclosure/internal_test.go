package disclosure

import (
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/steward-iot/steward/internal/clock"
	"github.com/steward-iot/steward/internal/problem"
)

func TestLimiter(t *testing.T) {
	clk := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	l := newLimiter(Rate{N: 3, Per: time.Hour}, clk)
	for i := range 3 {
		if ok, _ := l.allow("a"); !ok {
			t.Fatalf("request %d refused within the burst", i)
		}
	}
	ok, wait := l.allow("a")
	if ok || wait != 20*time.Minute {
		t.Fatalf("over the burst: %v, wait %v (want 20m)", ok, wait)
	}
	if ok, _ := l.allow("b"); !ok {
		t.Fatal("another key shares the bucket")
	}
	clk.Advance(10 * time.Minute)
	if ok, wait := l.allow("a"); ok || wait != 10*time.Minute {
		t.Fatalf("half refilled: %v %v", ok, wait)
	}
	clk.Advance(10 * time.Minute)
	if ok, _ := l.allow("a"); !ok {
		t.Fatal("refilled token refused")
	}
	l.refund("a")
	if ok, _ := l.allow("a"); !ok {
		t.Fatal("refunded token refused")
	}
	// Refunds never exceed the burst.
	for range 10 {
		l.refund("b")
	}
	n := 0
	for {
		if ok, _ := l.allow("b"); !ok {
			break
		}
		n++
	}
	if n != 3 {
		t.Fatalf("after refunds %d requests passed, want the burst of 3", n)
	}
	if got := retryAfter(1500 * time.Millisecond); got != 2 {
		t.Fatalf("retryAfter rounds up: %d", got)
	}
	if got := retryAfter(0); got != 1 {
		t.Fatalf("retryAfter is at least 1: %d", got)
	}
}

// TestLimiterBounded: a flood of distinct clients cannot grow memory
// without bound, and a client that is limited stays limited while the
// flood drops idle buckets first.
func TestLimiterBounded(t *testing.T) {
	clk := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	l := newLimiter(Rate{N: 1, Per: time.Hour}, clk)
	l.max = 100
	l.allow("victim-of-own-flood")
	clk.Advance(2 * time.Hour) // its bucket is full again: forgettable
	l.allow("busy")
	for i := range 1000 {
		l.allow("flood-" + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + time.Duration(i).String())
		if len(l.buckets) > l.max {
			t.Fatalf("%d buckets kept, limit %d", len(l.buckets), l.max)
		}
	}
}

func TestClientKey(t *testing.T) {
	trusted, err := parsePrefixes([]string{"10.0.0.0/8", "2001:db8:ffff::1"})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		remote, xff, want string
	}{
		{"192.0.2.1:1234", "", "192.0.2.1"},
		{"192.0.2.1:1234", "203.0.113.9", "192.0.2.1"}, // not from a proxy: ignored
		{"10.0.0.1:1", "203.0.113.9", "203.0.113.9"},
		{"10.0.0.1:1", "6.6.6.6, 203.0.113.9", "203.0.113.9"},
		{"10.0.0.1:1", "203.0.113.9, 10.2.2.2", "203.0.113.9"},
		{"10.0.0.1:1", "garbage, 203.0.113.9", "203.0.113.9"},
		{"10.0.0.1:1", "203.0.113.9, garbage", "10.0.0.1"}, // cannot trust past a garbled hop
		{"10.0.0.1:1", "10.3.3.3", "10.3.3.3"},             // all proxies: the farthest one
		{"10.0.0.1:1", "", "10.0.0.1"},
		{"[::ffff:10.0.0.1]:1", "203.0.113.9", "203.0.113.9"},
		{"[2001:db8::1]:80", "", "2001:db8::/64"},
		{"[2001:db8:ffff::1]:80", "2001:db8:5:6:7::9", "2001:db8:5:6::/64"},
		{"[fe80::1%eth0]:80", "", "fe80::/64"},
		{"not an address", "", "unknown"},
	}
	for _, c := range cases {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = c.remote
		if c.xff != "" {
			r.Header.Set("X-Forwarded-For", c.xff)
		}
		if got := clientKey(r, trusted); got != c.want {
			t.Errorf("clientKey(%s, XFF %q) = %s, want %s", c.remote, c.xff, got, c.want)
		}
	}
	// Several header lines are one list.
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "10.0.0.1:1"
	r.Header.Add("X-Forwarded-For", "6.6.6.6")
	r.Header.Add("X-Forwarded-For", "198.51.100.1")
	if got := clientKey(r, trusted); got != "198.51.100.1" {
		t.Errorf("multi-line XFF: %s", got)
	}
}

func TestTokenFormat(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		tok := newToken()
		if !plausibleToken(tok) || seen[tok] || len(hashToken(tok)) != 64 {
			t.Fatalf("token %q", tok)
		}
		seen[tok] = true
	}
	for _, s := range []string{"", TokenPrefix, "stw_" + newToken()[4:], newToken() + "=", newToken()[:46] + "*"} {
		if plausibleToken(s) {
			t.Fatalf("plausibleToken(%q)", s)
		}
	}
}

func TestHuman(t *testing.T) {
	for d, want := range map[time.Duration]string{48 * time.Hour: "48 hours", 24 * time.Hour: "24 hours", 72 * time.Hour: "3 days",
		90 * 24 * time.Hour: "90 days", time.Hour: "1 hour", 90 * time.Minute: "90 minutes", 1500 * time.Millisecond: "1.5s"} {
		if got := human(d); got != want {
			t.Errorf("human(%v) = %q, want %q", d, got, want)
		}
	}
}

// checkClean asserts the invariants of a report that passed validation:
// what is stored is valid UTF-8 without NUL, within its limits, and
// one-line fields hold no control or direction characters.
func checkClean(t *testing.T, r ReportRequest) {
	t.Helper()
	for name, v := range map[string]string{"title": r.Title, "description": r.Description, "product": r.Product, "version": r.Version,
		"reporter_name": r.ReporterName, "reporter_email": r.ReporterEmail, "credit_name": r.CreditName, "language": r.Language} {
		if !utf8.ValidString(v) || strings.ContainsRune(v, 0) {
			t.Fatalf("%s is not storable text: %q", name, v)
		}
		if name != "description" && strings.ContainsFunc(v, func(r rune) bool { return unicode.IsControl(r) || bidiControl(r) }) {
			t.Fatalf("%s keeps control characters: %q", name, v)
		}
	}
	if r.Title == "" || utf8.RuneCountInString(r.Title) > MaxTitle || r.Description == "" || len(r.Description) > MaxDescription ||
		strings.ContainsRune(r.Description, '\r') {
		t.Fatalf("limits broken: %q / %d bytes", r.Title, len(r.Description))
	}
	if r.CreditName != "" && !r.CreditWanted {
		t.Fatalf("credit name kept without credit")
	}
}

// FuzzDecodeReport: the JSON decoder and validator never panic, only ever
// fail with a caller-facing invalid-input problem, and let through only
// clean reports.
func FuzzDecodeReport(f *testing.F) {
	for _, s := range []string{
		`{"title":"t","description":"d"}`,
		`{"title":"a\u0000b\u202e","description":"x\r\ny","reporter_email":"a@b.c","credit_wanted":true,"reporter_name":"N"}`,
		`{"title":"t","description":"d","language":"de-AT","credit_name":"x"}`,
		`{"title":"\ud800","description":"\udfff"}`,
		`{"title":5}`, `[]`, `{"title":"t"} x`, `{"x":1}`, `"str"`, `null`, `{"title":"t","description":"d","reporter_email":"Eve <e@x.y>"}`,
		"{\"title\":\"\xff\",\"description\":\"d\"}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeReport(b)
		if err != nil {
			var pe *problem.Error
			if !errors.As(err, &pe) || pe.Kind != problem.KindInvalid || pe.Detail == "" {
				t.Fatalf("error is not an invalid-input problem: %#v", err)
			}
			return
		}
		checkClean(t, r)
	})
}
