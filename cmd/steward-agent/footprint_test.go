package main_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/steward-iot/steward/internal/identity"
	"github.com/steward-iot/steward/internal/inventory"
	"github.com/steward-iot/steward/internal/rollout"
	"github.com/steward-iot/steward/internal/server/servertest"
	"github.com/steward-iot/steward/internal/store"
)

// TestFootprintOf100MBUpdate runs the real agent binary through a 100 MB
// update from a live server (full image: download, install into slot b,
// read back, emulated reboot, commit) and checks its peak resident memory
// (VmHWM) stays within 20 MB: images are streamed, never held in memory.
func TestFootprintOf100MBUpdate(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 100 MB images around")
	}
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("needs /proc to read the peak RSS")
	}
	const size = 100 << 20
	dir := t.TempDir()
	bin := filepath.Join(dir, "steward-agent")
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	st, err := os.Stat(bin)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("agent binary (stripped, -trimpath): %.1f MiB", float64(st.Size())/(1<<20))

	srv := servertest.Start(t, store.SQLite)
	srv.Do("POST", "/api/v1/orgs/acme/products", inventory.CreateProductRequest{Slug: "gw", Name: "GW", HardwareID: "gw-hw",
		Capability: inventory.CapabilityAB, LinkClass: "ethernet"}, nil)
	img := make([]byte, size)
	r := rand.NewChaCha8([32]byte{1})
	_, _ = r.Read(img)
	factory := filepath.Join(dir, "factory.img")
	if err := os.WriteFile(factory, img, 0o600); err != nil {
		t.Fatal(err)
	}
	r1 := srv.Release("gw", "1.0.0", img, true)
	_, _ = r.Read(img[:size/2]) // another image of the same size
	r2 := srv.Release("gw", "1.1.0", img, true)
	img = nil //nolint:ineffassign // let the test's own memory go

	dirRoot, imgRoot := srv.Roots()
	for name, b := range map[string][]byte{"director.root.json": dirRoot, "image.root.json": imgRoot} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var tok identity.CreatedEnrollmentToken
	srv.Do("POST", "/api/v1/orgs/acme/enrollment-tokens", identity.CreateEnrollmentTokenRequest{Name: "footprint", MaxUses: 1}, &tok)
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte(tok.Secret), 0o600); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	agent := exec.CommandContext(ctx, bin, "run", "--server", srv.URL, "--state", filepath.Join(dir, "state"),
		"--enroll-token-file", filepath.Join(dir, "token"), "--hardware-id", "gw-hw", "--serial", "FOOTPRINT-1",
		"--org", "acme", "--version", "1.0.0", "--installer", "ab-dir", "--slots", filepath.Join(dir, "slots"),
		"--factory-image", factory, "--factory-counter", strconv.FormatInt(r1.Counter, 10),
		"--director-root", filepath.Join(dir, "director.root.json"), "--image-root", filepath.Join(dir, "image.root.json"))
	var logs bytes.Buffer
	agent.Stderr = &logs
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = agent.Process.Kill()
		_ = agent.Wait()
		if t.Failed() {
			t.Logf("agent log:\n%s", logs.String())
		}
	}()

	deviceID := waitForDevice(t, srv, "FOOTPRINT-1", "1.0.0")
	srv.Do("PUT", "/api/v1/orgs/acme/devices/"+deviceID+"/assignment", rollout.AssignRequest{ReleaseID: r2.ID}, nil)
	waitForDevice(t, srv, "FOOTPRINT-1", "1.1.0")

	peak, err := peakRSS(agent.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("agent peak RSS (VmHWM) over a %d MiB update: %.1f MiB", size>>20, float64(peak)/(1<<20))
	if peak > 20<<20 {
		t.Errorf("agent peak RSS %.1f MiB exceeds 20 MiB", float64(peak)/(1<<20))
	}
	got, err := os.ReadFile(filepath.Join(dir, "slots", "b", "image"))
	if err != nil || len(got) != size || !bytes.Equal(got[size/2:], mustRead(t, factory)[size/2:]) {
		t.Errorf("slot b does not hold release 1.1.0 (%v)", err)
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// waitForDevice polls the inventory until the device with serial reports
// version, and returns its id.
func waitForDevice(t *testing.T, srv *servertest.Server, serial, version string) string {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		var page struct {
			Items []inventory.Device `json:"items"`
		}
		srv.Do("GET", "/api/v1/orgs/acme/devices?limit=100", nil, &page)
		for _, d := range page.Items {
			if d.Serial == serial && d.InstalledVersion == version {
				return d.ID
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("device %s never reported version %s", serial, version)
	return ""
}

// peakRSS reads VmHWM, the peak resident set, of a process.
func peakRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}
