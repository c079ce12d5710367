// Package crashpoint marks the places in the agent where a power cut
// matters, so that power-loss tests (Steward's, and a vendor's testing its
// own embedding of the agent) can abort the process exactly there. In a
// normal agent no hook is set and Hit costs an atomic load.
package crashpoint

import "sync/atomic"

var hook atomic.Pointer[func(name string)]

// Set installs f to be called at every Hit; nil removes it. Tests only.
func Set(f func(name string)) {
	if f == nil {
		hook.Store(nil)
		return
	}
	hook.Store(&f)
}

// Hit marks a point where the process may die: after a write and before
// its flush, between a flush and a rename, and the like. name says where,
// for the test's report.
func Hit(name string) {
	if f := hook.Load(); f != nil {
		(*f)(name)
	}
}
