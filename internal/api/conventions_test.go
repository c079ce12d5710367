package api_test

import (
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/steward-iot/steward/internal/access"
	"github.com/steward-iot/steward/internal/store"
	"github.com/steward-iot/steward/internal/tenancy"
)

func TestBadInputGetsProblems(t *testing.T) {
	e := newEnv(t, store.SQLite)
	tok := e.tokens["acme"][admin]
	path := "/api/v1/orgs/acme/tokens"
	cases := []struct {
		name   string
		body   string
		header []string
		status int
		detail string // a fragment the detail must contain
		field  string // the field error expected, if any
	}{
		{"malformed JSON", `{"name": "x",`, nil, 400, "malformed JSON", ""},
		{"syntax error", `{"name" "x"}`, nil, 400, "malformed JSON at byte", ""},
		{"unknown field", `{"name":"x","role":"operator","rol":"admin"}`, nil, 400, "unknown field", "rol"},
		{"wrong type", `{"name":5,"role":"operator"}`, nil, 400, "must be a JSON string", "name"},
		{"not an object", `["name"]`, nil, 400, "must be a JSON object", ""},
		{"trailing data", `{"name":"x","role":"operator"} {}`, nil, 400, "after the JSON object", ""},
		{"empty body", ``, nil, 400, "body is empty", ""},
		{"unknown role", `{"name":"x","role":"root"}`, nil, 400, "unknown role", "role"},
		{"bad expiry", `{"name":"x","role":"operator","expires_in":"forever"}`, nil, 400, "not a duration", "expires_in"},
		{"too long expiry", `{"name":"x","role":"operator","expires_in":"99999h"}`, nil, 400, "not a duration", "expires_in"},
		{"control chars in name", `{"name":"a\u0000b","role":"operator"}`, nil, 400, "control characters", "name"},
		{"unknown user", `{"name":"x","role":"operator","user_id":"nope"}`, nil, 400, "not a user id", "user_id"},
		{"oversized", `{"name":"` + strings.Repeat("x", 70<<10) + `","role":"operator"}`, nil, 413, "limit", ""},
		{"wrong media type", `name=x`, []string{"Content-Type", "application/x-www-form-urlencoded"}, 415, "application/json", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := e.auditCounts()
			res := e.do("POST", path, tok, c.body, c.header...)
			if c.body == "" {
				res = e.do("POST", path, tok, nil)
			}
			if res.status != c.status {
				t.Fatalf("status %d, want %d: %s", res.status, c.status, res.body)
			}
			p := res.problem(t)
			if !strings.Contains(p.Detail, c.detail) {
				t.Fatalf("detail %q does not say %q", p.Detail, c.detail)
			}
			if c.field != "" && (len(p.Errors) != 1 || p.Errors[0].Field != c.field) {
				t.Fatalf("field errors %+v, want one for %q", p.Errors, c.field)
			}
			if after := e.auditCounts(); !maps.Equal(before, after) {
				t.Fatalf("bad input changed the audit log")
			}
		})
	}
}

func TestRoutingProblems(t *testing.T) {
	e := newEnv(t, store.SQLite)
	tok := e.tokens["acme"][admin]
	res := e.do("GET", "/api/v1/nope", tok, nil)
	if res.status != 404 || !strings.Contains(res.problem(t).Detail, "no such endpoint") {
		t.Fatalf("unknown path: %d %s", res.status, res.body)
	}
	res = e.do("PUT", "/api/v1/orgs", tok, nil)
	if res.status != 405 || res.header.Get("Allow") == "" {
		t.Fatalf("wrong method: %d allow=%q", res.status, res.header.Get("Allow"))
	}
	res.problem(t)
	res = e.do("GET", "/api/v1/orgs/acme/tokens/"+"0190b3c2-0000-7000-8000-000000000000", tok, nil)
	if res.status != 404 || !strings.Contains(res.problem(t).Detail, "not found") {
		t.Fatalf("unknown id: %d %s", res.status, res.body)
	}
	for _, q := range []string{"limit=0", "limit=501", "limit=x", "cursor=!!!", "cursor=Zm9v"} {
		res = e.do("GET", "/api/v1/orgs/acme/tokens?"+q, tok, nil)
		if res.status != 400 {
			t.Fatalf("?%s: %d, want 400", q, res.status)
		}
		res.problem(t)
	}
}

func TestAuthentication(t *testing.T) {
	e := newEnv(t, store.SQLite)
	path := "/api/v1/whoami"
	check := func(name string, res response, detail string) {
		t.Helper()
		if res.status != 401 || res.header.Get("WWW-Authenticate") == "" {
			t.Fatalf("%s: status %d, WWW-Authenticate %q", name, res.status, res.header.Get("WWW-Authenticate"))
		}
		if p := res.problem(t); !strings.Contains(p.Detail, detail) {
			t.Fatalf("%s: detail %q lacks %q", name, p.Detail, detail)
		}
	}
	check("no header", e.do("GET", path, "", nil), "needs an API token")
	check("basic auth", e.do("GET", path, "", nil, "Authorization", "Basic Zm9vOmJhcg=="), "Bearer")
	check("malformed", e.do("GET", path, "hunter2", nil), "malformed")
	check("unknown", e.do("GET", path, "stw_"+strings.Repeat("x", 43), nil), "not valid")

	// Revocation takes effect on the very next request.
	admin := e.principal(e.tokens["acme"][admin])
	tok, err := e.ten.CreateToken(t.Context(), admin, tenancy.CreateTokenRequest{Name: "short", Role: operator, ExpiresIn: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	if res := e.do("GET", path, tok.Secret, nil); res.status != 200 {
		t.Fatalf("fresh token: %d", res.status)
	}
	e.clock.Advance(time.Hour)
	check("expired", e.do("GET", path, tok.Secret, nil), "expired")

	tok2, _ := e.ten.CreateToken(t.Context(), admin, tenancy.CreateTokenRequest{Name: "self", Role: operator})
	if res := e.do("DELETE", "/api/v1/orgs/acme/tokens/"+tok2.ID, tok2.Secret, nil); res.status != 200 {
		t.Fatalf("self-revoke: %d %s", res.status, res.body)
	}
	check("revoked", e.do("GET", path, tok2.Secret, nil), "revoked")

	// A disabled person's tokens die with the account.
	u, _ := e.ten.CreateUser(t.Context(), admin, tenancy.CreateUserRequest{Email: "bo@example.com", Name: "Bo", Role: relmgr})
	ut, err := e.ten.CreateToken(t.Context(), admin, tenancy.CreateTokenRequest{Name: "bo", Role: relmgr, UserID: u.ID})
	if err != nil {
		t.Fatal(err)
	}
	if res := e.do("POST", "/api/v1/orgs/acme/users/"+u.ID+"/disable", e.tokens["acme"][access.RoleAdmin], nil); res.status != 200 {
		t.Fatalf("disable: %d %s", res.status, res.body)
	}
	check("disabled user", e.do("GET", path, ut.Secret, nil), "disabled")
}

func TestPagination(t *testing.T) {
	e := newEnv(t, store.SQLite)
	admin := e.principal(e.tokens["acme"][admin])
	for i := range 7 {
		if _, err := e.ten.CreateToken(t.Context(), admin, tenancy.CreateTokenRequest{Name: fmt.Sprint("p", i), Role: operator}); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	cursor, pages := "", 0
	for {
		var page struct {
			Items      []tenancy.Token `json:"items"`
			NextCursor string          `json:"next_cursor"`
		}
		e.do("GET", "/api/v1/orgs/acme/tokens?limit=3&cursor="+cursor, e.tokens["acme"][access.RoleAdmin], nil).json(t, &page)
		pages++
		for _, tk := range page.Items {
			if seen[tk.ID] {
				t.Fatalf("token %s on two pages", tk.ID)
			}
			seen[tk.ID] = true
		}
		if page.NextCursor == "" {
			break
		}
		if len(page.Items) != 3 || pages > 10 {
			t.Fatalf("page %d has %d items with a next cursor", pages, len(page.Items))
		}
		cursor = page.NextCursor
	}
	// 5 role tokens + 7 created.
	if len(seen) != 12 || pages != 4 {
		t.Fatalf("walked %d tokens in %d pages, want 12 in 4", len(seen), pages)
	}

	// The audit log pages newest first by sequence.
	var first, second struct {
		Items []struct {
			Seq    int64  `json:"seq"`
			Action string `json:"action"`
		} `json:"items"`
		NextCursor string `json:"next_cursor"`
	}
	e.do("GET", "/api/v1/orgs/acme/audit?limit=4&action=token.", e.tokens["acme"][access.RoleAdmin], nil).json(t, &first)
	e.do("GET", "/api/v1/orgs/acme/audit?limit=4&action=token.&cursor="+first.NextCursor, e.tokens["acme"][access.RoleAdmin], nil).json(t, &second)
	if len(first.Items) != 4 || len(second.Items) != 4 || second.Items[0].Seq >= first.Items[3].Seq {
		t.Fatalf("audit pages out of order: %+v / %+v", first, second)
	}
}

func TestIdempotencyKey(t *testing.T) {
	e := newEnv(t, store.SQLite)
	tok := e.tokens["acme"][admin]
	path := "/api/v1/orgs/acme/tokens"
	body := tenancy.CreateTokenRequest{Name: "deploy", Role: relmgr}
	first := e.do("POST", path, tok, body, "Idempotency-Key", "k-1")
	if first.status != 201 {
		t.Fatalf("first create: %d %s", first.status, first.body)
	}
	var created tenancy.CreatedToken
	first.json(t, &created)
	if created.Secret == "" {
		t.Fatal("first response lacks the secret")
	}
	again := e.do("POST", path, tok, body, "Idempotency-Key", "k-1")
	var replay tenancy.CreatedToken
	again.json(t, &replay)
	if again.status != 201 || again.header.Get("Idempotent-Replayed") != "true" || replay.ID != created.ID {
		t.Fatalf("retry was not a replay: %d %s", again.status, again.body)
	}
	if replay.Secret != "" || strings.Contains(string(again.body), created.Secret) {
		t.Fatal("a replayed response carried the secret: secrets must never be stored")
	}
	var list struct{ Items []tenancy.Token }
	e.do("GET", path, tok, nil).json(t, &list)
	n := 0
	for _, tk := range list.Items {
		if tk.Name == "deploy" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d tokens named deploy after a retried create, want 1", n)
	}
	if res := e.do("POST", path, tok, tenancy.CreateTokenRequest{Name: "other", Role: relmgr}, "Idempotency-Key", "k-1"); res.status != 422 {
		t.Fatalf("same key, different body: %d, want 422", res.status)
	}
	// A failed request releases its key: the corrected retry runs.
	if res := e.do("POST", path, tok, tenancy.CreateTokenRequest{Name: "x", Role: "root"}, "Idempotency-Key", "k-2"); res.status != 400 {
		t.Fatalf("bad request: %d", res.status)
	}
	if res := e.do("POST", path, tok, tenancy.CreateTokenRequest{Name: "x", Role: operator}, "Idempotency-Key", "k-2"); res.status != 201 {
		t.Fatalf("corrected retry with the same key: %d %s", res.status, res.body)
	}
	// Keys are per organization.
	if res := e.do("POST", "/api/v1/orgs/ops/tokens", e.tokens["ops"][admin], body, "Idempotency-Key", "k-1"); res.status != 201 || res.header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("another org's identical key was treated as a replay: %d", res.status)
	}
	if res := e.do("POST", path, tok, body, "Idempotency-Key", strings.Repeat("k", 256)); res.status != 400 {
		t.Fatalf("overlong key: %d", res.status)
	}
}

var update = flag.Bool("update", false, "rewrite docs/openapi.json from the route table")

// TestOpenAPIMatchesRoutes keeps the served document, the committed copy
// in docs/ and the ServeMux route table identical.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	e := newEnv(t, store.SQLite)
	res := e.do("GET", "/api/v1/openapi.json", "", nil)
	if res.status != 200 || string(res.body) != string(e.srv.OpenAPI()) {
		t.Fatalf("served document differs from the generated one (status %d)", res.status)
	}
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	res.json(t, &doc)
	if !strings.HasPrefix(doc.OpenAPI, "3.1") {
		t.Fatalf("openapi version %q", doc.OpenAPI)
	}
	var documented []string
	for path, methods := range doc.Paths {
		for m := range methods {
			documented = append(documented, strings.ToUpper(m)+" "+path)
		}
	}
	var routed []string
	for _, op := range e.srv.Operations() {
		routed = append(routed, op.Method+" "+op.Path)
		// Every documented route is really served (not a 404 from the mux).
		r := e.do(op.Method, strings.NewReplacer("{org}", "acme", "{id}", "x").Replace(op.Path), "", nil)
		if r.status == 404 && strings.Contains(string(r.body), "no such endpoint") {
			t.Errorf("documented route %s %s is not served", op.Method, op.Path)
		}
	}
	slices.Sort(documented)
	slices.Sort(routed)
	if !slices.Equal(documented, routed) {
		t.Fatalf("document and routes differ:\n doc: %v\n mux: %v", documented, routed)
	}
	golden := filepath.Join("..", "..", "docs", "openapi.json")
	if *update {
		if err := os.WriteFile(golden, e.srv.OpenAPI(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	committed, err := os.ReadFile(golden)
	if err != nil || string(committed) != string(e.srv.OpenAPI()) {
		t.Fatalf("docs/openapi.json is stale (%v): run go test ./internal/api -run TestOpenAPIMatchesRoutes -update", err)
	}
}

func TestOperationalEndpoints(t *testing.T) {
	e := newEnv(t, store.SQLite)
	if res := e.do("GET", "/healthz", "", nil); res.status != 200 {
		t.Fatalf("healthz: %d", res.status)
	}
	if res := e.do("GET", "/readyz", "", nil); res.status != 200 {
		t.Fatalf("readyz: %d %s", res.status, res.body)
	}
	e.do("GET", "/api/v1/orgs/acme/tokens", e.tokens["acme"][admin], nil)
	res := e.do("GET", "/metrics", "", nil)
	for _, want := range []string{
		`steward_http_requests_total{code="200",method="GET",route="GET /api/v1/orgs/{org}/tokens"} 1`,
		`steward_http_request_duration_seconds_bucket{method="GET",route="GET /api/v1/orgs/{org}/tokens"`,
	} {
		if !strings.Contains(string(res.body), want) {
			t.Fatalf("/metrics lacks %s", want)
		}
	}
	if res.header.Get("X-Request-Id") == "" {
		t.Fatal("no X-Request-Id")
	}
	// Readiness follows the database.
	e.db.Close()
	if res := e.do("GET", "/readyz", "", nil); res.status != 503 {
		t.Fatalf("readyz with a closed database: %d", res.status)
	}
}

// FuzzCreateToken throws arbitrary bodies at a create endpoint: every
// answer must be a 2xx or a 4xx problem, never a 500.
func FuzzCreateToken(f *testing.F) {
	for _, s := range []string{`{"name":"a","role":"operator"}`, `{"name":"a","role":"admin","expires_in":"1h"}`,
		`{"name":"a","role":"operator","user_id":"0190b3c2-0000-7000-8000-000000000000"}`, `{`, `null`, `[]`, `{"name":1e999}`, "\xff"} {
		f.Add(s)
	}
	e := newEnv(f, store.SQLite)
	f.Fuzz(func(t *testing.T, body string) {
		e.t = t
		res := e.do("POST", "/api/v1/orgs/acme/tokens", e.tokens["acme"][admin], body)
		if res.status >= 500 || (res.status >= 400 && res.header.Get("Content-Type") != "application/problem+json") {
			t.Fatalf("body %q: status %d %s", body, res.status, res.body)
		}
	})
}
