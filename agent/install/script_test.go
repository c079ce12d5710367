package install

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// appEmu is an emulated application for the script installer.
type appEmu struct {
	dir   string // EMU_DIR
	prog  string
	state string
	env   []string
}

func newAppEmu(t *testing.T, factory release, env ...string) *appEmu {
	t.Helper()
	base := t.TempDir()
	e := &appEmu{dir: filepath.Join(base, "emu"), prog: copyScript(t, "app-update.sh", base),
		state: filepath.Join(base, "state"), env: env}
	must(t, os.Mkdir(e.dir, 0o700))
	runEmu(t, e.prog, e.dir, env, "init", factory.img.Path, factory.img.ReleaseID)
	return e
}

// open starts a new installer over the emulation and boots it.
func (e *appEmu) open(t *testing.T, extra ...string) *Script {
	t.Helper()
	// The emulated reboot happens in-process: nothing to wait for.
	s, err := NewScript(e.prog, ScriptOptions{StateDir: e.state, RebootWait: -1,
		Env: append(append([]string{"EMU_DIR=" + e.dir}, e.env...), extra...)})
	must(t, err)
	must(t, s.Boot(context.Background()))
	return s
}

func (e *appEmu) powerCycle(t *testing.T, extra ...string) *Script {
	t.Helper()
	runEmu(t, e.prog, e.dir, e.env, "power-on")
	return e.open(t, extra...)
}

// running returns the release id the emulated application runs.
func (e *appEmu) running(t *testing.T) string {
	t.Helper()
	rel := readText(t, filepath.Join(e.dir, "rel-"+readText(t, filepath.Join(e.dir, "active"))))
	id, _, _ := strings.Cut(rel, " ")
	return id
}

var scriptModes = map[string][]string{"needs-reboot": {"EMU_NEEDS_REBOOT=1"}, "no-reboot": nil}

func TestScriptHappyCycle(t *testing.T) {
	t.Parallel()
	needShell(t)
	ctx := context.Background()
	for mode, env := range scriptModes {
		t.Run(mode, func(t *testing.T) {
			v1, v2, v3 := newRelease(t, "r1", 1, 3000), newRelease(t, "r2", 2, 5000), newRelease(t, "r3", 3, 700)
			e := newAppEmu(t, v1, env...)
			s := e.open(t)
			st := mustStatus(t, s)
			if st.Booted != (Slot{Name: "app"}) || st.Trial || st.Armed != nil {
				t.Fatalf("first status %+v", st)
			}
			must(t, s.Install(ctx, v2.img))
			wantState(t, mustStatus(t, s), false, 0, &v2)
			must(t, s.Reboot(ctx))
			st = mustStatus(t, s)
			wantBooted(t, st, v2)
			wantState(t, st, true, 1, nil)
			if e.running(t) != "r2" {
				t.Fatalf("the application runs %s", e.running(t))
			}
			must(t, s.Commit(ctx))
			s = e.powerCycle(t)
			st = mustStatus(t, s)
			wantBooted(t, st, v2)
			wantState(t, st, false, 0, nil)
			updateCycle(t, s, v3)
			if e.running(t) != "r3" || s.CurrentImage() != "" {
				t.Fatal("third release")
			}
		})
	}
}

// TestScriptHealthFailure: starts of the agent during a trial count as
// boots; past MaxAttempts Boot rolls back by itself.
func TestScriptHealthFailure(t *testing.T) {
	t.Parallel()
	needShell(t)
	ctx := context.Background()
	for mode, env := range scriptModes {
		t.Run(mode, func(t *testing.T) {
			v1, v2, v3 := newRelease(t, "r1", 1, 1000), newRelease(t, "r2", 2, 1000), newRelease(t, "r3", 3, 1000)
			e := newAppEmu(t, v1, env...)
			s := e.open(t)
			updateCycle(t, s, v2)
			must(t, s.Install(ctx, v3.img))
			must(t, s.Reboot(ctx))
			wantState(t, mustStatus(t, s), true, 1, nil)
			must(t, s.Reboot(ctx))
			wantState(t, mustStatus(t, s), true, 2, nil)
			s = e.powerCycle(t)
			if mode == "needs-reboot" {
				// The power-on was the boot Reboot asked for and counted.
				wantState(t, mustStatus(t, s), true, 2, nil)
				s = e.powerCycle(t)
			}
			wantState(t, mustStatus(t, s), true, 3, nil)
			s = e.powerCycle(t)
			if mode == "needs-reboot" {
				// Boot ran rollback and asked for the reboot into r2.
				s = e.powerCycle(t)
			}
			st := mustStatus(t, s)
			wantBooted(t, st, v2)
			wantState(t, st, false, 0, nil)
			if e.running(t) != "r2" {
				t.Fatalf("the application runs %s after the rollback", e.running(t))
			}
		})
	}
}

func TestScriptRollback(t *testing.T) {
	t.Parallel()
	needShell(t)
	ctx := context.Background()
	for mode, env := range scriptModes {
		t.Run(mode, func(t *testing.T) {
			v1, v2, v3 := newRelease(t, "r1", 1, 1000), newRelease(t, "r2", 2, 1000), newRelease(t, "r3", 3, 1000)
			e := newAppEmu(t, v1, env...)
			s := e.open(t)
			updateCycle(t, s, v2)
			wantErr(t, s.Rollback(ctx), ErrNoTrial)
			must(t, s.Install(ctx, v3.img))
			must(t, s.Rollback(ctx))
			wantState(t, mustStatus(t, s), false, 0, nil)
			wantErr(t, s.Reboot(ctx), ErrNothingArmed)

			must(t, s.Install(ctx, v3.img))
			must(t, s.Reboot(ctx))
			wantErr(t, s.Install(ctx, v1.img), ErrTrialRunning)
			must(t, s.Rollback(ctx))
			st := mustStatus(t, s)
			wantBooted(t, st, v2)
			wantState(t, st, false, 0, nil)
			if e.running(t) != "r2" {
				t.Fatalf("the application runs %s", e.running(t))
			}
		})
	}
}

// TestScriptNoRollback: exit 3 from rollback is ErrNoRollback; the trial
// ends with the new release kept.
func TestScriptNoRollback(t *testing.T) {
	t.Parallel()
	needShell(t)
	ctx := context.Background()
	v1, v2 := newRelease(t, "r1", 1, 1000), newRelease(t, "r2", 2, 1000)
	e := newAppEmu(t, v1, "EMU_NO_ROLLBACK=1")
	s := e.open(t)
	must(t, s.Install(ctx, v2.img))
	must(t, s.Reboot(ctx))
	wantErr(t, s.Rollback(ctx), ErrNoRollback)
	st := mustStatus(t, s)
	wantBooted(t, st, v2)
	wantState(t, st, false, 0, nil)
	must(t, s.Install(ctx, newRelease(t, "r3", 3, 10).img))
	wantErr(t, s.Rollback(ctx), ErrNoRollback)
}

func TestScriptInstallFailures(t *testing.T) {
	t.Parallel()
	needShell(t)
	ctx := context.Background()
	v1, v2 := newRelease(t, "r1", 1, 1000), newRelease(t, "r2", 2, 1000)
	e := newAppEmu(t, v1)
	s := e.open(t)

	img := v2.img
	img.Path = filepath.Join(t.TempDir(), "wrong")
	must(t, os.WriteFile(img.Path, v1.data, 0o600))
	wantErr(t, s.Install(ctx, img), ErrVerify)
	wantState(t, mustStatus(t, s), false, 0, nil)
	if e.running(t) != "r1" {
		t.Fatal("the script ran for an image that does not verify")
	}

	s = e.open(t, "EMU_INSTALL_FAIL=4")
	wantErr(t, s.Install(ctx, v2.img), ErrNoSpace)
	wantState(t, mustStatus(t, s), false, 0, nil)

	s = e.open(t, "EMU_INSTALL_FAIL=1")
	err := s.Install(ctx, v2.img)
	if err == nil || !strings.Contains(err.Error(), "emulated install failure") {
		t.Fatalf("install failure: %v", err)
	}
	wantState(t, mustStatus(t, s), false, 0, nil)
	wantErr(t, s.Reboot(ctx), ErrNothingArmed)
}

// TestScriptWithoutIsRunning: without is-running, a reboot is assumed to
// have happened once the agent starts again.
func TestScriptWithoutIsRunning(t *testing.T) {
	t.Parallel()
	needShell(t)
	ctx := context.Background()
	v1, v2 := newRelease(t, "r1", 1, 1000), newRelease(t, "r2", 2, 1000)
	e := newAppEmu(t, v1, "EMU_NEEDS_REBOOT=1", "EMU_NO_IS_RUNNING=1")
	s := e.open(t)
	must(t, s.Install(ctx, v2.img))
	must(t, s.Reboot(ctx))
	// Whether the machine went down is unknown until the next start.
	wantState(t, mustStatus(t, s), false, 0, &v2)
	s = e.open(t)
	st := mustStatus(t, s)
	wantBooted(t, st, v2)
	wantState(t, st, true, 1, nil)
	must(t, s.Commit(ctx))
}

// TestScriptDamagedState: a damaged state file makes the running release
// unknown (Boot warns), never a made-up one.
func TestScriptDamagedState(t *testing.T) {
	t.Parallel()
	needShell(t)
	ctx := context.Background()
	v1, v2 := newRelease(t, "r1", 1, 1000), newRelease(t, "r2", 2, 1000)
	e := newAppEmu(t, v1)
	s := e.open(t)
	updateCycle(t, s, v2)
	for _, content := range []string{"nonsense", `{"phase":"trial","current":{"name":"app"},"attempt":0}`, `{"phase":"rebooting"}`} {
		must(t, os.WriteFile(filepath.Join(e.state, scriptStateFile), []byte(content), 0o600))
		if _, err := s.Status(ctx); err == nil {
			t.Fatalf("Status accepted damaged state %q", content)
		}
		s = e.open(t)
		st := mustStatus(t, s)
		if st.Booted != (Slot{Name: "app"}) || st.Trial || st.Armed != nil {
			t.Fatalf("status after damage %q: %+v", content, st)
		}
	}
	updateCycle(t, s, newRelease(t, "r3", 3, 100))
}

func TestScriptConfigErrors(t *testing.T) {
	t.Parallel()
	needShell(t)
	dir := t.TempDir()
	prog := writeScript(t, dir, "prog", "exit 0")
	for _, c := range []struct {
		path string
		opt  ScriptOptions
		want string
	}{
		{"", ScriptOptions{StateDir: dir}, "no script"},
		{prog, ScriptOptions{}, "no state directory"},
		{filepath.Join(dir, "missing"), ScriptOptions{StateDir: dir}, "no such file"},
		{prog, ScriptOptions{StateDir: dir, MaxAttempts: 1000}, "MaxAttempts"},
		{prog, ScriptOptions{StateDir: dir, Env: []string{"STEWARD_X=1"}}, "set by the installer"},
	} {
		if _, err := NewScript(c.path, c.opt); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("NewScript(%q, %+v) = %v, want %q", c.path, c.opt, err, c.want)
		}
	}
	s, err := NewScript(prog, ScriptOptions{StateDir: dir})
	must(t, err)
	_, err = s.Status(context.Background())
	wantErr(t, err, ErrNotBooted)
}

// TestScriptRealReboot: after a reboot that leaves nothing to observe, the
// script installer waits to be stopped, as a real machine goes down.
func TestScriptRealReboot(t *testing.T) {
	t.Parallel()
	needShell(t)
	ctx := context.Background()
	v1, v2 := newRelease(t, "r1", 1, 1000), newRelease(t, "r2", 2, 1000)
	e := newAppEmu(t, v1, "EMU_NEEDS_REBOOT=1")
	s := e.open(t)
	must(t, s.Install(ctx, v2.img))
	must(t, s.Reboot(ctx)) // is-running shows the emulated boot: no wait
	wantState(t, mustStatus(t, s), true, 1, nil)

	real, err := NewScript(e.prog, ScriptOptions{StateDir: e.state, Env: []string{"EMU_DIR=" + e.dir, "EMU_NEEDS_REBOOT=1"}})
	must(t, err)
	must(t, real.Boot(ctx)) // not counted: the boot Reboot asked for
	wantState(t, mustStatus(t, real), true, 1, nil)
	cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	wantErr(t, real.Reboot(cctx), context.DeadlineExceeded)
	wantState(t, mustStatus(t, real), true, 2, nil)
}
