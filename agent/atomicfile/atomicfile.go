// Package atomicfile replaces files so that, even across a crash or power
// loss, readers see either the complete old content or the complete new
// content, never a partial write.
package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/steward-iot/steward/agent/crashpoint"
)

// WriteFile writes data to path like os.WriteFile, but crash-safely: it
// writes and fsyncs a temp file in the same directory, renames it over path
// and fsyncs the directory so the rename itself is durable.
//
// perm is applied exactly (the umask does not narrow it) and only after the
// data is written, so the content is never visible with wider permissions
// than 0600 before that. If path is a symlink, the link itself is replaced.
//
// On failure no temp file is left behind, and path is unchanged unless only
// the final directory fsync failed: then the new content is in place but
// may not survive a crash.
func WriteFile(path string, data []byte, perm os.FileMode) (err error) {
	dir := filepath.Dir(path)
	// Dot-prefixed so directory listings and globs for the real name skip it.
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("atomicfile: write %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close() // may already be closed; the error is irrelevant then
			if tmp != "" {
				os.Remove(tmp)
			}
			err = fmt.Errorf("atomicfile: write %s: %w", path, err)
		}
	}()

	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Chmod(perm); err != nil {
		return err
	}
	// Without this fsync a crash after the rename can leave path empty:
	// the rename may reach the disk before the data does.
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	crashpoint.Hit("atomicfile/before-rename")
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	tmp = "" // renamed away: never remove whatever now has that name
	return SyncDir(dir)
}

// SyncDir fsyncs directory dir, making the creation, rename or removal of
// entries in it durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
