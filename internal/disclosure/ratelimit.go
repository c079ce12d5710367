package disclosure

import (
	"math"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/steward-iot/steward/internal/clock"
)

// limiter is an in-memory token bucket per client key. It is per process:
// with N replicas a client gets up to N times the rate, which is still a
// bound, and keeps the public endpoints free of database writes for abuse.
type limiter struct {
	mu      sync.Mutex
	rate    Rate
	clock   clock.Clock
	max     int // bucket count kept before idle ones are dropped
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

const maxBuckets = 100_000

func newLimiter(r Rate, c clock.Clock) *limiter {
	return &limiter{rate: r, clock: c, max: maxBuckets, buckets: map[string]*bucket{}}
}

// allow takes one token for key, or says how long until one is there.
func (l *limiter) allow(key string) (bool, time.Duration) {
	now := l.clock.Now()
	// Nanoseconds per token as a float: Per/N in integers would round a
	// high rate down to zero.
	perToken := float64(l.rate.Per) / float64(l.rate.N)
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= l.max {
			l.evict(now)
		}
		b = &bucket{tokens: float64(l.rate.N), last: now}
		l.buckets[key] = b
	}
	if el := now.Sub(b.last); el > 0 {
		b.tokens = math.Min(float64(l.rate.N), b.tokens+float64(el)/perToken)
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration(math.Ceil((1 - b.tokens) * perToken))
}

// evict drops buckets that have refilled completely (forgetting them
// changes nothing), and if that frees nothing, arbitrary ones, so a flood
// of distinct addresses cannot grow memory without bound.
func (l *limiter) evict(now time.Time) {
	for k, b := range l.buckets {
		if now.Sub(b.last) >= l.rate.Per {
			delete(l.buckets, k)
		}
	}
	for k := range l.buckets {
		if len(l.buckets) < l.max {
			break
		}
		delete(l.buckets, k)
	}
}

// retryAfter renders a wait as whole seconds for Retry-After.
func retryAfter(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}

// clientKey names the client a request is counted against: the peer
// address, or — when the peer is a trusted proxy — the first address in
// X-Forwarded-For, read from the right, that is not itself a trusted
// proxy (entries further left are whatever the client chose to send).
// IPv6 clients are counted per /64, the block one subscriber usually has.
func clientKey(r *http.Request, trusted []netip.Prefix) string {
	addr, ok := peerAddr(r.RemoteAddr)
	if !ok {
		return "unknown"
	}
	if isTrusted(addr, trusted) {
		hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
		for i := len(hops) - 1; i >= 0; i-- {
			a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
			if err != nil {
				break // a garbled hop: count the last proxy we could trust
			}
			addr = a.Unmap().WithZone("")
			if !isTrusted(addr, trusted) {
				break
			}
		}
	}
	if addr.Is6() {
		p, _ := addr.Prefix(64)
		return p.String()
	}
	return addr.String()
}

func peerAddr(remote string) (netip.Addr, bool) {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap().WithZone(""), true
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
