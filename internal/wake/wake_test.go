package wake

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	agentwake "github.com/steward-iot/steward/agent/wake"
	"github.com/steward-iot/steward/agent/wake/waketest"
)

type env struct {
	addr, prefix string
}

func newEnv(t testing.TB) env {
	return env{addr: waketest.BrokerAddr(t), prefix: waketest.Prefix(t)}
}

func (e env) config() Config {
	return Config{
		Broker:               agentwake.Broker{URL: "tcp://" + e.addr},
		TopicPrefix:          e.prefix,
		MaxReconnectInterval: 200 * time.Millisecond,
		MaxRate:              100000,
	}
}

// open starts a publisher and waits until it is connected.
func (e env) open(t testing.TB, cfg Config) *MQTT {
	t.Helper()
	p, err := NewMQTT(cfg, Options{Clock: func() time.Time { return time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	waketest.Eventually(t, p.Connected, "the publisher to connect")
	return p
}

// device runs an agent-side subscriber and counts its wake-ups.
type device struct {
	id string
	mu sync.Mutex
	n  int
}

func (d *device) woken() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.n
}

func (e env) device(t *testing.T, org, id string) *device {
	t.Helper()
	d := &device{id: id}
	cfg := agentwake.Config{Broker: agentwake.Broker{URL: "tcp://" + e.addr}, TopicPrefix: e.prefix}
	s, err := agentwake.NewMQTT(context.Background(), cfg, agentwake.Device{Org: org, ID: id}, func(time.Duration) {
		d.mu.Lock()
		d.n++
		d.mu.Unlock()
	}, agentwake.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	waketest.Eventually(t, s.Connected, "device %s to subscribe", id)
	return d
}

// settle publishes a sentinel after everything else and waits for rec to
// receive it: the broker forwards one publisher's messages in order, so
// whatever rec was going to receive before has arrived.
func (e env) settle(t *testing.T, rec *waketest.Recorder) []waketest.Message {
	t.Helper()
	c := waketest.Connect(t, e.addr)
	topic := e.prefix + "/sentinel"
	waketest.Publish(t, c, topic, []byte("sentinel"), false)
	var msgs []waketest.Message
	waketest.Eventually(t, func() bool {
		msgs = rec.Messages()
		return len(msgs) > 0 && msgs[len(msgs)-1].Topic == topic
	}, "the sentinel")
	return msgs[:len(msgs)-1]
}

func TestWakeDevicesReachesOnlyThoseDevices(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rec := waketest.Subscribe(t, e.addr, e.prefix+"/#")
	d1 := e.device(t, "acme", "d1-"+waketest.Hex(t, 4))
	d2 := e.device(t, "acme", "d2-"+waketest.Hex(t, 4))
	p := e.open(t, e.config())

	// d1 twice: duplicates are sent once.
	if err := p.WakeDevices(context.Background(), "acme", []string{d1.id, d1.id, "offline-device"}, ReasonRollout, "r-1"); err != nil {
		t.Fatal(err)
	}
	waketest.Eventually(t, func() bool { return d1.woken() == 1 }, "d1 to wake")
	msgs := e.settle(t, rec)
	if len(msgs) != 2 {
		t.Fatalf("the broker saw %d messages, want 2: %+v", len(msgs), msgs)
	}
	for _, m := range msgs {
		if !strings.HasPrefix(m.Topic, e.prefix+"/acme/devices/") || !strings.HasSuffix(m.Topic, "/wake") {
			t.Errorf("topic %q", m.Topic)
		}
		if m.Retained || m.QoS != 1 {
			t.Errorf("message on %s: retained %v, QoS %d; want not retained, QoS 1", m.Topic, m.Retained, m.QoS)
		}
		const want = `{"v":1,"reason":"rollout","rollout_id":"r-1","spread_seconds":0,"at":"2026-11-01T12:00:00Z"}`
		if string(m.Payload) != want {
			t.Errorf("payload %s, want %s", m.Payload, want)
		}
	}
	if d2.woken() != 0 {
		t.Error("d2 was woken by a wake-up for d1")
	}
	if s := p.Stats(); s != (Stats{Published: 2}) {
		t.Errorf("stats %+v, want 2 published", s)
	}
}

func TestWakeOrgReachesOnlyThatOrg(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rec := waketest.Subscribe(t, e.addr, e.prefix+"/#")
	a1 := e.device(t, "acme", "a1-"+waketest.Hex(t, 4))
	a2 := e.device(t, "acme", "a2-"+waketest.Hex(t, 4))
	g := e.device(t, "globex", "g1-"+waketest.Hex(t, 4))
	p := e.open(t, e.config())
	// 1.5 s is rounded up: a spread never shrinks.
	if err := p.WakeOrg(context.Background(), "acme", 1500*time.Millisecond, ReasonUrgent, ""); err != nil {
		t.Fatal(err)
	}
	waketest.Eventually(t, func() bool { return a1.woken() == 1 && a2.woken() == 1 }, "both acme devices to wake")
	msgs := e.settle(t, rec)
	if len(msgs) != 1 || msgs[0].Topic != e.prefix+"/acme/wake" || msgs[0].Retained {
		t.Fatalf("messages %+v, want one unretained on %s/acme/wake", msgs, e.prefix)
	}
	w, err := agentwake.ParsePayload(msgs[0].Payload)
	if err != nil || w.Spread != 2*time.Second || w.Reason != ReasonUrgent {
		t.Errorf("broadcast payload %s parses as %+v, %v; want spread 2s, reason urgent", msgs[0].Payload, w, err)
	}
	if g.woken() != 0 {
		t.Error("a globex device was woken by acme's broadcast")
	}
}

// A retained wake-up would wake every device on every reconnection,
// forever. After wake-ups of both kinds, a new subscriber to everything
// under the prefix receives nothing stored.
func TestNothingRetained(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.open(t, e.config())
	if err := p.WakeDevices(context.Background(), "acme", []string{"d1", "d2"}, ReasonRollout, "r"); err != nil {
		t.Fatal(err)
	}
	if err := p.WakeOrg(context.Background(), "acme", time.Minute, ReasonRollout, "r"); err != nil {
		t.Fatal(err)
	}
	// The broker sends retained messages right after the subscription is
	// acknowledged, so they would come before the sentinel.
	rec := waketest.Subscribe(t, e.addr, e.prefix+"/#")
	if msgs := e.settle(t, rec); len(msgs) != 0 {
		t.Fatalf("a new subscriber received stored messages: %+v", msgs)
	}
}

func TestInvalidArgumentsRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rec := waketest.Subscribe(t, e.addr, e.prefix+"/#")
	p := e.open(t, e.config())
	ctx := context.Background()
	for _, pub := range []Publisher{p, Nop{}} {
		for _, tc := range []struct {
			name string
			call func() error
			want string
		}{
			{"org with slash", func() error { return pub.WakeDevices(ctx, "acme/x", []string{"d1"}, "", "") }, "organization id"},
			{"org wildcard", func() error { return pub.WakeOrg(ctx, "#", 0, "", "") }, "organization id"},
			{"empty org", func() error { return pub.WakeOrg(ctx, "", 0, "", "") }, "empty"},
			{"device wildcard", func() error { return pub.WakeDevices(ctx, "acme", []string{"ok", "+"}, "", "") }, "device id"},
			{"device NUL", func() error { return pub.WakeDevices(ctx, "acme", []string{"d\x00"}, "", "") }, "control character"},
			{"reason", func() error { return pub.WakeDevices(ctx, "acme", []string{"d1"}, "two words", "") }, "reason"},
			{"rollout id", func() error { return pub.WakeOrg(ctx, "acme", 0, "", "a/b") }, "rollout id"},
			{"negative spread", func() error { return pub.WakeOrg(ctx, "acme", -time.Second, "", "") }, "spread"},
			{"spread too long", func() error { return pub.WakeOrg(ctx, "acme", 2*time.Hour, "", "") }, "spread"},
		} {
			err := tc.call()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%T %s: %v, want an error naming %q", pub, tc.name, err, tc.want)
			}
		}
	}
	// One invalid id stops the whole batch before anything is sent.
	if msgs := e.settle(t, rec); len(msgs) != 0 {
		t.Errorf("invalid calls published %+v", msgs)
	}
	if s := p.Stats(); s != (Stats{}) {
		t.Errorf("invalid calls counted %+v", s)
	}
	if err := p.WakeDevices(ctx, "acme", nil, "", ""); err != nil {
		t.Errorf("an empty batch: %v", err)
	}
}

// The publisher loses the broker, fails fast meanwhile (it does not queue
// or block), and publishes again once the broker is back.
func TestPublisherSurvivesBrokerDisconnect(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rec := waketest.Subscribe(t, e.addr, e.prefix+"/#")
	proxy := waketest.NewProxy(t, e.addr, nil)
	cfg := e.config()
	cfg.URL = "tcp://" + proxy.Addr()
	p := e.open(t, cfg)
	ctx := context.Background()
	if err := p.WakeDevices(ctx, "acme", []string{"before"}, "", ""); err != nil {
		t.Fatal(err)
	}

	proxy.Stop()
	waketest.Eventually(t, func() bool { return !p.Connected() }, "the publisher to notice")
	err := p.WakeDevices(ctx, "acme", []string{"during-1", "during-2"}, "", "")
	if !errors.Is(err, ErrNotConnected) || !strings.Contains(err.Error(), "2 of 2") {
		t.Fatalf("WakeDevices while the broker is away: %v, want ErrNotConnected for 2 of 2", err)
	}
	if err := p.WakeOrg(ctx, "acme", 0, "", ""); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("WakeOrg while the broker is away: %v", err)
	}

	if err := proxy.Start(); err != nil {
		t.Fatal(err)
	}
	waketest.Eventually(t, p.Connected, "the publisher to reconnect")
	if err := p.WakeDevices(ctx, "acme", []string{"after"}, "", ""); err != nil {
		t.Fatalf("after reconnecting: %v", err)
	}
	var topics []string
	for _, m := range e.settle(t, rec) {
		topics = append(topics, strings.TrimPrefix(m.Topic, e.prefix+"/acme/"))
	}
	if fmt.Sprint(topics) != "[devices/before/wake devices/after/wake]" {
		t.Errorf("the broker got %v; nothing sent while it was away may arrive later", topics)
	}
	if s := p.Stats(); s != (Stats{Published: 2, Failed: 3}) {
		t.Errorf("stats %+v, want 2 published and 3 failed", s)
	}
}

// A publisher whose broker never answered fails at once and does not
// hold up the server's start or shutdown.
func TestUnreachableBrokerFailsFast(t *testing.T) {
	t.Parallel()
	cfg := Config{Broker: agentwake.Broker{URL: "tcp://127.0.0.1:1"}}
	p, err := Open(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.WakeDevices(context.Background(), "acme", []string{"d1"}, "", ""); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("WakeDevices: %v, want ErrNotConnected", err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.WakeOrg(context.Background(), "acme", 0, "", ""); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v, want ErrClosed", err)
	}
	if s := p.(*MQTT).Stats(); s != (Stats{Failed: 2}) {
		t.Errorf("stats %+v", s)
	}
}

// The token bucket paces large batches: 25 wake-ups at 20/s with a burst
// of 2 cannot take less than (25-2)/20 s. (A lower bound the limiter
// guarantees, not a performance measurement.)
func TestRateLimited(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cfg := e.config()
	cfg.MaxRate = 20
	p := e.open(t, cfg)
	ids := make([]string, 25)
	for i := range ids {
		ids[i] = fmt.Sprintf("d%d", i)
	}
	start := time.Now()
	if err := p.WakeDevices(context.Background(), "acme", ids, "", ""); err != nil {
		t.Fatal(err)
	}
	if took, least := time.Since(start), 1150*time.Millisecond; took < least {
		t.Errorf("25 wake-ups at 20/s took %s, less than %s", took, least)
	}
}

// The caller's context bounds a batch, and Close interrupts one. At 2
// wake-ups a second, eight take over 3 s: the cancellation at 200 ms lands
// in the middle wherever the scheduler puts it.
func TestBatchEndsWithContextAndClose(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cfg := e.config()
	cfg.MaxRate = 2
	p := e.open(t, cfg)
	ids := []string{"a", "b", "c", "d", "e", "f", "g", "h"}
	ctx, cancel := context.WithCancel(context.Background())
	defer time.AfterFunc(200*time.Millisecond, cancel).Stop()
	err := p.WakeDevices(ctx, "acme", ids, "", "")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled batch: %v", err)
	}
	if s := p.Stats(); s.Published+s.Failed != uint64(len(ids)) || s.Failed == 0 {
		t.Errorf("stats %+v do not account for %d wake-ups", s, len(ids))
	}

	done := make(chan error, 1)
	go func() { done <- p.WakeDevices(context.Background(), "acme", ids, "", "") }()
	time.Sleep(200 * time.Millisecond)
	p.Close()
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("batch interrupted by Close: %v, want ErrClosed", err)
		}
	case <-time.After(10 * time.Second): // a hang bound
		t.Fatal("Close did not interrupt a batch")
	}
}

// Two server processes with the same configuration must not evict each
// other from the broker: their client ids differ.
func TestClientIDsUnique(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p1, p2 := e.open(t, e.config()), e.open(t, e.config())
	for range 3 {
		for _, p := range []*MQTT{p1, p2} {
			if err := p.WakeOrg(context.Background(), "acme", 0, "", ""); err != nil {
				t.Fatalf("with two publishers running: %v", err)
			}
		}
	}
	if !p1.Connected() || !p2.Connected() {
		t.Error("one publisher was disconnected by the other")
	}
}

// mqtts:// with a private CA and a client certificate, through a proxy
// that terminates TLS and demands the certificate.
func TestTLS(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	pki := waketest.NewPKI(t)
	proxy := waketest.NewProxy(t, e.addr, pki.Server)
	rec := waketest.Subscribe(t, e.addr, e.prefix+"/#")
	cfg := e.config()
	cfg.URL = "mqtts://" + proxy.Addr()
	cfg.CAFile, cfg.CertFile, cfg.KeyFile = pki.CAFile, pki.ClientCertFile, pki.ClientKeyFile
	p := e.open(t, cfg)
	if err := p.WakeOrg(context.Background(), "acme", 0, ReasonUrgent, ""); err != nil {
		t.Fatal(err)
	}
	if msgs := e.settle(t, rec); len(msgs) != 1 || msgs[0].Topic != e.prefix+"/acme/wake" {
		t.Fatalf("over TLS the broker got %+v", msgs)
	}
}

func TestConfig(t *testing.T) {
	if err := (Config{}).Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	err := Config{TopicPrefix: "+", ClientIDPrefix: "a/b", PublishTimeout: time.Millisecond, MaxRate: -1, MaxInFlight: -1, MaxReconnectInterval: time.Millisecond}.Validate()
	for _, want := range []string{"topic prefix", "client id prefix", "publish timeout", "max rate", "max in flight", "max reconnect interval"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate: %v, want it to name %q", err, want)
		}
	}
	if _, err := NewMQTT(Config{Broker: agentwake.Broker{URL: "ftp://x"}}, Options{}); err == nil {
		t.Error("NewMQTT accepted an ftp URL")
	}
	p, err := Open(Config{}, Options{})
	if _, ok := p.(Nop); !ok || err != nil {
		t.Errorf("Open without a URL = %T, %v; want Nop", p, err)
	}
}

func TestSpreadFor(t *testing.T) {
	for _, tc := range []struct {
		devices int
		rate    float64
		want    time.Duration
	}{
		{100000, 500, 200 * time.Second},
		{1, 500, time.Second},
		{0, 500, 0},
		{10, 0, 0},
		{100_000_000, 1, agentwake.MaxSpread},
	} {
		if got := SpreadFor(tc.devices, tc.rate); got != tc.want {
			t.Errorf("SpreadFor(%d, %g) = %s, want %s", tc.devices, tc.rate, got, tc.want)
		}
	}
}

func TestNopSendsNothing(t *testing.T) {
	var p Publisher = Nop{}
	if err := p.WakeDevices(context.Background(), "acme", []string{"d1"}, ReasonRollout, "r"); err != nil {
		t.Error(err)
	}
	if err := p.WakeOrg(context.Background(), "acme", time.Minute, ReasonRollout, "r"); err != nil {
		t.Error(err)
	}
	if p.Close() != nil || (Nop{}).Stats() != (Stats{}) {
		t.Error("Nop close or stats")
	}
}

// BenchmarkWakeDevices publishes 10,000 per-device wake-ups per iteration
// to the real broker, with the rate limit out of the way, and reports the
// broker-acknowledged throughput.
func BenchmarkWakeDevices(b *testing.B) {
	e := newEnv(b)
	cfg := e.config()
	cfg.MaxRate = 1e6
	p := e.open(b, cfg)
	ids := make([]string, 10000)
	for i := range ids {
		ids[i] = fmt.Sprintf("dev-%05d", i)
	}
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		if err := p.WakeDevices(context.Background(), "acme", ids, ReasonRollout, "bench"); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(ids))/time.Since(start).Seconds(), "msgs/s")
}
