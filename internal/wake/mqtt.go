package wake

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/time/rate"

	agentwake "github.com/steward-iot/steward/agent/wake"
)

// PasswordEnv is the environment variable holding the server's MQTT
// password (see agent/wake.Broker.LoadPassword).
const PasswordEnv = "STEWARD_MQTT_PASSWORD"

// Defaults of Config.
const (
	DefaultClientIDPrefix       = "steward-server"
	DefaultPublishTimeout       = 10 * time.Second
	DefaultMaxRate              = 500 // matches the server's default check-in budget
	DefaultMaxInFlight          = 256
	DefaultMaxReconnectInterval = time.Minute
)

// Config configures the publisher. Each field maps to one flag of
// `steward serve` (Broker's fields included); the password comes from
// PasswordEnv or Broker.PasswordFile through Broker.LoadPassword.
type Config struct {
	agentwake.Broker
	// TopicPrefix is the first topic level(s) (default "steward"); agents
	// must use the same.
	TopicPrefix string
	// ClientIDPrefix starts the MQTT client id; a random suffix makes it
	// unique per process, since a broker disconnects the older of two
	// clients with one id and two servers would evict each other forever.
	ClientIDPrefix string
	// PublishTimeout bounds the wait for the broker's acknowledgement of
	// one wake-up (default 10 s).
	PublishTimeout time.Duration
	// MaxRate bounds wake-ups published per second (default 500). Every
	// per-device wake-up becomes a check-in at once, so keep it at or below
	// the server's check-in budget (--checkin-max-rate).
	MaxRate float64
	// MaxInFlight bounds wake-ups sent but not yet acknowledged (default
	// 256).
	MaxInFlight int
	// MaxReconnectInterval caps the backoff between reconnection attempts
	// (default 1 min).
	MaxReconnectInterval time.Duration
}

func (c Config) withDefaults() Config {
	if c.TopicPrefix == "" {
		c.TopicPrefix = agentwake.DefaultTopicPrefix
	}
	if c.ClientIDPrefix == "" {
		c.ClientIDPrefix = DefaultClientIDPrefix
	}
	if c.PublishTimeout == 0 {
		c.PublishTimeout = DefaultPublishTimeout
	}
	if c.MaxRate == 0 {
		c.MaxRate = DefaultMaxRate
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.MaxReconnectInterval == 0 {
		c.MaxReconnectInterval = DefaultMaxReconnectInterval
	}
	return c
}

// Validate reports every problem with c's own settings (after defaults);
// the broker settings are checked by NewMQTT.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if err := agentwake.CheckPrefix(c.TopicPrefix); err != nil {
		errs = append(errs, err)
	}
	if !validClientIDPrefix(c.ClientIDPrefix) {
		errs = append(errs, fmt.Errorf("wake: MQTT client id prefix %q: use 1 to 64 letters, digits, dots, dashes and underscores", c.ClientIDPrefix))
	}
	if c.PublishTimeout < 100*time.Millisecond || c.PublishTimeout > 5*time.Minute {
		errs = append(errs, fmt.Errorf("wake: MQTT publish timeout %s: must be between 100ms and 5m", c.PublishTimeout))
	}
	if !(c.MaxRate >= 1 && c.MaxRate <= 1e6) {
		errs = append(errs, fmt.Errorf("wake: MQTT max rate %g: must be between 1 and 1000000 wake-ups per second", c.MaxRate))
	}
	if c.MaxInFlight < 1 || c.MaxInFlight > 10000 {
		errs = append(errs, fmt.Errorf("wake: MQTT max in flight %d: must be between 1 and 10000", c.MaxInFlight))
	}
	if c.MaxReconnectInterval < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("wake: MQTT max reconnect interval %s: must be at least 100ms", c.MaxReconnectInterval))
	}
	return errors.Join(errs...)
}

func validClientIDPrefix(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range []byte(s) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// Options are the publisher's collaborators; the zero value is usable.
type Options struct {
	Logger *slog.Logger     // nil discards
	Clock  func() time.Time // the payloads' "at"; default time.Now
}

// Open returns the MQTT publisher when cfg names a broker, and Nop when
// MQTT is off.
func Open(cfg Config, opts Options) (Publisher, error) {
	if !cfg.Enabled() {
		return Nop{}, nil
	}
	return NewMQTT(cfg, opts)
}

// MQTT publishes wake-ups to an MQTT broker. It connects in the
// background and reconnects by itself; while it is not connected, wake-ups
// fail at once with ErrNotConnected instead of queueing, so a caller is
// never held up by a broker that is down (and a stale queue is not sent
// later, when it means nothing).
type MQTT struct {
	cfg     Config
	log     *slog.Logger
	clock   func() time.Time
	client  mqtt.Client
	limiter *rate.Limiter

	published, failed atomic.Uint64

	// stop ends batches in progress when Close is called; mu is held for
	// reading while publishing, so Close returns only after they ended.
	stop   context.Context
	cancel context.CancelFunc
	mu     sync.RWMutex
	closed bool
}

// NewMQTT validates cfg and starts connecting in the background; a broker
// that is down is not an error here (see Connected).
func NewMQTT(cfg Config, opts Options) (*MQTT, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	suffix := make([]byte, 6)
	if _, err := rand.Read(suffix); err != nil {
		return nil, err
	}
	clientID := cfg.ClientIDPrefix + "-" + hex.EncodeToString(suffix)
	popts, err := cfg.ClientOptions(clientID)
	if err != nil {
		return nil, err
	}
	p := &MQTT{
		cfg:     cfg,
		log:     opts.Logger,
		clock:   opts.Clock,
		limiter: rate.NewLimiter(rate.Limit(cfg.MaxRate), max(1, int(cfg.MaxRate/10))),
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	p.log = p.log.With("component", "wake", "client_id", clientID)
	if p.clock == nil {
		p.clock = time.Now
	}
	p.stop, p.cancel = context.WithCancel(context.Background())
	popts.SetCleanSession(true) // the server subscribes to nothing
	popts.SetAutoReconnect(true)
	popts.SetMaxReconnectInterval(cfg.MaxReconnectInterval)
	popts.SetConnectRetry(true)
	popts.SetConnectRetryInterval(min(cfg.MaxReconnectInterval, 10*time.Second))
	popts.SetOnConnectHandler(func(mqtt.Client) { p.log.Info("connected to the MQTT broker") })
	popts.SetConnectionLostHandler(func(_ mqtt.Client, err error) {
		p.log.Warn("lost the MQTT broker; wake-ups fail until it is back, polling still brings devices up to date", "err", err)
	})
	p.client = mqtt.NewClient(popts)
	p.client.Connect() // retries by itself until Close
	return p, nil
}

// Connected reports whether the publisher has a live broker connection.
func (p *MQTT) Connected() bool { return p.client.IsConnectionOpen() }

// Stats returns the counters.
func (p *MQTT) Stats() Stats {
	return Stats{Published: p.published.Load(), Failed: p.failed.Load()}
}

// Close disconnects, waiting up to a quarter second for acknowledgements
// in flight. Later wake-ups fail with ErrClosed.
func (p *MQTT) Close() error {
	p.cancel()
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.closed {
		p.closed = true
		p.client.Disconnect(250)
	}
	return nil
}

func (p *MQTT) now() time.Time { return p.clock().UTC().Truncate(time.Second) }

// WakeDevices implements Publisher.
func (p *MQTT) WakeDevices(ctx context.Context, org string, deviceIDs []string, reason, rolloutID string) error {
	topics, payload, err := devicePlan(p.cfg.TopicPrefix, org, deviceIDs, reason, rolloutID, p.now())
	if err != nil {
		return err
	}
	if len(topics) == 0 {
		return nil
	}
	if err := p.publish(ctx, topics, payload); err != nil {
		return fmt.Errorf("wake: waking devices of %s: %w", org, err)
	}
	return nil
}

// WakeOrg implements Publisher.
func (p *MQTT) WakeOrg(ctx context.Context, org string, spread time.Duration, reason, rolloutID string) error {
	topic, payload, err := orgPlan(p.cfg.TopicPrefix, org, spread, reason, rolloutID, p.now())
	if err != nil {
		return err
	}
	if err := p.publish(ctx, []string{topic}, payload); err != nil {
		return fmt.Errorf("wake: waking organization %s: %w", org, err)
	}
	return nil
}

// publish sends payload to every topic, paced by the limiter, with at
// most MaxInFlight unacknowledged. It stops at the first wake-up that
// cannot be sent or is not acknowledged in time (the broker is then down
// or stalled, and going on would only keep the caller waiting); the rest
// count as failed.
func (p *MQTT) publish(ctx context.Context, topics []string, payload []byte) error {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		p.failed.Add(uint64(len(topics)))
		return ErrClosed
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(p.stop, cancel)()
	var (
		window []inflight
		ok     int
		stop   error
	)
	settle := func(f inflight) {
		if stop != nil {
			return // sent, but no longer waited for: counts as failed
		}
		if err := p.await(ctx, f); err != nil {
			stop = err
			return
		}
		ok++
		p.published.Add(1)
	}
	for _, topic := range topics {
		if err := p.limiter.Wait(ctx); err != nil {
			stop = err
			break
		}
		if !p.client.IsConnectionOpen() {
			stop = ErrNotConnected
			break
		}
		tok := p.client.Publish(topic, 1, false, payload)
		window = append(window, inflight{tok: tok, deadline: time.Now().Add(p.cfg.PublishTimeout)})
		if len(window) >= p.cfg.MaxInFlight {
			settle(window[0])
			window = window[1:]
		}
		if stop != nil {
			break
		}
	}
	for _, f := range window {
		settle(f)
	}
	p.failed.Add(uint64(len(topics) - ok))
	if stop != nil && p.stop.Err() != nil {
		stop = ErrClosed
	}
	if stop != nil {
		return fmt.Errorf("%d of %d wake-ups not confirmed: %w", len(topics)-ok, len(topics), stop)
	}
	return nil
}

// inflight is a wake-up sent and not yet acknowledged.
type inflight struct {
	tok      mqtt.Token
	deadline time.Time
}

// await waits for the broker's acknowledgement of f until its deadline.
func (p *MQTT) await(ctx context.Context, f inflight) error {
	t := time.NewTimer(time.Until(f.deadline))
	defer t.Stop()
	select {
	case <-f.tok.Done():
		if err := f.tok.Error(); err != nil {
			return fmt.Errorf("publishing: %w", err)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return fmt.Errorf("the broker did not acknowledge a wake-up within %s", p.cfg.PublishTimeout)
	}
}
