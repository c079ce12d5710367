package advisory_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gocsaf/csaf/v3/csaf"

	"github.com/steward-iot/steward/internal/advisory"
	"github.com/steward-iot/steward/internal/store"
)

// providerEnv publishes three advisories (one in two versions, one
// TLP:AMBER) and serves the organization's distribution.
type providerEnv struct {
	*env
	srv  *httptest.Server
	cfg  advisory.ProviderConfig
	ids  map[string]string // tracking id → advisory id
	keys []advisory.SigningKey
}

func newProviderEnv(t *testing.T, d store.Dialect) *providerEnv {
	t.Helper()
	e := newEnv(t, d, nil)
	pe := &providerEnv{env: e, ids: map[string]string{}}
	ctx := context.Background()
	p := e.officer()
	publish := func(d advisory.Draft) string {
		a, err := e.svc.CreateDraft(ctx, p, d)
		if err != nil {
			t.Fatal(err)
		}
		e.clock.Advance(time.Hour)
		if _, err := e.svc.Publish(ctx, p, a.ID, ""); err != nil {
			t.Fatal(err)
		}
		pe.ids[a.TrackingID] = a.ID
		return a.ID
	}
	first := publish(realisticDraft())
	second := realisticDraft()
	second.Title = `Diagnostics page <script>alert("x")</script> & more`
	publish(second)
	amber := realisticDraft()
	amber.TLP = "AMBER"
	publish(amber)
	// Update the first advisory: version 2 is served, version 1 is not.
	up := realisticDraft()
	up.Summary += " Version 2.3.1 fixes it."
	if _, err := e.svc.UpdateDraft(ctx, p, first, up); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Hour)
	if _, err := e.svc.Publish(ctx, p, first, "Clarified the fix"); err != nil {
		t.Fatal(err)
	}
	// The handler is built before the server exists; BaseURL only has to
	// be an https origin, and links are compared relative to it.
	pe.cfg = advisory.ProviderConfig{OrgID: e.org.ID, BaseURL: "https://csaf.acme.example", ListOnAggregators: true, MirrorOnAggregators: true,
		Publisher: advisory.Publisher{Name: "Acme Industrial", Namespace: "https://acme.example"}}
	h, err := advisory.NewProviderHandler(e.svc, pe.cfg)
	if err != nil {
		t.Fatal(err)
	}
	pe.srv = httptest.NewServer(h)
	t.Cleanup(pe.srv.Close)
	pe.keys, _ = e.svc.SigningKeys(ctx, p)
	return pe
}

func (pe *providerEnv) get(t *testing.T, path string, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", pe.srv.URL+path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, b
}

func (pe *providerEnv) ok(t *testing.T, path, contentType string) []byte {
	t.Helper()
	res, b := pe.get(t, path)
	if res.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", path, res.StatusCode, b)
	}
	if ct := res.Header.Get("Content-Type"); ct != contentType {
		t.Fatalf("GET %s: Content-Type %q, want %q", path, ct, contentType)
	}
	if res.Header.Get("ETag") == "" || res.Header.Get("Last-Modified") == "" {
		t.Fatalf("GET %s: no ETag or Last-Modified", path)
	}
	return b
}

func TestProvider(t *testing.T) {
	t.Parallel()
	pe := newProviderEnv(t, store.SQLite)
	base := "https://csaf.acme.example/.well-known/csaf/"

	// provider-metadata.json
	pmdBytes := pe.ok(t, "/.well-known/csaf/provider-metadata.json", "application/json")
	pmd := decode(t, pmdBytes)
	if msgs, err := csaf.ValidateProviderMetadata(pmd); err != nil || len(msgs) > 0 {
		t.Fatalf("provider metadata does not validate: %v %v", msgs, err)
	}
	if at(t, pmd, "canonical_url") != pe.cfg.MetadataURL() || at(t, pmd, "role") != "csaf_trusted_provider" ||
		at(t, pmd, "metadata_version") != "2.0" || at(t, pmd, "list_on_CSAF_aggregators") != true ||
		at(t, pmd, "distributions", 0, "directory_url") != base+"white/" ||
		at(t, pmd, "distributions", 1, "rolie", "feeds", 0, "url") != base+"white/csaf-feed-tlp-white.json" ||
		at(t, pmd, "publisher", "category") != "vendor" {
		t.Fatalf("provider metadata: %s", pmdBytes)
	}
	if pe.cfg.MetadataURL() != base+"provider-metadata.json" {
		t.Fatalf("MetadataURL = %s", pe.cfg.MetadataURL())
	}
	key := at(t, pmd, "public_openpgp_keys", 0)
	if at(t, key, "fingerprint") != pe.keys[0].Fingerprint || at(t, key, "url") != base+"openpgp/"+pe.keys[0].Fingerprint+".asc" {
		t.Fatalf("key: %v", key)
	}
	served := pe.ok(t, "/.well-known/csaf/openpgp/"+pe.keys[0].Fingerprint+".asc", "application/pgp-keys")
	if string(served) != pe.keys[0].PublicKey {
		t.Fatal("served public key differs")
	}

	// index.txt and changes.csv: the latest version of each TLP:WHITE
	// advisory, in both profiles, newest first; nothing AMBER.
	index := string(pe.ok(t, "/.well-known/csaf/white/index.txt", "text/plain; charset=utf-8"))
	wantFiles := []string{"2026/steward-2026-0001.json", "2026/steward-2026-0001-vex.json", "2026/steward-2026-0002.json", "2026/steward-2026-0002-vex.json"}
	lines := strings.Split(strings.TrimSuffix(index, "\n"), "\n")
	if !slices.Equal(lines, wantFiles) {
		t.Fatalf("index.txt:\n%s", index)
	}
	changes := pe.ok(t, "/.well-known/csaf/white/changes.csv", "text/csv; charset=utf-8")
	if !bytes.HasPrefix(changes, []byte(`"2026/steward-2026-0001.json","2026-11-26T12:00:00Z"`+"\n")) {
		t.Fatalf("changes.csv:\n%s", changes)
	}
	rows, err := csv.NewReader(bytes.NewReader(changes)).ReadAll()
	if err != nil || len(rows) != 4 || rows[2][0] != "2026/steward-2026-0002.json" || rows[2][1] != "2026-11-26T10:00:00Z" {
		t.Fatalf("changes.csv rows: %v %v", rows, err)
	}

	// Each document: JSON with hashes and a signature beside it. The hash
	// files match the bytes served, and the signature verifies against the
	// served key.
	for _, f := range wantFiles {
		doc := pe.ok(t, "/.well-known/csaf/white/"+f, "application/json")
		name := f[len("2026/"):]
		if got := string(pe.ok(t, "/.well-known/csaf/white/"+f+".sha256", "text/plain; charset=utf-8")); got != sum256(doc)+"  "+name+"\n" {
			t.Fatalf("%s.sha256 = %q", f, got)
		}
		if got := string(pe.ok(t, "/.well-known/csaf/white/"+f+".sha512", "text/plain; charset=utf-8")); got != sum512(doc)+"  "+name+"\n" {
			t.Fatalf("%s.sha512 = %q", f, got)
		}
		sig := pe.ok(t, "/.well-known/csaf/white/"+f+".asc", "application/pgp-signature")
		if err := advisory.Verify(string(served), doc, string(sig), pe.clock.Now()); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if msgs, err := csaf.ValidateCSAF(decode(t, doc)); err != nil || len(msgs) > 0 {
			t.Fatalf("%s: %v %v", f, msgs, err)
		}
	}
	v2 := decode(t, pe.ok(t, "/.well-known/csaf/white/2026/steward-2026-0001.json", "application/json"))
	if at(t, v2, "document", "tracking", "version") != "2" {
		t.Fatal("the latest version is not the one served")
	}

	// Folders list their files with links.
	for path, want := range map[string][]string{
		"/.well-known/csaf/":       {`href="provider-metadata.json"`, `href="white/"`, `href="openpgp/"`, `href="service.json"`},
		"/.well-known/csaf/white/": {`href="2026/"`, `href="index.txt"`, `href="changes.csv"`, `href="csaf-feed-tlp-white.json"`},
		"/.well-known/csaf/white/2026/": {`href="steward-2026-0001.json"`, `href="steward-2026-0001.json.asc"`,
			`href="steward-2026-0002-vex.json.sha512"`},
		"/.well-known/csaf/openpgp/": {`href="` + pe.keys[0].Fingerprint + `.asc"`},
	} {
		page := string(pe.ok(t, path, "text/html; charset=utf-8"))
		for _, w := range want {
			if !strings.Contains(page, w) {
				t.Errorf("%s does not link %s:\n%s", path, w, page)
			}
		}
		if strings.Contains(page, "steward-2026-0003") {
			t.Errorf("%s lists the TLP:AMBER advisory", path)
		}
	}

	// ROLIE feed, service and category documents.
	feed := decode(t, pe.ok(t, "/.well-known/csaf/white/csaf-feed-tlp-white.json", "application/json"))
	if msgs, err := csaf.ValidateROLIE(feed); err != nil || len(msgs) > 0 {
		t.Fatalf("ROLIE feed: %v %v", msgs, err)
	}
	entries := at(t, feed, "feed", "entry").([]any)
	if len(entries) != 4 || at(t, entries[0], "id") != "STEWARD-2026-0001" || at(t, entries[0], "link", 0, "href") != base+"white/2026/steward-2026-0001.json" {
		t.Fatalf("feed entries: %v", entries)
	}
	if _, err := csaf.LoadROLIEServiceDocument(bytes.NewReader(pe.ok(t, "/.well-known/csaf/service.json", "application/json"))); err != nil {
		t.Fatal(err)
	}
	cat, err := csaf.LoadROLIECategoryDocument(bytes.NewReader(pe.ok(t, "/.well-known/csaf/white/category-white.json", "application/json")))
	if err != nil || len(cat.Categories.Category) != 3 {
		t.Fatalf("category document: %+v %v", cat, err)
	}

	// Not served: AMBER, older versions, other TLP folders, wrong years.
	for _, path := range []string{
		"/.well-known/csaf/white/2026/steward-2026-0003.json",
		"/.well-known/csaf/amber/2026/steward-2026-0003.json",
		"/.well-known/csaf/amber/",
		"/.well-known/csaf/white/2025/steward-2026-0001.json",
		"/.well-known/csaf/white/2026/steward-2026-0001.txt",
		"/.well-known/csaf/openpgp/0000.asc",
		"/advisories/steward-2026-0003",
		"/advisories/steward-2026-0001-vex",
		"/advisories/nope",
	} {
		if res, _ := pe.get(t, path); res.StatusCode != 404 {
			t.Errorf("GET %s = %d, want 404", path, res.StatusCode)
		}
	}
}

// TestProviderConditional: ETag and Last-Modified answer 304.
func TestProviderConditional(t *testing.T) {
	t.Parallel()
	pe := newProviderEnv(t, store.SQLite)
	for _, path := range []string{"/.well-known/csaf/white/2026/steward-2026-0002.json", "/.well-known/csaf/provider-metadata.json",
		"/.well-known/csaf/white/changes.csv", "/.well-known/csaf/white/2026/", "/advisories/steward-2026-0002"} {
		res, _ := pe.get(t, path)
		etag, lm := res.Header.Get("ETag"), res.Header.Get("Last-Modified")
		if r2, _ := pe.get(t, path, "If-None-Match", etag); r2.StatusCode != http.StatusNotModified {
			t.Errorf("%s with If-None-Match: %d", path, r2.StatusCode)
		}
		if r3, _ := pe.get(t, path, "If-Modified-Since", lm); r3.StatusCode != http.StatusNotModified {
			t.Errorf("%s with If-Modified-Since: %d", path, r3.StatusCode)
		}
		if r4, _ := pe.get(t, path, "If-None-Match", `"stale"`); r4.StatusCode != 200 {
			t.Errorf("%s with a stale ETag: %d", path, r4.StatusCode)
		}
	}
	res, _ := pe.get(t, "/.well-known/csaf/white/2026/steward-2026-0002.json")
	if want := "Thu, 26 Nov 2026 10:00:00 GMT"; res.Header.Get("Last-Modified") != want {
		t.Errorf("Last-Modified = %s, want %s", res.Header.Get("Last-Modified"), want)
	}
}

// TestProviderPage renders an advisory for people, escaped.
func TestProviderPage(t *testing.T) {
	t.Parallel()
	pe := newProviderEnv(t, store.SQLite)
	page := string(pe.ok(t, "/advisories/steward-2026-0002", "text/html; charset=utf-8"))
	for _, want := range []string{
		"Diagnostics page &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; more",
		"STEWARD-2026-0002", "Critical", "CVE-2026-21001", "9.8", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
		"CVSS v4.0", "CWE-787: Out-of-bounds Write",
		"Acme Industrial GW-100 2.3.0</td><td>Affected", "Acme Industrial GW-100 2.3.1</td><td>Fixed",
		"Acme Industrial S-10 Sensor 1.4.0</td><td>Not affected", "Component not present",
		"Acme Industrial GW-200 3.0.0</td><td>Under investigation",
		"Vendor fix", `href="https://acme.example/releases/gw100/2.3.1"`, "No fix planned",
		`href="/.well-known/csaf/white/2026/steward-2026-0002.json"`, `href="/.well-known/csaf/white/2026/steward-2026-0002-vex.json.asc"`,
		`href="https://acme.example/psirt"`, "GHSA GHSA-abcd-1234-wxyz",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(page, "<script>") {
		t.Fatal("title not escaped")
	}
	v2 := string(pe.ok(t, "/advisories/STEWARD-2026-0001", "text/html; charset=utf-8"))
	if !strings.Contains(v2, "Clarified the fix") || !strings.Contains(v2, "Initial release") {
		t.Error("revision history missing from the page")
	}
	index := string(pe.ok(t, "/advisories/", "text/html; charset=utf-8"))
	if !strings.Contains(index, `href="/advisories/steward-2026-0001"`) || strings.Contains(index, "steward-2026-0003") ||
		strings.Contains(index, "-vex") {
		t.Errorf("advisory index:\n%s", index)
	}
}

func TestProviderConfig(t *testing.T) {
	t.Parallel()
	e := newEnv(t, store.SQLite, nil)
	pub := advisory.Publisher{Name: "Acme", Namespace: "https://acme.example"}
	for _, cfg := range []advisory.ProviderConfig{
		{OrgID: e.org.ID, BaseURL: "http://acme.example", Publisher: pub},
		{OrgID: e.org.ID, BaseURL: "https://acme.example/csaf", Publisher: pub},
		{OrgID: "", BaseURL: "https://acme.example", Publisher: pub},
		{OrgID: e.org.ID, BaseURL: "https://acme.example", Publisher: advisory.Publisher{Name: "Acme"}},
	} {
		if _, err := advisory.NewProviderHandler(e.svc, cfg); err == nil {
			t.Errorf("accepted %+v", cfg)
		}
	}
	// Nothing published yet: the metadata still validates, without keys.
	h, err := advisory.NewProviderHandler(e.svc, advisory.ProviderConfig{OrgID: e.org.ID, BaseURL: "https://acme.example", Publisher: pub})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/.well-known/csaf/provider-metadata.json", nil))
	var pmd any
	if err := json.Unmarshal(rec.Body.Bytes(), &pmd); err != nil {
		t.Fatal(err)
	}
	if msgs, err := csaf.ValidateProviderMetadata(pmd); err != nil || len(msgs) > 0 || rec.Code != 200 {
		t.Fatalf("empty provider metadata: %d %v %v", rec.Code, msgs, err)
	}
	if !slices.Contains(advisory.Routes(), "GET /.well-known/csaf/") {
		t.Fatal("Routes")
	}
}

// tamperStore hands out documents with one byte changed, as if someone
// had edited the database behind Steward's back.
type tamperStore struct{ advisory.Store }

type tamperTx struct{ advisory.Tx }

func (s tamperStore) Read(ctx context.Context, fn func(advisory.Tx) error) error {
	return s.Store.Read(ctx, func(tx advisory.Tx) error { return fn(tamperTx{tx}) })
}

func (tx tamperTx) PublishedDocument(ctx context.Context, orgID, tlp, name string) (advisory.Document, error) {
	d, err := tx.Tx.PublishedDocument(ctx, orgID, tlp, name)
	if len(d.Data) > 10 {
		d.Data = bytes.Clone(d.Data)
		d.Data[10] ^= 0x20
	}
	return d, err
}

// TestProviderTamperDetection: the hash files and signatures are the ones
// made at publishing, so a document changed in storage no longer matches
// them, and a consumer notices.
func TestProviderTamperDetection(t *testing.T) {
	t.Parallel()
	pe := newProviderEnv(t, store.SQLite)
	svc := advisory.NewService(tamperStore{pe.db.Advisory()}, pe.clock, advisory.Options{})
	h, err := advisory.NewProviderHandler(svc, pe.cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	fetch := func(base, path string) []byte {
		res, err := http.Get(base + path)
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return b
	}
	const f = "/.well-known/csaf/white/2026/steward-2026-0002.json"
	good, bad := fetch(pe.srv.URL, f), fetch(srv.URL, f)
	hashFile := string(fetch(srv.URL, f+".sha256"))
	sig := string(fetch(srv.URL, f+".asc"))
	if !strings.HasPrefix(hashFile, sum256(good)+"  ") || strings.HasPrefix(hashFile, sum256(bad)+"  ") {
		t.Fatal("the served hash file follows the stored bytes instead of the published digest")
	}
	if err := advisory.Verify(pe.keys[0].PublicKey, good, sig, pe.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if err := advisory.Verify(pe.keys[0].PublicKey, bad, sig, pe.clock.Now()); err == nil {
		t.Fatal("the signature verifies tampered bytes")
	}
}
