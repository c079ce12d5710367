// Package pacing computes how long the agent and the simulator wait between
// requests: poll intervals with jitter, so that a fleet that started
// together does not stay in lockstep, and exponential backoff after
// failures, so that a struggling server is not hammered by retries.
package pacing

import "time"

const (
	// BackoffBase is the backoff bound after the first failure.
	BackoffBase = time.Second
	// BackoffMax caps the backoff bound.
	BackoffMax = 5 * time.Minute
)

// Backoff returns the wait after failure number n (0 for the first) in a
// row: "full jitter", r (in [0, 1)) times BackoffBase doubled n times, at
// most BackoffMax. Full jitter spreads the retries of many devices that
// failed together across the whole window.
func Backoff(n int, r float64) time.Duration {
	bound := BackoffMax
	if n < 30 { // beyond that the shift overflows; the cap applies anyway
		bound = min(BackoffMax, BackoffBase<<n)
	}
	return time.Duration(r * float64(bound))
}

// Jitter returns d varied by up to ±10% according to r (in [0, 1)).
func Jitter(d time.Duration, r float64) time.Duration {
	return time.Duration(float64(d) * (0.9 + 0.2*r))
}
