package main

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/steward-iot/steward/internal/store"
	"github.com/steward-iot/steward/internal/store/storetest"
)

// The test binary doubles as the steward binary, so the serve test runs
// the real main() in a child process it can SIGTERM.
func TestMain(m *testing.M) {
	if os.Getenv("STEWARD_TEST_RUN_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

type serveProc struct {
	cmd   *exec.Cmd
	addr  string
	lines chan string
	log   *bytes.Buffer
}

func startServe(t *testing.T, data string, env ...string) *serveProc {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "steward.yaml")
	if err := os.WriteFile(cfg, []byte("log-format: json\naddr: 127.0.0.1:0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "serve", "--data", data, "--config", cfg)
	cmd.Env = append(os.Environ(), append(env, "STEWARD_TEST_RUN_MAIN=1")...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &serveProc{cmd: cmd, lines: make(chan string, 100), log: &bytes.Buffer{}}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
	}()
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	deadline := time.After(30 * time.Second)
	for p.addr == "" {
		select {
		case l, ok := <-p.lines:
			if !ok {
				t.Fatalf("steward serve exited early:\n%s", p.log)
			}
			p.log.WriteString(l + "\n")
			var rec map[string]any
			if json.Unmarshal([]byte(l), &rec) != nil {
				t.Fatalf("log line is not JSON (--log-format from the config file was ignored): %s", l)
			}
			if rec["msg"] == "serving" {
				p.addr = rec["addr"].(string)
			}
		case <-deadline:
			t.Fatalf("steward serve did not start:\n%s", p.log)
		}
	}
	return p
}

// stop sends SIGTERM and waits for a clean exit.
func (p *serveProc) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for l := range p.lines {
		p.log.WriteString(l + "\n")
	}
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("steward serve exited with %v after SIGTERM:\n%s", err, p.log)
	}
	if !strings.Contains(p.log.String(), `"msg":"stopped"`) {
		t.Fatalf("no graceful stop in the log:\n%s", p.log)
	}
}

func get(t *testing.T, url, token string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}

// TestServeZeroSetup runs `steward serve` on the embedded default, with
// settings from an env var and a config file, and checks bootstrap, the
// token file, readiness, the API and graceful shutdown on SIGTERM.
func TestServeZeroSetup(t *testing.T) {
	data := filepath.Join(t.TempDir(), "steward-data")
	p := startServe(t, data, "STEWARD_BOOTSTRAP_ORG=from-env")

	tokenFile := filepath.Join(data, "admin.token")
	fi, err := os.Stat(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("admin.token mode %v, want 0600", fi.Mode().Perm())
	}
	raw, _ := os.ReadFile(tokenFile)
	token := strings.TrimSpace(string(raw))
	if !strings.HasPrefix(token, "stw_") {
		t.Fatalf("admin.token holds %q", token)
	}
	if strings.Contains(p.log.String(), token) {
		t.Fatal("the admin token appeared in the log")
	}
	if !strings.Contains(p.log.String(), tokenFile) {
		t.Fatalf("the log does not name the token file:\n%s", p.log)
	}
	for _, db := range []string{"steward.db", "blobs"} {
		if _, err := os.Stat(filepath.Join(data, db)); err != nil {
			t.Fatalf("data folder lacks %s: %v", db, err)
		}
	}
	if code, body := get(t, "http://"+p.addr+"/readyz", ""); code != 200 {
		t.Fatalf("readyz: %d %s", code, body)
	}
	code, body := get(t, "http://"+p.addr+"/api/v1/whoami", token)
	if code != 200 || !strings.Contains(string(body), `"slug":"from-env"`) {
		t.Fatalf("whoami: %d %s", code, body)
	}
	code, body = get(t, "http://"+p.addr+"/metrics", "")
	for _, want := range []string{`go_sql_open_connections{db_name="writer"}`, `steward_http_requests_total{code="200",method="GET",route="GET /api/v1/whoami"} 1`} {
		if code != 200 || !strings.Contains(string(body), want) {
			t.Fatalf("/metrics lacks %s", want)
		}
	}
	p.stop(t)

	// A restart keeps the store and does not bootstrap again.
	p = startServe(t, data)
	if again, _ := os.ReadFile(tokenFile); string(again) != string(raw) {
		t.Fatal("a restart rewrote admin.token")
	}
	if code, _ := get(t, "http://"+p.addr+"/api/v1/whoami", token); code != 200 {
		t.Fatalf("token after restart: %d", code)
	}
	p.stop(t)
}

// TestAuditVerifyCommand tampers with a stored audit row and expects
// `steward audit verify` to fail naming that event.
func TestAuditVerifyCommand(t *testing.T) {
	data := t.TempDir()
	if _, err := run(t, "migrate", "--data", data); err != nil {
		t.Fatal(err)
	}
	if _, err := run(t, "admin-token", "--data", data, "--org", "nope"); err == nil {
		t.Fatal("admin-token for a missing org succeeded")
	}
	// Bootstrap through the server package path: serve would, so use the
	// break-glass command against a bootstrapped store.
	p := startServe(t, data)
	p.stop(t)
	for range 3 {
		if out, err := run(t, "admin-token", "--data", data, "--org", "steward"); err != nil || !strings.Contains(out, "stw_") {
			t.Fatalf("admin-token: %v %s", err, out)
		}
	}
	out, err := run(t, "audit", "verify", "--data", data)
	if err != nil || !strings.Contains(out, "ok: 1 chains, 5 events") {
		t.Fatalf("verify on an intact log: %v\n%s", err, out)
	}
	db, err := sql.Open("sqlite", filepath.Join(data, "steward.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE audit_events SET details = '{"name":"innocent"}' WHERE seq = 3`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	out, err = run(t, "audit", "verify", "--data", data)
	if err == nil || !strings.Contains(out, "BROKEN") || !strings.Contains(out, "event #3") || !strings.Contains(out, "altered") {
		t.Fatalf("verify on a tampered log: %v\n%s", err, out)
	}
	if _, err := run(t, "audit", "verify", "--data", t.TempDir()); err == nil || !strings.Contains(err.Error(), "no Steward database") {
		t.Fatalf("verify on an empty folder: %v", err)
	}
}

// TestMigratePostgres runs `steward migrate` and `audit verify` against
// PostgreSQL through --db and STEWARD_DB.
func TestMigratePostgres(t *testing.T) {
	for _, d := range storetest.Dialects(t) {
		if d != store.Postgres {
			continue
		}
		dsn := storetest.DSN(t, d)
		if out, err := run(t, "migrate", "--db", dsn); err != nil || !strings.Contains(out, "schema is at version") {
			t.Fatalf("migrate --db: %v %s", err, out)
		}
		t.Setenv("STEWARD_DB", dsn)
		if out, err := run(t, "audit", "verify"); err != nil || !strings.Contains(out, "ok: 0 chains") {
			t.Fatalf("audit verify via STEWARD_DB: %v %s", err, out)
		}
	}
}

// TestCtlIgnoresStrayEnv: a variable named like a ctl subcommand flag must
// not change the command.
func TestCtlIgnoresStrayEnv(t *testing.T) {
	t.Setenv("STEWARD_ROLE", "admin")
	t.Setenv("STEWARD_SERVER", "http://127.0.0.1:1")
	t.Setenv("STEWARD_TOKEN", "stw_"+strings.Repeat("a", 43))
	_, err := run(t, "ctl", "tokens", "create", "--name", "x")
	if err == nil || strings.Contains(err.Error(), "not reachable") {
		t.Fatalf("ctl took --role from STEWARD_ROLE (err %v)", err)
	}
}
