package update_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/steward-iot/steward/agent/client"
	"github.com/steward-iot/steward/agent/install"
	"github.com/steward-iot/steward/agent/internal/powercut"
	"github.com/steward-iot/steward/agent/proto"
	"github.com/steward-iot/steward/agent/update"
	"github.com/steward-iot/steward/internal/inventory"
	"github.com/steward-iot/steward/internal/release"
	"github.com/steward-iot/steward/internal/rollout"
	"github.com/steward-iot/steward/internal/server/servertest"
)

// rangeLog is a proxy in front of the server that remembers the Range of
// each image request, to see downloads resume.
type rangeLog struct {
	proxy *httputil.ReverseProxy
	mu    sync.Mutex
	reqs  []string // "path range"
}

func (p *rangeLog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.Contains(r.URL.Path, "/targets/") {
		p.mu.Lock()
		p.reqs = append(p.reqs, r.URL.Path+" "+r.Header.Get("Range"))
		p.mu.Unlock()
	}
	p.proxy.ServeHTTP(w, r)
}

func (p *rangeLog) take() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.reqs
	p.reqs = nil
	return r
}

// TestPowerLossDuringUpdate cuts the agent off (SIGKILL, as a power cut
// would: no deferred code runs) at random points across download, delta
// apply, install, reboot and commit, then starts it again, as many times
// as it takes. After every cut the device must boot a complete, verified
// image of the old or the new release; in the end it must run the new
// release, committed, with the anti-rollback counter raised; a download
// cut short must continue where it stopped.
func TestPowerLossDuringUpdate(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns over a thousand agent processes")
	}
	agentBin := filepath.Join(t.TempDir(), "powercut-agent")
	if out, err := exec.Command("go", "build", "-o", agentBin, "github.com/steward-iot/steward/agent/internal/powercut/agent").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	// The server runs as its own process, built without the race detector,
	// and everything lives on tmpfs: the test makes ~1,700 agent runs.
	srv := servertest.StartProcess(t, servertest.FastTempDir(t))
	tmp := servertest.FastTempDir(t)
	srv.Do("POST", "/api/v1/orgs/acme/products", inventory.CreateProductRequest{Slug: "gw", Name: "GW", HardwareID: "gw-hw",
		Capability: inventory.CapabilityAB, LinkClass: "wifi"}, nil)
	rng := rand.New(rand.NewPCG(5, 5))
	img1 := make([]byte, 300_000)
	for i := range img1 {
		img1[i] = byte(rng.Uint32())
	}
	img2 := bytes.Clone(img1)
	copy(img2[5000:], "release 1.1.0 fixes the watchdog")
	img2 = append(img2, bytes.Repeat([]byte("new code "), 3000)...)
	r1 := srv.Release("gw", "1.0.0", img1, false)
	r2 := srv.Release("gw", "1.1.0", img2, false)
	dirRoot, imgRoot := srv.Roots()

	u, _ := url.Parse(srv.URL)
	// A template device per path: one runs 1.0.0 exactly (gets the delta),
	// one a locally changed 1.0.0 image (gets the full image).
	template := func(name string, factory []byte) (dir, deviceID string) {
		dir = filepath.Join(tmp, "template-"+name)
		var c *client.Client
		deviceID, c = srv.Enroll(filepath.Join(dir, "key"), "gw-hw", "PL-"+name)
		// The director offers a delta against the release a device reports.
		_, err := c.Checkin(context.Background(), proto.CheckinRequest{Installed: proto.Installed{Version: r1.Version}})
		must(t, err)
		srv.Do("PUT", "/api/v1/orgs/acme/devices/"+deviceID+"/assignment", rollout.AssignRequest{ReleaseID: r2.ID}, nil)
		must(t, os.WriteFile(filepath.Join(dir, "director.root.json"), dirRoot, 0o600))
		must(t, os.WriteFile(filepath.Join(dir, "image.root.json"), imgRoot, 0o600))
		fp := filepath.Join(t.TempDir(), "factory.img")
		must(t, os.WriteFile(fp, factory, 0o600))
		slots, err := install.NewDirAB(filepath.Join(dir, "slots"), install.DirABOptions{MaxAttempts: 3})
		must(t, err)
		sum := sha256.Sum256(factory)
		must(t, slots.Provision(context.Background(), install.Image{Path: fp, Length: int64(len(factory)), SHA256: hex.EncodeToString(sum[:]),
			ReleaseID: r1.ID, Version: r1.Version, Counter: r1.Counter}))
		return dir, deviceID
	}
	changed := bytes.Clone(img1)
	copy(changed[100:], "locally patched")
	type path struct {
		name, dir, deviceID string
		points              []string // crash point names in a run without a cut
	}
	// Two workers, each with its own devices (one device's runs must not
	// overlap: the server refuses an authentication replayed or out of
	// order) and its own proxy, so Range logs do not mix.
	type worker struct {
		log   *rangeLog
		url   string
		paths []*path
	}
	workers := make([]worker, 2)
	for i := range workers {
		rl := &rangeLog{proxy: httputil.NewSingleHostReverseProxy(u)}
		ps := httptest.NewServer(rl)
		t.Cleanup(ps.Close)
		workers[i] = worker{log: rl, url: ps.URL, paths: []*path{{name: "delta"}, {name: "full"}}}
		wp := workers[i].paths
		wp[0].dir, wp[0].deviceID = template(fmt.Sprintf("delta-%d", i), img1)
		wp[1].dir, wp[1].deviceID = template(fmt.Sprintf("full-%d", i), changed)
	}
	paths := workers[0].paths
	run := func(w worker, p *path, dir string, crashAt int, record string) (powercut.Result, bool) {
		t.Helper()
		cfg, _ := json.Marshal(powercut.Config{Server: w.url, DeviceDir: dir, DeviceID: p.deviceID, HardwareID: "gw-hw", CrashAt: crashAt, Record: record})
		cmd := exec.Command(agentBin)
		cmd.Env = append(os.Environ(), powercut.Env+"="+string(cfg))
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
				return powercut.Result{}, true
			}
		}
		if err != nil {
			t.Fatalf("agent run: %v\n%s", err, stderr.String())
		}
		var res powercut.Result
		if err := json.Unmarshal(bytes.TrimSpace(stdout.Bytes()), &res); err != nil {
			t.Fatalf("agent output %q: %v\n%s", stdout.String(), err, stderr.String())
		}
		return res, false
	}
	copyDir := func(src string) string {
		dst, err := os.MkdirTemp(tmp, "dev-*")
		must(t, err)
		must(t, os.Remove(dst))
		// cp -a keeps the key's 0600, which os.CopyFS does not.
		if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
			t.Fatalf("cp: %v %s", err, out)
		}
		return dst
	}
	// A run without a cut names the crash points of each path.
	for _, p := range paths {
		dir := copyDir(p.dir)
		rec := filepath.Join(t.TempDir(), "points")
		res, killed := run(workers[0], p, dir, 0, rec)
		if killed || res.Outcome != string(update.OutcomeCommitted) || res.Err != "" {
			t.Fatalf("%s: an update without power cuts ended %+v", p.name, res)
		}
		b, _ := os.ReadFile(rec)
		p.points = strings.Fields(string(b))
		t.Logf("%s path: %d crash points: %s", p.name, len(p.points), strings.Join(p.points, " "))
		if len(p.points) < 20 {
			t.Fatalf("%s: only %d crash points: %v", p.name, len(p.points), p.points)
		}
		workers[0].log.take()
	}
	for i, p := range workers[1].paths {
		p.points = paths[i].points
	}

	cuts := 1000
	if os.Getenv("PL_CUTS") != "" {
		cuts, _ = strconv.Atoi(os.Getenv("PL_CUTS"))
	}
	var mu sync.Mutex
	stats := map[string]int{}  // crash point name → cuts there
	resumed, restarted := 0, 0 // downloads continued / started over
	total, updates := 0, 0     // cuts made, updates carried through
	next := make(chan int)
	var wg sync.WaitGroup
	for wi := range workers {
		wg.Add(1)
		go func(w worker) {
			defer wg.Done()
			for trial := range next {
				p := w.paths[trial%len(w.paths)]
				dir := copyDir(p.dir)
				r := rand.New(rand.NewPCG(uint64(trial), 7))
				// One to three cuts in a row, then a run that finishes.
				n := 1 + r.IntN(3)
				var names []string
				for k := 0; k < n; k++ {
					at := 1 + r.IntN(len(p.points))
					part := partSize(dir)
					res, killed := run(w, p, dir, at, "")
					reqs := w.log.take()
					if !killed {
						// This run took a shorter path than the recorded one.
						if res.Err != "" {
							t.Errorf("trial %d: run ended with %v", trial, res.Err)
						}
						break
					}
					names = append(names, p.points[min(at, len(p.points))-1])
					if part > 0 {
						mu.Lock()
						if firstRange(reqs) == fmt.Sprintf("bytes=%d-", part) {
							resumed++
						} else if len(reqs) > 0 {
							restarted++
						}
						mu.Unlock()
					}
				}
				res, killed := run(w, p, dir, 0, "")
				w.log.take()
				if killed || res.Err != "" || (res.Outcome != string(update.OutcomeCommitted) && res.Outcome != string(update.OutcomeCurrent)) {
					t.Errorf("trial %d (%s, cuts at %v): the last run ended %+v", trial, p.name, names, res)
				}
				checkDevice(t, fmt.Sprintf("%d (%s, cuts at %v)", trial, p.name, names), dir, r1, r2)
				mu.Lock()
				for _, nm := range names {
					stats[nm]++
				}
				total += len(names)
				updates++
				mu.Unlock()
			}
		}(workers[wi])
	}
	for trial := 0; ; trial++ {
		mu.Lock()
		done := total >= cuts || t.Failed()
		mu.Unlock()
		if done {
			break
		}
		next <- trial
	}
	close(next)
	wg.Wait()
	t.Logf("%d power cuts over %d updates (%d delta-path points, %d full-path points); downloads resumed %d times, started over %d",
		total, updates, len(paths[0].points), len(paths[1].points), resumed, restarted)
	t.Logf("cuts per point: %v", stats)
	if restarted > 0 {
		t.Errorf("%d downloads started over instead of resuming", restarted)
	}
	if resumed == 0 {
		t.Errorf("no cut fell in a download; the harness does not cover downloads")
	}
}

// checkDevice asserts what every boot found and how the device ended.
func checkDevice(t *testing.T, trial string, dir string, r1, r2 release.Release) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "boots.jsonl"))
	if err != nil {
		t.Errorf("trial %s: %v", trial, err)
		return
	}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var br powercut.BootRecord
		if err := json.Unmarshal([]byte(line), &br); err != nil {
			t.Errorf("trial %s: boot record %q: %v", trial, line, err)
			continue
		}
		if !br.Verified || (br.ReleaseID != r1.ID && br.ReleaseID != r2.ID) {
			t.Errorf("trial %s: booted %+v: not a complete image of 1.0.0 or 1.1.0", trial, br)
		}
	}
	slots, err := install.NewDirAB(filepath.Join(dir, "slots"), install.DirABOptions{MaxAttempts: 3})
	if err != nil {
		t.Errorf("trial %s: %v", trial, err)
		return
	}
	// One more power-on: it must boot the new release for good.
	if err := slots.Boot(context.Background()); err != nil {
		t.Errorf("trial %s: boot: %v", trial, err)
		return
	}
	st, err := slots.Status(context.Background())
	if err != nil || st.Trial || st.Booted.ReleaseID != r2.ID || powercut.FileSHA256(slots.CurrentImage()) != st.Booted.SHA256 {
		t.Errorf("trial %s: ends on %+v (%v), want 1.1.0 committed", trial, st, err)
	}
	var state struct {
		InstalledCounter int64           `json:"installed_counter"`
		Pending          json.RawMessage `json:"pending"`
	}
	sb, err := os.ReadFile(filepath.Join(dir, update.UpdaterFile))
	if err != nil || json.Unmarshal(sb, &state) != nil || state.InstalledCounter != r2.Counter || len(state.Pending) > 0 {
		t.Errorf("trial %s: updater state %s (%v), want counter %d and nothing pending", trial, sb, err, r2.Counter)
	}
	// Nothing left behind: no image, patch, partial or temporary file.
	if left, _ := os.ReadDir(filepath.Join(dir, "tuf", "download")); len(left) > 0 {
		names := make([]string, len(left))
		for i, e := range left {
			names[i] = e.Name()
		}
		t.Errorf("trial %s: download dir keeps %v", trial, names)
	}
}

// partSize is the size of the partial download in dir, or 0.
func partSize(dir string) int64 {
	m, _ := filepath.Glob(filepath.Join(dir, "tuf", "download", "*.part"))
	var n int64
	for _, p := range m {
		if st, err := os.Stat(p); err == nil {
			n = max(n, st.Size())
		}
	}
	return n
}

func firstRange(reqs []string) string {
	for _, r := range reqs {
		if _, rg, ok := strings.Cut(r, " "); ok {
			return rg
		}
	}
	return ""
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
