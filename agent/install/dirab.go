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

	"github.com/steward-iot/steward/agent/crashpoint"
)

// DirAB is the "ab-dir" installer: two slots, a and b, kept as files in a
// directory, and an emulated U-Boot with bootcount/bootlimit that chooses
// between them. It serves tests, the simulator, and Linux hosts that
// stand in for devices (steward-agent run --installer ab-dir --slots DIR).
//
// Layout of the directory:
//
//	bootenv.json   the emulated U-Boot environment:
//	               {"boot_slot": "a", "upgrade_available": false,
//	                "bootcount": 0, "bootlimit": 3}
//	a/image        slot a's image, exactly the installed bytes
//	a/slot.json    slot a's metadata (Slot: sha256, length, release)
//	b/image, b/slot.json
//
// Boot, run once per agent start, is the emulated bootloader: when
// upgrade_available is set it counts the boot (bootcount++), and once
// bootcount exceeds bootlimit it runs the altbootcmd: boot_slot switches
// back to the other slot and upgrade_available and bootcount are cleared.
// Like a verified-boot chain it then checks the chosen slot (length and
// sha256 against slot.json) and boots the other slot instead when the
// chosen one is not a complete verified image. A damaged bootenv.json is
// replaced by the default environment (boot a, no trial), as U-Boot does
// on a bad CRC; a slot only ever boots when it verifies.
//
// Install writes the image into the slot not running (after clearing any
// earlier arming and that slot's slot.json), flushes it, reads it back to
// verify it, writes slot.json, and only then arms it: boot_slot = the new
// slot, upgrade_available = true, bootcount = 0, bootlimit = MaxAttempts.
// Installing bytes the other slot already holds (a retried Install, or a
// re-released image) skips the copy and rewrites slot.json only.
//
// A new directory is empty: Provision puts a factory image into slot a
// before the first Boot. One DirAB at a time may use a directory.
type DirAB struct {
	dir  string
	opt  DirABOptions
	log  *slog.Logger
	free func(string) (int64, bool, error)

	mu     sync.Mutex
	booted string // slot the last boot step chose; "" before Boot
	meta   Slot   // its metadata, verified at that boot
}

// DirABOptions configure NewDirAB.
type DirABOptions struct {
	// MaxAttempts is the bootlimit: how many trial boots a new image gets
	// before the emulated bootloader returns to the old one. 0 means 3.
	MaxAttempts int
	// Logger receives warnings (a damaged environment, a slot that does
	// not verify); nil discards them.
	Logger *slog.Logger
}

// bootEnv is the emulated U-Boot environment.
type bootEnv struct {
	BootSlot         string `json:"boot_slot"`
	UpgradeAvailable bool   `json:"upgrade_available"`
	BootCount        int    `json:"bootcount"`
	BootLimit        int    `json:"bootlimit"`
}

func (e bootEnv) check() error {
	switch {
	case e.BootSlot != "a" && e.BootSlot != "b":
		return fmt.Errorf("boot_slot %q is neither a nor b", e.BootSlot)
	case e.BootLimit < 1 || e.BootLimit > maxAttemptsLimit:
		return fmt.Errorf("bootlimit %d is out of range 1..%d", e.BootLimit, maxAttemptsLimit)
	case e.BootCount < 0 || e.BootCount > e.BootLimit+1:
		return fmt.Errorf("bootcount %d is out of range 0..bootlimit+1", e.BootCount)
	}
	return nil
}

func otherAB(s string) string {
	if s == "a" {
		return "b"
	}
	return "a"
}

const (
	bootEnvFile = "bootenv.json"
	slotFile    = "slot.json"
	imageFile   = "image"
)

// NewDirAB returns the ab-dir installer over dir, creating dir if needed.
func NewDirAB(dir string, opt DirABOptions) (*DirAB, error) {
	if dir == "" {
		return nil, errors.New("ab-dir: no slots directory given")
	}
	n, err := maxAttempts(opt.MaxAttempts)
	if err != nil {
		return nil, fmt.Errorf("ab-dir: %w", err)
	}
	opt.MaxAttempts = n
	abs, err := ownDir("ab-dir: slots directory", dir)
	if err != nil {
		return nil, err
	}
	return &DirAB{dir: abs, opt: opt, log: discardLogger(opt.Logger), free: freeBytes}, nil
}

// Name returns "ab-dir".
func (d *DirAB) Name() string { return KindDirAB }

// Dir returns the slots directory.
func (d *DirAB) Dir() string { return d.dir }

func (d *DirAB) slotDir(s string) string { return filepath.Join(d.dir, s) }

func (d *DirAB) readEnv() (bootEnv, error) {
	var e bootEnv
	if err := readJSONFile(filepath.Join(d.dir, bootEnvFile), &e); err != nil {
		return e, err
	}
	if err := e.check(); err != nil {
		return e, fmt.Errorf("%s: %w: %v", filepath.Join(d.dir, bootEnvFile), errDamaged, err)
	}
	return e, nil
}

// env reads the environment outside the boot step, where a damaged one
// is an error: only the boot step may fall back to the default.
func (d *DirAB) env() (bootEnv, error) {
	e, err := d.readEnv()
	if err != nil {
		return e, fmt.Errorf("ab-dir: boot environment: %w (restart the agent: its boot step restores a default)", err)
	}
	return e, nil
}

func (d *DirAB) writeEnv(cp string, e bootEnv) error {
	if err := writeJSONFile("install/ab-dir/"+cp, filepath.Join(d.dir, bootEnvFile), e); err != nil {
		return fmt.Errorf("ab-dir: write boot environment: %w", err)
	}
	return nil
}

func (d *DirAB) readSlot(s string) (Slot, error) {
	var m Slot
	path := filepath.Join(d.slotDir(s), slotFile)
	if err := readJSONFile(path, &m); err != nil {
		return m, err
	}
	if err := checkSlot(m, s); err != nil {
		return m, fmt.Errorf("%s: %w: %v", path, errDamaged, err)
	}
	return m, nil
}

// verifySlot returns slot s's metadata if its image verifies against it.
func (d *DirAB) verifySlot(ctx context.Context, s string) (Slot, error) {
	m, err := d.readSlot(s)
	if err != nil {
		return m, err
	}
	if err := verifyFile(ctx, filepath.Join(d.slotDir(s), imageFile), m.Length, m.SHA256); err != nil {
		return m, err
	}
	return m, nil
}

// Boot runs the emulated bootloader, as at power-on. See DirAB.
func (d *DirAB) Boot(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, dir := range []string{d.dir, d.slotDir("a"), d.slotDir("b")} {
		removeTemps(dir)
	}
	return d.boot(ctx)
}

// boot is the bootloader's boot step; d.mu is held.
func (d *DirAB) boot(ctx context.Context) error {
	e, err := d.readEnv()
	found, repair := true, false
	switch {
	case errors.Is(err, fs.ErrNotExist):
		found, repair = false, true
		e = bootEnv{BootSlot: "a", BootLimit: d.opt.MaxAttempts}
	case errors.Is(err, errDamaged):
		d.log.Warn("ab-dir: boot environment is damaged; using the default environment", "err", err)
		repair = true
		e = bootEnv{BootSlot: "a", BootLimit: d.opt.MaxAttempts}
	case err != nil:
		return fmt.Errorf("ab-dir: boot environment: %w", err)
	}
	crashpoint.Hit("install/ab-dir/boot-start")
	if e.UpgradeAvailable {
		e.BootCount++
		if e.BootCount > e.BootLimit {
			// altbootcmd: the trial used up its boots.
			d.log.Warn("ab-dir: trial boots exhausted; returning to the previous slot",
				"trial_slot", e.BootSlot, "bootcount", e.BootCount, "bootlimit", e.BootLimit)
			e = bootEnv{BootSlot: otherAB(e.BootSlot), BootLimit: e.BootLimit}
		}
		if err := d.writeEnv("boot-count", e); err != nil {
			return err
		}
	}

	slot := e.BootSlot
	meta, verr := d.verifySlot(ctx, slot)
	if verr != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		alt := otherAB(slot)
		ameta, aerr := d.verifySlot(ctx, alt)
		if aerr != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if !found && !d.anySlotFiles() {
				return fmt.Errorf("%w: %s is empty; provision a factory image first", ErrNotProvisioned, d.dir)
			}
			return fmt.Errorf("ab-dir: %w: slot %s: %v; slot %s: %v", ErrNoBootableSlot, slot, verr, alt, aerr)
		}
		// A verified-boot chain refuses the slot; the other one boots, and
		// whatever trial there was is over.
		d.log.Warn("ab-dir: slot does not verify; booting the other slot", "slot", slot, "err", verr, "booting", alt)
		e = bootEnv{BootSlot: alt, BootLimit: e.BootLimit}
		slot, meta, repair = alt, ameta, true
	}
	if repair {
		if err := d.writeEnv("boot-repair", e); err != nil {
			return err
		}
	}
	d.booted, d.meta = slot, meta
	crashpoint.Hit("install/ab-dir/boot-done")
	return nil
}

func (d *DirAB) anySlotFiles() bool {
	for _, s := range []string{"a", "b"} {
		for _, f := range []string{slotFile, imageFile} {
			if _, err := os.Lstat(filepath.Join(d.slotDir(s), f)); err == nil {
				return true
			}
		}
	}
	return false
}

// Status reports the booted slot and the environment.
func (d *DirAB) Status(ctx context.Context) (Status, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.booted == "" {
		return Status{}, fmt.Errorf("ab-dir: %w", ErrNotBooted)
	}
	e, err := d.env()
	if err != nil {
		return Status{}, err
	}
	st := Status{Booted: d.meta, MaxAttempts: d.opt.MaxAttempts}
	if e.BootSlot == d.booted {
		if e.UpgradeAvailable {
			st.Trial, st.Attempt, st.MaxAttempts = true, e.BootCount, e.BootLimit
		}
		return st, nil
	}
	m, err := d.readSlot(e.BootSlot)
	if err != nil {
		// The boot step will refuse it; still say what boots next.
		m = Slot{Name: e.BootSlot}
	}
	st.Armed = &m
	return st, nil
}

// CurrentImage returns the booted slot's image file, "" before Boot.
func (d *DirAB) CurrentImage() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.booted == "" {
		return ""
	}
	return filepath.Join(d.slotDir(d.booted), imageFile)
}

// Install writes img into the slot not running and arms it. See DirAB.
func (d *DirAB) Install(ctx context.Context, img Image) error {
	if err := validateImage(img, true); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.booted == "" {
		return fmt.Errorf("ab-dir: %w", ErrNotBooted)
	}
	e, err := d.env()
	if err != nil {
		return err
	}
	if e.BootSlot == d.booted && e.UpgradeAvailable {
		return fmt.Errorf("ab-dir: %w (slot %s, boot %d of %d)", ErrTrialRunning, d.booted, e.BootCount, e.BootLimit)
	}
	target := otherAB(d.booted)
	if e.BootSlot != d.booted {
		// Disarm before touching the target, so that a power cut during
		// the write boots the running slot.
		if err := d.writeEnv("disarm", bootEnv{BootSlot: d.booted, BootLimit: e.BootLimit}); err != nil {
			return err
		}
	}
	if err := d.writeSlot(ctx, target, img); err != nil {
		return err
	}
	return d.writeEnv("arm", bootEnv{BootSlot: target, UpgradeAvailable: true, BootLimit: d.opt.MaxAttempts})
}

// writeSlot puts img into slot s, complete and verified, with its
// slot.json; s must not be armed or booted.
func (d *DirAB) writeSlot(ctx context.Context, s string, img Image) error {
	sdir := d.slotDir(s)
	if err := os.MkdirAll(sdir, 0o700); err != nil {
		return fmt.Errorf("ab-dir: slot %s: %w", s, err)
	}
	imgPath := filepath.Join(sdir, imageFile)
	if m, err := d.verifySlot(ctx, s); err == nil && sameBytes(m, img) {
		// The slot already holds these bytes: a retried Install, or a
		// re-release. Only the release metadata changes.
		d.log.Info("ab-dir: slot already holds the image; not copying it again", "slot", s)
	} else {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err := checkSpace(d.free, d.dir, img.Length, fileSize(imgPath)); err != nil {
			return fmt.Errorf("ab-dir: slot %s: %w", s, err)
		}
		// Without slot.json the slot is empty to the bootloader, whatever
		// part of the image reaches the disk.
		if err := removeDurably(filepath.Join(sdir, slotFile)); err != nil {
			return fmt.Errorf("ab-dir: slot %s: %w", s, err)
		}
		crashpoint.Hit("install/ab-dir/slot-cleared")
		if err := writeImage(ctx, "install/ab-dir", imgPath, img); err != nil {
			return fmt.Errorf("ab-dir: slot %s: %w", s, err)
		}
	}
	if err := writeJSONFile("install/ab-dir/slot-meta", filepath.Join(sdir, slotFile), slotOf(s, img)); err != nil {
		return fmt.Errorf("ab-dir: slot %s: %w", s, err)
	}
	return nil
}

// trialState says whether the environment arms the other slot or runs a
// trial of the booted one.
func (d *DirAB) trialState(e bootEnv) (armed, trial bool) {
	armed = e.BootSlot != d.booted
	return armed, !armed && e.UpgradeAvailable
}

// Reboot runs the emulated boot step again, booting the armed slot or
// counting another boot of the trial slot.
func (d *DirAB) Reboot(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.booted == "" {
		return fmt.Errorf("ab-dir: %w", ErrNotBooted)
	}
	e, err := d.env()
	if err != nil {
		return err
	}
	if armed, trial := d.trialState(e); !armed && !trial {
		return fmt.Errorf("ab-dir: %w", ErrNothingArmed)
	}
	crashpoint.Hit("install/ab-dir/reboot")
	return d.boot(ctx)
}

// Commit ends the trial: the booted slot boots from now on.
func (d *DirAB) Commit(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.booted == "" {
		return fmt.Errorf("ab-dir: %w", ErrNotBooted)
	}
	e, err := d.env()
	if err != nil {
		return err
	}
	if _, trial := d.trialState(e); !trial {
		return fmt.Errorf("ab-dir: %w", ErrNoTrial)
	}
	return d.writeEnv("commit", bootEnv{BootSlot: d.booted, BootLimit: e.BootLimit})
}

// Rollback ends a trial by booting the previous slot, which must still
// verify; or, when a slot is only armed, disarms it (the running slot
// stays, with no reboot).
func (d *DirAB) Rollback(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.booted == "" {
		return fmt.Errorf("ab-dir: %w", ErrNotBooted)
	}
	e, err := d.env()
	if err != nil {
		return err
	}
	armed, trial := d.trialState(e)
	switch {
	case armed:
		return d.writeEnv("rollback-disarm", bootEnv{BootSlot: d.booted, BootLimit: e.BootLimit})
	case !trial:
		return fmt.Errorf("ab-dir: %w", ErrNoTrial)
	}
	prev := otherAB(d.booted)
	if _, err := d.verifySlot(ctx, prev); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("ab-dir: cannot roll back: slot %s no longer holds a verified image: %w", prev, err)
	}
	if err := d.writeEnv("rollback", bootEnv{BootSlot: prev, BootLimit: e.BootLimit}); err != nil {
		return err
	}
	return d.boot(ctx)
}

// Provision writes img into slot a of an empty directory as the factory
// image and sets the environment to boot it. It refuses (ErrProvisioned)
// once bootenv.json exists; a Provision interrupted before that can be
// repeated. Call Boot afterwards.
func (d *DirAB) Provision(ctx context.Context, img Image) error {
	if err := validateImage(img, false); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, err := os.Lstat(filepath.Join(d.dir, bootEnvFile)); err == nil {
		return fmt.Errorf("ab-dir: %w: %s exists", ErrProvisioned, filepath.Join(d.dir, bootEnvFile))
	}
	if err := d.writeSlot(ctx, "a", img); err != nil {
		return err
	}
	return d.writeEnv("provision", bootEnv{BootSlot: "a", BootLimit: d.opt.MaxAttempts})
}
