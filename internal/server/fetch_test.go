package server_test

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/steward-iot/steward/agent/update"
	"github.com/steward-iot/steward/internal/inventory"
	"github.com/steward-iot/steward/internal/release"
	"github.com/steward-iot/steward/internal/rollout"
	"github.com/steward-iot/steward/internal/store/storetest"
)

// freezer proxies a live server; once frozen it answers the image
// repository's metadata only as it was before, as an attacker replaying
// an older (still unexpired) image repository would.
type freezer struct {
	proxy  *httputil.ReverseProxy
	mu     sync.Mutex
	frozen bool
	seen   map[string][]byte
}

func (f *freezer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.URL.Path, "/tuf/acme/metadata/") {
		f.proxy.ServeHTTP(w, r)
		return
	}
	f.mu.Lock()
	frozen := f.frozen
	b, ok := f.seen[r.URL.Path]
	f.mu.Unlock()
	if frozen {
		if !ok {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(b)
		return
	}
	rec := httptest.NewRecorder()
	f.proxy.ServeHTTP(rec, r)
	if rec.Code == http.StatusOK {
		f.mu.Lock()
		f.seen[r.URL.Path] = rec.Body.Bytes()
		f.mu.Unlock()
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

// TestFetchThroughDirector has devices fetch their assigned image with the
// agent's engine from a live server: through a delta when they run its
// precursor, the full image otherwise, and nothing when the director and
// the image repository disagree or the release is older than the installed.
func TestFetchThroughDirector(t *testing.T) {
	for _, d := range storetest.Dialects(t) {
		t.Run(string(d), func(t *testing.T) {
			l := start(t, d)
			u, _ := url.Parse(l.url)
			fr := &freezer{proxy: httputil.NewSingleHostReverseProxy(u), seen: map[string][]byte{}}
			proxy := httptest.NewServer(fr)
			defer proxy.Close()

			l.admin("POST", "/api/v1/orgs/acme/products", inventory.CreateProductRequest{Slug: "gw", Name: "GW", HardwareID: "gw-hw",
				Capability: inventory.CapabilityAB, LinkClass: "wifi"}, nil)
			r := rand.New(rand.NewPCG(1, 1))
			img1 := make([]byte, 300_000)
			for i := range img1 {
				img1[i] = byte(r.Uint32())
			}
			img2 := bytes.Clone(img1)
			copy(img2[1000:], "release 1.1.0 fixes the watchdog")
			img2 = append(img2, bytes.Repeat([]byte("new code "), 2000)...)

			var r1, r2 release.Release
			a1 := l.upload("fw.img", img1)
			l.admin("POST", "/api/v1/orgs/acme/releases", release.CreateReleaseRequest{Product: "gw", Version: "1.0.0",
				Artifacts: []release.ArtifactRef{{ID: a1.ID}}}, &r1)
			code, dirRoot := fetchAuth(t, l.url+"/api/v1/orgs/acme/director/root", l.token)
			if code != 200 {
				t.Fatalf("director root: %d %s", code, dirRoot)
			}
			_, imgRoot := fetch(t, l.url+"/tuf/acme/metadata/1.root.json")
			// Record the image repository as it is with 1.0.0 only.
			if err := imageUpdater(t, proxy.URL, t.TempDir(), imgRoot).Refresh(); err != nil {
				t.Fatal(err)
			}
			fr.mu.Lock()
			fr.frozen = true
			fr.mu.Unlock()

			a2 := l.upload("fw.img", img2)
			l.admin("POST", "/api/v1/orgs/acme/releases", release.CreateReleaseRequest{Product: "gw", Version: "1.1.0",
				Artifacts: []release.ArtifactRef{{ID: a2.ID}}}, &r2)

			current := func(content []byte) string {
				p := filepath.Join(t.TempDir(), "current.img")
				if err := os.WriteFile(p, content, 0o600); err != nil {
					t.Fatal(err)
				}
				return p
			}
			// engine enrolls a device running 1.0.0 and assigns it 1.1.0.
			engine := func(serial string) *update.Engine {
				dev := l.device(t, serial)
				dev.checkin(t, "1.0.0")
				l.admin("PUT", "/api/v1/orgs/acme/devices/"+dev.id+"/assignment", rollout.AssignRequest{ReleaseID: r2.ID}, nil)
				return &update.Engine{Server: l.url, Org: "acme",
					Device: update.Device{ID: dev.id, HardwareID: "gw-hw", InstalledCounter: r1.Counter},
					Token: func() string {
						tok, err := dev.c.Token(context.Background())
						if err != nil {
							t.Error(err)
						}
						return tok
					},
					DirectorRoot: dirRoot, ImageRoot: imgRoot, StateDir: t.TempDir(), CurrentImage: current(img1),
					Downloader: update.Downloader{Attempts: 3, Backoff: time.Millisecond}}
			}
			check := func(e *update.Engine, res update.Result, wantDelta bool) {
				t.Helper()
				if res.Delta != wantDelta || res.Image.Path != "gw/1.1.0/fw.img" || res.Image.ReleaseCounter != r2.Counter {
					t.Fatalf("fetched %+v, want delta=%v", res, wantDelta)
				}
				got, err := os.ReadFile(res.Path)
				if err != nil || !bytes.Equal(got, img2) {
					t.Fatalf("fetched image is not 1.1.0 (%v)", err)
				}
				// Only the image: no patch, partial or temporary file.
				if files := listDir(t, filepath.Join(e.StateDir, "download")); len(files) != 1 || files[0] != a2.SHA256 {
					t.Fatalf("download dir holds %v", files)
				}
			}

			t.Run("delta", func(t *testing.T) {
				e := engine("FETCH-DELTA")
				res, err := e.Fetch(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				check(e, res, true)
				// The next cycle refreshes again from the same metadata dir
				// and finds the image it already verified.
				if res, err = e.Fetch(context.Background()); err != nil {
					t.Fatal(err)
				}
				check(e, res, false)
			})
			t.Run("unknown image gets the full image", func(t *testing.T) {
				e := engine("FETCH-FULL")
				e.CurrentImage = current([]byte("a locally modified image"))
				res, err := e.Fetch(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				check(e, res, false)
				if res.DeltaErr != nil {
					t.Fatalf("no delta should have been tried: %v", res.DeltaErr)
				}
			})

			attacks := []struct {
				name   string
				mutate func(e *update.Engine)
				want   error
			}{
				{"image repository does not sign the target", func(e *update.Engine) { e.Server = proxy.URL }, update.ErrNotInImageRepo},
				{"wrong hardware id", func(e *update.Engine) { e.Device.HardwareID = "other-hw" }, update.ErrHardwareID},
				{"release counter below the installed", func(e *update.Engine) { e.Device.InstalledCounter = r2.Counter + 1 }, update.ErrRollback},
			}
			for i, a := range attacks {
				t.Run(a.name, func(t *testing.T) {
					e := engine("FETCH-ATTACK-" + string(rune('A'+i)))
					a.mutate(e)
					_, err := e.Fetch(context.Background())
					if !errors.Is(err, a.want) {
						t.Fatalf("got %v, want %v", err, a.want)
					}
					if files := listDir(t, filepath.Join(e.StateDir, "download")); len(files) != 0 {
						t.Fatalf("refused fetch left %v", files)
					}
				})
			}
		})
	}
}

// listDir names the files in dir; a missing dir is empty.
func listDir(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}
