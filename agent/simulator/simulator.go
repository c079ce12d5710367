// Package simulator runs a fleet of virtual devices in one process against
// a Steward server, for load tests and demos. Each device has its own
// in-memory key, serial, product, version, power, link and maintenance
// window, enrolls, and checks in through package client like a real agent.
//
// Devices are not goroutines: a timer heap holds each device's next due
// time, and one dispatcher hands due devices to a bounded pool of workers
// that share one HTTP transport. Ten thousand devices thus cost ten
// thousand small structs, Concurrency goroutines and at most Concurrency
// connections.
//
// With Config.Updates, a device whose check-in answers "update" runs the
// agent's own update code (update.Updater, update.Engine) on a simulated
// A/B installer, over a simulated link of its link class. Updates run in
// a second bounded pool, so that check-ins go on while downloads wait on
// slow links; an updating device has a state directory only while its
// update is under way.
package simulator

import (
	"container/heap"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/steward-iot/steward/agent/client"
	"github.com/steward-iot/steward/agent/identity"
	"github.com/steward-iot/steward/agent/install"
	"github.com/steward-iot/steward/agent/internal/pacing"
	"github.com/steward-iot/steward/agent/proto"
	"github.com/steward-iot/steward/agent/runner"
)

// Choice is a value assigned to a share of the devices proportional to
// Weight.
type Choice struct {
	Value  string
	Weight float64
}

// ParseChoices parses "value" or "value=weight" items; a missing weight
// is 1.
func ParseChoices(items []string) ([]Choice, error) {
	out := make([]Choice, 0, len(items))
	for _, it := range items {
		v, w, hasWeight := strings.Cut(strings.TrimSpace(it), "=")
		c := Choice{Value: v, Weight: 1}
		if hasWeight {
			f, err := strconv.ParseFloat(w, 64)
			if err != nil || f < 0 || math.IsInf(f, 0) {
				return nil, fmt.Errorf("%q: the weight after = must be a non-negative number", it)
			}
			c.Weight = f
		}
		if c.Value == "" {
			return nil, fmt.Errorf("%q: empty value", it)
		}
		out = append(out, c)
	}
	return out, nil
}

// Config configures a Simulator.
type Config struct {
	ServerURL string
	Devices   int
	// EnrollmentToken makes devices active at once; without it they enroll
	// into Org and stay pending until accepted.
	EnrollmentToken string
	Org             string
	// HardwareIDs, Versions and Links are spread over the devices by
	// weight; the defaults are sim-device, 1.0.0 and wifi.
	HardwareIDs []Choice
	Versions    []Choice
	Links       []Choice
	// BatteryShare is the fraction of devices on battery, which drains
	// with each check-in and recharges when low.
	BatteryShare float64
	// OfflineChurn is the fraction of the devices that goes offline each
	// ChurnPeriod (default 10 s), for one to two periods.
	OfflineChurn float64
	ChurnPeriod  time.Duration
	// Duration ends Run; 0 runs until its context is done.
	Duration time.Duration
	// IntervalOverride, if positive, replaces the server's poll interval:
	// a tiny value makes devices check in as fast as they can.
	IntervalOverride time.Duration
	// MaxRate caps check-ins per second over all devices; 0 means no cap.
	MaxRate float64
	// EnrollRate caps enrollments per second; 0 means no cap.
	EnrollRate float64
	// Concurrency is the number of requests in flight at most (default 64).
	Concurrency int
	// Out receives a summary line every ReportEvery; nil for none.
	Out         io.Writer
	ReportEvery time.Duration
	// HTTPClient, if set, replaces the shared client the simulator builds.
	HTTPClient *http.Client
	// Updates, if set, makes devices install what the server assigns
	// them; without it they only check in.
	Updates *UpdateConfig
}

const (
	statusNew int32 = iota
	statusPending
	statusActive
	statusStopped
)

// device is one virtual device. Its unexported scheduling fields belong to
// whoever holds it: the dispatcher's heap (under Simulator.mu) or the
// worker it was handed to.
type device struct {
	client     *client.Client
	index      int
	serial     string
	hardwareID string
	link       string
	window     string
	battery    int // percent; -1 for mains-powered devices
	charging   bool

	due      time.Duration // since Simulator.start
	heapIdx  int           // -1 while not in the heap
	admitted bool          // a rate limiter already granted the next step
	failures int           // in a row, for backoff
	// offlineFrom and wentOffline are set by churn while in the heap.
	offlineFrom time.Duration
	wentOffline bool // until the first check-in after going offline

	status       atomic.Int32
	offlineUntil atomic.Int64 // time.Duration since start
	checkins     atomic.Int64
	// running is the slot the device runs; its Version is reported.
	running atomic.Pointer[install.Slot]

	// With updates: the fields below belong to whoever holds the device,
	// like the scheduling fields.
	id        string // the server's device id
	hc        *http.Client
	tr        *deviceTransport
	interval  time.Duration // between check-ins, as the server last said
	offered   bool          // the last check-in answered "update"
	offeredAt time.Duration // since start, of the offer now under way; 0 for none
	upd       *updateState  // while an update is under way
	saved     []byte        // the Updater's state file between updates
	installs  uint32        // installs so far, for the seeded failures
	visits    uint32        // update visits so far, for the seeded link
}

// Simulator runs the virtual fleet. Create it with New.
type Simulator struct {
	cfg     Config
	hc      *http.Client
	ownHC   bool
	devices []*device
	start   time.Time
	upd     *updater // nil without Config.Updates

	mu    sync.Mutex
	queue queue
	wake  chan struct{}

	enrollLimit, checkinLimit *limiter // used by the dispatcher only

	running              atomic.Bool
	runStart, runEnd     atomic.Int64 // time.Duration since start
	checkins             atomic.Int64
	wentOffline, resumed atomic.Int64
	latency              histogram
	errMu                sync.Mutex
	errors               map[string]int64
}

// New validates cfg and creates the devices and their keys.
func New(cfg Config) (*Simulator, error) {
	if cfg.ServerURL == "" {
		return nil, errors.New("simulator: no server URL")
	}
	if cfg.Devices <= 0 {
		return nil, errors.New("simulator: the number of devices must be positive")
	}
	if cfg.BatteryShare < 0 || cfg.BatteryShare > 1 || cfg.OfflineChurn < 0 || cfg.OfflineChurn > 1 {
		return nil, errors.New("simulator: the battery share and offline churn must be fractions between 0 and 1")
	}
	if cfg.MaxRate < 0 || cfg.EnrollRate < 0 || cfg.Concurrency < 0 || cfg.IntervalOverride < 0 {
		return nil, errors.New("simulator: rates, concurrency and the interval override must not be negative")
	}
	if cfg.EnrollmentToken == "" && cfg.Org == "" {
		return nil, errors.New("simulator: devices need an enrollment token or an org to enroll")
	}
	defaults := []struct {
		list *[]Choice
		def  string
	}{{&cfg.HardwareIDs, "sim-device"}, {&cfg.Versions, "1.0.0"}, {&cfg.Links, proto.LinkWiFi}}
	for _, d := range defaults {
		if len(*d.list) == 0 {
			*d.list = []Choice{{Value: d.def, Weight: 1}}
		}
		total := 0.0
		for _, c := range *d.list {
			total += c.Weight
		}
		if total <= 0 {
			return nil, fmt.Errorf("simulator: the weights of %v add up to zero", *d.list)
		}
	}
	for _, l := range cfg.Links {
		if !knownLink(l.Value) {
			return nil, fmt.Errorf("simulator: unknown link %q", l.Value)
		}
	}
	if cfg.ChurnPeriod <= 0 {
		cfg.ChurnPeriod = 10 * time.Second
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = 64
	}

	var upd *updater
	if cfg.Updates != nil {
		var err error
		if upd, err = newUpdater(*cfg.Updates, cfg.Org); err != nil {
			return nil, err
		}
	}
	s := &Simulator{
		cfg:          cfg,
		upd:          upd,
		hc:           cfg.HTTPClient,
		wake:         make(chan struct{}, 1),
		enrollLimit:  newLimiter(cfg.EnrollRate),
		checkinLimit: newLimiter(cfg.MaxRate),
		errors:       map[string]int64{},
	}
	if s.hc == nil {
		// One transport for all devices: connections are reused across
		// devices, and there are never more than the workers need.
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConns = cfg.Concurrency
		tr.MaxIdleConnsPerHost = cfg.Concurrency
		tr.MaxConnsPerHost = cfg.Concurrency
		s.hc, s.ownHC = &http.Client{Transport: tr, Timeout: 30 * time.Second}, true
	}
	run := make([]byte, 4)
	for i := range run {
		run[i] = byte(rand.Uint32())
	}
	runID := hex.EncodeToString(run) // tells this run's serials from earlier runs'
	windows := []string{"", "02:00-04:00 UTC", "01:00-05:00 Europe/Berlin", "22:00-02:00 America/New_York", "03:00-04:00 Asia/Tokyo"}
	factory := map[string]*install.Slot{} // shared: a device replaces its slot, never changes it
	s.devices = make([]*device, cfg.Devices)
	for i := range s.devices {
		id, err := identity.Generate(identity.Ed25519)
		if err != nil {
			return nil, err
		}
		d := &device{
			index:      i,
			serial:     fmt.Sprintf("sim-%d-%s", i, runID),
			hardwareID: pick(cfg.HardwareIDs, spread(i, 0)),
			link:       pick(cfg.Links, spread(i, 2)),
			window:     windows[i%len(windows)],
			battery:    -1,
			interval:   time.Minute,
		}
		version := pick(cfg.Versions, spread(i, 1))
		if factory[version] == nil {
			factory[version] = upd.factorySlot(version)
		}
		d.running.Store(factory[version])
		hc := s.hc
		if upd != nil {
			// A transport of its own shapes the device's requests while
			// it updates.
			base := s.hc.Transport
			if base == nil {
				base = http.DefaultTransport
			}
			d.tr = &deviceTransport{base: base, timeout: s.hc.Timeout}
			d.hc = &http.Client{Transport: d.tr}
			hc = d.hc
		}
		d.client = client.New(cfg.ServerURL, id, client.Options{HTTPClient: hc, UserAgent: "steward-agent-simulator"})
		if spread(i, 3) < cfg.BatteryShare {
			d.battery = 20 + rand.IntN(81)
		}
		s.devices[i] = d
		s.queue = append(s.queue, d)
		d.heapIdx = i // all due at 0: already a heap
	}
	s.start = time.Now()
	return s, nil
}

// spread returns the i-th element of a low-discrepancy sequence in [0, 1):
// any share of the devices gets a value in a given range, without random
// clumps. Each dim uses an increment rationally independent of the others,
// so that e.g. versions are spread evenly over each product.
func spread(i, dim int) float64 {
	incs := [...]float64{math.Sqrt2, math.Sqrt(3), math.Sqrt(5), math.Sqrt(7)}
	_, frac := math.Modf(float64(i+1) * incs[dim])
	return frac
}

// pick returns the choice whose share of the total weight contains u.
func pick(cs []Choice, u float64) string {
	total := 0.0
	for _, c := range cs {
		total += c.Weight
	}
	acc := 0.0
	for _, c := range cs {
		acc += c.Weight / total
		if u < acc {
			return c.Value
		}
	}
	return cs[len(cs)-1].Value // rounding
}

func (s *Simulator) since() time.Duration { return time.Since(s.start) }

// Run runs the fleet until Duration has passed or ctx is done. It can be
// called once. It returns an error only when no device could enroll.
func (s *Simulator) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("simulator: Run called twice")
	}
	if s.cfg.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.cfg.Duration)
		defer cancel()
	}
	s.runStart.Store(int64(s.since()))
	work := make(chan *device)
	var workers, background sync.WaitGroup
	if s.upd != nil {
		base := s.hc.Transport
		if base == nil {
			base = http.DefaultTransport
		}
		if err := s.upd.start(base, s.upd.cfg.Concurrency); err != nil {
			return err
		}
		defer s.upd.stop(s.devices) // after the workers are done, below
		s.updateWorkers(ctx, &workers)
	}
	for range s.cfg.Concurrency {
		workers.Go(func() {
			for d := range work {
				if s.step(ctx, d) {
					continue // the update pool has it now
				}
				if d.status.Load() != statusStopped && ctx.Err() == nil {
					s.push(d)
				}
			}
		})
	}
	if s.cfg.OfflineChurn > 0 {
		background.Go(func() { s.churn(ctx) })
	}
	if s.cfg.Out != nil && s.cfg.ReportEvery > 0 {
		background.Go(func() { s.report(ctx) })
	}
	s.dispatch(ctx, work)
	close(work)
	workers.Wait()
	background.Wait()
	s.runEnd.Store(int64(s.since()))
	if s.ownHC {
		s.hc.CloseIdleConnections()
	}
	if st := s.Stats(); st.Enrolled+st.Stopped == 0 {
		return fmt.Errorf("simulator: no device could enroll; errors: %s", formatErrors(st.Errors))
	}
	return nil
}

// dispatch hands devices to the workers as they fall due, until ctx is
// done. Handing over blocks while all workers are busy, which is the
// backpressure that bounds the requests in flight.
func (s *Simulator) dispatch(ctx context.Context, work chan<- *device) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := s.since()
		var d *device
		wait := time.Duration(-1)
		s.mu.Lock()
		if len(s.queue) > 0 {
			if top := s.queue[0]; top.due <= now {
				d = heap.Pop(&s.queue).(*device)
			} else {
				wait = top.due - now
			}
		}
		s.mu.Unlock()
		if d == nil {
			var fire <-chan time.Time
			if wait >= 0 {
				timer.Reset(wait)
				fire = timer.C
			}
			select {
			case <-ctx.Done():
				return
			case <-s.wake:
			case <-fire:
			}
			continue
		}
		if lim := s.limiterFor(d); lim != nil && !d.admitted {
			if at := lim.reserve(now); at > now {
				d.admitted, d.due = true, at
				s.push(d)
				continue
			}
		}
		d.admitted = false
		select {
		case work <- d:
		case <-ctx.Done():
			return
		}
	}
}

func (s *Simulator) limiterFor(d *device) *limiter {
	if d.status.Load() == statusNew {
		return s.enrollLimit
	}
	return s.checkinLimit
}

// push puts d back into the heap at d.due and wakes the dispatcher if d is
// now the earliest.
func (s *Simulator) push(d *device) {
	s.mu.Lock()
	heap.Push(&s.queue, d)
	first := d.heapIdx == 0
	s.mu.Unlock()
	if first {
		select {
		case s.wake <- struct{}{}:
		default: // a wake-up is pending already
		}
	}
}

// step makes d's next request and sets d.due for the one after, or hands
// d to the update pool and reports true.
func (s *Simulator) step(ctx context.Context, d *device) bool {
	if d.status.Load() == statusNew {
		s.enroll(ctx, d)
		return false
	}
	return s.checkin(ctx, d)
}

func (s *Simulator) enroll(ctx context.Context, d *device) {
	resp, err := d.client.Enroll(ctx, client.EnrollParams{
		Org: s.cfg.Org, HardwareID: d.hardwareID, Serial: d.serial, EnrollmentToken: s.cfg.EnrollmentToken,
	})
	if err != nil {
		s.failed(ctx, d, err)
		return
	}
	d.failures = 0
	d.id = resp.DeviceID
	switch resp.Status {
	case proto.StatusActive:
		d.status.Store(statusActive)
		d.due = s.since()
	case proto.StatusPending:
		d.status.Store(statusPending)
		d.due = s.since() + max(time.Second, time.Duration(resp.RetryAfterSeconds)*time.Second)
	default: // rejected, revoked, ...
		d.status.Store(statusStopped)
	}
}

func (s *Simulator) checkin(ctx context.Context, d *device) (handedOver bool) {
	start := time.Now()
	resp, err := d.client.Checkin(ctx, d.report())
	took := time.Since(start)
	var ae *client.APIError
	switch {
	case err == nil:
	case client.IsCode(err, proto.CodeDevicePending):
		d.status.Store(statusPending)
		wait := time.Minute
		if errors.As(err, &ae) && ae.RetryAfter > 0 {
			wait = ae.RetryAfter
		}
		d.due = s.since() + wait
		return false
	case client.IsCode(err, proto.CodeDeviceRejected), client.IsCode(err, proto.CodeDeviceRevoked):
		s.countError(err)
		d.status.Store(statusStopped)
		return false
	case client.IsCode(err, proto.CodeUnknownDevice):
		d.status.Store(statusNew)
		s.failed(ctx, d, err)
		return false
	default:
		s.failed(ctx, d, err)
		return false
	}
	s.latency.record(took)
	s.checkins.Add(1)
	d.checkins.Add(1)
	d.failures = 0
	d.status.Store(statusActive)
	if d.wentOffline {
		d.wentOffline = false
		s.resumed.Add(1)
	}
	interval := s.cfg.IntervalOverride
	if interval <= 0 {
		interval = time.Duration(max(resp.PollIntervalSeconds, 1)) * time.Second
	}
	d.interval = interval
	if s.handOver(d, resp.Action) {
		return true // the update pool sets d.due
	}
	d.due = s.since() + pacing.Jitter(interval, rand.Float64())
	return false
}

// failed counts err and backs d off.
func (s *Simulator) failed(ctx context.Context, d *device, err error) {
	if ctx.Err() != nil {
		return // cancelled by the end of the run, not a failure
	}
	s.countError(err)
	wait := pacing.Backoff(d.failures, rand.Float64())
	var ae *client.APIError
	if errors.As(err, &ae) {
		wait = max(wait, ae.RetryAfter)
	}
	d.failures++
	d.due = s.since() + wait
}

func (s *Simulator) countError(err error) {
	s.errMu.Lock()
	s.errors[errorCode(err)]++
	s.errMu.Unlock()
}

// errorCode classifies err for the error counts: the problem code, else
// the HTTP status, else the kind of failure.
func errorCode(err error) string {
	var ae *client.APIError
	var ue *url.Error
	switch {
	case errors.As(err, &ae) && ae.Problem.Code != "":
		return ae.Problem.Code
	case ae != nil:
		return "http_" + strconv.Itoa(ae.Status)
	case errors.As(err, &ue) && ue.Timeout():
		return "timeout"
	case ue != nil:
		return "transport"
	}
	return "bad_response"
}

// report returns d's check-in report and moves its battery along: a
// battery drains a percent per check-in and, below 15%, charges back to
// full at five percent per check-in.
func (d *device) report() proto.CheckinRequest {
	st := proto.State{
		OnMains:           true,
		Link:              d.link,
		Metered:           runner.MeteredLink(d.link),
		FreeStorage:       512 << 20,
		MaintenanceWindow: d.window,
	}
	if d.battery >= 0 {
		switch {
		case d.charging && d.battery >= 100:
			d.charging = false
		case !d.charging && d.battery < 15:
			d.charging = true
		case d.charging:
			d.battery = min(100, d.battery+5)
		default:
			d.battery--
		}
		pct := d.battery
		st.BatteryPercent, st.OnMains = &pct, d.charging
	}
	version := d.running.Load().Version
	return proto.CheckinRequest{
		Installed: proto.Installed{
			Version:    version,
			Components: []proto.Component{{Purl: "pkg:generic/" + d.hardwareID + "-firmware@" + version, Version: version}},
		},
		State: st,
	}
}

// churn takes a share of the idle, active devices offline every period.
// Only devices in the heap qualify, so none has a request in flight while
// offline; an offline device's next check-in moves to its return.
func (s *Simulator) churn(ctx context.Context) {
	period := s.cfg.ChurnPeriod
	tick := time.NewTicker(period)
	defer tick.Stop()
	n := len(s.devices)
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		s.mu.Lock()
		now := s.since()
		for range int(math.Round(s.cfg.OfflineChurn * float64(n))) {
			d := s.devices[rand.IntN(n)]
			if d.heapIdx < 0 || d.status.Load() != statusActive || time.Duration(d.offlineUntil.Load()) > now {
				continue
			}
			until := now + period + time.Duration(rand.Int64N(int64(period)))
			d.offlineFrom, d.wentOffline = now, true
			d.offlineUntil.Store(int64(until))
			if d.due < until {
				d.due = until
				heap.Fix(&s.queue, d.heapIdx)
			}
			s.wentOffline.Add(1)
		}
		s.mu.Unlock()
	}
}

// report writes a summary line every ReportEvery, with rates and latencies
// over the last period.
func (s *Simulator) report(ctx context.Context) {
	tick := time.NewTicker(s.cfg.ReportEvery)
	defer tick.Stop()
	prevAt, prevCount, prevHist := s.since(), s.checkins.Load(), s.latency.snapshot()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		st := s.Stats()
		now, count, hist := s.since(), st.Checkins, s.latency.snapshot()
		for i := range hist {
			prevHist[i] = hist[i] - prevHist[i]
		}
		fmt.Fprintln(s.cfg.Out, summary(now, st, float64(count-prevCount)/(now-prevAt).Seconds(),
			percentile(prevHist, 0.5), percentile(prevHist, 0.99)))
		prevAt, prevCount, prevHist = now, count, hist
	}
}

func summary(at time.Duration, st Stats, rate float64, p50, p99 time.Duration) string {
	line := fmt.Sprintf("[%s] devices %d: enrolled %d (pending %d) active %d offline %d stopped %d | check-ins %.1f/s (total %d) p50 %s p99 %s | errors: %s",
		at.Round(100*time.Millisecond), st.Devices, st.Enrolled, st.Pending, st.Active, st.Offline, st.Stopped,
		rate, st.Checkins, p50, p99, formatErrors(st.Errors))
	if st.Updates != nil {
		line += " | " + st.Updates.String()
	}
	return line
}
