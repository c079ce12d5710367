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
	"time"

	"github.com/steward-iot/steward/agent/crashpoint"
)

// Script is the "script" installer, for application-level updates in the
// manner of Mender's update modules: one vendor executable does the work,
// called with a sub-command.
//
// # Script protocol
//
// The script runs with stdin from /dev/null, in its own directory, with a
// clean environment: PATH, the configured Env entries, STEWARD_STATE_DIR
// (a directory the script may use, StateDir/script), and the release the
// sub-command concerns: STEWARD_RELEASE_ID, STEWARD_VERSION,
// STEWARD_COUNTER, STEWARD_SHA256, STEWARD_LENGTH. Every sub-command may
// be run again after a power cut interrupted it or Steward's record of
// it. Exit status 3 means "not supported", 4 (install only) "not enough
// space" (ErrNoSpace); any other non-zero status fails the step, and the
// error quotes the last 2 KiB of stderr (or of stdout, when stderr is
// empty). The script is killed with its process group after Timeout
// (default 60 s), or InstallTimeout (default 30 min) for install.
//
//	install IMAGE  Install the image file IMAGE, whose bytes Steward has
//	               verified against the release. It may make the new
//	               version run at once or at the next reboot, but must
//	               not require anything else. It may be run again for
//	               the same release after an interruption.
//	needs-reboot   Exit 0 if the installed version runs only after a
//	               reboot, 1 if not (3 counts as not).
//	reboot         Restart the machine (only called after needs-reboot
//	               said yes). It may exit 0 before the machine goes down:
//	               Steward then waits to be stopped, up to RebootWait,
//	               unless is-running shows that the boot already happened.
//	is-running     Exit 0 if the release in STEWARD_* runs now, 1 if not.
//	               Optional (3), but without it Steward cannot notice a
//	               power cut between a sub-command and its own record.
//	commit         Make the running version permanent (3: nothing to do).
//	rollback       Go back to the version that ran before the install,
//	               now or (needs-reboot) at the next boot; STEWARD_*
//	               names the release given up. Also called to give up an
//	               installed release that does not run yet. 3: not
//	               possible, and Rollback returns ErrNoRollback.
//
// Steward keeps what it knows in StateDir/script-state.json: the running
// release, the one before it, the installed one, and the trial with its
// attempt count. Since no bootloader counts for the script, Steward does:
// each Reboot during a trial, and each agent start that no Reboot asked
// for, counts as a boot, and past MaxAttempts Boot or Reboot runs
// rollback itself. At Boot, is-running settles what a
// power cut left undecided: an install that got as far as running the new
// release becomes a trial; a reboot or rollback that did not happen is
// seen as such.
//
// A Rollback the script does not support ends the trial, keeping the new
// version, and returns ErrNoRollback. CurrentImage returns "": no file
// holds the running release.
type Script struct {
	path string
	opt  ScriptOptions
	log  *slog.Logger

	mu     sync.Mutex
	booted bool
}

// ScriptOptions configure NewScript.
type ScriptOptions struct {
	// StateDir keeps the installer's state; it must persist across
	// reboots.
	StateDir string
	// MaxAttempts is the number of agent starts a trial gets before Boot
	// rolls it back. 0 means 3.
	MaxAttempts int
	// Env adds NAME=value entries to the script's environment.
	Env []string
	// Timeout bounds each sub-command but install (default 60 s);
	// InstallTimeout bounds install (default 30 min).
	Timeout, InstallTimeout time.Duration
	// RebootWait is how long Reboot and Rollback wait for the machine to
	// go down after reboot exited 0, unless is-running shows the boot
	// already happened (default 5 min). Negative: do not wait, for
	// emulations whose reboot happens in-process.
	RebootWait time.Duration
	// Logger receives warnings; nil discards them.
	Logger *slog.Logger
}

// Script phases.
const (
	phaseIdle       = ""
	phaseInstalling = "installing" // install started, not known to have finished
	phaseInstalled  = "installed"  // Pending is installed: armed
	phaseRebooting  = "rebooting"  // reboot into Pending was asked for
	phaseTrial      = "trial"      // Current is on trial, Previous ran before
)

type scriptState struct {
	Phase       string `json:"phase"`
	Current     Slot   `json:"current"`
	Previous    *Slot  `json:"previous,omitempty"`
	Pending     *Slot  `json:"pending,omitempty"`
	NeedsReboot bool   `json:"needs_reboot,omitempty"`
	Attempt     int    `json:"attempt,omitempty"`
	// Booting: Reboot asked for a reboot and counted it in Attempt; the
	// next Boot is that reboot's and does not count again.
	Booting bool `json:"booting,omitempty"`
}

func (s scriptState) check() error {
	switch s.Phase {
	case phaseIdle:
	case phaseInstalling, phaseInstalled, phaseRebooting:
		if s.Pending == nil {
			return fmt.Errorf("phase %s without a pending release", s.Phase)
		}
	case phaseTrial:
		if s.Attempt < 1 {
			return fmt.Errorf("trial with attempt %d", s.Attempt)
		}
	default:
		return fmt.Errorf("unknown phase %q", s.Phase)
	}
	if s.Pending != nil {
		if err := checkSlot(*s.Pending, scriptSlot); err != nil {
			return fmt.Errorf("pending: %v", err)
		}
	}
	if s.Previous != nil {
		if err := checkKnownOrUnknown(*s.Previous); err != nil {
			return fmt.Errorf("previous: %v", err)
		}
	}
	if err := checkKnownOrUnknown(s.Current); err != nil {
		return fmt.Errorf("current: %v", err)
	}
	return nil
}

// checkKnownOrUnknown accepts a release Steward installed, or the unknown
// one that ran before the first install (only the slot name).
func checkKnownOrUnknown(s Slot) error {
	if s == (Slot{Name: scriptSlot}) {
		return nil
	}
	return checkSlot(s, scriptSlot)
}

const (
	scriptStateFile       = "script-state.json"
	scriptSlot            = "app"
	defaultScriptTimeout  = 60 * time.Second
	defaultInstallTimeout = 30 * time.Minute
)

// NewScript checks path and opt and returns the script installer.
func NewScript(path string, opt ScriptOptions) (*Script, error) {
	var errs []error
	abs, err := filepath.Abs(path)
	switch {
	case path == "":
		errs = append(errs, errors.New("no script given"))
	case err != nil:
		errs = append(errs, err)
	default:
		if err := checkExecutable("script", abs); err != nil {
			errs = append(errs, err)
		}
	}
	n, err := maxAttempts(opt.MaxAttempts)
	if err != nil {
		errs = append(errs, err)
	}
	opt.MaxAttempts = n
	if err := checkEnv(opt.Env); err != nil {
		errs = append(errs, err)
	}
	if opt.Timeout < 0 || opt.InstallTimeout < 0 {
		errs = append(errs, errors.New("timeouts must not be negative"))
	}
	if opt.Timeout == 0 {
		opt.Timeout = defaultScriptTimeout
	}
	if opt.InstallTimeout == 0 {
		opt.InstallTimeout = defaultInstallTimeout
	}
	if opt.RebootWait == 0 {
		opt.RebootWait = defaultRebootWait
	}
	if opt.StateDir == "" {
		errs = append(errs, errors.New("no state directory"))
	} else if sd, err := filepath.Abs(opt.StateDir); err != nil {
		errs = append(errs, err)
	} else {
		opt.StateDir = sd
		if err := os.MkdirAll(filepath.Join(sd, "script"), 0o700); err != nil {
			errs = append(errs, fmt.Errorf("state directory: %w", err))
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("script: %w", errors.Join(errs...))
	}
	return &Script{path: abs, opt: opt, log: discardLogger(opt.Logger)}, nil
}

// Name returns "script".
func (s *Script) Name() string { return KindScript }

// CurrentImage returns "": see Script.
func (s *Script) CurrentImage() string { return "" }

func (s *Script) statePath() string { return filepath.Join(s.opt.StateDir, scriptStateFile) }

func (s *Script) readState() (scriptState, error) {
	var st scriptState
	err := readJSONFile(s.statePath(), &st)
	if errors.Is(err, fs.ErrNotExist) {
		return scriptState{Current: Slot{Name: scriptSlot}}, nil
	}
	if err != nil {
		return scriptState{}, fmt.Errorf("script: %w", err)
	}
	if err := st.check(); err != nil {
		return scriptState{}, fmt.Errorf("script: %s: %w: %v", s.statePath(), errDamaged, err)
	}
	return st, nil
}

func (s *Script) writeState(cp string, st scriptState) error {
	if err := writeJSONFile("install/script/"+cp, s.statePath(), st); err != nil {
		return fmt.Errorf("script: write state: %w", err)
	}
	return nil
}

// sub runs a sub-command about release rel and returns its exit status.
func (s *Script) sub(ctx context.Context, cmd string, rel Slot, timeout time.Duration, args ...string) (programResult, error) {
	p := program{what: "script " + cmd, path: s.path, args: append([]string{cmd}, args...),
		dir: filepath.Dir(s.path), timeout: timeout}
	p.env = append(baseEnv(s.opt.Env), "STEWARD_STATE_DIR="+filepath.Join(s.opt.StateDir, "script"))
	p.env = append(p.env, imageEnv(rel)...)
	// Stdout is not part of the protocol: only its end is kept, to explain
	// a failure.
	res, err := p.run(ctx)
	if err != nil {
		return res, fmt.Errorf("script: %w", err)
	}
	return res, nil
}

// isRunning asks whether rel runs now: yes, no, or unknown (unsupported).
func (s *Script) isRunning(ctx context.Context, rel Slot) (running, known bool, err error) {
	res, err := s.sub(ctx, "is-running", rel, s.opt.Timeout)
	if err != nil {
		return false, false, err
	}
	switch res.code {
	case 0:
		return true, true, nil
	case 1:
		return false, true, nil
	case ExitUnsupported:
		return false, false, nil
	}
	return false, false, fmt.Errorf("script is-running failed: %s", res.errMsg())
}

// Boot reconciles the recorded state with what runs, and counts a trial
// boot. See Script.
func (s *Script) Boot(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	removeTemps(s.opt.StateDir)
	st, err := s.readState()
	if errors.Is(err, errDamaged) {
		// What runs is unknown now; the agent sees no release and no
		// trial, and can install again.
		s.log.Warn("script: state is damaged; the running release is unknown", "err", err)
		st = scriptState{Current: Slot{Name: scriptSlot}}
		if err := s.writeState("boot-repair", st); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	crashpoint.Hit("install/script/boot-start")
	switch st.Phase {
	case phaseInstalling, phaseInstalled, phaseRebooting:
		running, known, err := s.isRunning(ctx, *st.Pending)
		if err != nil {
			return err
		}
		switch {
		case running || (!known && st.Phase == phaseRebooting):
			// The new release runs (or, without is-running, is assumed to
			// after the reboot that was asked for): its first trial boot.
			st = scriptState{Phase: phaseTrial, Current: *st.Pending, Previous: &st.Current,
				NeedsReboot: st.NeedsReboot, Attempt: 1}
			if err := s.writeState("boot-trial", st); err != nil {
				return err
			}
		case st.Phase == phaseInstalling:
			s.log.Warn("script: an install was interrupted; it must be done again", "release", st.Pending.ReleaseID)
			if err := s.writeState("boot-drop", scriptState{Current: st.Current}); err != nil {
				return err
			}
		case st.Phase == phaseRebooting:
			s.log.Warn("script: after the reboot the new release does not run; giving it up", "release", st.Pending.ReleaseID)
			if err := s.writeState("boot-not-running", scriptState{Current: st.Current}); err != nil {
				return err
			}
		}
	case phaseTrial:
		running, known, err := s.isRunning(ctx, st.Current)
		if err != nil {
			return err
		}
		if known && !running {
			// A rollback took effect (ours, cut short before we recorded
			// it, or the script's own).
			s.log.Warn("script: the trial release no longer runs; the previous one does", "release", st.Current.ReleaseID)
			if err := s.writeState("boot-gone-back", s.previousState(st)); err != nil {
				return err
			}
			break
		}
		if st.Booting {
			st.Booting = false // counted when Reboot asked for this boot
		} else {
			st.Attempt++
		}
		if st.Attempt > s.opt.MaxAttempts {
			s.log.Warn("script: trial boots exhausted; rolling back", "release", st.Current.ReleaseID, "attempts", st.Attempt-1)
			if err := s.rollback(ctx, st); err != nil && !errors.Is(err, ErrNoRollback) {
				return err
			}
			break
		}
		if err := s.writeState("boot-count", st); err != nil {
			return err
		}
	}
	s.booted = true
	return nil
}

// previousState is the state once the trial of st is given up.
func (s *Script) previousState(st scriptState) scriptState {
	prev := Slot{Name: scriptSlot}
	if st.Previous != nil {
		prev = *st.Previous
	}
	return scriptState{Current: prev}
}

// Status reports the recorded state.
func (s *Script) Status(ctx context.Context) (Status, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.booted {
		return Status{}, fmt.Errorf("script: %w", ErrNotBooted)
	}
	st, err := s.readState()
	if err != nil {
		return Status{}, err
	}
	out := Status{Booted: st.Current, MaxAttempts: s.opt.MaxAttempts}
	out.Booted.Name = scriptSlot
	switch st.Phase {
	case phaseTrial:
		out.Trial, out.Attempt = true, st.Attempt
	case phaseInstalled, phaseRebooting:
		p := *st.Pending
		out.Armed = &p
	}
	return out, nil
}

// Install checks the image file, runs install and needs-reboot, and
// records the release as installed (armed).
func (s *Script) Install(ctx context.Context, img Image) error {
	if err := validateImage(img, true); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.booted {
		return fmt.Errorf("script: %w", ErrNotBooted)
	}
	st, err := s.readState()
	if err != nil {
		return err
	}
	if st.Phase == phaseTrial {
		return fmt.Errorf("script: %w (release %s, start %d)", ErrTrialRunning, st.Current.ReleaseID, st.Attempt)
	}
	if err := verifySource(ctx, img); err != nil {
		return fmt.Errorf("script: %w", err)
	}
	rel := slotOf(scriptSlot, img)
	st = scriptState{Phase: phaseInstalling, Current: st.Current, Pending: &rel}
	if err := s.writeState("installing", st); err != nil {
		return err
	}
	// Absolute, so that the script's tools cannot take it for an option.
	path, err := filepath.Abs(img.Path)
	if err != nil {
		return fmt.Errorf("script: image path: %w", err)
	}
	res, err := s.sub(ctx, "install", rel, s.opt.InstallTimeout, path)
	if err == nil && res.code != 0 {
		if res.code == ExitNoSpace {
			err = fmt.Errorf("script: %w: install: %s", ErrNoSpace, res.errMsg())
		} else {
			err = fmt.Errorf("script: install failed: %s", res.errMsg())
		}
	}
	if err != nil {
		// Nothing is armed; whatever install left is the script's to clean
		// up on the next install.
		if werr := s.writeState("install-failed", scriptState{Current: st.Current}); werr != nil {
			s.log.Warn("script: cannot record the failed install", "err", werr)
		}
		return err
	}
	crashpoint.Hit("install/script/installed")
	res, err = s.sub(ctx, "needs-reboot", rel, s.opt.Timeout)
	if err != nil {
		return err
	}
	switch res.code {
	case 0:
		st.NeedsReboot = true
	case 1, ExitUnsupported:
	default:
		return fmt.Errorf("script: needs-reboot failed: %s", res.errMsg())
	}
	st.Phase = phaseInstalled
	return s.writeState("armed", st)
}

// Reboot starts the installed release: by the script's reboot when it
// needs one, else at once. During a trial it reboots (or, without a
// reboot, counts a start) again.
func (s *Script) Reboot(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.booted {
		return fmt.Errorf("script: %w", ErrNotBooted)
	}
	st, err := s.readState()
	if err != nil {
		return err
	}
	switch st.Phase {
	case phaseTrial:
		st.Attempt++
		if st.Attempt > s.opt.MaxAttempts {
			return s.rollback(ctx, st)
		}
		if !st.NeedsReboot {
			return s.writeState("restart-count", st)
		}
		st.Booting = true
		if err := s.writeState("reboot-count", st); err != nil {
			return err
		}
		return s.reboot(ctx, st.Current, nil)
	case phaseInstalled, phaseRebooting:
	default:
		return fmt.Errorf("script: %w", ErrNothingArmed)
	}
	if !st.NeedsReboot {
		running, known, err := s.isRunning(ctx, *st.Pending)
		if err != nil {
			return err
		}
		if known && !running {
			return fmt.Errorf("script: install said no reboot is needed, but is-running says release %s does not run", st.Pending.ReleaseID)
		}
		return s.writeState("trial", scriptState{Phase: phaseTrial, Current: *st.Pending, Previous: &st.Current, Attempt: 1})
	}
	st.Phase = phaseRebooting
	if err := s.writeState("rebooting", st); err != nil {
		return err
	}
	running := false
	err = s.reboot(ctx, *st.Pending, func() bool {
		r, _, err := s.isRunning(ctx, *st.Pending)
		running = r && err == nil
		return running
	})
	if err != nil || !running {
		// Boot settles it after the restart.
		return err
	}
	return s.writeState("trial-rebooted", scriptState{Phase: phaseTrial, Current: *st.Pending, Previous: &st.Current,
		NeedsReboot: true, Attempt: 1, Booting: true})
}

// reboot runs the reboot sub-command. booted tells whether the boot can
// be seen to have happened in-process (an emulation); unless it did,
// reboot waits for the machine to go down.
func (s *Script) reboot(ctx context.Context, rel Slot, booted func() bool) error {
	crashpoint.Hit("install/script/reboot")
	res, err := s.sub(ctx, "reboot", rel, s.opt.Timeout)
	if err != nil {
		return err
	}
	if res.code != 0 {
		return fmt.Errorf("script: reboot failed: %s", res.errMsg())
	}
	if booted != nil && booted() {
		return nil
	}
	return waitForRestart(ctx, s.opt.RebootWait, "script: reboot")
}

// Commit runs commit and ends the trial.
func (s *Script) Commit(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.booted {
		return fmt.Errorf("script: %w", ErrNotBooted)
	}
	st, err := s.readState()
	if err != nil {
		return err
	}
	if st.Phase != phaseTrial {
		return fmt.Errorf("script: %w", ErrNoTrial)
	}
	res, err := s.sub(ctx, "commit", st.Current, s.opt.Timeout)
	if err != nil {
		return err
	}
	if res.code != 0 && res.code != ExitUnsupported {
		return fmt.Errorf("script: commit failed: %s", res.errMsg())
	}
	crashpoint.Hit("install/script/committed")
	return s.writeState("commit", scriptState{Current: st.Current})
}

// Rollback gives up the trial or the installed release. See Script.
func (s *Script) Rollback(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.booted {
		return fmt.Errorf("script: %w", ErrNotBooted)
	}
	st, err := s.readState()
	if err != nil {
		return err
	}
	switch st.Phase {
	case phaseTrial:
		return s.rollback(ctx, st)
	case phaseInstalled, phaseRebooting, phaseInstalling:
		res, err := s.sub(ctx, "rollback", *st.Pending, s.opt.Timeout)
		if err != nil {
			return err
		}
		switch res.code {
		case 0:
			return s.writeState("rollback-disarm", scriptState{Current: st.Current})
		case ExitUnsupported:
			return fmt.Errorf("script: %w: the installed release %s stays installed", ErrNoRollback, st.Pending.ReleaseID)
		}
		return fmt.Errorf("script: rollback failed: %s", res.errMsg())
	}
	return fmt.Errorf("script: %w", ErrNoTrial)
}

// rollback gives up the trial of st; s.mu is held.
func (s *Script) rollback(ctx context.Context, st scriptState) error {
	res, err := s.sub(ctx, "rollback", st.Current, s.opt.Timeout)
	if err != nil {
		return err
	}
	switch res.code {
	case 0:
	case ExitUnsupported:
		if err := s.writeState("rollback-unsupported", scriptState{Current: st.Current}); err != nil {
			return err
		}
		return fmt.Errorf("script: %w: release %s stays, unconfirmed; the trial is over", ErrNoRollback, st.Current.ReleaseID)
	default:
		return fmt.Errorf("script: rollback failed: %s", res.errMsg())
	}
	crashpoint.Hit("install/script/rolled-back")
	prev := s.previousState(st)
	if err := s.writeState("rollback", prev); err != nil {
		return err
	}
	if st.NeedsReboot {
		return s.reboot(ctx, prev.Current, func() bool {
			r, known, err := s.isRunning(ctx, st.Current)
			return err == nil && known && !r
		})
	}
	return nil
}
