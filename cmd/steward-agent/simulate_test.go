package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/steward-iot/steward/agent/simulator"
	"github.com/steward-iot/steward/internal/identity"
	"github.com/steward-iot/steward/internal/inventory"
	"github.com/steward-iot/steward/internal/rollout"
	"github.com/steward-iot/steward/internal/server/servertest"
	"github.com/steward-iot/steward/internal/store"
)

func writeFile(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSimulateUpdateFlags: the flags become the simulator's update
// config, and mistakes are refused with a message naming the flag.
func TestSimulateUpdateFlags(t *testing.T) {
	dir, img := writeFile(t, "director.json", []byte(`{"d":1}`)), writeFile(t, "image.json", []byte(`{"i":1}`))
	factory := writeFile(t, "1.0.0.img", []byte("factory"))
	u := simUpdateFlags{directorRoot: dir, imageRoot: img, images: []string{"1.0.0=" + factory},
		links: []string{"cellular=2Mbit/s,,", "cellular=,300ms,", "lora=,,10%"}, installFail: 0.1, healthFail: 0.2,
		timeScale: 50, concurrency: 8, maxBoots: 2, seed: 9, workDir: "/tmp/w"}
	cfg, err := u.build()
	if err != nil {
		t.Fatal(err)
	}
	def := simulator.DefaultLinkProfiles()
	wantCell := simulator.LinkProfile{Bandwidth: 2e6, Latency: 300 * time.Millisecond, Loss: def["cellular"].Loss}
	wantLora := def["lora"]
	wantLora.Loss = 0.1
	if string(cfg.DirectorRoot) != `{"d":1}` || string(cfg.ImageRoot) != `{"i":1}` || cfg.Images["1.0.0"] != factory ||
		cfg.Links["cellular"] != wantCell || cfg.Links["lora"] != wantLora || len(cfg.Links) != 2 ||
		cfg.InstallFailureRate != 0.1 || cfg.HealthFailureRate != 0.2 || cfg.TimeScale != 50 || cfg.Concurrency != 8 ||
		cfg.MaxAttempts != 2 || cfg.Seed != 9 || cfg.WorkDir != "/tmp/w" {
		t.Errorf("config %+v", cfg)
	}

	if cfg, err := (&simUpdateFlags{timeScale: 1, concurrency: 1, maxBoots: 1}).build(); cfg != nil || err != nil {
		t.Errorf("without roots: %+v %v, want no updates", cfg, err)
	}
	for name, c := range map[string]struct {
		mod  func(*simUpdateFlags)
		want string
	}{
		"failure rate without roots": {func(u *simUpdateFlags) { *u = simUpdateFlags{installFail: 0.5} }, "--director-root"},
		"one root":                   {func(u *simUpdateFlags) { u.imageRoot = "" }, "both --director-root and --image-root"},
		"missing root":               {func(u *simUpdateFlags) { u.directorRoot = "/nonexistent" }, "--director-root"},
		"image without version":      {func(u *simUpdateFlags) { u.images = []string{factory} }, "VERSION=FILE"},
		"image twice":                {func(u *simUpdateFlags) { u.images = []string{"1=" + factory, "1=" + factory} }, "twice"},
		"bad link":                   {func(u *simUpdateFlags) { u.links = []string{"cellular=fast"} }, "--link-profile"},
		"time scale":                 {func(u *simUpdateFlags) { u.timeScale = 0 }, "--time-scale"},
		"concurrency":                {func(u *simUpdateFlags) { u.concurrency = 0 }, "--update-concurrency"},
	} {
		v := u
		c.mod(&v)
		if _, err := v.build(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error naming %q", name, err, c.want)
		}
	}
	// Rates out of range are the simulator's to refuse.
	bad := u
	bad.healthFail = 1.5
	cfg, _ = bad.build()
	if _, err := simulator.New(simulator.Config{ServerURL: "http://x", Devices: 1, Org: "acme", Updates: cfg}); err == nil {
		t.Error("a health failure rate of 1.5 was accepted")
	}
	if _, err := simulator.New(simulator.Config{ServerURL: "http://x", Devices: 1, EnrollmentToken: "t", Updates: &simulator.UpdateConfig{DirectorRoot: []byte("{}"), ImageRoot: []byte("{}")}}); err == nil || !strings.Contains(err.Error(), "--org") {
		t.Errorf("updates without an org: %v", err)
	}
}

func TestSimulateHelpListsLinkDefaults(t *testing.T) {
	out, _, err := run(t, "simulate", "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"--link-profile", "--time-scale", "--image", "--seed", "nb-iot    26kbit/s,2s,2%", "cellular  1Mbit/s,100ms,1%"} {
		if !strings.Contains(out, want) {
			t.Errorf("help lacks %q", want)
		}
	}
}

// TestSimulateUpdatesLive runs `simulate` with update flags against a
// live server until the fleet committed the release assigned to it.
func TestSimulateUpdatesLive(t *testing.T) {
	srv := servertest.Start(t, store.SQLite)
	srv.Do("POST", "/api/v1/orgs/acme/products", inventory.CreateProductRequest{Slug: "gw", Name: "GW", HardwareID: "gw-hw",
		Capability: inventory.CapabilityAB, LinkClass: "cellular"}, nil)
	r := rand.New(rand.NewPCG(1, 2))
	img := make([]byte, 100_000)
	for i := range img {
		img[i] = byte(r.Uint32())
	}
	srv.Release("gw", "1.0.0", img, false)
	rel := srv.Release("gw", "1.1.0", append(img, "the fix"...), false)
	var tok identity.CreatedEnrollmentToken
	srv.Do("POST", "/api/v1/orgs/acme/enrollment-tokens", identity.CreateEnrollmentTokenRequest{Name: "sim", MaxUses: 10}, &tok)
	dirRoot, imgRoot := srv.Roots()

	const devices = 3
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errOut bytes.Buffer
	root := newRootCmd()
	root.SetArgs([]string{"simulate", "--server", srv.URL, "--enroll-token", tok.Secret, "--org", "acme", "--devices", "3",
		"--hardware-ids", "gw-hw", "--versions", "1.0.0", "--links", "cellular", "--interval-override", "100ms", "--duration", "0",
		"--report-every", "0", "--json", "--director-root", writeFile(t, "d.json", dirRoot), "--image-root", writeFile(t, "i.json", imgRoot),
		"--image", "1.0.0=" + writeFile(t, "1.0.0.img", img), "--link-profile", "cellular=8Mbit/s,200ms,0%", "--time-scale", "20"})
	root.SetOut(&out)
	root.SetErr(&errOut)
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()

	deadline := time.Now().Add(time.Minute)
	assigned := map[string]bool{}
	for {
		if time.Now().After(deadline) {
			cancel()
			<-done
			t.Fatalf("the fleet did not update in time; stderr:\n%s", errOut.String())
		}
		var page struct{ Items []inventory.Device }
		srv.Do("GET", "/api/v1/orgs/acme/devices", nil, &page)
		updated := 0
		for _, d := range page.Items {
			if d.LastSeenAt != nil && !assigned[d.ID] {
				srv.Do("PUT", "/api/v1/orgs/acme/devices/"+d.ID+"/assignment", rollout.AssignRequest{ReleaseID: rel.ID}, nil)
				assigned[d.ID] = true
			}
			if d.InstalledVersion == "1.1.0" {
				updated++
			}
		}
		if updated == devices {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("%v; stderr:\n%s", err, errOut.String())
	}
	var st struct {
		Devices int `json:"devices"`
		Updates struct {
			Committed  int64          `json:"committed"`
			BytesDelta int64          `json:"bytes_delta"`
			Versions   map[string]int `json:"versions"`
			P50        float64        `json:"offer_to_commit_p50_seconds"`
		} `json:"updates"`
	}
	if err := json.Unmarshal(out.Bytes(), &st); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if st.Devices != devices || st.Updates.Committed != devices || st.Updates.Versions["1.1.0"] != devices ||
		st.Updates.BytesDelta == 0 || st.Updates.P50 <= 0 {
		t.Errorf("summary %s", out.String())
	}
}
