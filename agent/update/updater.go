package update

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/steward-iot/steward/agent/atomicfile"
	"github.com/steward-iot/steward/agent/crashpoint"
	"github.com/steward-iot/steward/agent/install"
	"github.com/steward-iot/steward/agent/proto"
)

// UpdaterFile is the name of the Updater's state in its StateDir.
const UpdaterFile = "update.json"

// Phases of an update in progress, as persisted. An update survives a
// reboot or power cut in any of them.
const (
	phaseDownloading = "downloading"
	phaseInstalling  = "installing"
	phaseRebooting   = "rebooting" // the image is armed; Reboot was or is about to be called
)

// Updater carries an update from the director's offer to a committed image
// or back to the previous one, reporting each step. It keeps what it needs
// across reboots and power cuts in StateDir/UpdaterFile, so that the agent,
// started again, calls Resume and ends on the new committed release or the
// old one.
//
// The anti-rollback counter rises only after Commit: a device that never
// committed a release still accepts the release before it.
type Updater struct {
	Engine    *Engine
	Installer install.Installer
	// Queue holds status reports until Reporter acknowledges them.
	Queue    *StatusQueue
	Reporter Reporter
	// StateDir holds UpdaterFile; it must persist across reboots.
	StateDir string
	// Health checks the running trial image; nil counts as healthy. It
	// should give up within HealthTimeout (default 5 minutes).
	Health        func(ctx context.Context) error
	HealthTimeout time.Duration
	// ProgressEvery is how often a long download reports its progress
	// (default 5 minutes), so that the server does not take a slow link
	// for a stuck update.
	ProgressEvery time.Duration
	// FactoryCounter is the release counter of the image the device
	// shipped with, the floor before the first commit.
	FactoryCounter int64
	Clock          func() time.Time // default time.Now
	Logger         *slog.Logger     // nil discards

	mu    sync.Mutex
	state updaterState
	ready bool
}

// updaterState is UpdaterFile.
type updaterState struct {
	// InstalledCounter is the release counter of the last committed
	// release: the device refuses lower ones.
	InstalledCounter int64    `json:"installed_counter"`
	Pending          *pending `json:"pending,omitempty"`
	// LastRelease and LastAttempt number attempts per release, so report
	// ids stay unique when a release is tried again.
	LastRelease string `json:"last_release,omitempty"`
	LastAttempt int    `json:"last_attempt,omitempty"`
}

// pending is an update between its offer and its end.
type pending struct {
	Phase     string `json:"phase"`
	ReleaseID string `json:"release_id"`
	Version   string `json:"version"`
	Counter   int64  `json:"counter"`
	SHA256    string `json:"sha256"`
	Length    int64  `json:"length"`
	Attempt   int    `json:"attempt"`
	// Nonce makes this attempt's report ids unique for good: attempt
	// numbers start over when another release came in between, or when
	// the state file was lost.
	Nonce string `json:"nonce,omitempty"`
	// Image is the verified download, kept until the install is armed.
	Image string `json:"image,omitempty"`
	// Reboots counts the reboots asked for in this attempt.
	Reboots int `json:"reboots,omitempty"`
}

// Outcome says how a call to Update or Resume ended.
type Outcome string

// Outcomes.
const (
	OutcomeNone       Outcome = "none"        // nothing to do
	OutcomeCurrent    Outcome = "current"     // the offered release already runs
	OutcomeDownloaded Outcome = "downloaded"  // download-only: the image waits
	OutcomeRebooting  Outcome = "rebooting"   // a real reboot is under way
	OutcomeCommitted  Outcome = "committed"   // the new release runs and is kept
	OutcomeRolledBack Outcome = "rolled-back" // the previous release runs again
	OutcomeFailed     Outcome = "failed"      // the attempt ended; the old release runs
)

// InstalledCounter returns the persisted anti-rollback counter.
func (u *Updater) InstalledCounter() (int64, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if err := u.load(); err != nil {
		return 0, err
	}
	return u.state.InstalledCounter, nil
}

// Running returns the release that runs now, as the installer knows it.
func (u *Updater) Running(ctx context.Context) (install.Slot, error) {
	st, err := u.Installer.Status(ctx)
	return st.Booted, err
}

func (u *Updater) path() string { return filepath.Join(u.StateDir, UpdaterFile) }

func (u *Updater) now() time.Time {
	if u.Clock != nil {
		return u.Clock()
	}
	return time.Now()
}

func (u *Updater) log() *slog.Logger {
	if u.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return u.Logger
}

func (u *Updater) load() error {
	if u.ready {
		return nil
	}
	b, err := os.ReadFile(u.path())
	switch {
	case errors.Is(err, fs.ErrNotExist):
		u.state = updaterState{InstalledCounter: u.FactoryCounter}
	case err != nil:
		return fmt.Errorf("update: reading %s: %w", u.path(), err)
	default:
		if err := json.Unmarshal(b, &u.state); err != nil {
			// Written atomically, so only the disk did this. Starting over
			// with the floor from the running image keeps anti-rollback.
			u.log().Error("update state is damaged; starting over", "path", u.path(), "err", err)
			u.state = updaterState{InstalledCounter: u.FactoryCounter}
		}
	}
	u.state.InstalledCounter = max(u.state.InstalledCounter, u.FactoryCounter)
	u.ready = true
	return nil
}

func (u *Updater) save(s updaterState) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(u.StateDir, 0o700); err != nil {
		return err
	}
	crashpoint.Hit("updater/before-save")
	if err := atomicfile.WriteFile(u.path(), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("update: saving state: %w", err)
	}
	crashpoint.Hit("updater/after-save")
	u.state = s
	return nil
}

// Resume finishes what a reboot or power cut interrupted. The agent calls
// it once after Installer.Boot and before its first check-in; emulated
// reboots call it too.
func (u *Updater) Resume(ctx context.Context) (Outcome, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.resume(ctx)
}

func (u *Updater) resume(ctx context.Context) (Outcome, error) {
	if err := u.load(); err != nil {
		return OutcomeNone, err
	}
	st, err := u.Installer.Status(ctx)
	if err != nil {
		return OutcomeNone, fmt.Errorf("update: installer status: %w", err)
	}
	p := u.state.Pending
	if p == nil {
		// A power cut after the last update ended may have left files.
		tidy(u.Engine.DownloadDir(), Offer{})
		if st.Trial {
			// Armed and booted by someone else (or our record was lost):
			// keep it only if it is healthy, like our own.
			return u.trial(ctx, st, &pending{Phase: phaseRebooting, ReleaseID: st.Booted.ReleaseID, Version: st.Booted.Version,
				Counter: st.Booted.Counter, SHA256: st.Booted.SHA256, Length: st.Booted.Length, Attempt: 1})
		}
		if st.Booted.Counter > u.state.InstalledCounter {
			s := u.state
			s.InstalledCounter = st.Booted.Counter
			return OutcomeNone, u.save(s)
		}
		return OutcomeNone, nil
	}
	booted := st.Booted.ReleaseID == p.ReleaseID && st.Booted.Counter == p.Counter
	switch p.Phase {
	case phaseDownloading:
		return OutcomeNone, nil // the next offer continues the download
	case phaseInstalling, phaseRebooting:
		switch {
		case booted && st.Trial:
			return u.trial(ctx, st, p)
		case booted && st.Armed != nil:
			// A rollback armed the old slot and the power went before the
			// reboot: finish it; the next boot reports the rollback.
			if err := u.Installer.Reboot(ctx); err != nil {
				return OutcomeNone, fmt.Errorf("update: rebooting into the armed slot %s: %w", st.Armed.Name, err)
			}
			return u.resume(ctx)
		case booted:
			return u.committed(ctx, p) // committed before the power cut
		case st.Armed != nil && st.Armed.ReleaseID == p.ReleaseID && st.Armed.Counter == p.Counter:
			return u.reboot(ctx, p) // installed, but the reboot never happened
		case p.Phase == phaseInstalling:
			return u.install(ctx, p) // the install did not finish
		default:
			// The bootloader went back: the trial used up its boots, or the
			// new slot did not verify.
			return u.end(ctx, p, proto.StepRolledBack, proto.ReasonHealthCheckFailed,
				fmt.Errorf("the bootloader returned to slot %s (%s) after %d reboot(s)", st.Booted.Name, st.Booted.Version, p.Reboots),
				OutcomeRolledBack)
		}
	default:
		u.log().Error("unknown update phase; dropping the update", "phase", p.Phase)
		s := u.state
		s.Pending = nil
		return OutcomeNone, u.save(s)
	}
}

// Update checks what the director offers and carries it through to the
// end: committed or rolled back on an emulated installer, or a real
// reboot under way. Errors from the network or metadata leave nothing
// behind but a partial download, which the next call resumes.
func (u *Updater) Update(ctx context.Context) (Outcome, error) {
	return u.update(ctx, false)
}

// DownloadOnly fetches and verifies the offered image without installing
// it; a later Update installs it without downloading again.
func (u *Updater) DownloadOnly(ctx context.Context) (Outcome, error) {
	return u.update(ctx, true)
}

func (u *Updater) update(ctx context.Context, downloadOnly bool) (Outcome, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if err := u.load(); err != nil {
		return OutcomeNone, err
	}
	if p := u.state.Pending; p != nil && p.Phase != phaseDownloading {
		return u.resume(ctx)
	}
	st, err := u.Installer.Status(ctx)
	if err != nil {
		return OutcomeNone, fmt.Errorf("update: installer status: %w", err)
	}
	if st.Trial {
		return u.resume(ctx)
	}
	e := *u.Engine
	e.Device.InstalledCounter = u.state.InstalledCounter
	if e.CurrentImage == "" {
		e.CurrentImage = u.Installer.CurrentImage()
	}
	offer, err := e.Check(ctx)
	if errors.Is(err, ErrNoUpdate) {
		return OutcomeNone, nil
	}
	if err != nil {
		return OutcomeNone, err
	}
	im := offer.Image
	if st.Booted.ReleaseID == im.ReleaseID && st.Booted.Counter == im.ReleaseCounter {
		if im.ReleaseCounter > u.state.InstalledCounter {
			s := u.state
			s.InstalledCounter = im.ReleaseCounter
			return OutcomeCurrent, u.save(s)
		}
		return OutcomeCurrent, nil
	}
	p := u.state.Pending
	if p == nil || p.ReleaseID != im.ReleaseID || p.Counter != im.ReleaseCounter {
		s := u.state
		attempt := 1
		if s.LastRelease == im.ReleaseID {
			attempt = s.LastAttempt + 1
		}
		p = &pending{Phase: phaseDownloading, ReleaseID: im.ReleaseID, Version: offer.Version(), Counter: im.ReleaseCounter,
			SHA256: hex.EncodeToString(im.Hashes["sha256"]), Length: im.Length, Attempt: attempt, Nonce: rand.Text()}
		s.Pending, s.LastRelease, s.LastAttempt = p, im.ReleaseID, attempt
		if err := u.save(s); err != nil {
			return OutcomeNone, err
		}
		u.report(ctx, p, proto.StepDownloading, "", "", &im.Length)
	}
	e.Downloader.Progress = u.progress(ctx, p)
	res, err := e.Download(ctx, offer)
	if err != nil {
		if ctx.Err() != nil {
			return OutcomeNone, ctx.Err()
		}
		switch {
		case errors.Is(err, ErrDownloadHash) || errors.Is(err, ErrEndlessData):
			return u.end(ctx, p, proto.StepFailed, proto.ReasonVerificationFailed, err, OutcomeFailed)
		case isNoSpace(err):
			return u.end(ctx, p, proto.StepFailed, proto.ReasonInsufficientStorage, err, OutcomeFailed)
		}
		return OutcomeNone, err // the network; resumed next time
	}
	if res.DeltaErr != nil {
		u.log().Warn("the delta did not apply; downloaded the full image", "err", res.DeltaErr)
	}
	u.report(ctx, p, proto.StepDownloaded, "", "", &im.Length)
	if downloadOnly {
		return OutcomeDownloaded, nil
	}
	q := *p
	q.Phase, q.Image = phaseInstalling, res.Path
	s := u.state
	s.Pending = &q
	if err := u.save(s); err != nil {
		return OutcomeNone, err
	}
	return u.install(ctx, &q)
}

// progress returns a Downloader.Progress that reports a long download's
// progress every ProgressEvery, each report with an id of its own.
func (u *Updater) progress(ctx context.Context, p *pending) func(done, total int64) {
	every := u.ProgressEvery
	if every <= 0 {
		every = 5 * time.Minute
	}
	last := u.now()
	return func(done, total int64) {
		if now := u.now(); now.Sub(last) >= every && done < total {
			last = now
			u.reportProgress(ctx, p, done, total)
		}
	}
}

// install writes the downloaded image into the other slot and reboots.
func (u *Updater) install(ctx context.Context, p *pending) (Outcome, error) {
	img := install.Image{Path: p.Image, Length: p.Length, SHA256: p.SHA256, ReleaseID: p.ReleaseID, Version: p.Version, Counter: p.Counter}
	if p.Image == "" || verifyFileSHA256(p.Image, p.Length, p.SHA256) != nil {
		// The download went missing or bad while we were away; the next
		// offer downloads it again.
		return u.end(ctx, p, proto.StepFailed, proto.ReasonPowerLoss, errors.New("the verified download was lost before it was installed"), OutcomeFailed)
	}
	u.report(ctx, p, proto.StepInstalling, "", "", nil)
	if err := u.Installer.Install(ctx, img); err != nil {
		if ctx.Err() != nil {
			return OutcomeNone, ctx.Err()
		}
		reason := proto.ReasonInstallFailed
		switch {
		case errors.Is(err, install.ErrNoSpace):
			reason = proto.ReasonInsufficientStorage
		case errors.Is(err, install.ErrVerify):
			reason = proto.ReasonVerificationFailed
		}
		return u.end(ctx, p, proto.StepFailed, reason, err, OutcomeFailed)
	}
	return u.reboot(ctx, p)
}

// reboot persists that a reboot is due, reports it, and reboots.
func (u *Updater) reboot(ctx context.Context, p *pending) (Outcome, error) {
	if p.Image != "" {
		// The slot holds the image now; the download only takes space.
		_ = os.Remove(p.Image)
	}
	q := *p
	q.Phase, q.Image = phaseRebooting, ""
	q.Reboots++
	s := u.state
	s.Pending = &q
	if err := u.save(s); err != nil {
		return OutcomeNone, err
	}
	u.report(ctx, &q, proto.StepRebooting, "", "", nil)
	if err := u.Installer.Reboot(ctx); err != nil {
		if ctx.Err() != nil {
			return OutcomeNone, ctx.Err()
		}
		// Nothing rebooted: drop the armed image and stay on the old one.
		rerr := u.Installer.Rollback(ctx)
		if rerr != nil && !errors.Is(rerr, install.ErrNoRollback) && !errors.Is(rerr, install.ErrNothingArmed) {
			return OutcomeNone, fmt.Errorf("update: reboot failed (%w) and so did cancelling the install: %w", err, rerr)
		}
		return u.end(ctx, &q, proto.StepFailed, proto.ReasonInstallFailed, fmt.Errorf("reboot failed: %w", err), OutcomeFailed)
	}
	st, err := u.Installer.Status(ctx)
	if err != nil {
		return OutcomeNone, err
	}
	if st.Booted.ReleaseID == q.ReleaseID && st.Booted.Counter == q.Counter && !st.Trial {
		return u.committed(ctx, &q)
	}
	if !(st.Booted.ReleaseID == q.ReleaseID && st.Booted.Counter == q.Counter) && st.Armed != nil {
		// A real reboot is under way and this process will end with it.
		return OutcomeRebooting, nil
	}
	return u.resume(ctx) // an emulated boot: go on in this process
}

// trial checks the health of the running trial image and keeps it, boots
// it again, or goes back.
func (u *Updater) trial(ctx context.Context, st install.Status, p *pending) (Outcome, error) {
	herr := u.health(ctx)
	if herr == nil {
		crashpoint.Hit("updater/before-commit")
		if err := u.Installer.Commit(ctx); err != nil {
			return OutcomeNone, fmt.Errorf("update: commit: %w", err)
		}
		crashpoint.Hit("updater/after-commit")
		return u.committed(ctx, p)
	}
	if ctx.Err() != nil {
		return OutcomeNone, ctx.Err()
	}
	u.log().Warn("the new image failed its health check", "release", p.Version, "attempt", st.Attempt, "of", st.MaxAttempts, "err", herr)
	if st.Attempt < st.MaxAttempts {
		return u.reboot(ctx, p) // the bootloader counts this boot
	}
	rerr := u.Installer.Rollback(ctx)
	if errors.Is(rerr, install.ErrNoRollback) {
		// Nothing to go back to: the device keeps running the image, which
		// an operator must fix with another release.
		return u.end(ctx, p, proto.StepFailed, proto.ReasonRollbackRefused,
			fmt.Errorf("health check failed and this installer cannot go back: %w", herr), OutcomeFailed)
	}
	if rerr != nil {
		return OutcomeNone, fmt.Errorf("update: rollback after a failed health check: %w", rerr)
	}
	// An emulated rollback returns here; a real one reboots, and Resume
	// reports it after the boot.
	return u.resume(ctx)
}

func (u *Updater) health(ctx context.Context) error {
	if u.Health == nil {
		return nil
	}
	d := u.HealthTimeout
	if d <= 0 {
		d = 5 * time.Minute
	}
	hctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	return u.Health(hctx)
}

// committed raises the anti-rollback counter and ends the update.
func (u *Updater) committed(ctx context.Context, p *pending) (Outcome, error) {
	s := u.state
	s.InstalledCounter = max(s.InstalledCounter, p.Counter)
	s.Pending = nil
	if err := u.save(s); err != nil {
		return OutcomeNone, err
	}
	// Whatever a power cut left in the download dir is of no use now.
	tidy(u.Engine.DownloadDir(), Offer{})
	u.report(ctx, p, proto.StepCommitted, "", "", nil)
	u.log().Info("update committed", "release", p.Version, "counter", p.Counter)
	return OutcomeCommitted, nil
}

// end reports how the attempt ended and forgets it. A failed attempt
// returns its cause, wrapped; a rollback is an outcome, not an error.
func (u *Updater) end(ctx context.Context, p *pending, step, reason string, cause error, o Outcome) (Outcome, error) {
	s := u.state
	s.Pending = nil
	if err := u.save(s); err != nil {
		return OutcomeNone, err
	}
	if p.Image != "" && step == proto.StepFailed && reason == proto.ReasonVerificationFailed {
		_ = os.Remove(p.Image)
	}
	u.report(ctx, p, step, reason, cause.Error(), nil)
	u.log().Warn("update ended", "release", p.Version, "step", step, "reason", reason, "err", cause)
	if step == proto.StepFailed {
		return o, fmt.Errorf("update to %s failed (%s): %w", p.Version, reason, cause)
	}
	return o, nil
}

// reportProgress reports how far a download got. The id names the byte
// offset, so a download resumed after a power cut reports anew.
func (u *Updater) reportProgress(ctx context.Context, p *pending, done, total int64) {
	u.send(ctx, proto.UpdateStatus{ReleaseID: p.ReleaseID, Step: proto.StepDownloading,
		ReportID: p.Nonce + "." + proto.StepDownloading + "-" + strconv.FormatInt(done, 10), BytesDone: &done, BytesTotal: &total, At: u.now().UTC()})
}

// report queues a status report and tries to send the queue. Its id is
// derived from the release, attempt and step, so a report made again
// after a power cut is the same report to the server.
func (u *Updater) report(ctx context.Context, p *pending, step, reason, detail string, total *int64) {
	if u.Queue == nil {
		return
	}
	detail = truncateUTF8(strings.ToValidUTF8(detail, "?"), proto.MaxStatusDetail)
	key := step
	if step == proto.StepRebooting {
		key += "-" + strconv.Itoa(p.Reboots)
	}
	id := p.Nonce + "." + key
	if p.Nonce == "" { // a pending update from before nonces
		id = reportID(p.ReleaseID, p.Attempt, key)
	}
	s := proto.UpdateStatus{ReportID: id, ReleaseID: p.ReleaseID, Step: step,
		ReasonCode: reason, Detail: detail, At: u.now().UTC()}
	if total != nil && (step == proto.StepDownloaded) {
		s.BytesDone, s.BytesTotal = total, total
	} else if total != nil {
		s.BytesTotal = total
	}
	u.send(ctx, s)
}

// send queues s and tries to send the queue.
func (u *Updater) send(ctx context.Context, s proto.UpdateStatus) {
	if u.Queue == nil {
		return
	}
	if _, err := u.Queue.Add(s); err != nil {
		u.log().Error("could not queue a status report", "step", s.Step, "err", err)
		return
	}
	if u.Reporter == nil {
		return
	}
	if _, err := u.Queue.Flush(ctx, u.Reporter); err != nil {
		u.log().Debug("status reports wait for the next try", "err", err)
	}
}

// truncateUTF8 cuts s to at most n bytes on a character boundary (JSON
// would turn half a character into three bytes, over the server's limit).
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// reportID is at most proto.MaxStatusReportID characters of the allowed set.
func reportID(releaseID string, attempt int, step string) string {
	id := releaseID + "." + strconv.Itoa(attempt) + "." + step
	ok := len(id) <= proto.MaxStatusReportID
	for _, c := range []byte(id) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-') {
			ok = false
		}
	}
	if ok {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:24])
}

func verifyFileSHA256(p string, length int64, sum string) error {
	want, err := hex.DecodeString(sum)
	if err != nil {
		return err
	}
	return verifyFile(p, Image{Length: length, Hashes: map[string][]byte{"sha256": want}})
}

func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC)
}
