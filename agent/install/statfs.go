//go:build linux || darwin

package install

import "syscall"

// freeBytes returns the space available to unprivileged users on the file
// system holding dir; known is false where it cannot be told.
func freeBytes(dir string) (avail int64, known bool, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, false, err
	}
	return int64(st.Bavail) * int64(st.Bsize), true, nil
}
