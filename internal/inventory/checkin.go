package inventory

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/steward-iot/steward/agent/proto"
	"github.com/steward-iot/steward/internal/access"
	"github.com/steward-iot/steward/internal/audit"
	"github.com/steward-iot/steward/internal/clock"
	"github.com/steward-iot/steward/internal/inventory/query"
)

// CheckinConfig paces the fleet.
type CheckinConfig struct {
	// Interval is the base time between check-ins of one device.
	Interval time.Duration
	// MaxRate caps the fleet's check-ins per second: with more active
	// devices than Interval×MaxRate the interval stretches to fit.
	MaxRate float64
	// FlushEvery is how often batched last-seen updates are written.
	FlushEvery time.Duration
}

// Checkins records device check-ins. A report whose software is unchanged
// costs no write of its own: last-seen and state are batched.
type Checkins struct {
	store Store
	clock clock.Clock
	cfg   CheckinConfig
	log   *slog.Logger

	mu      sync.Mutex
	pending map[string]Seen
	active  int // active devices, refreshed by Run

	onSoftware func(ctx context.Context, d Device, installed proto.Installed) error
}

// OnSoftwareChange registers fn to run after a device's new software is
// recorded (vulnerability exposure is re-evaluated there). Its error is
// logged, not returned to the device: the report itself was stored.
func (c *Checkins) OnSoftwareChange(fn func(ctx context.Context, d Device, installed proto.Installed) error) {
	c.onSoftware = fn
}

// NewCheckins returns a check-in recorder; call Run to flush batches.
func NewCheckins(s Store, c clock.Clock, cfg CheckinConfig, log *slog.Logger) *Checkins {
	if cfg.Interval <= 0 {
		cfg.Interval = 5 * time.Minute
	}
	if cfg.MaxRate <= 0 {
		cfg.MaxRate = 500
	}
	if cfg.FlushEvery <= 0 {
		cfg.FlushEvery = 2 * time.Second
	}
	if c == nil {
		c = clock.Real
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Checkins{store: s, clock: c, cfg: cfg, log: log, pending: map[string]Seen{}}
}

// Checkin validates and records a report from d, and tells it what next.
func (c *Checkins) Checkin(ctx context.Context, d Device, req proto.CheckinRequest) (proto.CheckinResponse, error) {
	if err := ValidateCheckin(req); err != nil {
		return proto.CheckinResponse{}, err
	}
	now := c.clock.Now()
	if hash := SoftwareHash(req.Installed); hash != d.SoftwareHash {
		comps := make([]Component, len(req.Installed.Components))
		for i, x := range req.Installed.Components {
			comps[i] = Component(x)
		}
		err := c.store.Write(ctx, func(tx Tx) error {
			if err := tx.RecordSoftware(ctx, Software{DeviceID: d.ID, Version: req.Installed.Version,
				VersionKey: query.VersionKey(req.Installed.Version), Hash: hash, Components: comps, At: now}); err != nil {
				return err
			}
			_, err := tx.AppendAudit(ctx, audit.Record{OrgID: d.OrgID, Actor: access.Actor{Kind: access.ActorDevice, ID: d.ID, Name: d.Serial},
				Action: "device.software", TargetType: "device", TargetID: d.ID,
				Details: map[string]any{"from": d.InstalledVersion, "to": req.Installed.Version, "components": len(comps)}})
			return err
		})
		if err != nil {
			return proto.CheckinResponse{}, err
		}
		if c.onSoftware != nil {
			if err := c.onSoftware(ctx, d, req.Installed); err != nil {
				c.log.WarnContext(ctx, "after a software change", "device_id", d.ID, "err", err)
			}
		}
	}
	c.mu.Lock()
	c.pending[d.ID] = Seen{DeviceID: d.ID, At: now, State: State(req.State)}
	c.mu.Unlock()
	return proto.CheckinResponse{Action: proto.ActionNone, PollIntervalSeconds: int(c.interval() / time.Second), ServerTime: now}, nil
}

// interval stretches the base interval when the fleet would otherwise
// exceed MaxRate, with ±10% jitter so devices do not synchronize.
func (c *Checkins) interval() time.Duration {
	c.mu.Lock()
	active := c.active
	c.mu.Unlock()
	iv := c.cfg.Interval
	if need := time.Duration(float64(active) / c.cfg.MaxRate * float64(time.Second)); need > iv {
		iv = need
	}
	jitter := time.Duration((rand.Float64()*0.2 - 0.1) * float64(iv))
	return max(iv+jitter, time.Second)
}

// Flush writes batched last-seen updates in one transaction.
func (c *Checkins) Flush(ctx context.Context) error {
	c.mu.Lock()
	batch := c.pending
	c.pending = make(map[string]Seen, len(batch))
	c.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	seen := make([]Seen, 0, len(batch))
	for _, s := range batch {
		seen = append(seen, s)
	}
	err := c.store.Write(ctx, func(tx Tx) error { return tx.TouchDevices(ctx, seen) })
	if err != nil {
		// Put the batch back (newer reports win) so nothing is lost.
		c.mu.Lock()
		for _, s := range seen {
			if cur, ok := c.pending[s.DeviceID]; !ok || cur.At.Before(s.At) {
				c.pending[s.DeviceID] = s
			}
		}
		c.mu.Unlock()
	}
	return err
}

// Run flushes batches and refreshes the fleet size until ctx ends, then
// flushes once more.
func (c *Checkins) Run(ctx context.Context) {
	flush := time.NewTicker(c.cfg.FlushEvery)
	defer flush.Stop()
	count := time.NewTicker(30 * time.Second)
	defer count.Stop()
	c.refreshActive(ctx)
	for {
		select {
		case <-ctx.Done():
			if err := c.Flush(context.WithoutCancel(ctx)); err != nil {
				c.log.Error("final last-seen flush failed", "err", err)
			}
			return
		case <-flush.C:
			if err := c.Flush(ctx); err != nil {
				c.log.Warn("last-seen flush failed; will retry", "err", err)
			}
		case <-count.C:
			c.refreshActive(ctx)
		}
	}
}

func (c *Checkins) refreshActive(ctx context.Context) {
	err := c.store.Read(ctx, func(tx Tx) error {
		n, err := tx.CountDevices(ctx, proto.StatusActive)
		c.mu.Lock()
		c.active = n
		c.mu.Unlock()
		return err
	})
	if err != nil && ctx.Err() == nil {
		c.log.Warn("counting active devices failed", "err", err)
	}
}
