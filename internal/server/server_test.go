package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/steward-iot/steward/agent/client"
	"github.com/steward-iot/steward/agent/proto"
	"github.com/steward-iot/steward/agent/runner"
	"github.com/steward-iot/steward/agent/simulator"
	"github.com/steward-iot/steward/internal/identity"
	"github.com/steward-iot/steward/internal/inventory"
	"github.com/steward-iot/steward/internal/notify"
	"github.com/steward-iot/steward/internal/server"
	"github.com/steward-iot/steward/internal/server/servertest"
	"github.com/steward-iot/steward/internal/store"
	"github.com/steward-iot/steward/internal/store/storetest"
)

type live struct {
	t     *testing.T
	url   string
	token string
}

// start runs a real server on loopback until the test ends.
func start(t *testing.T, d store.Dialect) *live {
	t.Helper()
	return startWith(t, d, nil)
}

// startWith is start with changes to the configuration.
func startWith(t *testing.T, d store.Dialect, change func(*server.Config)) *live {
	t.Helper()
	s := servertest.StartWith(t, d, func(c *server.Config) {
		// Webhook receivers in tests listen on loopback over http.
		c.Notify = notify.Config{AllowInsecureURLs: true, AllowPrivateNetworks: true, PollInterval: 20 * time.Millisecond}
		if change != nil {
			change(c)
		}
	})
	return &live{t: t, url: s.URL, token: s.Token}
}

func (l *live) admin(method, path string, body any, out any) {
	l.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = strings.NewReader(string(b))
	}
	req, _ := http.NewRequest(method, l.url+path, rd)
	req.Header.Set("Authorization", "Bearer "+l.token)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		l.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode/100 != 2 {
		l.t.Fatalf("%s %s: %d %s", method, path, res.StatusCode, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			l.t.Fatal(err)
		}
	}
}

// TestSimulatedFleetAgainstServer runs the agent's simulator against a
// real server on loopback, on both databases, and checks that the
// inventory shows every device with what it reported.
func TestSimulatedFleetAgainstServer(t *testing.T) {
	for _, d := range storetest.Dialects(t) {
		t.Run(string(d), func(t *testing.T) {
			l := start(t, d)
			l.admin("POST", "/api/v1/orgs/acme/products", inventory.CreateProductRequest{Slug: "gw", Name: "GW", HardwareID: "gw-hw",
				Capability: inventory.CapabilityAB, LinkClass: "wifi"}, nil)
			l.admin("POST", "/api/v1/orgs/acme/products", inventory.CreateProductRequest{Slug: "sensor", Name: "S", HardwareID: "s-hw",
				Capability: inventory.CapabilityMCUSUIT, LinkClass: "nb-iot", BatteryPowered: true}, nil)
			const n = 300
			var tok identity.CreatedEnrollmentToken
			l.admin("POST", "/api/v1/orgs/acme/enrollment-tokens", identity.CreateEnrollmentTokenRequest{Name: "sim", MaxUses: n}, &tok)
			hw, _ := simulator.ParseChoices([]string{"gw-hw=2", "s-hw=1"})
			vs, _ := simulator.ParseChoices([]string{"2.3.0", "2.4.0"})
			sim, err := simulator.New(simulator.Config{ServerURL: l.url, Devices: n, EnrollmentToken: tok.Secret,
				HardwareIDs: hw, Versions: vs, IntervalOverride: 200 * time.Millisecond, Concurrency: 16})
			if err != nil {
				t.Fatal(err)
			}
			// Run until every device has checked in at least twice (the race
			// detector makes a fixed duration unreliable), within a minute.
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			done := make(chan error, 1)
			go func() { done <- sim.Run(ctx) }()
			for st := sim.Stats(); (st.CheckedIn < n || st.Checkins < 2*n) && ctx.Err() == nil; st = sim.Stats() {
				time.Sleep(50 * time.Millisecond)
			}
			cancel()
			if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
				t.Fatal(err)
			}
			st := sim.Stats()
			if st.Enrolled != n || st.CheckedIn != n || len(st.Errors) != 0 {
				t.Fatalf("simulator: %+v", st)
			}
			time.Sleep(300 * time.Millisecond) // one batched last-seen flush
			var vr inventory.VersionReport
			l.admin("GET", "/api/v1/orgs/acme/products/gw/versions", nil, &vr)
			var sr inventory.VersionReport
			l.admin("GET", "/api/v1/orgs/acme/products/sensor/versions", nil, &sr)
			if vr.Active+sr.Active != n || vr.Active < n/2 || sr.Active < n/5 || len(vr.Distribution) != 2 || vr.NotSeen != 0 {
				t.Fatalf("versions: gw %+v, sensor %+v", vr, sr)
			}
			var page struct{ Items []inventory.Device }
			l.admin("GET", "/api/v1/orgs/acme/devices?limit=500&query="+url.QueryEscape(`product = "sensor" and link = "wifi" and not metered`), nil, &page)
			if len(page.Items) != sr.Active {
				t.Fatalf("sensor devices on unmetered wifi: %d, want all %d sensors", len(page.Items), sr.Active)
			}
		})
	}
}

type staticReporter struct{ version string }

func (r staticReporter) Report(context.Context) (proto.CheckinRequest, error) {
	return proto.CheckinRequest{Installed: proto.Installed{Version: r.version}, State: proto.State{OnMains: true, Link: "ethernet"}}, nil
}

// TestAgentLifecycleAgainstServer runs the real agent loop: it enrolls as
// pending, keeps waiting, checks in once accepted, and stops when the
// operator rejects it.
func TestAgentLifecycleAgainstServer(t *testing.T) {
	l := start(t, store.SQLite)
	l.admin("POST", "/api/v1/orgs/acme/products", inventory.CreateProductRequest{Slug: "gw", Name: "GW", HardwareID: "gw-hw",
		Capability: inventory.CapabilityAB, LinkClass: "ethernet"}, nil)
	done := make(chan error, 1)
	go func() {
		done <- runner.Run(context.Background(), runner.Config{ServerURL: l.url, StateDir: t.TempDir(),
			Enroll:   client.EnrollParams{Org: "acme", HardwareID: "gw-hw", Serial: "AGENT-1"},
			Reporter: staticReporter{"3.1.4"},
			// Pending devices wait Retry-After (60 s); shorten every wait.
			Sleep: func(ctx context.Context, d time.Duration) error {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(min(d, 50*time.Millisecond)):
					return nil
				}
			}})
	}()
	find := func(status string) inventory.Device {
		for range 200 {
			var page struct{ Items []inventory.Device }
			l.admin("GET", "/api/v1/orgs/acme/devices?status="+status, nil, &page)
			if len(page.Items) == 1 && (status != "active" || page.Items[0].InstalledVersion == "3.1.4") {
				return page.Items[0]
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("no %s device appeared", status)
		return inventory.Device{}
	}
	dev := find("pending")
	l.admin("POST", "/api/v1/orgs/acme/devices/accept", map[string]any{"device_ids": []string{dev.ID}}, nil)
	find("active")
	l.admin("POST", "/api/v1/orgs/acme/devices/reject", map[string]any{"device_ids": []string{dev.ID}}, nil)
	select {
	case err := <-done:
		if !errors.Is(err, runner.ErrRefused) {
			t.Fatalf("agent stopped with %v, want ErrRefused", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the agent kept running after being rejected")
	}
}
