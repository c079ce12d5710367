// Package servertest runs a real Steward server on loopback for tests
// outside package server: the agent's power-loss and footprint tests
// drive a live server through its public APIs only.
package servertest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/steward-iot/steward/agent/client"
	"github.com/steward-iot/steward/agent/identity"
	"github.com/steward-iot/steward/internal/inventory"
	"github.com/steward-iot/steward/internal/release"
	"github.com/steward-iot/steward/internal/server"
	"github.com/steward-iot/steward/internal/store"
	"github.com/steward-iot/steward/internal/store/storetest"
)

// Server is a live server with the bootstrap org "acme".
type Server struct {
	t     testing.TB
	URL   string
	Token string // admin token
	Pid   int    // of the steward serve process; 0 in process
	// Config is the in-process server's configuration (zero for
	// StartProcess).
	Config server.Config
}

// Start runs a server until the test ends.
func Start(t testing.TB, d store.Dialect) *Server {
	t.Helper()
	return StartWith(t, d, nil)
}

// StartWith is Start with changes to the configuration, which the Server
// keeps (Config) for tests that need its data folder or database.
func StartWith(t testing.TB, d store.Dialect, change func(*server.Config)) *Server {
	t.Helper()
	cfg := server.Config{Data: t.TempDir(), BootstrapOrg: "acme", Version: "test",
		Checkin: inventory.CheckinConfig{Interval: time.Second, FlushEvery: 100 * time.Millisecond}}
	if d == store.Postgres {
		cfg.DB = storetest.DSN(t, d)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.PublicURL = "http://" + ln.Addr().String()
	if change != nil {
		change(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s, err := server.New(ctx, cfg, nil)
	if err != nil {
		cancel()
		ln.Close()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		s.Close()
	})
	tok, err := os.ReadFile(cfg.TokenFile())
	if err != nil {
		t.Fatal(err)
	}
	return &Server{t: t, URL: cfg.PublicURL, Token: strings.TrimSpace(string(tok)), Config: cfg}
}

// StartProcess builds cmd/steward without the race detector and runs
// `steward serve` on SQLite in dataDir (a temporary dir when empty), with
// the further flags in args, until the test ends: for tests that load the
// server heavily, where an in-process server under -race would be several
// times slower.
func StartProcess(t testing.TB, dataDir string, args ...string) *Server {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "steward")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/steward-iot/steward/cmd/steward").CombinedOutput(); err != nil {
		t.Fatalf("go build steward: %v\n%s", err, out)
	}
	if dataDir == "" {
		dataDir = t.TempDir()
	}
	// A free port: listen, note it, close; serve takes it right after.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	url := "http://" + addr
	cmd := exec.Command(bin, append([]string{"serve", "--addr", addr, "--data", dataDir, "--bootstrap-org", "acme",
		"--checkin-interval", "1s", "--public-url", url, "--log-level", "warn"}, args...)...)
	var logs syncBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("steward serve log:\n%s", logs.String())
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		res, err := http.Get(url + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case err := <-exited:
			t.Fatalf("steward serve exited: %v\n%s", err, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("steward serve not ready after a minute\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	tok, err := os.ReadFile(filepath.Join(dataDir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	return &Server{t: t, URL: url, Token: strings.TrimSpace(string(tok)), Pid: cmd.Process.Pid}
}

// syncBuffer is a bytes.Buffer safe for a process's two output streams.
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

// FastTempDir is a temporary directory on tmpfs (/dev/shm) when there is
// one, else t.TempDir(): for tests that fsync thousands of small files.
func FastTempDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("/dev/shm", "steward-test-*")
	if err != nil {
		return t.TempDir()
	}
	t.Cleanup(func() { _ = os.RemoveAll(d) })
	return d
}

// Do calls the admin API and decodes a 2xx answer into out; anything else
// fails the test.
func (s *Server) Do(method, path string, body, out any) {
	s.t.Helper()
	var rd io.Reader
	ct := "application/json"
	switch b := body.(type) {
	case nil:
	case []byte:
		rd, ct = bytes.NewReader(b), "application/octet-stream"
	default:
		j, _ := json.Marshal(body)
		rd = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, s.URL+path, rd)
	req.Header.Set("Authorization", "Bearer "+s.Token)
	req.Header.Set("Content-Type", ct)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode/100 != 2 {
		s.t.Fatalf("%s %s: %d %s", method, path, res.StatusCode, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			s.t.Fatalf("%s %s: %v", method, path, err)
		}
	}
}

// Release uploads image as the only artifact of a new release.
func (s *Server) Release(product, version string, image []byte, noDeltas bool) release.Release {
	s.t.Helper()
	var a release.Artifact
	s.Do("POST", "/api/v1/orgs/acme/artifacts?name=fw.img", image, &a)
	var r release.Release
	s.Do("POST", "/api/v1/orgs/acme/releases", release.CreateReleaseRequest{Product: product, Version: version,
		Artifacts: []release.ArtifactRef{{ID: a.ID}}, NoDeltas: noDeltas}, &r)
	return r
}

// Roots returns the director root and the image repository's root 1,
// as a device is provisioned with them.
func (s *Server) Roots() (director, image []byte) {
	s.t.Helper()
	get := func(url, token string) []byte {
		req, _ := http.NewRequest("GET", url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			s.t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		if res.StatusCode != 200 {
			s.t.Fatalf("GET %s: %d %s", url, res.StatusCode, b)
		}
		return b
	}
	return get(s.URL+"/api/v1/orgs/acme/director/root", s.Token), get(s.URL+"/tuf/acme/metadata/1.root.json", "")
}

// Enroll creates a device key in dir, enrolls it into acme and accepts it.
func (s *Server) Enroll(dir, hardwareID, serial string) (deviceID string, c *client.Client) {
	s.t.Helper()
	key, _, err := identity.LoadOrCreate(dir, identity.Ed25519)
	if err != nil {
		s.t.Fatal(err)
	}
	c = client.New(s.URL, key, client.Options{})
	resp, err := c.Enroll(context.Background(), client.EnrollParams{Org: "acme", HardwareID: hardwareID, Serial: serial})
	if err != nil {
		s.t.Fatal(err)
	}
	s.Do("POST", "/api/v1/orgs/acme/devices/accept", map[string]any{"device_ids": []string{resp.DeviceID}}, nil)
	return resp.DeviceID, c
}
