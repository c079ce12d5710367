package simulator

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/steward-iot/steward/agent/fakeserver"
	"github.com/steward-iot/steward/agent/proto"
)

const enrollToken = "sim-token"

func startServer(t testing.TB, opts fakeserver.Options) (*fakeserver.Server, string) {
	fs := fakeserver.New(opts)
	srv := httptest.NewServer(fs)
	t.Cleanup(srv.Close)
	return fs, srv.URL
}

func mustChoices(t testing.TB, items ...string) []Choice {
	cs, err := ParseChoices(items)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func TestFleet(t *testing.T) {
	devices := 2000
	if raceEnabled || testing.Short() {
		devices = 500
	}
	fs, url := startServer(t, fakeserver.Options{EnrollmentToken: enrollToken, PollIntervalSeconds: 3600})
	var out bytes.Buffer
	sim, err := New(Config{
		ServerURL:        url,
		Devices:          devices,
		EnrollmentToken:  enrollToken,
		HardwareIDs:      mustChoices(t, "gw-100", "sensor-7"),
		Versions:         mustChoices(t, "2.3.0=3", "2.4.0=1"),
		Links:            mustChoices(t, "wifi", "cellular", "nb-iot"),
		BatteryShare:     0.5,
		OfflineChurn:     0.05,
		ChurnPeriod:      400 * time.Millisecond,
		IntervalOverride: 250 * time.Millisecond,
		Concurrency:      32,
		Out:              &out,
		ReportEvery:      time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	// Run for 3 s, and on a slow or busy machine (-race) until every device
	// checked in and some came back from being offline.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- sim.Run(ctx) }()
	time.Sleep(3 * time.Second)
	waitFor(t, "every device checked in, some after being offline", func() bool {
		st := sim.Stats()
		return st.CheckedIn == devices && st.Resumed >= 10 && cameBackBefore(sim, time.Now().Add(-checkLag(sim, st)))
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	end := time.Now()
	st := sim.Stats()
	t.Logf("%s%v", out.String(), st)

	if st.Devices != devices || st.Enrolled != devices || st.CheckedIn != devices || st.Stopped != 0 || len(st.Errors) != 0 {
		t.Errorf("stats %+v: want every device enrolled and checked in, without errors", st)
	}
	if st.Elapsed < 3*time.Second || st.Elapsed > end.Sub(start) {
		t.Errorf("elapsed %v, want the time Run ran", st.Elapsed)
	}
	if n := fs.Counts().Checkins; int64(n) < st.Checkins || st.Checkins < int64(devices) {
		t.Errorf("the simulator counted %d check-ins, the server %d", st.Checkins, n)
	}
	if st.LatencyP50 <= 0 || st.LatencyP99 < st.LatencyP50 {
		t.Errorf("latencies p50 %v p99 %v", st.LatencyP50, st.LatencyP99)
	}
	if lines := strings.Count(out.String(), "\n"); lines < 2 || !strings.Contains(out.String(), "check-ins") {
		t.Errorf("periodic summary:\n%s", out.String())
	}

	// Distinct identities, and attributes spread as configured.
	keys, serials := map[string]bool{}, map[string]bool{}
	count := map[string]int{}
	for _, d := range fs.Devices() {
		keys[d.KeyID], serials[d.Serial] = true, true
		c := d.LastCheckin
		count[d.HardwareID]++
		count[c.Installed.Version]++
		count[c.State.Link]++
		if c.State.BatteryPercent != nil {
			count["battery"]++
			if p := *c.State.BatteryPercent; p < 0 || p > 100 {
				t.Errorf("battery at %d%%", p)
			}
		} else if !c.State.OnMains {
			t.Errorf("%s has no battery and is not on mains", d.Serial)
		}
		if c.State.Metered != (c.State.Link != proto.LinkWiFi) {
			t.Errorf("%s: link %s metered %v", d.Serial, c.State.Link, c.State.Metered)
		}
		if !strings.HasPrefix(d.Serial, "sim-") {
			t.Errorf("serial %q", d.Serial)
		}
	}
	if len(keys) != devices || len(serials) != devices {
		t.Errorf("%d distinct keys and %d distinct serials for %d devices", len(keys), len(serials), devices)
	}
	share := func(name string, want float64) {
		if got := float64(count[name]) / float64(devices); math.Abs(got-want) > 0.02 {
			t.Errorf("%s on %.3f of the devices, want %.3f", name, got, want)
		}
	}
	share("gw-100", 0.5)
	share("2.3.0", 0.75)
	share("2.4.0", 0.25)
	share("nb-iot", 1.0/3)
	share("battery", 0.5)

	checkChurn(t, sim, fs, end)
}

// checkChurn verifies that devices made no request while offline and came
// back afterwards.
func checkChurn(t *testing.T, sim *Simulator, fs *fakeserver.Server, end time.Time) {
	st := sim.Stats()
	if st.WentOffline == 0 || st.Resumed == 0 {
		t.Fatalf("went offline %d, resumed %d: no churn", st.WentOffline, st.Resumed)
	}
	bySerial := map[string]fakeserver.Device{}
	for _, d := range fs.Devices() {
		bySerial[d.Serial] = d
	}
	// Under load a device checks in about every devices/rate seconds; one
	// that came back well before the end must have checked in again.
	lag := checkLag(sim, st)
	checked := 0
	for _, d := range sim.devices {
		until := time.Duration(d.offlineUntil.Load())
		if until == 0 {
			continue
		}
		from, to := sim.start.Add(d.offlineFrom), sim.start.Add(until)
		var during, after int
		for _, at := range bySerial[d.serial].Checkins {
			if !at.Before(from) && at.Before(to) {
				during++
			}
			if !at.Before(to) {
				after++
			}
		}
		if during > 0 {
			t.Errorf("%s checked in %d times while offline", d.serial, during)
		}
		if to.Add(lag).Before(end) {
			checked++
			if after == 0 {
				t.Errorf("%s did not check in after coming back online %v before the end", d.serial, end.Sub(to))
			}
		}
	}
	if checked == 0 {
		t.Error("no device came back early enough to check")
	}
}

func TestPendingApprovedAndRejected(t *testing.T) {
	fs, url := startServer(t, fakeserver.Options{RetryAfterSeconds: 1, PollIntervalSeconds: 1})
	sim, err := New(Config{ServerURL: url, Devices: 20, Org: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sim.Run(ctx) }()
	waitFor(t, "all pending", func() bool { return sim.Stats().Pending == 20 })
	for i, d := range fs.Devices() {
		status := proto.StatusActive
		if i%2 == 1 {
			status = proto.StatusRejected
		}
		fs.SetStatus(d.ID, status)
	}
	waitFor(t, "accepted devices checked in, rejected ones stopped", func() bool {
		st := sim.Stats()
		return st.CheckedIn == 10 && st.Stopped == 10
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if st := sim.Stats(); st.Errors[proto.CodeDeviceRejected] != 10 || st.Enrolled != 10 {
		t.Errorf("stats %+v", st)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestMaxRate(t *testing.T) {
	fs, url := startServer(t, fakeserver.Options{EnrollmentToken: enrollToken})
	sim, err := New(Config{
		ServerURL: url, Devices: 100, EnrollmentToken: enrollToken,
		IntervalOverride: time.Millisecond, MaxRate: 200, EnrollRate: 1000, Duration: 2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	// At most 200/s for 2 s plus the 50 ms burst allowance. The floor only
	// catches a limiter that starves the fleet: on a machine loaded by
	// other test packages (-race) the fleet may not reach the cap.
	st := sim.Stats()
	if n := fs.Counts().Checkins; n > 410 || n < 150 {
		t.Errorf("%d check-ins in 2 s at --max-rate 200 (%+v)", n, st)
	}
	if st.Enrolled != 100 {
		t.Errorf("%d enrolled", st.Enrolled)
	}
}

func TestEnrollRateAndRetry(t *testing.T) {
	var fail atomic.Int32
	fail.Store(5)
	fs, url := startServer(t, fakeserver.Options{EnrollmentToken: enrollToken, Fault: func(op string) *proto.Problem {
		if op == "enroll" && fail.Add(-1) >= 0 {
			return &proto.Problem{Status: http.StatusServiceUnavailable}
		}
		return nil
	}, RetryAfterSeconds: 1})
	sim, err := New(Config{ServerURL: url, Devices: 50, EnrollmentToken: enrollToken, EnrollRate: 25, Duration: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- sim.Run(context.Background()) }()
	time.Sleep(time.Second)
	// 25/s with a 50 ms burst: 2 at once, then one every 40 ms.
	n := fs.Counts().Enrolls
	if most := 3 + int(time.Since(sim.start)/(40*time.Millisecond)); n < 10 || n > most {
		t.Errorf("%d enrollments after %v at 25/s, want 10 to %d", n, time.Since(sim.start), most)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	st := sim.Stats()
	if st.Enrolled != 50 || st.Errors["http_503"] != 5 {
		t.Errorf("stats %+v, want all enrolled after 5 failures", st)
	}
}

func TestNoServer(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	sim, err := New(Config{ServerURL: url, Devices: 3, EnrollmentToken: "x", Duration: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "transport=") {
		t.Errorf("error %v, want no device enrolled with transport errors", err)
	}
}

func TestStatsJSON(t *testing.T) {
	st := Stats{Devices: 2, Errors: map[string]int64{"transport": 1}, Elapsed: 1500 * time.Millisecond, LatencyP99: 2500 * time.Microsecond}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m["devices"] != 2.0 || m["elapsed_seconds"] != 1.5 || m["latency_p99_ms"] != 2.5 || m["errors"].(map[string]any)["transport"] != 1.0 {
		t.Errorf("JSON %s", b)
	}
}

func TestUpdateStatsJSONAndSummary(t *testing.T) {
	st := Stats{Devices: 3, Updates: &UpdateStats{Started: 3, Committed: 2, Failed: map[string]int64{"install-failed": 1},
		Retried: map[string]int64{}, BytesDelta: 400, OfferToCommitP50: 1500 * time.Millisecond, OfferToCommitP95: 2 * time.Second,
		Versions: map[string]int{"1.1.0": 2, "1.0.0": 1}}}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Updates map[string]any `json:"updates"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	u := m.Updates
	if u["committed"] != 2.0 || u["offer_to_commit_p50_seconds"] != 1.5 || u["offer_to_commit_p95_seconds"] != 2.0 ||
		u["bytes_delta"] != 400.0 || u["versions"].(map[string]any)["1.1.0"] != 2.0 || u["failed"].(map[string]any)["install-failed"] != 1.0 {
		t.Errorf("JSON %s", b)
	}
	line := st.String()
	for _, want := range []string{"started 3 committed 2", "failed: install-failed=1", "delta 400", "p50 1.5s p95 2s", "versions: 1.0.0=1 1.1.0=2"} {
		if !strings.Contains(line, want) {
			t.Errorf("summary %q lacks %q", line, want)
		}
	}
	if strings.Contains(Stats{}.String(), "updates") {
		t.Error("a summary without updates mentions them")
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	good := Config{ServerURL: "http://x", Devices: 1, EnrollmentToken: "t"}
	for name, mod := range map[string]func(*Config){
		"no server":             func(c *Config) { c.ServerURL = "" },
		"no devices":            func(c *Config) { c.Devices = 0 },
		"share":                 func(c *Config) { c.BatteryShare = 1.5 },
		"negative rate":         func(c *Config) { c.MaxRate = -1 },
		"no enrollment":         func(c *Config) { c.EnrollmentToken = "" },
		"bad link":              func(c *Config) { c.Links = []Choice{{Value: "carrier-pigeon", Weight: 1}} },
		"zero weights":          func(c *Config) { c.Versions = []Choice{{Value: "1", Weight: 0}} },
		"updates without roots": func(c *Config) { c.Org = "acme"; c.Updates = &UpdateConfig{} },
		"updates without org":   func(c *Config) { c.Updates = &UpdateConfig{DirectorRoot: []byte("{}"), ImageRoot: []byte("{}")} },
		"install failure rate": func(c *Config) {
			c.Org = "acme"
			c.Updates = &UpdateConfig{DirectorRoot: []byte("{}"), ImageRoot: []byte("{}"), InstallFailureRate: 2}
		},
		"health failure rate": func(c *Config) {
			c.Org = "acme"
			c.Updates = &UpdateConfig{DirectorRoot: []byte("{}"), ImageRoot: []byte("{}"), HealthFailureRate: -0.1}
		},
		"negative time scale": func(c *Config) {
			c.Org = "acme"
			c.Updates = &UpdateConfig{DirectorRoot: []byte("{}"), ImageRoot: []byte("{}"), TimeScale: -1}
		},
		"total loss": func(c *Config) {
			c.Org = "acme"
			c.Updates = &UpdateConfig{DirectorRoot: []byte("{}"), ImageRoot: []byte("{}"), Links: map[string]LinkProfile{"wifi": {Loss: 1}}}
		},
		"missing factory image": func(c *Config) {
			c.Org = "acme"
			c.Updates = &UpdateConfig{DirectorRoot: []byte("{}"), ImageRoot: []byte("{}"), Images: map[string]string{"1.0.0": "/nonexistent"}}
		},
	} {
		c := good
		mod(&c)
		if _, err := New(c); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestParseChoices(t *testing.T) {
	got, err := ParseChoices([]string{"2.3.0=3", " 2.4.0 ", "x=0.5"})
	if err != nil {
		t.Fatal(err)
	}
	want := []Choice{{"2.3.0", 3}, {"2.4.0", 1}, {"x", 0.5}}
	if len(got) != len(want) {
		t.Fatalf("%v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("%v, want %v", got, want)
		}
	}
	for _, bad := range []string{"a=b", "=1", "a=-1"} {
		if _, err := ParseChoices([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestHistogram(t *testing.T) {
	var h histogram
	for i := 1; i <= 1000; i++ {
		h.record(time.Duration(i) * 100 * time.Microsecond) // 0.1 ms .. 100 ms
	}
	s := h.snapshot()
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{0.5, 50 * time.Millisecond}, {0.99, 99 * time.Millisecond}, {0.001, 100 * time.Microsecond}} {
		got := percentile(s, c.p)
		if math.Abs(float64(got-c.want))/float64(c.want) > 0.07 {
			t.Errorf("p%v = %v, want %v within 7%%", c.p*100, got, c.want)
		}
	}
	if percentile(make([]int64, len(s)), 0.5) != 0 {
		t.Error("percentile of nothing is not 0")
	}
	for _, d := range []time.Duration{0, 15 * time.Microsecond, time.Second, time.Hour, math.MaxInt64} {
		if b := bucketOf(d); b < 0 || b >= len(s) {
			t.Errorf("bucketOf(%v) = %d out of range", d, b)
		}
	}
}

func TestLimiter(t *testing.T) {
	l := newLimiter(100) // every 10 ms, 50 ms ahead at most
	var got []time.Duration
	for range 8 {
		got = append(got, l.reserve(0))
	}
	ms := time.Millisecond
	want := []time.Duration{0, 0, 0, 0, 0, 0, 10 * ms, 20 * ms}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("reservations %v, want %v", got, want)
		}
	}
	// After a quiet second the burst is available again, no more.
	if at := l.reserve(time.Second); at != time.Second {
		t.Errorf("after a pause: %v", at)
	}
	if newLimiter(0) != nil {
		t.Error("rate 0 is not unlimited")
	}
}

// checkLag is how long after coming back online a device surely checked in
// again: about three rounds of the whole fleet at the measured rate.
func checkLag(sim *Simulator, st Stats) time.Duration {
	if st.CheckinsPerSecond <= 0 {
		return time.Hour
	}
	return max(time.Second, 3*time.Duration(float64(len(sim.devices))/st.CheckinsPerSecond*float64(time.Second)))
}

// cameBackBefore reports whether some device's last offline period ended
// before t, so the test can wait (on a loaded machine) until one can be
// checked, instead of hoping a fixed duration suffices.
func cameBackBefore(sim *Simulator, t time.Time) bool {
	for _, d := range sim.devices {
		if until := time.Duration(d.offlineUntil.Load()); until != 0 && sim.start.Add(until).Before(t) {
			return true
		}
	}
	return false
}
