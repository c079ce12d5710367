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

// TestImmediateRolloutAtScale sends an immediate rollout to a fleet of
// simulated devices polling at the server's pace (no MQTT: polling alone
// must converge) and measures the wall-clock time until 95 % of the fleet
// reports the new release, with the server's CPU time and memory.
// STEWARD_SCALE_DEVICES sets the fleet (default 1,000, as CI runs it;
// docs/performance.md has a 100,000-device run), STEWARD_SCALE_INTERVAL
// the check-in interval (default 5s), STEWARD_SCALE_DB a PostgreSQL DSN
// (default SQLite).
func TestImmediateRolloutAtScale(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a simulated fleet")
	}
	n := 1000
	if v := os.Getenv("STEWARD_SCALE_DEVICES"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 100 {
			t.Fatalf("STEWARD_SCALE_DEVICES=%q: want a number of at least 100", v)
		}
	}
	interval := "5s"
	if v := os.Getenv("STEWARD_SCALE_INTERVAL"); v != "" {
		interval = v
	}
	dir := t.TempDir()
	agentBin := filepath.Join(dir, "steward-agent")
	if out, err := exec.Command("go", "build", "-o", agentBin, "github.com/steward-iot/steward/cmd/steward-agent").CombinedOutput(); err != nil {
		t.Fatalf("go build steward-agent: %v\n%s", err, out)
	}
	args := []string{"--rollout-interval", "1s", "--checkin-interval", interval, "--checkin-max-rate", "3000"}
	if dsn := os.Getenv("STEWARD_SCALE_DB"); dsn != "" {
		args = append(args, "--db", dsn)
	}
	srv := servertest.StartProcess(t, servertest.FastTempDir(t), args...)
	var p inventory.Product
	srv.Do("POST", "/api/v1/orgs/acme/products", inventory.CreateProductRequest{Slug: "scale", Name: "scale", HardwareID: "scale-hw",
		Capability: inventory.CapabilityAB, LinkClass: "wifi"}, &p)
	img := bytes.Repeat([]byte("scale image "), 2048)
	srv.Release("scale", "1.0.0", img, true)
	rel := srv.Release("scale", "1.1.0", append(img, "fixed"...), true)
	dirRoot, imgRoot := srv.Roots()
	if err := os.WriteFile(filepath.Join(dir, "director.root.json"), dirRoot, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "image.root.json"), imgRoot, 0o600); err != nil {
		t.Fatal(err)
	}
	var tok identity.CreatedEnrollmentToken
	srv.Do("POST", "/api/v1/orgs/acme/enrollment-tokens", identity.CreateEnrollmentTokenRequest{Name: "scale", MaxUses: n}, &tok)
	sim := exec.Command(agentBin, "simulate", "--server", srv.URL, "--devices", strconv.Itoa(n),
		"--enroll-token", tok.Secret, "--org", "acme", "--hardware-ids", "scale-hw", "--versions", "1.0.0",
		"--director-root", filepath.Join(dir, "director.root.json"), "--image-root", filepath.Join(dir, "image.root.json"),
		"--enroll-rate", "0", "--duration", "0", "--report-every", "0", "--concurrency", "64",
		"--update-concurrency", "64", "--work-dir", servertest.FastTempDir(t), "--json")
	var out, errs bytes.Buffer
	sim.Stdout, sim.Stderr = &out, &errs
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = sim.Process.Kill()
		_, _ = sim.Process.Wait()
		if t.Failed() {
			t.Logf("simulator:\n%s", errs.String())
		}
	})
	start := time.Now()
	waitFor(t, time.Duration(n/20+60)*time.Second, "the fleet to enroll and report 1.0.0", func() bool {
		return versions(t, srv, p.ID)["1.0.0"] == n
	})
	t.Logf("%d devices enrolled and checked in after %v", n, time.Since(start).Round(time.Second))

	cpu0, _ := procCPU(srv.Pid)
	start = time.Now()
	var r rollout.Rollout
	srv.Do("POST", "/api/v1/orgs/acme/rollouts", rollout.CreateRequest{Name: "critical fix", ReleaseID: rel.ID,
		TargetQuery: `product = "scale"`, Urgency: "immediate",
		Phases:       []rollout.Phase{{Percent: 10, MinSoakSeconds: 60}, {Percent: 50, MinSoakSeconds: 60}, {Percent: 100}},
		SuccessRatio: 0.9}, &r)
	var at50, at95 time.Duration
	waitFor(t, time.Duration(n/10+300)*time.Second, "95 % of the fleet on 1.1.0", func() bool {
		got := versions(t, srv, p.ID)["1.1.0"]
		if at50 == 0 && got*2 >= n {
			at50 = time.Since(start)
		}
		return got*100 >= 95*n
	})
	at95 = time.Since(start)
	cpu1, _ := procCPU(srv.Pid)
	rss, hwm := procMem(srv.Pid)
	t.Logf("immediate rollout to %d devices: 50 %% after %v, 95 %% after %v; server CPU %.1f s over that time (%.0f %% of one core), RSS %.0f MiB (peak %.0f MiB)",
		n, at50.Round(time.Millisecond), at95.Round(time.Millisecond), (cpu1 - cpu0).Seconds(),
		100*(cpu1-cpu0).Seconds()/at95.Seconds(), float64(rss)/(1<<20), float64(hwm)/(1<<20))
}

// procCPU is the user + system CPU time a process used so far.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which may hold spaces: "(name) S ...".
	i := bytes.LastIndexByte(b, ')')
	f := bytes.Fields(b[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	utime, _ := strconv.ParseInt(string(f[11]), 10, 64)
	stime, _ := strconv.ParseInt(string(f[12]), 10, 64)
	return time.Duration(utime+stime) * time.Second / 100, nil // USER_HZ is 100 on Linux
}

// procMem is a process's resident set and its peak, in bytes.
func procMem(pid int) (rss, hwm int64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		kb, _ := strconv.ParseInt(string(bytes.TrimSuffix(bytes.TrimSpace(v), []byte(" kB"))), 10, 64)
		switch string(k) {
		case "VmRSS":
			rss = kb << 10
		case "VmHWM":
			hwm = kb << 10
		}
	}
	return rss, hwm
}
