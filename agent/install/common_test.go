package install

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestNewByKind(t *testing.T) {
	t.Parallel()
	needShell(t)
	dir := t.TempDir()
	prog := writeScript(t, dir, "prog", "exit 0")
	hooks := t.TempDir()
	for _, h := range requiredHooks {
		writeScript(t, hooks, h, "exit 0")
	}
	cases := []struct {
		cfg  Config
		kind string
	}{
		{Config{Kind: KindDirAB, Dir: filepath.Join(dir, "ab")}, KindDirAB},
		{Config{Kind: KindSingleSlot, Dir: filepath.Join(dir, "single")}, KindSingleSlot},
		{Config{Kind: KindHookAB, Hooks: prog, StateDir: filepath.Join(dir, "s1")}, KindHookAB},
		{Config{Kind: KindHookAB, Hooks: hooks, StateDir: filepath.Join(dir, "s2")}, KindHookAB},
		{Config{Kind: KindScript, Script: prog, StateDir: filepath.Join(dir, "s3")}, KindScript},
	}
	for _, c := range cases {
		in, err := New(c.cfg)
		if err != nil {
			t.Fatalf("New(%+v): %v", c.cfg, err)
		}
		if in.Name() != c.kind {
			t.Errorf("New(%s) made %s", c.kind, in.Name())
		}
	}
	if h, _ := New(Config{Kind: KindHookAB, Hooks: hooks, StateDir: dir}); h.(*HookAB).cfg.HooksDir == "" {
		t.Error("a hooks directory was taken for a program")
	}
	if len(Kinds()) != 4 {
		t.Errorf("Kinds() = %q", Kinds())
	}
	for _, bad := range []Config{{}, {Kind: "ab-magic"}, {Kind: KindHookAB, StateDir: dir}, {Kind: KindDirAB}} {
		if _, err := New(bad); err == nil {
			t.Errorf("New(%+v) succeeded", bad)
		} else if bad.Kind != KindDirAB && bad.Kind != KindHookAB && !strings.Contains(err.Error(), "ab-dir, ab-hooks, single-slot, script") {
			t.Errorf("New(%+v): %v does not list the kinds", bad, err)
		}
	}
}

func TestValidateImage(t *testing.T) {
	t.Parallel()
	good := Image{Path: "/x", Length: 1, SHA256: strings.Repeat("ab", 32), ReleaseID: "r", Version: "1.0", Counter: 1}
	must(t, validateImage(good, true))
	cases := map[string]func(*Image){
		"no path":          func(i *Image) { i.Path = "" },
		"zero length":      func(i *Image) { i.Length = 0 },
		"upper-case hex":   func(i *Image) { i.SHA256 = strings.Repeat("AB", 32) },
		"short hex":        func(i *Image) { i.SHA256 = "abcd" },
		"no release":       func(i *Image) { i.ReleaseID = "" },
		"negative counter": func(i *Image) { i.Counter = -1 },
		"newline":          func(i *Image) { i.ReleaseID = "r\nSTEWARD_X=1" },
		"NUL":              func(i *Image) { i.Version = "1\x00" },
		"bad UTF-8":        func(i *Image) { i.Version = "\xff" },
		"too long":         func(i *Image) { i.Version = strings.Repeat("v", 300) },
	}
	for name, f := range cases {
		img := good
		f(&img)
		if err := validateImage(img, true); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	factory := good
	factory.ReleaseID = ""
	must(t, validateImage(factory, false))
}

func TestFileImage(t *testing.T) {
	t.Parallel()
	r := newRelease(t, "r", 4, 1234)
	img, err := FileImage(r.img.Path, "r", "v-r", 4)
	must(t, err)
	if img != r.img {
		t.Fatalf("FileImage = %+v, want %+v", img, r.img)
	}
	if _, err := FileImage(filepath.Join(t.TempDir(), "missing"), "r", "", 0); err == nil {
		t.Fatal("missing file")
	}
}

func TestProgramKillsItsProcessGroupOnTimeout(t *testing.T) {
	t.Parallel()
	needShell(t)
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	// The child outlives the shell unless the whole group is killed.
	prog := writeScript(t, dir, "p", fmt.Sprintf(`sleep 30 &
echo $! > %q
wait`, pidFile))
	_, err := program{what: "p", path: prog, timeout: 300 * time.Millisecond}.run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "timed out after 300ms") {
		t.Fatalf("err = %v", err)
	}
	if runtime.GOOS == "linux" {
		pid := readText(t, pidFile)
		// Killed: gone, or a zombie waiting for init to reap it.
		for i := 0; ; i++ {
			stat, err := os.ReadFile("/proc/" + pid + "/stat")
			if err != nil || strings.Contains(string(stat), ") Z ") {
				break
			}
			if i == 100 {
				t.Fatalf("the hook's child %s survived the timeout: %s", pid, stat)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// The caller's own deadline is its context error, not a timeout.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err = program{what: "p", path: prog, timeout: time.Hour}.run(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
}

func TestProgramOutputBounds(t *testing.T) {
	t.Parallel()
	needShell(t)
	dir := t.TempDir()
	ctx := context.Background()
	loud := writeScript(t, dir, "loud", `head -c 1000000 /dev/zero; exit 0`)
	_, err := program{what: "loud", path: loud, timeout: 10 * time.Second, maxOut: 1000}.run(ctx)
	if err == nil || !strings.Contains(err.Error(), "printed more than 1000 bytes") {
		t.Fatalf("err = %v", err)
	}
	// Without a cap, a chatty program is fine; only the tail is kept.
	res, err := program{what: "loud", path: loud, timeout: 10 * time.Second}.run(ctx)
	must(t, err)
	if res.code != 0 || len(res.stdoutTail) > stderrTail {
		t.Fatalf("result %d, tail of %d bytes", res.code, len(res.stdoutTail))
	}

	noisy := writeScript(t, dir, "noisy", `i=0; while [ $i -lt 500 ]; do echo "line $i of noise"; i=$((i+1)); done >&2
printf 'the real reason\033[31m\n\342\200\256evil' >&2; exit 7`)
	res, err = program{what: "noisy", path: noisy, timeout: 10 * time.Second}.run(ctx)
	must(t, err)
	msg := res.errMsg()
	if res.code != 7 || !strings.HasPrefix(msg, "exit status 7: ") || !strings.Contains(msg, "the real reason") {
		t.Fatalf("errMsg = %q", msg)
	}
	if len(msg) > stderrTail+30 || strings.ContainsAny(msg, "\n\033\u202e") {
		t.Fatalf("errMsg is not bounded and printable: %q", msg)
	}
}

func TestTailBuffer(t *testing.T) {
	t.Parallel()
	var b tailBuffer
	b.max = 8
	for _, s := range []string{"abc", "defgh", "ij", "0123456789ABC", "x"} {
		b.Write([]byte(s))
	}
	if got := string(b.bytes()); got != "6789ABCx" {
		t.Fatalf("tail = %q", got)
	}
}

func TestWriteImageRefusesEndlessSource(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/dev/zero"); err != nil {
		t.Skip("no /dev/zero")
	}
	dst := filepath.Join(t.TempDir(), "img")
	img := Image{Path: "/dev/zero", Length: 1000, SHA256: strings.Repeat("0", 64)}
	err := writeImage(context.Background(), "test", dst, img)
	wantErr(t, err, ErrVerify)
	if _, err := os.Stat(dst); !os.IsNotExist(err) {
		t.Fatal("the refused image was left behind")
	}
	var buf bytes.Buffer
	w := newHashingWriter(3)
	if _, err := buf.WriteTo(w); err != nil {
		t.Fatal(err)
	}
	if n, err := w.Write([]byte("abcd")); n != 3 || !errors.Is(err, errTooMuch) || !w.over {
		t.Fatalf("hashingWriter took %d bytes: %v", n, err)
	}
}
