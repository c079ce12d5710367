package simulator

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/steward-iot/steward/agent/update"
)

// fakeClock is simulated time that passes only when slept on, so that
// shaping is measured exactly, whatever the machine's load.
type fakeClock struct {
	mu  sync.Mutex
	now time.Duration
}

func (c *fakeClock) Now() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	c.now += d
	c.mu.Unlock()
	return ctx.Err()
}

func (c *fakeClock) Scale() float64 { return 1 }

// bodyTransport answers every request with n bytes of zeros.
type bodyTransport struct{ n int64 }

func (t bodyTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: 200, Header: http.Header{}, ContentLength: t.n, Request: r,
		Body: io.NopCloser(io.LimitReader(zeros{}, t.n))}, nil
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func testLink(t *testing.T, base http.RoundTripper, p LinkProfile, seed uint64) (*link, *fakeClock, *linkCounters) {
	t.Helper()
	clock := &fakeClock{}
	var counters linkCounters
	return newLink(base, p, clock, context.Background(), rand.New(rand.NewPCG(seed, 0)), &counters, "/tuf/acme/targets/"), clock, &counters
}

// download fetches url over l and returns the bytes read and the
// simulated time it took.
func download(t *testing.T, l *link, clock *fakeClock, url string) (int64, time.Duration) {
	t.Helper()
	start := clock.Now()
	req, _ := http.NewRequestWithContext(context.Background(), "GET", url, nil)
	res, err := (&http.Client{Transport: l}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	return n, clock.Now() - start
}

// TestLinkBandwidth: a download takes its size over the bandwidth plus
// the latency, in simulated time; twice the bandwidth halves the transfer,
// and an unlimited link costs the latency only.
func TestLinkBandwidth(t *testing.T) {
	const size = 1_000_000 // bytes: 8 s at 1 Mbit/s
	for _, c := range []struct {
		bandwidth float64
		want      time.Duration
	}{
		{1e6, 8*time.Second + 100*time.Millisecond},
		{2e6, 4*time.Second + 100*time.Millisecond},
		{26e3, 307692307692*time.Nanosecond + 100*time.Millisecond},
		{0, 100 * time.Millisecond},
	} {
		l, clock, counters := testLink(t, bodyTransport{size}, LinkProfile{Bandwidth: c.bandwidth, Latency: 100 * time.Millisecond}, 1)
		n, took := download(t, l, clock, "http://server/tuf/acme/targets/gw/1.1.0/"+strings.Repeat("ab", 32)+".fw.img")
		if n != size {
			t.Fatalf("read %d bytes", n)
		}
		// Shaping may run ahead by its granularity (1 ms at scale 1) at
		// the start and at the end.
		if took < c.want-3*time.Millisecond || took > c.want+time.Millisecond {
			t.Errorf("%v bit/s: %d bytes took %v of simulated time, want %v", c.bandwidth, n, took, c.want)
		}
		if counters.bytesIn.Load() != size || counters.requests.Load() != 1 {
			t.Errorf("counted %d bytes in %d requests", counters.bytesIn.Load(), counters.requests.Load())
		}
		if got := l.takeTargetBytes(); got[strings.Repeat("ab", 32)] != size || len(got) != 1 {
			t.Errorf("target bytes %v", got)
		}
	}
}

// TestLinkScaledClock: with a time scale, the wall-clock wait is the
// simulated one divided by the scale. Only lower bounds are checked:
// timers may be late, never early.
func TestLinkScaledClock(t *testing.T) {
	clock := scaledClock{start: time.Now(), scale: 1000}
	var counters linkCounters
	l := newLink(bodyTransport{1_250_000}, LinkProfile{Bandwidth: 1e6, Latency: time.Second}, clock, context.Background(),
		rand.New(rand.NewPCG(1, 1)), &counters, "")
	start := time.Now()
	sim := clock.Now()
	res, err := (&http.Client{Transport: l}).Get("http://server/x")
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	// 1 s of latency and 10 s of transfer: 11 s simulated, 11 ms real, less
	// the shaping's burst of 1 ms real at each end.
	if real, simulated := time.Since(start), clock.Now()-sim; real < 9*time.Millisecond || simulated < 9*time.Second {
		t.Errorf("took %v real, %v simulated; want at least 9 ms and 9 s", real, simulated)
	}
}

// TestLinkLoss: lost POSTs fail before the server sees them or lose
// their answer; lost GETs break off, nearly always inside a large body;
// the seed decides which and where.
func TestLinkLoss(t *testing.T) {
	run := func(seed uint64) []string {
		var served int
		base := roundTripFunc(func(r *http.Request) (*http.Response, error) {
			served++
			if r.Method == http.MethodPost {
				return bodyTransport{20}.RoundTrip(r) // a small answer, mostly lost as a whole
			}
			return bodyTransport{100_000}.RoundTrip(r)
		})
		l, clock, counters := testLink(t, base, LinkProfile{Loss: 1, Latency: 50 * time.Millisecond}, seed)
		hc := &http.Client{Transport: l}
		var got []string
		refused, answerLost, cut := 0, 0, 0
		for i := range 40 {
			var res *http.Response
			var err error
			if i%2 == 0 {
				res, err = hc.Post("http://server/device/v1/status", "application/json", strings.NewReader(`{"step":"committed"}`))
			} else {
				res, err = hc.Get("http://server/tuf/acme/targets/gw/1.1.0/" + strings.Repeat("ab", 32) + ".fw.img")
			}
			if err != nil {
				if !errors.Is(err, errLinkLoss) {
					t.Fatalf("error %v is not a link loss", err)
				}
				if strings.Contains(err.Error(), "did not reach") {
					refused++
					if i%2 == 1 {
						t.Error("a GET failed before it was sent")
					}
				} else {
					answerLost++
				}
				got = append(got, err.Error())
				continue
			}
			n, err := io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if !errors.Is(err, errLinkLoss) || n >= res.ContentLength {
				t.Fatalf("read %d bytes (%v), want a cut answer", n, err)
			}
			cut++
			got = append(got, "cut at "+strconv.FormatInt(n, 10))
		}
		if counters.lost.Load() != 40 || clock.Now() != 40*50*time.Millisecond {
			t.Errorf("lost %d, simulated time %v", counters.lost.Load(), clock.Now())
		}
		if refused == 0 || answerLost == 0 || cut < 19 || served != 40-refused {
			t.Errorf("%d refused, %d answers lost, %d cut, %d served: want every kind of loss, most GETs cut in the body, refused ones never served",
				refused, answerLost, cut, served)
		}
		return got
	}
	a, b, c := run(7), run(7), run(8)
	if strings.Join(a, ",") != strings.Join(b, ",") {
		t.Errorf("the same seed lost differently:\n%v\n%v", a, b)
	}
	if strings.Join(a, ",") == strings.Join(c, ",") {
		t.Errorf("another seed lost the same way: %v", a)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestLinkLossResumes: the agent's downloader gets whole, verified images
// over a link that loses 30% of its requests, by resuming with Range
// requests from where an answer broke off.
func TestLinkLossResumes(t *testing.T) {
	img := make([]byte, 300_000)
	r := rand.New(rand.NewPCG(3, 3))
	for i := range img {
		img[i] = byte(r.Uint32())
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"v1"`)
		http.ServeContent(w, r, "fw.img", time.Time{}, bytes.NewReader(img))
	}))
	defer srv.Close()
	l, _, counters := testLink(t, http.DefaultTransport, LinkProfile{Bandwidth: 10e6, Loss: 0.3}, 11)
	sum := sha256.Sum256(img)
	want := update.Image{Length: int64(len(img)), Hashes: map[string][]byte{"sha256": sum[:]}}
	for range 10 {
		// Downloader retries until 10 failures in a row without progress.
		dl := update.Downloader{Client: &http.Client{Transport: l}, Dir: t.TempDir(), Attempts: 10, Backoff: time.Microsecond}
		p, err := dl.Download(context.Background(), srv.URL+"/fw.img", want)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(got, img) {
			t.Fatalf("downloaded image differs (%v)", err)
		}
	}
	if counters.ranged.Load() == 0 || counters.lost.Load() == 0 {
		t.Errorf("%d requests, %d lost, %d with Range: want the download resumed", counters.requests.Load(), counters.lost.Load(), counters.ranged.Load())
	}
	t.Logf("%d requests, %d lost, %d resumed with Range, %d bytes read for ten %d-byte images",
		counters.requests.Load(), counters.lost.Load(), counters.ranged.Load(), counters.bytesIn.Load(), len(img))
}

// TestDeviceTransport: unshaped requests get the check-in timeout; with
// a link set, requests go through it.
func TestDeviceTransport(t *testing.T) {
	block := make(chan struct{})
	defer close(block)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			select {
			case <-block:
			case <-r.Context().Done():
			}
		}
		_, _ = io.WriteString(w, "ok")
	}))
	defer srv.Close()
	tr := &deviceTransport{base: http.DefaultTransport, timeout: 100 * time.Millisecond}
	hc := &http.Client{Transport: tr}
	if _, err := hc.Get(srv.URL + "/slow"); err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("slow unshaped request: %v, want the timeout", err)
	}
	res, err := hc.Get(srv.URL + "/fast")
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil || string(b) != "ok" {
		t.Fatalf("fast request: %q %v", b, err)
	}
	l, clock, counters := testLink(t, http.DefaultTransport, LinkProfile{Latency: time.Second}, 1)
	tr.link.Store(l)
	res, err = hc.Get(srv.URL + "/fast")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if counters.requests.Load() != 1 || clock.Now() != time.Second {
		t.Errorf("shaped request: %d requests on the link, %v simulated", counters.requests.Load(), clock.Now())
	}
}

func TestParseLinkProfile(t *testing.T) {
	defaults := DefaultLinkProfiles()
	base := func(c string) LinkProfile { return defaults[c] }
	for _, c := range []struct {
		in    string
		class string
		want  LinkProfile
	}{
		{"cellular=1Mbit/s,120ms,2%", "cellular", LinkProfile{1e6, 120 * time.Millisecond, 0.02}},
		{" lora = 250bit/s , 5s , 0.1 ", "lora", LinkProfile{250, 5 * time.Second, 0.1}},
		{"nb-iot=,5s,", "nb-iot", LinkProfile{defaults["nb-iot"].Bandwidth, 5 * time.Second, defaults["nb-iot"].Loss}},
		{"wifi=54Mbps", "wifi", LinkProfile{54e6, defaults["wifi"].Latency, defaults["wifi"].Loss}},
		{"ethernet=unlimited,0s,0%", "ethernet", LinkProfile{0, 0, 0}},
		{"ethernet=1.5Gbit/s", "ethernet", LinkProfile{1.5e9, defaults["ethernet"].Latency, 0}},
		{"cellular=64kbps,,100%", "cellular", LinkProfile{64e3, defaults["cellular"].Latency, 1}},
	} {
		class, got, err := ParseLinkProfile(c.in, base)
		if err != nil || class != c.class || got != c.want {
			t.Errorf("%q: %s %+v %v, want %s %+v", c.in, class, got, err, c.class, c.want)
		}
	}
	for _, bad := range []string{"", "cellular", "=1Mbit/s", "pigeon=1Mbit/s", "wifi=1Mbit", "wifi=-1Mbit/s", "wifi=1Mbit/s,fast",
		"wifi=1Mbit/s,-1s", "wifi=,,2", "wifi=,,101%", "wifi=,,-1%", "wifi=,,NaN", "wifi=1,2,3,4", "wifi=Infkbit/s", "wifi=2000Gbit/s"} {
		if _, p, err := ParseLinkProfile(bad, base); err == nil {
			t.Errorf("%q accepted as %+v", bad, p)
		}
	}
	if _, err := linkProfiles(map[string]LinkProfile{"wifi": {Loss: 1}}); err == nil {
		t.Error("a link losing everything was accepted")
	}
	if _, err := linkProfiles(map[string]LinkProfile{"pigeon": {}}); err == nil {
		t.Error("an unknown link class was accepted")
	}
}

func FuzzParseLinkProfile(f *testing.F) {
	for _, s := range []string{"cellular=1Mbit/s,120ms,2%", "nb-iot=,5s,", "lora=0.3kbps,2s,0.05", "wifi=unlimited"} {
		f.Add(s)
	}
	defaults := DefaultLinkProfiles()
	f.Fuzz(func(t *testing.T, s string) {
		class, p, err := ParseLinkProfile(s, func(c string) LinkProfile { return defaults[c] })
		if err != nil {
			return
		}
		if !knownLink(class) || p.Bandwidth < 0 || p.Bandwidth > 1e12 || p.Latency < 0 || p.Latency > time.Hour || !(p.Loss >= 0 && p.Loss <= 1) {
			t.Fatalf("%q parsed to %s %+v", s, class, p)
		}
	})
}
