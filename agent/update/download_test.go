package update

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// imageServer serves one file like the image repository does (Range via
// http.ServeContent), and can cut a response after some bytes, change the
// file and its ETag, or ignore Range.
type imageServer struct {
	mu          sync.Mutex
	content     []byte
	etag        string
	ignoreRange bool
	cuts        []int // bytes each successive response sends before the connection drops
	served      []served
}

type served struct {
	rng, ifRange string
	status       int
}

func (s *imageServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	content, etag := s.content, s.etag
	cut := -1
	if len(s.cuts) > 0 {
		cut, s.cuts = s.cuts[0], s.cuts[1:]
	}
	rec := served{rng: r.Header.Get("Range"), ifRange: r.Header.Get("If-Range")}
	if s.ignoreRange {
		r.Header.Del("Range")
	}
	s.mu.Unlock()
	sw := &statusWriter{ResponseWriter: w, budget: cut}
	defer func() {
		s.mu.Lock()
		rec.status = sw.status
		s.served = append(s.served, rec)
		s.mu.Unlock()
	}()
	if etag != "" {
		w.Header().Set("ETag", etag)
	}
	http.ServeContent(sw, r, "", time.Time{}, bytes.NewReader(content))
}

func (s *imageServer) log() []served {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]served(nil), s.served...)
}

// statusWriter records the status and drops the connection after budget
// body bytes (budget < 0: never).
type statusWriter struct {
	http.ResponseWriter
	status int
	budget int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if w.budget < 0 || len(p) <= w.budget {
		if w.budget >= 0 {
			w.budget -= len(p)
		}
		return w.ResponseWriter.Write(p)
	}
	_, _ = w.ResponseWriter.Write(p[:w.budget])
	w.budget = 0
	w.ResponseWriter.(http.Flusher).Flush()
	panic(http.ErrAbortHandler) // the link drops mid-image
}

func signed(content []byte) Image {
	s256, s512 := sha256.Sum256(content), sha512.Sum512(content)
	return Image{Path: "gw/1.0.0/fw.img", Length: int64(len(content)), Hashes: map[string][]byte{"sha256": s256[:], "sha512": s512[:]}}
}

func randomBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func newDownloader(t *testing.T) *Downloader {
	return &Downloader{Dir: t.TempDir(), Attempts: 10, Backoff: time.Millisecond}
}

// dirFiles lists what a download left in dir.
func dirFiles(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func TestDownloadResumesAfterCuts(t *testing.T) {
	for seed := uint64(1); seed <= 8; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 7))
			content := randomBytes(r, 100_000+r.IntN(200_000))
			s := &imageServer{content: content, etag: `"v1"`}
			// Three cuts at random offsets, then the rest.
			left := len(content)
			var offsets []int
			for range 3 {
				c := r.IntN(left / 2)
				s.cuts = append(s.cuts, c)
				offsets = append(offsets, len(content)-left+c)
				left -= c
			}
			ts := httptest.NewServer(s)
			defer ts.Close()
			d := newDownloader(t)
			p, err := d.Download(context.Background(), ts.URL+"/fw.img", signed(content))
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := os.ReadFile(p); !bytes.Equal(got, content) {
				t.Fatal("downloaded file differs")
			}
			log := s.log()
			if len(log) != 4 || log[0].status != 200 || log[0].rng != "" {
				t.Fatalf("requests: %+v", log)
			}
			for i, off := range offsets {
				if off == 0 {
					continue // nothing kept: a plain GET is right too
				}
				if want := fmt.Sprintf("bytes=%d-", off); log[i+1].rng != want || log[i+1].ifRange != `"v1"` || log[i+1].status != 206 {
					t.Fatalf("request %d: %+v, want Range %s with If-Range and 206", i+1, log[i+1], want)
				}
			}
			if files := dirFiles(t, d.Dir); len(files) != 1 {
				t.Fatalf("left %v", files)
			}
		})
	}
}

func TestDownloadRestartsWhenTheFileChanged(t *testing.T) {
	r := rand.New(rand.NewPCG(2, 2))
	content := randomBytes(r, 50_000)
	stale := randomBytes(r, 50_000)
	// The first response is another file (ETag "old") and is cut; resuming
	// it would splice two files, so If-Range must make the server restart.
	s := &imageServer{content: stale, etag: `"old"`, cuts: []int{20_000}}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		defer func() { // runs also when the cut aborts the handler
			s.mu.Lock()
			s.content, s.etag = content, `"new"`
			s.mu.Unlock()
		}()
		s.ServeHTTP(w, req)
	}))
	defer ts.Close()
	d := newDownloader(t)
	p, err := d.Download(context.Background(), ts.URL+"/fw.img", signed(content))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(p); !bytes.Equal(got, content) {
		t.Fatal("downloaded file differs")
	}
	log := s.log()
	if len(log) != 2 || log[1].rng != "bytes=20000-" || log[1].ifRange != `"old"` || log[1].status != 200 {
		t.Fatalf("requests: %+v", log)
	}
}

func TestDownloadRestartsOn200(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	content := randomBytes(r, 80_000)
	s := &imageServer{content: content, ignoreRange: true, cuts: []int{30_000}}
	ts := httptest.NewServer(s)
	defer ts.Close()
	d := newDownloader(t)
	p, err := d.Download(context.Background(), ts.URL+"/fw.img", signed(content))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(p); !bytes.Equal(got, content) {
		t.Fatal("server ignoring Range: the file was spliced")
	}
	if log := s.log(); len(log) != 2 || log[1].rng != "bytes=30000-" || log[1].status != 200 {
		t.Fatalf("requests: %+v", log)
	}
}

func TestDownloadRefusesEndlessData(t *testing.T) {
	content := bytes.Repeat([]byte("image "), 10_000)
	more := append(bytes.Clone(content), bytes.Repeat([]byte("more "), 10_000)...)
	handlers := map[string]http.HandlerFunc{
		"announced": func(w http.ResponseWriter, r *http.Request) {
			http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(more))
		},
		// No Content-Length: found only by reading past the signed length.
		"chunked": func(w http.ResponseWriter, r *http.Request) {
			for i := 0; i < len(more); i += 4096 {
				_, _ = w.Write(more[i:min(i+4096, len(more))])
				w.(http.Flusher).Flush()
			}
		},
	}
	for name, h := range handlers {
		t.Run(name, func(t *testing.T) {
			ts := httptest.NewServer(h)
			defer ts.Close()
			d := newDownloader(t)
			_, err := d.Download(context.Background(), ts.URL+"/fw.img", signed(content))
			if !errors.Is(err, ErrEndlessData) {
				t.Fatalf("got %v, want ErrEndlessData", err)
			}
			if files := dirFiles(t, d.Dir); len(files) != 0 {
				t.Fatalf("kept %v", files)
			}
		})
	}
}

func TestDownloadHashMismatch(t *testing.T) {
	content := bytes.Repeat([]byte("genuine "), 10_000)
	evil := bytes.Clone(content)
	evil[len(evil)-1] ^= 1
	for _, cuts := range [][]int{nil, {40_000}} {
		t.Run(fmt.Sprint(len(cuts), "cuts"), func(t *testing.T) {
			s := &imageServer{content: evil, etag: `"e"`, cuts: cuts}
			ts := httptest.NewServer(s)
			defer ts.Close()
			d := newDownloader(t)
			_, err := d.Download(context.Background(), ts.URL+"/fw.img", signed(content))
			if !errors.Is(err, ErrDownloadHash) {
				t.Fatalf("got %v, want ErrDownloadHash", err)
			}
			if files := dirFiles(t, d.Dir); len(files) != 0 {
				t.Fatalf("kept %v", files)
			}
			if n := len(s.log()); n != len(cuts)+1 {
				t.Fatalf("%d requests: a mismatch must not be retried", n)
			}
		})
	}
}

func TestDownloadCancelKeepsPartial(t *testing.T) {
	content := bytes.Repeat([]byte("resumable "), 20_000)
	half := len(content) / 2
	ctx, cancel := context.WithCancel(context.Background())
	block := make(chan struct{})
	var ranges []string
	var mu sync.Mutex
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		ranges = append(ranges, r.Header.Get("Range"))
		first := len(ranges) == 1
		mu.Unlock()
		if !first {
			http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(content))
			return
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(content)))
		_, _ = w.Write(content[:half])
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-block:
		}
	}))
	defer ts.Close()
	defer close(block)
	d := newDownloader(t)
	go func() {
		// The device shuts down once half the image is on disk.
		defer cancel()
		for range 1000 {
			if fi, err := os.Stat(filepath.Join(d.Dir, fmt.Sprintf("%x.part", sha256.Sum256(content)))); err == nil && fi.Size() == int64(half) {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	if _, err := d.Download(ctx, ts.URL+"/fw.img", signed(content)); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	files := dirFiles(t, d.Dir)
	if len(files) != 1 || !strings.HasSuffix(files[0], ".part") {
		t.Fatalf("after cancel: %v, want the partial file", files)
	}
	if fi, _ := os.Stat(filepath.Join(d.Dir, files[0])); fi.Size() != int64(half) {
		t.Fatalf("partial file has %d bytes", fi.Size())
	}
	p, err := d.Download(context.Background(), ts.URL+"/fw.img", signed(content))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(p); !bytes.Equal(got, content) {
		t.Fatal("resumed file differs")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(ranges) != 2 || !strings.HasPrefix(ranges[1], "bytes=") {
		t.Fatalf("ranges %q: the second call must resume", ranges)
	}
}

func TestDownloadDoesNotRetry404(t *testing.T) {
	ts := httptest.NewServer(http.NotFoundHandler())
	defer ts.Close()
	d := newDownloader(t)
	var se *StatusError
	if _, err := d.Download(context.Background(), ts.URL+"/fw.img", signed([]byte("x"))); !errors.As(err, &se) || se.StatusCode != 404 {
		t.Fatalf("got %v", err)
	}
}

func TestDownloadAttemptsCountFailuresWithoutProgress(t *testing.T) {
	content := bytes.Repeat([]byte("flaky link "), 10_000)
	// Six cuts with two attempts: each cut keeps new bytes, so it goes on.
	s := &imageServer{content: content, etag: `"v"`, cuts: []int{10_000, 10_000, 10_000, 10_000, 10_000, 10_000}}
	ts := httptest.NewServer(s)
	defer ts.Close()
	d := newDownloader(t)
	d.Attempts = 2
	if _, err := d.Download(context.Background(), ts.URL+"/fw.img", signed(content)); err != nil {
		t.Fatal(err)
	}
	// A server that drops every response before a byte: two attempts, then
	// an error that leaves nothing to resume.
	s = &imageServer{content: content, cuts: []int{0, 0, 0}}
	ts2 := httptest.NewServer(s)
	defer ts2.Close()
	d = newDownloader(t)
	d.Attempts = 2
	if _, err := d.Download(context.Background(), ts2.URL+"/fw.img", signed(content)); err == nil || len(s.log()) != 2 {
		t.Fatalf("got %v after %d requests, want failure after 2", err, len(s.log()))
	}
}

// TestDownloadResumesAfterAStall: a server that stops sending mid-body
// (and one that never answers) is given up after StallTimeout, and the
// next attempt continues from the bytes kept instead of waiting for TCP.
func TestDownloadResumesAfterAStall(t *testing.T) {
	content := randomBytes(rand.New(rand.NewPCG(9, 9)), 200_000)
	release := make(chan struct{})
	var mu sync.Mutex
	var ranges []string
	requests := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		requests++
		n := requests
		ranges = append(ranges, r.Header.Get("Range"))
		mu.Unlock()
		switch n {
		case 1: // half the image, then silence
			w.Header().Set("Content-Length", fmt.Sprint(len(content)))
			_, _ = w.Write(content[:len(content)/2])
			w.(http.Flusher).Flush()
			<-release
		case 2: // no answer at all
			<-release
		default:
			http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(content))
		}
	}))
	defer srv.Close()
	defer close(release) // before Close, which waits for the handlers
	d := newDownloader(t)
	d.StallTimeout = 200 * time.Millisecond
	p, err := d.Download(context.Background(), srv.URL+"/fw.img", signed(content))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(p); !bytes.Equal(got, content) {
		t.Fatal("the resumed download is not the image")
	}
	mu.Lock()
	defer mu.Unlock()
	want := fmt.Sprintf("bytes=%d-", len(content)/2)
	if len(ranges) != 3 || ranges[1] != want || ranges[2] != want {
		t.Fatalf("requests with ranges %q, want the second and third to continue at %s", ranges, want)
	}
}
