package atomicfile

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// assertEntries fails unless dir holds exactly the named entries, so a
// leftover temp file shows up by name.
func assertEntries(t *testing.T, dir string, want ...string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("%s holds %q, want %q", dir, got, want)
	}
}

func assertFile(t *testing.T, path string, data []byte, perm os.FileMode) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Errorf("%s content = %q, want %q", path, got, data)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode() != perm {
		t.Errorf("%s mode = %v, want %v", path, fi.Mode(), perm)
	}
}

func TestWriteFileContentAndPerm(t *testing.T) {
	// 0o666 checks that the umask (typically 022) does not narrow perm.
	for _, perm := range []os.FileMode{0o600, 0o644, 0o400, 0o666} {
		t.Run(perm.String(), func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "f")
			data := []byte("hello\x00world\n")
			if err := WriteFile(path, data, perm); err != nil {
				t.Fatalf("WriteFile: %v", err)
			}
			assertFile(t, path, data, perm)
			assertEntries(t, dir, "f")
		})
	}
}

func TestWriteFileEmpty(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	if err := WriteFile(path, nil, 0o600); err != nil {
		t.Fatalf("WriteFile: %v", err)
	}
	assertFile(t, path, []byte{}, 0o600)
	assertEntries(t, dir, "f")
}

func TestWriteFileOverwritesExisting(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	if err := os.WriteFile(path, []byte("old content that is longer"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(path, []byte("new"), 0o600); err != nil {
		t.Fatalf("WriteFile: %v", err)
	}
	// Both content and mode come from the new write, not the old file.
	assertFile(t, path, []byte("new"), 0o600)
	assertEntries(t, dir, "f")
}

func TestWriteFileTargetIsDirectoryLeavesNoTemp(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub")
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(path, []byte("x"), 0o600); err == nil {
		t.Fatal("WriteFile over a directory succeeded")
	}
	assertEntries(t, dir, "sub")
	if fi, err := os.Stat(path); err != nil || !fi.IsDir() {
		t.Errorf("directory was disturbed: %v, %v", fi, err)
	}
}

func TestWriteFileMissingDir(t *testing.T) {
	dir := t.TempDir()
	if err := WriteFile(filepath.Join(dir, "missing", "f"), []byte("x"), 0o600); err == nil {
		t.Fatal("WriteFile into a missing directory succeeded")
	}
	assertEntries(t, dir)
}

func TestWriteFileDirNotWritableLeavesNoTemp(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root bypasses directory permissions")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(dir, 0o700) }) // so TempDir can clean up
	if err := WriteFile(path, []byte("new"), 0o644); err == nil {
		t.Fatal("WriteFile into a read-only directory succeeded")
	}
	assertFile(t, path, []byte("old"), 0o644)
	assertEntries(t, dir, "f")
}
