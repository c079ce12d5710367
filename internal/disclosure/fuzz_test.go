package disclosure_test

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/steward-iot/steward/internal/disclosure"
	"github.com/steward-iot/steward/internal/store"
)

// fuzzWeb is a handler on SQLite with limits high enough that the fuzzer
// reaches the code behind them.
func fuzzWeb(f *testing.F) *web {
	return newWeb(f, store.SQLite, func(c *disclosure.Config) {
		many := disclosure.Rate{N: 1 << 30, Per: time.Second}
		c.ReportRate, c.StatusRate, c.MessageRate = many, many, many
		c.MaxBody = 8 << 10
	})
}

// FuzzFormHandler: whatever arrives at the form endpoints — any body, any
// content type — the answer is never a 5xx and never a panic, and every
// HTML answer carries the CSP.
func FuzzFormHandler(f *testing.F) {
	w := fuzzWeb(f)
	form := "application/x-www-form-urlencoded"
	for _, s := range []struct{ ct, body string }{
		{form, "title=t&description=d"},
		{form, "title=%3Cscript%3E&description=%00%FF%C0%80&reporter_email=a%40b.c&credit_wanted=yes&language=en"},
		{form, "title=t&description=d&homepage=x"},
		{form, "title=" + strings.Repeat("a", 300) + "&description=d&reporter_email=%22x%22%40y"},
		{form, "title=%zz"},
		{form, "token=rpt_AAAA&message=hi"},
		{form + "; charset=latin1", "title=t&description=d&title=u"},
		{"multipart/form-data; boundary=x", "--x--"},
		{"", "title=t"},
		{"application/json", `{"title":"t"}`},
		{"text/html; charset", "a"},
	} {
		f.Add(s.ct, s.body, false)
		f.Add(s.ct, s.body, true)
	}
	f.Fuzz(func(t *testing.T, ct, body string, status bool) {
		path := "/security/report"
		if status {
			path = "/security/report/status"
		}
		r := httptest.NewRequest("POST", path, strings.NewReader(body))
		if ct != "" {
			r.Header.Set("Content-Type", ct)
		}
		rec := httptest.NewRecorder()
		w.h.ServeHTTP(rec, r)
		if rec.Code >= 500 {
			t.Fatalf("%s %q %q: %d %s", path, ct, body, rec.Code, rec.Body.String())
		}
		if strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") && rec.Header().Get("Content-Security-Policy") == "" {
			t.Fatalf("HTML without CSP")
		}
	})
}

// FuzzReportAPI: the JSON endpoint answers any body with a 201 or a 4xx
// problem, never a 5xx.
func FuzzReportAPI(f *testing.F) {
	w := fuzzWeb(f)
	for _, s := range []string{validReport, `{"title":"\u0000","description":"\u202e"}`, `{`, `[]`, `{"title":"t","description":"d","x":1}`, "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		rec := httptest.NewRecorder()
		r := httptest.NewRequest("POST", "/api/v1/reports", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		w.h.ServeHTTP(rec, r)
		if rec.Code >= 500 || (rec.Code != 201 && rec.Header().Get("Content-Type") != "application/problem+json") {
			t.Fatalf("%q: %d %s", body, rec.Code, rec.Body.String())
		}
	})
}
