package install

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/steward-iot/steward/agent/atomicfile"
	"github.com/steward-iot/steward/agent/crashpoint"
)

// Installer kinds, as the agent's command line names them.
const (
	KindDirAB      = "ab-dir"
	KindHookAB     = "ab-hooks"
	KindSingleSlot = "single-slot"
	KindScript     = "script"
)

// Kinds lists the installer kinds New accepts.
func Kinds() []string { return []string{KindDirAB, KindHookAB, KindSingleSlot, KindScript} }

// More errors, beside those in install.go.
var (
	// ErrNotProvisioned: an emulated bootloader found no image at all; a
	// factory image must be provisioned first (Provisioner).
	ErrNotProvisioned = errors.New("install: no image is provisioned")
	// ErrProvisioned: Provision found a device that already has an image.
	ErrProvisioned = errors.New("install: already provisioned")
	// ErrNoBootableSlot: no slot holds an image that verifies; a real
	// device would not boot.
	ErrNoBootableSlot = errors.New("install: no slot holds a verified image")
	// ErrNotBooted: the emulated installers need Boot before anything else.
	ErrNotBooted = errors.New("install: Boot has not run; call it once at agent start")
)

// Provisioner is implemented by the file-backed installers (ab-dir,
// single-slot): Provision puts a factory image in place on an empty
// device, so that the first Boot has something to boot.
type Provisioner interface {
	Provision(ctx context.Context, img Image) error
}

var (
	_ Installer   = (*DirAB)(nil)
	_ Installer   = (*SingleSlot)(nil)
	_ Installer   = (*HookAB)(nil)
	_ Installer   = (*Script)(nil)
	_ Provisioner = (*DirAB)(nil)
	_ Provisioner = (*SingleSlot)(nil)
)

// Config chooses and configures an installer by kind, for a command line.
// Only the fields of the chosen kind are used; zero values take defaults.
type Config struct {
	Kind string
	// Dir is the slots directory of ab-dir and single-slot.
	Dir string
	// StateDir is where ab-hooks and script keep what they know about the
	// slots; it must persist across reboots.
	StateDir string
	// Hooks is ab-hooks' hooks directory, or one hook program taking the
	// hook name as its first argument.
	Hooks string
	// SlotDevices optionally names ab-hooks' slot partitions, for reading
	// a written image back (see HookABConfig).
	SlotDevices map[string]string
	// Script is the script installer's executable.
	Script string
	// MaxAttempts is the number of trial boots (bootlimit); 0 means 3.
	MaxAttempts int
	// Env adds NAME=value entries to the environment of hooks and scripts.
	Env []string
	// Timeout bounds each hook or script step; WriteTimeout the steps
	// that copy a whole image. Zero takes the kind's defaults.
	Timeout, WriteTimeout time.Duration
	// RebootWait: see HookABConfig and ScriptOptions.
	RebootWait time.Duration
	Logger     *slog.Logger
}

// New returns the installer of kind c.Kind.
func New(c Config) (Installer, error) {
	switch c.Kind {
	case KindDirAB:
		return NewDirAB(c.Dir, DirABOptions{MaxAttempts: c.MaxAttempts, Logger: c.Logger})
	case KindSingleSlot:
		return NewSingleSlot(c.Dir, SingleSlotOptions{MaxAttempts: c.MaxAttempts, Logger: c.Logger})
	case KindHookAB:
		hc := HookABConfig{StateDir: c.StateDir, SlotDevices: c.SlotDevices, Env: c.Env,
			Timeout: c.Timeout, WriteTimeout: c.WriteTimeout, RebootWait: c.RebootWait, Logger: c.Logger}
		if c.Hooks == "" {
			return nil, errors.New("install: ab-hooks needs a hooks directory or program")
		}
		if fi, err := os.Stat(c.Hooks); err == nil && fi.IsDir() {
			hc.HooksDir = c.Hooks
		} else {
			hc.Program = c.Hooks
		}
		return NewHookAB(hc)
	case KindScript:
		return NewScript(c.Script, ScriptOptions{StateDir: c.StateDir, MaxAttempts: c.MaxAttempts, Env: c.Env,
			Timeout: c.Timeout, InstallTimeout: c.WriteTimeout, RebootWait: c.RebootWait, Logger: c.Logger})
	case "":
		return nil, fmt.Errorf("install: no installer kind given; choose one of %s", strings.Join(Kinds(), ", "))
	default:
		return nil, fmt.Errorf("install: unknown installer kind %q; choose one of %s", c.Kind, strings.Join(Kinds(), ", "))
	}
}

// ownDir makes dir (0700) if needed and returns its absolute path; what
// names it in errors.
func ownDir(what, dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	if fi, err := os.Stat(abs); err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	} else if !fi.IsDir() {
		return "", fmt.Errorf("%s %s is not a directory", what, abs)
	}
	return abs, nil
}

// FileImage describes the file at path as an Image of the given release,
// hashing it. For factory images and tools; the agent gets Length and
// SHA256 from signed metadata instead.
func FileImage(path, releaseID, version string, counter int64) (Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return Image{}, fmt.Errorf("install: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return Image{}, fmt.Errorf("install: read %s: %w", path, err)
	}
	return Image{Path: path, Length: n, SHA256: hex.EncodeToString(h.Sum(nil)),
		ReleaseID: releaseID, Version: version, Counter: counter}, nil
}

const (
	defaultMaxAttempts = 3
	// maxAttemptsLimit keeps a typo from meaning "retry a broken image
	// for days".
	maxAttemptsLimit = 100
	// maxTextField bounds release ids and versions, which end up in file
	// names of logs and in hooks' environments.
	maxTextField = 256
	// maxMetaFile bounds the JSON files installers read: their own
	// metadata (possibly damaged) and hooks' output.
	maxMetaFile = 64 << 10
	// spaceReserve is kept free beside an image, for metadata files.
	spaceReserve = 64 << 10
	copyBuffer   = 256 << 10
)

func maxAttempts(n int) (int, error) {
	switch {
	case n == 0:
		return defaultMaxAttempts, nil
	case n < 1 || n > maxAttemptsLimit:
		return 0, fmt.Errorf("MaxAttempts %d is out of range 1..%d", n, maxAttemptsLimit)
	}
	return n, nil
}

func discardLogger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}

func isHexSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// checkText accepts printable UTF-8 of bounded length: these fields reach
// hooks' environments and logs.
func checkText(field, s string) error {
	if len(s) > maxTextField {
		return fmt.Errorf("%s is %d bytes long; at most %d", field, len(s), maxTextField)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%s is not valid UTF-8", field)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%s contains control character %U", field, r)
		}
	}
	return nil
}

// validateImage checks an Image before anything is written. A release id
// is required except for factory images.
func validateImage(img Image, needRelease bool) error {
	var errs []error
	if img.Path == "" {
		errs = append(errs, errors.New("image path is empty"))
	}
	if img.Length <= 0 {
		errs = append(errs, fmt.Errorf("image length %d is not positive", img.Length))
	}
	if !isHexSHA256(img.SHA256) {
		errs = append(errs, fmt.Errorf("image sha256 %q is not 64 lower-case hex digits", img.SHA256))
	}
	if needRelease && img.ReleaseID == "" {
		errs = append(errs, errors.New("image has no release id"))
	}
	if img.Counter < 0 {
		errs = append(errs, fmt.Errorf("release counter %d is negative", img.Counter))
	}
	if err := checkText("release id", img.ReleaseID); err != nil {
		errs = append(errs, err)
	}
	if err := checkText("version", img.Version); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("install: bad image: %w", errors.Join(errs...))
	}
	return nil
}

func slotOf(name string, img Image) Slot {
	return Slot{Name: name, SHA256: img.SHA256, Length: img.Length,
		ReleaseID: img.ReleaseID, Version: img.Version, Counter: img.Counter}
}

func sameBytes(s Slot, img Image) bool { return s.SHA256 == img.SHA256 && s.Length == img.Length }

func sameRelease(a, b Slot) bool {
	return a.SHA256 == b.SHA256 && a.Length == b.Length && a.ReleaseID == b.ReleaseID &&
		a.Version == b.Version && a.Counter == b.Counter
}

// checkSlot validates slot metadata read from disk: a slot that is to be
// verified needs a length and a digest to verify against.
func checkSlot(s Slot, name string) error {
	if name != "" && s.Name != name {
		return fmt.Errorf("names slot %q, want %q", s.Name, name)
	}
	if s.Length <= 0 {
		return fmt.Errorf("length %d is not positive", s.Length)
	}
	if !isHexSHA256(s.SHA256) {
		return fmt.Errorf("sha256 %q is not 64 lower-case hex digits", s.SHA256)
	}
	if s.Counter < 0 {
		return fmt.Errorf("counter %d is negative", s.Counter)
	}
	if err := checkText("release id", s.ReleaseID); err != nil {
		return err
	}
	return checkText("version", s.Version)
}

// errDamaged marks a metadata file that exists but cannot be used.
var errDamaged = errors.New("damaged")

// readJSONFile decodes the single JSON value in path into v. A missing
// file gives an error wrapping fs.ErrNotExist; an unreadable, oversized or
// malformed one an error wrapping errDamaged.
func readJSONFile(path string, v any) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxMetaFile+1))
	if err != nil {
		return fmt.Errorf("%s: %w: %v", path, errDamaged, err)
	}
	if len(data) > maxMetaFile {
		return fmt.Errorf("%s: %w: longer than %d bytes", path, errDamaged, maxMetaFile)
	}
	if err := decodeJSON(data, v); err != nil {
		return fmt.Errorf("%s: %w: %v", path, errDamaged, err)
	}
	return nil
}

// decodeJSON decodes exactly one JSON value; trailing data is an error.
func decodeJSON(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}

// writeJSONFile replaces path with v's JSON, crash-safely. cp names the
// crash points around the replacement.
func writeJSONFile(cp, path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	crashpoint.Hit(cp + "-before")
	if err := atomicfile.WriteFile(path, append(data, '\n'), 0o600); err != nil {
		return err
	}
	crashpoint.Hit(cp + "-after")
	return nil
}

// removeDurably removes path, if present, and makes the removal durable.
func removeDurably(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return atomicfile.SyncDir(filepath.Dir(path))
}

// removeTemps removes the temp files a crash inside atomicfile.WriteFile
// or writeImage leaves behind in dir.
func removeTemps(dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if n := e.Name(); strings.HasPrefix(n, ".") && strings.Contains(n, ".tmp-") && e.Type().IsRegular() {
			os.Remove(filepath.Join(dir, n))
		}
	}
}

// digestReader hashes r to EOF, checking ctx between chunks. It reads at
// most limit+1 bytes, so that an endless reader is still refused.
func digestReader(ctx context.Context, r io.Reader, limit int64) (int64, string, error) {
	h := sha256.New()
	buf := make([]byte, copyBuffer)
	var n int64
	lr := io.LimitReader(r, limit+1)
	for {
		if err := ctx.Err(); err != nil {
			return n, "", err
		}
		m, err := lr.Read(buf)
		h.Write(buf[:m])
		n += int64(m)
		if err == io.EOF {
			return n, hex.EncodeToString(h.Sum(nil)), nil
		}
		if err != nil {
			return n, "", err
		}
	}
}

// verifyFile checks that the file at path holds exactly length bytes with
// the given digest. A mismatch wraps ErrVerify; ctx and I/O errors do not.
func verifyFile(ctx context.Context, path string, length int64, sum string) error {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%w: %s is missing", ErrVerify, path)
		}
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%w: %s is not a regular file", ErrVerify, path)
	}
	if fi.Size() != length {
		return fmt.Errorf("%w: %s holds %d bytes, want %d", ErrVerify, path, fi.Size(), length)
	}
	n, got, err := digestReader(ctx, f, length)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if n != length {
		return fmt.Errorf("%w: %s holds %d bytes, want %d", ErrVerify, path, n, length)
	}
	if got != sum {
		return fmt.Errorf("%w: %s has sha256 %s, want %s", ErrVerify, path, got, sum)
	}
	return nil
}

// verifySource checks the image file against img before it is handed to a
// hook or script, which cannot be trusted to check it themselves.
func verifySource(ctx context.Context, img Image) error {
	if err := verifyFile(ctx, img.Path, img.Length, img.SHA256); err != nil {
		if errors.Is(err, ErrVerify) {
			return fmt.Errorf("%w: the image file does not match the image: %v", ErrVerify, err)
		}
		return err
	}
	return nil
}

// hashingWriter hashes what is written to it and refuses more than want
// bytes, so that a read-back hook printing too much is cut off.
type hashingWriter struct {
	want, n int64
	h       interface {
		io.Writer
		Sum([]byte) []byte
	}
	over bool
}

func newHashingWriter(want int64) *hashingWriter { return &hashingWriter{want: want, h: sha256.New()} }

var errTooMuch = errors.New("more data than the image length")

func (w *hashingWriter) Write(p []byte) (int, error) {
	if w.n+int64(len(p)) > w.want {
		w.over = true
		k := w.want - w.n
		w.h.Write(p[:k])
		w.n = w.want
		return int(k), errTooMuch
	}
	w.h.Write(p)
	w.n += int64(len(p))
	return len(p), nil
}

func (w *hashingWriter) sum() string { return hex.EncodeToString(w.h.Sum(nil)) }

// isNoSpace tells a full file system from other write errors.
func isNoSpace(err error) bool { return errors.Is(err, syscall.ENOSPC) }

// writeImage copies img.Path to dst, checking the source against img as it
// goes, then flushes dst and reads it back to verify it. It never holds
// more than one buffer of the image in memory. On a mismatch (ErrVerify)
// or a full disk (ErrNoSpace) dst is removed. cp prefixes the crash point
// names.
func writeImage(ctx context.Context, cp, dst string, img Image) (err error) {
	src, err := os.Open(img.Path)
	if err != nil {
		return fmt.Errorf("open image: %w", err)
	}
	defer src.Close()
	if fi, err := src.Stat(); err != nil {
		return fmt.Errorf("open image: %w", err)
	} else if fi.Mode().IsRegular() && fi.Size() != img.Length {
		return fmt.Errorf("%w: the image file %s holds %d bytes, the image %d", ErrVerify, img.Path, fi.Size(), img.Length)
	}

	// A new file, not the old one truncated: its blocks are freed first,
	// and a symlink planted at dst is replaced, not followed.
	if err := os.Remove(dst); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if isNoSpace(err) {
			return fmt.Errorf("%w: create %s: %v", ErrNoSpace, dst, err)
		}
		return err
	}
	defer func() {
		if f != nil {
			f.Close()
		}
		if errors.Is(err, ErrVerify) || errors.Is(err, ErrNoSpace) {
			os.Remove(dst) // frees the space; the slot holds nothing valid anyway
		}
	}()
	crashpoint.Hit(cp + "/image-truncated")

	h := sha256.New()
	buf := make([]byte, copyBuffer)
	lr := io.LimitReader(src, img.Length+1) // one byte more reveals a longer file
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		m, rerr := lr.Read(buf)
		if m > 0 {
			if _, err := f.Write(buf[:m]); err != nil {
				if isNoSpace(err) {
					return fmt.Errorf("%w: write %s: %v", ErrNoSpace, dst, err)
				}
				return fmt.Errorf("write %s: %w", dst, err)
			}
			h.Write(buf[:m])
			if n == 0 {
				crashpoint.Hit(cp + "/image-partial")
			}
			n += int64(m)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return fmt.Errorf("read image %s: %w", img.Path, rerr)
		}
	}
	if n != img.Length {
		return fmt.Errorf("%w: the image file %s holds %d bytes, the image %d", ErrVerify, img.Path, n, img.Length)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != img.SHA256 {
		return fmt.Errorf("%w: the image file %s has sha256 %s, the image %s", ErrVerify, img.Path, got, img.SHA256)
	}
	crashpoint.Hit(cp + "/image-written")
	if err := f.Sync(); err != nil {
		if isNoSpace(err) {
			return fmt.Errorf("%w: flush %s: %v", ErrNoSpace, dst, err)
		}
		return fmt.Errorf("flush %s: %w", dst, err)
	}
	crashpoint.Hit(cp + "/image-synced")
	cerr := f.Close()
	f = nil
	if cerr != nil {
		return fmt.Errorf("close %s: %w", dst, cerr)
	}
	if err := atomicfile.SyncDir(filepath.Dir(dst)); err != nil {
		return err
	}
	// Read back what reached the file system, not what we meant to write.
	if err := verifyFile(ctx, dst, img.Length, img.SHA256); err != nil {
		if errors.Is(err, ErrVerify) {
			return fmt.Errorf("%w: read back: %v", ErrVerify, err)
		}
		return err
	}
	crashpoint.Hit(cp + "/image-verified")
	return nil
}

// checkSpace returns ErrNoSpace unless dir's file system has need bytes
// free, counting reclaim bytes that the write will free. It passes where
// the free space cannot be known.
func checkSpace(free func(string) (int64, bool, error), dir string, need, reclaim int64) error {
	avail, known, err := free(dir)
	if err != nil {
		return fmt.Errorf("free space of %s: %w", dir, err)
	}
	if known && avail+reclaim < need+spaceReserve {
		return fmt.Errorf("%w: %s has %d bytes free (%d more once the old image is gone), the image needs %d",
			ErrNoSpace, dir, avail, reclaim, need+spaceReserve)
	}
	return nil
}

// defaultRebootWait is how long a real machine may take to go down after
// its reboot command succeeded.
const defaultRebootWait = 5 * time.Minute

// waitForRestart stands for "does not return" after a reboot command
// succeeded on a real machine: it waits for the agent to be stopped (ctx)
// or, if the machine stays up, fails after wait. A negative wait returns
// at once, for emulations whose reboot happens in-process.
func waitForRestart(ctx context.Context, wait time.Duration, what string) error {
	if wait < 0 {
		return nil
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return fmt.Errorf("%s exited 0, but the machine did not restart within %s", what, wait)
	}
}

// fileSize is the size of the regular file at path, 0 if there is none.
func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil || !fi.Mode().IsRegular() {
		return 0
	}
	return fi.Size()
}
