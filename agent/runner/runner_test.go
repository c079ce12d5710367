package runner

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/steward-iot/steward/agent/client"
	"github.com/steward-iot/steward/agent/fakeserver"
	"github.com/steward-iot/steward/agent/proto"
)

const enrollToken = "enroll-secret"

// fakeClock is shared by the runner and the fake server; the runner's
// sleeps advance it.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// harness runs the agent against a fake server in fake time.
type harness struct {
	t     *testing.T
	clock *fakeClock
	fs    *fakeserver.Server
	url   string
	dir   string
	// sleeps are the runner's waits in order, one per step.
	sleeps []time.Duration
}

func newHarness(t *testing.T, opts fakeserver.Options) *harness {
	h := &harness{t: t, clock: &fakeClock{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}, dir: t.TempDir()}
	opts.Clock = h.clock.Now
	if opts.EnrollmentToken == "" {
		opts.EnrollmentToken = enrollToken
	}
	h.fs = fakeserver.New(opts)
	srv := httptest.NewServer(h.fs)
	t.Cleanup(srv.Close)
	h.url = srv.URL
	return h
}

func (h *harness) config() Config {
	return Config{
		ServerURL: h.url,
		StateDir:  h.dir,
		Enroll:    client.EnrollParams{HardwareID: "gw-100", Serial: "SN-1", EnrollmentToken: enrollToken},
		Reporter:  &FileReporter{Version: "1.2.3", Link: proto.LinkWiFi, StorageDir: h.dir},
		Clock:     h.clock.Now,
		Rand:      func() float64 { return 0.5 },
	}
}

// run runs the agent until onSleep returns false, calling it before each
// sleep with the number of earlier sleeps.
func (h *harness) run(cfg Config, onSleep func(n int) bool) error {
	h.t.Helper()
	h.sleeps = nil
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg.Sleep = func(ctx context.Context, d time.Duration) error {
		if !onSleep(len(h.sleeps)) {
			cancel()
			return ctx.Err()
		}
		h.sleeps = append(h.sleeps, d)
		h.clock.Advance(d)
		return nil
	}
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg) }()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		h.t.Fatalf("Run did not stop; sleeps so far: %v", h.sleeps)
		return nil
	}
}

func (h *harness) state() state {
	h.t.Helper()
	b, err := os.ReadFile(filepath.Join(h.dir, StateFile))
	if err != nil {
		h.t.Fatal(err)
	}
	var s state
	if err := json.Unmarshal(b, &s); err != nil {
		h.t.Fatal(err)
	}
	return s
}

func (h *harness) onlyDevice() fakeserver.Device {
	h.t.Helper()
	ds := h.fs.Devices()
	if len(ds) != 1 {
		h.t.Fatalf("server knows %d devices, want 1", len(ds))
	}
	return ds[0]
}

func checkSleeps(t *testing.T, got []time.Duration, want ...time.Duration) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("sleeps %v, want %v", got, want)
	}
}

// untilSleeps continues for n sleeps.
func untilSleeps(n int) func(int) bool { return func(i int) bool { return i < n } }

func TestEnrollPendingRetryActive(t *testing.T) {
	h := newHarness(t, fakeserver.Options{RetryAfterSeconds: 30, PollIntervalSeconds: 60})
	cfg := h.config()
	cfg.Enroll.EnrollmentToken, cfg.Enroll.Org = "", "acme"
	err := h.run(cfg, func(n int) bool {
		switch n {
		case 1: // after enrolling: still pending on the next try
			if d := h.onlyDevice(); d.Status != proto.StatusPending {
				t.Errorf("device is %s after enrolling without a token, want pending", d.Status)
			}
		case 2: // after a refused auth: an operator accepts it
			h.fs.SetStatus(h.onlyDevice().ID, proto.StatusActive)
		}
		return n < 4
	})
	if err != nil {
		t.Fatal(err)
	}
	// start, pending (enroll), pending (auth), check-in, check-in
	checkSleeps(t, h.sleeps, 0, 30*time.Second, 30*time.Second, time.Minute)
	d := h.onlyDevice()
	if d.Status != proto.StatusActive || len(d.Checkins) != 2 || d.Enrolls != 1 {
		t.Errorf("device %+v, want active with 2 check-ins and 1 enrollment", d)
	}
	if d.Org != "acme" || d.HardwareID != "gw-100" || d.Serial != "SN-1" {
		t.Errorf("enrolled as %+v", d)
	}
	if got := d.LastCheckin; got.Installed.Version != "1.2.3" || got.State.Link != proto.LinkWiFi || got.State.FreeStorage <= 0 {
		t.Errorf("check-in reported %+v", got)
	}
	if s := h.state(); s != (state{DeviceID: d.ID, Enrolled: true, PollIntervalSeconds: 60}) {
		t.Errorf("state %+v", s)
	}
}

func TestRejectedStops(t *testing.T) {
	h := newHarness(t, fakeserver.Options{})
	cfg := h.config()
	cfg.Enroll.EnrollmentToken, cfg.Enroll.Org = "", "acme"
	err := h.run(cfg, func(n int) bool {
		if n == 1 {
			h.fs.SetStatus(h.onlyDevice().ID, proto.StatusRejected)
		}
		return n < 10
	})
	if !errors.Is(err, ErrRefused) || !client.IsCode(err, proto.CodeDeviceRejected) || !strings.Contains(err.Error(), "rejected its enrollment") {
		t.Fatalf("error %v, want a refusal explaining the rejection", err)
	}
	if len(h.sleeps) != 2 {
		t.Errorf("sleeps %v: the agent went on after the rejection", h.sleeps)
	}

	// Without its state, the agent enrolls again and learns the status.
	if err := os.Remove(filepath.Join(h.dir, StateFile)); err != nil {
		t.Fatal(err)
	}
	err = h.run(cfg, untilSleeps(10))
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "rejected its enrollment") {
		t.Fatalf("re-enrolling a rejected device: %v", err)
	}
	if d := h.onlyDevice(); d.Enrolls != 2 || d.Auths != 0 {
		t.Errorf("device %+v, want 2 enrollments and no auth", d)
	}
}

func TestRevokedStops(t *testing.T) {
	h := newHarness(t, fakeserver.Options{})
	err := h.run(h.config(), func(n int) bool {
		if n == 2 { // after the first check-in
			h.fs.SetStatus(h.onlyDevice().ID, proto.StatusRevoked)
		}
		return n < 10
	})
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("error %v, want a refusal explaining the revocation", err)
	}
	if d := h.onlyDevice(); len(d.Checkins) != 1 {
		t.Errorf("%d check-ins, want 1", len(d.Checkins))
	}
}

func TestMissingEnrollInfoStops(t *testing.T) {
	h := newHarness(t, fakeserver.Options{})
	cfg := h.config()
	cfg.Enroll = client.EnrollParams{HardwareID: "gw-100"}
	err := h.run(cfg, untilSleeps(10))
	if err == nil || !strings.Contains(err.Error(), "enrollment token or an org") {
		t.Fatalf("error %v, want one naming what enrollment needs", err)
	}
}

func TestBackoffGrowsAndResets(t *testing.T) {
	// Check-ins fail 11 times, succeed, fail twice, succeed.
	var mu sync.Mutex
	plan := slices.Repeat([]bool{false}, 11)
	plan = append(plan, true, false, false, true)
	h := newHarness(t, fakeserver.Options{PollIntervalSeconds: 100, Fault: func(op string) *proto.Problem {
		mu.Lock()
		defer mu.Unlock()
		if op != "checkin" || len(plan) == 0 {
			return nil
		}
		ok := plan[0]
		plan = plan[1:]
		if ok {
			return nil
		}
		return &proto.Problem{Status: http.StatusInternalServerError, Detail: "database down"}
	}})
	if err := h.run(h.config(), untilSleeps(17)); err != nil {
		t.Fatal(err)
	}
	s := time.Second
	// Rand is 0.5: half of 1 s doubling up to the 5 min cap; the interval is
	// exact because the jitter is ±10% around it.
	checkSleeps(t, h.sleeps,
		0, 0, // start, enrolled
		s/2, s, 2*s, 4*s, 8*s, 16*s, 32*s, 64*s, 128*s, 150*s, 150*s,
		100*s,
		s/2, s,
		100*s)
}

func TestRetryAfterHonored(t *testing.T) {
	failed := false
	h := newHarness(t, fakeserver.Options{RetryAfterSeconds: 45, Fault: func(op string) *proto.Problem {
		if op != "checkin" || failed {
			return nil
		}
		failed = true
		return &proto.Problem{Status: http.StatusServiceUnavailable, Detail: "overloaded"}
	}})
	if err := h.run(h.config(), untilSleeps(4)); err != nil {
		t.Fatal(err)
	}
	checkSleeps(t, h.sleeps, 0, 0, 45*time.Second, time.Minute)
}

func TestStatePersistedAcrossRestarts(t *testing.T) {
	h := newHarness(t, fakeserver.Options{PollIntervalSeconds: 600})
	if err := h.run(h.config(), untilSleeps(2)); err != nil {
		t.Fatal(err)
	}
	first := h.onlyDevice()
	if s := h.state(); s.DeviceID != first.ID || !s.Enrolled || s.PollIntervalSeconds != 600 {
		t.Fatalf("state after the first run: %+v", s)
	}

	// The restarted agent needs no enrollment details any more.
	cfg := h.config()
	cfg.Enroll = client.EnrollParams{}
	if err := h.run(cfg, untilSleeps(2)); err != nil {
		t.Fatal(err)
	}
	d := h.onlyDevice()
	if d.ID != first.ID || d.KeyID != first.KeyID || d.Enrolls != 1 || len(d.Checkins) != 3 {
		t.Errorf("after a restart: device %+v, want the same one, enrolled once, with 3 check-ins", d)
	}
	// The first check-in after a restart waits a random part of a tenth of
	// the last interval.
	checkSleeps(t, h.sleeps, 30*time.Second, 600*time.Second)
}

func TestUnknownDeviceReenrolls(t *testing.T) {
	h := newHarness(t, fakeserver.Options{})
	err := h.run(h.config(), func(n int) bool {
		if n == 2 { // after the first check-in: e.g. a new server
			h.fs.Forget(h.onlyDevice().ID)
		}
		return n < 5
	})
	if err != nil {
		t.Fatal(err)
	}
	d := h.onlyDevice()
	if d.ID != "dev-2" || len(d.Checkins) != 1 {
		t.Errorf("device %+v, want dev-2 with 1 check-in", d)
	}
	if s := h.state(); s.DeviceID != "dev-2" || !s.Enrolled {
		t.Errorf("state %+v", s)
	}
	// start, enrolled, checked in, unknown device, enrolled
	checkSleeps(t, h.sleeps, 0, 0, time.Minute, time.Second/2, 0)
}

func TestCorruptStateEnrollsAgain(t *testing.T) {
	h := newHarness(t, fakeserver.Options{})
	if err := h.run(h.config(), untilSleeps(2)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(h.dir, StateFile), []byte("{trunc"), 0o600); err != nil {
		t.Fatal(err)
	}
	// All sleeps were 0; the server refuses an auth timestamp that is not
	// newer than the last.
	h.clock.Advance(time.Second)
	if err := h.run(h.config(), untilSleeps(2)); err != nil {
		t.Fatal(err)
	}
	if d := h.onlyDevice(); d.Enrolls != 2 || len(d.Checkins) != 2 {
		t.Errorf("device %+v, want the same device enrolled twice", d)
	}
	if s := h.state(); !s.Enrolled || s.DeviceID != "dev-1" {
		t.Errorf("state %+v", s)
	}
}

func TestSerialDefaultsToKeyID(t *testing.T) {
	h := newHarness(t, fakeserver.Options{})
	cfg := h.config()
	cfg.Enroll.Serial = ""
	if err := h.run(cfg, untilSleeps(1)); err != nil {
		t.Fatal(err)
	}
	if d := h.onlyDevice(); d.Serial != d.KeyID[:16] {
		t.Errorf("serial %q, want the key id prefix %q", d.Serial, d.KeyID[:16])
	}
}

func TestRunReturnsNilOnCancel(t *testing.T) {
	h := newHarness(t, fakeserver.Options{})
	cfg := h.config()
	cfg.Sleep = nil // the real one
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg) }()
	deadline := time.Now().Add(5 * time.Second)
	for h.fs.Counts().Checkins == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run after cancel: %v", err)
	}
	if n := h.fs.Counts().Checkins; n != 1 {
		t.Errorf("%d check-ins, want 1", n)
	}
}
