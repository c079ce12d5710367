package server_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/steward-iot/steward/agent/simulator"
	"github.com/steward-iot/steward/internal/identity"
	"github.com/steward-iot/steward/internal/inventory"
	"github.com/steward-iot/steward/internal/rollout"
	"github.com/steward-iot/steward/internal/server/servertest"
)

// TestRolloutWithSimulatedFleets runs two fleets of 1,000 simulated
// devices (steward-agent simulate, real updates through the agent's
// Updater) against one steward serve, each targeted by its own scheduled
// rollout (phases 1 → 10 → 50 → 100 %, pause at 20 % failures):
//
//   - canary: half the installs fail; the rollout pauses by itself in its
//     first phase, and no device outside that phase is offered anything;
//   - healthy: 2 % of the installs fail, retries absorb them; the rollout
//     completes and every device runs the new release.
//
// Server and simulators are built without the race detector: the test
// drives thousands of updates.
func TestRolloutWithSimulatedFleets(t *testing.T) {
	if testing.Short() {
		t.Skip("runs 2,000 simulated devices")
	}
	const fleet = 1000
	dir := t.TempDir()
	agentBin := filepath.Join(dir, "steward-agent")
	if out, err := exec.Command("go", "build", "-o", agentBin, "github.com/steward-iot/steward/cmd/steward-agent").CombinedOutput(); err != nil {
		t.Fatalf("go build steward-agent: %v\n%s", err, out)
	}
	srv := servertest.StartProcess(t, servertest.FastTempDir(t), "--rollout-interval", "250ms", "--checkin-max-rate", "5000")

	type fleetCase struct {
		name        string
		failureRate float64
		rel         rollout.Rollout
		sim         *exec.Cmd
		out         *bytes.Buffer
		productID   string
	}
	cases := []*fleetCase{{name: "canary", failureRate: 0.5}, {name: "healthy", failureRate: 0.02}}
	for i, c := range cases {
		var p inventory.Product
		srv.Do("POST", "/api/v1/orgs/acme/products", inventory.CreateProductRequest{Slug: c.name, Name: c.name, HardwareID: c.name + "-hw",
			Capability: inventory.CapabilityAB, LinkClass: "wifi"}, &p)
		c.productID = p.ID
		r := rand.New(rand.NewPCG(uint64(i), 1))
		img := make([]byte, 32<<10)
		for j := range img {
			img[j] = byte(r.Uint32())
		}
		srv.Release(c.name, "1.0.0", img, true)
		copy(img[100:], "the fix")
		rel := srv.Release(c.name, "1.1.0", img, true)
		c.rel.ReleaseID = rel.ID
	}
	dirRoot, imgRoot := srv.Roots()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(dir, "director.root.json"), dirRoot, 0o600))
	must(os.WriteFile(filepath.Join(dir, "image.root.json"), imgRoot, 0o600))

	for i, c := range cases {
		var tok identity.CreatedEnrollmentToken
		srv.Do("POST", "/api/v1/orgs/acme/enrollment-tokens", identity.CreateEnrollmentTokenRequest{Name: c.name, MaxUses: fleet}, &tok)
		c.sim = exec.Command(agentBin, "simulate", "--server", srv.URL, "--devices", strconv.Itoa(fleet),
			"--enroll-token", tok.Secret, "--org", "acme", "--hardware-ids", c.name+"-hw", "--versions", "1.0.0",
			"--director-root", filepath.Join(dir, "director.root.json"), "--image-root", filepath.Join(dir, "image.root.json"),
			"--install-failure-rate", strconv.FormatFloat(c.failureRate, 'f', -1, 64), "--seed", strconv.Itoa(i+1),
			"--interval-override", "1s", "--duration", "0", "--report-every", "0", "--concurrency", "32",
			"--update-concurrency", "32", "--work-dir", servertest.FastTempDir(t), "--json")
		c.out = new(bytes.Buffer)
		c.sim.Stdout = c.out
		var errs bytes.Buffer
		c.sim.Stderr = &errs
		must(c.sim.Start())
		t.Cleanup(func() {
			_ = c.sim.Process.Kill()
			_, _ = c.sim.Process.Wait()
			if t.Failed() {
				t.Logf("%s simulator:\n%s", c.name, errs.String())
			}
		})
	}
	// Every device enrolled and reported 1.0.0 before the rollouts start.
	start := time.Now()
	for _, c := range cases {
		waitFor(t, 2*time.Minute, fmt.Sprintf("%s fleet on 1.0.0", c.name), func() bool {
			return versions(t, srv, c.productID)["1.0.0"] == fleet
		})
	}
	t.Logf("2 × %d devices enrolled and checked in after %v", fleet, time.Since(start).Round(time.Second))

	maxRetries := 3
	for _, c := range cases {
		srv.Do("POST", "/api/v1/orgs/acme/rollouts", rollout.CreateRequest{Name: c.name, ReleaseID: c.rel.ReleaseID,
			TargetQuery: fmt.Sprintf("product = %q", c.name), Urgency: "scheduled", Mode: "forced",
			Phases:       []rollout.Phase{{Percent: 1, MinSoakSeconds: 1}, {Percent: 10, MinSoakSeconds: 1}, {Percent: 50, MinSoakSeconds: 1}, {Percent: 100}},
			SuccessRatio: 0.9, PauseFailureRatio: 0.2, MaxRetries: &maxRetries}, &c.rel)
	}
	progress := func(c *fleetCase) rollout.Progress {
		var p rollout.Progress
		srv.Do("GET", "/api/v1/orgs/acme/rollouts/"+c.rel.ID, nil, &p)
		return p
	}
	start = time.Now()
	canary, healthy := cases[0], cases[1]
	var pc rollout.Progress
	waitFor(t, 2*time.Minute, "the canary rollout to pause", func() bool {
		pc = progress(canary)
		return pc.State != "running"
	})
	if pc.State != "paused" || pc.Phase != 0 {
		t.Fatalf("canary rollout %s in phase %d (%s), want paused in its first phase", pc.State, pc.Phase, pc.StateReason)
	}
	// 1 % of 1,000 devices by hash bucket: about 10; never the next phase's.
	if pc.Offered > 40 || pc.Failed == 0 {
		t.Fatalf("canary: %d offered, %d failed: want only the first phase's devices offered", pc.Offered, pc.Failed)
	}
	t.Logf("canary rollout paused after %v: %d offered, %d succeeded, %d failed (%s)",
		time.Since(start).Round(time.Millisecond), pc.Offered, pc.Succeeded, pc.Failed, pc.StateReason)

	var ph rollout.Progress
	waitFor(t, 4*time.Minute, "the healthy rollout to complete", func() bool {
		ph = progress(healthy)
		return ph.State != "running"
	})
	if ph.State != "completed" {
		t.Fatalf("healthy rollout ended %s (%s): %+v", ph.State, ph.StateReason, ph.Devices)
	}
	done := time.Since(start)
	waitFor(t, time.Minute, "the healthy fleet on 1.1.0", func() bool {
		return versions(t, srv, healthy.productID)["1.1.0"] == fleet
	})
	t.Logf("healthy rollout completed after %v: %d succeeded, %d failed attempts; all %d devices on 1.1.0",
		done.Round(time.Millisecond), ph.Succeeded, ph.Failed, fleet)
	if n := versions(t, srv, canary.productID)["1.1.0"]; n > 40 {
		t.Fatalf("%d canary-fleet devices run 1.1.0 although the rollout paused in its first phase", n)
	}

	// The simulators' own view: stop them and read their final summary.
	for _, c := range cases {
		_ = c.sim.Process.Signal(syscall.SIGINT)
		_ = c.sim.Wait()
		var st simulator.Stats
		if err := json.Unmarshal(c.out.Bytes(), &st); err != nil || st.Updates == nil {
			t.Fatalf("%s simulator summary %q: %v", c.name, c.out.String(), err)
		}
		t.Logf("%s simulator: %d updates started, %d committed, failed %v", c.name, st.Updates.Started, st.Updates.Committed, st.Updates.Failed)
	}
}

// versions is a product's installed-version distribution.
func versions(t *testing.T, srv *servertest.Server, productID string) map[string]int {
	t.Helper()
	var rep inventory.VersionReport
	srv.Do("GET", "/api/v1/orgs/acme/products/"+productID+"/versions", nil, &rep)
	out := map[string]int{}
	for _, v := range rep.Distribution {
		out[v.Version] = v.Devices
	}
	return out
}
