package ctl

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/steward-iot/steward/internal/advisory"
	"github.com/steward-iot/steward/internal/disclosure"
	"github.com/steward-iot/steward/internal/notify"
	"github.com/steward-iot/steward/internal/server"
	"github.com/steward-iot/steward/internal/tenancy"
	"github.com/steward-iot/steward/internal/vuln"
)

// serveFull runs a whole Steward server (dispatcher and sweeps included)
// on loopback until the test ends.
func serveFull(t *testing.T) *testServer {
	t.Helper()
	isolate(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := server.Config{Data: t.TempDir(), BootstrapOrg: "acme", Version: "test", PublicURL: "http://" + ln.Addr().String(),
		Notify: notify.Config{AllowInsecureURLs: true, AllowPrivateNetworks: true, PollInterval: 20 * time.Millisecond}}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.New(ctx, cfg, nil)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		<-done
		srv.Close()
	})
	tok, err := os.ReadFile(cfg.TokenFile())
	if err != nil {
		t.Fatal(err)
	}
	return &testServer{url: cfg.PublicURL, secret: strings.TrimSpace(string(tok))}
}

func cyclonedx(t *testing.T, name, version string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sbom.cdx.json")
	doc := `{"bomFormat":"CycloneDX","specVersion":"1.5","version":1,"components":[{"type":"library","name":"` + name +
		`","version":"` + version + `","purl":"pkg:npm/` + name + `@` + version + `"}]}`
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestVulnerabilityProcess walks the vulnerability process through the
// CLI against a whole server: a public report is acknowledged, answered,
// triaged and linked; a subscribed webhook receives the signed
// notification when the advisory drafted from SBOM matching is published.
func TestVulnerabilityProcess(t *testing.T) {
	s := serveFull(t)
	s.newProduct(t)

	// Two releases: 1.0 ships lodash 4.17.20 (affected), 1.1 ships 4.17.21 (fixed).
	img1, _, _ := randomFile(t, "fw-1.0.img", 4096, 21)
	img2, _, _ := randomFile(t, "fw-1.1.img", 4096, 22)
	ok(t, s.ctl(t, "releases", "create", "--product", "gw", "--version", "1.0", "--artifact", img1, "--sbom", cyclonedx(t, "lodash", "4.17.20")))
	ok(t, s.ctl(t, "releases", "create", "--product", "gw", "--version", "1.1", "--artifact", img2, "--sbom", cyclonedx(t, "lodash", "4.17.21")))
	osvFile := filepath.Join(t.TempDir(), "ghsa.json")
	if err := os.WriteFile(osvFile, []byte(`{"id":"GHSA-35jh-r3h4-6jhm","aliases":["CVE-2021-23337"],`+
		`"summary":"Command injection in lodash","modified":"2024-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"npm","name":"lodash"},`+
		`"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"4.17.21"}]}]}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	contains(t, ok(t, s.ctl(t, "vulns", "import", osvFile)).out, "GHSA-35jh-r3h4-6jhm", "stage triaging")
	v := decode[vuln.Vulnerability](t, ok(t, s.ctl(t, "--json", "vulns", "show", "GHSA-35jh-r3h4-6jhm")).out)
	contains(t, rowWith(t, ok(t, s.ctl(t, "vulns", "affected", v.VulnID)).out, "4.17.20"), "release", "gw 1.0", "lodash", "4.17.21")

	// Triage: owner, assessment (SSVC → priority, clocks), confirm, remediate.
	owner := decode[tenancy.User](t, ok(t, s.ctl(t, "--json", "users", "create", "--email", "psirt@example.com", "--name", "PSIRT",
		"--role", "security-officer")).out)
	contains(t, ok(t, s.ctl(t, "vulns", "owner", v.VulnID, "--owner", owner.ID)).out, "owner:         "+owner.ID)
	failed(t, s.ctl(t, "vulns", "stage", v.VulnID, "confirmed"), "assess")
	assessed := ok(t, s.ctl(t, "vulns", "assess", v.VulnID, "--cvss", "CVSS:3.1/AV:N/AC:L/PR:H/UI:N/S:U/C:H/I:H/A:H",
		"--exploitation", "public-poc", "--exposure", "controlled", "--human-impact", "high")).out
	contains(t, assessed, "CVSS 3.1:      7.2 high", "→ scheduled", "priority:      scheduled")
	ok(t, s.ctl(t, "vulns", "stage", v.VulnID, "confirmed"))
	contains(t, ok(t, s.ctl(t, "vulns", "stage", v.VulnID, "remediation")).out, "stage:         remediation", "remediation  running")
	failed(t, s.ctl(t, "vulns", "stage", v.VulnID, "closed"), "remediation")
	contains(t, rowWith(t, ok(t, s.ctl(t, "vulns", "worklist")).out, v.VulnID), "1", "remediation", "scheduled")
	contains(t, rowWith(t, ok(t, s.ctl(t, "vulns", "list")).out, v.VulnID), "remediation", "scheduled",
		"remediation "+time.Now().UTC().Add(90*24*time.Hour).Format("2006-01-02")) // the default policy: scheduled fixes in 90 days

	// A researcher reports it through the public API.
	res, err := http.Post(s.url+"/api/v1/reports", "application/json", strings.NewReader(
		`{"title":"Template injection in the web UI","description":"lodash.template runs attacker code."}`))
	if err != nil {
		t.Fatal(err)
	}
	var receipt disclosure.Receipt
	if err := json.NewDecoder(res.Body).Decode(&receipt); err != nil || res.StatusCode != 201 {
		t.Fatalf("report: %d %v", res.StatusCode, err)
	}
	res.Body.Close()
	id := receipt.Reference
	contains(t, rowWith(t, ok(t, s.ctl(t, "reports", "list", "--stage", "received")).out, id), "received", "not yet", "Template injection")
	contains(t, ok(t, s.ctl(t, "reports", "ack", id, "--message", "Thanks, we are on it.")).out, "acknowledged (stage acknowledged)")
	ok(t, s.ctl(t, "reports", "reply", id, "--message", "Does 1.1 fix it for you?"))
	contains(t, ok(t, s.ctl(t, "reports", "reply", id, "--message", "same as GHSA-35jh", "--internal")).out, "internal note")
	contains(t, ok(t, s.ctl(t, "reports", "stage", id, "triaging")).out, "stage triaging")
	failed(t, s.ctl(t, "reports", "stage", id, "rejected"), "reason")
	contains(t, ok(t, s.ctl(t, "reports", "link", id, v.ID)).out, "linked to vulnerability "+v.ID)
	contains(t, ok(t, s.ctl(t, "reports", "show", id)).out, "Template injection", "linked to vulnerability "+v.ID,
		"Thanks, we are on it.", "Does 1.1 fix it for you?", "internal note")

	// A webhook subscribed to advisories.
	var mu sync.Mutex
	var got []*http.Request
	var bodies [][]byte
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got, bodies = append(got, r), append(bodies, b)
		mu.Unlock()
	}))
	t.Cleanup(hook.Close)
	created := ok(t, s.ctl(t, "subscriptions", "create", "--webhook", hook.URL+"/steward", "--events", "advisory.published")).out
	_, secret, found := strings.Cut(created, "signing secret (shown once; verify webhook-signature with it): ")
	if !found {
		t.Fatalf("no secret in:\n%s", created)
	}
	secret = strings.TrimSpace(secret)
	contains(t, ok(t, s.ctl(t, "subscriptions", "list")).out, hook.URL+"/steward", "advisory.published", "yes")

	// The advisory drafted from SBOM matching names 1.0 affected and 1.1 the fix.
	drafted := ok(t, s.ctl(t, "advisories", "draft", "--from-vuln", v.VulnID)).out
	contains(t, drafted, "known affected:  1", "fixed:           1", "remediation (vendor_fix): Update Gateway to release 1.1")
	advs := decode[[]advisory.Advisory](t, ok(t, s.ctl(t, "--json", "advisories", "list")).out)
	if len(advs) != 1 {
		t.Fatalf("advisories: %+v", advs)
	}
	tracking := advs[0].TrackingID
	contains(t, ok(t, s.ctl(t, "advisories", "publish", tracking)).out, "published "+tracking+" version 1", "csaf_vex")
	vex := ok(t, s.ctl(t, "advisories", "csaf", tracking, "--profile", "vex")).out
	contains(t, vex, `"category": "csaf_vex"`, `"known_affected"`, `"fixed"`, "CVE-2021-23337")

	// The webhook gets the signed event.
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 {
		t.Fatalf("webhook received %d requests", len(got))
	}
	if err := notify.Verify(secret, got[0].Header, bodies[0], time.Minute, time.Now()); err != nil {
		t.Fatalf("webhook signature: %v", err)
	}
	if !strings.Contains(string(bodies[0]), `"advisory.published"`) || !strings.Contains(string(bodies[0]), tracking) {
		t.Fatalf("webhook body: %s", bodies[0])
	}
}
