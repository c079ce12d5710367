package install

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/steward-iot/steward/agent/crashpoint"
)

// HookAB is the "ab-hooks" installer: the A/B slots of a real device,
// whose bootloader counts trial boots by itself, in the style of U-Boot's
// bootcount (fw_setenv upgrade_available=1 bootcount=0 boot_part=b;
// bootlimit; altbootcmd) or systemd's boot assessment (boot entries with
// +LEFT-DONE try counters; systemd-bless-boot).
//
// # Hook protocol
//
// Steward does not talk to the bootloader itself: it runs executables the
// vendor supplies, either one file per hook in a directory (HooksDir/state,
// HooksDir/write, ...) or one program that takes the hook name as its first
// argument (PROGRAM state, PROGRAM write b /path/image, ...).
//
// Every hook runs with stdin from /dev/null, in the hooks directory (or the
// program's directory), with a clean environment: PATH, the configured Env
// entries, STEWARD_HOOK (the hook's name), STEWARD_STATE_DIR, and the
// variables named below. It exits 0 on success, 3 if it does not support
// the request (only read may), 4 from write when the image does not fit
// the slot (ErrNoSpace); any other status fails the step, and the error
// quotes the last 2 KiB of stderr. A hook still running after Timeout
// (default 30 s; WriteTimeout, default 30 min, for write and read) is
// killed with its process group. Stdout is discarded except where said.
//
//	state            Print the bootloader's state as one JSON object, at
//	                 most 64 KiB:
//	                   {"booted":"a","trial":false,"attempt":0,"max_attempts":3,"armed":"b"}
//	                 booted: the slot running now, one of Slots (required).
//	                 trial: the booted slot was armed and is not committed
//	                   yet (U-Boot: upgrade_available=1 and boot_part is the
//	                   booted slot; systemd-boot: the booted entry still has
//	                   a try counter and is the default).
//	                 attempt: boots of the trial slot so far, 1 on the first
//	                   (bootcount; DONE); 0 without a trial.
//	                 max_attempts: trial boots the bootloader allows before
//	                   it returns to the other slot (bootlimit; LEFT+DONE).
//	                 armed: the other slot when it boots next, else "" or
//	                   absent. A trial and an armed slot exclude each other.
//	                 Other members are ignored.
//	write SLOT IMAGE Write the image file IMAGE to slot SLOT completely and
//	                 flush it (sync). Environment: STEWARD_SLOT,
//	                 STEWARD_IMAGE, STEWARD_SLOT_DEVICE (when configured),
//	                 STEWARD_RELEASE_ID, STEWARD_VERSION, STEWARD_COUNTER,
//	                 STEWARD_SHA256, STEWARD_LENGTH. The slot is not
//	                 armed and not booted while this runs.
//	read SLOT LENGTH Optional. Print exactly the first LENGTH bytes of slot
//	                 SLOT, for Steward to verify what write wrote.
//	arm SLOT         Make SLOT boot next, on trial (U-Boot: fw_setenv
//	                 boot_part SLOT upgrade_available 1 bootcount 0;
//	                 systemd-boot: a fresh entry SLOT+N-0.conf, made the
//	                 default).
//	commit           Make the booted trial slot permanent (U-Boot:
//	                 fw_setenv upgrade_available 0 bootcount 0;
//	                 systemd-bless-boot good).
//	rollback SLOT    Make SLOT boot next, not on trial, and end the other
//	                 slot's trial or arming (U-Boot: fw_setenv boot_part SLOT
//	                 upgrade_available 0 bootcount 0; systemd-boot: mark the
//	                 other entry bad, make SLOT the default). During a trial
//	                 SLOT is the previous slot; to disarm, the booted one.
//	reboot           Restart the machine. It may exit 0 before the machine
//	                 goes down: Reboot and Rollback then wait to be stopped
//	                 (their context ends) for up to RebootWait, and fail if
//	                 the machine stays up. When the state changes as a boot
//	                 would change it (an emulated, in-process boot), they
//	                 return at once.
//
// Steward runs state after arm, commit and rollback and fails the step if
// the state does not show the change: a hook that exits 0 without doing
// its work is caught before the agent relies on it.
//
// # Slot metadata and verification
//
// What a slot holds (release id, counter, sha256, length, version) is kept
// by Steward in StateDir/slots/SLOT.json, written crash-safely; Install
// removes it before write and writes it after verification, before arm.
// A slot without it (the factory image) reports only its name. Install
// checks the image file against the Image before write, and verifies the
// written slot by reading it back: through the read hook when there is
// one, else from SlotDevices[SLOT] when configured (Steward then needs
// read access to the device); with neither, the write hook's exit status
// is all there is, and NewHookAB logs a warning.
//
// Boot runs state once to check the hooks; the real bootloader has done
// the boot step. CurrentImage returns "": a partition is larger than the
// image it holds.
type HookAB struct {
	cfg     HookABConfig
	log     *slog.Logger
	hasRead bool

	mu sync.Mutex
}

// HookABConfig configures NewHookAB.
type HookABConfig struct {
	// HooksDir holds one executable per hook: state, write, arm, commit,
	// rollback, reboot, and optionally read. Set it or Program.
	HooksDir string
	// Program is a single executable taking the hook name as its first
	// argument. It may exit 3 for read if it cannot read slots back.
	Program string
	// StateDir keeps the slot metadata, in StateDir/slots; it must persist
	// across reboots.
	StateDir string
	// Slots names the two slots as the hooks call them; default a and b.
	Slots [2]string
	// SlotDevices optionally maps a slot to its partition (e.g.
	// /dev/mmcblk0p3), passed to write as STEWARD_SLOT_DEVICE and read
	// back directly when there is no read hook.
	SlotDevices map[string]string
	// SlotSize is a slot's capacity in bytes; a larger image is refused
	// with ErrNoSpace before anything is written. 0: unknown.
	SlotSize int64
	// Env adds NAME=value entries to the hooks' environment.
	Env []string
	// Timeout bounds each hook but write and read (default 30 s);
	// WriteTimeout bounds those (default 30 min).
	Timeout, WriteTimeout time.Duration
	// RebootWait is how long Reboot and Rollback wait for the machine to
	// go down after the reboot hook exited 0 (default 5 min; negative:
	// do not wait).
	RebootWait time.Duration
	// Logger receives warnings; nil discards them.
	Logger *slog.Logger
}

const (
	defaultHookTimeout  = 30 * time.Second
	defaultWriteTimeout = 30 * time.Minute
	// maxHookAttempts bounds the counters a state hook may report.
	maxHookAttempts = 10000
)

var requiredHooks = []string{"state", "write", "arm", "commit", "rollback", "reboot"}

// NewHookAB checks cfg and returns the ab-hooks installer.
func NewHookAB(cfg HookABConfig) (*HookAB, error) {
	h := &HookAB{cfg: cfg, log: discardLogger(cfg.Logger)}
	var errs []error
	switch {
	case cfg.HooksDir != "" && cfg.Program != "":
		errs = append(errs, errors.New("set HooksDir or Program, not both"))
	case cfg.HooksDir != "":
		abs, err := filepath.Abs(cfg.HooksDir)
		if err != nil {
			errs = append(errs, err)
			break
		}
		h.cfg.HooksDir = abs
		for _, name := range requiredHooks {
			if err := checkExecutable("hook "+name, filepath.Join(abs, name)); err != nil {
				errs = append(errs, err)
			}
		}
		rp := filepath.Join(abs, "read")
		if _, err := os.Stat(rp); err == nil {
			if err := checkExecutable("hook read", rp); err != nil {
				errs = append(errs, err)
			}
			h.hasRead = true
		}
	case cfg.Program != "":
		abs, err := filepath.Abs(cfg.Program)
		if err != nil {
			errs = append(errs, err)
			break
		}
		h.cfg.Program = abs
		if err := checkExecutable("hook program", abs); err != nil {
			errs = append(errs, err)
		}
		h.hasRead = true // until it answers 3
	default:
		errs = append(errs, errors.New("no hooks: set HooksDir or Program"))
	}
	if h.cfg.Slots == [2]string{} {
		h.cfg.Slots = [2]string{"a", "b"}
	}
	for _, s := range h.cfg.Slots {
		if err := checkSlotName(s); err != nil {
			errs = append(errs, err)
		}
	}
	if h.cfg.Slots[0] == h.cfg.Slots[1] {
		errs = append(errs, fmt.Errorf("the two slots have the same name %q", h.cfg.Slots[0]))
	}
	for s, dev := range cfg.SlotDevices {
		if s != h.cfg.Slots[0] && s != h.cfg.Slots[1] {
			errs = append(errs, fmt.Errorf("SlotDevices names slot %q, not one of %q", s, h.cfg.Slots))
		}
		if dev == "" {
			errs = append(errs, fmt.Errorf("SlotDevices names no device for slot %q", s))
		}
	}
	if cfg.SlotSize < 0 {
		errs = append(errs, fmt.Errorf("SlotSize %d is negative", cfg.SlotSize))
	}
	if err := checkEnv(cfg.Env); err != nil {
		errs = append(errs, err)
	}
	if cfg.Timeout < 0 || cfg.WriteTimeout < 0 {
		errs = append(errs, errors.New("timeouts must not be negative"))
	}
	if h.cfg.Timeout == 0 {
		h.cfg.Timeout = defaultHookTimeout
	}
	if h.cfg.WriteTimeout == 0 {
		h.cfg.WriteTimeout = defaultWriteTimeout
	}
	if h.cfg.RebootWait == 0 {
		h.cfg.RebootWait = defaultRebootWait
	}
	if cfg.StateDir == "" {
		errs = append(errs, errors.New("no state directory for the slot metadata"))
	} else if abs, err := filepath.Abs(cfg.StateDir); err != nil {
		errs = append(errs, err)
	} else {
		h.cfg.StateDir = abs
		if err := os.MkdirAll(filepath.Join(abs, "slots"), 0o700); err != nil {
			errs = append(errs, fmt.Errorf("state directory: %w", err))
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("ab-hooks: %w", errors.Join(errs...))
	}
	if !h.hasRead && len(cfg.SlotDevices) < 2 {
		h.log.Warn("ab-hooks: no read hook and no slot devices: written slots cannot be read back and verified")
	}
	return h, nil
}

// checkSlotName keeps slot names safe as file names and hook arguments.
func checkSlotName(s string) error {
	if s == "" || len(s) > 32 || s[0] == '-' || s[0] == '.' {
		return fmt.Errorf("slot name %q: want 1 to 32 letters, digits, '_', '-' or '.', not starting with '-' or '.'", s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return fmt.Errorf("slot name %q: want 1 to 32 letters, digits, '_', '-' or '.', not starting with '-' or '.'", s)
		}
	}
	return nil
}

// Name returns "ab-hooks".
func (h *HookAB) Name() string { return KindHookAB }

func (h *HookAB) other(s string) string {
	if s == h.cfg.Slots[0] {
		return h.cfg.Slots[1]
	}
	return h.cfg.Slots[0]
}

// hookState is what the state hook prints.
type hookState struct {
	Booted      string `json:"booted"`
	Trial       bool   `json:"trial"`
	Attempt     int    `json:"attempt"`
	MaxAttempts int    `json:"max_attempts"`
	Armed       string `json:"armed"`
}

// parseHookState parses and checks the state hook's output, which is
// input from another program: bounded, one JSON object, sane values.
func parseHookState(out []byte, slots [2]string) (hookState, error) {
	var st hookState
	if len(out) > maxMetaFile {
		return st, fmt.Errorf("state output is longer than %d bytes", maxMetaFile)
	}
	if err := decodeJSON(out, &st); err != nil {
		return hookState{}, fmt.Errorf("state output is not one JSON object: %v", err)
	}
	known := func(s string) bool { return s == slots[0] || s == slots[1] }
	switch {
	case !known(st.Booted):
		return hookState{}, fmt.Errorf("state says booted %q, not one of %q", printable([]byte(st.Booted)), slots)
	case st.Armed != "" && !known(st.Armed):
		return hookState{}, fmt.Errorf("state says armed %q, not one of %q", printable([]byte(st.Armed)), slots)
	case st.Armed == st.Booted:
		return hookState{}, fmt.Errorf("state says slot %q is both booted and armed; armed names the other slot or nothing", st.Booted)
	case st.Trial && st.Armed != "":
		return hookState{}, fmt.Errorf("state says trial and armed %q at once", st.Armed)
	case st.Attempt < 0 || st.Attempt > maxHookAttempts:
		return hookState{}, fmt.Errorf("state says attempt %d, out of range 0..%d", st.Attempt, maxHookAttempts)
	case st.MaxAttempts < 0 || st.MaxAttempts > maxHookAttempts:
		return hookState{}, fmt.Errorf("state says max_attempts %d, out of range 0..%d", st.MaxAttempts, maxHookAttempts)
	}
	if !st.Trial {
		st.Attempt = 0
	}
	return st, nil
}

// hook runs one hook and returns its result; extra adds to the
// environment. A non-zero exit is left to the caller.
func (h *HookAB) hook(ctx context.Context, name string, args []string, extra []string, timeout time.Duration, stdout io.Writer) (programResult, error) {
	p := program{what: "ab-hooks: hook " + name, timeout: timeout, stdout: stdout}
	if name == "state" {
		p.maxOut = maxMetaFile // its output is the answer; others' only explain failures
	}
	p.env = append(baseEnv(h.cfg.Env), "STEWARD_HOOK="+name, "STEWARD_STATE_DIR="+h.cfg.StateDir)
	p.env = append(p.env, extra...)
	if h.cfg.HooksDir != "" {
		p.path, p.args, p.dir = filepath.Join(h.cfg.HooksDir, name), args, h.cfg.HooksDir
	} else {
		p.path, p.args, p.dir = h.cfg.Program, append([]string{name}, args...), filepath.Dir(h.cfg.Program)
	}
	return p.run(ctx)
}

// run runs a hook that must succeed.
func (h *HookAB) run(ctx context.Context, name string, args ...string) error {
	res, err := h.hook(ctx, name, args, nil, h.cfg.Timeout, nil)
	if err != nil {
		return err
	}
	if res.code != 0 {
		return fmt.Errorf("ab-hooks: hook %s %v failed: %s", name, args, res.errMsg())
	}
	return nil
}

func (h *HookAB) state(ctx context.Context) (hookState, error) {
	res, err := h.hook(ctx, "state", nil, nil, h.cfg.Timeout, nil)
	if err != nil {
		return hookState{}, err
	}
	if res.code != 0 {
		return hookState{}, fmt.Errorf("ab-hooks: hook state failed: %s", res.errMsg())
	}
	st, err := parseHookState(res.stdout, h.cfg.Slots)
	if err != nil {
		return hookState{}, fmt.Errorf("ab-hooks: hook state: %w", err)
	}
	return st, nil
}

func (h *HookAB) metaPath(slot string) string {
	return filepath.Join(h.cfg.StateDir, "slots", slot+".json")
}

// slotMeta returns what Steward recorded about slot, or just its name when
// nothing usable is recorded (a factory image, or damage: then a warning).
func (h *HookAB) slotMeta(slot string) Slot {
	var m Slot
	err := readJSONFile(h.metaPath(slot), &m)
	if err == nil {
		if cerr := checkSlot(m, slot); cerr != nil {
			err = fmt.Errorf("%s: %w: %v", h.metaPath(slot), errDamaged, cerr)
		}
	}
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			h.log.Warn("ab-hooks: slot metadata unusable; the slot's release is unknown", "slot", slot, "err", err)
		}
		return Slot{Name: slot}
	}
	return m
}

// Boot checks that the state hook answers; the real bootloader has booted.
func (h *HookAB) Boot(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	removeTemps(filepath.Join(h.cfg.StateDir, "slots"))
	_, err := h.state(ctx)
	return err
}

// Status reports the state hook's view, with Steward's slot metadata.
func (h *HookAB) Status(ctx context.Context) (Status, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	st, err := h.state(ctx)
	if err != nil {
		return Status{}, err
	}
	out := Status{Booted: h.slotMeta(st.Booted), Trial: st.Trial, Attempt: st.Attempt, MaxAttempts: st.MaxAttempts}
	if st.Armed != "" {
		m := h.slotMeta(st.Armed)
		out.Armed = &m
	}
	return out, nil
}

// CurrentImage returns "": see HookAB.
func (h *HookAB) CurrentImage() string { return "" }

// Install writes img into the slot not running, verifies it and arms it.
func (h *HookAB) Install(ctx context.Context, img Image) error {
	if err := validateImage(img, true); err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	st, err := h.state(ctx)
	if err != nil {
		return err
	}
	if st.Trial {
		return fmt.Errorf("ab-hooks: %w (slot %s, boot %d of %d)", ErrTrialRunning, st.Booted, st.Attempt, st.MaxAttempts)
	}
	target := h.other(st.Booted)
	if h.cfg.SlotSize > 0 && img.Length > h.cfg.SlotSize {
		return fmt.Errorf("ab-hooks: %w: the image has %d bytes, slot %s holds %d", ErrNoSpace, img.Length, target, h.cfg.SlotSize)
	}
	if err := verifySource(ctx, img); err != nil {
		return fmt.Errorf("ab-hooks: %w", err)
	}
	if st.Armed != "" {
		// The slot about to be written must not boot if power fails.
		if err := h.run(ctx, "rollback", st.Booted); err != nil {
			return err
		}
		crashpoint.Hit("install/ab-hooks/disarmed")
		if err := h.expect(ctx, "rollback", func(s hookState) bool { return s.Armed == "" && !s.Trial }); err != nil {
			return err
		}
	}
	if err := removeDurably(h.metaPath(target)); err != nil {
		return fmt.Errorf("ab-hooks: slot %s metadata: %w", target, err)
	}
	crashpoint.Hit("install/ab-hooks/meta-cleared")

	// Absolute, so that the hook's tools cannot take it for an option.
	path, err := filepath.Abs(img.Path)
	if err != nil {
		return fmt.Errorf("ab-hooks: image path: %w", err)
	}
	env := append([]string{"STEWARD_SLOT=" + target, "STEWARD_IMAGE=" + path}, imageEnv(slotOf(target, img))...)
	if dev := h.cfg.SlotDevices[target]; dev != "" {
		env = append(env, "STEWARD_SLOT_DEVICE="+dev)
	}
	res, err := h.hook(ctx, "write", []string{target, path}, env, h.cfg.WriteTimeout, nil)
	if err != nil {
		return err
	}
	switch res.code {
	case 0:
	case ExitNoSpace:
		return fmt.Errorf("ab-hooks: %w: hook write %s: %s", ErrNoSpace, target, res.errMsg())
	default:
		return fmt.Errorf("ab-hooks: hook write %s failed: %s", target, res.errMsg())
	}
	crashpoint.Hit("install/ab-hooks/written")
	if err := h.readBack(ctx, target, img); err != nil {
		return err
	}
	crashpoint.Hit("install/ab-hooks/verified")
	if err := writeJSONFile("install/ab-hooks/slot-meta", h.metaPath(target), slotOf(target, img)); err != nil {
		return fmt.Errorf("ab-hooks: slot %s metadata: %w", target, err)
	}
	if err := h.run(ctx, "arm", target); err != nil {
		return err
	}
	crashpoint.Hit("install/ab-hooks/armed")
	return h.expect(ctx, "arm", func(s hookState) bool { return s.Armed == target && !s.Trial })
}

// expect fails unless the state after hook passes ok.
func (h *HookAB) expect(ctx context.Context, hook string, ok func(hookState) bool) error {
	st, err := h.state(ctx)
	if err != nil {
		return err
	}
	if !ok(st) {
		return fmt.Errorf("ab-hooks: hook %s exited 0, but state then says booted=%s trial=%v armed=%q; check the hooks",
			hook, st.Booted, st.Trial, st.Armed)
	}
	return nil
}

// readBack verifies slot against img by the read hook or the device.
func (h *HookAB) readBack(ctx context.Context, slot string, img Image) error {
	if h.hasRead {
		w := newHashingWriter(img.Length)
		res, err := h.hook(ctx, "read", []string{slot, strconv.FormatInt(img.Length, 10)},
			[]string{"STEWARD_SLOT=" + slot}, h.cfg.WriteTimeout, w)
		switch {
		case w.over:
			return fmt.Errorf("ab-hooks: %w: hook read %s printed more than %d bytes", ErrVerify, slot, img.Length)
		case err != nil:
			return err
		case res.code == ExitUnsupported && h.cfg.Program != "":
			h.hasRead = false // the program cannot; fall through to the device
		case res.code != 0:
			return fmt.Errorf("ab-hooks: hook read %s failed: %s", slot, res.errMsg())
		case w.n != img.Length:
			return fmt.Errorf("%w: hook read %s printed %d bytes, want %d", ErrVerify, slot, w.n, img.Length)
		case w.sum() != img.SHA256:
			return fmt.Errorf("%w: slot %s reads back with sha256 %s, want %s", ErrVerify, slot, w.sum(), img.SHA256)
		default:
			return nil
		}
	}
	dev := h.cfg.SlotDevices[slot]
	if dev == "" {
		h.log.Warn("ab-hooks: slot written but not read back: no read hook, no slot device", "slot", slot)
		return nil
	}
	f, err := os.Open(dev)
	if err != nil {
		return fmt.Errorf("ab-hooks: read back slot %s: %w", slot, err)
	}
	defer f.Close()
	w := newHashingWriter(img.Length)
	if _, err := io.Copy(w, &ctxReader{ctx: ctx, r: io.LimitReader(f, img.Length)}); err != nil {
		return fmt.Errorf("ab-hooks: read back slot %s from %s: %w", slot, dev, err)
	}
	if w.n != img.Length {
		return fmt.Errorf("%w: slot %s device %s holds only %d bytes, want %d", ErrVerify, slot, dev, w.n, img.Length)
	}
	if w.sum() != img.SHA256 {
		return fmt.Errorf("%w: slot %s reads back from %s with sha256 %s, want %s", ErrVerify, slot, dev, w.sum(), img.SHA256)
	}
	return nil
}

// ctxReader stops a long read when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// Reboot runs the reboot hook when a slot is armed or on trial.
func (h *HookAB) Reboot(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	st, err := h.state(ctx)
	if err != nil {
		return err
	}
	if !st.Trial && st.Armed == "" {
		return fmt.Errorf("ab-hooks: %w", ErrNothingArmed)
	}
	crashpoint.Hit("install/ab-hooks/reboot")
	return h.reboot(ctx, st)
}

// reboot runs the reboot hook and, unless the state shows that a boot
// happened in-process, waits for the machine to go down. before is the
// state before the hook.
func (h *HookAB) reboot(ctx context.Context, before hookState) error {
	if err := h.run(ctx, "reboot"); err != nil {
		return err
	}
	if after, err := h.state(ctx); err == nil && after != before {
		return nil
	}
	return waitForRestart(ctx, h.cfg.RebootWait, "ab-hooks: hook reboot")
}

// Commit runs the commit hook during a trial.
func (h *HookAB) Commit(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	st, err := h.state(ctx)
	if err != nil {
		return err
	}
	if !st.Trial {
		return fmt.Errorf("ab-hooks: %w", ErrNoTrial)
	}
	crashpoint.Hit("install/ab-hooks/commit")
	if err := h.run(ctx, "commit"); err != nil {
		return err
	}
	crashpoint.Hit("install/ab-hooks/committed")
	return h.expect(ctx, "commit", func(s hookState) bool { return !s.Trial && s.Booted == st.Booted })
}

// Rollback ends a trial (rollback to the previous slot, then reboot) or
// disarms an armed slot (rollback to the booted slot, no reboot).
func (h *HookAB) Rollback(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	st, err := h.state(ctx)
	if err != nil {
		return err
	}
	switch {
	case st.Armed != "":
		if err := h.run(ctx, "rollback", st.Booted); err != nil {
			return err
		}
		return h.expect(ctx, "rollback", func(s hookState) bool { return s.Armed == "" && !s.Trial })
	case !st.Trial:
		return fmt.Errorf("ab-hooks: %w", ErrNoTrial)
	}
	prev := h.other(st.Booted)
	if err := h.run(ctx, "rollback", prev); err != nil {
		return err
	}
	crashpoint.Hit("install/ab-hooks/rolled-back")
	var after hookState
	if err := h.expect(ctx, "rollback", func(s hookState) bool { after = s; return !s.Trial }); err != nil {
		return err
	}
	return h.reboot(ctx, after)
}
