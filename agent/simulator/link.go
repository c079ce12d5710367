package simulator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/steward-iot/steward/agent/proto"
)

// LinkProfile is how a simulated link carries a device's update traffic.
type LinkProfile struct {
	// Bandwidth in bits per second, the same each way; 0 is unlimited.
	Bandwidth float64
	// Latency is waited once per request, for the round trip before the
	// first byte of the answer.
	Latency time.Duration
	// Loss is the probability that a request is lost. Half the lost POSTs
	// never reach the server; otherwise the answer breaks off at a random
	// byte of its head or body, so a long download is nearly always cut
	// inside and must resume.
	Loss float64
}

func (p LinkProfile) String() string {
	bw := "unlimited"
	if p.Bandwidth > 0 {
		bw = formatBits(p.Bandwidth)
	}
	return fmt.Sprintf("%s,%s,%g%%", bw, p.Latency, p.Loss*100)
}

// DefaultLinkProfiles returns the profile of each link class. Bandwidths
// are the downlink peak rates of the standards; latencies and losses are
// typical round figures, not from a standard:
//
//   - ethernet: 100 Mbit/s (100BASE-TX, IEEE 802.3u), 2 ms, no loss.
//   - wifi: 20 Mbit/s, the TCP throughput of a 1x1 802.11n module in
//     practice (its 20 MHz PHY peaks at 72.2 Mbit/s), 10 ms, 0.1%.
//   - cellular: 1 Mbit/s, LTE-M Cat-M1 (3GPP Release 13); 100 ms, the
//     10–15 ms radio latency plus the operator core and the Internet; 1%.
//   - nb-iot: 26 kbit/s, NB-IoT Cat-NB1 (3GPP Release 13); 2 s, at the low
//     end of its 1.6–10 s latency; 2%.
//   - lora: 5.47 kbit/s, LoRaWAN EU868 DR5 (SF7, 125 kHz, LoRaWAN Regional
//     Parameters); 2 s, the class A RECEIVE_DELAY2; 5%. The 1% duty cycle
//     the EU868 band imposes is not modelled.
func DefaultLinkProfiles() map[string]LinkProfile {
	return map[string]LinkProfile{
		proto.LinkEthernet: {Bandwidth: 100e6, Latency: 2 * time.Millisecond},
		proto.LinkWiFi:     {Bandwidth: 20e6, Latency: 10 * time.Millisecond, Loss: 0.001},
		proto.LinkCellular: {Bandwidth: 1e6, Latency: 100 * time.Millisecond, Loss: 0.01},
		proto.LinkNBIoT:    {Bandwidth: 26e3, Latency: 2 * time.Second, Loss: 0.02},
		proto.LinkLoRa:     {Bandwidth: 5470, Latency: 2 * time.Second, Loss: 0.05},
	}
}

func knownLink(class string) bool {
	switch class {
	case proto.LinkEthernet, proto.LinkWiFi, proto.LinkCellular, proto.LinkNBIoT, proto.LinkLoRa:
		return true
	}
	return false
}

// ParseLinkProfile parses "CLASS=BANDWIDTH,LATENCY,LOSS", e.g.
// "cellular=1Mbit/s,120ms,2%", over base (the class's current profile).
// An empty field keeps base's value: "nb-iot=,5s," changes the latency
// only. BANDWIDTH is a number with bit/s, kbit/s, Mbit/s or Gbit/s (or
// bps, kbps, Mbps, Gbps), or "unlimited"; LATENCY a Go duration; LOSS a
// percentage ("2%") or a fraction ("0.02").
func ParseLinkProfile(s string, base func(class string) LinkProfile) (class string, p LinkProfile, err error) {
	class, spec, ok := strings.Cut(strings.TrimSpace(s), "=")
	class = strings.TrimSpace(class)
	if !ok || class == "" {
		return "", p, fmt.Errorf("%q: want CLASS=BANDWIDTH,LATENCY,LOSS, e.g. cellular=1Mbit/s,120ms,2%%", s)
	}
	if !knownLink(class) {
		return "", p, fmt.Errorf("%q: unknown link class %q; use ethernet, wifi, cellular, nb-iot or lora", s, class)
	}
	p = base(class)
	fields := strings.Split(spec, ",")
	if len(fields) > 3 {
		return "", p, fmt.Errorf("%q: more than three fields after =; want BANDWIDTH,LATENCY,LOSS", s)
	}
	for i, f := range fields {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		switch i {
		case 0:
			if p.Bandwidth, err = ParseBandwidth(f); err != nil {
				return "", p, fmt.Errorf("%q: %w", s, err)
			}
		case 1:
			d, err := time.ParseDuration(f)
			if err != nil || d < 0 || d > time.Hour {
				return "", p, fmt.Errorf("%q: latency %q must be a duration such as 120ms, at most 1h", s, f)
			}
			p.Latency = d
		case 2:
			if p.Loss, err = parseFraction(f); err != nil {
				return "", p, fmt.Errorf("%q: loss: %w", s, err)
			}
		}
	}
	return class, p, nil
}

var bitUnits = []struct {
	suffix string
	factor float64
}{
	// Longest first, so that "kbit/s" is not read as "bit/s".
	{"gbit/s", 1e9}, {"mbit/s", 1e6}, {"kbit/s", 1e3}, {"bit/s", 1},
	{"gbps", 1e9}, {"mbps", 1e6}, {"kbps", 1e3}, {"bps", 1},
}

// ParseBandwidth parses a rate such as "1Mbit/s", "250kbps" or
// "unlimited" (0) into bits per second. Prefixes are decimal; any case
// is accepted, since nobody means millibits.
func ParseBandwidth(s string) (float64, error) {
	l := strings.ToLower(strings.TrimSpace(s))
	if l == "unlimited" || l == "0" {
		return 0, nil
	}
	for _, u := range bitUnits {
		if num, ok := strings.CutSuffix(l, u.suffix); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
			if err != nil || v <= 0 || math.IsInf(v, 0) || v*u.factor > 1e12 {
				break
			}
			return v * u.factor, nil
		}
	}
	return 0, fmt.Errorf("bandwidth %q must be a positive number with bit/s, kbit/s, Mbit/s or Gbit/s (at most 1000Gbit/s), or unlimited", s)
}

func parseFraction(s string) (float64, error) {
	num, pct := strings.CutSuffix(s, "%")
	v, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if pct {
		v /= 100
	}
	if err != nil || math.IsNaN(v) || v < 0 || v > 1 {
		return 0, fmt.Errorf("%q must be a fraction from 0 to 1 or a percentage from 0%% to 100%%", s)
	}
	return v, nil
}

func formatBits(bps float64) string {
	switch {
	case bps >= 1e9:
		return strconv.FormatFloat(bps/1e9, 'g', -1, 64) + "Gbit/s"
	case bps >= 1e6:
		return strconv.FormatFloat(bps/1e6, 'g', -1, 64) + "Mbit/s"
	case bps >= 1e3:
		return strconv.FormatFloat(bps/1e3, 'g', -1, 64) + "kbit/s"
	}
	return strconv.FormatFloat(bps, 'g', -1, 64) + "bit/s"
}

// simClock is simulated time: TimeScale times faster than the wall clock.
// Tests replace it with a fake that advances only when slept on.
type simClock interface {
	// Now is the simulated time since an arbitrary start.
	Now() time.Duration
	// Sleep waits d of simulated time, or until ctx is done.
	Sleep(ctx context.Context, d time.Duration) error
	// Scale is how much faster than real time the clock runs.
	Scale() float64
}

type scaledClock struct {
	start time.Time
	scale float64
}

func (c scaledClock) Now() time.Duration {
	return time.Duration(float64(time.Since(c.start)) * c.scale)
}

func (c scaledClock) Scale() float64 { return c.scale }

func (c scaledClock) Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(time.Duration(float64(d) / c.scale))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// errLinkLoss is what a simulated loss looks like to the agent's code: a
// transport failure, which it must retry or resume.
var errLinkLoss = errors.New("simulated link loss")

// linkCounters are the simulator-wide counts of shaped traffic.
type linkCounters struct {
	requests, lost, ranged atomic.Int64
	bytesIn, bytesOut      atomic.Int64
}

// link shapes one device's requests for the length of one update visit:
// latency per request, bandwidth as a token bucket over the bytes of
// request and response bodies, and loss. The bytes are real; only the
// waiting is simulated, on clock.
type link struct {
	base     http.RoundTripper
	profile  LinkProfile
	clock    simClock
	stop     context.Context // the run: requests without a context end with it
	counters *linkCounters
	// targets is the image repository's targets path prefix; bytes read
	// from it are counted per file in targetBytes (hex sha256 -> bytes).
	targets string

	mu          sync.Mutex
	rng         *rand.Rand
	tat         time.Duration // when the link has carried what was charged so far
	targetBytes map[string]int64
}

func newLink(base http.RoundTripper, p LinkProfile, clock simClock, stop context.Context, rng *rand.Rand, counters *linkCounters, targets string) *link {
	return &link{base: base, profile: p, clock: clock, stop: stop, rng: rng, counters: counters, targets: targets}
}

// granularity is the least wait worth a timer, in simulated time: waits
// of 1 ms of wall-clock time or less are carried over to the next charge
// (and so are timers firing late), so that shaping is exact on average
// without sleeping for every small read.
func (l *link) granularity() time.Duration {
	return time.Duration(float64(time.Millisecond) * l.clock.Scale())
}

// charge books n bytes on the link and waits until they would have passed.
func (l *link) charge(ctx context.Context, n int64) error {
	if l.profile.Bandwidth <= 0 || n <= 0 {
		return nil
	}
	cost := time.Duration(float64(n) * 8 / l.profile.Bandwidth * float64(time.Second))
	g := l.granularity()
	l.mu.Lock()
	now := l.clock.Now()
	// A link idle (or a timer late) for up to g keeps that much credit.
	l.tat = max(l.tat, now-g) + cost
	wait := l.tat - now
	l.mu.Unlock()
	if wait < g {
		return nil
	}
	return l.sleep(ctx, wait)
}

// sleep waits d of simulated time, ending early with ctx or the run.
func (l *link) sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	if ctx.Done() == nil {
		ctx = l.stop
	}
	return l.clock.Sleep(ctx, d)
}

// draw returns a number in [0, 1) from the link's seeded stream.
func (l *link) draw() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rng.Float64()
}

func (l *link) drawN(n int64) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rng.Int64N(n)
}

// RoundTrip sends req over the simulated link.
func (l *link) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	if ctx.Done() == nil {
		// go-tuf's fetcher makes requests without a context: bind them to
		// the run, so that its end does not wait for a slow link.
		ctx = l.stop
		req = req.WithContext(ctx)
	}
	l.counters.requests.Add(1)
	if req.Header.Get("Range") != "" {
		l.counters.ranged.Add(1)
	}
	lost := l.profile.Loss > 0 && l.draw() < l.profile.Loss
	if lost && req.Method != http.MethodGet && req.Method != http.MethodHead && l.draw() < 0.5 {
		// Lost on the way out: the server never sees it. (A lost GET is
		// the same to both sides as a lost answer, below.)
		l.counters.lost.Add(1)
		if req.Body != nil {
			req.Body.Close() // a RoundTripper closes it, also on errors
		}
		if err := l.sleep(ctx, l.profile.Latency); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %s %s did not reach the server", errLinkLoss, req.Method, req.URL.Path)
	}
	if req.ContentLength > 0 {
		l.counters.bytesOut.Add(req.ContentLength)
		if err := l.charge(ctx, req.ContentLength); err != nil {
			req.Body.Close()
			return nil, err
		}
	}
	res, err := l.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if err := l.sleep(ctx, l.profile.Latency); err != nil {
		res.Body.Close()
		return nil, err
	}
	b := &linkBody{l: l, ctx: ctx, rc: res.Body, cutAt: -1, target: l.targetFile(req)}
	if lost {
		// The answer breaks off at a byte drawn uniformly over its head
		// and body, so that a long download is nearly always cut inside
		// its body and must resume, while a small answer is often lost
		// as a whole.
		l.counters.lost.Add(1)
		at := l.drawN(answerHead + max(res.ContentLength, 0))
		if at < answerHead {
			// The server did act on the request; only its answer is lost.
			res.Body.Close()
			return nil, fmt.Errorf("%w: the answer to %s %s was lost", errLinkLoss, req.Method, req.URL.Path)
		}
		b.cutAt = at - answerHead
	}
	res.Body = b
	return res, nil
}

// answerHead is the size of a typical HTTP response head, where a lost
// answer may break off too.
const answerHead = 512

// targetFile returns the hex sha256 an image repository target URL names
// (".../targets/<dir>/<sha256>.<name>"), or "".
func (l *link) targetFile(req *http.Request) string {
	if req.Method != http.MethodGet || l.targets == "" || !strings.HasPrefix(req.URL.Path, l.targets) {
		return ""
	}
	sum, _, ok := strings.Cut(path.Base(req.URL.Path), ".")
	if !ok || len(sum) != 64 {
		return ""
	}
	return sum
}

// takeTargetBytes returns the image bytes read per target file, and
// forgets them.
func (l *link) takeTargetBytes() map[string]int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := l.targetBytes
	l.targetBytes = nil
	return m
}

// linkBody is a response body arriving over the link: each read is
// charged, and a lost answer ends with an error at cutAt.
type linkBody struct {
	l      *link
	ctx    context.Context
	rc     io.ReadCloser
	read   int64
	cutAt  int64 // -1: not cut
	target string
}

func (b *linkBody) Read(p []byte) (int, error) {
	if b.cutAt >= 0 {
		if b.read >= b.cutAt {
			return 0, fmt.Errorf("%w: the connection dropped after %d bytes", errLinkLoss, b.read)
		}
		if left := b.cutAt - b.read; int64(len(p)) > left {
			p = p[:left]
		}
	}
	n, err := b.rc.Read(p)
	if n > 0 {
		b.read += int64(n)
		b.l.counters.bytesIn.Add(int64(n))
		if b.target != "" {
			b.l.mu.Lock()
			if b.l.targetBytes == nil {
				b.l.targetBytes = map[string]int64{}
			}
			b.l.targetBytes[b.target] += int64(n)
			b.l.mu.Unlock()
		}
		if cerr := b.l.charge(b.ctx, int64(n)); cerr != nil {
			return n, cerr
		}
	}
	return n, err
}

func (b *linkBody) Close() error { return b.rc.Close() }

// deviceTransport is a device's own RoundTripper over the shared one: it
// shapes requests while the device updates (link set) and otherwise only
// bounds them with the timeout a check-in gets. Shaped requests have no
// overall deadline, since a download over a slow link may take hours;
// the run's end still stops them.
type deviceTransport struct {
	base    http.RoundTripper
	timeout time.Duration
	link    atomic.Pointer[link]
}

func (t *deviceTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if l := t.link.Load(); l != nil {
		return l.RoundTrip(req)
	}
	if t.timeout <= 0 {
		return t.base.RoundTrip(req)
	}
	ctx, cancel := context.WithTimeout(req.Context(), t.timeout)
	res, err := t.base.RoundTrip(req.WithContext(ctx))
	if err != nil {
		cancel()
		return nil, err
	}
	res.Body = cancelBody{res.Body, cancel}
	return res, nil
}

// cancelBody releases the request's timeout once the body is closed.
type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// linkProfiles merges overrides into the defaults.
func linkProfiles(overrides map[string]LinkProfile) (map[string]LinkProfile, error) {
	out := DefaultLinkProfiles()
	for class, p := range overrides {
		if !knownLink(class) {
			return nil, fmt.Errorf("simulator: link profile for unknown link class %q", class)
		}
		if p.Bandwidth < 0 || math.IsNaN(p.Bandwidth) || math.IsInf(p.Bandwidth, 0) || p.Latency < 0 || !(p.Loss >= 0 && p.Loss <= 1) {
			return nil, fmt.Errorf("simulator: link profile %s %v: bandwidth and latency must not be negative, loss must be from 0 to 1", class, p)
		}
		// A link that loses every request never delivers an update.
		if p.Loss >= 1 {
			return nil, fmt.Errorf("simulator: link profile %s: a loss of 100%% never delivers anything", class)
		}
		out[class] = p
	}
	return out, nil
}
