//go:build !(linux || darwin)

package runner

// freeBytes reports 0, "unknown", where syscall has no Statfs; the agent
// targets Linux devices and builds elsewhere only for development.
func freeBytes(string) (int64, error) { return 0, nil }
