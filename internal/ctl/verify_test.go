package ctl

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/steward-iot/steward/internal/release"
	"github.com/steward-iot/steward/internal/server"
	"github.com/steward-iot/steward/internal/tlog"
)

// logServer is a whole Steward server (release log and TUF repository
// wired as in production) on a SQLite file the test can also open to
// tamper with, behind a hook that can rewrite any answer.
type logServer struct {
	*testServer
	db *sql.DB
	// Two releases of product gw: r1 (1.0.0, two artifacts), r2 (1.1.0).
	r1, r2 release.Release

	mu   sync.Mutex
	hook func(w http.ResponseWriter, r *http.Request, next http.Handler) bool
}

func newLogServer(t *testing.T) *logServer {
	t.Helper()
	isolate(t)
	cfg := server.Config{Data: t.TempDir(), BootstrapOrg: "acme", Version: "test"}
	srv, err := server.New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	tok, err := os.ReadFile(cfg.TokenFile())
	if err != nil {
		t.Fatal(err)
	}
	ls := &logServer{testServer: &testServer{secret: strings.TrimSpace(string(tok))}}
	h := srv.Handler()
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ls.mu.Lock()
		hook := ls.hook
		ls.mu.Unlock()
		if hook == nil || !hook(w, r, h) {
			h.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(hs.Close)
	ls.url = hs.URL
	if ls.db, err = sql.Open("sqlite", cfg.DSN()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ls.db.Close() })

	ls.newProduct(t)
	img1, _, _ := randomFile(t, "fw.img", 4096, 11)
	extra, _, _ := randomFile(t, "extra.img", 2048, 12)
	img2, _, _ := randomFile(t, "fw2.img", 4096, 13)
	ls.r1 = decode[release.Release](t, ok(t, ls.ctl(t, "--json", "releases", "create", "--product", "gw", "--version", "1.0.0",
		"--artifact", img1, "--artifact", extra)).out)
	ls.r2 = decode[release.Release](t, ok(t, ls.ctl(t, "--json", "releases", "create", "--product", "gw", "--version", "1.1.0",
		"--artifact", img2)).out)
	return ls
}

func (ls *logServer) setHook(h func(w http.ResponseWriter, r *http.Request, next http.Handler) bool) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	ls.hook = h
}

// exec runs SQL against the server's database, behind its back.
func (ls *logServer) exec(t *testing.T, q string, args ...any) {
	t.Helper()
	res, err := ls.db.Exec(q, args...)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("%s changed %d rows, want 1", q, n)
	}
}

// logKey returns the log key as `releases log-key` prints it.
func (ls *logServer) logKey(t *testing.T) string {
	t.Helper()
	r := ok(t, ls.ctl(t, "releases", "log-key"))
	contains(t, r.errOut, "Check it against a copy obtained independently")
	return strings.TrimSpace(r.out)
}

// index returns the log index of a release's entry.
func (ls *logServer) index(t *testing.T, r release.Release) int64 {
	t.Helper()
	_, b := fetchURL(t, fmt.Sprintf("%s/tlog/acme/lookup?product=%s&release_counter=%d", ls.url, r.Product, r.Counter))
	var found tlog.LookupResponse
	if err := json.Unmarshal(b, &found); err != nil || len(found.Indexes) != 1 {
		t.Fatalf("lookup of %s: %s", r.Version, b)
	}
	return found.Indexes[0]
}

func fetchURL(t *testing.T, url string) (int, []byte) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(res.Body)
	return res.StatusCode, b.Bytes()
}

// record runs r through next with its URL replaced by target and returns
// what it answered.
func record(r *http.Request, next http.Handler, target string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	r2 := httptest.NewRequestWithContext(r.Context(), http.MethodGet, target, nil)
	next.ServeHTTP(rec, r2)
	return rec
}

func TestVerifyRelease(t *testing.T) {
	ls := newLogServer(t)
	key := ls.logKey(t)
	if v, err := note.NewVerifier(key); err != nil || !strings.HasPrefix(v.Name(), "steward-tlog/acme/") {
		t.Fatalf("log-key printed %q: %v", key, err)
	}
	keyFile := filepath.Join(t.TempDir(), "log.key")
	if err := os.WriteFile(keyFile, []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(t.TempDir(), "checkpoint")

	r := ok(t, ls.ctl(t, "releases", "verify", ls.r1.ID, "--log-key", key, "--state", state))
	contains(t, r.out, "gw 1.0.0, release counter 1, 2 artifacts", "(key pinned)", "signature valid",
		"first checkpoint of this log, saved to "+state, "matches the release", "proven in the tree of size",
		"VERIFIED: release "+ls.r1.ID+" is in the transparency log of acme")
	if r.errOut != "" {
		t.Errorf("stderr with a pinned key: %q", r.errOut)
	}
	saved, err := os.ReadFile(state)
	if err != nil {
		t.Fatal(err)
	}

	// A third release grows the log; the state file follows it.
	img3, _, _ := randomFile(t, "fw3.img", 4096, 14)
	ok(t, ls.ctl(t, "releases", "create", "--product", "gw", "--version", "1.2.0", "--artifact", img3))
	r = ok(t, ls.ctl(t, "releases", "verify", ls.r2.ID, "--log-key-file", keyFile, "--state", state))
	contains(t, r.out, "gw 1.1.0", "extends the checkpoint of size", "(updated)", "VERIFIED")
	if now, _ := os.ReadFile(state); bytes.Equal(now, saved) {
		t.Error("the state file was not updated to the newer checkpoint")
	}
	contains(t, ok(t, ls.ctl(t, "releases", "verify", ls.r2.ID, "--log-key-file", keyFile, "--state", state)).out,
		"same checkpoint as in "+state)

	// Without a pinned key it still checks, but says loudly whom it trusts.
	r = ok(t, ls.ctl(t, "releases", "verify", ls.r1.ID))
	contains(t, r.errOut, "WARNING: no --log-key or --log-key-file", "trusts the server to vouch for itself", key)
	contains(t, r.out, "NOT pinned", "VERIFIED against a key the server supplied (not pinned)")

	type verdict struct {
		ReleaseID string `json:"release_id"`
		Verified  bool   `json:"verified"`
		Pinned    bool   `json:"log_key_pinned"`
		Index     int64  `json:"index"`
		TreeSize  int64  `json:"tree_size"`
	}
	out := decode[verdict](t, ok(t, ls.ctl(t, "--json", "releases", "verify", ls.r2.ID, "--log-key", key)).out)
	if out.ReleaseID != ls.r2.ID || !out.Verified || !out.Pinned || out.Index != ls.index(t, ls.r2) || out.TreeSize <= out.Index {
		t.Errorf("verify --json = %+v", out)
	}
}

// forge signs a checkpoint text with signer.
func forge(t *testing.T, signer note.Signer, size int64, root tlog.Hash) []byte {
	t.Helper()
	text := fmt.Sprintf("%s\n%d\n%s\n", signer.Name(), size, base64.StdEncoding.EncodeToString(root[:]))
	b, err := note.Sign(&note.Note{Text: text}, signer)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// impostor returns a signer for a fresh key with the log's name.
func impostor(t *testing.T, name string) (note.Signer, string) {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return s, vkey
}

// TestVerifyReleaseFailures has the server (or whoever controls its
// database or network path) lie in each way verify must catch, and checks
// that verify fails and names what failed.
func TestVerifyReleaseFailures(t *testing.T) {
	t.Run("stored leaf tampered", func(t *testing.T) {
		ls := newLogServer(t)
		key := ls.logKey(t)
		i := ls.index(t, ls.r1)
		a := ls.r1.Artifacts[0]
		forged := strings.Repeat("e", 64)
		ls.exec(t, "UPDATE tlog_leaves SET leaf = replace(leaf, $1, $2) WHERE idx = $3", a.SHA256, forged, i)
		r := ls.ctl(t, "releases", "verify", ls.r1.ID, "--log-key", key)
		failed(t, r, fmt.Sprintf("verification FAILED: entry #%d does not match the release: artifact %s has sha256 %s in the log, %s from the API",
			i, a.Name, forged, a.SHA256))
		if strings.Contains(r.out, "VERIFIED") {
			t.Errorf("stdout claims success:\n%s", r.out)
		}
	})

	t.Run("release and leaf tampered alike", func(t *testing.T) {
		// Whoever swaps an artifact in the database and rewrites the log
		// entry to match cannot rewrite the tree the checkpoint signs.
		ls := newLogServer(t)
		key := ls.logKey(t)
		i := ls.index(t, ls.r1)
		a := ls.r1.Artifacts[0]
		forged := strings.Repeat("e", 64)
		ls.exec(t, "UPDATE tlog_leaves SET leaf = replace(leaf, $1, $2) WHERE idx = $3", a.SHA256, forged, i)
		ls.exec(t, "UPDATE artifacts SET sha256 = $1 WHERE id = $2", forged, a.ID)
		failed(t, ls.ctl(t, "releases", "verify", ls.r1.ID, "--log-key", key),
			fmt.Sprintf("verification FAILED: the inclusion proof does not prove entry #%d in the signed checkpoint of size", i))
	})

	t.Run("release missing from the log", func(t *testing.T) {
		ls := newLogServer(t)
		key := ls.logKey(t)
		ls.exec(t, "UPDATE tlog_leaves SET entry_key = 'gone' WHERE idx = $1", ls.index(t, ls.r1))
		failed(t, ls.ctl(t, "releases", "verify", ls.r1.ID, "--log-key", key),
			"verification FAILED: the log has no entry for gw release counter 1: the release is not in the transparency log")
	})

	t.Run("checkpoint signed by another key", func(t *testing.T) {
		ls := newLogServer(t)
		key := ls.logKey(t)
		v, _ := note.NewVerifier(key)
		other, otherKey := impostor(t, v.Name())

		// A pinned key that is not the log's.
		failed(t, ls.ctl(t, "releases", "verify", ls.r1.ID, "--log-key", otherKey),
			"verification FAILED: the log's checkpoint is not signed by the log key "+v.Name())

		// The server's answer replaced by a checkpoint of the same tree
		// signed by an impostor key of the same name.
		ls.setHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
			if r.URL.Path != "/tlog/acme/checkpoint" {
				return false
			}
			n, err := note.Open(record(r, next, r.URL.String()).Body.Bytes(), note.VerifierList(v))
			if err != nil {
				t.Error(err)
				return false
			}
			signed, err := note.Sign(&note.Note{Text: n.Text}, other)
			if err != nil {
				t.Error(err)
				return false
			}
			_, _ = w.Write(signed)
			return true
		})
		failed(t, ls.ctl(t, "releases", "verify", ls.r1.ID, "--log-key", key),
			"verification FAILED: the log's checkpoint is not signed by the log key "+v.Name())
		// Trusting the server's key would have accepted it: that is what
		// the warning is about.
		r := ls.ctl(t, "releases", "verify", ls.r1.ID)
		failed(t, r, "verification FAILED: the log's checkpoint is not signed by the log key")
		contains(t, r.errOut, "WARNING: no --log-key")
	})

	t.Run("entry of another release", func(t *testing.T) {
		ls := newLogServer(t)
		key := ls.logKey(t)
		i1, i2 := ls.index(t, ls.r1), ls.index(t, ls.r2)
		// The lookup for r1 answered with r2's entry, whose proof is genuine.
		ls.setHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
			if r.URL.Path != "/tlog/acme/lookup" || r.URL.Query().Get("release_counter") != "1" {
				return false
			}
			_, _ = fmt.Fprintf(w, `{"indexes":[%d]}`, i2)
			return true
		})
		failed(t, ls.ctl(t, "releases", "verify", ls.r1.ID, "--log-key", key),
			fmt.Sprintf(`verification FAILED: entry #%d does not match the release: version is "1.1.0" in the log, "1.0.0" from the API; `+
				`release counter is "2" in the log, "1" from the API`, i2))

		// The right entry, but the inclusion proof of r2's entry.
		ls.setHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
			if r.URL.Path != "/tlog/acme/proof/inclusion" {
				return false
			}
			q := r.URL.Query()
			q.Set("index", fmt.Sprint(i2))
			rec := record(r, next, r.URL.Path+"?"+q.Encode())
			var p tlog.InclusionResponse
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
				t.Error(err)
				return false
			}
			p.Index = i1 // relabelled as the proof asked for
			_ = json.NewEncoder(w).Encode(p)
			return true
		})
		failed(t, ls.ctl(t, "releases", "verify", ls.r1.ID, "--log-key", key),
			fmt.Sprintf("verification FAILED: the inclusion proof does not prove entry #%d in the signed checkpoint", i1))
	})

	t.Run("log rewritten since the state", func(t *testing.T) {
		ls := newLogServer(t)
		key := ls.logKey(t)
		v, _ := note.NewVerifier(key)
		var skey string
		if err := ls.db.QueryRow("SELECT signer FROM tlog_keys").Scan(&skey); err != nil {
			t.Fatal(err)
		}
		// The real key in hand, as a server that forks its log would have.
		signer, err := note.NewSigner(skey)
		if err != nil {
			t.Fatal(err)
		}
		_, cp := fetchURL(t, ls.url+"/tlog/acme/checkpoint")
		n, err := note.Open(cp, note.VerifierList(v))
		if err != nil {
			t.Fatal(err)
		}
		var size int64
		if _, err := fmt.Sscanf(strings.Split(n.Text, "\n")[1], "%d", &size); err != nil {
			t.Fatal(err)
		}
		state := filepath.Join(t.TempDir(), "checkpoint")

		// A checkpoint seen earlier of a bigger tree: the log shrank.
		if err := os.WriteFile(state, forge(t, signer, size+5, tlog.Hash{1}), 0o600); err != nil {
			t.Fatal(err)
		}
		failed(t, ls.ctl(t, "releases", "verify", ls.r1.ID, "--log-key", key, "--state", state),
			fmt.Sprintf("verification FAILED: the log shrank: %s holds a checkpoint of size %d, the server's has size %d", state, size+5, size))

		// A checkpoint of a smaller tree that is not a prefix: a fork.
		if err := os.WriteFile(state, forge(t, signer, size-1, tlog.Hash{2}), 0o600); err != nil {
			t.Fatal(err)
		}
		failed(t, ls.ctl(t, "releases", "verify", ls.r1.ID, "--log-key", key, "--state", state),
			fmt.Sprintf("verification FAILED: the server's checkpoint (size %d) does not extend the one in %s (size %d): the log was rewritten or forked",
				size, state, size-1))
		if b, _ := os.ReadFile(state); bytes.Equal(b, cp) {
			t.Error("a failed consistency check replaced the state file")
		}

		// A state file from another log is refused, not overwritten.
		other, _ := impostor(t, v.Name())
		if err := os.WriteFile(state, forge(t, other, 1, tlog.Hash{}), 0o600); err != nil {
			t.Fatal(err)
		}
		failed(t, ls.ctl(t, "releases", "verify", ls.r1.ID, "--log-key", key, "--state", state),
			"does not hold a checkpoint of this log signed by its key")
	})
}
