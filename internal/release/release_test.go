package release_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/steward-iot/steward/internal/api"
	"github.com/steward-iot/steward/internal/audit"
	"github.com/steward-iot/steward/internal/blob"
	"github.com/steward-iot/steward/internal/clock"
	"github.com/steward-iot/steward/internal/inventory"
	"github.com/steward-iot/steward/internal/release"
	"github.com/steward-iot/steward/internal/store"
	"github.com/steward-iot/steward/internal/store/storetest"
	"github.com/steward-iot/steward/internal/tenancy"
)

const maxArtifact = 4 << 20

type env struct {
	t     *testing.T
	ts    *httptest.Server
	token string
	blobs string
}

func newEnv(t *testing.T, d store.Dialect) *env {
	t.Helper()
	ctx := context.Background()
	db := storetest.New(t, d, clock.Real)
	ten := tenancy.NewService(db.Tenancy(), nil)
	_, secret, _, err := ten.Bootstrap(ctx, "acme", "Acme")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	blobs, err := blob.NewDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := api.New(api.Deps{Tenancy: ten, Audit: audit.NewService(db.Audit()), Idempotency: db.Idempotency(),
		Inventory: inventory.NewService(db.Inventory(), nil), Release: release.NewService(db.Release(), blobs, nil, maxArtifact)})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, ts: httptest.NewServer(srv.Handler()), token: secret, blobs: dir}
	t.Cleanup(e.ts.Close)
	e.json("POST", "/api/v1/orgs/acme/products", inventory.CreateProductRequest{Slug: "gw-100", Name: "GW", HardwareID: "gw-100",
		Capability: inventory.CapabilityAB, LinkClass: "wifi"}, 201, nil)
	return e
}

func (e *env) do(method, path string, body io.Reader, ct string, headers ...string) *http.Response {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.ts.URL+path, body)
	req.Header.Set("Authorization", "Bearer "+e.token)
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	return res
}

func (e *env) json(method, path string, body any, want int, out any) []byte {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	res := e.do(method, path, rd, "application/json")
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != want {
		e.t.Fatalf("%s %s: %d, want %d: %s", method, path, res.StatusCode, want, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			e.t.Fatal(err)
		}
	}
	return b
}

func (e *env) upload(name string, content io.Reader, want int, query string) release.Artifact {
	e.t.Helper()
	res := e.do("POST", "/api/v1/orgs/acme/artifacts?name="+name+query, content, "application/octet-stream")
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != want {
		e.t.Fatalf("upload %s: %d, want %d: %s", name, res.StatusCode, want, b)
	}
	var a release.Artifact
	_ = json.Unmarshal(b, &a)
	return a
}

func (e *env) artifactCount() int {
	var page struct{ Items []release.Artifact }
	e.json("GET", "/api/v1/orgs/acme/artifacts", nil, 200, &page)
	return len(page.Items)
}

// blobFiles counts stored blobs and leftover temp files.
func (e *env) blobFiles() (blobs, temps int) {
	filepath.Walk(e.blobs, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			rel, _ := filepath.Rel(e.blobs, p)
			if strings.HasPrefix(rel, "tmp"+string(filepath.Separator)) {
				temps++
			} else if !strings.HasSuffix(p, ".sha512") {
				blobs++
			}
		}
		return nil
	})
	return
}

// TestArtifacts uploads, re-uploads, corrupts and oversizes artifacts and
// resumes a download with Range and If-Range.
func TestArtifacts(t *testing.T) {
	for _, d := range storetest.Dialects(t) {
		t.Run(string(d), func(t *testing.T) {
			e := newEnv(t, d)
			img := make([]byte, 3<<20)
			rng := rand.New(rand.NewPCG(1, 2))
			for i := range img {
				img[i] = byte(rng.Uint32())
			}
			sum := sha256.Sum256(img)
			// A non-seekable stream, as a client uploading a big image sends.
			a := e.upload("gw-100-2.4.0.img", io.MultiReader(bytes.NewReader(img[:1<<20]), bytes.NewReader(img[1<<20:])), 201,
				"&sha256="+hex.EncodeToString(sum[:]))
			if a.SHA256 != hex.EncodeToString(sum[:]) || a.Size != int64(len(img)) || len(a.SHA512) != 128 {
				t.Fatalf("artifact: %+v", a)
			}
			again := e.upload("gw-100-2.4.0-copy.img", bytes.NewReader(img), 200, "")
			if again.ID != a.ID {
				t.Fatal("re-uploading the same bytes made a second artifact")
			}
			// Corrupted in transit: the declared hash does not match; nothing is kept.
			bad := append([]byte{}, img...)
			bad[1000] ^= 1
			e.upload("bad.img", bytes.NewReader(bad), 400, "&sha256="+hex.EncodeToString(sum[:]))
			e.upload("huge.img", io.LimitReader(zeros{}, maxArtifact+10), 413, "")
			e.upload("../../etc/passwd", bytes.NewReader(img[:10]), 400, "")
			if n := e.artifactCount(); n != 1 {
				t.Fatalf("%d artifacts after rejected uploads, want 1", n)
			}
			if blobs, temps := e.blobFiles(); blobs != 1 || temps != 0 {
				t.Fatalf("blob store holds %d blobs and %d temp files, want 1 and 0", blobs, temps)
			}

			path := "/api/v1/orgs/acme/artifacts/" + a.ID + "/content"
			res := e.do("GET", path, nil, "")
			full, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != 200 || !bytes.Equal(full, img) || res.Header.Get("ETag") != `"`+a.SHA256+`"` {
				t.Fatalf("download: %d, %d bytes, etag %s", res.StatusCode, len(full), res.Header.Get("ETag"))
			}
			// Resume from byte 1,000,000 while the content is unchanged.
			res = e.do("GET", path, nil, "", "Range", "bytes=1000000-", "If-Range", `"`+a.SHA256+`"`)
			rest, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != 206 || !bytes.Equal(rest, img[1000000:]) {
				t.Fatalf("resumed download: %d, %d bytes", res.StatusCode, len(rest))
			}
			// A stale validator gets the whole (new) content, never a splice.
			res = e.do("GET", path, nil, "", "Range", "bytes=1000000-", "If-Range", `"0000"`)
			res.Body.Close()
			if res.StatusCode != 200 || res.ContentLength != int64(len(img)) {
				t.Fatalf("If-Range mismatch: %d %d", res.StatusCode, res.ContentLength)
			}
			res = e.do("GET", path, nil, "", "Range", fmt.Sprintf("bytes=%d-", len(img)+5))
			res.Body.Close()
			if res.StatusCode != 416 {
				t.Fatalf("unsatisfiable range: %d", res.StatusCode)
			}
		})
	}
}

func testdataSBOM(t *testing.T, name string) []byte {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for ; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		if filepath.Dir(dir) == dir {
			t.Fatal("no go.mod above the test directory")
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "..", "shared", "testdata", "vulnmatch", "sbom", name))
	if err != nil {
		t.Fatalf("shared test data is expected beside the repository (../shared): %v", err)
	}
	return b
}

func TestReleases(t *testing.T) {
	for _, d := range storetest.Dialects(t) {
		t.Run(string(d), func(t *testing.T) { testReleases(t, d) })
	}
}

func testReleases(t *testing.T, d store.Dialect) {
	e := newEnv(t, d)
	img := e.upload("gw-100-2.4.0.img", strings.NewReader("image 2.4.0"), 201, "")
	delta := e.upload("gw-100-2.3.0-2.4.0.delta", strings.NewReader("delta"), 201, "")
	sbomArt := e.upload("sbom.spdx.json", bytes.NewReader(testdataSBOM(t, "balenalib-beaglebone-black-ubuntu-node.ubuntu-22.04.trivy.spdx.json")), 201, "")

	var r1, r2 release.Release
	e.json("POST", "/api/v1/orgs/acme/releases", release.CreateReleaseRequest{Product: "gw-100", Version: "2.3.0",
		Artifacts: []release.ArtifactRef{{ID: img.ID}}}, 201, &r1)
	e.json("POST", "/api/v1/orgs/acme/releases", release.CreateReleaseRequest{Product: "gw-100", Version: "2.4.0",
		Artifacts: []release.ArtifactRef{{ID: img.ID}, {ID: delta.ID, Kind: "delta", PrecursorSHA256: img.SHA256}},
		SBOM:      sbomArt.ID, SecurityFix: true, Fixes: []string{"CVE-2024-6387"}}, 201, &r2)
	if r1.Counter != 1 || r2.Counter != 2 || len(r2.Artifacts) != 2 || r2.SBOMFormat != "spdx" || r2.Components < 10 {
		t.Fatalf("releases: %+v / %+v", r1, r2)
	}
	var comps []release.Component
	e.json("GET", "/api/v1/orgs/acme/releases/"+r2.ID+"/components", nil, 200, &comps)
	debs := 0
	for _, c := range comps {
		if strings.HasPrefix(c.Purl, "pkg:deb/ubuntu/") {
			debs++
		}
	}
	if len(comps) != r2.Components || debs == 0 {
		t.Fatalf("%d components, %d ubuntu debs", len(comps), debs)
	}
	bad := []struct {
		name string
		req  release.CreateReleaseRequest
		want int
	}{
		{"duplicate version", release.CreateReleaseRequest{Product: "gw-100", Version: "2.4.0", Artifacts: []release.ArtifactRef{{ID: img.ID}}}, 409},
		{"no full image", release.CreateReleaseRequest{Product: "gw-100", Version: "2.5.0", Artifacts: []release.ArtifactRef{{ID: delta.ID, Kind: "delta", PrecursorSHA256: img.SHA256}}}, 400},
		{"delta without precursor", release.CreateReleaseRequest{Product: "gw-100", Version: "2.5.0", Artifacts: []release.ArtifactRef{{ID: img.ID}, {ID: delta.ID, Kind: "delta"}}}, 400},
		{"unknown artifact", release.CreateReleaseRequest{Product: "gw-100", Version: "2.5.0", Artifacts: []release.ArtifactRef{{ID: "nope"}}}, 400},
		{"unknown product", release.CreateReleaseRequest{Product: "toaster", Version: "2.5.0", Artifacts: []release.ArtifactRef{{ID: img.ID}}}, 400},
		{"not an SBOM", release.CreateReleaseRequest{Product: "gw-100", Version: "2.5.0", Artifacts: []release.ArtifactRef{{ID: img.ID}}, SBOM: img.ID}, 400},
		{"bad fix id", release.CreateReleaseRequest{Product: "gw-100", Version: "2.5.0", Artifacts: []release.ArtifactRef{{ID: img.ID}}, Fixes: []string{"; drop table"}}, 400},
	}
	for _, c := range bad {
		e.json("POST", "/api/v1/orgs/acme/releases", c.req, c.want, nil)
	}
	var page struct{ Items []release.Release }
	e.json("GET", "/api/v1/orgs/acme/releases?product=gw-100", nil, 200, &page)
	if len(page.Items) != 2 {
		t.Fatalf("%d releases after rejected creates, want 2", len(page.Items))
	}
	// The counter continues after the failures: no gaps were burnt.
	var r3 release.Release
	e.json("POST", "/api/v1/orgs/acme/releases", release.CreateReleaseRequest{Product: "gw-100", Version: "2.5.0",
		Artifacts: []release.ArtifactRef{{ID: img.ID}}}, 201, &r3)
	if r3.Counter != 3 {
		t.Fatalf("third release counter %d", r3.Counter)
	}
}

// zeros is an endless reader, for oversized uploads.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
