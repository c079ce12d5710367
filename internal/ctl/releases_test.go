package ctl

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/steward-iot/steward/internal/release"
)

// testStartDir is the package directory: tests change the working
// directory (isolate) before they look for the shared test data.
var testStartDir, _ = os.Getwd()

// sbomDir returns the shared real-world SBOMs: ../shared beside the
// module root.
func sbomDir(t *testing.T) string {
	t.Helper()
	dir := testStartDir
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("no go.mod in or above %s", testStartDir)
		}
		dir = parent
	}
	p := filepath.Join(dir, "..", "shared", "testdata", "vulnmatch", "sbom")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("the shared test SBOMs are missing: %v", err)
	}
	return p
}

// randomFile writes size pseudo-random bytes (fixed by seed) to name in a
// fresh directory and returns its path, content and hex SHA-256.
func randomFile(t *testing.T, name string, size int, seed byte) (string, []byte, string) {
	t.Helper()
	b := make([]byte, size)
	_, _ = rand.NewChaCha8([32]byte{seed}).Read(b)
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, b, sha256Hex(b)
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func noFile(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s exists (stat: %v), want it absent", path, err)
	}
}

func sameFile(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s holds %d bytes (sha256 %s), want %d bytes (sha256 %s)", path, len(got), sha256Hex(got), len(want), sha256Hex(want))
	}
}

func TestArtifactUpload(t *testing.T) {
	s := newTestServer(t)
	path, _, sum := randomFile(t, "gw-2.4.0.img", 5<<20+123, 1)
	s.requests()

	r := ok(t, s.ctl(t, "artifacts", "upload", path))
	contains(t, r.out, "uploaded artifact ", "gw-2.4.0.img", "5.0 MiB", "sha256 "+sum)
	if strings.Contains(r.out, "already") || r.errOut != "" {
		t.Errorf("first upload: stdout %q, stderr %q", r.out, r.errOut)
	}
	var post *seenRequest
	for _, req := range s.requests() {
		if req.method == http.MethodPost {
			post = &req
		}
	}
	if post == nil {
		t.Fatal("no POST seen")
	}
	q, _ := url.ParseQuery(post.query)
	if post.path != "/api/v1/orgs/acme/artifacts" || q.Get("name") != "gw-2.4.0.img" || q.Get("sha256") != sum ||
		post.header.Get("Content-Type") != "application/octet-stream" || post.contentLength != 5<<20+123 {
		t.Errorf("upload request: %s %s?%s Content-Type %q Content-Length %d", post.method, post.path, post.query,
			post.header.Get("Content-Type"), post.contentLength)
	}

	// The server hashed what it received.
	arts := decode[[]release.Artifact](t, ok(t, s.ctl(t, "--json", "artifacts", "list")).out)
	if len(arts) != 1 || arts[0].SHA256 != sum || arts[0].Size != 5<<20+123 || arts[0].Name != "gw-2.4.0.img" {
		t.Fatalf("artifacts after upload = %+v, want the file with sha256 %s", arts, sum)
	}
	a := arts[0]
	contains(t, r.out, a.ID)

	// The same bytes again, under another name: the existing artifact.
	r = ok(t, s.ctl(t, "artifacts", "upload", path, "--name", "again.img"))
	contains(t, r.out, "already uploaded as artifact "+a.ID+": gw-2.4.0.img")
	again := decode[release.Artifact](t, ok(t, s.ctl(t, "--json", "artifacts", "upload", path)).out)
	if again.ID != a.ID {
		t.Errorf("re-upload --json = %+v, want artifact %s", again, a.ID)
	}

	contains(t, rowWith(t, ok(t, s.ctl(t, "artifacts", "list")).out, a.ID), "gw-2.4.0.img", "5.0 MiB", sum)
	contains(t, ok(t, s.ctl(t, "artifacts", "show", a.ID)).out, "id:", a.ID, "5243003 bytes (5.0 MiB)", "sha256:", sum,
		"sha512:", a.SHA512)
	failed(t, s.ctl(t, "artifacts", "show", "01900000-0000-7000-8000-000000000000"), "error: Not Found (404)")
}

func TestArtifactUploadProgress(t *testing.T) {
	s := newTestServer(t)
	path, _, _ := randomFile(t, "p.img", 3<<20, 2)
	r := ok(t, s.ctl(t, "artifacts", "upload", path, "--progress"))
	contains(t, r.errOut, "\rsha256 p.img: ", "\rupload p.img: ", "3.0 MiB / 3.0 MiB  100%", "/s")
	if n := strings.Count(r.errOut, "\n"); n != 2 {
		t.Errorf("progress wrote %d lines, want one for hashing and one for the upload:\n%q", n, r.errOut)
	}
	contains(t, r.out, "uploaded artifact")
}

func TestArtifactUploadErrors(t *testing.T) {
	s := newTestServer(t)
	failed(t, s.ctl(t, "artifacts", "upload", "absent.img"), "error: open absent.img: no such file or directory")
	failed(t, s.ctl(t, "artifacts", "upload", t.TempDir()), "is not a regular file")
	path, _, _ := randomFile(t, "x.img", 1000, 3)
	failed(t, s.ctl(t, "artifacts", "upload", path, "--name", "../x"), "error: Bad Request (400): name: ")

	tok := decode[struct{ Secret string }](t, ok(t, s.ctl(t, "--json", "tokens", "create", "--name", "ro", "--role", "auditor")).out)
	failed(t, s.ctlAs(t, tok.Secret, "artifacts", "upload", path), "error: Forbidden (403): role auditor may not do release.write")

	big, _, _ := randomFile(t, "big.img", maxTestArtifact+1, 4)
	failed(t, s.ctl(t, "artifacts", "upload", big), "error: Request Entity Too Large (413)")
}

// The 30 s --timeout limits silences, not the upload of a big file.
func TestArtifactUploadOutlivesTimeout(t *testing.T) {
	isolate(t)
	const size = 32 << 20
	path, _, sum := randomFile(t, "slow.img", size, 5)
	hs := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 256<<10)
		h := sha256.New()
		var n int64
		for {
			k, err := io.ReadFull(r.Body, buf)
			h.Write(buf[:k])
			n += int64(k)
			if err != nil {
				break
			}
			// 128 reads: 2 s in all, while ctl's socket buffer (4 MiB at
			// most) drains in a quarter of a second.
			time.Sleep(15 * time.Millisecond)
		}
		got := hex.EncodeToString(h.Sum(nil))
		if got != r.URL.Query().Get("sha256") || n != size {
			t.Errorf("server received %d bytes with sha256 %s", n, got)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(release.Artifact{ID: "a1", Name: "slow.img", SHA256: got, Size: n})
	}))
	// Loopback receive buffers grow to tens of MB, enough to swallow the
	// whole upload at once and leave ctl waiting silently for the answer.
	hs.Listener = smallReceiveBuffer{hs.Listener}
	hs.Start()
	defer hs.Close()
	start := time.Now()
	r := ok(t, runCtl(t, "--server", hs.URL, "--token", "stw_x", "--org", "acme", "--timeout", "1s", "artifacts", "upload", path))
	contains(t, r.out, "uploaded artifact a1: slow.img, 32.0 MiB, sha256 "+sum)
	if d := time.Since(start); d < 1200*time.Millisecond {
		t.Errorf("the slow upload took %s; the test needs it to outlast --timeout", d)
	}
}

// smallReceiveBuffer bounds the receive buffer of accepted connections,
// so that a server reading slowly slows the sender down.
type smallReceiveBuffer struct{ net.Listener }

func (l smallReceiveBuffer) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(64 << 10)
	}
	return c, err
}

func TestArtifactDownload(t *testing.T) {
	s := newTestServer(t)
	path, content, sum := randomFile(t, "fw.img", 3<<20+7, 6)
	a := decode[release.Artifact](t, ok(t, s.ctl(t, "--json", "artifacts", "upload", path)).out)

	// Default destination: the artifact's name in the working directory.
	r := ok(t, s.ctl(t, "artifacts", "download", a.ID))
	contains(t, r.out, "downloaded artifact "+a.ID+" to fw.img (3.0 MiB, sha256 verified)")
	sameFile(t, "fw.img", content)
	noFile(t, "fw.img.part")

	r = ok(t, s.ctl(t, "artifacts", "download", a.ID))
	contains(t, r.out, "fw.img already holds artifact "+a.ID)

	// Resume from a partial download.
	dest := filepath.Join(t.TempDir(), "out.img")
	if err := os.WriteFile(dest+".part", content[:1<<20], 0o600); err != nil {
		t.Fatal(err)
	}
	s.requests()
	r = ok(t, s.ctl(t, "artifacts", "download", a.ID, "-o", dest, "--progress"))
	contains(t, r.out, "downloaded artifact "+a.ID+" to "+dest, "sha256 verified", "resumed after 1048576 bytes")
	contains(t, r.errOut, "\rdownload fw.img: ", "3.0 MiB / 3.0 MiB  100%")
	sameFile(t, dest, content)
	noFile(t, dest+".part")
	var sawRange bool
	for _, req := range s.requests() {
		if strings.HasSuffix(req.path, "/content") {
			sawRange = true
			if got := req.header.Get("Range"); got != "bytes=1048576-" {
				t.Errorf("Range = %q", got)
			}
			if got := req.header.Get("If-Range"); got != `"`+sum+`"` {
				t.Errorf("If-Range = %q, want the artifact's ETag", got)
			}
		}
	}
	if !sawRange {
		t.Error("no content request seen")
	}

	// A .part holding all of it needs no request.
	if err := os.WriteFile(dest+".part", content, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(dest); err != nil {
		t.Fatal(err)
	}
	s.requests()
	ok(t, s.ctl(t, "artifacts", "download", a.ID, "-o", dest))
	sameFile(t, dest, content)
	for _, req := range s.requests() {
		if strings.HasSuffix(req.path, "/content") {
			t.Error("a complete .part was downloaded again")
		}
	}

	// --json prints the artifact.
	dest2 := filepath.Join(t.TempDir(), "j.img")
	if got := decode[release.Artifact](t, ok(t, s.ctl(t, "--json", "artifacts", "download", a.ID, "-o", dest2)).out); got.ID != a.ID {
		t.Errorf("download --json = %+v", got)
	}
	failed(t, s.ctl(t, "artifacts", "download", "01900000-0000-7000-8000-000000000000"), "error: Not Found (404)")
}

// A partial download that does not fit the artifact fails the hash check
// and leaves neither FILE nor a .part that would fail again.
func TestArtifactDownloadCorruptPartial(t *testing.T) {
	s := newTestServer(t)
	path, content, sum := randomFile(t, "fw.img", 2<<20, 7)
	a := decode[release.Artifact](t, ok(t, s.ctl(t, "--json", "artifacts", "upload", path)).out)
	dest := filepath.Join(t.TempDir(), "fw.img")
	if err := os.WriteFile(dest+".part", make([]byte, 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	r := s.ctl(t, "artifacts", "download", a.ID, "-o", dest)
	failed(t, r, "but artifact "+a.ID+" has sha256 "+sum)
	contains(t, r.errOut, "the first 4096 bytes came from an earlier, different or damaged download", "was deleted")
	noFile(t, dest)
	noFile(t, dest+".part")

	ok(t, s.ctl(t, "artifacts", "download", a.ID, "-o", dest))
	sameFile(t, dest, content)
}

// fakeArtifactServer serves one artifact's record and content through
// serve, which gets the request and how many content requests came before.
func fakeArtifactServer(t *testing.T, a release.Artifact, serve func(w http.ResponseWriter, r *http.Request, n int)) *httptest.Server {
	t.Helper()
	var mu sync.Mutex
	n := 0
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/v1/orgs/acme/artifacts/" + a.ID:
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(a)
		case "/api/v1/orgs/acme/artifacts/" + a.ID + "/content":
			mu.Lock()
			i := n
			n++
			mu.Unlock()
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Header().Set("ETag", `"`+a.SHA256+`"`)
			serve(w, r, i)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(hs.Close)
	return hs
}

// A server sending other bytes than the artifact's sha256 describes.
func TestArtifactDownloadWrongContent(t *testing.T) {
	isolate(t)
	good := bytes.Repeat([]byte("good"), 1<<16)
	bad := bytes.Repeat([]byte("evil"), 1<<16)
	a := release.Artifact{ID: "a1", Name: "fw.img", SHA256: sha256Hex(good), Size: int64(len(good))}
	hs := fakeArtifactServer(t, a, func(w http.ResponseWriter, r *http.Request, _ int) {
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(bad))
	})
	r := runCtl(t, "--server", hs.URL, "--token", "stw_x", "--org", "acme", "artifacts", "download", "a1")
	failed(t, r, "the downloaded bytes have sha256 "+sha256Hex(bad)+", but artifact a1 has sha256 "+a.SHA256)
	noFile(t, "fw.img")
	noFile(t, "fw.img.part")
}

// A download that breaks off keeps its .part, and the next one resumes.
func TestArtifactDownloadInterruptedResumes(t *testing.T) {
	isolate(t)
	content := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	a := release.Artifact{ID: "a1", Name: "fw.img", SHA256: sha256Hex(content), Size: int64(len(content))}
	var mu sync.Mutex
	var ranges []string
	hs := fakeArtifactServer(t, a, func(w http.ResponseWriter, r *http.Request, n int) {
		mu.Lock()
		ranges = append(ranges, r.Header.Get("Range"))
		mu.Unlock()
		if n == 0 {
			w.Header().Set("Content-Length", strconv.Itoa(len(content)))
			_, _ = w.Write(content[:300000])
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(content))
	})
	dl := func() result {
		return runCtl(t, "--server", hs.URL, "--token", "stw_x", "--org", "acme", "artifacts", "download", "a1")
	}
	r := dl()
	failed(t, r, "error: the download of artifact a1 from "+hs.URL+" broke off after 300000 of 1048576 bytes")
	contains(t, r.errOut, "fw.img.part is kept: download again to resume")
	noFile(t, "fw.img")
	if fi, err := os.Stat("fw.img.part"); err != nil || fi.Size() != 300000 {
		t.Fatalf("fw.img.part after the break: %v, %v", fi, err)
	}

	contains(t, ok(t, dl()).out, "downloaded artifact a1 to fw.img", "resumed after 300000 bytes")
	sameFile(t, "fw.img", content)
	noFile(t, "fw.img.part")
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(ranges, ",") != ",bytes=300000-" {
		t.Errorf("Range headers = %q, want none, then bytes=300000-", ranges)
	}
}

// If the server ignores the range (If-Range did not match), the download
// starts over instead of appending the whole content.
func TestArtifactDownloadRangeIgnored(t *testing.T) {
	isolate(t)
	content := bytes.Repeat([]byte("x"), 100000)
	a := release.Artifact{ID: "a1", Name: "fw.img", SHA256: sha256Hex(content), Size: int64(len(content))}
	hs := fakeArtifactServer(t, a, func(w http.ResponseWriter, _ *http.Request, _ int) {
		_, _ = w.Write(content)
	})
	if err := os.WriteFile("fw.img.part", []byte("stale"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := ok(t, runCtl(t, "--server", hs.URL, "--token", "stw_x", "--org", "acme", "artifacts", "download", "a1"))
	if strings.Contains(r.out, "resumed") {
		t.Errorf("stdout = %q, want no resume", r.out)
	}
	sameFile(t, "fw.img", content)
}

func TestReleases(t *testing.T) {
	s := newTestServer(t)
	s.newProduct(t)
	sboms := sbomDir(t)
	img1, _, _ := randomFile(t, "gw-2.4.0.img", 2<<20, 10)
	delta, _, _ := randomFile(t, "gw-2.3.0-2.4.0.delta", 300<<10, 11)
	precursor := strings.Repeat("ab", 32)
	s.requests()

	r := ok(t, s.ctl(t, "releases", "create", "--product", "gw", "--version", "2.4.0", "--artifact", img1,
		"--delta", delta+":"+strings.ToUpper(precursor), "--sbom", filepath.Join(sboms, "mongo.ubuntu-20.04.syft.cdx.json"),
		"--notes", "first", "--security-fix", "--fixes", "CVE-2024-1234,GHSA-abcd-efgh-ijkl"))
	contains(t, r.out, "product:", "gw", "version:", "2.4.0", "release counter:  1", "security fix:", "yes",
		"fixes:", "CVE-2024-1234, GHSA-abcd-efgh-ijkl", "(cyclonedx)", "notes:", "first", "artifacts:", "2",
		"ARTIFACT", "KIND", "PRECURSOR SHA256", "gw-2.4.0.img", "gw-2.3.0-2.4.0.delta", precursor)
	contains(t, r.errOut, img1+": uploaded artifact ", delta+": uploaded artifact ", "mongo.ubuntu-20.04.syft.cdx.json: uploaded artifact ")
	contains(t, rowWith(t, r.out, "gw-2.3.0-2.4.0.delta"), "delta", "300.0 KiB")
	contains(t, rowWith(t, r.out, "gw-2.4.0.img"), "full", "2.0 MiB")
	var posts []string
	for _, req := range s.requests() {
		if req.method == http.MethodPost {
			posts = append(posts, req.path)
			if req.path == "/api/v1/orgs/acme/releases" && req.header.Get("Idempotency-Key") == "" {
				t.Error("releases create sent no Idempotency-Key")
			}
		}
	}
	if want := "/api/v1/orgs/acme/artifacts /api/v1/orgs/acme/artifacts /api/v1/orgs/acme/artifacts /api/v1/orgs/acme/releases"; strings.Join(posts, " ") != want {
		t.Errorf("POSTs = %v, want three uploads and the release", posts)
	}
	rel1 := decode[release.Release](t, ok(t, s.ctl(t, "--json", "releases", "show", strings.Fields(rowWith(t, r.out, "id:"))[1])).out)
	if rel1.Counter != 1 || rel1.Components == 0 || rel1.SBOMFormat != "cyclonedx" || len(rel1.Artifacts) != 2 {
		t.Fatalf("release 1 = %+v", rel1)
	}

	comps := ok(t, s.ctl(t, "releases", "components", rel1.ID)).out
	lines := strings.Split(strings.TrimRight(comps, "\n"), "\n")
	contains(t, lines[0], "PURL", "NAME", "VERSION", "SOURCE")
	if len(lines)-1 != rel1.Components {
		t.Errorf("releases components listed %d rows, the release counts %d components", len(lines)-1, rel1.Components)
	}
	contains(t, rowWith(t, comps, "pkg:deb/ubuntu/adduser@3.118ubuntu2"), "adduser", "3.118ubuntu2")
	if cs := decode[[]release.Component](t, ok(t, s.ctl(t, "--json", "releases", "components", rel1.ID)).out); len(cs) != rel1.Components {
		t.Errorf("components --json = %d, want %d", len(cs), rel1.Components)
	}

	// An artifact id instead of a file is not uploaded again; the counter goes up.
	var full release.ReleaseArtifact
	for _, a := range rel1.Artifacts {
		if a.Kind == release.KindFull {
			full = a
		}
	}
	img2, _, _ := randomFile(t, "gw-2.4.1.img", 1<<20, 12)
	s.requests()
	rel2 := decode[release.Release](t, ok(t, s.ctl(t, "--json", "releases", "create", "--product", "gw", "--version", "2.4.1",
		"--artifact", full.ID, "--artifact", img2,
		"--sbom", filepath.Join(sboms, "balenalib-armv7hf-alpine-node.alpine-3.16.1.trivy.spdx.json"))).out)
	if rel2.Counter != 2 || rel2.SBOMFormat != "spdx" || rel2.Components == 0 || len(rel2.Artifacts) != 2 || rel2.Fixes == nil {
		t.Errorf("release 2 = %+v", rel2)
	}
	uploads := 0
	for _, req := range s.requests() {
		if req.method == http.MethodPost && req.path == "/api/v1/orgs/acme/artifacts" {
			uploads++
		}
	}
	if uploads != 2 {
		t.Errorf("release 2 uploaded %d files, want the new image and the SBOM", uploads)
	}

	list := ok(t, s.ctl(t, "releases", "list")).out
	contains(t, list, "ID", "PRODUCT", "VERSION", "COUNTER", "SECURITY FIX", "FIXES", "COMPONENTS")
	contains(t, rowWith(t, list, rel1.ID), "gw", "2.4.0", " 1 ", "yes", "CVE-2024-1234,GHSA-abcd-efgh-ijkl", strconv.Itoa(rel1.Components))
	contains(t, rowWith(t, list, rel2.ID), "gw", "2.4.1", " 2 ", "no", strconv.Itoa(rel2.Components))
	rs := decode[[]release.Release](t, ok(t, s.ctl(t, "--json", "releases", "list", "--product", "gw")).out)
	if len(rs) != 2 || rs[0].ID != rel1.ID || rs[1].ID != rel2.ID {
		t.Errorf("releases list --product gw = %+v", rs)
	}

	show := ok(t, s.ctl(t, "releases", "show", rel2.ID)).out
	contains(t, show, rel2.ID, "2.4.1", "release counter:  2", "(spdx)", "fixes:", "none", full.ID, "gw-2.4.1.img")

	// A second product has its own counter and its own listing.
	ok(t, s.ctl(t, "products", "create", "cam", "--name", "Camera", "--hardware-id", "cam-hw", "--capability", "single-slot", "--link", "wifi"))
	contains(t, ok(t, s.ctl(t, "releases", "create", "--product", "cam", "--version", "1.0", "--artifact", full.ID)).out, "release counter:  1")
	if rs := decode[[]release.Release](t, ok(t, s.ctl(t, "--json", "releases", "list", "--product", "cam")).out); len(rs) != 1 || rs[0].Product != "cam" {
		t.Errorf("releases list --product cam = %+v", rs)
	}
}

func TestReleasesBadInput(t *testing.T) {
	s := newTestServer(t)
	s.newProduct(t)
	img, _, _ := randomFile(t, "gw.img", 64<<10, 20)
	s.requests()

	failed(t, s.ctl(t, "releases", "create", "--product", "gw", "--version", "1", "--artifact", "absent.img"),
		"error: --artifact absent.img: no such file, and not an artifact id")
	failed(t, s.ctl(t, "releases", "create", "--product", "gw", "--version", "1", "--artifact", img, "--sbom", "absent.json"),
		"error: --sbom absent.json: no such file")
	failed(t, s.ctl(t, "releases", "create", "--product", "gw", "--version", "1", "--artifact", img, "--delta", img+":abc"),
		"is not FILE:PRECURSOR_SHA256")
	failed(t, s.ctl(t, "releases", "create", "--product", "gw", "--artifact", img), `required flag(s) "version" not set`)
	if reqs := s.requests(); len(reqs) != 0 {
		t.Errorf("invalid command lines sent %d requests", len(reqs))
	}

	// The server's problems, before any upload for an unknown product.
	failed(t, s.ctl(t, "releases", "create", "--product", "nope", "--version", "1", "--artifact", img), "error: Not Found (404): ")
	for _, req := range s.requests() {
		if req.method == http.MethodPost {
			t.Errorf("with an unknown product ctl still sent POST %s", req.path)
		}
	}
	const missing = "01900000-0000-7000-8000-000000000000"
	failed(t, s.ctl(t, "releases", "create", "--product", "gw", "--version", "1", "--artifact", missing),
		"error: Bad Request (400): artifacts[0].id: no artifact "+missing+" in this organization: upload it first")
	r := s.ctl(t, "releases", "create", "--product", "gw", "--version", "1", "--artifact", img, "--fixes", "not an id")
	failed(t, r, `error: Bad Request (400): fixes: "not an id" is not a vulnerability id`)
	contains(t, r.errOut, "the files were uploaded; to retry without uploading them again, give the artifact ids instead: --artifact ")
	s.requests()
	r = s.ctl(t, "releases", "create", "--product", "gw", "--version", "1", "--artifact", img, "--sbom", img)
	failed(t, r, "error: Bad Request (400): sbom_artifact_id: ")
	if n := strings.Count(r.errOut, "already uploaded as artifact "); n != 1 {
		t.Errorf("a file given twice was uploaded %d times:\n%s", n, r.errOut)
	}
	if !regexp.MustCompile(`give the artifact ids instead: --artifact (\S+) --sbom (\S+)\n`).MatchString(r.errOut) {
		t.Errorf("the retry hint lacks --artifact ID --sbom ID:\n%s", r.errOut)
	}
	failed(t, s.ctl(t, "releases", "show", missing), "error: Not Found (404)")
	failed(t, s.ctl(t, "releases", "components", missing), "error: Not Found (404)")
	failed(t, s.ctl(t, "releases", "list", "--product", "nope"), "error: Not Found (404)")
	if out := ok(t, s.ctl(t, "--json", "releases", "list")).out; strings.TrimSpace(out) != "[]" {
		t.Errorf("after failed creates, releases list --json = %s", out)
	}
}
