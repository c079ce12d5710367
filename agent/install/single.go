package install

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/steward-iot/steward/agent/atomicfile"
	"github.com/steward-iot/steward/agent/crashpoint"
)

// SingleSlot is the "single-slot" installer, after MCUboot's
// overwrite-only mode: one primary image that runs, and a staging area
// for the next one. It keeps its files in a directory:
//
//	primary/image      the running image
//	primary/slot.json  {"current": Slot, "next": Slot}; next is set only
//	                   while the bootloader replaces the image
//	staging/image      a new image, written and verified by Install
//	staging/slot.json  its Slot
//	state.json         {"pending": bool, "trial": bool, "attempt": n}
//
// Install writes and verifies the staging image and sets pending (MCUboot:
// boot_request_upgrade). The emulated bootloader, at Boot and Reboot,
// verifies the staging image again, records it as primary's next image,
// renames it over the primary image (one atomic rename on the same file
// system, after the data was flushed), records it as current, and starts
// the trial: Attempt counts the boots until Commit confirms the image.
// primary/image is at every moment a complete image that verifies against
// current or next, so a power cut leaves the old image or the new one; a
// boot after a cut finishes the replacement. A staged image that no
// longer verifies is dropped, and the old image boots.
//
// Nothing of the old image is kept, so there is no going back: Rollback
// during a trial returns ErrNoRollback and ends the trial, the new image
// staying (the agent reports the failed health check, and a fixed
// release can be installed); the bootloader never leaves the trial by
// itself, and MaxAttempts only tells the agent how often to retry a boot.
// Rollback of a pending, not yet booted image disarms it.
type SingleSlot struct {
	dir  string
	opt  SingleSlotOptions
	log  *slog.Logger
	free func(string) (int64, bool, error)

	mu     sync.Mutex
	booted bool
	meta   Slot // the primary image, verified at the last boot
}

// SingleSlotOptions configure NewSingleSlot.
type SingleSlotOptions struct {
	// MaxAttempts is reported as Status.MaxAttempts: how many trial boots
	// the agent should try. 0 means 3.
	MaxAttempts int
	// Logger receives warnings; nil discards them.
	Logger *slog.Logger
}

type singleState struct {
	Pending bool `json:"pending"`
	Trial   bool `json:"trial"`
	Attempt int  `json:"attempt,omitempty"`
}

type primaryMeta struct {
	Current Slot  `json:"current"`
	Next    *Slot `json:"next,omitempty"`
}

const (
	singleStateFile = "state.json"
	primaryName     = "primary"
	stagingName     = "staging"
)

// NewSingleSlot returns the single-slot installer over dir, creating it if
// needed.
func NewSingleSlot(dir string, opt SingleSlotOptions) (*SingleSlot, error) {
	if dir == "" {
		return nil, errors.New("single-slot: no directory given")
	}
	n, err := maxAttempts(opt.MaxAttempts)
	if err != nil {
		return nil, fmt.Errorf("single-slot: %w", err)
	}
	opt.MaxAttempts = n
	abs, err := ownDir("single-slot: directory", dir)
	if err != nil {
		return nil, err
	}
	return &SingleSlot{dir: abs, opt: opt, log: discardLogger(opt.Logger), free: freeBytes}, nil
}

// Name returns "single-slot".
func (s *SingleSlot) Name() string { return KindSingleSlot }

func (s *SingleSlot) path(parts ...string) string {
	return filepath.Join(append([]string{s.dir}, parts...)...)
}

func (s *SingleSlot) readState() (singleState, error) {
	var st singleState
	path := s.path(singleStateFile)
	if err := readJSONFile(path, &st); err != nil {
		return singleState{}, err
	}
	if st.Attempt < 0 || (st.Pending && st.Trial) {
		return singleState{}, fmt.Errorf("%s: %w: inconsistent %+v", path, errDamaged, st)
	}
	return st, nil
}

// state reads the state outside the boot step.
func (s *SingleSlot) state() (singleState, error) {
	st, err := s.readState()
	if errors.Is(err, fs.ErrNotExist) {
		return singleState{}, nil
	}
	if err != nil {
		return st, fmt.Errorf("single-slot: %w (restart the agent: its boot step resets it)", err)
	}
	return st, nil
}

func (s *SingleSlot) writeState(cp string, st singleState) error {
	if err := writeJSONFile("install/single-slot/"+cp, s.path(singleStateFile), st); err != nil {
		return fmt.Errorf("single-slot: write state: %w", err)
	}
	return nil
}

func (s *SingleSlot) readPrimary() (primaryMeta, error) {
	var pm primaryMeta
	path := s.path(primaryName, slotFile)
	if err := readJSONFile(path, &pm); err != nil {
		return primaryMeta{}, err
	}
	if pm.Next != nil {
		if err := checkSlot(*pm.Next, primaryName); err != nil {
			return primaryMeta{}, fmt.Errorf("%s: %w: next: %v", path, errDamaged, err)
		}
	}
	return pm, nil
}

func (s *SingleSlot) writePrimary(cp string, pm primaryMeta) error {
	if err := writeJSONFile("install/single-slot/"+cp, s.path(primaryName, slotFile), pm); err != nil {
		return fmt.Errorf("single-slot: write primary metadata: %w", err)
	}
	return nil
}

func (s *SingleSlot) readStaging() (Slot, error) {
	var m Slot
	path := s.path(stagingName, slotFile)
	if err := readJSONFile(path, &m); err != nil {
		return m, err
	}
	if err := checkSlot(m, stagingName); err != nil {
		return m, fmt.Errorf("%s: %w: %v", path, errDamaged, err)
	}
	return m, nil
}

func (s *SingleSlot) verifyStaging(ctx context.Context) (Slot, error) {
	m, err := s.readStaging()
	if err != nil {
		return m, err
	}
	return m, verifyFile(ctx, s.path(stagingName, imageFile), m.Length, m.SHA256)
}

// Boot runs the emulated bootloader, as at power-on. See SingleSlot.
func (s *SingleSlot) Boot(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, dir := range []string{s.dir, s.path(primaryName), s.path(stagingName)} {
		removeTemps(dir)
	}
	return s.boot(ctx)
}

// boot is the bootloader's boot step; s.mu is held.
func (s *SingleSlot) boot(ctx context.Context) error {
	st, err := s.readState()
	switch {
	case errors.Is(err, fs.ErrNotExist):
		st = singleState{}
	case errors.Is(err, errDamaged):
		// The pending flag or the trial is lost; what boots is still only
		// a verified image.
		s.log.Warn("single-slot: state is damaged; booting the primary image without a trial", "err", err)
		st = singleState{}
		if err := s.writeState("boot-repair", st); err != nil {
			return err
		}
	case err != nil:
		return fmt.Errorf("single-slot: %w", err)
	}
	crashpoint.Hit("install/single-slot/boot-start")

	switch {
	case st.Pending:
		applied, err := s.bootPending(ctx)
		if err != nil {
			return err
		}
		if !applied {
			if err := s.writeState("boot-drop", singleState{}); err != nil {
				return err
			}
			break
		}
		if err := s.writeState("boot-trial", singleState{Trial: true, Attempt: 1}); err != nil {
			return err
		}
		// The staging image was renamed away; its metadata goes too.
		if err := removeDurably(s.path(stagingName, slotFile)); err != nil {
			s.log.Warn("single-slot: cannot remove the staging metadata", "err", err)
		}
	case st.Trial:
		st.Attempt++
		if err := s.writeState("boot-count", st); err != nil {
			return err
		}
	}

	pm, err := s.readPrimary()
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%w: %s holds no primary image; provision a factory image first", ErrNotProvisioned, s.dir)
		}
		return fmt.Errorf("single-slot: %w: %v", ErrNoBootableSlot, err)
	}
	img := s.path(primaryName, imageFile)
	cerr := checkSlot(pm.Current, primaryName)
	if cerr == nil {
		cerr = verifyFile(ctx, img, pm.Current.Length, pm.Current.SHA256)
	}
	if cerr != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if pm.Next == nil || verifyFile(ctx, img, pm.Next.Length, pm.Next.SHA256) != nil {
			return fmt.Errorf("single-slot: %w: primary image: %v", ErrNoBootableSlot, cerr)
		}
		pm = primaryMeta{Current: *pm.Next}
		if err := s.writePrimary("boot-finish-late", pm); err != nil {
			return err
		}
	}
	s.booted, s.meta = true, pm.Current
	crashpoint.Hit("install/single-slot/boot-done")
	return nil
}

// bootPending puts the pending image in place. It reports false when
// there is no image to apply: the staged one does not verify, and no
// earlier boot already replaced the primary image with it.
func (s *SingleSlot) bootPending(ctx context.Context) (bool, error) {
	staged, serr := s.verifyStaging(ctx)
	if serr == nil {
		return true, s.apply(staged)
	}
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	// A cut after the rename leaves staging without its image, and the
	// primary image recorded as next or, later, as current.
	pm, err := s.readPrimary()
	if err == nil {
		primary := s.path(primaryName, imageFile)
		switch {
		case pm.Next != nil:
			if verr := verifyFile(ctx, primary, pm.Next.Length, pm.Next.SHA256); verr == nil {
				return true, s.writePrimary("boot-finish", primaryMeta{Current: *pm.Next})
			}
		case pm.Next == nil && sameRelease(pm.Current, withName(staged, primaryName)):
			// Replaced completely; the boot step verifies it below.
			return true, nil
		}
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
	}
	s.log.Warn("single-slot: the staged image does not verify; dropping it", "err", serr)
	return false, nil
}

func withName(s Slot, name string) Slot {
	s.Name = name
	return s
}

// apply replaces the primary image with the verified staging image.
func (s *SingleSlot) apply(staged Slot) error {
	pm, err := s.readPrimary()
	if err != nil {
		s.log.Warn("single-slot: primary metadata unreadable; replacing the image anyway", "err", err)
		pm = primaryMeta{}
	}
	next := withName(staged, primaryName)
	pm.Next = &next
	if err := s.writePrimary("apply-next", pm); err != nil {
		return err
	}
	if err := os.Rename(s.path(stagingName, imageFile), s.path(primaryName, imageFile)); err != nil {
		return fmt.Errorf("single-slot: replace the primary image: %w", err)
	}
	crashpoint.Hit("install/single-slot/apply-renamed")
	if err := atomicfile.SyncDir(s.path(primaryName)); err != nil {
		return fmt.Errorf("single-slot: %w", err)
	}
	if err := atomicfile.SyncDir(s.path(stagingName)); err != nil {
		return fmt.Errorf("single-slot: %w", err)
	}
	crashpoint.Hit("install/single-slot/apply-synced")
	return s.writePrimary("apply-current", primaryMeta{Current: next})
}

// Status reports the primary image, the trial and the staged image.
func (s *SingleSlot) Status(ctx context.Context) (Status, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.booted {
		return Status{}, fmt.Errorf("single-slot: %w", ErrNotBooted)
	}
	st, err := s.state()
	if err != nil {
		return Status{}, err
	}
	out := Status{Booted: s.meta, Trial: st.Trial, MaxAttempts: s.opt.MaxAttempts}
	if st.Trial {
		out.Attempt = st.Attempt
	}
	if st.Pending {
		m, err := s.readStaging()
		if err != nil {
			m = Slot{Name: stagingName}
		}
		out.Armed = &m
	}
	return out, nil
}

// CurrentImage returns the primary image file, "" before Boot.
func (s *SingleSlot) CurrentImage() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.booted {
		return ""
	}
	return s.path(primaryName, imageFile)
}

// Install writes img to staging, verifies it and marks it pending.
func (s *SingleSlot) Install(ctx context.Context, img Image) error {
	if err := validateImage(img, true); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.booted {
		return fmt.Errorf("single-slot: %w", ErrNotBooted)
	}
	st, err := s.state()
	if err != nil {
		return err
	}
	if st.Trial {
		return fmt.Errorf("single-slot: %w (boot %d)", ErrTrialRunning, st.Attempt)
	}
	if st.Pending {
		if err := s.writeState("disarm", singleState{}); err != nil {
			return err
		}
	}
	sdir := s.path(stagingName)
	if err := os.MkdirAll(sdir, 0o700); err != nil {
		return fmt.Errorf("single-slot: staging: %w", err)
	}
	imgPath := filepath.Join(sdir, imageFile)
	if m, err := s.verifyStaging(ctx); err == nil && sameBytes(m, img) {
		s.log.Info("single-slot: staging already holds the image; not copying it again")
	} else {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// The bootloader renames the staging image over the primary one,
		// so the image needs its size only once beside the running one.
		if err := checkSpace(s.free, s.dir, img.Length, fileSize(imgPath)); err != nil {
			return fmt.Errorf("single-slot: %w", err)
		}
		if err := removeDurably(filepath.Join(sdir, slotFile)); err != nil {
			return fmt.Errorf("single-slot: staging: %w", err)
		}
		crashpoint.Hit("install/single-slot/staging-cleared")
		if err := writeImage(ctx, "install/single-slot", imgPath, img); err != nil {
			return fmt.Errorf("single-slot: staging: %w", err)
		}
	}
	if err := writeJSONFile("install/single-slot/staging-meta", filepath.Join(sdir, slotFile), slotOf(stagingName, img)); err != nil {
		return fmt.Errorf("single-slot: staging: %w", err)
	}
	return s.writeState("arm", singleState{Pending: true})
}

// Reboot runs the emulated boot step: it applies a pending image, or
// counts another boot of the trial.
func (s *SingleSlot) Reboot(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.booted {
		return fmt.Errorf("single-slot: %w", ErrNotBooted)
	}
	st, err := s.state()
	if err != nil {
		return err
	}
	if !st.Pending && !st.Trial {
		return fmt.Errorf("single-slot: %w", ErrNothingArmed)
	}
	crashpoint.Hit("install/single-slot/reboot")
	return s.boot(ctx)
}

// Commit confirms the trial image.
func (s *SingleSlot) Commit(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.booted {
		return fmt.Errorf("single-slot: %w", ErrNotBooted)
	}
	st, err := s.state()
	if err != nil {
		return err
	}
	if !st.Trial {
		return fmt.Errorf("single-slot: %w", ErrNoTrial)
	}
	return s.writeState("commit", singleState{})
}

// Rollback disarms a pending image. During a trial it cannot go back: it
// ends the trial and returns ErrNoRollback. See SingleSlot.
func (s *SingleSlot) Rollback(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.booted {
		return fmt.Errorf("single-slot: %w", ErrNotBooted)
	}
	st, err := s.state()
	if err != nil {
		return err
	}
	switch {
	case st.Pending:
		return s.writeState("rollback-disarm", singleState{})
	case st.Trial:
		if err := s.writeState("rollback-end-trial", singleState{}); err != nil {
			return err
		}
		return fmt.Errorf("single-slot: %w: the image of release %q (counter %d) stays, unconfirmed; the trial is over",
			ErrNoRollback, s.meta.ReleaseID, s.meta.Counter)
	}
	return fmt.Errorf("single-slot: %w", ErrNoTrial)
}

// Provision writes img as the primary image of an empty directory. It
// refuses (ErrProvisioned) once a primary image is recorded; a Provision
// interrupted before that can be repeated. Call Boot afterwards.
func (s *SingleSlot) Provision(ctx context.Context, img Image) error {
	if err := validateImage(img, false); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := os.Lstat(s.path(primaryName, slotFile)); err == nil {
		return fmt.Errorf("single-slot: %w: %s exists", ErrProvisioned, s.path(primaryName, slotFile))
	}
	pdir := s.path(primaryName)
	if err := os.MkdirAll(pdir, 0o700); err != nil {
		return fmt.Errorf("single-slot: primary: %w", err)
	}
	if err := checkSpace(s.free, s.dir, img.Length, fileSize(s.path(primaryName, imageFile))); err != nil {
		return fmt.Errorf("single-slot: %w", err)
	}
	if err := writeImage(ctx, "install/single-slot/provision", s.path(primaryName, imageFile), img); err != nil {
		return fmt.Errorf("single-slot: primary: %w", err)
	}
	if err := s.writeState("provision-state", singleState{}); err != nil {
		return err
	}
	return s.writePrimary("provision-meta", primaryMeta{Current: slotOf(primaryName, img)})
}
