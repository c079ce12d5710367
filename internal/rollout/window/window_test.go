package window

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/steward-iot/steward/internal/problem"
)

func mustParse(t *testing.T, c string, d time.Duration, tz string) Window {
	t.Helper()
	w, err := Parse(c, d, tz)
	if err != nil {
		t.Fatalf("Parse(%q, %s, %q): %v", c, d, tz, err)
	}
	return w
}

func mustDevice(t *testing.T, s string) Window {
	t.Helper()
	w, err := ParseDevice(s)
	if err != nil {
		t.Fatalf("ParseDevice(%q): %v", s, err)
	}
	return w
}

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func wantNext(t *testing.T, w Window, at time.Time, start, end string) {
	t.Helper()
	s, e := w.Next(at)
	if !s.Equal(utc(start)) || !e.Equal(utc(end)) {
		t.Errorf("%s: Next(%s) = [%s, %s), want [%s, %s)", w, at.UTC().Format(time.RFC3339),
			s.UTC().Format(time.RFC3339), e.UTC().Format(time.RFC3339), start, end)
	}
}

func wantOpen(t *testing.T, w Window, at string, want bool) {
	t.Helper()
	if got := w.Open(utc(at)); got != want {
		t.Errorf("%s: Open(%s) = %v, want %v", w, at, got, want)
	}
}

func TestParseErrorsNameFieldAndExpectation(t *testing.T) {
	cases := []struct {
		cron string
		d    time.Duration
		tz   string
		// field named in the error and a fragment of its explanation
		field, want string
	}{
		{"", time.Hour, "UTC", "cron", "five fields"},
		{"0 2 * *", time.Hour, "UTC", "cron", "has 4 fields"},
		{"0 0 2 * * *", time.Hour, "UTC", "cron", "seconds fields are not supported"},
		{"@every 1h", time.Hour, "UTC", "cron", "@every"},
		{"@reboot", time.Hour, "UTC", "cron", "unsupported descriptor"},
		{"TZ=UTC 0 2 * * *", time.Hour, "UTC", "cron", "give the zone in tz"},
		{"TZ=UTC", time.Hour, "UTC", "cron", "give the zone in tz"}, // robfig's parser panics on this one
		{"61 2 * * *", time.Hour, "UTC", "cron", "above maximum"},
		{"0 2 * * 7", time.Hour, "UTC", "cron", "above maximum"},
		{"*-5 2 * * *", time.Hour, "UTC", "cron", "minute field"},
		{"+5 2 * * *", time.Hour, "UTC", "cron", "minute field"},
		{"0 2 30 2 *", time.Hour, "UTC", "cron", "never fires"},
		{"0 2 31 4,6,9,11 *", time.Hour, "UTC", "cron", "never fires"},
		{"0 2 * * *", 0, "UTC", "duration", "at least 1m0s and less than 24h0m0s"},
		{"0 2 * * *", -time.Hour, "UTC", "duration", "out of range"},
		{"0 2 * * *", 24 * time.Hour, "UTC", "duration", "less than 24h"},
		{"0 2 * * *", 30 * time.Second, "UTC", "duration", "at least 1m"},
		{"0 2 * * *", time.Hour, "", "tz", "missing"},
		{"0 2 * * *", time.Hour, "Europe/Berln", "tz", `unknown time zone "Europe/Berln"`},
		{"0 2 * * *", time.Hour, "Local", "tz", `"Local" is not an IANA time zone`},
		{"0 2 * * *", time.Hour, "../../etc/passwd", "tz", "not an IANA time zone"},
		{"0 2 * * *", time.Hour, "/etc/localtime", "tz", "not an IANA time zone"},
	}
	for _, c := range cases {
		_, err := Parse(c.cron, c.d, c.tz)
		if err == nil {
			t.Errorf("Parse(%q, %s, %q) accepted", c.cron, c.d, c.tz)
			continue
		}
		var pe *problem.Error
		if !problem.Is(err, problem.KindInvalid) || !asProblem(err, &pe) || len(pe.Fields) != 1 || pe.Fields[0].Field != c.field {
			t.Errorf("Parse(%q, %s, %q) = %v, want an invalid-field error for %s", c.cron, c.d, c.tz, err, c.field)
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("Parse(%q, %s, %q) = %q, want it to mention %q", c.cron, c.d, c.tz, err, c.want)
		}
	}
}

func asProblem(err error, pe **problem.Error) bool {
	p, ok := err.(*problem.Error)
	*pe = p
	return ok
}

func TestParseDeviceErrors(t *testing.T) {
	cases := map[string]string{
		"":                            "expected \"HH:MM-HH:MM ZONE\"",
		"2:00-4:00":                   "expected",
		"02:00-04:00 Europe/Berlin x": "expected",
		"25:00-04:00":                 "hours are 00-23",
		"02:60-04:00":                 "minutes 00-59",
		"24:00-04:00":                 "24:00 only as an end",
		"02:00-24:30":                 "24:00 only as an end",
		"02:00-02:00 UTC":             "empty",
		"00:00-24:00":                 "empty",
		"02:00-04:00 Mars/Olympus":    `unknown time zone "Mars/Olympus"`,
		"02:00-04:00 Local":           "not an IANA time zone",
		"02:00-04:00 ../etc/shadow":   "not an IANA time zone",
		strings.Repeat("0", 300):      "longer than",
	}
	for in, want := range cases {
		_, err := ParseDevice(in)
		if err == nil {
			t.Errorf("ParseDevice(%q) accepted", in)
			continue
		}
		if !problem.Is(err, problem.KindInvalid) || !strings.Contains(err.Error(), want) || !strings.HasPrefix(err.Error(), "window: ") {
			t.Errorf("ParseDevice(%q) = %q, want a window field error mentioning %q", in, err, want)
		}
	}
}

func TestSpecRoundTripAndEquality(t *testing.T) {
	group := []struct {
		cron string
		d    time.Duration
		tz   string
	}{
		{"0 2 * * *", 2 * time.Hour, "Europe/Berlin"},
		{"  0   2 * *   MON-FRI ", 90 * time.Minute, "America/New_York"},
		{"*/15 * * * *", 5 * time.Minute, "UTC"},
		{"@daily", time.Hour, "Asia/Kolkata"},
		{"0 0 29 2 *", 23*time.Hour + 59*time.Minute, "Australia/Lord_Howe"},
		{"5,35 1-3/2 ? jan,jul sun", time.Minute + 30*time.Second, "Pacific/Apia"},
	}
	for _, g := range group {
		w := mustParse(t, g.cron, g.d, g.tz)
		back, err := ParseSpec(w.String())
		if err != nil || back != w {
			t.Errorf("ParseSpec(%q) = %v, %v; want the window back", w.String(), back, err)
		}
		var u Window
		b, _ := w.MarshalText()
		if err := u.UnmarshalText(b); err != nil || u != w {
			t.Errorf("text round trip of %q = %v, %v", b, u, err)
		}
	}
	if w := mustParse(t, " 0  2 * * MON ", time.Hour, "UTC"); w.String() != "0 2 * * mon for 1h0m0s in UTC" || w.Cron() != "0 2 * * mon" {
		t.Errorf("canonical form = %q", w.String())
	}
	for in, want := range map[string]string{
		"02:00-04:00 Europe/Berlin": "02:00-04:00 Europe/Berlin",
		"22:00-02:00":               "22:00-02:00 UTC",
		" 22:00 - 24:00  UTC ":      "22:00-00:00 UTC",
	} {
		w := mustDevice(t, in)
		if w.String() != want {
			t.Errorf("ParseDevice(%q).String() = %q, want %q", in, w.String(), want)
		}
		if back := mustDevice(t, w.String()); back != w {
			t.Errorf("device round trip of %q differs", in)
		}
		if back, err := ParseSpec(w.String()); err != nil || back != w {
			t.Errorf("ParseSpec(%q) = %v, %v", w.String(), back, err)
		}
	}
	if mustDevice(t, "22:00-02:00").Duration() != 4*time.Hour {
		t.Error("a wrapping range lasts across midnight")
	}
	if mustParse(t, "0 2 * * *", time.Hour, "UTC") == mustParse(t, "0 2 * * *", 2*time.Hour, "UTC") {
		t.Error("windows with different durations compare equal")
	}
	if z, err := ParseSpec(""); err != nil || !z.IsZero() || z.String() != "" {
		t.Errorf("ParseSpec(\"\") = %v, %v; want the zero window", z, err)
	}
	for _, bad := range []string{"0 2 * * *", "0 2 * * * for 1h", "0 2 * * * for soon in UTC", "0 2 * * * for 1h in Nowhere/Land"} {
		if _, err := ParseSpec(bad); err == nil {
			t.Errorf("ParseSpec(%q) accepted", bad)
		}
	}
}

// The wall-clock cron search must agree with robfig's own Next, which is
// exact on a zone without changes.
func TestCivilSearchMatchesRobfig(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	exprs := []string{"0 2 * * *", "*/7 * * * *", "15 3,15 1 * *", "0 0 * * 0", "30 4 1-7 * 1", "0 12 29 2 *",
		"5-50/5 */5 10-20 jan-mar mon-fri", "0 0 31 * *", "59 23 * * sat", "@monthly", "@weekly", "@hourly", "@yearly",
		"0 0 1,15 * 3"}
	for _, e := range exprs {
		w := mustParse(t, e, time.Hour, "UTC")
		sched, err := parser.Parse(w.Cron())
		if err != nil {
			t.Fatal(err)
		}
		ss := sched.(*cron.SpecSchedule)
		ss.Location = time.UTC
		for range 200 {
			from := time.Unix(946684800+rng.Int64N(40*365*86400), 0).UTC()
			want := ss.Next(from)
			got, ok := w.civilNext(from.Add(time.Second), from.Add(SearchHorizon))
			if !ok || !got.Equal(want) {
				t.Fatalf("%s: civilNext after %s = %s %v, robfig says %s", e, from, got, ok, want)
			}
			// civilPrev from just before the next firing finds the previous
			// firing, whose robfig Next is that next firing again.
			prev, ok := w.civilPrev(want.Add(-time.Second), from.Add(-SearchHorizon))
			if !ok || !prev.Before(want) || !ss.Next(prev).Equal(want) || prev.After(from) {
				t.Fatalf("%s: civilPrev before %s = %s %v", e, want, prev, ok)
			}
		}
	}
}

func TestOpenLooksBackAcrossMidnight(t *testing.T) {
	w := mustParse(t, "50 23 * * *", 20*time.Minute, "UTC")
	wantOpen(t, w, "2025-06-01T23:49:59Z", false)
	wantOpen(t, w, "2025-06-01T23:50:00Z", true)
	wantOpen(t, w, "2025-06-02T00:05:00Z", true)
	wantOpen(t, w, "2025-06-02T00:10:00Z", false)
	wantNext(t, w, utc("2025-06-02T00:05:00Z"), "2025-06-01T23:50:00Z", "2025-06-02T00:10:00Z")
	wantNext(t, w, utc("2025-06-02T00:10:00Z"), "2025-06-02T23:50:00Z", "2025-06-03T00:10:00Z")

	berlin := mustParse(t, "0 2 * * *", 2*time.Hour, "Europe/Berlin") // CEST: 00:00Z-02:00Z
	wantOpen(t, berlin, "2025-06-01T23:59:59Z", false)
	wantOpen(t, berlin, "2025-06-02T00:00:00Z", true)
	wantOpen(t, berlin, "2025-06-02T01:59:59Z", true)
	wantOpen(t, berlin, "2025-06-02T02:00:00Z", false)
	wantNext(t, berlin, utc("2025-06-02T12:00:00Z"), "2025-06-03T00:00:00Z", "2025-06-03T02:00:00Z")
	if s, _ := berlin.Next(utc("2025-06-02T12:00:00Z")); s.Location().String() != "Europe/Berlin" || s.Hour() != 2 {
		t.Errorf("Next reports %s, want 02:00 in the window's zone", s)
	}
}

func TestDeviceWindowWrapsMidnight(t *testing.T) {
	w := mustDevice(t, "22:00-02:00")
	wantOpen(t, w, "2025-01-10T21:59:00Z", false)
	wantOpen(t, w, "2025-01-10T22:00:00Z", true)
	wantOpen(t, w, "2025-01-11T01:59:59Z", true)
	wantOpen(t, w, "2025-01-11T02:00:00Z", false)
	wantNext(t, w, utc("2025-01-11T12:00:00Z"), "2025-01-11T22:00:00Z", "2025-01-12T02:00:00Z")
	wantNext(t, w, utc("2025-01-11T00:30:00Z"), "2025-01-10T22:00:00Z", "2025-01-11T02:00:00Z")
}

// Spring forward: 2025-03-30 02:00 CET -> 03:00 CEST (01:00Z) in Berlin;
// 2025-03-09 02:00 EST -> 03:00 EDT (07:00Z) in New York.
func TestSpringForwardSkippedStartOpensAtTheJump(t *testing.T) {
	b := mustParse(t, "30 2 * * *", time.Hour, "Europe/Berlin")
	wantNext(t, b, utc("2025-03-29T12:00:00Z"), "2025-03-30T01:00:00Z", "2025-03-30T02:00:00Z") // 03:00-04:00 CEST
	wantNext(t, b, utc("2025-03-28T12:00:00Z"), "2025-03-29T01:30:00Z", "2025-03-29T02:30:00Z") // 02:30 CET the day before
	wantNext(t, b, utc("2025-03-30T12:00:00Z"), "2025-03-31T00:30:00Z", "2025-03-31T01:30:00Z") // 02:30 CEST after
	wantOpen(t, b, "2025-03-30T00:59:59Z", false)
	wantOpen(t, b, "2025-03-30T01:00:00Z", true)

	ny := mustParse(t, "30 2 * * *", time.Hour, "America/New_York")
	wantNext(t, ny, utc("2025-03-08T12:00:00Z"), "2025-03-09T07:00:00Z", "2025-03-09T08:00:00Z") // 03:00 EDT
	wantNext(t, ny, utc("2025-03-09T12:00:00Z"), "2025-03-10T06:30:00Z", "2025-03-10T07:30:00Z")

	// Several starts in the gap open once, at the jump.
	many := mustParse(t, "*/20 2 * * *", 10*time.Minute, "Europe/Berlin")
	wantNext(t, many, utc("2025-03-30T00:00:00Z"), "2025-03-30T01:00:00Z", "2025-03-30T01:10:00Z")
	wantNext(t, many, utc("2025-03-30T01:05:00Z"), "2025-03-30T01:00:00Z", "2025-03-30T01:10:00Z")
	wantNext(t, many, utc("2025-03-30T01:10:00Z"), "2025-03-31T00:00:00Z", "2025-03-31T00:10:00Z")

	// An hourly (wildcard-hour) cron is periodic: nothing in the gap.
	hourly := mustParse(t, "30 * * * *", 10*time.Minute, "Europe/Berlin")
	wantNext(t, hourly, utc("2025-03-30T00:45:00Z"), "2025-03-30T01:30:00Z", "2025-03-30T01:40:00Z") // 01:30 CET -> 03:30 CEST
}

// Fall back: 2025-10-26 03:00 CEST -> 02:00 CET (01:00Z) in Berlin;
// 2025-11-02 02:00 EDT -> 01:00 EST (06:00Z) in New York.
func TestFallBackRepeatedHourOpensOnce(t *testing.T) {
	b := mustParse(t, "30 2 * * *", 2*time.Hour, "Europe/Berlin")
	// First 02:30 is CEST (00:30Z); two hours of elapsed time end 03:30 CET.
	wantNext(t, b, utc("2025-10-25T12:00:00Z"), "2025-10-26T00:30:00Z", "2025-10-26T02:30:00Z")
	wantOpen(t, b, "2025-10-26T01:45:00Z", true) // 02:45 CET, inside the first opening
	wantNext(t, b, utc("2025-10-26T02:30:00Z"), "2025-10-27T01:30:00Z", "2025-10-27T03:30:00Z")

	ny := mustParse(t, "30 1 * * *", 30*time.Minute, "America/New_York")
	wantNext(t, ny, utc("2025-11-01T12:00:00Z"), "2025-11-02T05:30:00Z", "2025-11-02T06:00:00Z") // 01:30 EDT
	wantOpen(t, ny, "2025-11-02T06:40:00Z", false)                                               // 01:40 EST: no second opening
	wantNext(t, ny, utc("2025-11-02T06:00:00Z"), "2025-11-03T06:30:00Z", "2025-11-03T07:00:00Z")

	// A wildcard-hour cron fires in both copies of the hour.
	hourly := mustParse(t, "0 * * * *", 30*time.Minute, "Europe/Berlin")
	wantNext(t, hourly, utc("2025-10-25T23:45:00Z"), "2025-10-26T00:00:00Z", "2025-10-26T00:30:00Z") // 02:00 CEST
	wantNext(t, hourly, utc("2025-10-26T00:45:00Z"), "2025-10-26T01:00:00Z", "2025-10-26T01:30:00Z") // 02:00 CET
	wantOpen(t, hourly, "2025-10-26T01:10:00Z", true)
}

func TestWindowSpanningTheChange(t *testing.T) {
	// Group windows last elapsed time: 01:00 CET + 3h = 05:00 CEST.
	g := mustParse(t, "0 1 * * *", 3*time.Hour, "Europe/Berlin")
	wantNext(t, g, utc("2025-03-29T12:00:00Z"), "2025-03-30T00:00:00Z", "2025-03-30T03:00:00Z")
	// 01:00 CEST + 3h = 03:00 CET in autumn.
	wantNext(t, g, utc("2025-10-25T12:00:00Z"), "2025-10-25T23:00:00Z", "2025-10-26T02:00:00Z")

	// Device windows end when the clock shows the end: 01:00-04:00 is two
	// hours long in spring and four in autumn.
	d := mustDevice(t, "01:00-04:00 Europe/Berlin")
	wantNext(t, d, utc("2025-03-29T12:00:00Z"), "2025-03-30T00:00:00Z", "2025-03-30T02:00:00Z")
	wantNext(t, d, utc("2025-10-25T12:00:00Z"), "2025-10-25T23:00:00Z", "2025-10-26T03:00:00Z")
	wantOpen(t, d, "2025-10-26T02:30:00Z", true) // 03:30 CET

	// A device range that ends in the skipped hour ends at the jump; one
	// wholly inside it does not occur that day.
	e := mustDevice(t, "01:30-02:30 Europe/Berlin")
	wantNext(t, e, utc("2025-03-29T12:00:00Z"), "2025-03-30T00:30:00Z", "2025-03-30T01:00:00Z")
	gone := mustDevice(t, "02:00-02:30 Europe/Berlin")
	wantNext(t, gone, utc("2025-03-29T12:00:00Z"), "2025-03-31T00:00:00Z", "2025-03-31T00:30:00Z")
	wantOpen(t, gone, "2025-03-30T01:00:00Z", false)
	// A device range ending in the repeated hour ends at its first occurrence.
	f := mustDevice(t, "22:00-02:30 Europe/Berlin")
	wantNext(t, f, utc("2025-10-25T12:00:00Z"), "2025-10-25T20:00:00Z", "2025-10-26T00:30:00Z")
}

func TestOverlappingOpeningsMerge(t *testing.T) {
	w := mustParse(t, "0 1,2 * * *", 90*time.Minute, "UTC")
	wantNext(t, w, utc("2025-05-05T02:45:00Z"), "2025-05-05T01:00:00Z", "2025-05-05T03:30:00Z")
	wantNext(t, w, utc("2025-05-05T00:00:00Z"), "2025-05-05T01:00:00Z", "2025-05-05T03:30:00Z")
	wantOpen(t, w, "2025-05-05T03:15:00Z", true)
	wantOpen(t, w, "2025-05-05T03:30:00Z", false)

	// Touching openings merge too.
	touch := mustParse(t, "0 1,2 * * *", time.Hour, "UTC")
	wantNext(t, touch, utc("2025-05-05T01:30:00Z"), "2025-05-05T01:00:00Z", "2025-05-05T03:00:00Z")

	// Longer than the period: always open, reported for at least MaxMerge.
	always := mustParse(t, "0 * * * *", 90*time.Minute, "Europe/Berlin")
	at := utc("2025-10-26T01:17:00Z")
	for m := range 24 * 60 {
		if !always.Open(at.Add(time.Duration(m) * time.Minute)) {
			t.Fatalf("hourly 90m window closed at %s", at.Add(time.Duration(m)*time.Minute))
		}
	}
	s, e := always.Next(at)
	if s.After(at.Add(-MaxMerge)) || e.Before(at.Add(MaxMerge)) {
		t.Errorf("always-open window: Next = [%s, %s), want at least MaxMerge either side of %s", s, e, at)
	}
}

func TestNeverFiringSearchTerminates(t *testing.T) {
	// Parse refuses it; a window built around the check must still end.
	w := mustParse(t, "0 0 1 * *", time.Hour, "Europe/Berlin")
	w.dom = 1 << 30
	w.month = 1 << 2 // February 30
	s, e := w.Next(utc("2025-01-01T00:00:00Z"))
	if !s.IsZero() || !e.IsZero() {
		t.Errorf("Next = %s, %s; want zero times for a cron that never fires", s, e)
	}
	if w.Open(utc("2025-02-28T00:00:00Z")) {
		t.Error("never-firing window is open")
	}

	// Leap day every 4 years, but 2100 is not a leap year: 8 years apart.
	leap := mustParse(t, "0 0 29 2 *", time.Hour, "UTC")
	wantNext(t, leap, utc("2097-01-01T00:00:00Z"), "2104-02-29T00:00:00Z", "2104-02-29T01:00:00Z")
}

func TestZeroWindowAndCombination(t *testing.T) {
	var z Window
	if !z.IsZero() || z.Open(time.Now()) {
		t.Error("zero window must be zero and never open")
	}
	if s, e := z.Next(time.Now()); !s.IsZero() || !e.IsZero() {
		t.Error("zero window has an opening")
	}
	group := mustParse(t, "0 1 * * *", 4*time.Hour, "Europe/Berlin") // 01:00-05:00 local
	device := mustDevice(t, "03:00-06:00 Europe/Berlin")
	ws := []Window{group, device, {}}
	if !AllOpen(ws, utc("2025-06-01T02:00:00Z")) { // 04:00 CEST
		t.Error("04:00 is inside both windows")
	}
	if AllOpen(ws, utc("2025-06-01T00:00:00Z")) || AllOpen(ws, utc("2025-06-01T03:30:00Z")) {
		t.Error("02:00 and 05:30 are each outside one window: AND")
	}
	if !AllOpen(nil, time.Now()) || !AllOpen([]Window{{}}, time.Now()) {
		t.Error("no configured window means always allowed")
	}
	s, e := NextAll(ws, utc("2025-06-01T12:00:00Z"))
	if !s.Equal(utc("2025-06-02T01:00:00Z")) || !e.Equal(utc("2025-06-02T03:00:00Z")) {
		t.Errorf("NextAll = [%s, %s), want 03:00-05:00 CEST", s.UTC(), e.UTC())
	}
	s, e = NextAll(ws, utc("2025-06-01T02:00:00Z"))
	if !s.Equal(utc("2025-06-01T01:00:00Z")) || !e.Equal(utc("2025-06-01T03:00:00Z")) {
		t.Errorf("NextAll from inside = [%s, %s)", s.UTC(), e.UTC())
	}
	// Disjoint windows never meet: the bounded search says so.
	disjoint := []Window{mustParse(t, "0 1 * * *", time.Hour, "UTC"), mustDevice(t, "12:00-13:00 UTC")}
	if s, e := NextAll(disjoint, utc("2025-06-01T00:00:00Z")); !s.IsZero() || !e.IsZero() {
		t.Errorf("disjoint windows meet at [%s, %s)", s, e)
	}
	if s, e := NextAll(nil, utc("2025-06-01T00:00:00Z")); !s.Equal(utc("2025-06-01T00:00:00Z")) || !e.IsZero() {
		t.Errorf("no windows: NextAll = %s, %s; want now and no end", s, e)
	}
}

// oracle computes openings by walking the clock minute by minute from
// before the range: the definition in the package doc, independent of the
// zone-interval search.
type oracleOpening struct{ start, end time.Time }

func oracle(w Window, from, to time.Time) []oracleOpening {
	var out []oracleOpening
	step := time.Minute
	cw := func(i time.Time) time.Time {
		l := i.In(w.loc)
		return time.Date(l.Year(), l.Month(), l.Day(), l.Hour(), l.Minute(), 0, 0, time.UTC)
	}
	matches := func(c time.Time) bool {
		return w.month&(1<<uint(c.Month())) != 0 && w.dayMatches(c) && w.hour&(1<<uint(c.Hour())) != 0 &&
			w.minute&(1<<uint(c.Minute())) != 0
	}
	hw := cw(from.Add(-step))
	for i := from; i.Before(to); i = i.Add(step) {
		c := cw(i)
		var nominal time.Time
		switch {
		case w.elapsed:
			if matches(c) {
				nominal = c
			}
		case c.After(hw):
			for k := hw.Add(step); !k.After(c); k = k.Add(step) { // includes skipped minutes
				if matches(k) {
					nominal = k
					break
				}
			}
		}
		if c.After(hw) {
			hw = c
		}
		if nominal.IsZero() {
			continue
		}
		end := i.Add(w.dur)
		if w.device {
			ce := nominal.Add(w.dur)
			end = i
			for cw(end).Before(ce) {
				end = end.Add(step)
			}
			if !end.After(i) {
				continue
			}
		}
		out = append(out, oracleOpening{i, end})
	}
	return out
}

func TestAgainstMinuteByMinuteOracle(t *testing.T) {
	type tr struct {
		zone string
		at   string // an instant near a zone change
	}
	changes := []tr{
		{"Europe/Berlin", "2025-03-30T01:00:00Z"}, {"Europe/Berlin", "2025-10-26T01:00:00Z"},
		{"America/New_York", "2025-03-09T07:00:00Z"}, {"America/New_York", "2025-11-02T06:00:00Z"},
		{"Australia/Lord_Howe", "2025-04-05T15:00:00Z"}, // 30-minute change
		{"America/Santiago", "2025-04-06T03:00:00Z"},    // changes at midnight
	}
	specs := []func(tz string) (Window, error){
		func(tz string) (Window, error) { return Parse("30 2 * * *", 2*time.Hour, tz) },
		func(tz string) (Window, error) { return Parse("0 0 * * *", 90*time.Minute, tz) },
		func(tz string) (Window, error) { return Parse("*/20 1-3 * * *", 15*time.Minute, tz) },
		func(tz string) (Window, error) { return Parse("10 * * * *", 70*time.Minute, tz) },
		func(tz string) (Window, error) { return Parse("45 23 * * *", 3*time.Hour, tz) },
		func(tz string) (Window, error) { return ParseDevice("01:45-02:15 " + tz) },
		func(tz string) (Window, error) { return ParseDevice("23:30-02:30 " + tz) },
		func(tz string) (Window, error) { return ParseDevice("02:00-03:00 " + tz) },
	}
	for _, c := range changes {
		for _, mk := range specs {
			w, err := mk(c.zone)
			if err != nil {
				t.Fatal(err)
			}
			mid := utc(c.at)
			from, to := mid.Add(-36*time.Hour), mid.Add(36*time.Hour)
			ops := oracle(w, from.Add(-30*time.Hour), to.Add(30*time.Hour))
			for i := from; i.Before(to); i = i.Add(time.Minute) {
				want := false
				for _, o := range ops {
					if !i.Before(o.start) && i.Before(o.end) {
						want = true
					}
				}
				if got := w.Open(i); got != want {
					t.Fatalf("%s: Open(%s = %s) = %v, oracle says %v (openings %v)", w, i.UTC(), i.In(w.loc), got, want, ops)
				}
				if !want && i.Minute()%13 == 0 {
					// The next opening per the oracle is what Next reports as start.
					var first oracleOpening
					for _, o := range ops {
						if o.start.After(i) {
							first = o
							break
						}
					}
					if s, _ := w.Next(i); !s.Equal(first.start) {
						t.Fatalf("%s: Next(%s).start = %s, oracle says %s", w, i.In(w.loc), s, first.start.In(w.loc))
					}
				}
			}
		}
	}
}

func FuzzParseDevice(f *testing.F) {
	for _, s := range []string{"02:00-04:00 Europe/Berlin", "22:00-02:00 UTC", "22:00-02:00", "00:00-24:00",
		"23:59-00:00 America/New_York", "1:00-2:00", "02:00 - 04:00   Asia/Tokyo", "02:00-04:00 ../x", "99:99-99:99"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		w, err := ParseDevice(s)
		if err != nil {
			if !problem.Is(err, problem.KindInvalid) {
				t.Fatalf("ParseDevice(%q) error %v is not an invalid-input error", s, err)
			}
			return
		}
		if w.IsZero() || w.Duration() <= 0 || w.Duration() >= MaxDuration {
			t.Fatalf("ParseDevice(%q) accepted a bad window %#v", s, w)
		}
		back, err := ParseDevice(w.String())
		if err != nil || back != w {
			t.Fatalf("ParseDevice(%q).String() = %q does not round-trip: %v", s, w.String(), err)
		}
		if back, err := ParseSpec(w.String()); err != nil || back != w {
			t.Fatalf("ParseSpec(%q) does not round-trip: %v", w.String(), err)
		}
		at := utc("2025-03-30T00:30:00Z")
		st, en := w.Next(at)
		if st.IsZero() || !en.After(st) || (w.Open(at) && st.After(at)) {
			t.Fatalf("%s: Next(%s) = [%s, %s)", w, at, st, en)
		}
	})
}

func FuzzParse(f *testing.F) {
	f.Add("0 2 * * *", int64(2*time.Hour), "Europe/Berlin")
	f.Add("*/15 * * * mon-fri", int64(5*time.Minute), "UTC")
	f.Add("@daily", int64(time.Hour), "America/New_York")
	f.Add("0 0 30 2 *", int64(time.Hour), "UTC")
	f.Add("TZ=UTC", int64(time.Hour), "UTC")
	f.Add("0 0 0 2 * *", int64(time.Hour), "UTC")
	f.Add("1-5/2,7 1,2 ? * 1", int64(25*time.Hour), "Pacific/Apia")
	f.Fuzz(func(t *testing.T, expr string, d int64, tz string) {
		w, err := Parse(expr, time.Duration(d), tz)
		if err != nil {
			if !problem.Is(err, problem.KindInvalid) {
				t.Fatalf("Parse(%q) error %v is not an invalid-input error", expr, err)
			}
			return
		}
		back, err := ParseSpec(w.String())
		if err != nil || back != w {
			t.Fatalf("Parse(%q, %d, %q).String() = %q does not round-trip: %v", expr, d, tz, w.String(), err)
		}
		again, err := Parse(w.Cron(), w.Duration(), w.TZ())
		if err != nil || again != w {
			t.Fatalf("Parse of the canonical parts of %q differs: %v", w.String(), err)
		}
		at := utc("2025-10-26T00:45:00Z")
		if st, en := w.Next(at); st.IsZero() || !en.After(st) {
			t.Fatalf("%s: accepted window has no opening after %s", w, at)
		}
	})
}

func FuzzParseSpec(f *testing.F) {
	f.Add("0 2 * * * for 2h0m0s in Europe/Berlin")
	f.Add("02:00-04:00 UTC")
	f.Add("@hourly for 5m in UTC")
	f.Add(" for  in ")
	f.Fuzz(func(t *testing.T, s string) {
		w, err := ParseSpec(s)
		if err != nil {
			return
		}
		back, err := ParseSpec(w.String())
		if err != nil || back != w {
			t.Fatalf("ParseSpec(%q).String() = %q does not round-trip: %v", s, w.String(), err)
		}
	})
}

func BenchmarkOpen(b *testing.B) {
	w, _ := Parse("30 2 * * 1-5", 2*time.Hour, "Europe/Berlin")
	t0 := utc("2025-03-27T12:00:00Z")
	for i := 0; b.Loop(); i++ {
		w.Open(t0.Add(time.Duration(i%10000) * time.Minute))
	}
}
