package main_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
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
)

// TestFootprintOf100MBUpdate runs the real agent binary through 100 MB
// updates from a live server, once through the full image (download,
// install into slot b, read back, emulated reboot, commit) and once
// through a delta (download the patch, apply it against the running
// image, then the same), and checks its peak resident memory (VmHWM) stays
// within 20 MB: images are streamed, never held in memory, and a delta
// apply holds one bounded dictionary.
func TestFootprintOf100MBUpdate(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 100 MB images around")
	}
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("needs /proc to read the peak RSS")
	}
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
	// Built without the race detector: making a 100 MB delta under it
	// would take minutes.
	srv := servertest.StartProcess(t, "")
	dirRoot, imgRoot := filepath.Join(dir, "director.root.json"), filepath.Join(dir, "image.root.json")
	for _, path := range []string{"full", "delta"} {
		t.Run(path, func(t *testing.T) {
			footprint(t, srv, bin, path == "delta", dirRoot, imgRoot)
		})
	}
}

// footprint measures one update; the device is provisioned with the
// roots in the files dirRoot and imgRoot, written on first use.
func footprint(t *testing.T, srv *servertest.Server, bin string, withDelta bool, dirRoot, imgRoot string) {
	const size = 100 << 20
	dir := t.TempDir()
	product, serial := "gw-full", "FOOTPRINT-FULL"
	if withDelta {
		product, serial = "gw-delta", "FOOTPRINT-DELTA"
	}
	srv.Do("POST", "/api/v1/orgs/acme/products", inventory.CreateProductRequest{Slug: product, Name: product, HardwareID: product,
		Capability: inventory.CapabilityAB, LinkClass: "ethernet"}, nil)
	img := make([]byte, size)
	r := rand.NewChaCha8([32]byte{byte(len(product))})
	_, _ = r.Read(img)
	factory := filepath.Join(dir, "factory.img")
	if err := os.WriteFile(factory, img, 0o600); err != nil {
		t.Fatal(err)
	}
	r1 := srv.Release(product, "1.0.0", img, true)
	if withDelta {
		_, _ = r.Read(img[size/2 : size/2+1<<20]) // 1 MiB changed: the delta is small
	} else {
		_, _ = r.Read(img[:size/2]) // half changed; no delta: the full image
	}
	want := sha256.Sum256(img)
	r2 := srv.Release(product, "1.1.0", img, !withDelta)
	img = nil //nolint:ineffassign // let the test's own memory go

	if _, err := os.Stat(dirRoot); err != nil {
		d, i := srv.Roots()
		if err := os.WriteFile(dirRoot, d, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(imgRoot, i, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var tok identity.CreatedEnrollmentToken
	srv.Do("POST", "/api/v1/orgs/acme/enrollment-tokens", identity.CreateEnrollmentTokenRequest{Name: serial, MaxUses: 1}, &tok)
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte(tok.Secret), 0o600); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	agent := exec.CommandContext(ctx, bin, "run", "--server", srv.URL, "--state", filepath.Join(dir, "state"),
		"--enroll-token-file", filepath.Join(dir, "token"), "--hardware-id", product, "--serial", serial,
		"--org", "acme", "--version", "1.0.0", "--installer", "ab-dir", "--slots", filepath.Join(dir, "slots"),
		"--factory-image", factory, "--factory-counter", strconv.FormatInt(r1.Counter, 10),
		"--director-root", dirRoot, "--image-root", imgRoot)
	var logs bytes.Buffer
	agent.Stderr = &logs
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			_ = agent.Process.Kill()
			_ = agent.Wait() // after this, logs is ours to read
		}
	}
	defer func() {
		stop()
		if t.Failed() {
			t.Logf("agent log:\n%s", logs.String())
		}
	}()

	deviceID := waitForDevice(t, srv, serial, "1.0.0")
	srv.Do("PUT", "/api/v1/orgs/acme/devices/"+deviceID+"/assignment", rollout.AssignRequest{ReleaseID: r2.ID}, nil)
	waitForDevice(t, srv, serial, "1.1.0")

	peak, err := peakRSS(agent.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("agent peak RSS (VmHWM) over a %d MiB update: %.1f MiB", size>>20, float64(peak)/(1<<20))
	if peak > 20<<20 {
		t.Errorf("agent peak RSS %.1f MiB exceeds 20 MiB", float64(peak)/(1<<20))
	}
	if got := fileSHA256(t, filepath.Join(dir, "slots", "b", "image")); got != want {
		t.Errorf("slot b does not hold release 1.1.0")
	}
	stop()
	if withDelta && (len(r2.Artifacts) < 2 || strings.Contains(logs.String(), "did not apply")) {
		t.Errorf("the delta path was not taken: %d artifacts", len(r2.Artifacts))
	}
}

func fileSHA256(t *testing.T, p string) [32]byte {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return [32]byte(h.Sum(nil))
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
