// Package install puts a verified image on the device and, after the
// reboot into it, keeps it or returns to the image that ran before.
//
// The agent (package update) drives every Installer through the same
// steps: Install writes the image into the slot that is not running and
// arms it for the next boot; Reboot boots it on trial; after the boot the
// agent runs its health check and calls Commit, or Reboot again while the
// bootloader still allows trial boots, or Rollback. The bootloader, real
// or emulated, counts the trial boots and returns to the previous slot by
// itself once the trial has used them up, as U-Boot's bootcount/bootlimit
// and systemd's boot assessment do, so a new image that hangs before the
// agent runs is still undone.
//
// A power cut at any point must leave a slot that boots a complete image
// that was verified: implementations write a slot completely, flush it,
// verify what they wrote, and only then arm it.
package install

import (
	"context"
	"errors"
)

// Image is a verified image, ready to install.
type Image struct {
	// Path is the image file; the installer reads it and leaves it.
	Path   string
	Length int64
	SHA256 string // lower-case hex, of the whole file
	// Release the image belongs to, kept with the slot so the agent can tell
	// after a reboot what runs (a re-released image has the same bytes but
	// another release id and a higher counter).
	ReleaseID string
	Version   string
	Counter   int64
}

// Slot is what a slot holds.
type Slot struct {
	Name      string `json:"name"` // e.g. "a", "b"; "primary" for a single slot
	SHA256    string `json:"sha256,omitempty"`
	Length    int64  `json:"length,omitempty"`
	ReleaseID string `json:"release_id,omitempty"`
	Version   string `json:"version,omitempty"`
	Counter   int64  `json:"counter,omitempty"`
}

// Status is what runs now and what will boot next.
type Status struct {
	// Booted is the slot running now.
	Booted Slot
	// Trial is true while Booted was installed and not yet committed: the
	// agent must check its health and Commit, Reboot or Rollback.
	Trial bool
	// Attempt counts boots of the trial slot, 1 on the first; 0 without
	// a trial.
	Attempt int
	// MaxAttempts is how many trial boots the bootloader allows before it
	// returns to the previous slot.
	MaxAttempts int
	// Armed is the slot an Install prepared for the next boot, or nil.
	Armed *Slot
}

// Installer is one way of installing images on a device.
type Installer interface {
	// Name is the installer's kind, e.g. "ab-dir", for logs.
	Name() string
	// Boot runs once when the agent starts. Emulated bootloaders (ab-dir,
	// single-slot) run their boot step here, since an agent start stands
	// for a power-on; installers backed by a real bootloader do nothing.
	Boot(ctx context.Context) error
	// Status reports what runs and what is armed.
	Status(ctx context.Context) (Status, error)
	// CurrentImage names a file holding exactly the running image, for
	// applying deltas, or "" when there is none.
	CurrentImage() string
	// Install writes img into the slot not running, verifies what was
	// written against img.Length and img.SHA256, and arms it for the next
	// boot. It refuses while a trial runs (ErrTrialRunning). A power cut
	// during Install leaves the running slot as it was and nothing armed,
	// or the new slot complete and armed.
	Install(ctx context.Context, img Image) error
	// Reboot boots the armed slot, or the trial slot again. Installers
	// backed by a real machine do not return when they succeed; emulated
	// ones return after the emulated boot, and Status shows its outcome.
	Reboot(ctx context.Context) error
	// Commit makes the running trial slot the one that boots from now on.
	Commit(ctx context.Context) error
	// Rollback abandons the trial or the armed slot: the previous slot
	// boots next. Emulated installers boot it before returning; real
	// ones reboot and do not return. ErrNoRollback when the installer
	// cannot go back (single slot, or a script without rollback).
	Rollback(ctx context.Context) error
}

// Errors installers return, wrapped with details.
var (
	ErrTrialRunning = errors.New("install: a trial boot is running; commit or roll back first")
	ErrNothingArmed = errors.New("install: nothing is armed to boot")
	ErrNoTrial      = errors.New("install: no trial is running")
	ErrNoRollback   = errors.New("install: this installer cannot return to the previous image")
	ErrVerify       = errors.New("install: the written slot does not match the image")
	ErrNoSpace      = errors.New("install: not enough space for the image")
)
