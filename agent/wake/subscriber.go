package wake

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/steward-iot/steward/agent/internal/pacing"
)

// PasswordEnv is the environment variable holding the agent's MQTT
// password (see Broker.LoadPassword).
const PasswordEnv = "STEWARD_AGENT_MQTT_PASSWORD"

// Defaults of Config.
const (
	DefaultMinGap               = 30 * time.Second
	DefaultMaxSpread            = 15 * time.Minute
	DefaultMaxReconnectInterval = 5 * time.Minute
)

// stableAfter is how long a connection must last before the reconnect
// backoff starts over. Without it, a broker that accepts and then drops
// the device at once (another client taking over the same client id, a
// refused subscription) would be redialled about once a second forever.
const stableAfter = time.Minute

// Config configures the device's subscriber. Each field maps to one
// command-line flag of the agent (Broker's fields included); the device's
// organization and id come from its enrollment, in Device.
type Config struct {
	Broker
	// TopicPrefix is the first topic level(s) (default "steward"); it must
	// match the server's.
	TopicPrefix string
	// MinGap is the least time between two early check-ins however many
	// wake-ups arrive (default 30 s, at least 1 s).
	MinGap time.Duration
	// MaxSpread caps the spread a wake-up may ask for (default 15 min, at
	// most MaxSpread). A spread longer than the poll interval achieves
	// nothing, and a forged one could otherwise hold back an early
	// check-in for that long.
	MaxSpread time.Duration
	// MaxReconnectInterval caps the jittered exponential backoff between
	// connection attempts (default 5 min).
	MaxReconnectInterval time.Duration
}

func (c Config) withDefaults() Config {
	if c.TopicPrefix == "" {
		c.TopicPrefix = DefaultTopicPrefix
	}
	if c.MinGap == 0 {
		c.MinGap = DefaultMinGap
	}
	if c.MaxSpread == 0 {
		c.MaxSpread = DefaultMaxSpread
	}
	if c.MaxReconnectInterval == 0 {
		c.MaxReconnectInterval = DefaultMaxReconnectInterval
	}
	return c
}

// Validate reports every problem with c (after defaults), without
// touching the network or the TLS files.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if err := CheckPrefix(c.TopicPrefix); err != nil {
		errs = append(errs, err)
	}
	if c.MinGap < time.Second {
		errs = append(errs, fmt.Errorf("wake: min gap %s: must be at least 1s, or forged wake-ups could make the device check in that often", c.MinGap))
	}
	if c.MaxSpread < 0 || c.MaxSpread > MaxSpread {
		errs = append(errs, fmt.Errorf("wake: max spread %s: must be between 0 and %s", c.MaxSpread, MaxSpread))
	}
	if c.MaxReconnectInterval < time.Second {
		errs = append(errs, fmt.Errorf("wake: max reconnect interval %s: must be at least 1s", c.MaxReconnectInterval))
	}
	return errors.Join(errs...)
}

// Device names the subscribing device, as enrolled.
type Device struct {
	Org string // the organization's slug
	ID  string // the device id the server assigned
}

// Options are the subscriber's collaborators; the zero value is usable.
type Options struct {
	// Logger receives what happens; nil discards it.
	Logger *slog.Logger
	// Clock and Rand are for tests. Clock defaults to time.Now; Rand
	// returns a number in [0, 1) for the spread and backoff jitter
	// (default math/rand/v2).
	Clock func() time.Time
	Rand  func() float64

	// handled, for tests, sees every payload after it was handled.
	handled func(payload []byte)
}

// Stats counts what a subscriber saw; every field only grows.
type Stats struct {
	Received  uint64 // messages the broker delivered
	Invalid   uint64 // refused: too large, malformed, other version, retained or on a foreign topic
	Coalesced uint64 // valid, but folded into an early check-in already scheduled
	Woken     uint64 // callbacks made
	Connects  uint64 // connections that got their subscriptions
}

// Subscriber listens for wake-ups until Close or the context given to
// Start ends. MQTTSubscriber and Nop implement it.
type Subscriber interface {
	Stats() Stats
	Close() error
}

// Nop is the subscriber when MQTT is off: nothing ever wakes the device
// early, and polling alone brings it up to date.
type Nop struct{}

func (Nop) Stats() Stats { return Stats{} }
func (Nop) Close() error { return nil }

// Start returns Nop when cfg has no broker URL, and otherwise an
// MQTTSubscriber that connects in the background, so a broker that is
// down delays nothing: the device polls meanwhile and the subscriber
// keeps retrying. Start fails only on configuration errors (invalid ids
// or settings, unreadable TLS files).
//
// onWake is called with the delay after which the device should check
// in; the caller cuts its current sleep to at most that delay. Calls come
// one at a time from the MQTT client's goroutine: onWake must not block
// (a non-blocking send on a buffered channel is the usual way).
func Start(ctx context.Context, cfg Config, dev Device, onWake func(delay time.Duration), opts Options) (Subscriber, error) {
	if !cfg.Enabled() {
		return Nop{}, nil
	}
	return NewMQTT(ctx, cfg, dev, onWake, opts)
}

// MQTTSubscriber is the MQTT implementation of Subscriber.
//
// It uses a clean session: the broker keeps nothing for an offline
// device, so a fleet that reconnects after a broker restart or a long
// outage is not handed a backlog of stale wake-ups all at once (polling
// already covers what it missed), and the broker holds no per-device
// state for a hundred thousand devices. It therefore subscribes again on
// every connection, and it ignores retained messages, which would
// otherwise wake the device on every reconnection.
type MQTTSubscriber struct {
	cfg         Config
	log         *slog.Logger
	clock       func() time.Time
	rand        func() float64
	onWake      func(time.Duration)
	handled     func([]byte)
	client      mqtt.Client
	deviceTopic string
	orgTopic    string
	gate        gate
	lost        chan error
	connected   atomic.Bool

	received, invalid, coalesced, woken, connects atomic.Uint64

	// cbMu serializes onWake with the end of the subscriber, after which
	// (stopped) no call is made.
	cbMu    sync.Mutex
	stopped bool

	logMu       sync.Mutex
	lastWarn    time.Time
	quietInvals uint64

	cancel    context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once
}

// NewMQTT starts an MQTTSubscriber whatever cfg.URL says (Start is the
// usual entry point).
func NewMQTT(ctx context.Context, cfg Config, dev Device, onWake func(delay time.Duration), opts Options) (*MQTTSubscriber, error) {
	if onWake == nil {
		return nil, errors.New("wake: Start needs an onWake callback")
	}
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	deviceTopic, err := DeviceTopic(cfg.TopicPrefix, dev.Org, dev.ID)
	if err != nil {
		return nil, err
	}
	orgTopic, _ := OrgTopic(cfg.TopicPrefix, dev.Org) // valid if deviceTopic is
	// The device id is the client id: unique in the fleet, and what a
	// broker ACL can bind the device's own topic to.
	popts, err := cfg.ClientOptions(dev.ID)
	if err != nil {
		return nil, err
	}
	s := &MQTTSubscriber{
		cfg:         cfg,
		log:         opts.Logger,
		clock:       opts.Clock,
		rand:        opts.Rand,
		onWake:      onWake,
		handled:     opts.handled,
		deviceTopic: deviceTopic,
		orgTopic:    orgTopic,
		gate:        gate{minGap: cfg.MinGap},
		lost:        make(chan error, 1),
		done:        make(chan struct{}),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("component", "wake", "topic", deviceTopic)
	if s.clock == nil {
		s.clock = time.Now
	}
	if s.rand == nil {
		s.rand = rand.Float64
	}
	popts.SetCleanSession(true).
		SetAutoReconnect(false). // our loop reconnects, with jitter paho lacks
		SetConnectRetry(false).
		SetOrderMatters(true).
		SetDefaultPublishHandler(s.onMessage).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			s.connected.Store(false)
			select {
			case s.lost <- err:
			default:
			}
		})
	s.client = mqtt.NewClient(popts)
	ctx, s.cancel = context.WithCancel(ctx)
	go s.run(ctx)
	return s, nil
}

// Stats returns the counters.
func (s *MQTTSubscriber) Stats() Stats {
	return Stats{
		Received:  s.received.Load(),
		Invalid:   s.invalid.Load(),
		Coalesced: s.coalesced.Load(),
		Woken:     s.woken.Load(),
		Connects:  s.connects.Load(),
	}
}

// Connected reports whether the subscriber is connected and subscribed.
func (s *MQTTSubscriber) Connected() bool { return s.connected.Load() }

// Close disconnects and waits for the background loop to end; no onWake
// call happens after it returns. It is safe to call more than once.
func (s *MQTTSubscriber) Close() error {
	s.closeOnce.Do(s.cancel)
	<-s.done
	return nil
}

func (s *MQTTSubscriber) run(ctx context.Context) {
	defer close(s.done)
	defer func() {
		s.client.Disconnect(250)
		s.connected.Store(false)
		s.cbMu.Lock()
		s.stopped = true
		s.cbMu.Unlock()
	}()
	failures := 0
	for {
		start := time.Now() // real time: the timers below are real too
		err := s.session(ctx)
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) >= stableAfter {
			failures = 0
		}
		wait := min(pacing.Backoff(failures, s.unit()), s.cfg.MaxReconnectInterval)
		failures++
		s.log.Warn("MQTT connection down; polling continues meanwhile", "err", err, "retry_in", wait.Round(time.Millisecond))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// session connects, subscribes and waits until the connection is lost or
// ctx ends.
func (s *MQTTSubscriber) session(ctx context.Context) error {
	select { // a loss reported by the previous connection
	case <-s.lost:
	default:
	}
	tok := s.client.Connect()
	if err := s.await(ctx, tok); err != nil {
		return fmt.Errorf("connecting: %w", err)
	}
	filters := map[string]byte{s.deviceTopic: 1, s.orgTopic: 1}
	sub := s.client.SubscribeMultiple(filters, s.onMessage)
	if err := s.await(ctx, sub); err != nil {
		s.client.Disconnect(0)
		return fmt.Errorf("subscribing: %w", err)
	}
	for topic, code := range sub.(*mqtt.SubscribeToken).Result() {
		if code > 2 { // 0x80: failure
			s.client.Disconnect(0)
			return fmt.Errorf("the broker refused the subscription to %s (code %#x); check its ACL", topic, code)
		}
	}
	s.connected.Store(true)
	s.connects.Add(1)
	s.log.Info("listening for wake-ups", "org_topic", s.orgTopic)
	select {
	case <-ctx.Done():
		s.connected.Store(false)
		return ctx.Err()
	case err := <-s.lost:
		return fmt.Errorf("connection lost: %w", err)
	}
}

// await waits for a token, giving up when ctx ends (after letting a
// connection attempt finish, so Disconnect finds a settled client).
func (s *MQTTSubscriber) await(ctx context.Context, tok mqtt.Token) error {
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		tok.WaitTimeout(s.cfg.Broker.withDefaults().ConnectTimeout)
		return ctx.Err()
	}
}

// unit returns s.rand() forced into [0, 1): an injected source must not
// turn into negative or oversized delays.
func (s *MQTTSubscriber) unit() float64 {
	r := s.rand()
	if !(r >= 0 && r < 1) { // also catches NaN
		return 0
	}
	return r
}

func (s *MQTTSubscriber) onMessage(_ mqtt.Client, msg mqtt.Message) {
	if s.handled != nil {
		defer s.handled(msg.Payload())
	}
	s.received.Add(1)
	now := s.clock()
	if err := s.check(msg); err != nil {
		s.invalid.Add(1)
		s.warnInvalid(now, err)
		return
	}
	w, err := ParsePayload(msg.Payload())
	if err != nil {
		s.invalid.Add(1)
		s.warnInvalid(now, err)
		return
	}
	spread := min(w.Spread, s.cfg.MaxSpread)
	jitter := time.Duration(s.unit() * float64(spread))
	delay, ok := s.gate.admit(now, jitter)
	if !ok {
		s.coalesced.Add(1)
		return
	}
	s.cbMu.Lock()
	defer s.cbMu.Unlock()
	if s.stopped {
		return
	}
	s.woken.Add(1)
	s.log.Debug("woken", "reason", w.Reason, "rollout_id", w.RolloutID, "delay", delay)
	s.onWake(delay)
}

func (s *MQTTSubscriber) check(msg mqtt.Message) error {
	if t := msg.Topic(); t != s.deviceTopic && t != s.orgTopic {
		return fmt.Errorf("message on unexpected topic %q", truncate(t, 200))
	}
	if msg.Retained() {
		return errors.New("retained wake-up ignored (it would wake the device on every reconnection); publish wake-ups without the retain flag")
	}
	return nil
}

// warnInvalid logs at most one warning a minute: a flood of forged
// messages must not fill a device's flash with logs.
func (s *MQTTSubscriber) warnInvalid(now time.Time, err error) {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	if !s.lastWarn.IsZero() && now.Sub(s.lastWarn) < time.Minute {
		s.quietInvals++
		return
	}
	s.log.Warn("ignoring an invalid wake-up", "err", err, "suppressed_since_last_warning", s.quietInvals)
	s.lastWarn, s.quietInvals = now, 0
}
