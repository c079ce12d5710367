package install

import (
	"context"
	"path/filepath"
	"testing"
)

// sweepFixture is an installer with release old committed, and the means
// to restart it as a power cut would.
type sweepFixture struct {
	in  Installer
	old release
	// restart drops the installer and starts a new one over the same
	// persistent state: power-on (the bootloader's boot step), then Boot.
	restart func(t *testing.T) Installer
	// bootedHash hashes the bytes the booted slot really holds, first
	// st.Booted.Length of them.
	bootedHash func(t *testing.T, in Installer, st Status) string
}

// updateCycle is what the agent does for one update.
func updateCycle(t *testing.T, in Installer, r release) {
	ctx := context.Background()
	must(t, in.Install(ctx, r.img))
	must(t, in.Reboot(ctx))
	st := mustStatus(t, in)
	wantBooted(t, st, r)
	wantState(t, st, true, 1, nil)
	must(t, in.Commit(ctx))
}

// finishUpdate drives in to r committed from wherever a power cut left
// it, as the agent would: commit a trial of r, else (re)install r.
func finishUpdate(t *testing.T, in Installer, r release) {
	t.Helper()
	ctx := context.Background()
	for step := 0; step < 8; step++ {
		st := mustStatus(t, in)
		isNew := st.Booted.ReleaseID == r.img.ReleaseID
		switch {
		case st.Trial && isNew:
			must(t, in.Commit(ctx))
		case st.Trial:
			must(t, in.Rollback(ctx))
		case isNew && st.Armed == nil:
			return
		default:
			must(t, in.Install(ctx, r.img))
			must(t, in.Reboot(ctx))
		}
	}
	t.Fatalf("the update did not finish: %+v", mustStatus(t, in))
}

// crashSweep cuts the power at every crash point of an update cycle in
// turn and checks that the device boots a complete, verified image of the
// old or the new release, and that retrying the update then succeeds. It
// returns the number of crash points.
func crashSweep(t *testing.T, setup func(t *testing.T) sweepFixture, newRel func(t *testing.T) release) int {
	fx := setup(t)
	r := newRel(t)
	names := recordCrashPoints(t, func() { updateCycle(t, fx.in, r) })
	distinct(t, names)
	if len(names) < 8 {
		t.Fatalf("only %d crash points in a cycle: %q", len(names), names)
	}
	for n := 1; n <= len(names); n++ {
		fx := setup(t)
		point := crashAt(n, func() { updateCycle(t, fx.in, r) })
		if point != names[n-1] {
			t.Fatalf("cut %d hit %q, want %q (the cycle is not deterministic)", n, point, names[n-1])
		}
		in := fx.restart(t)
		st := mustStatus(t, in)
		switch st.Booted.ReleaseID {
		case fx.old.img.ReleaseID:
			wantBooted(t, st, fx.old)
		case r.img.ReleaseID:
			wantBooted(t, st, r)
		default:
			t.Fatalf("cut at %s: booted %+v, neither the old nor the new release", point, st.Booted)
		}
		if got := fx.bootedHash(t, in, st); got != st.Booted.SHA256 {
			t.Fatalf("cut at %s: the booted slot %s hashes to %s, recorded %s", point, st.Booted.Name, got, st.Booted.SHA256)
		}
		finishUpdate(t, in, r)
		in = fx.restart(t)
		st = mustStatus(t, in)
		wantBooted(t, st, r)
		wantState(t, st, false, 0, nil)
		if got := fx.bootedHash(t, in, st); got != r.img.SHA256 {
			t.Fatalf("cut at %s: after the retry the booted slot hashes to %s", point, got)
		}
	}
	t.Logf("%d crash points in an install-reboot-commit cycle (%d of the installer's own): %q", len(names), ownPoints(names), names)
	return len(names)
}

func imageHash(t *testing.T, in Installer, st Status) string {
	return fileHash(t, in.CurrentImage(), -1)
}

func TestCrashSweepDirAB(t *testing.T) {
	v1, v2 := newRelease(t, "r1", 1, 3000), newRelease(t, "r2", 2, 5000)
	crashSweep(t, func(t *testing.T) sweepFixture {
		d, dir := newDirAB(t, v1)
		updateCycle(t, d, v2)
		return sweepFixture{in: d, old: v2, bootedHash: imageHash,
			restart: func(t *testing.T) Installer { return reopenDirAB(t, dir) }}
	}, func(t *testing.T) release { return newRelease(t, "r3", 3, 4000) })
}

func TestCrashSweepSingleSlot(t *testing.T) {
	v1, v2 := newRelease(t, "r1", 1, 3000), newRelease(t, "r2", 2, 5000)
	crashSweep(t, func(t *testing.T) sweepFixture {
		s, dir := newSingle(t, v1)
		updateCycle(t, s, v2)
		return sweepFixture{in: s, old: v2, bootedHash: imageHash,
			restart: func(t *testing.T) Installer { return reopenSingle(t, dir) }}
	}, func(t *testing.T) release { return newRelease(t, "r3", 3, 4000) })
}

func TestCrashSweepHookAB(t *testing.T) {
	needShell(t)
	for _, script := range []string{"uboot-hooks.sh", "systemd-boot-hooks.sh"} {
		t.Run(script, func(t *testing.T) {
			v1, v2 := newRelease(t, "r1", 1, 3000), newRelease(t, "r2", 2, 5000)
			// The device with v2 committed, made once and copied per cut.
			tmpl := newHookEmu(t, script, v1)
			h := tmpl.open(t, nil)
			must(t, h.Boot(context.Background()))
			updateCycle(t, h, v2)
			base := filepath.Dir(tmpl.dir)
			crashSweep(t, func(t *testing.T) sweepFixture {
				dst := t.TempDir()
				copyTree(t, base, dst)
				e := &hookEmu{dir: filepath.Join(dst, "emu"), prog: filepath.Join(dst, script), state: filepath.Join(dst, "state")}
				h := e.open(t, nil)
				must(t, h.Boot(context.Background()))
				return sweepFixture{in: h, old: v2,
					restart: func(t *testing.T) Installer { return e.powerCycle(t) },
					bootedHash: func(t *testing.T, _ Installer, st Status) string {
						return fileHash(t, filepath.Join(e.dir, "part-"+st.Booted.Name), st.Booted.Length)
					}}
			}, func(t *testing.T) release { return newRelease(t, "r3", 3, 4000) })
		})
	}
}

func TestCrashSweepScript(t *testing.T) {
	needShell(t)
	for mode, env := range scriptModes {
		t.Run(mode, func(t *testing.T) {
			v1, v2 := newRelease(t, "r1", 1, 3000), newRelease(t, "r2", 2, 5000)
			tmpl := newAppEmu(t, v1, env...)
			updateCycle(t, tmpl.open(t), v2)
			base := filepath.Dir(tmpl.dir)
			crashSweep(t, func(t *testing.T) sweepFixture {
				dst := t.TempDir()
				copyTree(t, base, dst)
				e := &appEmu{dir: filepath.Join(dst, "emu"), prog: filepath.Join(dst, "app-update.sh"),
					state: filepath.Join(dst, "state"), env: env}
				return sweepFixture{in: e.open(t), old: v2,
					restart: func(t *testing.T) Installer { return e.powerCycle(t) },
					bootedHash: func(t *testing.T, _ Installer, st Status) string {
						active := readText(t, filepath.Join(e.dir, "active"))
						return fileHash(t, filepath.Join(e.dir, "slot-"+active), st.Booted.Length)
					}}
			}, func(t *testing.T) release { return newRelease(t, "r3", 3, 4000) })
		})
	}
}
