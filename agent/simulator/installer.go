package simulator

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/steward-iot/steward/agent/install"
)

// errInjectedInstall and errInjectedHealth are the failures the simulator
// injects at the configured rates.
var (
	errInjectedInstall = errors.New("simulated install failure (--install-failure-rate)")
	errInjectedHealth  = errors.New("simulated health-check failure (--health-failure-rate)")
)

// slotNames are the A/B slots; a slot's index is its place here.
var slotNames = [2]string{"a", "b"}

// memInstaller is an A/B installer whose slots live in memory: a slot
// holds the release and the sha256 and length of what was written, which
// Install computes by streaming the verified download (no image is kept).
// Its emulated bootloader counts trial boots and returns to the previous
// slot once a trial has used up maxAttempts, like the real ones the
// install package describes.
type memInstaller struct {
	// inject decides, once per Install, whether it fails and whether the
	// new image will fail its health checks.
	inject func() (installFails, healthFails bool)
	// currentImage returns a file holding the image of a slot, or "".
	currentImage func(install.Slot) string
	maxAttempts  int

	mu      sync.Mutex
	slots   [2]install.Slot
	booted  int
	armed   int // -1: nothing armed
	trial   bool
	attempt int
	// unhealthy marks the slot whose image fails its health checks.
	unhealthy [2]bool
	// installed is the sha256 of the last image Install was given.
	installed string
}

// newMemInstaller starts from running, the booted and committed slot.
func newMemInstaller(running install.Slot, maxAttempts int, inject func() (bool, bool), currentImage func(install.Slot) string) *memInstaller {
	m := &memInstaller{inject: inject, currentImage: currentImage, maxAttempts: maxAttempts, armed: -1}
	if running.Name == slotNames[1] {
		m.booted = 1
	}
	m.slots[m.booted] = running
	m.slots[m.booted].Name = slotNames[m.booted]
	m.slots[1-m.booted] = install.Slot{Name: slotNames[1-m.booted]}
	return m
}

func (m *memInstaller) Name() string { return "simulated-ab" }

// Boot is a power-on: the emulated bootloader's boot step.
func (m *memInstaller) Boot(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.boot()
	return nil
}

// boot boots the armed slot on trial, counts a boot of the trial slot and
// falls back once the trial used up its boots; it needs mu.
func (m *memInstaller) boot() {
	switch {
	case m.armed >= 0:
		m.booted, m.armed, m.trial, m.attempt = m.armed, -1, true, 1
	case m.trial:
		m.attempt++
		if m.attempt > m.maxAttempts {
			m.booted, m.trial, m.attempt = 1-m.booted, false, 0
		}
	}
}

func (m *memInstaller) Status(context.Context) (install.Status, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := install.Status{Booted: m.slots[m.booted], Trial: m.trial, MaxAttempts: m.maxAttempts}
	if m.trial {
		st.Attempt = m.attempt
	}
	if m.armed >= 0 {
		a := m.slots[m.armed]
		st.Armed = &a
	}
	return st, nil
}

func (m *memInstaller) CurrentImage() string {
	m.mu.Lock()
	booted := m.slots[m.booted]
	m.mu.Unlock()
	if m.currentImage == nil {
		return ""
	}
	return m.currentImage(booted)
}

// Install "writes" img into the other slot: it streams the file through
// sha256 and keeps the digest and length, as a real installer verifies
// what it wrote.
func (m *memInstaller) Install(ctx context.Context, img install.Image) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.trial {
		return install.ErrTrialRunning
	}
	m.installed = img.SHA256
	installFails, healthFails := m.inject()
	if installFails {
		return errInjectedInstall
	}
	sum, n, err := hashFile(ctx, img.Path)
	if err != nil {
		return fmt.Errorf("simulated install: reading %s: %w", img.Path, err)
	}
	if sum != img.SHA256 || n != img.Length {
		return fmt.Errorf("%w: wrote %d bytes with sha256 %s, want %d bytes with %s", install.ErrVerify, n, sum, img.Length, img.SHA256)
	}
	other := 1 - m.booted
	m.slots[other] = install.Slot{Name: slotNames[other], SHA256: sum, Length: n,
		ReleaseID: img.ReleaseID, Version: img.Version, Counter: img.Counter}
	m.unhealthy[other] = healthFails
	m.armed = other
	return nil
}

func (m *memInstaller) Reboot(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.boot()
	return nil
}

func (m *memInstaller) Commit(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.trial {
		return install.ErrNoTrial
	}
	m.trial, m.attempt = false, 0
	return nil
}

// Rollback drops the armed slot, or boots the previous slot at once.
func (m *memInstaller) Rollback(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case m.armed >= 0:
		m.armed = -1
	case m.trial:
		m.booted, m.trial, m.attempt = 1-m.booted, false, 0
	default:
		return install.ErrNoTrial
	}
	return nil
}

// health is the device's health check: the running image fails it when
// the injection said so at its install.
func (m *memInstaller) health(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.unhealthy[m.booted] {
		return errInjectedHealth
	}
	return nil
}

// running returns the booted slot and whether an update is still under
// way in the installer (a trial runs or a slot is armed).
func (m *memInstaller) running() (install.Slot, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.slots[m.booted], m.trial || m.armed >= 0
}

// lastInstalled is the sha256 of the last image Install was given.
func (m *memInstaller) lastInstalled() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.installed
}

// hashFile returns the hex sha256 and length of the file at p.
func hashFile(ctx context.Context, p string) (string, int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, ctxReader{ctx, f})
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// ctxReader stops a long read when ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

var _ install.Installer = (*memInstaller)(nil)
