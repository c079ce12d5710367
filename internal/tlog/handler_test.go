package tlog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

func get(t *testing.T, h http.Handler, method, target string) *http.Response {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	return rec.Result()
}

func body(t *testing.T, res *http.Response) []byte {
	t.Helper()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestHandler(t *testing.T) {
	f := newFixture(t)
	f.grow(t, mrand.New(mrand.NewPCG(17, 18)), 50)
	h := Handler(f.log)

	res := get(t, h, "GET", "/checkpoint")
	cp := body(t, res)
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/plain; charset=utf-8" || res.Header.Get("Cache-Control") != "no-cache" {
		t.Fatalf("GET /checkpoint: %d %v", res.StatusCode, res.Header)
	}
	size, root, err := VerifyCheckpoint(cp, f.verifier, testOrigin)
	if err != nil || size != 50 || root != f.roots[50] {
		t.Fatalf("served checkpoint: size %d root %x: %v", size, root, err)
	}

	for i := range int64(50) {
		res := get(t, h, "GET", fmt.Sprintf("/entries/%d", i))
		leaf := body(t, res)
		if res.StatusCode != 200 || res.Header.Get("Content-Type") != "application/json" || res.Header.Get("Cache-Control") != immutable {
			t.Fatalf("GET /entries/%d: %d %v", i, res.StatusCode, res.Header)
		}
		if string(leaf) != string(f.leaves[i]) {
			t.Fatalf("entry %d served as %s, stored as %s", i, leaf, f.leaves[i])
		}
		res = get(t, h, "GET", fmt.Sprintf("/proof/inclusion?index=%d&size=%d", i, size))
		var ip InclusionResponse
		if err := json.Unmarshal(body(t, res), &ip); err != nil || res.StatusCode != 200 {
			t.Fatalf("inclusion proof of %d: %d %v", i, res.StatusCode, err)
		}
		if ip.Index != i || ip.Size != size {
			t.Fatalf("inclusion proof answers for %d in %d, asked %d in %d", ip.Index, ip.Size, i, size)
		}
		if err := VerifyInclusion(leaf, i, size, root, ip.Hashes); err != nil {
			t.Fatalf("served inclusion proof of %d: %v", i, err)
		}
	}

	for _, old := range []int64{0, 1, 17, 32, 49, 50} {
		res := get(t, h, "GET", fmt.Sprintf("/proof/consistency?old=%d&new=50", old))
		var cp ConsistencyResponse
		if err := json.Unmarshal(body(t, res), &cp); err != nil || res.StatusCode != 200 {
			t.Fatalf("consistency proof from %d: %d %v", old, res.StatusCode, err)
		}
		if cp.Old != old || cp.New != 50 || cp.Hashes == nil {
			t.Fatalf("consistency response %+v", cp)
		}
		if err := VerifyConsistency(old, 50, f.roots[old], root, cp.Hashes); err != nil {
			t.Fatalf("served consistency proof from %d: %v", old, err)
		}
	}
}

// TestHandlerWireFormat pins the JSON the package documentation promises.
func TestHandlerWireFormat(t *testing.T) {
	f := newFixture(t)
	f.grow(t, mrand.New(mrand.NewPCG(19, 20)), 5)
	h := Handler(f.log)
	for target, keys := range map[string][]string{
		"/proof/inclusion?index=2&size=5": {"hashes", "index", "size"},
		"/proof/consistency?old=3&new=5":  {"hashes", "new", "old"},
	} {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(body(t, get(t, h, "GET", target)), &m); err != nil {
			t.Fatal(err)
		}
		got := slices.Sorted(func(yield func(string) bool) {
			for k := range m {
				if !yield(k) {
					return
				}
			}
		})
		if !slices.Equal(got, keys) {
			t.Errorf("%s: keys %v, want %v", target, got, keys)
		}
		var hashes []string
		if err := json.Unmarshal(m["hashes"], &hashes); err != nil || len(hashes) == 0 {
			t.Fatalf("%s: hashes %s: %v", target, m["hashes"], err)
		}
		for _, s := range hashes {
			if len(s) != 44 || !strings.HasSuffix(s, "=") {
				t.Errorf("%s: hash %q is not base64 of 32 bytes", target, s)
			}
		}
	}
	// Trees with nothing to prove answer an empty list, not null.
	if b := string(body(t, get(t, h, "GET", "/proof/consistency?old=0&new=5"))); b != `{"old":0,"new":5,"hashes":[]}`+"\n" {
		t.Errorf("empty consistency proof: %s", b)
	}
}

func TestHandlerErrors(t *testing.T) {
	f := newFixture(t)
	f.grow(t, mrand.New(mrand.NewPCG(21, 22)), 10)
	h := Handler(f.log)
	cases := []struct {
		method, target string
		status         int
	}{
		{"GET", "/entries/10", 404},
		{"GET", "/entries/-1", 400},
		{"GET", "/entries/01", 400},
		{"GET", "/entries/+1", 400},
		{"GET", "/entries/x", 400},
		{"GET", "/entries/99999999999999999999", 400},
		{"GET", "/proof/inclusion?index=5", 400},
		{"GET", "/proof/inclusion?size=5", 400},
		{"GET", "/proof/inclusion?index=5&size=5", 400},
		{"GET", "/proof/inclusion?index=5&size=11", 404},
		{"GET", "/proof/inclusion?index=a&size=10", 400},
		{"GET", "/proof/consistency?old=6&new=5", 400},
		{"GET", "/proof/consistency?old=5&new=11", 404},
		{"GET", "/proof/consistency?old=5", 400},
		{"POST", "/checkpoint", 405},
		{"GET", "/entries", 404},
		{"GET", "/tile/0/000", 404},
	}
	for _, c := range cases {
		res := get(t, h, c.method, c.target)
		if res.StatusCode != c.status {
			t.Errorf("%s %s: %d, want %d (%s)", c.method, c.target, res.StatusCode, c.status, body(t, res))
		}
		if res.StatusCode >= 400 && res.Header.Get("Cache-Control") == immutable {
			t.Errorf("%s %s: error response marked immutable", c.method, c.target)
		}
	}
}

type brokenStore struct{ *MemStore }

func (brokenStore) Size(context.Context) (int64, error) {
	return 0, errors.New("database password is hunter2")
}

func TestHandlerHidesInternalErrors(t *testing.T) {
	f := newFixture(t)
	l, err := New(brokenStore{f.store}, testOrigin, f.signer, f.clock)
	if err != nil {
		t.Fatal(err)
	}
	res := get(t, Handler(l), "GET", "/checkpoint")
	if b := body(t, res); res.StatusCode != 500 || strings.Contains(string(b), "hunter2") {
		t.Errorf("store failure answered %d %q", res.StatusCode, b)
	}
}
