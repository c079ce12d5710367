package simulator

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/steward-iot/steward/agent/install"
)

func imageFile(t *testing.T, content string) install.Image {
	t.Helper()
	p := filepath.Join(t.TempDir(), "img")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(content))
	return install.Image{Path: p, Length: int64(len(content)), SHA256: hex.EncodeToString(sum[:]), ReleaseID: "r2", Version: "2.0.0", Counter: 2}
}

func status(t *testing.T, m *memInstaller) install.Status {
	t.Helper()
	st, err := m.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestMemInstallerTrialAndFallback walks the installer through the
// contract: install arms the other slot, reboot boots it on trial, the
// bootloader counts trial boots and goes back by itself after MaxAttempts;
// commit keeps a trial.
func TestMemInstallerTrialAndFallback(t *testing.T) {
	ctx := context.Background()
	factory := install.Slot{Name: "a", Version: "1.0.0", Counter: 1, SHA256: "00"}
	healthFails := true
	m := newMemInstaller(factory, 3, func() (bool, bool) { return false, healthFails }, nil)
	img := imageFile(t, "release 2.0.0")

	if err := m.Install(ctx, img); err != nil {
		t.Fatal(err)
	}
	st := status(t, m)
	if st.Booted != factory || st.Trial || st.Armed == nil || st.Armed.Name != "b" || st.Armed.SHA256 != img.SHA256 ||
		st.Armed.Length != img.Length || st.Armed.Version != "2.0.0" || st.Armed.Counter != 2 {
		t.Fatalf("after install: %+v armed %+v", st, st.Armed)
	}
	if err := m.Reboot(ctx); err != nil {
		t.Fatal(err)
	}
	if st = status(t, m); st.Booted.Name != "b" || !st.Trial || st.Attempt != 1 || st.MaxAttempts != 3 || st.Armed != nil {
		t.Fatalf("after the first reboot: %+v", st)
	}
	if err := m.Install(ctx, img); !errors.Is(err, install.ErrTrialRunning) {
		t.Errorf("install during a trial: %v", err)
	}
	if err := m.health(ctx); !errors.Is(err, errInjectedHealth) {
		t.Errorf("health of the bad image: %v", err)
	}
	for attempt := 2; attempt <= 3; attempt++ {
		_ = m.Reboot(ctx)
		if st = status(t, m); !st.Trial || st.Attempt != attempt {
			t.Fatalf("boot %d: %+v", attempt, st)
		}
	}
	// The fourth boot of a trial allowed three goes back.
	_ = m.Reboot(ctx)
	if st = status(t, m); st.Booted != factory || st.Trial {
		t.Fatalf("after the trial used up its boots: %+v", st)
	}
	if err := m.health(ctx); err != nil {
		t.Errorf("the factory image is unhealthy: %v", err)
	}
	if err := m.Commit(ctx); !errors.Is(err, install.ErrNoTrial) {
		t.Errorf("commit without a trial: %v", err)
	}

	// A healthy image committed stays.
	healthFails = false
	if err := m.Install(ctx, img); err != nil {
		t.Fatal(err)
	}
	_ = m.Reboot(ctx)
	if err := m.health(ctx); err != nil {
		t.Fatal(err)
	}
	if err := m.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	_ = m.Reboot(ctx)
	if slot, busy := m.running(); busy || slot.Name != "b" || slot.Version != "2.0.0" {
		t.Errorf("after commit and a reboot: %+v busy %v", slot, busy)
	}
	if m.lastInstalled() != img.SHA256 {
		t.Errorf("last installed %s", m.lastInstalled())
	}
}

func TestMemInstallerRollback(t *testing.T) {
	ctx := context.Background()
	factory := install.Slot{Name: "b", Version: "1.0.0"}
	m := newMemInstaller(factory, 2, func() (bool, bool) { return false, false }, nil)
	if err := m.Rollback(ctx); !errors.Is(err, install.ErrNoTrial) {
		t.Errorf("rollback of nothing: %v", err)
	}
	img := imageFile(t, "two")
	_ = m.Install(ctx, img)
	if err := m.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if st := status(t, m); st.Armed != nil || st.Booted != factory {
		t.Fatalf("rollback of an armed slot: %+v", st)
	}
	_ = m.Install(ctx, img)
	_ = m.Reboot(ctx)
	if st := status(t, m); st.Booted.Name != "a" || !st.Trial {
		t.Fatalf("trial: %+v", st)
	}
	if err := m.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if st := status(t, m); st.Booted != factory || st.Trial {
		t.Fatalf("rollback of a trial: %+v", st)
	}
	// Boot is a power-on, which counts trial boots like Reboot.
	_ = m.Install(ctx, img)
	_ = m.Boot(ctx)
	_ = m.Boot(ctx)
	_ = m.Boot(ctx)
	if st := status(t, m); st.Booted != factory || st.Trial {
		t.Fatalf("after three power-ons of a trial allowed two: %+v", st)
	}
}

// TestMemInstallerVerifiesAndFails: Install hashes what it "writes" and
// refuses an image that does not match; an injected failure fails it.
func TestMemInstallerVerifiesAndFails(t *testing.T) {
	ctx := context.Background()
	fail := true
	m := newMemInstaller(install.Slot{Name: "a"}, 3, func() (bool, bool) { return fail, false }, nil)
	img := imageFile(t, "the image")
	if err := m.Install(ctx, img); !errors.Is(err, errInjectedInstall) {
		t.Errorf("injected failure: %v", err)
	}
	fail = false
	bad := img
	bad.Length++
	if err := m.Install(ctx, bad); !errors.Is(err, install.ErrVerify) {
		t.Errorf("wrong length: %v", err)
	}
	bad = img
	bad.SHA256 = hex.EncodeToString(make([]byte, 32))
	if err := m.Install(ctx, bad); !errors.Is(err, install.ErrVerify) {
		t.Errorf("wrong hash: %v", err)
	}
	if err := os.Truncate(img.Path, 3); err != nil {
		t.Fatal(err)
	}
	if err := m.Install(ctx, img); !errors.Is(err, install.ErrVerify) {
		t.Errorf("damaged file: %v", err)
	}
	if st := status(t, m); st.Armed != nil {
		t.Errorf("a refused image was armed: %+v", st.Armed)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := m.Install(cancelled, imageFile(t, "x")); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled install: %v", err)
	}
}

func TestMemInstallerCurrentImage(t *testing.T) {
	img := imageFile(t, "factory")
	u := &updater{images: map[string]factoryImage{"1.0.0": {path: img.Path, sha256: img.SHA256, length: img.Length}}}
	slot := u.factorySlot("1.0.0")
	m := newMemInstaller(*slot, 3, nil, u.currentImage)
	if got := m.CurrentImage(); got != img.Path {
		t.Errorf("current image %q, want the factory file", got)
	}
	if other := newMemInstaller(*u.factorySlot("0.9.0"), 3, nil, u.currentImage); other.CurrentImage() != "" {
		t.Error("a version without a file has a current image")
	}
	changed := *slot
	changed.SHA256 = "ff"
	if newMemInstaller(changed, 3, nil, u.currentImage).CurrentImage() != "" {
		t.Error("a slot holding other bytes than the file has it as its current image")
	}
}

// TestInjectionIsSeeded: a device's n-th install fails the same way in
// every run with the same seed, and the rates hold over many draws.
func TestInjectionIsSeeded(t *testing.T) {
	draws := func(seed uint64) []bool {
		u := &updater{cfg: UpdateConfig{Seed: seed, InstallFailureRate: 0.3, HealthFailureRate: 0.5, MaxAttempts: 3}, workDir: t.TempDir()}
		var out []bool
		for i := range 200 {
			d := &device{index: i}
			d.running.Store(&install.Slot{Name: "a"})
			if err := u.begin(d); err != nil {
				t.Fatal(err)
			}
			for range 5 {
				inst, health := d.upd.inst.inject()
				out = append(out, inst, health)
			}
		}
		return out
	}
	a, b, c := draws(42), draws(42), draws(43)
	same, installFails, healthFails := true, 0, 0
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("draw %d differs with the same seed", i)
		}
		same = same && a[i] == c[i]
		if a[i] && i%2 == 0 {
			installFails++
		} else if a[i] {
			healthFails++
		}
	}
	if same {
		t.Error("another seed drew the same")
	}
	// 1000 draws each: 300 ± 4.5σ and 500 ± 4.5σ.
	if installFails < 235 || installFails > 365 || healthFails < 430 || healthFails > 570 {
		t.Errorf("%d install and %d health failures in 1000 draws at 30%% and 50%%", installFails, healthFails)
	}
}
