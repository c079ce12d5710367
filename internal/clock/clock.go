// Package clock supplies the current time. Services take a Clock so that
// windows, SLAs and expiries can be tested without sleeping.
package clock

import (
	"sync"
	"time"
)

// Clock tells the time.
type Clock interface {
	Now() time.Time
}

// Precision is the resolution Steward keeps times at. Both databases store
// microseconds, and hashing a time that the store would round differently
// would break the audit chain.
const Precision = time.Microsecond

// Norm returns t in UTC at storage precision.
func Norm(t time.Time) time.Time { return t.UTC().Truncate(Precision) }

type real struct{}

// Real is the system clock.
var Real Clock = real{}

func (real) Now() time.Time { return Norm(time.Now()) }

// Fake is a settable clock for tests.
type Fake struct {
	mu  sync.Mutex
	now time.Time
}

// NewFake returns a fake clock set to t.
func NewFake(t time.Time) *Fake { return &Fake{now: Norm(t)} }

// Now returns the fake time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// Advance moves the fake time forward by d.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = Norm(f.now.Add(d))
}
