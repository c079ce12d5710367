package wake

import (
	"sync"
	"time"
)

// gate turns accepted wake-ups into early check-ins, at most one per
// minGap however many wake-ups arrive, forged or not.
//
// It keeps the time of the early check-in it has scheduled (pending, in
// the future) and of the last one whose time has come (prev). A wake-up
// is due at now+jitter, but never sooner than minGap after prev. While a
// check-in is pending, a wake-up that would be due no sooner is coalesced
// into it (that check-in will see whatever the new wake-up announces); one
// that would be due sooner moves it earlier, so a long spread drawn for a
// broadcast does not hold back a later urgent wake-up. Each admitted
// wake-up therefore either starts a new early check-in at least minGap
// after the previous one or brings the pending one forward: a flood yields
// one early check-in per minGap.
//
// Times come from the caller; with time.Now they carry Go's monotonic
// reading, so setting the device's wall clock does not confuse the gate.
type gate struct {
	minGap time.Duration

	mu      sync.Mutex
	prev    time.Time // zero until the first early check-in came due
	pending time.Time // zero when none is scheduled
}

// admit returns the delay until the early check-in for a wake-up arriving
// at now with the given jitter (already drawn from [0, spread)), or
// ok=false when the wake-up is coalesced into the pending check-in.
func (g *gate) admit(now time.Time, jitter time.Duration) (delay time.Duration, ok bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	// A check-in due exactly now is still pending: it has not happened yet.
	if !g.pending.IsZero() && g.pending.Before(now) {
		g.prev, g.pending = g.pending, time.Time{}
	}
	due := now.Add(jitter)
	if !g.prev.IsZero() {
		if earliest := g.prev.Add(g.minGap); due.Before(earliest) {
			due = earliest
		}
	}
	if !g.pending.IsZero() && !due.Before(g.pending) {
		return 0, false
	}
	g.pending = due
	return due.Sub(now), true
}
