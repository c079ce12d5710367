package simulator

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/steward-iot/steward/agent/install"
	"github.com/steward-iot/steward/agent/internal/pacing"
	"github.com/steward-iot/steward/agent/proto"
	"github.com/steward-iot/steward/agent/update"
)

// UpdateConfig makes the devices install what the server assigns them,
// with the agent's own update code (update.Updater and update.Engine:
// TUF refresh of the director and the image repository, Agree, the
// resumable downloader, deltas) over simulated links, on a simulated A/B
// installer with injected failures.
type UpdateConfig struct {
	// DirectorRoot and ImageRoot are the root.json files devices are
	// provisioned with (the organization's director root and root 1 of
	// its image repository, /tuf/<Config.Org>).
	DirectorRoot, ImageRoot []byte
	// Images maps a version to a file holding exactly that version's
	// image. A device running such a version has it as its current image
	// and can apply deltas; without it, devices download full images.
	Images map[string]string
	// InstallFailureRate is the probability that an install fails;
	// HealthFailureRate that the new image fails its health checks, so
	// that the trial is rebooted until MaxAttempts and the bootloader
	// goes back. Each is drawn once per install.
	InstallFailureRate, HealthFailureRate float64
	// MaxAttempts is how many trial boots the emulated bootloader allows
	// (default 3).
	MaxAttempts int
	// Links overrides DefaultLinkProfiles per link class.
	Links map[string]LinkProfile
	// TimeScale runs the simulated links this many times faster than real
	// time (default 1): their latency, their bandwidth and the
	// downloader's retry backoff. Check-in intervals are not scaled.
	TimeScale float64
	// Concurrency is how many devices update at once (default 64); more
	// devices offered an update wait for a turn, while check-ins go on.
	Concurrency int
	// WorkDir holds each updating device's state directory (go-tuf
	// metadata, the download, the status queue) while its update is under
	// way; default a temporary directory removed at the end of Run. The
	// directory goes when the attempt ends and its reports are delivered,
	// so a device that tries again after a failure downloads again (a
	// real agent keeps the verified download), and fresh TUF metadata
	// starts from the shipped roots each time.
	WorkDir string
	// Seed makes the injected failures and the link losses reproducible:
	// a device's n-th install fails, or its n-th visit loses a request,
	// the same way in every run with the same seed.
	Seed uint64
}

// updater is the update side of a Simulator.
type updater struct {
	cfg      UpdateConfig
	links    map[string]LinkProfile
	clock    simClock
	images   map[string]factoryImage // by version
	targets  string                  // path prefix of image repository targets
	shapedTR http.RoundTripper       // the update traffic's own connections
	workDir  string
	ownDir   bool

	queue    fifo
	updating atomic.Int64
	counters linkCounters
	done     atomic.Bool // the run ended

	mu          sync.Mutex
	started     int64
	committed   int64
	rolledBack  int64
	failed      map[string]int64
	retried     map[string]int64
	bytesFull   int64
	bytesDelta  int64
	offerCommit histogram // lock-free
}

// factoryImage is a version's image as a file.
type factoryImage struct {
	path   string
	sha256 string
	length int64
}

// updateState is a device's update while it is under way: its state
// directory exists only for this long.
type updateState struct {
	dir   string
	inst  *memInstaller
	queue *update.StatusQueue
	// counted are the report ids the stats counted, so that a report
	// acknowledged twice (its first answer lost) counts once.
	counted map[string]bool
	// targetBytes counts image bytes downloaded per target (hex sha256).
	targetBytes map[string]int64
}

func newUpdater(cfg UpdateConfig, org string) (*updater, error) {
	if len(cfg.DirectorRoot) == 0 || len(cfg.ImageRoot) == 0 {
		return nil, errors.New("simulator: updates need the director root and the image repository's root (--director-root, --image-root)")
	}
	if org == "" {
		return nil, errors.New("simulator: updates need the organization's slug (--org): its image repository is /tuf/<org>")
	}
	for name, r := range map[string]float64{"install failure rate": cfg.InstallFailureRate, "health failure rate": cfg.HealthFailureRate} {
		if !(r >= 0 && r <= 1) {
			return nil, fmt.Errorf("simulator: the %s must be from 0 to 1, not %v", name, r)
		}
	}
	if cfg.MaxAttempts < 0 || cfg.Concurrency < 0 || cfg.TimeScale < 0 || math.IsNaN(cfg.TimeScale) || math.IsInf(cfg.TimeScale, 0) {
		return nil, errors.New("simulator: max attempts, update concurrency and the time scale must not be negative")
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = 3
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = 64
	}
	if cfg.TimeScale == 0 {
		cfg.TimeScale = 1
	}
	links, err := linkProfiles(cfg.Links)
	if err != nil {
		return nil, err
	}
	u := &updater{cfg: cfg, links: links, clock: scaledClock{start: time.Now(), scale: cfg.TimeScale}, images: map[string]factoryImage{},
		targets: "/tuf/" + url.PathEscape(org) + "/targets/", failed: map[string]int64{}, retried: map[string]int64{}}
	u.queue.ready = make(chan struct{}, 1)
	for version, p := range cfg.Images {
		sum, n, err := hashFile(context.Background(), p)
		if err != nil {
			return nil, fmt.Errorf("simulator: the image of version %s: %w", version, err)
		}
		u.images[version] = factoryImage{path: p, sha256: sum, length: n}
	}
	return u, nil
}

// currentImage is the file holding a slot's image, when the simulator was
// given that version's image and the slot holds exactly it.
func (u *updater) currentImage(s install.Slot) string {
	if im, ok := u.images[s.Version]; ok && s.SHA256 == im.sha256 {
		return im.path
	}
	return ""
}

// factorySlot is the slot a device running version starts with.
func (u *updater) factorySlot(version string) *install.Slot {
	s := &install.Slot{Name: slotNames[0], Version: version}
	if u != nil {
		if im, ok := u.images[version]; ok {
			s.SHA256, s.Length = im.sha256, im.length
		}
	}
	return s
}

// start prepares the work dir and the update traffic's transport.
func (u *updater) start(base http.RoundTripper, perHost int) error {
	u.workDir = u.cfg.WorkDir
	if u.workDir == "" {
		d, err := os.MkdirTemp("", "steward-simulate-*")
		if err != nil {
			return fmt.Errorf("simulator: creating a work dir: %w", err)
		}
		u.workDir, u.ownDir = d, true
	} else if err := os.MkdirAll(u.workDir, 0o700); err != nil {
		return fmt.Errorf("simulator: creating the work dir: %w", err)
	}
	u.shapedTR = base
	if tr, ok := base.(*http.Transport); ok {
		// Slow downloads hold their connections: give them their own, so
		// that check-ins never wait for one.
		tr = tr.Clone()
		tr.MaxIdleConns, tr.MaxIdleConnsPerHost, tr.MaxConnsPerHost = perHost, perHost, perHost
		u.shapedTR = tr
	}
	return nil
}

// stop removes what the run left: the state of devices whose update was
// still under way, and the work dir if the simulator made it.
func (u *updater) stop(devices []*device) {
	u.done.Store(true)
	for _, d := range devices {
		if d.upd != nil {
			u.finish(d)
		}
	}
	if u.ownDir {
		_ = os.RemoveAll(u.workDir)
	}
	if tr, ok := u.shapedTR.(*http.Transport); ok {
		tr.CloseIdleConnections()
	}
}

// updateWorkers runs the update pool until ctx is done.
func (s *Simulator) updateWorkers(ctx context.Context, wg *sync.WaitGroup) {
	for range s.upd.cfg.Concurrency {
		wg.Go(func() {
			for {
				d, ok := s.upd.queue.take(ctx)
				if !ok {
					return
				}
				s.upd.updating.Add(1)
				s.visit(ctx, d)
				s.upd.updating.Add(-1)
				if ctx.Err() == nil {
					s.push(d)
				}
			}
		})
	}
}

// handOver gives d to the update pool after a check-in that offered an
// update, or while d has reports or a download left from an earlier one.
// It reports whether it did.
func (s *Simulator) handOver(d *device, action string) bool {
	if s.upd == nil || (action != proto.ActionUpdate && d.upd == nil) {
		return false
	}
	d.offered = action == proto.ActionUpdate
	if d.offered && d.offeredAt == 0 {
		d.offeredAt = s.since()
	}
	s.upd.queue.put(d)
	return true
}

// visit runs d's update: it sends the reports an earlier visit could not,
// and, if the check-in offered one, runs update.Updater.Update over d's
// simulated link. It sets d.due for the next check-in.
func (s *Simulator) visit(ctx context.Context, d *device) {
	u := s.upd
	next := d.interval
	defer func() {
		if ctx.Err() == nil {
			d.due = s.since() + pacing.Jitter(next, rand.Float64())
		}
	}()
	if d.upd == nil {
		if err := u.begin(d); err != nil {
			u.countRetry("setup")
			return
		}
	}
	st := d.upd
	d.visits++
	l := newLink(u.shapedTR, u.links[d.link], u.clock, ctx,
		rand.New(rand.NewPCG(u.cfg.Seed, uint64(d.index)<<32|uint64(d.visits))), &u.counters, u.targets)
	d.tr.link.Store(l)
	defer d.tr.link.Store(nil)

	rep := countingReporter{u: u, d: d, st: st}
	up := &update.Updater{
		Engine: &update.Engine{Server: s.cfg.ServerURL, Org: s.cfg.Org,
			Device: update.Device{ID: d.id, HardwareID: d.hardwareID},
			Token: func() string {
				tok, _ := d.client.Token(ctx) // a failure shows as the director's 401
				return tok
			},
			DirectorRoot: u.cfg.DirectorRoot, ImageRoot: u.cfg.ImageRoot,
			StateDir: filepath.Join(st.dir, "tuf"), Client: d.hc,
			Downloader: update.Downloader{Backoff: time.Duration(float64(time.Second) / u.clock.Scale())}},
		Installer: st.inst, Queue: st.queue, Reporter: rep, StateDir: st.dir,
		Health: st.inst.health,
	}
	// Reports an earlier visit could not deliver go first, in order.
	_, _ = st.queue.Flush(ctx, rep)
	var out update.Outcome
	var err error
	if _, busy := st.inst.running(); d.offered {
		out, err = up.Update(ctx)
	} else if busy {
		// Interrupted between install and commit, and no longer offered:
		// finish it as the agent does when it starts.
		out, err = up.Resume(ctx)
	}
	for sum, n := range l.takeTargetBytes() {
		if st.targetBytes == nil {
			st.targetBytes = map[string]int64{}
		}
		st.targetBytes[sum] += n
	}
	if slot, _ := st.inst.running(); slot != *d.running.Load() {
		d.running.Store(&slot)
	}
	if ctx.Err() != nil {
		return
	}
	switch {
	case err != nil && out != update.OutcomeFailed:
		// Interrupted (the network, the server, metadata): left as the
		// agent leaves it, so that the next offer goes on, resuming the
		// download. A failed attempt (OutcomeFailed, with its cause) has
		// ended and was reported.
		u.countRetry(updateErrorCode(err))
		return
	case out == update.OutcomeCommitted:
		if d.offeredAt > 0 {
			u.offerCommit.record(s.since() - d.offeredAt)
		}
		fallthrough
	case out == update.OutcomeRolledBack:
		next = 0 // tell the server at once what runs now, as the agent does
	}
	if d.offered {
		d.offeredAt = 0 // the attempt ended; the next offer is a new one
	}
	if _, busy := st.inst.running(); !busy {
		u.finish(d)
	}
}

// begin creates d's state directory, with the Updater's state file as d
// kept it since its last update.
func (u *updater) begin(d *device) error {
	dir := filepath.Join(u.workDir, "d"+strconv.Itoa(d.index))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if d.saved != nil {
		if err := os.WriteFile(filepath.Join(dir, update.UpdaterFile), d.saved, 0o600); err != nil {
			_ = os.RemoveAll(dir)
			return err
		}
	}
	q, err := update.OpenStatusQueue(filepath.Join(dir, "status"))
	if err != nil {
		_ = os.RemoveAll(dir)
		return err
	}
	inject := func() (bool, bool) {
		d.installs++
		r := rand.New(rand.NewPCG(u.cfg.Seed^0x9e3779b97f4a7c15, uint64(d.index)<<32|uint64(d.installs)))
		return r.Float64() < u.cfg.InstallFailureRate, r.Float64() < u.cfg.HealthFailureRate
	}
	d.upd = &updateState{dir: dir, queue: q,
		inst: newMemInstaller(*d.running.Load(), u.cfg.MaxAttempts, inject, u.currentImage)}
	return nil
}

// finish ends d's update once its reports are delivered: it keeps the
// Updater's state file in memory (the anti-rollback counter and attempt
// numbers, as flash would), counts the image bytes, and removes the
// state directory. Reports still queued keep the directory until a later
// check-in delivers them.
func (u *updater) finish(d *device) {
	st := d.upd
	if pending, err := st.queue.Pending(); err == nil && len(pending) > 0 && !u.stopping() {
		return
	}
	if b, err := os.ReadFile(filepath.Join(st.dir, update.UpdaterFile)); err == nil {
		d.saved = b
	}
	full := st.inst.lastInstalled()
	u.mu.Lock()
	for sum, n := range st.targetBytes {
		// A target that is not the image installed is a delta to it; an
		// update that never got to install counts as full.
		if sum == full || full == "" {
			u.bytesFull += n
		} else {
			u.bytesDelta += n
		}
	}
	u.mu.Unlock()
	_ = os.RemoveAll(st.dir)
	d.upd = nil
}

// stopping is true once the run ended: queued reports are dropped then.
func (u *updater) stopping() bool { return u.done.Load() }

func (u *updater) countRetry(code string) {
	u.mu.Lock()
	u.retried[code]++
	u.mu.Unlock()
}

// updateErrorCode classifies an error that interrupted an update.
func updateErrorCode(err error) string {
	switch {
	case errors.Is(err, errLinkLoss) || strings.Contains(err.Error(), errLinkLoss.Error()):
		// go-tuf does not always wrap its fetcher's errors.
		return "link_loss"
	case strings.HasPrefix(err.Error(), "director:"):
		return "director"
	case strings.HasPrefix(err.Error(), "image repository:"):
		return "image_repository"
	}
	if code := errorCode(err); code != "bad_response" {
		return code
	}
	return "other"
}

// countingReporter sends d's status reports and counts each acknowledged
// one once: the stats are what the server recorded.
type countingReporter struct {
	u  *updater
	d  *device
	st *updateState
}

func (r countingReporter) ReportStatus(ctx context.Context, s proto.UpdateStatus) (proto.UpdateStatusResponse, error) {
	resp, err := r.d.client.ReportStatus(ctx, s)
	if err != nil || !resp.Accepted || r.st.counted[s.ReportID] {
		return resp, err
	}
	if r.st.counted == nil {
		r.st.counted = map[string]bool{}
	}
	r.st.counted[s.ReportID] = true
	r.u.mu.Lock()
	defer r.u.mu.Unlock()
	switch s.Step {
	case proto.StepDownloading:
		r.u.started++
	case proto.StepCommitted:
		r.u.committed++
	case proto.StepRolledBack:
		r.u.rolledBack++
	case proto.StepFailed:
		r.u.failed[s.ReasonCode]++
	}
	return resp, nil
}

// fifo is the queue of devices waiting for a turn in the update pool. It
// never blocks the check-in workers that put devices in.
type fifo struct {
	mu    sync.Mutex
	items []*device
	ready chan struct{} // capacity 1: a taker should look
}

func (f *fifo) put(d *device) {
	f.mu.Lock()
	f.items = append(f.items, d)
	f.mu.Unlock()
	select {
	case f.ready <- struct{}{}:
	default:
	}
}

// take returns the oldest device, waiting for one until ctx is done.
func (f *fifo) take(ctx context.Context) (*device, bool) {
	for {
		f.mu.Lock()
		if len(f.items) > 0 {
			d := f.items[0]
			f.items[0] = nil
			f.items = f.items[1:]
			more := len(f.items) > 0
			f.mu.Unlock()
			if more {
				select { // pass the word on to another taker
				case f.ready <- struct{}{}:
				default:
				}
			}
			return d, true
		}
		f.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, false
		case <-f.ready:
		}
	}
}

func (f *fifo) len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.items)
}
