package wake

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/steward-iot/steward/agent/wake/waketest"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// device is a subscriber under test and the delays it was woken with.
type device struct {
	*MQTTSubscriber
	mu     sync.Mutex
	delays []time.Duration
	seen   map[string]bool // payloads handled
}

func (d *device) wake(delay time.Duration) {
	d.mu.Lock()
	d.delays = append(d.delays, delay)
	d.mu.Unlock()
}

func (d *device) handled(p []byte) {
	d.mu.Lock()
	d.seen[string(p)] = true
	d.mu.Unlock()
}

func (d *device) saw(p string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.seen[p]
}

func (d *device) Delays() []time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]time.Duration(nil), d.delays...)
}

// env is one test's broker connection and topic namespace.
type env struct {
	addr, prefix string
	pub          mqtt.Client
}

func newEnv(t *testing.T) *env {
	addr := waketest.BrokerAddr(t)
	return &env{addr: addr, prefix: waketest.Prefix(t), pub: waketest.Connect(t, addr)}
}

func (e *env) config() Config {
	return Config{Broker: Broker{URL: "tcp://" + e.addr}, TopicPrefix: e.prefix, MaxReconnectInterval: time.Second}
}

// start runs a subscriber for a fresh device of org and waits until it
// listens.
func (e *env) start(t *testing.T, cfg Config, org string, opts Options) *device {
	t.Helper()
	d := &device{seen: map[string]bool{}}
	opts.handled = d.handled
	s, err := NewMQTT(context.Background(), cfg, Device{Org: org, ID: "dev-" + waketest.Hex(t, 6)}, d.wake, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	d.MQTTSubscriber = s
	waketest.Eventually(t, s.Connected, "the subscriber to connect")
	return d
}

func (e *env) publish(t *testing.T, topic, payload string) {
	t.Helper()
	waketest.Publish(t, e.pub, topic, []byte(payload), false)
}

// sync publishes a unique payload of an unknown version to d's device
// topic and waits until d has handled it. The broker forwards one
// publisher's messages in order and the subscriber handles them in order,
// so everything published before has been handled by then (or never
// arrives): negative assertions need no sleeping.
func (e *env) sync(t *testing.T, d *device) {
	t.Helper()
	p := `{"v":999,"sync":"` + waketest.Hex(t, 8) + `"}`
	e.publish(t, d.deviceTopic, p)
	waketest.Eventually(t, func() bool { return d.saw(p) }, "the sync message")
}

const wakeNow = `{"v":1,"reason":"rollout","rollout_id":"r1","spread_seconds":0}`

func TestDeviceWakeReachesOnlyThatDevice(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.start(t, e.config(), "acme", Options{})
	b := e.start(t, e.config(), "acme", Options{})
	e.publish(t, a.deviceTopic, wakeNow)
	e.sync(t, a)
	e.sync(t, b)
	if got := a.Delays(); len(got) != 1 || got[0] != 0 {
		t.Errorf("device a was woken with %v, want [0s]", got)
	}
	if got := b.Delays(); len(got) != 0 {
		t.Errorf("device b was woken by a's wake-up: %v", got)
	}
}

func TestBroadcastReachesOrgOnly(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a1 := e.start(t, e.config(), "acme", Options{})
	a2 := e.start(t, e.config(), "acme", Options{})
	other := e.start(t, e.config(), "globex", Options{})
	e.publish(t, a1.orgTopic, wakeNow)
	for _, d := range []*device{a1, a2, other} {
		e.sync(t, d)
	}
	for i, d := range []*device{a1, a2} {
		if got := d.Delays(); len(got) != 1 {
			t.Errorf("acme device %d: woken %v times, want once", i, got)
		}
	}
	if got := other.Delays(); len(got) != 0 {
		t.Errorf("a globex device was woken by acme's broadcast: %v", got)
	}
}

func TestSpreadApplied(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cfg := e.config()
	cfg.MaxSpread = 10 * time.Minute
	// Each device draws from its own injected source, so each delay is
	// known exactly: r × spread.
	draws := []float64{0, 0.25, 0.999999}
	var devs []*device
	for _, r := range draws {
		devs = append(devs, e.start(t, cfg, "acme", Options{Rand: func() float64 { return r }}))
	}
	e.publish(t, devs[0].orgTopic, `{"v":1,"reason":"rollout","spread_seconds":40}`)
	for i, d := range devs {
		e.sync(t, d)
		want := time.Duration(draws[i] * float64(40*time.Second))
		got := d.Delays()
		if len(got) != 1 || got[0] != want {
			t.Errorf("device %d (r=%g): delays %v, want [%s]", i, draws[i], got, want)
		}
		if len(got) == 1 && (got[0] < 0 || got[0] >= 40*time.Second) {
			t.Errorf("device %d: delay %s outside [0, 40s)", i, got[0])
		}
	}

	// A spread beyond the device's MaxSpread is clamped to it; an injected
	// source that misbehaves (returns 1 or more) is clamped into [0, 1).
	far := e.start(t, cfg, "acme", Options{Rand: func() float64 { return 0.5 }})
	broken := e.start(t, cfg, "acme", Options{Rand: func() float64 { return 7 }})
	e.publish(t, far.deviceTopic, `{"v":1,"spread_seconds":86400}`)
	e.publish(t, broken.deviceTopic, `{"v":1,"spread_seconds":60}`)
	e.sync(t, far)
	e.sync(t, broken)
	if got := far.Delays(); len(got) != 1 || got[0] != 5*time.Minute {
		t.Errorf("a day's spread with MaxSpread 10m and r=0.5: delays %v, want [5m0s]", got)
	}
	if got := broken.Delays(); len(got) != 1 || got[0] != 0 {
		t.Errorf("a broken random source: delays %v, want [0s]", got)
	}
}

// A flood of forged wake-ups costs the device one early check-in per
// MinGap and no more.
func TestFloodRateLimited(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	clk := newClock()
	cfg := e.config()
	cfg.MinGap = 30 * time.Second
	d := e.start(t, cfg, "acme", Options{Clock: clk.Now})
	flood := func(n int) {
		t.Helper()
		// In rounds, so the broker's per-client queue (1,000 messages by
		// default) never overflows and drops some.
		for sent := 0; sent < n; {
			before := d.Stats().Received
			for range 100 {
				e.pub.Publish(d.deviceTopic, 1, false, wakeNow)
			}
			sent += 100
			waketest.Eventually(t, func() bool { return d.Stats().Received >= before+100 }, "flood round")
		}
	}
	t0 := clk.Now()
	flood(1000) // all at t0
	if s := d.Stats(); s.Woken != 1 || s.Coalesced != 999 || s.Invalid != 0 {
		t.Fatalf("after 1,000 wake-ups at one instant: %+v, want 1 woken and 999 coalesced", s)
	}
	clk.Advance(time.Second)
	flood(1000) // at t0+1s: one more check-in, deferred to t0+30s
	clk.Advance(10 * time.Second)
	flood(1000) // at t0+11s: still pending, nothing new
	clk.Advance(25 * time.Second)
	flood(1000) // at t0+36s: the next one, at t0+60s
	got := d.Delays()
	want := []time.Duration{0, 29 * time.Second, 24 * time.Second}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("4,000 forged wake-ups over 36s woke the device with delays %v, want %v", got, want)
	}
	dues := []time.Time{t0, t0.Add(time.Second + got[1]), t0.Add(36*time.Second + got[2])}
	for i := 1; i < len(dues); i++ {
		if gap := dues[i].Sub(dues[i-1]); gap < cfg.MinGap {
			t.Errorf("early check-ins %d and %d are %s apart, less than MinGap %s", i-1, i, gap, cfg.MinGap)
		}
	}
	if s := d.Stats(); s.Received != 4000 || s.Woken+s.Coalesced != 4000 {
		t.Errorf("stats %+v do not account for 4,000 messages", s)
	}
}

func TestInvalidPayloadsIgnored(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	org := "acme"
	devID := "dev-" + waketest.Hex(t, 6)
	devTopic, _ := DeviceTopic(e.prefix, org, devID)
	// A retained wake-up, stored before the device subscribes, reaches it
	// with the retain flag: it must not wake the device. Clear it at the
	// end: the test broker persists retained messages.
	waketest.Publish(t, e.pub, devTopic, []byte(wakeNow), true)
	t.Cleanup(func() { waketest.Publish(t, e.pub, devTopic, nil, true) })

	d := &device{seen: map[string]bool{}}
	s, err := NewMQTT(context.Background(), e.config(), Device{Org: org, ID: devID}, d.wake, Options{handled: d.handled})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	d.MQTTSubscriber = s
	waketest.Eventually(t, func() bool { return s.Stats().Invalid == 1 }, "the retained wake-up to be refused")

	bad := []string{
		`{"v":1,"reason":"` + strings.Repeat("x", MaxPayload) + `"}`, // oversized
		`{"v":1,"spread_seconds":`,                                   // truncated
		"\x00\xff binary",
		`{"v":2,"reason":"rollout"}`, // a future version
		`{"reason":"rollout"}`,       // no version
		`{"v":1,"reason":"a b"}`,
		``,
	}
	for _, p := range bad {
		e.publish(t, devTopic, p)
	}
	e.sync(t, d) // the sync message is invalid too
	if s := d.Stats(); s.Invalid != uint64(1+len(bad)+1) || s.Woken != 0 {
		t.Fatalf("after %d invalid messages: %+v, want all counted invalid and no wake-up", len(bad)+2, s)
	}
	// The subscriber still works, and unknown fields are fine.
	e.publish(t, d.orgTopic, `{"v":1,"reason":"rollout","new_field":[1,2,3]}`)
	waketest.Eventually(t, func() bool { return len(d.Delays()) == 1 }, "a valid wake-up after invalid ones")
}

func TestInvalidIDsRefusedAtStart(t *testing.T) {
	cfg := Config{Broker: Broker{URL: "tcp://127.0.0.1:1"}}
	noop := func(time.Duration) {}
	for _, dev := range []Device{{"acme", ""}, {"acme", "a/b"}, {"acme", "+"}, {"ac#me", "d1"}, {"", "d1"}, {"acme", "d\x00"}} {
		if s, err := Start(context.Background(), cfg, dev, noop, Options{}); err == nil {
			s.Close()
			t.Errorf("Start accepted device %+v", dev)
		}
	}
	if _, err := Start(context.Background(), cfg, Device{"acme", "d1"}, nil, Options{}); err == nil {
		t.Error("Start accepted a nil callback")
	}
	if _, err := Start(context.Background(), Config{Broker: cfg.Broker, MinGap: time.Millisecond}, Device{"acme", "d1"}, noop, Options{}); err == nil {
		t.Error("Start accepted a 1ms MinGap")
	}
}

func TestNop(t *testing.T) {
	s, err := Start(context.Background(), Config{}, Device{}, func(time.Duration) { t.Error("Nop woke the device") }, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.(Nop); !ok {
		t.Fatalf("Start without a URL returned %T, want Nop", s)
	}
	if s.Stats() != (Stats{}) || s.Close() != nil {
		t.Error("Nop has stats or fails to close")
	}
}

// The subscriber survives the broker going away and coming back: it
// reconnects, subscribes again (clean session) and is woken as before.
func TestSubscriberReconnects(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	proxy := waketest.NewProxy(t, e.addr, nil)
	cfg := e.config()
	cfg.URL = "tcp://" + proxy.Addr()
	d := e.start(t, cfg, "acme", Options{})
	proxy.Stop()
	waketest.Eventually(t, func() bool { return !d.Connected() }, "the subscriber to notice the broker is gone")
	if err := proxy.Start(); err != nil {
		t.Fatal(err)
	}
	waketest.Eventually(t, func() bool { return d.Connected() && d.Stats().Connects == 2 }, "the subscriber to reconnect")
	e.publish(t, d.deviceTopic, wakeNow)
	waketest.Eventually(t, func() bool { return len(d.Delays()) == 1 }, "a wake-up after reconnecting")
}

// A broker that is down delays neither Start nor Close, and Close ends
// the background loop.
func TestUnreachableBrokerDoesNotBlock(t *testing.T) {
	t.Parallel()
	cfg := Config{Broker: Broker{URL: "tcp://127.0.0.1:1", ConnectTimeout: time.Second}, MaxReconnectInterval: time.Second}
	s, err := Start(context.Background(), cfg, Device{"acme", "d1"}, func(time.Duration) {}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ms := s.(*MQTTSubscriber)
	if ms.Connected() {
		t.Fatal("connected to a closed port")
	}
	closed := make(chan error)
	go func() { closed <- s.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second): // a hang bound, not a timing claim
		t.Fatal("Close hung while the broker was unreachable")
	}
	select {
	case <-ms.done:
	default:
		t.Fatal("the background loop still runs after Close")
	}
	if s.Close() != nil {
		t.Fatal("a second Close failed")
	}
}

// Cancelling the context given to Start stops the subscriber like Close.
func TestContextStopsSubscriber(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	s, err := NewMQTT(ctx, e.config(), Device{"acme", "dev-" + waketest.Hex(t, 6)}, func(time.Duration) {}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	waketest.Eventually(t, s.Connected, "the subscriber to connect")
	cancel()
	waketest.Eventually(t, func() bool {
		select {
		case <-s.done:
			return true
		default:
			return false
		}
	}, "the subscriber to stop")
	if s.Connected() {
		t.Error("still connected after the context ended")
	}
}
