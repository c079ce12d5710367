// Package runner is the agent's main loop: it keeps the device enrolled
// and checks in with the server at the pace the server asks for, backing
// off exponentially while the server or the network fails. A vendor's
// agent calls Run with its own Reporter, or uses FileReporter.
package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/steward-iot/steward/agent/atomicfile"
	"github.com/steward-iot/steward/agent/client"
	"github.com/steward-iot/steward/agent/identity"
	"github.com/steward-iot/steward/agent/internal/pacing"
	"github.com/steward-iot/steward/agent/proto"
	"github.com/steward-iot/steward/agent/update"
	"github.com/steward-iot/steward/agent/wake"
)

// StateFile is the name of the agent's state inside the state directory.
const StateFile = "state.json"

// defaultPollInterval applies until the server names one.
const defaultPollInterval = 15 * time.Minute

// defaultPendingWait applies when the server does not say how long a
// pending device should wait.
const defaultPendingWait = time.Minute

// ErrRefused is wrapped by the error Run returns when the server refuses
// the device for good (rejected or revoked): retrying, or restarting the
// agent, cannot help until an operator acts.
var ErrRefused = errors.New("the server refuses this device")

// errStop stops Run: the device's own setup is broken.
var errStop = errors.New("runner: cannot go on")

// errNoEnrollInfo stops Run: waiting cannot supply what the config lacks.
var errNoEnrollInfo = errors.New("the device is not enrolled yet, and enrolling needs a hardware id and an enrollment token or an org")

// Reporter gathers what the device reports at check-in.
type Reporter interface {
	Report(ctx context.Context) (proto.CheckinRequest, error)
}

// Config configures Run.
type Config struct {
	ServerURL string
	// StateDir holds the device key and StateFile; it must persist across
	// reboots, or the device loses its identity.
	StateDir string
	// Algorithm is the key algorithm of a new device key; empty means
	// Ed25519.
	Algorithm identity.Algorithm
	// Enroll describes the device at enrollment, which happens once;
	// afterwards these fields are unused. An empty Serial becomes the
	// first 16 hex digits of the key id.
	Enroll   client.EnrollParams
	Reporter Reporter

	// Updates, if set, installs what the server assigns: the runner calls
	// Resume once before the first check-in (finishing an update a reboot
	// or power cut interrupted) and Update when a check-in answers
	// "update". Build it with NewUpdates, which needs the runner's client.
	Updates func(c *client.Client, deviceID string) (*update.Updater, error)

	// Wake, with a broker URL, subscribes to MQTT wake-ups once the
	// device is enrolled: a wake-up (rate-limited by package wake) cuts the
	// current wait short. WakeOrg is the organization's slug in topics.
	Wake    wake.Config
	WakeOrg string
	// Busy, if set, says the device should put off soft updates now (a
	// user is busy, a job runs); they are installed anyway once their
	// deadline passes. Forced updates never wait.
	Busy func() bool

	// HTTPClient, UserAgent: see client.Options.
	HTTPClient *http.Client
	UserAgent  string
	// Logger receives what happens; nil discards it.
	Logger *slog.Logger

	// Clock, Sleep and Rand are for tests. Clock defaults to time.Now.
	Clock func() time.Time
	// Sleep waits d or until ctx is done, returning ctx.Err() then.
	Sleep func(ctx context.Context, d time.Duration) error
	// Rand returns a number in [0, 1) for jitter; default math/rand/v2.
	Rand func() float64
}

// state is what the agent keeps in StateFile between runs.
type state struct {
	DeviceID string `json:"device_id,omitempty"`
	// Enrolled is true once the server knows the device's key, even while
	// it is pending.
	Enrolled bool `json:"enrolled"`
	// PollIntervalSeconds is the server's last requested interval.
	PollIntervalSeconds int `json:"poll_interval_seconds,omitempty"`
}

type runner struct {
	cfg     Config
	id      *identity.Identity
	client  *client.Client
	log     *slog.Logger
	state   state
	updates *update.Updater // nil until enrolled, or without Config.Updates
	resumed bool
	wakeSub wake.Subscriber    // nil until enrolled, or without Config.Wake
	wakeCh  chan time.Duration // wake-ups from wakeSub
}

// Run enrolls the device if it is not yet enrolled and then checks in until
// ctx is done, when it returns nil. It returns an error only when it cannot
// go on: the state directory or key is unusable, enrollment lacks
// information, or the server refuses the device (wrapping ErrRefused).
// Network and server failures are retried with backoff.
func Run(ctx context.Context, cfg Config) error {
	if cfg.ServerURL == "" || cfg.StateDir == "" || cfg.Reporter == nil {
		return errors.New("runner: ServerURL, StateDir and Reporter are required")
	}
	if cfg.Algorithm == "" {
		cfg.Algorithm = identity.Ed25519
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Sleep == nil {
		cfg.Sleep = sleep
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Float64
	}
	id, created, err := identity.LoadOrCreate(cfg.StateDir, cfg.Algorithm)
	if err != nil {
		return err
	}
	if created {
		cfg.Logger.Info("generated a new device key", "key_id", id.KeyID())
	}
	if cfg.Enroll.Serial == "" {
		cfg.Enroll.Serial = id.KeyID()[:16]
	}
	r := &runner{
		cfg: cfg,
		id:  id,
		client: client.New(cfg.ServerURL, id, client.Options{
			HTTPClient: cfg.HTTPClient, Clock: cfg.Clock, UserAgent: cfg.UserAgent,
		}),
		log: cfg.Logger.With("key_id", id.KeyID()),
	}
	if err := r.loadState(); err != nil {
		return err
	}
	defer func() {
		if r.wakeSub != nil {
			_ = r.wakeSub.Close()
		}
	}()
	err = r.loop(ctx)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// sleep waits d, or less when a wake-up arrives: then it waits only the
// wake-up's spread delay.
func (r *runner) sleep(ctx context.Context, d time.Duration) error {
	if r.wakeCh == nil {
		return r.cfg.Sleep(ctx, d)
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	start := r.cfg.Clock()
	go func() { done <- r.cfg.Sleep(sctx, d) }()
	select {
	case err := <-done:
		return err
	case delay := <-r.wakeCh:
		cancel()
		<-done
		r.log.Info("woken up to check in", "delay", delay)
		// Never later than the check-in that was due anyway.
		return r.cfg.Sleep(ctx, max(0, min(delay, d-r.cfg.Clock().Sub(start))))
	}
}

// startWake subscribes to wake-ups once the device has an id.
func (r *runner) startWake(ctx context.Context) {
	if r.wakeSub != nil || !r.cfg.Wake.Enabled() || r.state.DeviceID == "" {
		return
	}
	ch := make(chan time.Duration, 1)
	sub, err := wake.Start(ctx, r.cfg.Wake, wake.Device{Org: r.cfg.WakeOrg, ID: r.state.DeviceID}, func(delay time.Duration) {
		select {
		case ch <- delay:
		default: // one pending wake-up is enough
		}
	}, wake.Options{Logger: r.log})
	if err != nil {
		// Polling still works; say so once.
		r.log.Warn("not subscribing to wake-ups", "err", err)
		r.wakeSub = wake.Nop{}
		return
	}
	r.wakeSub, r.wakeCh = sub, ch
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (r *runner) statePath() string { return filepath.Join(r.cfg.StateDir, StateFile) }

func (r *runner) loadState() error {
	b, err := os.ReadFile(r.statePath())
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("runner: %w", err)
	}
	if err := json.Unmarshal(b, &r.state); err != nil {
		// Enrolling again with the same key is safe and restores the rest.
		r.log.Warn("ignoring unreadable state; enrolling again", "path", r.statePath(), "err", err)
		r.state = state{}
	}
	return nil
}

func (r *runner) saveState(s state) error {
	if s == r.state {
		return nil // spare the flash a write
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(r.statePath(), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("runner: saving state: %w", err)
	}
	r.state = s
	return nil
}

func (r *runner) loop(ctx context.Context) error {
	var wait time.Duration
	if r.state.Enrolled && r.state.PollIntervalSeconds > 0 {
		// A fleet that restarts together, e.g. after a power cut, would
		// otherwise check in all at once.
		wait = time.Duration(r.cfg.Rand() * float64(time.Duration(r.state.PollIntervalSeconds)*time.Second) / 10)
	}
	failures := 0
	for {
		if err := r.sleep(ctx, wait); err != nil {
			return err
		}
		next, err := r.step(ctx)
		switch {
		case err == nil:
			failures, wait = 0, next
		case errors.Is(err, ErrRefused) || errors.Is(err, errNoEnrollInfo) || errors.Is(err, errStop) || ctx.Err() != nil:
			return err
		default:
			wait = pacing.Backoff(failures, r.cfg.Rand())
			failures++
			var ae *client.APIError
			if errors.As(err, &ae) {
				wait = max(wait, ae.RetryAfter)
			}
			r.log.Warn("retrying after an error", "err", err, "wait", wait.Round(time.Millisecond), "failures", failures)
		}
	}
}

// step does what the device needs next, enrolling or checking in, and
// returns how long to wait before the next step.
func (r *runner) step(ctx context.Context) (time.Duration, error) {
	if !r.state.Enrolled {
		return r.enroll(ctx)
	}
	r.startWake(ctx)
	if err := r.startUpdates(ctx); err != nil {
		return 0, err
	}
	report, err := r.cfg.Reporter.Report(ctx)
	if err != nil {
		return 0, fmt.Errorf("gathering the check-in report: %w", err)
	}
	if r.updates != nil {
		// What runs is what the installer booted, whatever files say.
		if slot, err := r.updates.Running(ctx); err == nil && slot.Version != "" {
			report.Installed.Version = slot.Version
		}
	}
	resp, err := r.client.Checkin(ctx, report)
	var ae *client.APIError
	switch {
	case err == nil:
	case client.IsCode(err, proto.CodeDevicePending):
		wait := defaultPendingWait
		if errors.As(err, &ae) && ae.RetryAfter > 0 {
			wait = ae.RetryAfter
		}
		r.log.Info("waiting for an operator to accept the device", "device_id", r.state.DeviceID, "wait", wait)
		return wait, nil
	case client.IsCode(err, proto.CodeDeviceRejected):
		return 0, r.refused(r.state.DeviceID, "an operator rejected its enrollment", err)
	case client.IsCode(err, proto.CodeDeviceRevoked):
		return 0, r.refused(r.state.DeviceID, "its credentials were revoked", err)
	case client.IsCode(err, proto.CodeUnknownDevice):
		// E.g. the agent now talks to another server: enroll there.
		r.log.Warn("the server does not know the device; enrolling again", "device_id", r.state.DeviceID)
		s := r.state
		s.Enrolled = false
		if serr := r.saveState(s); serr != nil {
			return 0, serr
		}
		return 0, err
	default:
		return 0, err
	}
	interval := defaultPollInterval
	if resp.PollIntervalSeconds > 0 {
		interval = time.Duration(resp.PollIntervalSeconds) * time.Second
		s := r.state
		s.PollIntervalSeconds = resp.PollIntervalSeconds
		if err := r.saveState(s); err != nil {
			return 0, err
		}
	} else if r.state.PollIntervalSeconds > 0 {
		interval = time.Duration(r.state.PollIntervalSeconds) * time.Second
	}
	r.log.Debug("checked in", "action", resp.Action, "next", interval)
	if r.updates != nil {
		// Reports queued while the link was down go out now.
		if _, err := r.updates.Queue.Flush(ctx, r.client); err != nil {
			r.log.Debug("status reports wait for the next check-in", "err", err)
		}
	}
	if resp.Action == proto.ActionUpdate && r.updates != nil {
		take := r.updates.Update
		if o := resp.Update; o != nil {
			switch {
			case o.Mode == proto.ModeDownloadOnly:
				take = r.updates.DownloadOnly
			case o.Mode == proto.ModeSoft && r.cfg.Busy != nil && r.cfg.Busy() && (o.Deadline == nil || r.cfg.Clock().Before(*o.Deadline)):
				r.log.Info("the device is busy; a soft update waits", "deadline", o.Deadline)
				take = r.updates.DownloadOnly
			}
		}
		out, err := take(ctx)
		if err != nil {
			// The check-in worked; try the update again at the next one.
			r.log.Warn("update did not complete", "err", err)
		} else {
			r.log.Info("update", "outcome", out)
		}
		if out == update.OutcomeCommitted || out == update.OutcomeRolledBack {
			return 0, nil // tell the server at once what runs now
		}
	}
	return pacing.Jitter(interval, r.cfg.Rand()), nil
}

// startUpdates builds the updater once the device id is known, and
// finishes an update a reboot or power cut interrupted.
func (r *runner) startUpdates(ctx context.Context) error {
	if r.cfg.Updates == nil || r.resumed {
		return nil
	}
	if r.updates == nil {
		u, err := r.cfg.Updates(r.client, r.state.DeviceID)
		if err != nil {
			return fmt.Errorf("%w: setting up updates: %w", errStop, err)
		}
		if err := u.Installer.Boot(ctx); err != nil {
			return fmt.Errorf("%w: booting the installer: %w", errStop, err)
		}
		r.updates = u
	}
	out, err := r.updates.Resume(ctx)
	switch {
	case err != nil && out == update.OutcomeFailed:
		r.log.Warn("the interrupted update failed", "err", err) // reported to the server
	case err != nil:
		return fmt.Errorf("resuming the update: %w", err)
	}
	if out != update.OutcomeNone {
		r.log.Info("resumed an update", "outcome", out)
	}
	r.resumed = true
	return nil
}

func (r *runner) enroll(ctx context.Context) (time.Duration, error) {
	p := r.cfg.Enroll
	if p.HardwareID == "" || (p.Org == "" && p.EnrollmentToken == "") {
		return 0, errNoEnrollInfo
	}
	resp, err := r.client.Enroll(ctx, p)
	if err != nil {
		return 0, fmt.Errorf("enrolling: %w", err)
	}
	log := r.log.With("device_id", resp.DeviceID, "status", resp.Status)
	switch resp.Status {
	case proto.StatusRejected:
		return 0, r.refused(resp.DeviceID, "an operator rejected its enrollment", nil)
	case proto.StatusRevoked, proto.StatusDecommissioned:
		return 0, r.refused(resp.DeviceID, "it is "+resp.Status, nil)
	}
	if err := r.saveState(state{DeviceID: resp.DeviceID, Enrolled: true, PollIntervalSeconds: r.state.PollIntervalSeconds}); err != nil {
		return 0, err
	}
	if resp.Status == proto.StatusPending {
		wait := time.Duration(resp.RetryAfterSeconds) * time.Second
		if wait <= 0 {
			wait = defaultPendingWait
		}
		log.Info("enrolled; waiting for an operator to accept the device", "wait", wait)
		return wait, nil
	}
	log.Info("enrolled")
	return 0, nil
}

func (r *runner) refused(deviceID, why string, cause error) error {
	err := fmt.Errorf("%w (device %s, key %s): %s; the agent stops, and restarting it will not help until an operator re-admits the device",
		ErrRefused, deviceID, r.id.KeyID(), why)
	if cause != nil {
		err = fmt.Errorf("%w: %w", err, cause)
	}
	return err
}
