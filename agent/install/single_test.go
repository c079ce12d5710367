package install

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func newSingle(t *testing.T, v1 release) (*SingleSlot, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "single")
	s, err := NewSingleSlot(dir, SingleSlotOptions{})
	must(t, err)
	must(t, s.Provision(context.Background(), v1.img))
	must(t, s.Boot(context.Background()))
	return s, dir
}

func reopenSingle(t *testing.T, dir string) *SingleSlot {
	t.Helper()
	s, err := NewSingleSlot(dir, SingleSlotOptions{})
	must(t, err)
	must(t, s.Boot(context.Background()))
	return s
}

func TestSingleSlotHappyCycle(t *testing.T) {
	ctx := context.Background()
	v1, v2 := newRelease(t, "r1", 1, 3000), newRelease(t, "r2", 2, 6000)
	s, dir := newSingle(t, v1)
	st := mustStatus(t, s)
	wantBooted(t, st, v1)
	wantState(t, st, false, 0, nil)
	if st.Booted.Name != "primary" {
		t.Fatalf("booted %q", st.Booted.Name)
	}

	must(t, s.Install(ctx, v2.img))
	st = mustStatus(t, s)
	wantBooted(t, st, v1)
	wantState(t, st, false, 0, &v2)

	must(t, s.Reboot(ctx))
	st = mustStatus(t, s)
	wantBooted(t, st, v2)
	wantState(t, st, true, 1, nil)
	got, err := os.ReadFile(s.CurrentImage())
	must(t, err)
	if !bytes.Equal(got, v2.data) {
		t.Fatal("the primary image is not the new one")
	}
	if _, err := os.Stat(filepath.Join(dir, stagingName, imageFile)); !os.IsNotExist(err) {
		t.Fatal("the staging image was not consumed")
	}

	// Another trial boot counts.
	s = reopenSingle(t, dir)
	wantState(t, mustStatus(t, s), true, 2, nil)
	must(t, s.Commit(ctx))
	s = reopenSingle(t, dir)
	st = mustStatus(t, s)
	wantBooted(t, st, v2)
	wantState(t, st, false, 0, nil)
}

// TestSingleSlotNoRollback: a failed trial cannot go back; Rollback says
// so and ends the trial, so that a fixed release can be installed.
func TestSingleSlotNoRollback(t *testing.T) {
	ctx := context.Background()
	v1, v2, v3 := newRelease(t, "r1", 1, 1000), newRelease(t, "r2", 2, 1000), newRelease(t, "r3", 3, 1000)
	s, _ := newSingle(t, v1)
	wantErr(t, s.Rollback(ctx), ErrNoTrial)
	must(t, s.Install(ctx, v2.img))

	// A pending image can still be given up.
	must(t, s.Rollback(ctx))
	wantState(t, mustStatus(t, s), false, 0, nil)
	wantErr(t, s.Reboot(ctx), ErrNothingArmed)

	must(t, s.Install(ctx, v2.img))
	must(t, s.Reboot(ctx))
	wantErr(t, s.Install(ctx, v3.img), ErrTrialRunning)
	// The bootloader never leaves the trial by itself.
	for i := 2; i <= 5; i++ {
		must(t, s.Reboot(ctx))
		wantState(t, mustStatus(t, s), true, i, nil)
	}
	err := s.Rollback(ctx)
	wantErr(t, err, ErrNoRollback)
	if !strings.Contains(err.Error(), "r2") {
		t.Fatalf("error does not name the release that stays: %v", err)
	}
	st := mustStatus(t, s)
	wantBooted(t, st, v2)
	wantState(t, st, false, 0, nil)
	updateCycle(t, s, v3)
}

func TestSingleSlotVerifyFailure(t *testing.T) {
	ctx := context.Background()
	v1, v2 := newRelease(t, "r1", 1, 2000), newRelease(t, "r2", 2, 2000)
	s, dir := newSingle(t, v1)
	img := v2.img
	img.Path = filepath.Join(t.TempDir(), "short")
	must(t, os.WriteFile(img.Path, v2.data[:1000], 0o600))
	wantErr(t, s.Install(ctx, img), ErrVerify)
	wantState(t, mustStatus(t, s), false, 0, nil)
	wantErr(t, s.Reboot(ctx), ErrNothingArmed)
	wantBooted(t, mustStatus(t, reopenSingle(t, dir)), v1)
}

// TestSingleSlotStagingDamaged: a staged image damaged after Install is
// dropped by the bootloader; the old image boots.
func TestSingleSlotStagingDamaged(t *testing.T) {
	ctx := context.Background()
	v1, v2 := newRelease(t, "r1", 1, 2000), newRelease(t, "r2", 2, 2000)
	for name, damage := range map[string]func(dir string){
		"image": func(dir string) {
			os.WriteFile(filepath.Join(dir, stagingName, imageFile), v1.data, 0o600)
		},
		"metadata": func(dir string) {
			os.WriteFile(filepath.Join(dir, stagingName, slotFile), []byte(`{"name":"staging"}`), 0o600)
		},
	} {
		t.Run(name, func(t *testing.T) {
			s, dir := newSingle(t, v1)
			must(t, s.Install(ctx, v2.img))
			damage(dir)
			must(t, s.Reboot(ctx))
			st := mustStatus(t, s)
			wantBooted(t, st, v1)
			wantState(t, st, false, 0, nil)
			if fileHash(t, s.CurrentImage(), -1) != v1.img.SHA256 {
				t.Fatal("the primary image changed")
			}
		})
	}
}

// TestSingleSlotDamagedState: damaged state.json is an error outside the
// boot step; the boot step boots the verified primary image, no trial.
// Damaged primary metadata or image stops the boot: nothing verified is
// left to boot.
func TestSingleSlotDamagedState(t *testing.T) {
	ctx := context.Background()
	v1, v2 := newRelease(t, "r1", 1, 2000), newRelease(t, "r2", 2, 2000)
	s, dir := newSingle(t, v1)
	must(t, s.Install(ctx, v2.img))
	must(t, os.WriteFile(filepath.Join(dir, singleStateFile), []byte(`{"pending": true, "trial": true}`), 0o600))
	if _, err := s.Status(ctx); err == nil || !strings.Contains(err.Error(), "restart the agent") {
		t.Fatalf("Status with damaged state: %v", err)
	}
	s = reopenSingle(t, dir)
	st := mustStatus(t, s)
	wantBooted(t, st, v1)
	wantState(t, st, false, 0, nil)

	must(t, os.WriteFile(filepath.Join(dir, primaryName, imageFile), v2.data, 0o600))
	s2, err := NewSingleSlot(dir, SingleSlotOptions{})
	must(t, err)
	wantErr(t, s2.Boot(ctx), ErrNoBootableSlot)
	must(t, os.WriteFile(filepath.Join(dir, primaryName, slotFile), []byte("garbage"), 0o600))
	wantErr(t, s2.Boot(ctx), ErrNoBootableSlot)
	must(t, os.Remove(filepath.Join(dir, primaryName, slotFile)))
	wantErr(t, s2.Boot(ctx), ErrNotProvisioned)
}

func TestSingleSlotNoSpace(t *testing.T) {
	ctx := context.Background()
	v1, v2 := newRelease(t, "r1", 1, 1000), newRelease(t, "r2", 2, 1<<20)
	s, _ := newSingle(t, v1)
	s.free = func(string) (int64, bool, error) { return 1 << 20, true, nil } // the image, but not the reserve
	wantErr(t, s.Install(ctx, v2.img), ErrNoSpace)
	wantState(t, mustStatus(t, s), false, 0, nil)
	s.free = func(string) (int64, bool, error) { return 2 << 20, true, nil }
	updateCycle(t, s, v2)
}

func TestSingleSlotReinstallAndProvision(t *testing.T) {
	ctx := context.Background()
	v1, v2 := newRelease(t, "r1", 1, 1000), newRelease(t, "r2", 2, 1000)
	s, _ := newSingle(t, v1)
	wantErr(t, s.Provision(ctx, v1.img), ErrProvisioned)
	must(t, s.Install(ctx, v2.img))
	v2b := reRelease(t, v2, "r2b", 7)
	names := recordCrashPoints(t, func() { must(t, s.Install(ctx, v2b.img)) })
	for _, n := range names {
		if n == "install/single-slot/image-truncated" {
			t.Fatal("the staged bytes were copied again")
		}
	}
	wantState(t, mustStatus(t, s), false, 0, &v2b)
	must(t, s.Reboot(ctx))
	wantBooted(t, mustStatus(t, s), v2b)

	empty, err := NewSingleSlot(t.TempDir(), SingleSlotOptions{})
	must(t, err)
	wantErr(t, empty.Boot(ctx), ErrNotProvisioned)
	if _, err := NewSingleSlot("", SingleSlotOptions{}); err == nil {
		t.Fatal("empty directory accepted")
	}
	if _, err := NewSingleSlot(t.TempDir(), SingleSlotOptions{MaxAttempts: -2}); err == nil {
		t.Fatal("negative MaxAttempts accepted")
	}
}
