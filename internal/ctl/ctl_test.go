package ctl

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/steward-iot/steward/internal/access"
	"github.com/steward-iot/steward/internal/api"
	"github.com/steward-iot/steward/internal/audit"
	"github.com/steward-iot/steward/internal/blob"
	"github.com/steward-iot/steward/internal/clock"
	"github.com/steward-iot/steward/internal/config"
	"github.com/steward-iot/steward/internal/deviceapi"
	"github.com/steward-iot/steward/internal/identity"
	"github.com/steward-iot/steward/internal/inventory"
	"github.com/steward-iot/steward/internal/release"
	"github.com/steward-iot/steward/internal/rollout"
	"github.com/steward-iot/steward/internal/store"
	"github.com/steward-iot/steward/internal/store/storetest"
	"github.com/steward-iot/steward/internal/tenancy"
)

// maxTestArtifact is the test server's artifact size limit.
const maxTestArtifact = 32 << 20

// testServer is the real admin API over a fresh SQLite database and a
// blob folder, with the instance org "acme" and its bootstrap admin token.
type testServer struct {
	url      string
	secret   string
	ten      *tenancy.Service
	ident    *identity.Service
	checkins *inventory.Checkins
	serials  int // devices enrolled by pending

	mu   sync.Mutex
	seen []seenRequest
	// lostResponse makes every POST run twice, the client seeing only the
	// second response, as when a response is lost and the request retried.
	lostResponse bool
}

type seenRequest struct {
	method, path, query string
	header              http.Header
	contentLength       int64
}

func newTestServer(t *testing.T) *testServer {
	t.Helper()
	isolate(t)
	ctx := context.Background()
	db := storetest.New(t, store.SQLite, clock.Real)
	ten := tenancy.NewService(db.Tenancy(), clock.Real)
	_, secret, _, err := ten.Bootstrap(ctx, "acme", "Acme Corp")
	if err != nil {
		t.Fatal(err)
	}
	ident, err := identity.NewService(ctx, db.Identity(), clock.Real)
	if err != nil {
		t.Fatal(err)
	}
	inv := inventory.NewService(db.Inventory(), clock.Real)
	checkins := inventory.NewCheckins(db.Inventory(), clock.Real, inventory.CheckinConfig{}, nil)
	blobs, err := blob.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	rel := release.NewService(db.Release(), blobs, clock.Real, maxTestArtifact)
	deploy := rollout.NewService(db.Rollout(), clock.Real)
	devices := deviceapi.New(ident, checkins, clock.Real, nil)
	devices.SetStatusRecorder(deploy)
	srv, err := api.New(api.Deps{Tenancy: ten, Audit: audit.NewService(db.Audit()), Idempotency: db.Idempotency(),
		Inventory: inv, Identity: ident, Device: devices, Release: rel, Version: "test",
		Rollout: deploy})
	if err != nil {
		t.Fatal(err)
	}
	s := &testServer{secret: secret, ten: ten, ident: ident, checkins: checkins}
	h := srv.Handler()
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.seen = append(s.seen, seenRequest{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Clone(), r.ContentLength})
		lost := s.lostResponse
		s.mu.Unlock()
		if lost && r.Method == http.MethodPost {
			body, err := io.ReadAll(r.Body)
			if err != nil {
				t.Error(err)
				return
			}
			first := r.Clone(r.Context())
			first.Body = io.NopCloser(bytes.NewReader(body))
			h.ServeHTTP(httptest.NewRecorder(), first)
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(hs.Close)
	s.url = hs.URL
	return s
}

// requests returns the requests seen so far and forgets them.
func (s *testServer) requests() []seenRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.seen
	s.seen = nil
	return out
}

// isolate keeps the developer's environment and working directory (which
// might hold steward-data/admin.token) out of a test.
func isolate(t *testing.T) {
	t.Helper()
	for _, k := range []string{"STEWARD_SERVER", "STEWARD_TOKEN", "STEWARD_TOKEN_FILE"} {
		t.Setenv(k, "")
	}
	t.Chdir(t.TempDir())
}

type result struct {
	out, errOut string
	err         error
}

// runCtl runs `steward ctl args...` the way cmd/steward does: under a root
// that silences cobra's printing and binds flags to STEWARD_* variables,
// printing a returned error as "error: ...".
func runCtl(t *testing.T, args ...string) result {
	t.Helper()
	root := &cobra.Command{Use: "steward", SilenceUsage: true, SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error { return config.Bind(cmd, os.Getenv) }}
	root.AddCommand(Command())
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(append([]string{"ctl"}, args...))
	err := root.ExecuteContext(context.Background())
	if err != nil {
		fmt.Fprintln(&errOut, "error:", err)
	}
	return result{out.String(), errOut.String(), err}
}

// ctl runs ctl as the bootstrap admin.
func (s *testServer) ctl(t *testing.T, args ...string) result {
	t.Helper()
	return s.ctlAs(t, s.secret, args...)
}

func (s *testServer) ctlAs(t *testing.T, secret string, args ...string) result {
	t.Helper()
	return runCtl(t, append([]string{"--server", s.url, "--token", secret}, args...)...)
}

// ok fails the test unless r succeeded.
func ok(t *testing.T, r result) result {
	t.Helper()
	if r.err != nil {
		t.Fatalf("ctl failed: %v\nstdout:\n%s\nstderr:\n%s", r.err, r.out, r.errOut)
	}
	return r
}

// failed fails the test unless r failed with wantErr in its stderr.
func failed(t *testing.T, r result, wantErr string) {
	t.Helper()
	if r.err == nil {
		t.Fatalf("ctl succeeded, want error %q\nstdout:\n%s", wantErr, r.out)
	}
	if !strings.Contains(r.errOut, wantErr) {
		t.Fatalf("stderr = %q, want it to contain %q", r.errOut, wantErr)
	}
}

func contains(t *testing.T, got string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("output lacks %q:\n%s", w, got)
		}
	}
}

func decode[T any](t *testing.T, s string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("output is not the expected JSON: %v\n%s", err, s)
	}
	return v
}

// rowWith returns the table line that contains s.
func rowWith(t *testing.T, table, s string) string {
	t.Helper()
	for line := range strings.Lines(table) {
		if strings.Contains(line, s) {
			return line
		}
	}
	t.Fatalf("no row with %q in:\n%s", s, table)
	return ""
}

var secretRE = regexp.MustCompile(`stw_[A-Za-z0-9_-]{43}`)

func TestWhoami(t *testing.T) {
	s := newTestServer(t)
	r := ok(t, s.ctl(t, "whoami"))
	contains(t, r.out, "acme (Acme Corp), the instance organization", "bootstrap admin", "admin", "never")
	if r.errOut != "" {
		t.Errorf("stderr = %q, want nothing", r.errOut)
	}

	w := decode[api.Whoami](t, ok(t, s.ctl(t, "--json", "whoami")).out)
	if w.Org.Slug != "acme" || w.Token.Role != access.RoleAdmin {
		t.Errorf("whoami --json = %+v", w)
	}
}

func TestTokenLifecycle(t *testing.T) {
	s := newTestServer(t)
	r := ok(t, s.ctl(t, "tokens", "create", "--name", "ci pipeline", "--role", "operator", "--expires-in", "720h"))
	contains(t, r.out, "ci pipeline", "operator", "shown only once")
	secret := secretRE.FindString(r.out)
	if secret == "" {
		t.Fatalf("no secret in:\n%s", r.out)
	}
	ok(t, s.ctlAs(t, secret, "whoami"))

	contains(t, rowWith(t, ok(t, s.ctl(t, "tokens", "list")).out, "ci pipeline"), "operator", "active")
	var tok tenancy.Token
	for _, k := range decode[[]tenancy.Token](t, ok(t, s.ctl(t, "tokens", "list", "--json")).out) {
		if k.Name == "ci pipeline" {
			tok = k
		}
	}
	if tok.ExpiresAt == nil || time.Until(*tok.ExpiresAt) < 719*time.Hour || time.Until(*tok.ExpiresAt) > 720*time.Hour {
		t.Fatalf("token in list --json = %+v, want it expiring in 720h", tok)
	}

	r = ok(t, s.ctl(t, "tokens", "revoke", tok.ID))
	contains(t, r.out, "revoked token "+tok.ID+" (ci pipeline)")
	contains(t, rowWith(t, ok(t, s.ctl(t, "tokens", "list")).out, "ci pipeline"), "revoked")

	// The server's problem detail reaches the user.
	failed(t, s.ctlAs(t, secret, "whoami"), "error: Unauthorized (401): the bearer token was revoked at ")
}

func TestRevokeReportsEachToken(t *testing.T) {
	s := newTestServer(t)
	tok := decode[tenancy.CreatedToken](t, ok(t, s.ctl(t, "--json", "tokens", "create", "--name", "a", "--role", "auditor")).out)
	const missing = "01900000-0000-7000-8000-000000000000"

	r := s.ctl(t, "tokens", "revoke", tok.ID, missing)
	failed(t, r, "error: "+missing+": Not Found (404)")
	contains(t, r.out, "revoked token "+tok.ID)
	contains(t, r.errOut, "error: 1 of 2 tokens not revoked")

	r = s.ctl(t, "tokens", "revoke", tok.ID)
	failed(t, r, "error: "+tok.ID+": Conflict (409): token "+tok.ID+" was already revoked")
}

func TestRetriedCreateReportsLostSecret(t *testing.T) {
	s := newTestServer(t)
	s.mu.Lock()
	s.lostResponse = true
	s.mu.Unlock()
	r := s.ctl(t, "tokens", "create", "--name", "lost", "--role", "auditor")
	failed(t, r, "was created but the server did not return its secret; revoke it with 'steward ctl tokens revoke ")
	toks := decode[[]tenancy.Token](t, ok(t, s.ctl(t, "--json", "tokens", "list")).out)
	if len(toks) != 2 {
		t.Errorf("after a retried create there are %d tokens, want the bootstrap token and one more", len(toks))
	}
}

func TestForbiddenPrintsProblem(t *testing.T) {
	s := newTestServer(t)
	created := decode[tenancy.CreatedToken](t, ok(t, s.ctl(t, "--json", "tokens", "create", "--name", "auditor", "--role", "auditor")).out)
	if created.Secret == "" || created.Role != access.RoleAuditor {
		t.Fatalf("tokens create --json = %+v, want an auditor token with its secret", created)
	}
	ok(t, s.ctlAs(t, created.Secret, "tokens", "list"))

	r := s.ctlAs(t, created.Secret, "tokens", "create", "--name", "x", "--role", "operator")
	failed(t, r, "error: Forbidden (403): role auditor may not do token.write\n")
	if r.out != "" {
		t.Errorf("stdout = %q, want nothing", r.out)
	}
}

func TestUsers(t *testing.T) {
	s := newTestServer(t)
	ada := decode[tenancy.User](t, ok(t, s.ctl(t, "--json", "users", "create",
		"--email", "ada@example.com", "--name", "Ada Lovelace", "--role", "release-manager")).out)
	r := ok(t, s.ctl(t, "users", "create", "--email", "grace@example.com", "--name", "Grace Hopper", "--role", "auditor"))
	contains(t, r.out, "grace@example.com", "Grace Hopper", "auditor")

	contains(t, rowWith(t, ok(t, s.ctl(t, "users", "list")).out, "ada@example.com"), ada.ID, "Ada Lovelace", "release-manager")

	// A token acting for Ada dies with her account.
	tok := decode[tenancy.CreatedToken](t, ok(t, s.ctl(t, "--json", "tokens", "create",
		"--name", "ada laptop", "--role", "release-manager", "--user", ada.ID)).out)
	ok(t, s.ctlAs(t, tok.Secret, "whoami"))

	contains(t, ok(t, s.ctl(t, "users", "disable", ada.ID)).out, "disabled user "+ada.ID+" (ada@example.com)")
	for _, u := range decode[[]tenancy.User](t, ok(t, s.ctl(t, "--json", "users", "list")).out) {
		if (u.DisabledAt != nil) != (u.ID == ada.ID) {
			t.Errorf("user %s disabled_at = %v", u.Email, u.DisabledAt)
		}
	}
	failed(t, s.ctlAs(t, tok.Secret, "whoami"), "Unauthorized (401): the user this token acts for was disabled")
	failed(t, s.ctl(t, "users", "disable", ada.ID), "error: Conflict (409): user "+ada.ID+" was already disabled")
}

func TestFieldErrorPrintedOnce(t *testing.T) {
	s := newTestServer(t)
	r := s.ctl(t, "users", "create", "--email", "not an address", "--name", "X", "--role", "auditor")
	failed(t, r, `error: Bad Request (400): email: "not an address" is not a plain e-mail address`)
	if n := strings.Count(r.errOut, "is not a plain e-mail address"); n != 1 {
		t.Errorf("the field error is printed %d times:\n%s", n, r.errOut)
	}
}

func TestOrgs(t *testing.T) {
	s := newTestServer(t)
	r := ok(t, s.ctl(t, "orgs", "create", "beta", "--name", "Beta Ltd"))
	contains(t, r.out, "beta", "Beta Ltd", "admin token:", "shown only once")
	secret := secretRE.FindString(r.out)
	contains(t, ok(t, s.ctlAs(t, secret, "whoami")).out, "beta (Beta Ltd)")

	list := ok(t, s.ctl(t, "orgs", "list")).out
	contains(t, rowWith(t, list, "acme"), "Acme Corp", "yes")
	contains(t, rowWith(t, list, "beta"), "Beta Ltd", "no")
	if orgs := decode[[]tenancy.Org](t, ok(t, s.ctl(t, "orgs", "list", "--json")).out); len(orgs) != 2 {
		t.Errorf("orgs list --json = %+v, want 2 orgs", orgs)
	}
	contains(t, ok(t, s.ctl(t, "orgs", "show", "beta")).out, "Beta Ltd")

	// The new org's admin sees only its own org.
	if orgs := decode[[]tenancy.Org](t, ok(t, s.ctlAs(t, secret, "orgs", "list", "--json")).out); len(orgs) != 1 || orgs[0].Slug != "beta" {
		t.Errorf("beta's orgs list = %+v", orgs)
	}
	failed(t, s.ctlAs(t, secret, "orgs", "create", "gamma", "--name", "G"), "error: Forbidden (403)")
	failed(t, s.ctl(t, "orgs", "create", "Not A Slug", "--name", "X"), "error: Bad Request (400): slug:")
	failed(t, s.ctl(t, "orgs", "create", "delta"), `required flag(s) "name" not set`)
}

func TestAuditList(t *testing.T) {
	s := newTestServer(t)
	tok := decode[tenancy.CreatedToken](t, ok(t, s.ctl(t, "--json", "tokens", "create", "--name", "short-lived", "--role", "auditor")).out)
	ok(t, s.ctl(t, "tokens", "revoke", tok.ID))
	ok(t, s.ctl(t, "users", "create", "--email", "ada@example.com", "--name", "Ada", "--role", "auditor"))

	out := ok(t, s.ctl(t, "audit", "list", "--action", "token.")).out
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 {
		t.Fatalf("audit list --action token. =\n%s\nwant a header and 3 events", out)
	}
	contains(t, lines[0], "SEQ", "TIME", "ACTOR", "ACTION", "TARGET")
	contains(t, lines[1], "token bootstrap admin", "token.revoke", "token "+tok.ID)
	contains(t, lines[2], "token bootstrap admin", "token.create", "token "+tok.ID)
	contains(t, lines[3], "system bootstrap", "token.create")

	events := decode[[]audit.Event](t, ok(t, s.ctl(t, "--json", "audit", "list")).out)
	var actions []string
	for i, e := range events {
		if i > 0 && e.Seq >= events[i-1].Seq {
			t.Errorf("events not newest first: seq %d after %d", e.Seq, events[i-1].Seq)
		}
		actions = append(actions, e.Action)
	}
	want := []string{"user.create", "token.revoke", "token.create", "token.create", "org.create"}
	if strings.Join(actions, " ") != strings.Join(want, " ") {
		t.Errorf("actions = %v, want %v", actions, want)
	}
}

func TestPagination(t *testing.T) {
	s := newTestServer(t)
	defer func(n int) { pageSize = n }(pageSize)
	pageSize = 2
	ctx := context.Background()
	p, err := s.ten.Authenticate(ctx, s.secret)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"t1", "t2", "t3", "t4", "t5", "t6"} {
		if _, err := s.ten.CreateToken(ctx, p, tenancy.CreateTokenRequest{Name: name, Role: access.RoleAuditor}); err != nil {
			t.Fatal(err)
		}
	}
	s.requests()

	toks := decode[[]tenancy.Token](t, ok(t, s.ctl(t, "--org", "acme", "--json", "tokens", "list")).out)
	ids := map[string]bool{}
	for _, k := range toks {
		ids[k.ID] = true
	}
	if len(toks) != 7 || len(ids) != 7 {
		t.Errorf("tokens list --json returned %d tokens (%d distinct), want all 7", len(toks), len(ids))
	}
	if n := len(s.requests()); n != 4 {
		t.Errorf("listing 7 tokens 2 per page took %d requests, want 4", n)
	}

	out := ok(t, s.ctl(t, "tokens", "list")).out
	if n := strings.Count(out, "\n"); n != 8 {
		t.Errorf("tokens list printed %d lines, want a header and 7 rows:\n%s", n, out)
	}

	s.requests()
	if toks := decode[[]tenancy.Token](t, ok(t, s.ctl(t, "--org", "acme", "--json", "tokens", "list", "--limit", "3")).out); len(toks) != 3 {
		t.Errorf("tokens list --limit 3 returned %d tokens", len(toks))
	}
	var limits []string
	for _, r := range s.requests() {
		q, err := url.ParseQuery(r.query)
		if err != nil {
			t.Fatal(err)
		}
		limits = append(limits, "limit="+q.Get("limit"))
	}
	if strings.Join(limits, " ") != "limit=2 limit=1" {
		t.Errorf("--limit 3 sent %v, want limit=2 then limit=1", limits)
	}

	events := decode[[]audit.Event](t, ok(t, s.ctl(t, "--json", "audit", "list", "--limit", "5")).out)
	if len(events) != 5 || events[0].Seq != 8 || events[4].Seq != 4 {
		t.Errorf("audit list --limit 5 = %d events from seq %d, want seq 8 down to 4", len(events), events[0].Seq)
	}
}

func TestCreatesSendIdempotencyKey(t *testing.T) {
	s := newTestServer(t)
	ok(t, s.ctl(t, "tokens", "create", "--name", "a", "--role", "auditor"))
	ok(t, s.ctl(t, "tokens", "create", "--name", "b", "--role", "auditor"))
	keys := map[string]bool{}
	for _, r := range s.requests() {
		if got := r.header.Get("Authorization"); got != "Bearer "+s.secret {
			t.Errorf("%s %s: Authorization = %q", r.method, r.path, got)
		}
		if got := r.header.Get("User-Agent"); got != "steward-ctl" {
			t.Errorf("%s %s: User-Agent = %q", r.method, r.path, got)
		}
		if r.method == http.MethodPost {
			keys[r.header.Get("Idempotency-Key")] = true
		}
	}
	if len(keys) != 2 || keys[""] {
		t.Errorf("idempotency keys of two creates = %v, want two distinct keys", keys)
	}
}

func TestOrgFlag(t *testing.T) {
	s := newTestServer(t)
	ok(t, s.ctl(t, "--org", "acme", "users", "list"))
	for _, r := range s.requests() {
		if r.path == "/api/v1/whoami" {
			t.Error("with --org, ctl still asked whoami")
		}
	}
	failed(t, s.ctl(t, "--org", "other", "users", "list"), `error: Not Found (404): organization "other" not found`)
}

func TestTokenFromEnv(t *testing.T) {
	s := newTestServer(t)
	t.Setenv("STEWARD_SERVER", s.url)
	t.Setenv("STEWARD_TOKEN", s.secret)
	contains(t, ok(t, runCtl(t, "whoami")).out, "bootstrap admin")

	// --token beats STEWARD_TOKEN.
	failed(t, runCtl(t, "--token", "stw_wrong", "whoami"), "error: Unauthorized (401): the bearer token is malformed")
}

// Without steward's root binding flags to the environment, ctl still
// honours its documented variables.
func TestEnvWithoutStewardRoot(t *testing.T) {
	s := newTestServer(t)
	path := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(path, []byte(s.secret), 0o600); err != nil {
		t.Fatal(err)
	}
	whoami := func(via string) {
		t.Helper()
		cmd := Command()
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetArgs([]string{"whoami"})
		if err := cmd.ExecuteContext(context.Background()); err != nil {
			t.Fatalf("token from %s: %v", via, err)
		}
		contains(t, out.String(), "bootstrap admin")
	}
	t.Setenv("STEWARD_SERVER", s.url)
	t.Setenv("STEWARD_TOKEN_FILE", path)
	whoami("STEWARD_TOKEN_FILE")
	t.Setenv("STEWARD_TOKEN_FILE", "")
	t.Setenv("STEWARD_TOKEN", s.secret)
	whoami("STEWARD_TOKEN")
}

func TestTokenFromFile(t *testing.T) {
	s := newTestServer(t)
	dir := t.TempDir()
	private := filepath.Join(dir, "private.token")
	if err := os.WriteFile(private, []byte("  "+s.secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	r := ok(t, runCtl(t, "--server", s.url, "--token-file", private, "whoami"))
	contains(t, r.out, "bootstrap admin")
	if r.errOut != "" {
		t.Errorf("stderr = %q, want no warning for a 0600 file", r.errOut)
	}

	t.Setenv("STEWARD_TOKEN_FILE", private)
	ok(t, runCtl(t, "--server", s.url, "whoami"))

	// STEWARD_TOKEN beats any file.
	t.Setenv("STEWARD_TOKEN", "stw_wrong")
	failed(t, runCtl(t, "--server", s.url, "whoami"), "the bearer token is malformed")
	t.Setenv("STEWARD_TOKEN", "")
	t.Setenv("STEWARD_TOKEN_FILE", "")

	// The file `steward serve` writes, in the working directory.
	if err := os.Mkdir("steward-data", 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join("steward-data", "admin.token"), []byte(s.secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ok(t, runCtl(t, "--server", s.url, "whoami"))

	empty := filepath.Join(dir, "empty.token")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	failed(t, runCtl(t, "--server", s.url, "--token-file", empty, "whoami"), "is empty")
	failed(t, runCtl(t, "--server", s.url, "--token-file", filepath.Join(dir, "absent"), "whoami"), "token file:")
}

func TestTokenFileReadableByOthersWarns(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no POSIX permissions")
	}
	s := newTestServer(t)
	path := filepath.Join(t.TempDir(), "shared.token")
	if err := os.WriteFile(path, []byte(s.secret), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil { // Chmod: WriteFile's mode is subject to umask
		t.Fatal(err)
	}
	r := ok(t, runCtl(t, "--server", s.url, "--token-file", path, "whoami"))
	contains(t, r.errOut, "warning: token file "+path+" is readable by other users (mode 0644)", "chmod 600")
}

func TestMissingToken(t *testing.T) {
	s := newTestServer(t)
	r := runCtl(t, "--server", s.url, "whoami")
	failed(t, r, "error: no API token")
	contains(t, r.errOut, "--token", "STEWARD_TOKEN", "--token-file", "STEWARD_TOKEN_FILE", "./steward-data/admin.token")
	if n := len(s.requests()); n != 0 {
		t.Errorf("ctl without a token sent %d requests", n)
	}
}

func TestUnreachableServer(t *testing.T) {
	isolate(t)
	hs := httptest.NewServer(http.NotFoundHandler())
	addr := hs.URL
	hs.Close()
	r := runCtl(t, "--server", addr, "--token", "stw_anything", "whoami")
	failed(t, r, "error: the Steward server at "+addr+" is not reachable")
	contains(t, r.errOut, "steward serve")
}

func TestNonJSONResponses(t *testing.T) {
	isolate(t)
	for _, tc := range []struct {
		name    string
		status  int
		wantErr string
	}{
		{"proxy error", http.StatusBadGateway, "error: the server answered 502 Bad Gateway with text/html: <html>upstream down</html>"},
		{"not steward", http.StatusOK, "answered GET /api/v1/whoami with text/html instead of JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/html; charset=utf-8")
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte("<html>upstream down</html>\n"))
			}))
			defer hs.Close()
			failed(t, runCtl(t, "--server", hs.URL, "--token", "stw_anything", "whoami"), tc.wantErr)
		})
	}
}

func TestBadServerURL(t *testing.T) {
	isolate(t)
	failed(t, runCtl(t, "--server", "127.0.0.1:8080", "--token", "stw_x", "whoami"), "is not a server URL")
}

func TestLoopback(t *testing.T) {
	for host, want := range map[string]bool{"localhost": true, "127.0.0.1": true, "::1": true,
		"steward.example.com": false, "10.0.0.1": false} {
		if got := loopback(host); got != want {
			t.Errorf("loopback(%q) = %v, want %v", host, got, want)
		}
	}
}
