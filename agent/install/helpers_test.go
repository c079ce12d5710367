package install

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/steward-iot/steward/agent/crashpoint"
)

// release is a test image: its bytes, in a file, with its metadata.
type release struct {
	img  Image
	data []byte
}

// newRelease writes an image of size bytes whose content depends on id,
// so that two releases differ.
func newRelease(t testing.TB, id string, counter int64, size int) release {
	t.Helper()
	data := make([]byte, size)
	seed := sha256.Sum256([]byte(id))
	for i := range data {
		data[i] = seed[i%len(seed)] ^ byte(i/len(seed))
	}
	path := filepath.Join(t.TempDir(), id+".img")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return release{data: data, img: Image{Path: path, Length: int64(size), SHA256: hex.EncodeToString(sum[:]),
		ReleaseID: id, Version: "v-" + id, Counter: counter}}
}

// reRelease is the same bytes under another release id and counter.
func reRelease(t *testing.T, r release, id string, counter int64) release {
	t.Helper()
	out := r
	out.img.ReleaseID, out.img.Version, out.img.Counter = id, "v-"+id, counter
	return out
}

func sha(data []byte) string {
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

func mustStatus(t *testing.T, in Installer) Status {
	t.Helper()
	st, err := in.Status(context.Background())
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	return st
}

// wantBooted fails unless st shows r booted (release, counter, digest).
func wantBooted(t *testing.T, st Status, r release) {
	t.Helper()
	b := st.Booted
	if b.ReleaseID != r.img.ReleaseID || b.Counter != r.img.Counter || b.SHA256 != r.img.SHA256 ||
		b.Length != r.img.Length || b.Version != r.img.Version {
		t.Fatalf("booted %+v, want release %s counter %d", b, r.img.ReleaseID, r.img.Counter)
	}
}

func wantState(t *testing.T, st Status, trial bool, attempt int, armed *release) {
	t.Helper()
	if st.Trial != trial || st.Attempt != attempt {
		t.Fatalf("trial=%v attempt=%d, want trial=%v attempt=%d (status %+v)", st.Trial, st.Attempt, trial, attempt, st)
	}
	switch {
	case armed == nil && st.Armed != nil:
		t.Fatalf("armed %+v, want nothing", *st.Armed)
	case armed != nil && st.Armed == nil:
		t.Fatalf("nothing armed, want %s", armed.img.ReleaseID)
	case armed != nil && (st.Armed.ReleaseID != armed.img.ReleaseID || st.Armed.SHA256 != armed.img.SHA256):
		t.Fatalf("armed %+v, want %s", *st.Armed, armed.img.ReleaseID)
	}
}

func wantErr(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("err = %v, want %v", err, target)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// fileHash hashes the first n bytes of path (all of it when n < 0).
func fileHash(t *testing.T, path string, n int64) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if n >= 0 {
		if int64(len(data)) < n {
			t.Fatalf("%s holds %d bytes, want at least %d", path, len(data), n)
		}
		data = data[:n]
	}
	return sha(data)
}

// recordCrashPoints runs f and returns the crash points it passes.
func recordCrashPoints(t *testing.T, f func()) []string {
	t.Helper()
	var names []string
	crashpoint.Set(func(name string) { names = append(names, name) })
	defer crashpoint.Set(nil)
	f()
	return names
}

// powerCut is the panic value that stands for a power cut.
type powerCut struct{ point string }

// crashAt runs f and cuts the power at the n-th crash point (1-based). It
// returns the point's name, or "" when f ended before.
func crashAt(n int, f func()) (point string) {
	hits := 0
	crashpoint.Set(func(name string) {
		hits++
		if hits == n {
			panic(powerCut{name})
		}
	})
	defer crashpoint.Set(nil)
	defer func() {
		if r := recover(); r != nil {
			pc, ok := r.(powerCut)
			if !ok {
				panic(r)
			}
			point = pc.point
		}
	}()
	f()
	return ""
}

// distinct fails when one of the installer's crash points repeats within
// one cycle: each must say where the process died. Points of the packages
// it uses (atomicfile/...) repeat and are not checked.
func distinct(t *testing.T, names []string) {
	t.Helper()
	seen := map[string]bool{}
	for _, n := range names {
		if !strings.HasPrefix(n, "install/") {
			continue
		}
		if seen[n] {
			t.Errorf("crash point %s is hit twice in one cycle: %q", n, names)
		}
		seen[n] = true
	}
}

// ownPoints counts the installer's own crash points among names.
func ownPoints(names []string) int {
	n := 0
	for _, name := range names {
		if strings.HasPrefix(name, "install/") {
			n++
		}
	}
	return n
}

func needShell(t *testing.T) {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("the hook and script emulations are POSIX shell scripts")
	}
}

// copyScript copies testdata/name into dir as an executable, so that a
// checkout that lost the executable bit still runs the tests.
func copyScript(t *testing.T, name, dir string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// writeScript writes an executable shell script into dir.
func writeScript(t *testing.T, dir, name, body string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// runEmu runs an emulation script's own commands (init, power-on).
func runEmu(t *testing.T, prog, emuDir string, env []string, args ...string) {
	t.Helper()
	res, err := program{what: "emulation", path: prog, args: args, dir: filepath.Dir(prog),
		env:     append(baseEnv(append([]string{"EMU_DIR=" + emuDir}, env...)), imageEnv(Slot{})...),
		timeout: 30 * time.Second, maxOut: 1 << 20}.run(context.Background())
	if err != nil || res.code != 0 {
		t.Fatalf("%s %v: %v %s", filepath.Base(prog), args, err, res.errMsg())
	}
}

// copyTree copies the directory tree src to dst, keeping file modes.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(target, info.Mode().Perm())
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, info.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
}

func readText(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}
