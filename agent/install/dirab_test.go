package install

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/steward-iot/steward/agent/crashpoint"
)

// newDirAB returns a DirAB over a new directory with factory release v1
// provisioned and booted.
func newDirAB(t *testing.T, v1 release) (*DirAB, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "slots")
	d, err := NewDirAB(dir, DirABOptions{})
	must(t, err)
	must(t, d.Provision(context.Background(), v1.img))
	must(t, d.Boot(context.Background()))
	return d, dir
}

func reopenDirAB(t *testing.T, dir string) *DirAB {
	t.Helper()
	d, err := NewDirAB(dir, DirABOptions{})
	must(t, err)
	must(t, d.Boot(context.Background()))
	return d
}

func readEnvFile(t *testing.T, dir string) bootEnv {
	t.Helper()
	var e bootEnv
	must(t, readJSONFile(filepath.Join(dir, bootEnvFile), &e))
	return e
}

func TestDirABHappyCycle(t *testing.T) {
	ctx := context.Background()
	v1, v2, v3 := newRelease(t, "r1", 1, 3000), newRelease(t, "r2", 2, 5000), newRelease(t, "r3", 3, 700)
	d, dir := newDirAB(t, v1)

	st := mustStatus(t, d)
	wantBooted(t, st, v1)
	wantState(t, st, false, 0, nil)
	if st.Booted.Name != "a" || st.MaxAttempts != 3 {
		t.Fatalf("status %+v, want slot a, 3 attempts", st)
	}

	must(t, d.Install(ctx, v2.img))
	st = mustStatus(t, d)
	wantBooted(t, st, v1) // still runs until the reboot
	wantState(t, st, false, 0, &v2)
	if st.Armed.Name != "b" {
		t.Fatalf("armed slot %q, want b", st.Armed.Name)
	}
	if e := readEnvFile(t, dir); e != (bootEnv{BootSlot: "b", UpgradeAvailable: true, BootLimit: 3}) {
		t.Fatalf("bootenv after Install = %+v", e)
	}

	must(t, d.Reboot(ctx))
	st = mustStatus(t, d)
	wantBooted(t, st, v2)
	wantState(t, st, true, 1, nil)
	if st.Booted.Name != "b" || st.MaxAttempts != 3 {
		t.Fatalf("status %+v", st)
	}
	got, err := os.ReadFile(d.CurrentImage())
	must(t, err)
	if !bytes.Equal(got, v2.data) {
		t.Fatal("CurrentImage does not hold the new image")
	}

	must(t, d.Commit(ctx))
	st = mustStatus(t, d)
	wantBooted(t, st, v2)
	wantState(t, st, false, 0, nil)

	// A power cycle boots the committed slot, no trial.
	d = reopenDirAB(t, dir)
	st = mustStatus(t, d)
	wantBooted(t, st, v2)
	wantState(t, st, false, 0, nil)

	// The next release goes to slot a, over the factory image.
	must(t, d.Install(ctx, v3.img))
	must(t, d.Reboot(ctx))
	must(t, d.Commit(ctx))
	st = mustStatus(t, d)
	wantBooted(t, st, v3)
	if st.Booted.Name != "a" {
		t.Fatalf("third release booted from %s, want a", st.Booted.Name)
	}
}

func TestDirABHealthFailureReturnsToOldSlot(t *testing.T) {
	ctx := context.Background()
	v1, v2 := newRelease(t, "r1", 1, 2000), newRelease(t, "r2", 2, 2000)
	for _, restart := range []bool{false, true} {
		t.Run(map[bool]string{false: "reboot", true: "power-cycle"}[restart], func(t *testing.T) {
			d, dir := newDirAB(t, v1)
			must(t, d.Install(ctx, v2.img))
			for attempt := 1; attempt <= 3; attempt++ {
				if restart {
					d = reopenDirAB(t, dir)
				} else {
					must(t, d.Reboot(ctx))
				}
				st := mustStatus(t, d)
				wantBooted(t, st, v2)
				wantState(t, st, true, attempt, nil)
			}
			// The fourth boot is the bootloader's altbootcmd.
			if restart {
				d = reopenDirAB(t, dir)
			} else {
				must(t, d.Reboot(ctx))
			}
			st := mustStatus(t, d)
			wantBooted(t, st, v1)
			wantState(t, st, false, 0, nil)
			if e := readEnvFile(t, dir); e != (bootEnv{BootSlot: "a", BootLimit: 3}) {
				t.Fatalf("bootenv after the trial ran out = %+v", e)
			}
			wantErr(t, d.Commit(ctx), ErrNoTrial)
		})
	}
}

func TestDirABMaxAttemptsOption(t *testing.T) {
	ctx := context.Background()
	v1, v2 := newRelease(t, "r1", 1, 100), newRelease(t, "r2", 2, 100)
	dir := t.TempDir()
	d, err := NewDirAB(dir, DirABOptions{MaxAttempts: 1})
	must(t, err)
	must(t, d.Provision(ctx, v1.img))
	must(t, d.Boot(ctx))
	must(t, d.Install(ctx, v2.img))
	must(t, d.Reboot(ctx))
	st := mustStatus(t, d)
	if st.MaxAttempts != 1 || st.Attempt != 1 {
		t.Fatalf("status %+v, want attempt 1 of 1", st)
	}
	must(t, d.Reboot(ctx))
	wantBooted(t, mustStatus(t, d), v1)

	for _, n := range []int{-1, 101} {
		if _, err := NewDirAB(dir, DirABOptions{MaxAttempts: n}); err == nil || !strings.Contains(err.Error(), "MaxAttempts") {
			t.Errorf("MaxAttempts %d: err = %v", n, err)
		}
	}
	if _, err := NewDirAB("", DirABOptions{}); err == nil {
		t.Error("empty directory accepted")
	}
	file := filepath.Join(dir, "file")
	must(t, os.WriteFile(file, nil, 0o600))
	if _, err := NewDirAB(file, DirABOptions{}); err == nil {
		t.Error("a file accepted as the slots directory")
	}
}

func TestDirABRollback(t *testing.T) {
	ctx := context.Background()
	v1, v2 := newRelease(t, "r1", 1, 1000), newRelease(t, "r2", 2, 1000)
	d, dir := newDirAB(t, v1)
	wantErr(t, d.Rollback(ctx), ErrNoTrial)

	// Armed, not booted: Rollback disarms; v1 keeps running.
	must(t, d.Install(ctx, v2.img))
	must(t, d.Rollback(ctx))
	st := mustStatus(t, d)
	wantBooted(t, st, v1)
	wantState(t, st, false, 0, nil)
	wantErr(t, d.Reboot(ctx), ErrNothingArmed)

	// On trial: Rollback boots the previous slot.
	must(t, d.Install(ctx, v2.img))
	must(t, d.Reboot(ctx))
	must(t, d.Rollback(ctx))
	st = mustStatus(t, d)
	wantBooted(t, st, v1)
	wantState(t, st, false, 0, nil)
	d = reopenDirAB(t, dir)
	wantBooted(t, mustStatus(t, d), v1)

	// A previous slot that no longer verifies cannot be returned to.
	must(t, d.Install(ctx, v2.img))
	must(t, d.Reboot(ctx))
	must(t, os.WriteFile(filepath.Join(dir, "a", imageFile), []byte("bit rot"), 0o600))
	err := d.Rollback(ctx)
	if err == nil || !strings.Contains(err.Error(), "cannot roll back") {
		t.Fatalf("Rollback onto a damaged slot: %v", err)
	}
	st = mustStatus(t, d)
	wantBooted(t, st, v2)
	wantState(t, st, true, 1, nil)
}

func TestDirABRefusals(t *testing.T) {
	ctx := context.Background()
	v1, v2, v3 := newRelease(t, "r1", 1, 100), newRelease(t, "r2", 2, 100), newRelease(t, "r3", 3, 100)
	d, _ := newDirAB(t, v1)
	wantErr(t, d.Commit(ctx), ErrNoTrial)
	wantErr(t, d.Reboot(ctx), ErrNothingArmed)
	must(t, d.Install(ctx, v2.img))
	must(t, d.Reboot(ctx))
	wantErr(t, d.Install(ctx, v3.img), ErrTrialRunning)
	st := mustStatus(t, d)
	wantBooted(t, st, v2)
	wantState(t, st, true, 1, nil)

	bad := v3.img
	bad.SHA256 = "ABC"
	if err := d.Install(ctx, bad); err == nil || !strings.Contains(err.Error(), "sha256") {
		t.Fatalf("bad sha256 accepted: %v", err)
	}

	// Before Boot nothing works.
	fresh, err := NewDirAB(t.TempDir(), DirABOptions{})
	must(t, err)
	_, err = fresh.Status(ctx)
	wantErr(t, err, ErrNotBooted)
	wantErr(t, fresh.Install(ctx, v2.img), ErrNotBooted)
	if fresh.CurrentImage() != "" {
		t.Fatal("CurrentImage before Boot")
	}
}

// TestDirABVerifyFailure: an image file that is not what the Image says
// is refused with ErrVerify; nothing is armed and the running slot stays.
func TestDirABVerifyFailure(t *testing.T) {
	ctx := context.Background()
	v1, v2 := newRelease(t, "r1", 1, 4000), newRelease(t, "r2", 2, 4000)
	cases := map[string][]byte{
		"shorter":   v2.data[:3000],
		"longer":    append(slices.Clone(v2.data), 'x'),
		"different": append(slices.Clone(v2.data[:3999]), v2.data[3999]^1),
		"empty":     nil,
	}
	for name, content := range cases {
		t.Run(name, func(t *testing.T) {
			d, dir := newDirAB(t, v1)
			img := v2.img
			img.Path = filepath.Join(t.TempDir(), "img")
			must(t, os.WriteFile(img.Path, content, 0o600))
			wantErr(t, d.Install(ctx, img), ErrVerify)
			st := mustStatus(t, d)
			wantBooted(t, st, v1)
			wantState(t, st, false, 0, nil)
			wantErr(t, d.Reboot(ctx), ErrNothingArmed)
			if e := readEnvFile(t, dir); e.BootSlot != "a" || e.UpgradeAvailable {
				t.Fatalf("bootenv %+v after a failed install", e)
			}
			if _, err := os.Stat(filepath.Join(dir, "b", imageFile)); !os.IsNotExist(err) {
				t.Fatalf("the unverified image was left in slot b: %v", err)
			}
			// A restart still boots the factory image.
			wantBooted(t, mustStatus(t, reopenDirAB(t, dir)), v1)
		})
	}
}

// TestDirABReadBackFailure: a write that does not reach the disk as meant
// (here: bit rot right after the flush) fails verification.
func TestDirABReadBackFailure(t *testing.T) {
	ctx := context.Background()
	v1, v2 := newRelease(t, "r1", 1, 4000), newRelease(t, "r2", 2, 4000)
	d, dir := newDirAB(t, v1)
	crashpoint.Set(func(name string) {
		if name == "install/ab-dir/image-synced" {
			f, err := os.OpenFile(filepath.Join(dir, "b", imageFile), os.O_WRONLY, 0)
			if err == nil {
				f.WriteAt([]byte{0xff, 0xfe}, 100)
				f.Close()
			}
		}
	})
	err := d.Install(ctx, v2.img)
	crashpoint.Set(nil)
	wantErr(t, err, ErrVerify)
	if !strings.Contains(err.Error(), "read back") {
		t.Fatalf("error does not say the read-back failed: %v", err)
	}
	st := mustStatus(t, d)
	wantBooted(t, st, v1)
	wantState(t, st, false, 0, nil)
}

func TestDirABNoSpace(t *testing.T) {
	ctx := context.Background()
	v1, v2 := newRelease(t, "r1", 1, 1000), newRelease(t, "r2", 2, 1<<20)
	d, dir := newDirAB(t, v1)
	d.free = func(string) (int64, bool, error) { return 512 << 10, true, nil }
	err := d.Install(ctx, v2.img)
	wantErr(t, err, ErrNoSpace)
	if !strings.Contains(err.Error(), "bytes free") {
		t.Fatalf("error does not say how much is free: %v", err)
	}
	wantState(t, mustStatus(t, d), false, 0, nil)
	if _, err := os.Stat(filepath.Join(dir, "b", imageFile)); !os.IsNotExist(err) {
		t.Fatal("a partial image was written")
	}
	// The space the old image in slot b frees counts.
	d.free = func(string) (int64, bool, error) { return 2 << 20, true, nil }
	must(t, d.Install(ctx, v2.img))
	must(t, d.Rollback(ctx))
	d.free = func(string) (int64, bool, error) { return 100 << 10, true, nil }
	v3 := newRelease(t, "r3", 3, 1<<20)
	must(t, d.Install(ctx, v3.img))
	// Unknown free space: the check passes.
	d.free = func(string) (int64, bool, error) { return 0, false, nil }
	must(t, d.Rollback(ctx))
	must(t, d.Install(ctx, v2.img))
}

// TestDirABDamagedBootEnv: garbage in bootenv.json is an error outside
// the boot step; the boot step uses the default environment and boots a
// verified slot.
func TestDirABDamagedBootEnv(t *testing.T) {
	ctx := context.Background()
	v1, v2 := newRelease(t, "r1", 1, 1000), newRelease(t, "r2", 2, 1000)
	for name, content := range map[string]string{
		"garbage":       "\x00\x01not json",
		"truncated":     `{"boot_slot": "b", "upgrade_av`,
		"unknown slot":  `{"boot_slot": "c", "bootlimit": 3}`,
		"bad bootlimit": `{"boot_slot": "a", "bootlimit": 0}`,
		"trailing":      `{"boot_slot": "a", "bootlimit": 3} {}`,
		"huge":          strings.Repeat(" ", maxMetaFile+1) + `{"boot_slot": "a", "bootlimit": 3}`,
	} {
		t.Run(name, func(t *testing.T) {
			d, dir := newDirAB(t, v1)
			must(t, d.Install(ctx, v2.img))
			must(t, d.Reboot(ctx))
			must(t, d.Commit(ctx)) // b runs v2; a still holds v1
			must(t, os.WriteFile(filepath.Join(dir, bootEnvFile), []byte(content), 0o600))
			_, err := d.Status(ctx)
			if err == nil || !strings.Contains(err.Error(), "boot environment") {
				t.Fatalf("Status with a damaged environment: %v", err)
			}
			d = reopenDirAB(t, dir)
			st := mustStatus(t, d)
			wantBooted(t, st, v1) // the default environment boots a
			wantState(t, st, false, 0, nil)
			if e := readEnvFile(t, dir); e != (bootEnv{BootSlot: "a", BootLimit: 3}) {
				t.Fatalf("environment not restored: %+v", e)
			}
		})
	}
}

// TestDirABDamagedSlot: a slot whose slot.json or image is damaged never
// boots; the other slot does, or, with both damaged, nothing.
func TestDirABDamagedSlot(t *testing.T) {
	ctx := context.Background()
	v1, v2 := newRelease(t, "r1", 1, 1000), newRelease(t, "r2", 2, 1000)
	damage := map[string]func(dir string){
		"slot.json garbage": func(dir string) {
			os.WriteFile(filepath.Join(dir, "b", slotFile), []byte("{{{"), 0o600)
		},
		"slot.json of another slot": func(dir string) {
			data, _ := os.ReadFile(filepath.Join(dir, "a", slotFile))
			os.WriteFile(filepath.Join(dir, "b", slotFile), data, 0o600)
		},
		"slot.json missing": func(dir string) { os.Remove(filepath.Join(dir, "b", slotFile)) },
		"image bit flip": func(dir string) {
			p := filepath.Join(dir, "b", imageFile)
			data, _ := os.ReadFile(p)
			data[500] ^= 0x10
			os.WriteFile(p, data, 0o600)
		},
		"image truncated": func(dir string) { os.Truncate(filepath.Join(dir, "b", imageFile), 999) },
		"image missing":   func(dir string) { os.Remove(filepath.Join(dir, "b", imageFile)) },
	}
	for name, f := range damage {
		t.Run(name, func(t *testing.T) {
			d, dir := newDirAB(t, v1)
			must(t, d.Install(ctx, v2.img))
			f(dir) // between arming and booting
			must(t, d.Reboot(ctx))
			st := mustStatus(t, d)
			wantBooted(t, st, v1)
			wantState(t, st, false, 0, nil)
			if e := readEnvFile(t, dir); e.BootSlot != "a" || e.UpgradeAvailable {
				t.Fatalf("environment still points at the damaged slot: %+v", e)
			}
			// Install repairs the slot.
			must(t, d.Install(ctx, v2.img))
			must(t, d.Reboot(ctx))
			wantBooted(t, mustStatus(t, d), v2)
		})
	}
	t.Run("both slots", func(t *testing.T) {
		d, dir := newDirAB(t, v1)
		must(t, d.Install(ctx, v2.img))
		damage["image bit flip"](dir)
		must(t, os.WriteFile(filepath.Join(dir, "a", imageFile), []byte("x"), 0o600))
		err := d.Reboot(ctx)
		wantErr(t, err, ErrNoBootableSlot)
		if !strings.Contains(err.Error(), "slot a") || !strings.Contains(err.Error(), "slot b") {
			t.Fatalf("error does not name both slots: %v", err)
		}
	})
}

func TestDirABProvision(t *testing.T) {
	ctx := context.Background()
	v1, v2 := newRelease(t, "r1", 1, 1000), newRelease(t, "r2", 2, 1000)
	dir := t.TempDir()
	d, err := NewDirAB(dir, DirABOptions{})
	must(t, err)
	wantErr(t, d.Boot(ctx), ErrNotProvisioned)

	// A Provision cut short can be repeated.
	if p := crashAt(3, func() { d.Provision(ctx, v2.img) }); p == "" {
		t.Fatal("Provision passed fewer than 3 crash points")
	}
	d, err = NewDirAB(dir, DirABOptions{})
	must(t, err)
	must(t, d.Provision(ctx, v1.img))
	wantErr(t, d.Provision(ctx, v1.img), ErrProvisioned)
	must(t, d.Boot(ctx))
	wantBooted(t, mustStatus(t, d), v1)

	// A factory image needs no release id.
	anon := v1.img
	anon.ReleaseID, anon.Version, anon.Counter = "", "", 0
	d2, err := NewDirAB(t.TempDir(), DirABOptions{})
	must(t, err)
	must(t, d2.Provision(ctx, anon))
	must(t, d2.Boot(ctx))
	if st := mustStatus(t, d2); st.Booted.ReleaseID != "" || st.Booted.SHA256 != v1.img.SHA256 {
		t.Fatalf("status %+v", st)
	}
	// Slots but no environment (lost): the default boots slot a.
	must(t, os.Remove(filepath.Join(dir, bootEnvFile)))
	wantBooted(t, mustStatus(t, reopenDirAB(t, dir)), v1)
}

// TestDirABReinstall: installing what the other slot already holds, or a
// re-release of the same bytes, copies nothing and records the release.
func TestDirABReinstall(t *testing.T) {
	ctx := context.Background()
	v1, v2 := newRelease(t, "r1", 1, 3000), newRelease(t, "r2", 2, 3000)
	d, _ := newDirAB(t, v1)
	must(t, d.Install(ctx, v2.img))
	var names []string
	names = recordCrashPoints(t, func() { must(t, d.Install(ctx, v2.img)) })
	if slices.Contains(names, "install/ab-dir/image-truncated") {
		t.Fatal("the same image was copied again")
	}
	v2b := reRelease(t, v2, "r2-again", 5)
	names = recordCrashPoints(t, func() { must(t, d.Install(ctx, v2b.img)) })
	if slices.Contains(names, "install/ab-dir/image-truncated") {
		t.Fatal("a re-release was copied again")
	}
	wantState(t, mustStatus(t, d), false, 0, &v2b)
	must(t, d.Reboot(ctx))
	wantBooted(t, mustStatus(t, d), v2b)
	must(t, d.Commit(ctx))

	// The running release again: written to the other slot, a fresh copy.
	names = recordCrashPoints(t, func() { must(t, d.Install(ctx, v2b.img)) })
	if !slices.Contains(names, "install/ab-dir/image-truncated") {
		t.Fatal("reinstalling the running release did not write the other slot")
	}
	must(t, d.Reboot(ctx))
	st := mustStatus(t, d)
	wantBooted(t, st, v2b)
	if st.Booted.Name != "a" {
		t.Fatalf("booted %s", st.Booted.Name)
	}
}

// TestDirABContextCanceled: a canceled Install leaves the running slot
// and nothing armed.
func TestDirABContextCanceled(t *testing.T) {
	v1, v2 := newRelease(t, "r1", 1, 1000), newRelease(t, "r2", 2, 1<<20)
	d, _ := newDirAB(t, v1)
	ctx, cancel := context.WithCancel(context.Background())
	crashpoint.Set(func(name string) {
		if name == "install/ab-dir/image-partial" {
			cancel()
		}
	})
	err := d.Install(ctx, v2.img)
	crashpoint.Set(nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	wantState(t, mustStatus(t, d), false, 0, nil)
}

// TestDirABSymlinkInSlot: a symlink planted where the image goes is
// replaced, not written through.
func TestDirABSymlinkInSlot(t *testing.T) {
	v1, v2 := newRelease(t, "r1", 1, 1000), newRelease(t, "r2", 2, 1000)
	d, dir := newDirAB(t, v1)
	victim := filepath.Join(t.TempDir(), "victim")
	must(t, os.WriteFile(victim, []byte("precious"), 0o600))
	must(t, os.MkdirAll(filepath.Join(dir, "b"), 0o700))
	must(t, os.Symlink(victim, filepath.Join(dir, "b", imageFile)))
	updateCycle(t, d, v2)
	if got := readText(t, victim); got != "precious" {
		t.Fatalf("the install wrote through a symlink: %q", got)
	}
}
