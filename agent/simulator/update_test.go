package simulator_test

// The live fleet tests run outside package simulator: the server they
// start imports it (for its demo fleet).

import (
	"bytes"
	"context"
	"maps"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/steward-iot/steward/agent/proto"
	"github.com/steward-iot/steward/agent/simulator"
	"github.com/steward-iot/steward/internal/identity"
	"github.com/steward-iot/steward/internal/inventory"
	"github.com/steward-iot/steward/internal/release"
	"github.com/steward-iot/steward/internal/rollout"
	"github.com/steward-iot/steward/internal/server/servertest"
	"github.com/steward-iot/steward/internal/store/storetest"
)

// liveFleet is a live server with product gw (hardware gw-hw), releases
// 1.0.0 and 1.1.0 (with a delta from 1.0.0), and what a fleet needs to
// enroll and update.
type liveFleet struct {
	srv              *servertest.Server
	token            string
	dirRoot, imgRoot []byte
	old, new         release.Release
	oldImage         string          // file of 1.0.0's image
	used             map[string]bool // ids of devices earlier fleets enrolled
}

func startLiveFleet(t *testing.T) *liveFleet {
	t.Helper()
	// PostgreSQL, unless the developer has none: SQLite's single writer
	// makes the fleets twice as slow under the race detector.
	dialects := storetest.Dialects(t)
	srv := servertest.Start(t, dialects[len(dialects)-1])
	srv.Do("POST", "/api/v1/orgs/acme/products", inventory.CreateProductRequest{Slug: "gw", Name: "GW", HardwareID: "gw-hw",
		Capability: inventory.CapabilityAB, LinkClass: "wifi"}, nil)
	r := rand.New(rand.NewPCG(5, 5))
	img1 := make([]byte, 200_000)
	for i := range img1 {
		img1[i] = byte(r.Uint32())
	}
	img2 := bytes.Clone(img1)
	copy(img2[5000:], "release 1.1.0 fixes the watchdog")
	img2 = append(img2, bytes.Repeat([]byte("new code "), 1000)...)
	f := &liveFleet{srv: srv, old: srv.Release("gw", "1.0.0", img1, false), new: srv.Release("gw", "1.1.0", img2, false),
		used: map[string]bool{}}
	if !slices.ContainsFunc(f.new.Artifacts, func(a release.ReleaseArtifact) bool { return a.Kind == release.KindDelta }) {
		t.Fatalf("release 1.1.0 has no delta: %+v", f.new.Artifacts)
	}
	var tok identity.CreatedEnrollmentToken
	srv.Do("POST", "/api/v1/orgs/acme/enrollment-tokens", identity.CreateEnrollmentTokenRequest{Name: "fleet", MaxUses: 1000}, &tok)
	f.token = tok.Secret
	f.dirRoot, f.imgRoot = srv.Roots()
	f.oldImage = filepath.Join(t.TempDir(), "1.0.0.img")
	if err := os.WriteFile(f.oldImage, img1, 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// artifactSize is the size of 1.1.0's artifact of kind.
func (f *liveFleet) artifactSize(kind string) int64 {
	for _, a := range f.new.Artifacts {
		if a.Kind == kind {
			return a.Size
		}
	}
	return -1
}

// devices lists the devices of the fleet running now: those the server
// knows that no earlier fleet enrolled.
func (f *liveFleet) devices(t *testing.T) []inventory.Device {
	t.Helper()
	var out []inventory.Device
	for _, d := range f.allDevices(t) {
		if !f.used[d.ID] {
			out = append(out, d)
		}
	}
	return out
}

// allDevices lists the server's devices of the org.
func (f *liveFleet) allDevices(t *testing.T) []inventory.Device {
	t.Helper()
	var all []inventory.Device
	cursor := ""
	for {
		var page struct {
			Items      []inventory.Device `json:"items"`
			NextCursor string             `json:"next_cursor"`
		}
		f.srv.Do("GET", "/api/v1/orgs/acme/devices?limit=500&cursor="+url.QueryEscape(cursor), nil, &page)
		all = append(all, page.Items...)
		if page.NextCursor == "" {
			return all
		}
		cursor = page.NextCursor
	}
}

// history returns a device's update history as "step" or "step/reason".
func (f *liveFleet) history(t *testing.T, deviceID string) []string {
	t.Helper()
	var page struct {
		Items []rollout.UpdateEvent `json:"items"`
	}
	f.srv.Do("GET", "/api/v1/orgs/acme/devices/"+deviceID+"/updates?limit=500", nil, &page)
	var out []string
	for _, e := range page.Items {
		s := e.Step
		if e.ReasonCode != "" {
			s += "/" + e.ReasonCode
		}
		if e.ReleaseID != f.new.ID {
			s += " (release " + e.ReleaseID + ")"
		}
		out = append(out, s)
	}
	return out
}

// runFleet runs devices on 1.0.0 with upd until they all checked in,
// assigns them 1.1.0, and returns once done says so (or fails the test
// after a minute). It returns the simulator's stats after the run and how
// long the updates took.
func (f *liveFleet) runFleet(t *testing.T, devices int, interval time.Duration, upd simulator.UpdateConfig, done func(simulator.Stats) bool) (simulator.Stats, time.Duration) {
	t.Helper()
	upd.DirectorRoot, upd.ImageRoot = f.dirRoot, f.imgRoot
	upd.WorkDir = t.TempDir()
	sim, err := simulator.New(simulator.Config{ServerURL: f.srv.URL, Devices: devices, EnrollmentToken: f.token, Org: "acme",
		HardwareIDs: []simulator.Choice{{"gw-hw", 1}}, Versions: []simulator.Choice{{"1.0.0", 1}}, Links: []simulator.Choice{{"wifi", 1}},
		IntervalOverride: interval, Concurrency: 16, Updates: &upd})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- sim.Run(ctx) }()
	waitFor(t, "every device checked in", func() bool { return sim.Stats().CheckedIn == devices })
	start := time.Now()
	for _, d := range f.devices(t) {
		f.srv.Do("PUT", "/api/v1/orgs/acme/devices/"+d.ID+"/assignment", rollout.AssignRequest{ReleaseID: f.new.ID}, nil)
	}
	waitFor(t, "the fleet to finish", func() bool { return done(sim.Stats()) })
	took := time.Since(start)
	// Devices that failed would try again at every check-in: take the
	// release back so that the fleet settles, then wait until the server
	// saw what each device runs.
	for _, d := range f.devices(t) {
		f.srv.Do("DELETE", "/api/v1/orgs/acme/devices/"+d.ID+"/assignment", nil, nil)
	}
	waitFor(t, "the fleet to settle", func() bool {
		u := sim.Stats().Updates
		if u.Updating != 0 || u.Waiting != 0 {
			return false
		}
		seen := map[string]int{}
		for _, d := range f.devices(t) {
			seen[d.InstalledVersion]++
		}
		return maps.Equal(seen, u.Versions)
	})
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	st := sim.Stats()
	t.Logf("%v", st)
	if left, err := os.ReadDir(upd.WorkDir); err != nil || len(left) != 0 {
		t.Errorf("the work dir holds %d entries after the run (%v)", len(left), err)
	}
	return st, took
}

// done marks the current fleet's devices as used, after its checks.
func (f *liveFleet) done(t *testing.T) {
	for _, d := range f.devices(t) {
		f.used[d.ID] = true
	}
}

// TestFleetUpdates runs fleets of simulated devices against one live
// server, one after the other, each assigned release 1.1.0.
func TestFleetUpdates(t *testing.T) {
	f := startLiveFleet(t)
	for _, c := range []struct {
		name string
		run  func(t *testing.T, f *liveFleet)
	}{
		{"committed", fleetCommits},
		{"install failures", fleetInstallFailures},
		{"health failures", fleetHealthFailures},
		{"lossy link", fleetLossyLink},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.run(t, f)
			f.done(t)
		})
	}
}

// fleetCommits: a fleet assigned a new release installs it with the
// agent's own update code, through the delta from the image it runs, and
// the server's history shows each device's update committed.
func fleetCommits(t *testing.T, f *liveFleet) {
	devices := fleetSize(50, 20)
	st, took := f.runFleet(t, devices, 500*time.Millisecond, simulator.UpdateConfig{Images: map[string]string{"1.0.0": f.oldImage}, Concurrency: 16},
		func(st simulator.Stats) bool {
			return st.Updates.Versions["1.1.0"] == devices && st.Updates.Committed == int64(devices)
		})
	t.Logf("%d devices updated in %v: %.1f updates/s on this machine (noisy)", devices, took.Round(time.Millisecond), float64(devices)/took.Seconds())
	u := st.Updates
	if u.Started != int64(devices) || u.RolledBack != 0 || len(u.Failed) != 0 {
		t.Errorf("started %d, rolled back %d, failed %v; want %d clean updates", u.Started, u.RolledBack, u.Failed, devices)
	}
	deltaLen := f.artifactSize(release.KindDelta)
	if u.BytesFull != 0 || u.BytesDelta != int64(devices)*deltaLen {
		t.Errorf("downloaded %d bytes of full images and %d of deltas; want %d deltas of %d bytes", u.BytesFull, u.BytesDelta, devices, deltaLen)
	}
	if u.OfferToCommitP50 <= 0 || u.OfferToCommitP95 < u.OfferToCommitP50 || u.Waiting != 0 || u.Updating != 0 {
		t.Errorf("offer to commit p50 %v p95 %v, waiting %d, updating %d", u.OfferToCommitP50, u.OfferToCommitP95, u.Waiting, u.Updating)
	}
	for _, d := range f.devices(t) {
		h := f.history(t, d.ID)
		want := []string{"downloading", "downloaded", "installing", "rebooting", "committed"}
		if !slices.Equal(h, want) {
			t.Errorf("device %s history %v, want %v", d.Serial, h, want)
		}
		if d.InstalledVersion != "1.1.0" {
			t.Errorf("the server has %s on %s", d.Serial, d.InstalledVersion)
		}
	}
}

// fleetInstallFailures: with every install failing, no device commits,
// each reports install-failed and keeps running the old release.
func fleetInstallFailures(t *testing.T, f *liveFleet) {
	devices := fleetSize(10, 6)
	st, _ := f.runFleet(t, devices, 500*time.Millisecond, simulator.UpdateConfig{InstallFailureRate: 1}, func(st simulator.Stats) bool {
		return st.Updates.Failed[proto.ReasonInstallFailed] >= 2*int64(devices)
	})
	if u := st.Updates; u.Committed != 0 || u.RolledBack != 0 || u.Versions["1.0.0"] != devices || len(u.Failed) != 1 {
		t.Errorf("committed %d, rolled back %d, versions %v, failed %v; want every install failed", u.Committed, u.RolledBack, u.Versions, u.Failed)
	}
	for _, d := range f.devices(t) {
		h := f.history(t, d.ID)
		if !slices.Contains(h, "failed/install-failed") || slices.Contains(h, "committed") || slices.Contains(h, "rebooting") {
			t.Errorf("device %s history %v, want install-failed and no reboot", d.Serial, h)
		}
		if d.InstalledVersion != "1.0.0" {
			t.Errorf("the server has %s on %s", d.Serial, d.InstalledVersion)
		}
	}
}

// fleetHealthFailures: with every new image failing its health checks,
// each trial is rebooted until the bootloader's limit, rolled back and
// reported so; the fleet keeps running the old release.
func fleetHealthFailures(t *testing.T, f *liveFleet) {
	devices := fleetSize(10, 6)
	st, _ := f.runFleet(t, devices, 500*time.Millisecond, simulator.UpdateConfig{HealthFailureRate: 1, MaxAttempts: 3}, func(st simulator.Stats) bool {
		return st.Updates.RolledBack >= 2*int64(devices)
	})
	if u := st.Updates; u.Committed != 0 || u.Versions["1.0.0"] != devices || len(u.Failed) != 0 {
		t.Errorf("committed %d, versions %v, failed %v; want every update rolled back", u.Committed, u.Versions, u.Failed)
	}
	for _, d := range f.devices(t) {
		h := f.history(t, d.ID)
		// An attempt: three trial boots, then the bootloader goes back.
		attempt := []string{"downloading", "downloaded", "installing", "rebooting", "rebooting", "rebooting", "rolled-back/health-check-failed"}
		if len(h) < len(attempt) || !slices.Equal(h[:len(attempt)], attempt) || slices.Contains(h, "committed") {
			t.Errorf("device %s history %v, want it to start with %v", d.Serial, h, attempt)
		}
		if d.InstalledVersion != "1.0.0" {
			t.Errorf("the server has %s on %s", d.Serial, d.InstalledVersion)
		}
	}
}

// fleetLossyLink: over links that lose 20% of their requests, the fleet
// still converges: interrupted downloads resume with Range requests, and
// lost metadata or reports are fetched or sent again.
func fleetLossyLink(t *testing.T, f *liveFleet) {
	devices := fleetSize(30, 15)
	lossy := simulator.LinkProfile{Bandwidth: 50e6, Latency: 20 * time.Millisecond, Loss: 0.2}
	st, _ := f.runFleet(t, devices, 250*time.Millisecond, simulator.UpdateConfig{Links: map[string]simulator.LinkProfile{"wifi": lossy}, TimeScale: 10, Seed: 3},
		func(st simulator.Stats) bool {
			return st.Updates.Versions["1.1.0"] == devices && st.Updates.Committed == int64(devices)
		})
	u := st.Updates
	if u.LostRequests == 0 || u.RangeRequests == 0 || u.Retried["link_loss"] == 0 {
		t.Errorf("lost %d requests, %d with Range, retried %v: want losses, resumed downloads and retried updates", u.LostRequests, u.RangeRequests, u.Retried)
	}
	// No image on file: full images only, each device's at least once.
	if u.BytesDelta != 0 || u.BytesFull < int64(devices)*f.artifactSize(release.KindFull) {
		t.Errorf("bytes full %d delta %d", u.BytesFull, u.BytesDelta)
	}
	for _, d := range f.devices(t) {
		if h := f.history(t, d.ID); !slices.Contains(h, "committed") || slices.ContainsFunc(h, func(s string) bool { return strings.HasPrefix(s, "failed") }) {
			t.Errorf("device %s history %v", d.Serial, h)
		}
	}
}

// fleetSize is n devices, or fewer under the race detector.
func fleetSize(n, race int) int {
	if simulator.RaceEnabled || testing.Short() {
		return race
	}
	return n
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
