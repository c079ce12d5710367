//go:build !(linux || darwin)

package install

// freeBytes cannot tell the free space where syscall has no Statfs; the
// agent targets Linux devices and builds elsewhere only for development.
// A full disk still shows as ErrNoSpace when the write fails.
func freeBytes(string) (int64, bool, error) { return 0, false, nil }
