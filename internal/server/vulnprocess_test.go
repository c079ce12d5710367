package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/steward-iot/steward/internal/disclosure"
	"github.com/steward-iot/steward/internal/store"
)

// TestPublicDisclosureEndpoints checks the assembled server: security.txt,
// a report through the public API acknowledged by the team over the admin
// API and seen by the reporter with the tracking token, and the CSAF
// provider metadata.
func TestPublicDisclosureEndpoints(t *testing.T) {
	l := start(t, store.SQLite)
	code, txt := fetch(t, l.url+"/.well-known/security.txt")
	if code != 200 || !strings.Contains(string(txt), "Contact: "+l.url+"/security/report") ||
		!strings.Contains(string(txt), "Policy: "+l.url+"/security/policy") || !strings.Contains(string(txt), "Expires: ") {
		t.Fatalf("security.txt: %d\n%s", code, txt)
	}
	if code, page := fetch(t, l.url+"/security/policy"); code != 200 || !strings.Contains(string(page), "acknowledge") {
		t.Fatalf("policy page: %d", code)
	}

	res, err := http.Post(l.url+"/api/v1/reports", "application/json", strings.NewReader(
		`{"title":"Stack overflow in the CoAP parser","description":"A 2 kB option crashes the gateway.","reporter_email":"r@example.org"}`))
	if err != nil {
		t.Fatal(err)
	}
	var receipt disclosure.Receipt
	if err := json.NewDecoder(res.Body).Decode(&receipt); err != nil || res.StatusCode != 201 || !strings.HasPrefix(receipt.Token, "rpt_") {
		t.Fatalf("report: %d %+v %v", res.StatusCode, receipt, err)
	}
	res.Body.Close()

	var page struct{ Items []disclosure.Report }
	l.admin("GET", "/api/v1/orgs/acme/reports?stage=received", nil, &page)
	if len(page.Items) != 1 || page.Items[0].ID != receipt.Reference {
		t.Fatalf("team sees %+v", page.Items)
	}
	l.admin("POST", "/api/v1/orgs/acme/reports/"+receipt.Reference+"/acknowledge", disclosure.AcknowledgeRequest{Message: "Thank you, we are looking into it."}, nil)

	req, _ := http.NewRequest("GET", l.url+"/api/v1/reports/status", nil)
	req.Header.Set("Authorization", "Bearer "+receipt.Token)
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	var st disclosure.ReporterStatus
	if res.StatusCode != 200 || json.Unmarshal(body, &st) != nil || st.Stage != "acknowledged" ||
		!strings.Contains(string(body), "Thank you, we are looking into it.") {
		t.Fatalf("reporter status: %d %s", res.StatusCode, body)
	}

	code, pm := fetch(t, l.url+"/.well-known/csaf/provider-metadata.json")
	var meta struct {
		Role         string `json:"role"`
		CanonicalURL string `json:"canonical_url"`
	}
	if code != 200 || json.Unmarshal(pm, &meta) != nil || meta.Role != "csaf_trusted_provider" ||
		meta.CanonicalURL != l.url+"/.well-known/csaf/provider-metadata.json" {
		t.Fatalf("provider metadata: %d %s", code, pm)
	}
}
