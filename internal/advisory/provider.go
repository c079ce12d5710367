package advisory

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/steward-iot/steward/internal/problem"
)

// ProviderConfig configures the public CSAF distribution of one
// publishing organization.
type ProviderConfig struct {
	// OrgID is the organization whose TLP:WHITE advisories are served.
	OrgID string
	// BaseURL is the https origin the handler is reachable at, e.g.
	// https://steward.example.com (no path: CSAF wants /.well-known at the
	// root of the domain).
	BaseURL string
	// Publisher is written into provider-metadata.json; it should match
	// the advisories' publisher.
	Publisher Publisher
	// ListOnAggregators and MirrorOnAggregators are the provider's
	// consent to CSAF aggregators listing and mirroring its documents.
	ListOnAggregators   bool
	MirrorOnAggregators bool
	// AllowHTTP permits an http BaseURL, for labs and the embedded
	// default: CSAF requires https, and csaf_checker refuses anything else.
	AllowHTTP bool
}

// MetadataURL is the provider-metadata.json URL, for the CSAF: line of
// security.txt.
func (c ProviderConfig) MetadataURL() string {
	return strings.TrimSuffix(c.BaseURL, "/") + "/.well-known/csaf/provider-metadata.json"
}

// Routes are the patterns to mount the provider handler at.
func Routes() []string {
	return []string{"GET /.well-known/csaf/", "GET /advisories/"}
}

const (
	wellKnown = "/.well-known/csaf"
	rolieTerm = "urn:ietf:params:rolie:category:information-type"
	// Latest versions change in place when an update is published;
	// caches may keep them a few minutes and revalidate with the ETag.
	cacheControl = "public, max-age=300"
)

// NewProviderHandler serves, for cfg.OrgID, a CSAF 2.0 trusted provider
// (sections 7.1.1–7.1.20) with directory-based and ROLIE distribution of
// the latest version of every published TLP:WHITE advisory, in both
// profiles, with hashes and signatures beside each document, plus an HTML
// page per advisory. Mount it at Routes().
//
//	/.well-known/csaf/provider-metadata.json
//	/.well-known/csaf/service.json                        ROLIE service document
//	/.well-known/csaf/openpgp/<FINGERPRINT>.asc            public keys (retired ones too)
//	/.well-known/csaf/white/index.txt, changes.csv
//	/.well-known/csaf/white/csaf-feed-tlp-white.json       ROLIE feed
//	/.well-known/csaf/white/category-white.json            ROLIE category document
//	/.well-known/csaf/white/<year>/<file>.json{,.sha256,.sha512,.asc}
//	/advisories/, /advisories/<file stem>                   HTML
//
// Every folder answers with an HTML listing of links.
func NewProviderHandler(svc *Service, cfg ProviderConfig) (http.Handler, error) {
	u, err := url.Parse(cfg.BaseURL)
	httpsOK := u != nil && (u.Scheme == "https" || u.Scheme == "http" && cfg.AllowHTTP)
	if err != nil || !httpsOK || u.Host == "" || strings.Trim(u.Path, "/") != "" || u.RawQuery != "" {
		return nil, fmt.Errorf("CSAF provider base URL %q must be an https origin such as https://steward.example.com", cfg.BaseURL)
	}
	if cfg.OrgID == "" {
		return nil, errors.New("CSAF provider: no organization")
	}
	var e fieldErrors
	e.text("publisher.name", &cfg.Publisher.Name, true, maxShort)
	e.url("publisher.namespace", &cfg.Publisher.Namespace, true)
	e.oneOf("publisher.category", &cfg.Publisher.Category, "vendor", publisherCategories)
	if err := e.err("CSAF provider publisher"); err != nil {
		return nil, err
	}
	h := &provider{svc: svc, cfg: cfg, base: u.Scheme + "://" + u.Host, log: svc.log}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+wellKnown+"/{$}", h.root)
	mux.HandleFunc("GET "+wellKnown+"/{name}", h.rootFile)
	mux.HandleFunc("GET "+wellKnown+"/openpgp/{$}", h.keyListing)
	mux.HandleFunc("GET "+wellKnown+"/openpgp/{file}", h.key)
	mux.HandleFunc("GET "+wellKnown+"/{tlp}/{$}", h.tlpListing)
	mux.HandleFunc("GET "+wellKnown+"/{tlp}/{file}", h.tlpFile)
	mux.HandleFunc("GET "+wellKnown+"/{tlp}/{year}/{$}", h.yearListing)
	mux.HandleFunc("GET "+wellKnown+"/{tlp}/{year}/{file}", h.document)
	mux.HandleFunc("GET /advisories/{$}", h.pageIndex)
	mux.HandleFunc("GET /advisories/{name}", h.page)
	h.mux = mux
	return h, nil
}

type provider struct {
	svc  *Service
	cfg  ProviderConfig
	base string
	log  *slog.Logger
	mux  *http.ServeMux
}

func (h *provider) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// tlpFolder is the served TLP folder name.
var tlpFolder = strings.ToLower(PublicTLP)

func (h *provider) url(path string) string { return h.base + wellKnown + "/" + path }

func (h *provider) feedURL() string {
	return h.url(tlpFolder + "/csaf-feed-tlp-" + tlpFolder + ".json")
}

// snapshot is what the listings are made of: the latest public documents
// (newest first) and every key.
type snapshot struct {
	docs    []Document
	keys    []SigningKey
	updated time.Time
}

func (h *provider) load(ctx context.Context) (snapshot, error) {
	var s snapshot
	err := h.svc.store.Read(ctx, func(tx Tx) error {
		var err error
		if s.docs, err = tx.PublishedDocuments(ctx, h.cfg.OrgID, PublicTLP); err != nil {
			return err
		}
		s.keys, err = tx.SigningKeys(ctx, h.cfg.OrgID)
		return err
	})
	slices.SortStableFunc(s.docs, func(a, b Document) int {
		if c := b.ReleasedAt.Compare(a.ReleasedAt); c != 0 {
			return c
		}
		if c := strings.Compare(a.AdvisoryID, b.AdvisoryID); c != 0 {
			return c
		}
		return strings.Compare(string(a.Profile), string(b.Profile)) // the advisory before its VEX
	})
	// The epoch, not "now", when nothing exists yet: every replica must
	// serve the same bytes (the checker compares hashes across URLs).
	s.updated = time.Unix(0, 0).UTC()
	for _, d := range s.docs {
		s.updated = latest(s.updated, d.ReleasedAt)
	}
	for _, k := range s.keys {
		s.updated = latest(s.updated, k.CreatedAt)
		if k.RetiredAt != nil {
			s.updated = latest(s.updated, *k.RetiredAt)
		}
	}
	return s, err
}

func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// serve answers with body, an ETag and Last-Modified; http.ServeContent
// handles conditional and HEAD requests.
func serve(w http.ResponseWriter, r *http.Request, body []byte, contentType, etag string, modified time.Time) {
	if etag == "" {
		sum := sha256.Sum256(body)
		etag = hex.EncodeToString(sum[:])
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("ETag", `"`+etag+`"`)
	w.Header().Set("Cache-Control", cacheControl)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	http.ServeContent(w, r, "", modified.Truncate(time.Second), bytes.NewReader(body))
}

func (h *provider) fail(w http.ResponseWriter, r *http.Request, err error) {
	if problem.Is(err, problem.KindNotFound) {
		http.NotFound(w, r)
		return
	}
	h.log.Error("CSAF provider", "path", r.URL.Path, "err", err)
	http.Error(w, "internal error", http.StatusInternalServerError)
}

func (h *provider) root(w http.ResponseWriter, r *http.Request) {
	s, err := h.load(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.listing(w, r, wellKnown+"/", []link{{"provider-metadata.json", ""}, {"service.json", ""}, {"openpgp/", ""}, {tlpFolder + "/", ""}}, s.updated)
}

// rootFile serves the files at the top of /.well-known/csaf/, and sends a
// folder name without its slash to the folder.
func (h *provider) rootFile(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	switch name {
	case "provider-metadata.json":
		h.providerMetadata(w, r)
	case "service.json":
		h.serviceDocument(w, r)
	case "openpgp", tlpFolder:
		http.Redirect(w, r, wellKnown+"/"+name+"/", http.StatusMovedPermanently)
	default:
		http.NotFound(w, r)
	}
}

type (
	pmdKey struct {
		Fingerprint string `json:"fingerprint"`
		URL         string `json:"url"`
	}
	pmdFeed struct {
		Summary  string `json:"summary"`
		TLPLabel string `json:"tlp_label"`
		URL      string `json:"url"`
	}
	pmdRolie struct {
		Categories []string  `json:"categories"`
		Feeds      []pmdFeed `json:"feeds"`
		Services   []string  `json:"services"`
	}
	pmdDistribution struct {
		DirectoryURL string    `json:"directory_url,omitempty"`
		Rolie        *pmdRolie `json:"rolie,omitempty"`
	}
	providerMetadata struct {
		CanonicalURL        string            `json:"canonical_url"`
		Distributions       []pmdDistribution `json:"distributions"`
		LastUpdated         string            `json:"last_updated"`
		ListOnAggregators   bool              `json:"list_on_CSAF_aggregators"`
		MetadataVersion     string            `json:"metadata_version"`
		MirrorOnAggregators bool              `json:"mirror_on_CSAF_aggregators"`
		PublicOpenPGPKeys   []pmdKey          `json:"public_openpgp_keys,omitempty"`
		Publisher           csafPublisher     `json:"publisher"`
		Role                string            `json:"role"`
	}
)

// metadata is provider-metadata.json (CSAF 2.0 section 7.1.7).
func (h *provider) metadata(s snapshot) ([]byte, error) {
	pub := h.cfg.Publisher
	pmd := providerMetadata{
		CanonicalURL: h.cfg.MetadataURL(),
		Distributions: []pmdDistribution{
			{DirectoryURL: h.url(tlpFolder + "/")},
			{Rolie: &pmdRolie{
				Categories: []string{h.url(tlpFolder + "/category-" + tlpFolder + ".json")},
				Feeds:      []pmdFeed{{Summary: "TLP:" + PublicTLP + " advisories", TLPLabel: PublicTLP, URL: h.feedURL()}},
				Services:   []string{h.url("service.json")},
			}},
		},
		LastUpdated:         csafTime(s.updated),
		ListOnAggregators:   h.cfg.ListOnAggregators,
		MetadataVersion:     "2.0",
		MirrorOnAggregators: h.cfg.MirrorOnAggregators,
		Publisher: csafPublisher{Category: pub.Category, ContactDetails: pub.ContactDetails, IssuingAuthority: pub.IssuingAuthority,
			Name: pub.Name, Namespace: pub.Namespace},
		Role: "csaf_trusted_provider",
	}
	for _, k := range s.keys {
		pmd.PublicOpenPGPKeys = append(pmd.PublicOpenPGPKeys, pmdKey{Fingerprint: k.Fingerprint, URL: h.url("openpgp/" + k.Fingerprint + ".asc")})
	}
	b, _, err := canonicalJSON(pmd)
	return b, err
}

func (h *provider) providerMetadata(w http.ResponseWriter, r *http.Request) {
	s, err := h.load(r.Context())
	if err == nil {
		var b []byte
		if b, err = h.metadata(s); err == nil {
			serve(w, r, b, "application/json", "", s.updated)
			return
		}
	}
	h.fail(w, r, err)
}

type rolieCategory struct {
	Scheme string `json:"scheme,omitempty"`
	Term   string `json:"term"`
}

var csafCategory = []rolieCategory{{Scheme: rolieTerm, Term: "csaf"}}

// serviceDocument is the ROLIE service document (7.1.16).
func (h *provider) serviceDocument(w http.ResponseWriter, r *http.Request) {
	s, err := h.load(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	type collection struct {
		Title      string `json:"title"`
		HRef       string `json:"href"`
		Categories struct {
			Category []rolieCategory `json:"category"`
		} `json:"categories"`
	}
	c := collection{Title: h.cfg.Publisher.Name + " CSAF advisories (TLP:" + PublicTLP + ")", HRef: h.feedURL()}
	c.Categories.Category = csafCategory
	doc := map[string]any{"service": map[string]any{"workspace": []any{
		map[string]any{"title": h.cfg.Publisher.Name + " CSAF feeds", "collection": []collection{c}},
	}}}
	b, _, err := canonicalJSON(doc)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	serve(w, r, b, "application/json", "", s.updated)
}

func (h *provider) keyListing(w http.ResponseWriter, r *http.Request) {
	s, err := h.load(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	links := []link{{"../", ""}}
	for _, k := range s.keys {
		note := "signing key"
		if k.RetiredAt != nil {
			note = "retired " + csafTime(*k.RetiredAt)
		}
		links = append(links, link{k.Fingerprint + ".asc", note})
	}
	h.listing(w, r, wellKnown+"/openpgp/", links, s.updated)
}

func (h *provider) key(w http.ResponseWriter, r *http.Request) {
	fp, ok := strings.CutSuffix(r.PathValue("file"), ".asc")
	if !ok {
		http.NotFound(w, r)
		return
	}
	s, err := h.load(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	for _, k := range s.keys {
		if strings.EqualFold(k.Fingerprint, fp) {
			serve(w, r, []byte(k.PublicKey), "application/pgp-keys", "", k.CreatedAt)
			return
		}
	}
	http.NotFound(w, r)
}

// publicTLP checks the {tlp} path segment: only the public folder exists.
func publicTLP(w http.ResponseWriter, r *http.Request) bool {
	if r.PathValue("tlp") != tlpFolder {
		http.NotFound(w, r)
		return false
	}
	return true
}

func (h *provider) tlpListing(w http.ResponseWriter, r *http.Request) {
	if !publicTLP(w, r) {
		return
	}
	s, err := h.load(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	links := []link{{"../", ""}, {"index.txt", ""}, {"changes.csv", ""},
		{"csaf-feed-tlp-" + tlpFolder + ".json", "ROLIE feed"}, {"category-" + tlpFolder + ".json", "ROLIE category document"}}
	var years []string
	for _, d := range s.docs {
		y := strconv.Itoa(d.InitialReleaseDate.UTC().Year()) + "/"
		if !slices.Contains(years, y) {
			years = append(years, y)
		}
	}
	slices.Sort(years)
	for _, y := range years {
		links = append(links, link{y, ""})
	}
	h.listing(w, r, wellKnown+"/"+tlpFolder+"/", links, s.updated)
}

// tlpFile serves index.txt (7.1.12), changes.csv (7.1.13), the ROLIE feed
// (7.1.15) and category document (7.1.17), and sends a year folder
// without its slash to the folder.
func (h *provider) tlpFile(w http.ResponseWriter, r *http.Request) {
	if !publicTLP(w, r) {
		return
	}
	s, err := h.load(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	name := r.PathValue("file")
	prefix := tlpFolder + "/"
	switch name {
	case "index.txt":
		var b strings.Builder
		for _, d := range s.docs {
			b.WriteString(strings.TrimPrefix(d.Path, prefix) + "\n")
		}
		serve(w, r, []byte(b.String()), "text/plain; charset=utf-8", "", s.updated)
	case "changes.csv":
		var b strings.Builder
		for _, d := range s.docs { // newest first
			// encoding/csv quotes only when it must; the spec's example
			// quotes both fields, so the line is written by hand.
			b.WriteString(csvQuote(strings.TrimPrefix(d.Path, prefix)) + "," + csvQuote(csafTime(d.ReleasedAt)) + "\n")
		}
		serve(w, r, []byte(b.String()), "text/csv; charset=utf-8", "", s.updated)
	case "csaf-feed-tlp-" + tlpFolder + ".json":
		b, err := h.feed(s)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		serve(w, r, b, "application/json", "", s.updated)
	case "category-" + tlpFolder + ".json":
		b, _, err := canonicalJSON(h.categories(s))
		if err != nil {
			h.fail(w, r, err)
			return
		}
		serve(w, r, b, "application/json", "", s.updated)
	default:
		if _, err := strconv.Atoi(name); err == nil {
			http.Redirect(w, r, wellKnown+"/"+tlpFolder+"/"+name+"/", http.StatusMovedPermanently)
			return
		}
		http.NotFound(w, r)
	}
}

// categories is the ROLIE category document (7.1.17): the information
// type, and the CSAF profiles the feed holds so that clients can pick VEX
// documents or advisories.
func (h *provider) categories(s snapshot) any {
	cats := append([]rolieCategory{}, csafCategory...)
	var profiles []string
	for _, d := range s.docs {
		if !slices.Contains(profiles, string(d.Profile)) {
			profiles = append(profiles, string(d.Profile))
		}
	}
	slices.Sort(profiles)
	for _, p := range profiles {
		cats = append(cats, rolieCategory{Term: p})
	}
	return map[string]any{"categories": map[string]any{"category": cats}}
}

type (
	rolieLink struct {
		Rel  string `json:"rel"`
		HRef string `json:"href"`
	}
	rolieEntry struct {
		ID        string      `json:"id"`
		Title     string      `json:"title"`
		Link      []rolieLink `json:"link"`
		Published string      `json:"published"`
		Updated   string      `json:"updated"`
		Summary   *struct {
			Content string `json:"content"`
		} `json:"summary,omitempty"`
		Content struct {
			Type string `json:"type"`
			Src  string `json:"src"`
		} `json:"content"`
		Format struct {
			Schema  string `json:"schema"`
			Version string `json:"version"`
		} `json:"format"`
	}
)

// feed is the ROLIE feed of the public documents, newest first.
func (h *provider) feed(s snapshot) ([]byte, error) {
	entries := []rolieEntry{}
	for _, d := range s.docs {
		u := h.url(d.Path)
		e := rolieEntry{ID: d.TrackingID, Title: d.Title, Published: csafTime(d.InitialReleaseDate), Updated: csafTime(d.ReleasedAt),
			Link: []rolieLink{{"self", u}, {"hash", u + ".sha256"}, {"hash", u + ".sha512"}, {"signature", u + ".asc"}}}
		e.Content.Type, e.Content.Src = "application/json", u
		e.Format.Schema, e.Format.Version = "https://docs.oasis-open.org/csaf/csaf/v2.0/csaf_json_schema.json", "2.0"
		entries = append(entries, e)
	}
	feed := map[string]any{"feed": map[string]any{
		"id":       "csaf-feed-tlp-" + tlpFolder,
		"title":    h.cfg.Publisher.Name + " CSAF feed (TLP:" + PublicTLP + ")",
		"link":     []rolieLink{{"self", h.feedURL()}},
		"category": csafCategory,
		"updated":  csafTime(s.updated),
		"entry":    entries,
	}}
	b, _, err := canonicalJSON(feed)
	return b, err
}

func (h *provider) yearListing(w http.ResponseWriter, r *http.Request) {
	if !publicTLP(w, r) {
		return
	}
	s, err := h.load(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	dir := tlpFolder + "/" + r.PathValue("year") + "/"
	links := []link{{"../", ""}}
	var files []string
	for _, d := range s.docs {
		if name, ok := strings.CutPrefix(d.Path, dir); ok {
			files = append(files, name)
		}
	}
	if len(files) == 0 {
		http.NotFound(w, r)
		return
	}
	slices.Sort(files)
	for _, f := range files {
		links = append(links, link{f, ""}, link{f + ".sha256", ""}, link{f + ".sha512", ""}, link{f + ".asc", ""})
	}
	h.listing(w, r, wellKnown+"/"+dir, links, s.updated)
}

// document serves a CSAF document and the hash and signature files
// beside it (7.1.18, 7.1.19).
func (h *provider) document(w http.ResponseWriter, r *http.Request) {
	if !publicTLP(w, r) {
		return
	}
	file := r.PathValue("file")
	name, ext := file, ""
	for _, x := range []string{".sha256", ".sha512", ".asc"} {
		if n, ok := strings.CutSuffix(file, x); ok {
			name, ext = n, x
			break
		}
	}
	if !strings.HasSuffix(name, ".json") {
		http.NotFound(w, r)
		return
	}
	var d Document
	err := h.svc.store.Read(r.Context(), func(tx Tx) error {
		var err error
		d, err = tx.PublishedDocument(r.Context(), h.cfg.OrgID, PublicTLP, name)
		return err
	})
	if err == nil && d.Path != tlpFolder+"/"+r.PathValue("year")+"/"+name {
		err = problem.NotFound("no such document") // the right file in the wrong year folder
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	switch ext {
	case "":
		serve(w, r, d.Data, "application/json", d.SHA256, d.ReleasedAt)
	case ".sha256":
		serve(w, r, []byte(d.SHA256+"  "+d.FileName+"\n"), "text/plain; charset=utf-8", "", d.ReleasedAt)
	case ".sha512":
		serve(w, r, []byte(d.SHA512+"  "+d.FileName+"\n"), "text/plain; charset=utf-8", "", d.ReleasedAt)
	case ".asc":
		serve(w, r, []byte(d.Signature), "application/pgp-signature", "", d.ReleasedAt)
	}
}

func csvQuote(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
