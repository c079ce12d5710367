package wake

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestGateFloodAtOnceYieldsOneCheckIn(t *testing.T) {
	g := gate{minGap: 30 * time.Second}
	t0 := time.Unix(1_800_000_000, 0)
	admitted := 0
	for range 1000 {
		if _, ok := g.admit(t0, 0); ok {
			admitted++
		}
	}
	if admitted != 1 {
		t.Fatalf("a flood at one instant admitted %d wake-ups, want 1", admitted)
	}
}

func TestGateSpacesCheckInsByMinGap(t *testing.T) {
	g := gate{minGap: 30 * time.Second}
	t0 := time.Unix(1_800_000_000, 0)
	steps := []struct {
		at, jitter time.Duration
		wantDelay  time.Duration
		wantOK     bool
	}{
		{0, 0, 0, true},                                               // first: at once
		{time.Second, 0, 29 * time.Second, true},                      // deferred to t0+30s, not dropped
		{2 * time.Second, 0, 0, false},                                // coalesced into the pending t0+30s
		{20 * time.Second, 5 * time.Second, 0, false},                 // due t0+25s is still held to t0+30s: coalesced
		{31 * time.Second, 0, 29 * time.Second, true},                 // next one at t0+60s
		{100 * time.Second, 10 * time.Second, 10 * time.Second, true}, // quiet long enough: only its jitter
	}
	for i, s := range steps {
		delay, ok := g.admit(t0.Add(s.at), s.jitter)
		if ok != s.wantOK || (ok && delay != s.wantDelay) {
			t.Errorf("step %d (at +%s, jitter %s): got (%s, %v), want (%s, %v)", i, s.at, s.jitter, delay, ok, s.wantDelay, s.wantOK)
		}
	}
}

func TestGateLaterUrgentWakeUpMovesPendingCheckInEarlier(t *testing.T) {
	g := gate{minGap: 30 * time.Second}
	t0 := time.Unix(1_800_000_000, 0)
	// A broadcast drew 10 minutes of its spread...
	if d, ok := g.admit(t0, 10*time.Minute); !ok || d != 10*time.Minute {
		t.Fatalf("broadcast: (%s, %v)", d, ok)
	}
	// ...then an urgent per-device wake-up must not wait for it.
	if d, ok := g.admit(t0.Add(time.Minute), 0); !ok || d != 0 {
		t.Fatalf("urgent wake-up during a long spread: (%s, %v), want (0, true)", d, ok)
	}
	// A later wake-up with a longer draw changes nothing.
	if _, ok := g.admit(t0.Add(time.Minute), 5*time.Minute); ok {
		t.Fatal("a later due time replaced an earlier pending one")
	}
}

// Whatever arrives, early check-ins (the pending times that come due) are
// at least minGap apart, and each admitted wake-up's check-in is no later
// than its own now+jitter allows after the gap.
func TestGateNeverChecksInMoreThanOncePerMinGap(t *testing.T) {
	const minGap = 30 * time.Second
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 200 {
		g := gate{minGap: minGap}
		now := time.Unix(1_800_000_000, 0)
		var pending time.Time
		var checkIns []time.Time
		for range 500 {
			now = now.Add(time.Duration(rng.Int64N(int64(20 * time.Second))))
			if !pending.IsZero() && pending.Before(now) {
				checkIns = append(checkIns, pending)
				pending = time.Time{}
			}
			jitter := time.Duration(rng.Int64N(int64(2 * time.Minute)))
			if rng.IntN(3) == 0 {
				jitter = 0
			}
			delay, ok := g.admit(now, jitter)
			if !ok {
				continue
			}
			if delay < 0 {
				t.Fatalf("trial %d: negative delay %s", trial, delay)
			}
			due := now.Add(delay)
			if !pending.IsZero() && !due.Before(pending) {
				t.Fatalf("trial %d: an admitted wake-up did not move the pending check-in earlier", trial)
			}
			pending = due
		}
		if !pending.IsZero() {
			checkIns = append(checkIns, pending)
		}
		if !slices.IsSortedFunc(checkIns, func(a, b time.Time) int { return a.Compare(b) }) {
			t.Fatalf("trial %d: check-ins out of order", trial)
		}
		for i := 1; i < len(checkIns); i++ {
			if gap := checkIns[i].Sub(checkIns[i-1]); gap < minGap {
				t.Fatalf("trial %d: early check-ins %s apart, want at least %s", trial, gap, minGap)
			}
		}
	}
}
