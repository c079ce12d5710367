package server_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/steward-iot/steward/agent/proto"
	"github.com/steward-iot/steward/internal/inventory"
	"github.com/steward-iot/steward/internal/notify"
	"github.com/steward-iot/steward/internal/store/storetest"
	"github.com/steward-iot/steward/internal/vuln"
)

// TestExposureChangesNotifyOwners has a device report a vulnerable
// component, then the fixed one, and checks that the owner's webhook is
// told each time, signed, with what was added and removed; a report that
// changes nothing tells nobody.
func TestExposureChangesNotifyOwners(t *testing.T) {
	for _, d := range storetest.Dialects(t) {
		t.Run(string(d), func(t *testing.T) {
			l := start(t, d)
			l.admin("POST", "/api/v1/orgs/acme/products", inventory.CreateProductRequest{Slug: "gw", Name: "GW", HardwareID: "gw-hw",
				Capability: inventory.CapabilityAB, LinkClass: "wifi"}, nil)
			req, _ := http.NewRequest("POST", l.url+"/api/v1/orgs/acme/vulnerabilities/osv", strings.NewReader(
				`{"id":"GHSA-35jh-r3h4-6jhm","aliases":["CVE-2021-23337"],"modified":"2024-01-01T00:00:00Z",`+
					`"affected":[{"package":{"ecosystem":"npm","name":"lodash"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"4.17.21"}]}]}]}`))
			req.Header.Set("Authorization", "Bearer "+l.token)
			if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != 201 {
				t.Fatalf("import: %v %v", res, err)
			}

			var mu sync.Mutex
			var events []vuln.ExposureChange
			var headers []http.Header
			var bodies [][]byte
			hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				var env struct {
					Type string              `json:"type"`
					Data vuln.ExposureChange `json:"data"`
				}
				if json.Unmarshal(b, &env) != nil || env.Type != notify.EventDeviceExposureChanged {
					t.Errorf("unexpected event: %s", b)
				}
				mu.Lock()
				events, headers, bodies = append(events, env.Data), append(headers, r.Header.Clone()), append(bodies, b)
				mu.Unlock()
			}))
			t.Cleanup(hook.Close)
			var sub notify.CreatedSubscription
			l.admin("POST", "/api/v1/orgs/acme/subscriptions", notify.CreateSubscriptionRequest{Kind: notify.KindWebhook,
				URL: hook.URL, EventTypes: []string{notify.EventDeviceExposureChanged}}, &sub)

			dev := l.device(t, "EXP-1")
			report := func(version, lodash string) {
				t.Helper()
				if _, err := dev.c.Checkin(context.Background(), proto.CheckinRequest{Installed: proto.Installed{Version: version,
					Components: []proto.Component{{Purl: "pkg:npm/lodash@" + lodash, Version: lodash}, {Purl: "pkg:npm/left-pad@1.3.0", Version: "1.3.0"}}}}); err != nil {
					t.Fatal(err)
				}
			}
			waitFor := func(n int) {
				t.Helper()
				for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
					mu.Lock()
					got := len(events)
					mu.Unlock()
					if got >= n {
						return
					}
				}
				t.Fatalf("webhook got %d events, want %d", len(events), n)
			}
			report("1.0", "4.17.20")
			waitFor(1)
			report("1.0", "4.17.20") // unchanged: nothing new
			report("1.1", "4.17.21")
			waitFor(2)
			time.Sleep(200 * time.Millisecond)
			mu.Lock()
			defer mu.Unlock()
			if len(events) != 2 {
				t.Fatalf("%d events, want 2: %+v", len(events), events)
			}
			if e := events[0]; e.DeviceID != dev.id || len(e.Added) != 1 || e.Added[0] != "GHSA-35jh-r3h4-6jhm" || len(e.Removed) != 0 {
				t.Fatalf("exposure opened: %+v", e)
			}
			if e := events[1]; len(e.Removed) != 1 || e.Removed[0] != "GHSA-35jh-r3h4-6jhm" || len(e.Added) != 0 || len(e.Exposed) != 0 || e.Version != "1.1" {
				t.Fatalf("exposure closed: %+v", e)
			}
			for i := range bodies {
				if err := notify.Verify(sub.Secret, headers[i], bodies[i], time.Minute, time.Now()); err != nil {
					t.Fatalf("event %d signature: %v", i, err)
				}
			}
		})
	}
}
