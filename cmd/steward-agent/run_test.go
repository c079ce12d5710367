package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/steward-iot/steward/agent/fakeserver"
	"github.com/steward-iot/steward/agent/proto"
	"github.com/steward-iot/steward/agent/runner"
)

const enrollToken = "enroll-secret"

// syncBuffer is written by the command's goroutine and read by the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// started is a command running in the background.
type started struct {
	stdout, stderr *syncBuffer
	cancel         context.CancelFunc
	done           chan error
}

func start(args ...string) *started {
	ctx, cancel := context.WithCancel(context.Background())
	s := &started{stdout: &syncBuffer{}, stderr: &syncBuffer{}, cancel: cancel, done: make(chan error, 1)}
	root := newRootCmd()
	root.SetArgs(args)
	root.SetOut(s.stdout)
	root.SetErr(s.stderr)
	go func() { s.done <- root.ExecuteContext(ctx) }()
	return s
}

// stop cancels the command, as SIGTERM would, and returns its error.
func (s *started) stop(t *testing.T) error {
	t.Helper()
	s.cancel()
	select {
	case err := <-s.done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("the command did not stop")
		return nil
	}
}

func fakeServer(t *testing.T, opts fakeserver.Options) (*fakeserver.Server, string) {
	t.Helper()
	fs := fakeserver.New(opts)
	srv := httptest.NewServer(fs)
	t.Cleanup(srv.Close)
	return fs, srv.URL
}

// waitDevice waits until the server has a device for which ok holds.
func waitDevice(t *testing.T, fs *fakeserver.Server, s *started, ok func(fakeserver.Device) bool) fakeserver.Device {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		for _, d := range fs.Devices() {
			if ok(d) {
				return d
			}
		}
		select {
		case err := <-s.done:
			t.Fatalf("the command ended early: %v\nstderr:\n%s", err, s.stderr)
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("timed out; server devices %+v\nstderr:\n%s", fs.Devices(), s.stderr)
	return fakeserver.Device{}
}

func TestRunChecksIn(t *testing.T) {
	t.Setenv(tokenEnv, "")
	fs, url := fakeServer(t, fakeserver.Options{EnrollmentToken: enrollToken, PollIntervalSeconds: 1})
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	components := filepath.Join(dir, "components.json")
	if err := os.WriteFile(components, []byte(`[{"purl":"pkg:generic/openssl@3.0.13","version":"3.0.13"}]`), 0o644); err != nil {
		t.Fatal(err)
	}
	s := start("run", "--server", url, "--state", state, "--enroll-token", enrollToken,
		"--hardware-id", "gw-100", "--serial", "SN-42", "--version", "2.3.0", "--components", components,
		"--link", "cellular", "--maintenance-window", "02:00-04:00 Europe/Berlin")
	d := waitDevice(t, fs, s, func(d fakeserver.Device) bool { return len(d.Checkins) >= 3 })
	if err := s.stop(t); err != nil {
		t.Fatalf("run after cancel: %v", err)
	}

	if d.HardwareID != "gw-100" || d.Serial != "SN-42" || d.Status != proto.StatusActive {
		t.Errorf("enrolled %+v", d)
	}
	c := d.LastCheckin
	if c.Installed.Version != "2.3.0" || len(c.Installed.Components) != 1 || c.Installed.Components[0].Purl != "pkg:generic/openssl@3.0.13" {
		t.Errorf("installed %+v", c.Installed)
	}
	if c.State.Link != proto.LinkCellular || !c.State.Metered || c.State.MaintenanceWindow != "02:00-04:00 Europe/Berlin" || c.State.FreeStorage <= 0 {
		t.Errorf("state %+v", c.State)
	}
	// 1 s apart, ±10%.
	for i := 1; i < len(d.Checkins); i++ {
		if gap := d.Checkins[i].Sub(d.Checkins[i-1]); gap < 850*time.Millisecond || gap > 1500*time.Millisecond {
			t.Errorf("check-ins %d and %d are %v apart, want about 1s", i-1, i, gap)
		}
	}
	b, err := os.ReadFile(filepath.Join(state, runner.StateFile))
	if err != nil {
		t.Fatal(err)
	}
	var st map[string]any
	if err := json.Unmarshal(b, &st); err != nil || st["device_id"] != d.ID || st["enrolled"] != true {
		t.Errorf("state file %s (%v)", b, err)
	}
	if logs := s.stderr.String(); !strings.Contains(logs, "generated a new device key") || !strings.Contains(logs, "msg=enrolled") {
		t.Errorf("logs:\n%s", logs)
	}
}

func TestRunFromEnvironment(t *testing.T) {
	fs, url := fakeServer(t, fakeserver.Options{EnrollmentToken: enrollToken})
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	versionFile := filepath.Join(dir, "version")
	machineID := filepath.Join(dir, "machine-id")
	for path, content := range map[string]string{tokenFile: enrollToken + "\n", versionFile: "1.0.0\n", machineID: "0123456789abcdef0123456789abcdef\n"} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	old := machineIDFile
	machineIDFile = machineID
	t.Cleanup(func() { machineIDFile = old })
	t.Setenv(serverEnv, url)
	t.Setenv(stateEnv, filepath.Join(dir, "state"))
	t.Setenv(tokenEnv, "not this one: the file is preferred")

	s := start("run", "--enroll-token-file", tokenFile, "--hardware-id", "gw-100", "--version-file", versionFile)
	d := waitDevice(t, fs, s, func(d fakeserver.Device) bool { return len(d.Checkins) >= 1 })
	if err := s.stop(t); err != nil {
		t.Fatal(err)
	}
	if d.LastCheckin.Installed.Version != "1.0.0" || d.LastCheckin.State.Link != proto.LinkEthernet || d.LastCheckin.State.Metered {
		t.Errorf("check-in %+v", d.LastCheckin)
	}
	if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(d.Serial) || strings.Contains(d.Serial, "0123456789abcdef") {
		t.Errorf("serial %q, want a hash of the machine id", d.Serial)
	}
	if _, err := os.Stat(filepath.Join(dir, "state", runner.StateFile)); err != nil {
		t.Errorf("state not in $%s: %v", stateEnv, err)
	}

	// The token from the environment works too, and the serial is stable.
	fs2, url2 := fakeServer(t, fakeserver.Options{EnrollmentToken: "env-token"})
	t.Setenv(serverEnv, url2)
	t.Setenv(stateEnv, filepath.Join(dir, "state2"))
	t.Setenv(tokenEnv, "env-token")
	s = start("run", "--hardware-id", "gw-100", "--version", "1")
	d2 := waitDevice(t, fs2, s, func(d fakeserver.Device) bool { return len(d.Checkins) >= 1 })
	if err := s.stop(t); err != nil {
		t.Fatal(err)
	}
	if d2.Serial != d.Serial || d2.KeyID == d.KeyID {
		t.Errorf("second device: serial %q key %s; first: %q %s", d2.Serial, d2.KeyID, d.Serial, d.KeyID)
	}
}

func TestRunRefusedExitsWithStatus3(t *testing.T) {
	t.Setenv(tokenEnv, "")
	fs, url := fakeServer(t, fakeserver.Options{RetryAfterSeconds: 1})
	s := start("run", "--server", url, "--state", t.TempDir(), "--org", "acme", "--hardware-id", "gw-100", "--version", "1")
	d := waitDevice(t, fs, s, func(d fakeserver.Device) bool { return d.Status == proto.StatusPending })
	fs.SetStatus(d.ID, proto.StatusRejected)
	var err error
	select {
	case err = <-s.done:
	case <-time.After(10 * time.Second):
		t.Fatal("run did not stop after the rejection")
	}
	if !errors.Is(err, runner.ErrRefused) || exitCode(err) != exitRefused {
		t.Fatalf("error %v (exit status %d), want a refusal with status 3", err, exitCode(err))
	}
	if !strings.Contains(s.stderr.String(), "rejected") {
		t.Errorf("stderr does not explain the rejection:\n%s", s.stderr)
	}
	if exitCode(errors.New("other")) != 1 {
		t.Error("other errors do not exit with 1")
	}
}

func TestRunErrors(t *testing.T) {
	t.Setenv(serverEnv, "")
	t.Setenv(stateEnv, "")
	t.Setenv(tokenEnv, "")
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := []string{"run", "--server", "http://127.0.0.1:1", "--state", dir, "--version", "1"}
	for _, c := range []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"no server", []string{"run", "--state", dir, "--version", "1"}, serverEnv},
		{"no state", []string{"run", "--server", "http://x", "--version", "1"}, stateEnv},
		{"two tokens", append(base, "--enroll-token", "a", "--enroll-token-file", empty), "not both"},
		{"empty token file", append(base, "--enroll-token-file", empty), "is empty"},
		{"missing token file", append(base, "--enroll-token-file", filepath.Join(dir, "nope")), "no such file"},
		{"no version", []string{"run", "--server", "http://x", "--state", dir}, "--version or --version-file"},
		{"bad link", append(base, "--link", "carrier-pigeon"), "want one of"},
		{"nothing to enroll with", append(base, "--hardware-id", "gw"), "enrollment token or an org"},
	} {
		_, errOut, err := run(t, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.wantErr) {
			t.Errorf("%s: error %v, want one mentioning %q", c.name, err, c.wantErr)
		}
		if strings.Contains(errOut, "Usage:") {
			t.Errorf("%s: usage printed for a runtime error", c.name)
		}
	}
}

func TestSimulate(t *testing.T) {
	fs, url := fakeServer(t, fakeserver.Options{EnrollmentToken: enrollToken})
	t.Setenv(tokenEnv, enrollToken)
	out, errOut, err := run(t, "simulate", "--server", url, "--devices", "30", "--duration", "1500ms",
		"--interval-override", "100ms", "--report-every", "500ms", "--json",
		"--hardware-ids", "gw-100,sensor-7", "--versions", "2.3.0=3,2.4.0", "--links", "wifi,cellular,nb-iot",
		"--battery-share", "0.5", "--offline-churn", "0.1", "--churn-period", "300ms")
	if err != nil {
		t.Fatalf("%v\n%s", err, errOut)
	}
	var st struct {
		Devices   int     `json:"devices"`
		Enrolled  int     `json:"enrolled"`
		CheckedIn int     `json:"checked_in"`
		Checkins  int64   `json:"checkins"`
		Rate      float64 `json:"checkins_per_second"`
		P99       float64 `json:"latency_p99_ms"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	if st.Devices != 30 || st.Enrolled != 30 || st.CheckedIn != 30 || st.Checkins < 60 || st.Rate <= 0 || st.P99 <= 0 {
		t.Errorf("summary %+v", st)
	}
	if n := len(fs.Devices()); n != 30 {
		t.Errorf("the server has %d devices", n)
	}
	if !strings.Contains(errOut, "devices 30: enrolled 30") {
		t.Errorf("no summary lines on stderr:\n%s", errOut)
	}

	_, _, err = run(t, "simulate", "--server", url, "--versions", "1=x")
	if err == nil || !strings.Contains(err.Error(), "--versions") {
		t.Errorf("bad weight: %v", err)
	}
}
