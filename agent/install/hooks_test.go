package install

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// hookEmu is an emulated device for the ab-hooks installer: one of the
// testdata hook programs and its emulation directory.
type hookEmu struct {
	dir   string // EMU_DIR: bootloader state and partitions
	prog  string // the hook program
	state string // the installer's StateDir
}

func newHookEmu(t *testing.T, script string, factory release) *hookEmu {
	t.Helper()
	base := t.TempDir()
	e := &hookEmu{dir: filepath.Join(base, "emu"), prog: copyScript(t, script, base), state: filepath.Join(base, "state")}
	must(t, os.Mkdir(e.dir, 0o700))
	runEmu(t, e.prog, e.dir, nil, "init", factory.img.Path)
	return e
}

func (e *hookEmu) config() HookABConfig {
	return HookABConfig{Program: e.prog, StateDir: e.state, Env: []string{"EMU_DIR=" + e.dir}}
}

// open returns a new installer over the emulation; mod may change the
// configuration first.
func (e *hookEmu) open(t *testing.T, mod func(*HookABConfig)) *HookAB {
	t.Helper()
	cfg := e.config()
	if mod != nil {
		mod(&cfg)
	}
	h, err := NewHookAB(cfg)
	must(t, err)
	return h
}

// powerCycle cuts the power and starts a new agent.
func (e *hookEmu) powerCycle(t *testing.T) *HookAB {
	t.Helper()
	runEmu(t, e.prog, e.dir, nil, "power-on")
	h := e.open(t, nil)
	must(t, h.Boot(context.Background()))
	return h
}

var hookScripts = []string{"uboot-hooks.sh", "systemd-boot-hooks.sh"}

func TestHookABHappyCycle(t *testing.T) {
	t.Parallel()
	needShell(t)
	ctx := context.Background()
	for _, script := range hookScripts {
		t.Run(script, func(t *testing.T) {
			v1, v2, v3 := newRelease(t, "r1", 1, 3000), newRelease(t, "r2", 2, 5000), newRelease(t, "r3", 3, 700)
			e := newHookEmu(t, script, v1)
			h := e.open(t, nil)
			must(t, h.Boot(ctx))
			st := mustStatus(t, h)
			// The factory image is not Steward's: only its slot is known.
			if st.Booted != (Slot{Name: "a"}) || st.Trial || st.Armed != nil || st.MaxAttempts != 3 {
				t.Fatalf("factory status %+v", st)
			}

			must(t, h.Install(ctx, v2.img))
			st = mustStatus(t, h)
			wantState(t, st, false, 0, &v2)
			if st.Booted.Name != "a" || st.Armed.Name != "b" {
				t.Fatalf("status %+v", st)
			}
			if fileHash(t, filepath.Join(e.dir, "part-b"), v2.img.Length) != v2.img.SHA256 {
				t.Fatal("slot b does not hold the image")
			}

			must(t, h.Reboot(ctx))
			st = mustStatus(t, h)
			wantBooted(t, st, v2)
			wantState(t, st, true, 1, nil)
			if st.Booted.Name != "b" || st.MaxAttempts != 3 {
				t.Fatalf("status %+v", st)
			}
			must(t, h.Commit(ctx))
			wantState(t, mustStatus(t, h), false, 0, nil)

			h = e.powerCycle(t)
			st = mustStatus(t, h)
			wantBooted(t, st, v2)
			wantState(t, st, false, 0, nil)

			updateCycle(t, h, v3)
			st = mustStatus(t, h)
			if st.Booted.Name != "a" {
				t.Fatalf("third release booted from %s", st.Booted.Name)
			}
			if h.CurrentImage() != "" {
				t.Fatal("CurrentImage names a partition")
			}
		})
	}
}

// TestHookABHealthFailure: trial boots until the bootloader's limit, then
// the bootloader itself returns to the old slot.
func TestHookABHealthFailure(t *testing.T) {
	t.Parallel()
	needShell(t)
	ctx := context.Background()
	for _, script := range hookScripts {
		for _, cycle := range []string{"reboot", "power-cycle"} {
			t.Run(script+"/"+cycle, func(t *testing.T) {
				v1, v2, v3 := newRelease(t, "r1", 1, 1000), newRelease(t, "r2", 2, 1000), newRelease(t, "r3", 3, 1000)
				e := newHookEmu(t, script, v1)
				h := e.open(t, nil)
				must(t, h.Boot(ctx))
				updateCycle(t, h, v2) // v2 in b, committed
				must(t, h.Install(ctx, v3.img))
				boot := func() {
					if cycle == "reboot" {
						must(t, h.Reboot(ctx))
					} else {
						h = e.powerCycle(t)
					}
				}
				for attempt := 1; attempt <= 3; attempt++ {
					boot()
					st := mustStatus(t, h)
					wantBooted(t, st, v3)
					wantState(t, st, true, attempt, nil)
				}
				boot()
				st := mustStatus(t, h)
				wantBooted(t, st, v2)
				wantState(t, st, false, 0, nil)
				wantErr(t, h.Commit(ctx), ErrNoTrial)
				// The failed slot can take the next release.
				updateCycle(t, h, newRelease(t, "r4", 4, 900))
			})
		}
	}
}

func TestHookABRollback(t *testing.T) {
	t.Parallel()
	needShell(t)
	ctx := context.Background()
	for _, script := range hookScripts {
		t.Run(script, func(t *testing.T) {
			v1, v2, v3 := newRelease(t, "r1", 1, 1000), newRelease(t, "r2", 2, 1000), newRelease(t, "r3", 3, 1000)
			e := newHookEmu(t, script, v1)
			h := e.open(t, nil)
			must(t, h.Boot(ctx))
			updateCycle(t, h, v2)
			wantErr(t, h.Rollback(ctx), ErrNoTrial)

			must(t, h.Install(ctx, v3.img))
			must(t, h.Rollback(ctx)) // disarm
			st := mustStatus(t, h)
			wantBooted(t, st, v2)
			wantState(t, st, false, 0, nil)
			wantErr(t, h.Reboot(ctx), ErrNothingArmed)

			must(t, h.Install(ctx, v3.img))
			must(t, h.Reboot(ctx))
			wantErr(t, h.Install(ctx, v1.img), ErrTrialRunning)
			must(t, h.Rollback(ctx)) // rollback + reboot
			st = mustStatus(t, h)
			wantBooted(t, st, v2)
			wantState(t, st, false, 0, nil)
			h = e.powerCycle(t)
			wantBooted(t, mustStatus(t, h), v2)
		})
	}
}

// TestHookABVerifyFailure: a source file that is not the image is refused
// before write; a slot that reads back wrong is never armed.
func TestHookABVerifyFailure(t *testing.T) {
	t.Parallel()
	needShell(t)
	ctx := context.Background()
	v1, v2 := newRelease(t, "r1", 1, 4000), newRelease(t, "r2", 2, 4000)
	e := newHookEmu(t, "uboot-hooks.sh", v1)
	h := e.open(t, nil)
	must(t, h.Boot(ctx))

	img := v2.img
	img.Path = filepath.Join(t.TempDir(), "short")
	must(t, os.WriteFile(img.Path, v2.data[:10], 0o600))
	wantErr(t, h.Install(ctx, img), ErrVerify)
	if fi, err := os.Stat(filepath.Join(e.dir, "part-b")); err != nil || fi.Size() != 0 {
		t.Fatalf("the write hook ran for a bad image: %v %v", fi, err)
	}

	bad := e.open(t, func(c *HookABConfig) { c.Env = append(c.Env, "EMU_CORRUPT=1") })
	err := bad.Install(ctx, v2.img)
	wantErr(t, err, ErrVerify)
	if !strings.Contains(err.Error(), "read") {
		t.Fatalf("error does not say the read-back failed: %v", err)
	}
	st := mustStatus(t, h)
	wantState(t, st, false, 0, nil)
	if st.Booted.Name != "a" {
		t.Fatalf("booted %s", st.Booted.Name)
	}
	if _, err := os.Stat(filepath.Join(e.state, "slots", "b.json")); !os.IsNotExist(err) {
		t.Fatal("metadata recorded for a slot that failed verification")
	}
	updateCycle(t, h, v2)
}

// TestHookABReadBackFromDevice: without a read hook the slot device is
// read back directly.
func TestHookABReadBackFromDevice(t *testing.T) {
	t.Parallel()
	needShell(t)
	ctx := context.Background()
	v1, v2 := newRelease(t, "r1", 1, 4000), newRelease(t, "r2", 2, 4000)
	e := newHookEmu(t, "uboot-hooks.sh", v1)
	noRead := writeScript(t, t.TempDir(), "noread", fmt.Sprintf(`[ "$1" = read ] && exit 3
exec %q "$@"`, e.prog))
	devices := map[string]string{"a": filepath.Join(e.dir, "part-a"), "b": filepath.Join(e.dir, "part-b")}
	open := func(extra ...string) *HookAB {
		return e.open(t, func(c *HookABConfig) {
			c.Program, c.SlotDevices = noRead, devices
			c.Env = append(c.Env, extra...)
		})
	}
	h := open("EMU_CORRUPT=1")
	must(t, h.Boot(ctx))
	err := h.Install(ctx, v2.img)
	wantErr(t, err, ErrVerify)
	if !strings.Contains(err.Error(), "part-b") {
		t.Fatalf("error does not name the device: %v", err)
	}
	wantState(t, mustStatus(t, h), false, 0, nil)

	h = open()
	updateCycle(t, h, v2)

	// The write hook learns the device.
	envDump := writeScript(t, t.TempDir(), "dump", fmt.Sprintf(`[ "$1" = write ] && env > "$EMU_DIR/write.env"
exec %q "$@"`, noRead))
	h = e.open(t, func(c *HookABConfig) { c.Program, c.SlotDevices = envDump, devices })
	must(t, h.Install(ctx, v1.img))
	if env := readText(t, filepath.Join(e.dir, "write.env")); !strings.Contains(env, "STEWARD_SLOT_DEVICE="+devices["a"]) {
		t.Fatalf("write hook environment lacks STEWARD_SLOT_DEVICE:\n%s", env)
	}
}

func TestHookABNoSpace(t *testing.T) {
	t.Parallel()
	needShell(t)
	ctx := context.Background()
	v1, v2 := newRelease(t, "r1", 1, 1000), newRelease(t, "r2", 2, 5000)
	e := newHookEmu(t, "uboot-hooks.sh", v1)

	h := e.open(t, func(c *HookABConfig) { c.SlotSize = 4096 })
	must(t, h.Boot(ctx))
	wantErr(t, h.Install(ctx, v2.img), ErrNoSpace)
	if fi, _ := os.Stat(filepath.Join(e.dir, "part-b")); fi.Size() != 0 {
		t.Fatal("the write hook ran for an image larger than the slot")
	}

	h = e.open(t, func(c *HookABConfig) { c.Env = append(c.Env, "EMU_WRITE_FAIL=4") })
	wantErr(t, h.Install(ctx, v2.img), ErrNoSpace)

	h = e.open(t, func(c *HookABConfig) { c.Env = append(c.Env, "EMU_WRITE_FAIL=1") })
	err := h.Install(ctx, v2.img)
	if err == nil || !strings.Contains(err.Error(), "emulated write error") || !strings.Contains(err.Error(), "exit status 1") {
		t.Fatalf("write failure error does not quote the hook: %v", err)
	}
	wantState(t, mustStatus(t, h), false, 0, nil)
}

// TestHookABHooksDir: the same protocol with one executable per hook.
func TestHookABHooksDir(t *testing.T) {
	t.Parallel()
	needShell(t)
	ctx := context.Background()
	v1, v2 := newRelease(t, "r1", 1, 1000), newRelease(t, "r2", 2, 1000)
	e := newHookEmu(t, "systemd-boot-hooks.sh", v1)
	dir := t.TempDir()
	for _, name := range append(requiredHooks, "read") {
		writeScript(t, dir, name, fmt.Sprintf(`[ "$STEWARD_HOOK" = %s ] || exit 9
exec %q %s "$@"`, name, e.prog, name))
	}
	h := e.open(t, func(c *HookABConfig) { c.Program, c.HooksDir = "", dir })
	must(t, h.Boot(ctx))
	if !h.hasRead {
		t.Fatal("read hook not found")
	}
	updateCycle(t, h, v2)

	must(t, os.Remove(filepath.Join(dir, "arm")))
	must(t, os.Chmod(filepath.Join(dir, "commit"), 0o644))
	_, err := NewHookAB(HookABConfig{HooksDir: dir, StateDir: e.state})
	if err == nil || !strings.Contains(err.Error(), "hook arm") || !strings.Contains(err.Error(), "not executable") {
		t.Fatalf("missing and non-executable hooks: %v", err)
	}
}

// TestHookABMisbehavingHooks: hook output is checked and bounded, hangs
// are cut off, and hooks that claim success without effect are caught.
func TestHookABMisbehavingHooks(t *testing.T) {
	t.Parallel()
	needShell(t)
	ctx := context.Background()
	v1, v2 := newRelease(t, "r1", 1, 1000), newRelease(t, "r2", 2, 1000)
	cases := []struct {
		name, hook, body string
		install          bool // the failure shows in Install, not Boot
		want             string
	}{
		{"state garbage", "state", `echo 'booted: a'`, false, "not one JSON object"},
		{"state two objects", "state", `echo '{"booted":"a"}{"booted":"b"}'`, false, "not one JSON object"},
		{"state unknown slot", "state", `echo '{"booted":"../../etc"}'`, false, "not one of"},
		{"state armed itself", "state", `echo '{"booted":"a","armed":"a"}'`, false, "both booted and armed"},
		{"state negative attempt", "state", `echo '{"booted":"a","trial":true,"attempt":-1}'`, false, "out of range"},
		{"state huge", "state", `head -c 200000 /dev/zero`, false, "printed more than"},
		{"state fails", "state", `echo 'fw_printenv: cannot read environment' >&2; exit 1`, false, "cannot read environment"},
		{"state hangs", "state", `sleep 30`, false, "timed out"},
		{"arm does nothing", "arm", `exit 0`, true, "check the hooks"},
		{"read too much", "read", `head -c 5000 /dev/zero`, true, "more than"},
		{"read too little", "read", `head -c 10 "$EMU_DIR/part-$1"`, true, "printed 10 bytes"},
		{"write hangs", "write", `sleep 30 & wait`, true, "timed out"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newHookEmu(t, "uboot-hooks.sh", v1)
			prog := writeScript(t, t.TempDir(), "bad", fmt.Sprintf(`if [ "$1" = %s ]; then shift; %s; exit; fi
exec %q "$@"`, c.hook, c.body, e.prog))
			h := e.open(t, func(cfg *HookABConfig) {
				cfg.Program = prog
				cfg.Timeout, cfg.WriteTimeout = 300*time.Millisecond, 300*time.Millisecond
			})
			err := h.Boot(ctx)
			if c.install {
				must(t, err)
				err = h.Install(ctx, v2.img)
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to contain %q", err, c.want)
			}
			if strings.ContainsAny(err.Error(), "\x00\n") {
				t.Fatalf("error carries raw hook output: %q", err)
			}
		})
	}
}

// TestHookABDamagedMetadata: Steward's record of a slot is damaged: the
// slot's release is reported unknown (so the agent cannot mistake it for
// the release it installed), and the trial can still be rolled back.
func TestHookABDamagedMetadata(t *testing.T) {
	t.Parallel()
	needShell(t)
	ctx := context.Background()
	v1, v2, v3 := newRelease(t, "r1", 1, 1000), newRelease(t, "r2", 2, 1000), newRelease(t, "r3", 3, 1000)
	e := newHookEmu(t, "uboot-hooks.sh", v1)
	h := e.open(t, nil)
	must(t, h.Boot(ctx))
	updateCycle(t, h, v2)
	must(t, h.Install(ctx, v3.img))
	must(t, h.Reboot(ctx))
	must(t, os.WriteFile(filepath.Join(e.state, "slots", "a.json"), []byte(`{"name":"a","length":-5}`), 0o600))
	st := mustStatus(t, h)
	if st.Booted != (Slot{Name: "a"}) || !st.Trial {
		t.Fatalf("status with damaged metadata: %+v", st)
	}
	must(t, h.Rollback(ctx))
	wantBooted(t, mustStatus(t, h), v2)
}

func TestHookABConfigErrors(t *testing.T) {
	t.Parallel()
	needShell(t)
	dir := t.TempDir()
	prog := writeScript(t, dir, "prog", "exit 0")
	notExec := filepath.Join(dir, "plain")
	must(t, os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644))
	state := t.TempDir()
	cases := []struct {
		name string
		cfg  HookABConfig
		want string
	}{
		{"no hooks", HookABConfig{StateDir: state}, "no hooks"},
		{"both", HookABConfig{Program: prog, HooksDir: dir, StateDir: state}, "not both"},
		{"not executable", HookABConfig{Program: notExec, StateDir: state}, "not executable"},
		{"missing program", HookABConfig{Program: filepath.Join(dir, "nope"), StateDir: state}, "no such file"},
		{"no state dir", HookABConfig{Program: prog}, "no state directory"},
		{"bad slot name", HookABConfig{Program: prog, StateDir: state, Slots: [2]string{"a", "../b"}}, "slot name"},
		{"same slots", HookABConfig{Program: prog, StateDir: state, Slots: [2]string{"x", "x"}}, "same name"},
		{"device of unknown slot", HookABConfig{Program: prog, StateDir: state, SlotDevices: map[string]string{"c": "/dev/null"}}, `slot "c"`},
		{"reserved env", HookABConfig{Program: prog, StateDir: state, Env: []string{"STEWARD_SLOT=x"}}, "set by the installer"},
		{"malformed env", HookABConfig{Program: prog, StateDir: state, Env: []string{"NOEQUALS"}}, "NAME=value"},
		{"negative timeout", HookABConfig{Program: prog, StateDir: state, Timeout: -1}, "negative"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := NewHookAB(c.cfg)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
		})
	}
	h, err := NewHookAB(HookABConfig{Program: prog, StateDir: state, Slots: [2]string{"system0", "system1"}})
	must(t, err)
	if h.other("system0") != "system1" {
		t.Fatal("custom slot names")
	}
}

// TestHookEnvironmentIsClean: hooks see PATH, the configured entries and
// STEWARD_* only, not the agent's environment.
func TestHookEnvironmentIsClean(t *testing.T) {
	needShell(t)
	t.Setenv("AGENT_SECRET_TOKEN", "s3cret")
	ctx := context.Background()
	v1, v2 := newRelease(t, "r1", 1, 1000), newRelease(t, "r2", 2, 1000)
	e := newHookEmu(t, "uboot-hooks.sh", v1)
	dump := writeScript(t, t.TempDir(), "dump", fmt.Sprintf(`[ "$1" = write ] && env > "$EMU_DIR/write.env"
exec %q "$@"`, e.prog))
	h := e.open(t, func(c *HookABConfig) { c.Program = dump; c.Env = append(c.Env, "VENDOR_OPT=1") })
	must(t, h.Boot(ctx))
	must(t, h.Install(ctx, v2.img))
	env := readText(t, filepath.Join(e.dir, "write.env"))
	for _, want := range []string{"VENDOR_OPT=1", "STEWARD_HOOK=write", "STEWARD_SLOT=b", "STEWARD_RELEASE_ID=r2",
		"STEWARD_COUNTER=2", "STEWARD_SHA256=" + v2.img.SHA256, "STEWARD_LENGTH=1000", "STEWARD_IMAGE=" + v2.img.Path} {
		if !strings.Contains(env, want) {
			t.Errorf("hook environment lacks %s", want)
		}
	}
	if strings.Contains(env, "s3cret") {
		t.Error("the agent's environment leaked into the hook")
	}
}

// TestHookABRealReboot: a reboot hook that only starts the machine's
// shutdown returns at once; Reboot and Rollback then do not return (until
// the agent is stopped), and fail if the machine stays up.
func TestHookABRealReboot(t *testing.T) {
	t.Parallel()
	needShell(t)
	ctx := context.Background()
	v1, v2 := newRelease(t, "r1", 1, 1000), newRelease(t, "r2", 2, 1000)
	e := newHookEmu(t, "uboot-hooks.sh", v1)
	real := writeScript(t, t.TempDir(), "real", fmt.Sprintf(`[ "$1" = reboot ] && exit 0
exec %q "$@"`, e.prog))
	open := func(wait time.Duration) *HookAB {
		return e.open(t, func(c *HookABConfig) { c.Program, c.RebootWait = real, wait })
	}
	h := open(100 * time.Millisecond)
	must(t, h.Boot(ctx))
	must(t, h.Install(ctx, v2.img))
	err := h.Reboot(ctx)
	if err == nil || !strings.Contains(err.Error(), "did not restart within 100ms") {
		t.Fatalf("Reboot with a machine that stays up: %v", err)
	}
	h = open(time.Hour)
	cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	wantErr(t, h.Reboot(cctx), context.DeadlineExceeded)

	h = e.powerCycle(t) // the machine restarts into the trial
	wantState(t, mustStatus(t, h), true, 1, nil)
	h = open(time.Hour)
	cctx, cancel = context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	wantErr(t, h.Rollback(cctx), context.DeadlineExceeded)
	// Until the machine goes down, the previous slot is set to boot next.
	st := mustStatus(t, h)
	wantBooted(t, st, v2)
	if st.Trial || st.Armed == nil || st.Armed.Name != "a" {
		t.Fatalf("status between rollback and restart: %+v", st)
	}
	h = e.powerCycle(t)
	st = mustStatus(t, h)
	if st.Booted.Name != "a" || st.Trial || st.Armed != nil {
		t.Fatalf("status after the rollback's restart: %+v", st)
	}
}
