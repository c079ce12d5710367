package disclosure_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/steward-iot/steward/internal/access"
	"github.com/steward-iot/steward/internal/clock"
	"github.com/steward-iot/steward/internal/disclosure"
	"github.com/steward-iot/steward/internal/store"
	"github.com/steward-iot/steward/internal/store/storetest"
)

// web is an environment with the public handler in front of it.
type web struct {
	*env
	h http.Handler
}

func newWeb(t testing.TB, d store.Dialect, change ...func(*disclosure.Config)) *web {
	t.Helper()
	e := newEnv(t, d, change...)
	h, err := disclosure.NewHandler(e.svc, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &web{env: e, h: h}
}

type resp struct {
	*httptest.ResponseRecorder
	body string
}

// do sends a request; hdr are header name/value pairs, and the pseudo
// header "remote" sets the peer address.
func (w *web) do(method, path, body string, hdr ...string) resp {
	w.t.Helper()
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "remote" {
			r.RemoteAddr = hdr[i+1]
			continue
		}
		r.Header.Add(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	w.h.ServeHTTP(rec, r)
	return resp{rec, rec.Body.String()}
}

func (w *web) postJSON(path, body string, hdr ...string) resp {
	return w.do("POST", path, body, append([]string{"Content-Type", "application/json"}, hdr...)...)
}

func (w *web) postForm(path string, v url.Values, hdr ...string) resp {
	return w.do("POST", path, v.Encode(), append([]string{"Content-Type", "application/x-www-form-urlencoded"}, hdr...)...)
}

func bearer(tok string) []string { return []string{"Authorization", "Bearer " + tok} }

func (r resp) want(t testing.TB, status int, contentType string) {
	t.Helper()
	if r.Code != status {
		t.Fatalf("status %d, want %d: %s", r.Code, status, r.body)
	}
	if ct := r.Header().Get("Content-Type"); !strings.HasPrefix(ct, contentType) {
		t.Fatalf("Content-Type %q, want %q: %s", ct, contentType, r.body)
	}
}

// problem decodes an RFC 9457 document and checks its required members.
func (r resp) problem(t testing.TB, status int) disclosure.Problem {
	t.Helper()
	r.want(t, status, "application/problem+json")
	var p disclosure.Problem
	if err := json.Unmarshal([]byte(r.body), &p); err != nil {
		t.Fatalf("not a problem document: %v: %s", err, r.body)
	}
	if p.Type != "about:blank" || p.Status != status || p.Title != http.StatusText(status) || p.Detail == "" {
		t.Fatalf("problem document %+v", p)
	}
	return p
}

var tokenRE = regexp.MustCompile(`rpt_[A-Za-z0-9_-]{43}`)

const validReport = `{"title":"Auth bypass","description":"send X, get root","product":"gw","version":"2.1",
	"reporter_name":"Ana","reporter_email":"ana@example.org","credit_wanted":true,"language":"en"}`

// TestSecurityTxt parses the served file by RFC 9116's rules and compares
// it with the configuration.
func TestSecurityTxt(t *testing.T) {
	clk := clock.NewFake(t0)
	cfg := baseConfig()
	cfg.OrgID, cfg.Encryption, cfg.Hiring = "org", "openpgp4fpr:5f2de5521c63a801ab59ccb603d49de44b8a7f0b", "https://example.com/jobs"
	svc, err := disclosure.NewService(nil, clk, cfg, disclosure.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	h, err := disclosure.NewHandler(svc, nil)
	if err != nil {
		t.Fatal(err)
	}
	get := func() (map[string][]string, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/.well-known/security.txt", nil))
		if rec.Code != 200 || rec.Header().Get("Content-Type") != "text/plain; charset=utf-8" {
			t.Fatalf("security.txt: %d %q", rec.Code, rec.Header().Get("Content-Type"))
		}
		return parseSecurityTxt(t, rec.Body.String()), rec.Body.String()
	}
	fields, raw := get()
	want := map[string][]string{
		"contact":             {"https://updates.example.com/security/report", "mailto:security@example.com"},
		"expires":             {clk.Now().Add(180 * 24 * time.Hour).Truncate(time.Second).Format(time.RFC3339)},
		"encryption":          {cfg.Encryption},
		"acknowledgments":     {"https://example.com/thanks"},
		"preferred-languages": {"en, de"},
		"canonical":           {"https://updates.example.com/.well-known/security.txt"},
		"policy":              {"https://updates.example.com/security/policy"},
		"hiring":              {"https://example.com/jobs"},
	}
	for k, v := range want {
		if !slices.Equal(fields[k], v) {
			t.Fatalf("%s: got %q, want %q\n%s", k, fields[k], v, raw)
		}
	}
	if len(fields) != len(want) {
		t.Fatalf("unexpected fields: %v", fields)
	}
	// Months later the file is still valid: Expires moves with the clock.
	clk.Advance(300 * 24 * time.Hour)
	fields, _ = get()
	exp, _ := time.Parse(time.RFC3339, fields["expires"][0])
	if !exp.After(clk.Now()) || exp.After(clk.Now().AddDate(1, 0, 0)) {
		t.Fatalf("Expires %v is not within a year ahead of %v", exp, clk.Now())
	}

	// Optional fields are left out when unset; the form can be left out
	// of Contact when another contact exists.
	cfg = baseConfig()
	cfg.OrgID, cfg.OmitFormContact, cfg.Acknowledgments = "org", true, ""
	svc, _ = disclosure.NewService(nil, clk, cfg, disclosure.Deps{})
	out := parseSecurityTxt(t, disclosure.SecurityTxt(svc.Config(), clk.Now()))
	if !slices.Equal(out["contact"], []string{"mailto:security@example.com"}) || out["acknowledgments"] != nil || out["hiring"] != nil || out["encryption"] != nil {
		t.Fatalf("minimal security.txt: %v", out)
	}
}

var fieldNameRE = regexp.MustCompile(`^[A-Za-z0-9-]+$`)

// parseSecurityTxt applies RFC 9116 section 4's ABNF: lines end in
// optional CR + LF (never CR alone), each is empty, a comment, or
// "field-name: value" with a non-empty value; Expires appears once and is
// an RFC 3339 date-time; Contact at least once; Canonical and
// Preferred-Languages at most once. It returns values by lower-case name.
func parseSecurityTxt(t testing.TB, s string) map[string][]string {
	t.Helper()
	if !strings.HasSuffix(s, "\n") {
		t.Fatalf("the file does not end with a line end")
	}
	out := map[string][]string{}
	for i, line := range strings.Split(strings.TrimSuffix(s, "\n"), "\n") {
		line = strings.TrimSuffix(line, "\r")
		if strings.ContainsAny(line, "\r\x00") {
			t.Fatalf("line %d has a bare CR or NUL: %q", i+1, line)
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok || !fieldNameRE.MatchString(name) {
			t.Fatalf("line %d is not a field: %q", i+1, line)
		}
		value = strings.TrimLeft(value, " \t")
		if value == "" || strings.ContainsFunc(value, func(r rune) bool { return r < 0x20 && r != '\t' }) {
			t.Fatalf("line %d has an empty or unprintable value: %q", i+1, line)
		}
		out[strings.ToLower(name)] = append(out[strings.ToLower(name)], value)
	}
	if len(out["expires"]) != 1 {
		t.Fatalf("Expires must appear exactly once: %v", out["expires"])
	}
	if _, err := time.Parse(time.RFC3339, out["expires"][0]); err != nil {
		t.Fatalf("Expires: %v", err)
	}
	if len(out["contact"]) == 0 || len(out["canonical"]) > 1 || len(out["preferred-languages"]) > 1 {
		t.Fatalf("field counts: %v", out)
	}
	for _, c := range out["contact"] {
		if u, err := url.Parse(c); err != nil || (u.Scheme != "https" && u.Scheme != "mailto" && u.Scheme != "tel") {
			t.Fatalf("Contact %q is not an https, mailto or tel URI", c)
		}
	}
	return out
}

// TestConfigValidation: the public handler refuses a configuration that
// would publish a broken or insecure security.txt.
func TestConfigValidation(t *testing.T) {
	cases := map[string]func(*disclosure.Config){
		"no org":                  func(c *disclosure.Config) { c.OrgID = "" },
		"http base":               func(c *disclosure.Config) { c.BaseURL = "http://updates.example.com" },
		"base with path":          func(c *disclosure.Config) { c.BaseURL = "https://example.com/steward" },
		"no base":                 func(c *disclosure.Config) { c.BaseURL = "" },
		"no contact":              func(c *disclosure.Config) { c.Contacts, c.OmitFormContact = nil, true },
		"ftp contact":             func(c *disclosure.Config) { c.Contacts = []string{"ftp://example.com"} },
		"injected field":          func(c *disclosure.Config) { c.Contacts = []string{"mailto:a@example.com\nExpires: 1999"} },
		"bad mailto":              func(c *disclosure.Config) { c.Contacts = []string{"mailto:nobody"} },
		"http acknowledgments":    func(c *disclosure.Config) { c.Acknowledgments = "http://example.com/thanks" },
		"bad language":            func(c *disclosure.Config) { c.PreferredLanguages = []string{"en us"} },
		"validity over a year":    func(c *disclosure.Config) { c.Validity = 400 * 24 * time.Hour },
		"negative validity":       func(c *disclosure.Config) { c.Validity = -time.Hour },
		"org name on two lines":   func(c *disclosure.Config) { c.OrgName = "Acme\nContact: https://evil.example" },
		"bad proxy":               func(c *disclosure.Config) { c.TrustedProxies = []string{"proxy.local"} },
		"zero rate":               func(c *disclosure.Config) { c.ReportRate = disclosure.Rate{N: 0, Per: time.Hour} },
		"tiny body limit":         func(c *disclosure.Config) { c.MaxBody = 10 },
		"https contact sans host": func(c *disclosure.Config) { c.Contacts = []string{"https:///x"} },
	}
	for name, change := range cases {
		cfg := baseConfig()
		cfg.OrgID = "org"
		change(&cfg)
		svc, err := disclosure.NewService(nil, nil, cfg, disclosure.Deps{})
		if err != nil {
			continue // refused even earlier
		}
		if _, err := disclosure.NewHandler(svc, nil); err == nil {
			t.Errorf("%s: NewHandler accepted the configuration", name)
		}
	}
	cfg := baseConfig()
	cfg.OrgID, cfg.BaseURL, cfg.AllowHTTP = "org", "http://lab.local:8080/", true
	cfg.Contacts = append(cfg.Contacts, "tel:+49-30-1234", "http://lab.local/contact")
	cfg.TrustedProxies = []string{"10.0.0.0/8", "::1"}
	svc, _ := disclosure.NewService(nil, nil, cfg, disclosure.Deps{})
	if _, err := disclosure.NewHandler(svc, nil); err != nil {
		t.Fatalf("a lab configuration with AllowHTTP: %v", err)
	}
}

// TestPolicyPage: the promises come from the configuration and every
// configured text is escaped.
func TestPolicyPage(t *testing.T) {
	cfg := baseConfig()
	cfg.OrgID, cfg.OrgName = "org", `Acme <script>alert(1)</script> & Co`
	cfg.AckWithin, cfg.StatusUpdateEvery, cfg.DisclosureAfter = 72*time.Hour, 10*24*time.Hour, 120*24*time.Hour
	cfg.Scope = "Gateways <b>GW-1</b> and GW-2.\n\nNot: the \"marketing\" site."
	cfg.Contacts = []string{"mailto:security@example.com", "tel:+4930123"}
	cfg.Encryption = "https://example.com/key.asc"
	svc, _ := disclosure.NewService(nil, nil, cfg, disclosure.Deps{})
	h, err := disclosure.NewHandler(svc, nil)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/security/policy", nil))
	body := rec.Body.String()
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("policy: %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	for _, s := range []string{"within <strong>3 days</strong>", "every <strong>10 days</strong>", "within <strong>120 days</strong>",
		"Safe harbour", "Acme &lt;script&gt;alert(1)&lt;/script&gt; &amp; Co", "<p>Gateways &lt;b&gt;GW-1&lt;/b&gt; and GW-2.</p>",
		`href="tel:&#43;4930123"`, `href="mailto:security@example.com"`, `href="https://example.com/key.asc"`, `href="/security/report"`} {
		if !strings.Contains(body, s) {
			t.Fatalf("policy page lacks %q:\n%s", s, body)
		}
	}
	if strings.Contains(body, "<script>") || strings.Contains(body, "<b>GW-1") {
		t.Fatalf("policy page has unescaped configured text")
	}
	// The inline style is allowed by its hash, so the hash must be of the
	// bytes actually served.
	style := regexp.MustCompile(`(?s)<style>(.*?)</style>`).FindStringSubmatch(body)
	if style == nil {
		t.Fatal("no style element")
	}
	sum := sha256.Sum256([]byte(style[1]))
	if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") ||
		!strings.Contains(csp, "style-src 'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'") {
		t.Fatalf("CSP %q does not allow the served style", csp)
	}
	cfg.AckWithin = 48 * time.Hour
	svc, _ = disclosure.NewService(nil, nil, cfg, disclosure.Deps{})
	h, _ = disclosure.NewHandler(svc, nil)
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/security/policy", nil))
	if !strings.Contains(rec.Body.String(), "within <strong>48 hours</strong>") {
		t.Fatalf("48h policy text missing")
	}
}

// TestJSONReportFlow: submit, read status with the token, write, and the
// answers for a missing or wrong token.
func TestJSONReportFlow(t *testing.T) {
	t.Parallel()
	for _, d := range storetest.Dialects(t) {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			testJSONFlow(t, newWeb(t, d))
		})
	}
}

func testJSONFlow(t *testing.T, w *web) {
	res := w.postJSON("/api/v1/reports", validReport)
	res.want(t, http.StatusCreated, "application/json")
	if res.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("a receipt with a token must not be cached")
	}
	var rc disclosure.Receipt
	if err := json.Unmarshal([]byte(res.body), &rc); err != nil || !tokenRE.MatchString(rc.Token) || rc.Reference == "" {
		t.Fatalf("receipt %s: %v", res.body, err)
	}

	res = w.do("GET", "/api/v1/reports/status", "", bearer(rc.Token)...)
	res.want(t, http.StatusOK, "application/json")
	var st disclosure.ReporterStatus
	if err := json.Unmarshal([]byte(res.body), &st); err != nil || st.Reference != rc.Reference || st.Stage != disclosure.StageReceived ||
		st.Title != "Auth bypass" || st.AckDueAt == nil || st.Status == "" {
		t.Fatalf("status %s: %v", res.body, err)
	}

	res = w.postJSON("/api/v1/reports/messages", `{"body":"More detail: port 8443"}`, bearer(rc.Token)...)
	res.want(t, http.StatusCreated, "application/json")
	p := w.principal(w.org, access.RoleSecurityOfficer)
	if _, err := w.svc.Reply(context.Background(), p, rc.Reference, disclosure.ReplyRequest{Body: "Thanks!"}); err != nil {
		t.Fatal(err)
	}
	res = w.do("GET", "/api/v1/reports/status", "", "Authorization", "bearer "+rc.Token)
	if err := json.Unmarshal([]byte(res.body), &st); err != nil || len(st.Messages) != 2 || st.Messages[0].From != disclosure.AuthorReporter ||
		st.Messages[1].From != disclosure.AuthorTeam || st.Stage != disclosure.StageAcknowledged || st.NextUpdateDue == nil {
		t.Fatalf("status after messages: %s %v", res.body, err)
	}

	// Missing, malformed, wrong and URL-borne tokens: one identical answer.
	flipped := []byte(rc.Token)
	flipped[20] ^= 2
	var first string
	for i, hdr := range [][]string{nil, {"Authorization", "Basic " + rc.Token}, bearer("rpt_x"), bearer(string(flipped)), bearer("")} {
		for _, path := range []string{"/api/v1/reports/status", "/api/v1/reports/status?token=" + rc.Token} {
			res := w.do("GET", path, "", hdr...)
			pd := res.problem(t, http.StatusUnauthorized)
			if res.Header().Get("WWW-Authenticate") == "" {
				t.Fatalf("401 without WWW-Authenticate")
			}
			if first == "" {
				first = pd.Detail
			} else if pd.Detail != first {
				t.Fatalf("case %d answers differently: %q vs %q", i, pd.Detail, first)
			}
		}
		res := w.postJSON("/api/v1/reports/messages", `{"body":"x"}`, hdr...)
		if pd := res.problem(t, http.StatusUnauthorized); pd.Detail != first {
			t.Fatalf("message with a bad token answers differently: %q", pd.Detail)
		}
	}
	w.noSecrets(rc.Token)
}

// TestFormReportFlow: the HTML form, the token page, the status page and
// its reply box.
func TestFormReportFlow(t *testing.T) {
	t.Parallel()
	for _, d := range storetest.Dialects(t) {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			testFormFlow(t, newWeb(t, d))
		})
	}
}

func testFormFlow(t *testing.T, w *web) {
	res := w.do("GET", "/security/report", "")
	res.want(t, http.StatusOK, "text/html; charset=utf-8")
	for _, s := range []string{`name="title"`, `name="description"`, `name="homepage"`, `action="/security/report"`} {
		if !strings.Contains(res.body, s) {
			t.Fatalf("form lacks %s", s)
		}
	}
	res = w.postForm("/security/report", url.Values{"title": {"Default password"}, "description": {"admin/admin\nworks"},
		"product": {"GW-1"}, "reporter_email": {"ana@example.org"}, "credit_wanted": {"yes"}, "reporter_name": {"Ana"}})
	res.want(t, http.StatusOK, "text/html; charset=utf-8")
	tok := tokenRE.FindString(res.body)
	if tok == "" || !strings.Contains(res.body, "/security/report/status") || res.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("receipt page:\n%s", res.body)
	}
	if w.reportCount() != 1 {
		t.Fatal("the form stored no report")
	}

	res = w.do("GET", "/security/report/status", "")
	res.want(t, http.StatusOK, "text/html")
	res = w.postForm("/security/report/status", url.Values{"token": {tok}})
	res.want(t, http.StatusOK, "text/html")
	if !strings.Contains(res.body, "Default password") || !strings.Contains(res.body, "received") || !strings.Contains(res.body, `name="message"`) {
		t.Fatalf("status page:\n%s", res.body)
	}
	res = w.postForm("/security/report/status", url.Values{"token": {tok}, "message": {"Also affects GW-2"}})
	res.want(t, http.StatusOK, "text/html")
	if !strings.Contains(res.body, "Also affects GW-2") {
		t.Fatalf("the message is not shown:\n%s", res.body)
	}
	if got := w.notes.ofType(disclosure.NotifyReporterWrote); len(got) != 1 {
		t.Fatalf("team not notified of the form message")
	}
	// An over-long message is refused, the status still shown, and the
	// draft kept for the reporter to shorten.
	long := strings.Repeat("z", disclosure.MaxReporterMessage+1)
	res = w.postForm("/security/report/status", url.Values{"token": {tok}, "message": {long}})
	res.want(t, http.StatusBadRequest, "text/html")
	if !strings.Contains(res.body, "was not sent") || !strings.Contains(res.body, long) {
		t.Fatalf("over-long message page:\n%.500s", res.body)
	}

	var first string
	for _, bad := range []url.Values{{}, {"token": {""}}, {"token": {"rpt_nope"}}, {"token": {flip(tok)}},
		{"token": {flip(tok)}, "message": {"hi"}}} {
		res = w.postForm("/security/report/status", bad)
		res.want(t, http.StatusNotFound, "text/html")
		if first == "" {
			first = res.body
		} else if res.body != first {
			t.Fatalf("bad tokens get different pages")
		}
	}
	w.noSecrets(tok)
}

// TestXSS: script in every field comes back escaped on every page that
// shows it, to the reporter and after a team reply.
func TestXSS(t *testing.T) {
	w := newWeb(t, store.SQLite)
	payload := `<script>alert("x")</script><img src=x onerror=alert(1)>"'`
	res := w.postForm("/security/report", url.Values{"title": {"T " + payload}, "description": {"D " + payload}, "product": {payload},
		"version": {payload}, "reporter_name": {payload}, "credit_name": {payload}})
	res.want(t, http.StatusOK, "text/html")
	tok := tokenRE.FindString(res.body)
	var ref string
	if err := w.db.Read(context.Background(), func(tx *store.Tx) error {
		rs, err := tx.ListReports(context.Background(), w.org.ID, "", "", 1)
		if len(rs) == 1 {
			ref = rs[0].ID
		}
		return err
	}); err != nil || ref == "" {
		t.Fatalf("report not stored: %v", err)
	}
	if _, err := w.svc.Reply(context.Background(), w.principal(w.org, access.RoleAdmin), ref, disclosure.ReplyRequest{Body: "R " + payload}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.svc.AddReporterMessage(context.Background(), w.org.ID, tok, disclosure.MessageRequest{Body: "M " + payload}); err != nil {
		t.Fatal(err)
	}
	res = w.postForm("/security/report/status", url.Values{"token": {tok}})
	res.want(t, http.StatusOK, "text/html")
	noRawPayload(t, res.body)
	for _, s := range []string{"T &lt;script&gt;", "R &lt;script&gt;", "M &lt;script&gt;"} {
		if !strings.Contains(res.body, s) {
			t.Fatalf("status page lacks escaped %q", s)
		}
	}
	// A refused form is shown again with the values, escaped.
	res = w.postForm("/security/report", url.Values{"title": {payload}, "reporter_email": {payload}})
	res.want(t, http.StatusBadRequest, "text/html")
	noRawPayload(t, res.body)
	if !strings.Contains(res.body, `value="&lt;script&gt;alert(&#34;x&#34;)`) {
		t.Fatalf("the form does not keep the (escaped) title:\n%s", res.body)
	}
	// The JSON API returns JSON, which is never sniffed as HTML.
	res = w.do("GET", "/api/v1/reports/status", "", bearer(tok)...)
	if res.Header().Get("X-Content-Type-Options") != "nosniff" || strings.Contains(res.body, "<script>") {
		t.Fatalf("JSON status: %s %s", res.Header(), res.body)
	}
}

func noRawPayload(t *testing.T, body string) {
	t.Helper()
	// The pages have no script or image of their own, so any is injected.
	for _, s := range []string{"<script", "<img"} {
		if strings.Contains(body, s) {
			t.Fatalf("unescaped %q in page:\n%s", s, body)
		}
	}
}

// flip changes one character of a token.
func flip(tok string) string {
	b := []byte(tok)
	if b[10] == 'A' {
		b[10] = 'B'
	} else {
		b[10] = 'A'
	}
	return string(b)
}

// TestHoneypot: a filled honeypot gets a receipt indistinguishable from a
// real one, and nothing is stored or notified.
func TestHoneypot(t *testing.T) {
	w := newWeb(t, store.SQLite)
	res := w.postForm("/security/report", url.Values{"title": {"Buy pills"}, "description": {"spam"}, "homepage": {"http://spam.example"}})
	res.want(t, http.StatusOK, "text/html")
	tok := tokenRE.FindString(res.body)
	if tok == "" || !strings.Contains(res.body, "copy it now") {
		t.Fatalf("decoy receipt:\n%s", res.body)
	}
	if n := w.reportCount(); n != 0 {
		t.Fatalf("the honeypot report was stored (%d)", n)
	}
	if len(w.notes.ofType(disclosure.NotifyReceived)) != 0 {
		t.Fatalf("the honeypot report was notified")
	}
	w.postForm("/security/report/status", url.Values{"token": {tok}}).want(t, http.StatusNotFound, "text/html")
}

// TestRateLimits: per-client token buckets answer 429 with Retry-After,
// refill with time, refund refused input, and trust X-Forwarded-For only
// from configured proxies.
func TestRateLimits(t *testing.T) {
	w := newWeb(t, store.SQLite, func(c *disclosure.Config) {
		c.ReportRate = disclosure.Rate{N: 2, Per: time.Hour}
		c.StatusRate = disclosure.Rate{N: 3, Per: time.Hour}
		c.MessageRate = disclosure.Rate{N: 1, Per: time.Hour}
		c.TrustedProxies = []string{"10.0.0.0/8"}
	})
	// Refused input costs nothing.
	for range 5 {
		w.postJSON("/api/v1/reports", `{"title":"x"}`).problem(t, http.StatusBadRequest)
	}
	var tok string
	for range 2 {
		res := w.postJSON("/api/v1/reports", validReport)
		res.want(t, http.StatusCreated, "application/json")
		tok = tokenRE.FindString(res.body)
	}
	res := w.postJSON("/api/v1/reports", validReport)
	res.problem(t, http.StatusTooManyRequests)
	if ra := res.Header().Get("Retry-After"); ra != "1800" { // one report per 30 minutes
		t.Fatalf("Retry-After %q, want 1800", ra)
	}
	res = w.postForm("/security/report", url.Values{"title": {"t"}, "description": {"d"}})
	res.want(t, http.StatusTooManyRequests, "text/html")
	if res.Header().Get("Retry-After") == "" {
		t.Fatal("HTML 429 without Retry-After")
	}
	// Another address is not affected; X-Forwarded-For from a stranger is ignored.
	w.postJSON("/api/v1/reports", validReport, "remote", "198.51.100.7:5000").want(t, http.StatusCreated, "application/json")
	w.postJSON("/api/v1/reports", validReport, "X-Forwarded-For", "203.0.113.99").problem(t, http.StatusTooManyRequests)
	// Through a trusted proxy each client has its own bucket, and what a
	// client writes into X-Forwarded-For itself does not help it.
	viaProxy := func(xff string) resp {
		return w.postJSON("/api/v1/reports", validReport, "remote", "10.1.2.3:443", "X-Forwarded-For", xff)
	}
	viaProxy("203.0.113.5").want(t, http.StatusCreated, "application/json")
	viaProxy("1.1.1.1, 203.0.113.5").want(t, http.StatusCreated, "application/json")
	viaProxy("9.9.9.9, 203.0.113.5, 10.0.0.7").problem(t, http.StatusTooManyRequests)
	viaProxy("203.0.113.6").want(t, http.StatusCreated, "application/json")

	w.clk.Advance(30 * time.Minute)
	w.postJSON("/api/v1/reports", validReport).want(t, http.StatusCreated, "application/json")
	w.postJSON("/api/v1/reports", validReport).problem(t, http.StatusTooManyRequests)

	// Status reads are limited whether or not the token is right, so
	// guessing costs as much as reading.
	w.do("GET", "/api/v1/reports/status", "", bearer(tok)...).want(t, http.StatusOK, "application/json")
	w.do("GET", "/api/v1/reports/status", "", bearer("rpt_guess")...).problem(t, http.StatusUnauthorized)
	w.postForm("/security/report/status", url.Values{"token": {tok}}).want(t, http.StatusOK, "text/html")
	w.do("GET", "/api/v1/reports/status", "", bearer(tok)...).problem(t, http.StatusTooManyRequests)
	w.postJSON("/api/v1/reports/messages", `{"body":"one"}`, bearer(tok)...).want(t, http.StatusCreated, "application/json")
	w.postJSON("/api/v1/reports/messages", `{"body":"two"}`, bearer(tok)...).problem(t, http.StatusTooManyRequests)
	// IPv6 clients are counted per /64.
	w.do("GET", "/api/v1/reports/status", "", append(bearer(tok), "remote", "[2001:db8:1:2::1]:1")...).want(t, http.StatusOK, "application/json")
	w.do("GET", "/api/v1/reports/status", "", append(bearer(tok), "remote", "[2001:db8:1:2::2]:1")...).want(t, http.StatusOK, "application/json")
	w.do("GET", "/api/v1/reports/status", "", append(bearer(tok), "remote", "[2001:db8:1:2:ffff::3]:1")...).want(t, http.StatusOK, "application/json")
	w.do("GET", "/api/v1/reports/status", "", append(bearer(tok), "remote", "[2001:db8:1:2::4]:1")...).problem(t, http.StatusTooManyRequests)
	w.do("GET", "/api/v1/reports/status", "", append(bearer(tok), "remote", "[2001:db8:1:3::1]:1")...).want(t, http.StatusOK, "application/json")
}

// TestBadRequests: size, media type and JSON errors are RFC 9457
// problems on the API and error pages on the form, never 5xx.
func TestBadRequests(t *testing.T) {
	w := newWeb(t, store.SQLite, func(c *disclosure.Config) { c.ReportRate = disclosure.Rate{N: 1000, Per: time.Hour} })
	huge := `{"title":"t","description":"` + strings.Repeat("a", disclosure.DefaultMaxBody) + `"}`
	cases := []struct {
		name   string
		ct     string
		body   string
		status int
		detail string
		field  string
	}{
		{"oversized", "application/json", huge, 413, "limit", ""},
		{"text/plain", "text/plain", validReport, 415, "application/json", ""},
		{"form to the API", "application/x-www-form-urlencoded", "title=x", 415, "application/json", ""},
		{"no content type", "", validReport, 415, "application/json", ""},
		{"malformed", "application/json", `{"title":"x",`, 400, "malformed JSON", ""},
		{"syntax", "application/json", `{"title" "x"}`, 400, "malformed JSON at byte", ""},
		{"unknown field", "application/json", `{"title":"x","description":"y","admin":true}`, 400, "unknown field", "admin"},
		{"wrong type", "application/json", `{"title":5,"description":"y"}`, 400, "wrong JSON type", "title"},
		{"array", "application/json", `[1]`, 400, "JSON object", ""},
		{"trailing", "application/json", `{"title":"x","description":"y"} {}`, 400, "after the JSON object", ""},
		{"empty", "application/json", ``, 400, "empty", ""},
		{"long description", "application/json", `{"title":"t","description":"` + strings.Repeat("a", disclosure.MaxDescription+1) + `"}`, 400, "limit", "description"},
		{"missing title", "application/json", `{"description":"y"}`, 400, "required", "title"},
		{"json with charset", "application/json; charset=utf-8", validReport, 201, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var hdr []string
			if c.ct != "" {
				hdr = []string{"Content-Type", c.ct}
			}
			res := w.do("POST", "/api/v1/reports", c.body, hdr...)
			if c.status == 201 {
				res.want(t, 201, "application/json")
				return
			}
			p := res.problem(t, c.status)
			if !strings.Contains(p.Detail, c.detail) {
				t.Fatalf("detail %q lacks %q", p.Detail, c.detail)
			}
			if c.field != "" && (len(p.Errors) == 0 || p.Errors[0].Field != c.field) {
				t.Fatalf("errors %+v do not name %s", p.Errors, c.field)
			}
		})
	}
	// A body with no declared length is cut off at the limit too.
	r := httptest.NewRequest("POST", "/api/v1/reports", strings.NewReader(huge))
	r.ContentLength = -1
	r.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	w.h.ServeHTTP(rec, r)
	resp{rec, rec.Body.String()}.problem(t, 413)

	// The form: 413 and 415 as error pages.
	w.do("POST", "/security/report", "title="+strings.Repeat("a", disclosure.DefaultMaxBody), "Content-Type", "application/x-www-form-urlencoded").
		want(t, 413, "text/html")
	w.do("POST", "/security/report", validReport, "Content-Type", "application/json").want(t, 415, "text/html")
	w.do("POST", "/security/report", "--x\r\n", "Content-Type", "multipart/form-data; boundary=x").want(t, 415, "text/html")
	w.do("POST", "/security/report", "title=%zz", "Content-Type", "application/x-www-form-urlencoded").want(t, 400, "text/html")
	w.do("POST", "/api/v1/reports/messages", `{"body":"x"}`, "Content-Type", "text/plain").problem(t, 415)

	// Mounted at a prefix, unknown paths and methods are problems too.
	w.do("GET", "/security/nothing", "").problem(t, 404)
	res := w.do("DELETE", "/api/v1/reports", "")
	res.problem(t, 405)
	if res.Header().Get("Allow") == "" {
		t.Fatal("405 without Allow")
	}
	if n := w.reportCount(); n != 1 {
		t.Fatalf("%d reports stored, want the one valid case", n)
	}
}

// TestRoutes: every advertised pattern is served by the handler.
func TestRoutes(t *testing.T) {
	w := newWeb(t, store.SQLite)
	for _, rt := range disclosure.Routes() {
		method, path, _ := strings.Cut(rt, " ")
		res := w.do(method, path, "")
		if res.Code == 404 && strings.Contains(res.body, "no such endpoint") || res.Code == 405 || res.Code >= 500 {
			t.Fatalf("%s: %d %s", rt, res.Code, res.body)
		}
	}
	if len(disclosure.Routes()) != 9 {
		t.Fatalf("routes: %v", disclosure.Routes())
	}
}
