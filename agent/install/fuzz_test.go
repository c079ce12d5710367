package install

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParseHookState: the state hook's output is another program's; what
// parseHookState accepts must be consistent, and nothing may panic.
func FuzzParseHookState(f *testing.F) {
	for _, seed := range []string{
		`{"booted":"a","trial":false,"attempt":0,"max_attempts":3,"armed":"b"}`,
		`{"booted":"b","trial":true,"attempt":2,"max_attempts":3}`,
		`{"booted":"a","armed":"a"}`,
		`{"booted":"a","trial":true,"armed":"b"}`,
		`{"booted":"c"}`,
		`{"booted":"a","attempt":1e9}`,
		`{"booted":"a"} {"booted":"b"}`,
		`[]`, `null`, `"a"`, ``, `{"booted":"a","booted":"b"}`,
		`{"booted":"a","trial":false,"attempt":5}`,
	} {
		f.Add([]byte(seed))
	}
	slots := [2]string{"a", "b"}
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := parseHookState(data, slots)
		if err != nil {
			return
		}
		if st.Booted != "a" && st.Booted != "b" {
			t.Fatalf("accepted booted %q", st.Booted)
		}
		if st.Armed != "" && (st.Armed == st.Booted || (st.Armed != "a" && st.Armed != "b")) {
			t.Fatalf("accepted armed %q with booted %q", st.Armed, st.Booted)
		}
		if st.Trial && st.Armed != "" {
			t.Fatal("accepted a trial with an armed slot")
		}
		if st.Attempt < 0 || st.Attempt > maxHookAttempts || st.MaxAttempts < 0 || st.MaxAttempts > maxHookAttempts {
			t.Fatalf("accepted counters %d/%d", st.Attempt, st.MaxAttempts)
		}
		if !st.Trial && st.Attempt != 0 {
			t.Fatal("an attempt count without a trial")
		}
	})
}

// FuzzDirABBootEnv: whatever bootenv.json holds (disk damage), the boot
// step boots a slot whose image verifies, and leaves a valid environment.
func FuzzDirABBootEnv(f *testing.F) {
	for _, seed := range []string{
		`{"boot_slot":"b","upgrade_available":true,"bootcount":3,"bootlimit":3}`,
		`{"boot_slot":"b","upgrade_available":true,"bootcount":0,"bootlimit":1}`,
		`{"boot_slot":"a","upgrade_available":false,"bootcount":0,"bootlimit":3}`,
		`{"boot_slot":"c","bootlimit":3}`,
		`{"boot_slot":"b","bootcount":-4,"bootlimit":3}`,
		`{"boot_slot":"b","bootlimit":100000}`,
		`{`, ``, `null`,
	} {
		f.Add([]byte(seed), false)
	}
	f.Add([]byte(`{"boot_slot":"b","upgrade_available":true,"bootlimit":3}`), true)
	v1, v2 := newRelease(f, "r1", 1, 300), newRelease(f, "r2", 2, 400)
	tmpl := f.TempDir()
	d, err := NewDirAB(tmpl, DirABOptions{})
	if err != nil {
		f.Fatal(err)
	}
	ctx := context.Background()
	if err := d.Provision(ctx, v1.img); err != nil {
		f.Fatal(err)
	}
	if err := d.writeSlot(ctx, "b", v2.img); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, env []byte, damageB bool) {
		dir := t.TempDir()
		copyTree(t, tmpl, dir)
		must(t, os.WriteFile(filepath.Join(dir, bootEnvFile), env, 0o600))
		if damageB {
			must(t, os.WriteFile(filepath.Join(dir, "b", imageFile), v1.data, 0o600))
		}
		d, err := NewDirAB(dir, DirABOptions{})
		must(t, err)
		must(t, d.Boot(ctx)) // slot a always verifies
		st := mustStatus(t, d)
		if got := fileHash(t, d.CurrentImage(), -1); got != st.Booted.SHA256 {
			t.Fatalf("booted slot %s hashes to %s, recorded %s", st.Booted.Name, got, st.Booted.SHA256)
		}
		if damageB && st.Booted.Name == "b" {
			t.Fatal("booted the damaged slot")
		}
		if _, err := d.readEnv(); err != nil {
			t.Fatalf("environment after boot: %v", err)
		}
	})
}

// FuzzScriptState: a damaged script-state.json is refused or consistent.
func FuzzScriptState(f *testing.F) {
	for _, seed := range []string{
		`{"phase":"","current":{"name":"app"}}`,
		`{"phase":"trial","current":{"name":"app","sha256":"` + sha(nil) + `","length":1,"release_id":"r"},"attempt":1}`,
		`{"phase":"installed","current":{"name":"app"}}`,
		`{"phase":"rebooting","current":{"name":"app"},"pending":{"name":"app","length":-1}}`,
		`{"phase":"bogus"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var st scriptState
		if decodeJSON(data, &st) != nil || st.check() != nil {
			return
		}
		switch st.Phase {
		case phaseInstalling, phaseInstalled, phaseRebooting:
			if st.Pending == nil || checkSlot(*st.Pending, scriptSlot) != nil {
				t.Fatalf("accepted phase %s without a valid pending release", st.Phase)
			}
		case phaseTrial:
			if st.Attempt < 1 {
				t.Fatal("accepted a trial without an attempt")
			}
		case phaseIdle:
		default:
			t.Fatalf("accepted phase %q", st.Phase)
		}
	})
}
