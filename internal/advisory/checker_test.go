package advisory_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/steward-iot/steward/internal/advisory"
	"github.com/steward-iot/steward/internal/clock"
	"github.com/steward-iot/steward/internal/store"
)

// checkerReport is the part of csaf_checker's JSON report the test reads.
type checkerReport struct {
	Domains []struct {
		Name         string `json:"name"`
		Passed       bool   `json:"passed"`
		Requirements []struct {
			Num         int    `json:"num"`
			Description string `json:"description"`
			Messages    []struct {
				Type int    `json:"type"` // 0 info, 1 warning, 2 error
				Text string `json:"text"`
			} `json:"messages"`
		} `json:"requirements"`
	} `json:"domains"`
}

// allowedWarnings are warnings no provider can avoid in this setup.
var allowedWarnings = []string{
	// Requirement 1: only the JSON schema is checked unless a remote
	// validator (the CSAF validator service) is configured.
	"No remote validator configured",
}

// TestCSAFChecker serves the distribution over TLS and runs gocsaf's own
// csaf_checker against it: every requirement of a CSAF trusted provider
// must pass, with no error and no warning beyond allowedWarnings.
//
// The checker also tries security.txt (requirement 8) and the DNS path
// https://csaf.data.security.<domain> (requirement 10), which belong to
// the deployment. The test stands in for it: it serves a security.txt with
// the CSAF: line built from ProviderConfig.MetadataURL, and an HTTPS proxy
// (HTTPS_PROXY of the checker process) routes csaf.data.security.<domain>
// to the same server, which answers "/" there with the provider metadata.
func TestCSAFChecker(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds and runs csaf_checker")
	}
	dir := t.TempDir()
	checker := filepath.Join(dir, "csaf_checker")
	build := exec.Command("go", "build", "-o", checker, "github.com/gocsaf/csaf/v3/cmd/csaf_checker")
	// go.sum pins the tool's modules (go.mod's tool directive); a fresh
	// module cache fetches them like any other dependency.
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build csaf_checker: %v\n%s", err, out)
	}

	// Real time: the checker verifies signatures against its own clock.
	c := clock.NewFake(time.Now().Add(-time.Hour))
	e := newEnv(t, store.SQLite, c)
	ctx := context.Background()
	p := e.officer()
	publish := func(id string, d advisory.Draft, summary string) string {
		if id == "" {
			a, err := e.svc.CreateDraft(ctx, p, d)
			if err != nil {
				t.Fatal(err)
			}
			id = a.ID
		} else if _, err := e.svc.UpdateDraft(ctx, p, id, d); err != nil {
			t.Fatal(err)
		}
		c.Advance(5 * time.Minute)
		if _, err := e.svc.Publish(ctx, p, id, summary); err != nil {
			t.Fatal(err)
		}
		return id
	}
	first := publish("", realisticDraft(), "")
	second := realisticDraft()
	second.TrackingID = "ACME-SA.2026+2" // file name acme-sa_2026+2.json
	second.Title = "Diagnostics page cross-site scripting"
	publish("", second, "")
	amber := realisticDraft()
	amber.TLP = "AMBER"
	publish("", amber, "")
	// Rotate to an imported key: the second advisory stays signed by the
	// generated one, so the checker needs both published keys.
	armored, _ := armoredTestKey(t, "")
	c.Advance(time.Minute)
	if _, err := e.svc.ImportKey(ctx, p, armored, ""); err != nil {
		t.Fatal(err)
	}
	update := realisticDraft()
	update.Summary += " Release 2.3.1 is available for all GW-100 hardware revisions."
	publish(first, update, "Release 2.3.1 available")

	var provider atomic.Value // set once the server's URL is known
	var cfg advisory.ProviderConfig
	mux := http.NewServeMux()
	for _, pattern := range advisory.Routes() {
		mux.Handle(pattern, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			provider.Load().(http.Handler).ServeHTTP(w, r)
		}))
	}
	mux.HandleFunc("GET /.well-known/security.txt", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "Contact: mailto:psirt@acme.example\nExpires: %s\nCSAF: %s\n",
			time.Now().AddDate(1, 0, 0).UTC().Format(time.RFC3339), cfg.MetadataURL())
	})
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.Host, "csaf.data.security.") && r.URL.Path == "/" {
			r.URL.Path = "/.well-known/csaf/provider-metadata.json" // the DNS path serves the metadata at its root
		}
		mux.ServeHTTP(w, r)
	}))
	defer srv.Close()
	cfg = advisory.ProviderConfig{OrgID: e.org.ID, BaseURL: srv.URL, ListOnAggregators: true, MirrorOnAggregators: true,
		Publisher: advisory.Publisher{Name: "Acme Industrial", Namespace: "https://acme.example", ContactDetails: "psirt@acme.example"}}
	h, err := advisory.NewProviderHandler(e.svc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	provider.Store(h)
	domain := srv.Listener.Addr().String()
	proxy := connectProxy(t, domain)

	report := filepath.Join(dir, "report.json")
	runCtx, cancel := context.WithTimeout(ctx, 45*time.Second)
	defer cancel()
	run := exec.CommandContext(runCtx, checker, "--insecure", "-f", "json", "-o", report, domain)
	run.Env = append(os.Environ(), "HTTPS_PROXY="+proxy, "https_proxy="+proxy, "NO_PROXY=", "no_proxy=")
	out, err := run.CombinedOutput()
	if err != nil {
		t.Fatalf("csaf_checker: %v\n%s", err, out)
	}
	raw, err := os.ReadFile(report)
	if err != nil {
		t.Fatalf("no report (the checker's exit code says nothing): %v\n%s", err, out)
	}
	var rep checkerReport
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Domains) != 1 {
		t.Fatalf("report: %s", raw)
	}
	dom := rep.Domains[0]
	var problems []string
	seen := map[int]bool{}
	for _, req := range dom.Requirements {
		seen[req.Num] = true
		for _, m := range req.Messages {
			if m.Type == 2 || m.Type == 1 && !slices.Contains(allowedWarnings, m.Text) {
				problems = append(problems, fmt.Sprintf("requirement %d (%s): %s", req.Num, req.Description, m.Text))
			}
		}
	}
	for n := 1; n <= 20; n++ {
		if !seen[n] {
			problems = append(problems, fmt.Sprintf("requirement %d was not reported", n))
		}
	}
	if !dom.Passed || len(problems) > 0 {
		t.Fatalf("csaf_checker: passed=%v\n%s\nreport: %s", dom.Passed, strings.Join(problems, "\n"), raw)
	}
	// The checker really looked at the documents (schema, hashes,
	// signatures by both keys) and at every discovery path.
	for _, want := range []string{"All advisories validated fine against the schema.", "2 public OpenPGP key(s) loaded.", "All signatures verified.", "All checksums match.",
		"white/changes.csv", "white/index.txt", "All directory listings are valid.", "All checked ROLIE feeds validated fine.",
		"All CSAF files are in the right folders.", "Found valid security.txt", "https://csaf.data.security.DOMAIN is available"} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("report lacks %q", want)
		}
	}
	t.Logf("csaf_checker passed all 20 requirements of a trusted provider; warnings: %v", allowedWarnings)
}

// connectProxy is an HTTPS proxy that sends csaf.data.security.<domain>
// to domain, as the DNS record of that name would.
func connectProxy(t *testing.T, domain string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect || r.Host != "csaf.data.security."+domain {
			http.Error(w, "this proxy only knows the CSAF DNS path", http.StatusForbidden)
			return
		}
		upstream, err := net.Dial("tcp", domain)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		client, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			upstream.Close()
			return
		}
		_, _ = client.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n"))
		go func() {
			_, _ = io.Copy(upstream, client)
			upstream.Close()
		}()
		_, _ = io.Copy(client, upstream)
		client.Close()
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}
