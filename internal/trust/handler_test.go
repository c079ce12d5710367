package trust_test

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/steward-iot/steward/internal/trust"
)

func TestHandler(t *testing.T) {
	f := newFixture(t, time.Now())
	get := func(path string, header ...string) (int, http.Header, string) {
		t.Helper()
		req, err := http.NewRequest("GET", f.srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		return res.StatusCode, res.Header, string(body)
	}

	// Before any release nothing is listed, so no target is served.
	nested := []byte("nested image content")
	f.blobs.put(sha256hex(nested), nested)
	s256 := sha256.Sum256(nested)
	byName256 := "/targets/fw/gw/" + hex.EncodeToString(s256[:]) + ".app.bin"
	if code, _, _ := get(byName256); code != http.StatusNotFound {
		t.Fatalf("unlisted target: %d", code)
	}
	f.add("fw/gw/app.bin", nested, "")
	top := f.add("top.bin", []byte("top"), "")

	t.Run("metadata", func(t *testing.T) {
		code, h, body := get("/metadata/1.root.json")
		if code != 200 || h.Get("Content-Type") != "application/json" || !strings.Contains(h.Get("Cache-Control"), "immutable") || body != string(f.get("1.root.json")) {
			t.Fatalf("1.root.json: %d %v", code, h)
		}
		if code, h, _ := get("/metadata/timestamp.json"); code != 200 || h.Get("Cache-Control") != "no-cache" {
			t.Fatalf("timestamp.json: %d %v", code, h)
		}
		f.put("staged.root.json", f.get("1.root.json"))
		// 404, never 403: the client walks N.root.json up to the first 404.
		for _, name := range []string{"2.root.json", "staged.root.json", "01.root.json", "9.timestamp.json", "root", "..%2Froot.json"} {
			if code, _, _ := get("/metadata/" + name); code != http.StatusNotFound {
				t.Errorf("%s: %d, want 404", name, code)
			}
		}
	})

	t.Run("targets by either digest", func(t *testing.T) {
		s512 := sha512.Sum512(nested)
		for _, path := range []string{byName256, "/targets/fw/gw/" + hex.EncodeToString(s512[:]) + ".app.bin"} {
			code, h, body := get(path)
			if code != 200 || body != string(nested) || h.Get("Content-Type") != "application/octet-stream" {
				t.Fatalf("%s: %d %q", path, code, body)
			}
		}
		if code, _, body := get("/targets/" + hex.EncodeToString(top.Hashes["sha256"]) + ".top.bin"); code != 200 || body != "top" {
			t.Fatalf("top-level target: %d %q", code, body)
		}
		// The resumable downloader asks for ranges.
		if code, _, body := get(byName256, "Range", "bytes=7-11"); code != http.StatusPartialContent || body != "image" {
			t.Fatalf("range: %d %q", code, body)
		}
	})

	t.Run("targets not served", func(t *testing.T) {
		other := []byte("another organization's image")
		f.blobs.put(sha256hex(other), other)
		s256top := hex.EncodeToString(top.Hashes["sha256"])
		for _, path := range []string{
			"/targets/fw/gw/" + sha256hex(other) + ".app.bin",   // digest not signed for this path
			"/targets/" + sha256hex(other) + ".other.bin",       // not a target at all
			"/targets/fw/" + s256top + ".top.bin",               // wrong directory
			"/targets/" + strings.ToUpper(s256top) + ".top.bin", // the client writes lowercase hex
			"/targets/" + s256top[:40] + ".top.bin",
			"/targets/top.bin",
			"/targets/",
			"/elsewhere",
		} {
			if code, _, _ := get(path); code != http.StatusNotFound {
				t.Errorf("%s: %d, want 404", path, code)
			}
		}
		missing := f.add("missing.bin", []byte("never stored"), "")
		f.blobs.put(sha256hex([]byte("never stored")), nil)
		if code, _, _ := get("/targets/" + hex.EncodeToString(missing.Hashes["sha256"]) + ".missing.bin"); code != http.StatusInternalServerError {
			t.Errorf("blob of the wrong length: %d, want 500", code)
		}
	})

	t.Run("missing blob", func(t *testing.T) {
		h := trust.Handler(f.store, &blobs{})
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", byName256, nil))
		if rec.Code != http.StatusNotFound {
			t.Fatalf("missing blob: %d, want 404", rec.Code)
		}
	})

	res, err := http.Post(f.srv.URL+"/metadata/timestamp.json", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST: %d", res.StatusCode)
	}
}
