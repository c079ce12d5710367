package blob

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

func newTestDir(t *testing.T) (*Dir, string) {
	t.Helper()
	root := filepath.Join(t.TempDir(), "store")
	d, err := NewDir(root)
	if err != nil {
		t.Fatalf("NewDir: %v", err)
	}
	return d, root
}

// storedFiles lists every non-directory under root, relative to it.
func storedFiles(t *testing.T, root string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !e.IsDir() {
			rel, _ := filepath.Rel(root, p)
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", root, err)
	}
	return files
}

func assertNothingKept(t *testing.T, root string) {
	t.Helper()
	if files := storedFiles(t, root); len(files) != 0 {
		t.Errorf("store should hold no files (blobs or temps), has %q", files)
	}
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// genReader yields n deterministic pseudo-random bytes (xorshift64). It has
// only Read, so Put cannot seek, stat or otherwise shortcut the stream.
type genReader struct {
	state uint64
	left  int64
}

func (g *genReader) Read(p []byte) (int, error) {
	if g.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > g.left {
		p = p[:g.left]
	}
	for i := 0; i < len(p); i += 8 {
		g.state ^= g.state << 13
		g.state ^= g.state >> 7
		g.state ^= g.state << 17
		if i+8 <= len(p) {
			binary.LittleEndian.PutUint64(p[i:], g.state)
		} else {
			for j := i; j < len(p); j++ {
				p[j] = byte(g.state >> (8 * (j - i)))
			}
		}
	}
	g.left -= int64(len(p))
	return len(p), nil
}

func TestPutOpenStatRoundTrip(t *testing.T) {
	ctx := context.Background()
	d, root := newTestDir(t)

	info, err := d.Put(ctx, strings.NewReader("abc"), 1<<20, abcSHA256)
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	want := Info{SHA256: abcSHA256, SHA512: abcSHA512, Size: 3}
	if info != want {
		t.Fatalf("Put info = %+v, want %+v", info, want)
	}

	// The on-disk layout is part of the contract (backups, ops tooling).
	wantFiles := []string{"sha256/ba/" + abcSHA256, "sha256/ba/" + abcSHA256 + ".sha512"}
	if got := storedFiles(t, root); strings.Join(got, ",") != strings.Join(wantFiles, ",") {
		t.Errorf("files = %q, want %q", got, wantFiles)
	}
	side, err := os.ReadFile(filepath.Join(root, "sha256", "ba", abcSHA256+".sha512"))
	if err != nil || string(side) != abcSHA512+"\n" {
		t.Errorf("sidecar = %q, %v", side, err)
	}

	f, oinfo, err := d.Open(ctx, abcSHA256)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer f.Close()
	body, err := io.ReadAll(f)
	if err != nil || string(body) != "abc" {
		t.Errorf("content = %q, %v", body, err)
	}
	if oinfo != want {
		t.Errorf("Open info = %+v, want %+v", oinfo, want)
	}

	// A fresh Dir on the same root (a restart) sees the blob without rehashing.
	d2, err := NewDir(root)
	if err != nil {
		t.Fatalf("NewDir again: %v", err)
	}
	sinfo, err := d2.Stat(ctx, abcSHA256)
	if err != nil || sinfo != want {
		t.Errorf("Stat = %+v, %v; want %+v", sinfo, err, want)
	}
}

func TestPutEmptyBlob(t *testing.T) {
	d, _ := newTestDir(t)
	info, err := d.Put(context.Background(), strings.NewReader(""), 0, "")
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	want := Info{
		SHA256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		SHA512: "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce" +
			"47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e",
		Size: 0,
	}
	if info != want {
		t.Errorf("info = %+v, want %+v", info, want)
	}
}

func TestPutPutsAgainIdempotently(t *testing.T) {
	ctx := context.Background()
	d, root := newTestDir(t)
	for i := 0; i < 3; i++ {
		if _, err := d.Put(ctx, strings.NewReader("abc"), 3, ""); err != nil {
			t.Fatalf("Put #%d: %v", i, err)
		}
	}
	if got := storedFiles(t, root); len(got) != 2 {
		t.Errorf("files = %q, want blob and sidecar only", got)
	}
}

func TestPutLargeStreamWithoutBuffering(t *testing.T) {
	const size = 64 << 20
	var src io.Reader = &genReader{state: 0x9e3779b97f4a7c15, left: size}
	if _, ok := src.(io.Seeker); ok {
		t.Fatal("generator must not be seekable")
	}
	h256, h512 := sha256.New(), sha512.New()
	if _, err := io.Copy(io.MultiWriter(h256, h512), &genReader{state: 0x9e3779b97f4a7c15, left: size}); err != nil {
		t.Fatal(err)
	}
	want := Info{SHA256: hex.EncodeToString(h256.Sum(nil)), SHA512: hex.EncodeToString(h512.Sum(nil)), Size: size}

	d, root := newTestDir(t)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	info, err := d.Put(context.Background(), src, size, want.SHA256)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	if info != want {
		t.Fatalf("info = %+v, want %+v", info, want)
	}
	// Buffering the blob would allocate at least size bytes.
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4<<20 {
		t.Errorf("Put allocated %d bytes for a %d byte blob; it must stream", alloc, size)
	}
	fi, err := os.Stat(filepath.Join(root, "sha256", want.SHA256[:2], want.SHA256))
	if err != nil || fi.Size() != size {
		t.Errorf("stored file: %v, %v", fi, err)
	}
}

func TestPutTooLargeKeepsNothing(t *testing.T) {
	ctx := context.Background()
	d, root := newTestDir(t)

	for _, n := range []int64{11, 1 << 20} { // just over, and far over in one chunk
		_, err := d.Put(ctx, &genReader{state: 1, left: n}, 10, "")
		if !errors.Is(err, ErrTooLarge) {
			t.Fatalf("Put %d bytes with maxSize 10: err = %v, want ErrTooLarge", n, err)
		}
		if !strings.Contains(err.Error(), "10") {
			t.Errorf("error %q should name the limit", err)
		}
		assertNothingKept(t, root)
	}

	info, err := d.Put(ctx, &genReader{state: 1, left: 10}, 10, "")
	if err != nil || info.Size != 10 {
		t.Errorf("Put of exactly maxSize: %+v, %v", info, err)
	}
}

func TestPutNegativeMaxSize(t *testing.T) {
	d, root := newTestDir(t)
	if _, err := d.Put(context.Background(), strings.NewReader(""), -1, ""); err == nil {
		t.Error("Put with maxSize -1 succeeded")
	}
	assertNothingKept(t, root)
}

func TestPutDigestMismatchKeepsNothing(t *testing.T) {
	ctx := context.Background()
	d, root := newTestDir(t)

	_, err := d.Put(ctx, strings.NewReader("abd"), 1<<20, abcSHA256)
	if !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("err = %v, want ErrDigestMismatch", err)
	}
	if msg := err.Error(); !strings.Contains(msg, abcSHA256) || !strings.Contains(msg, sha256Hex([]byte("abd"))) {
		t.Errorf("error %q should name both digests", msg)
	}
	assertNothingKept(t, root)

	// A mismatching upload must not disturb the genuine blob either.
	if _, err := d.Put(ctx, strings.NewReader("abc"), 1<<20, abcSHA256); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Put(ctx, strings.NewReader("evil"), 1<<20, abcSHA256); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("err = %v, want ErrDigestMismatch", err)
	}
	f, _, err := d.Open(ctx, abcSHA256)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if b, _ := io.ReadAll(f); string(b) != "abc" {
		t.Errorf("content = %q after rejected upload", b)
	}
	if got := storedFiles(t, root); len(got) != 2 {
		t.Errorf("files = %q, want blob and sidecar only", got)
	}
}

func TestInvalidDigestRejectedBeforeFilesystem(t *testing.T) {
	ctx := context.Background()
	d, root := newTestDir(t)
	// A file a traversal would reach: it must survive Delete attempts.
	victim := filepath.Join(filepath.Dir(root), "victim")
	if err := os.WriteFile(victim, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct{ in, wantMsg string }{
		{"../../etc/passwd", "want 64 hex characters, got 16"},
		{"../../../victim", "got 15"},
		{"../" + strings.Repeat("0", 57) + "/../", "byte 0 ('.')"},
		{strings.ToUpper(abcSHA256), "not lowercase hex"},
		{abcSHA256[:40], "got 40"},
		{"", "got 0"},
		{"sha256:" + abcSHA256, "got 71"},
		{abcSHA256[:63] + "\x00", "byte 63"},
	} {
		checkErr := func(op string, err error) {
			t.Helper()
			if !errors.Is(err, ErrInvalidDigest) {
				t.Errorf("%s(%q): err = %v, want ErrInvalidDigest", op, tc.in, err)
			} else if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("%s(%q): err = %q, want it to say %q", op, tc.in, err, tc.wantMsg)
			}
		}
		_, _, err := d.Open(ctx, tc.in)
		checkErr("Open", err)
		_, err = d.Stat(ctx, tc.in)
		checkErr("Stat", err)
		checkErr("Delete", d.Delete(ctx, tc.in))
		if tc.in != "" { // empty wantSHA256 means "don't check"
			_, err = d.Put(ctx, strings.NewReader("abc"), 10, tc.in)
			checkErr("Put", err)
			if err != nil && !strings.Contains(err.Error(), "wantSHA256") {
				t.Errorf("Put error %q should name the wantSHA256 argument", err)
			}
		}
	}
	if _, err := os.Stat(victim); err != nil {
		t.Errorf("victim file: %v", err)
	}
	assertNothingKept(t, root)
}

func TestPutConcurrentSameContent(t *testing.T) {
	ctx := context.Background()
	d, root := newTestDir(t)
	// A second Dir on the same root stands in for another server process.
	d2, err := NewDir(root)
	if err != nil {
		t.Fatal(err)
	}
	content, _ := io.ReadAll(&genReader{state: 42, left: 3<<20 + 5})
	wantSHA := sha256Hex(content)

	const n = 8
	var wg sync.WaitGroup
	start := make(chan struct{})
	infos := make([]Info, n)
	errs := make([]error, n)
	for i := range n {
		store := d
		if i%2 == 1 {
			store = d2
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			infos[i], errs[i] = store.Put(ctx, bytes.NewReader(content), int64(len(content)), wantSHA)
		}()
	}
	close(start)
	wg.Wait()

	for i := range n {
		if errs[i] != nil {
			t.Errorf("Put #%d: %v", i, errs[i])
		} else if infos[i] != infos[0] {
			t.Errorf("Put #%d info %+v differs from %+v", i, infos[i], infos[0])
		}
	}
	f, info, err := d.Open(ctx, wantSHA)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, _ := io.ReadAll(f)
	if !bytes.Equal(got, content) || info != infos[0] {
		t.Errorf("stored blob differs (len %d, info %+v)", len(got), info)
	}
	if files := storedFiles(t, root); len(files) != 2 {
		t.Errorf("files = %q, want blob and sidecar only (no temps)", files)
	}
}

// cancelReader cancels its context during the first Read, then keeps
// supplying data as a client that ignores the cancellation would.
type cancelReader struct {
	cancel context.CancelFunc
	reads  int
}

func (r *cancelReader) Read(p []byte) (int, error) {
	r.reads++
	r.cancel()
	return len(p), nil
}

func TestPutCancelMidStreamKeepsNothing(t *testing.T) {
	d, root := newTestDir(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := &cancelReader{cancel: cancel}

	_, err := d.Put(ctx, r, 1<<30, "")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if r.reads != 1 {
		t.Errorf("Put read %d chunks; it should stop at the first check after cancel", r.reads)
	}
	assertNothingKept(t, root)

	// Already cancelled: nothing read, nothing kept.
	r = &cancelReader{cancel: func() {}}
	if _, err := d.Put(ctx, r, 1<<30, ""); !errors.Is(err, context.Canceled) || r.reads != 0 {
		t.Errorf("pre-cancelled Put: err = %v, reads = %d", err, r.reads)
	}
	assertNothingKept(t, root)
}

type failingReader struct{ n int }

var errBroken = errors.New("connection reset")

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, errBroken
	}
	r.n--
	return copy(p, "data"), nil
}

func TestPutReadErrorKeepsNothing(t *testing.T) {
	d, root := newTestDir(t)
	_, err := d.Put(context.Background(), &failingReader{n: 3}, 1<<20, "")
	if !errors.Is(err, errBroken) {
		t.Fatalf("err = %v, want the reader's error", err)
	}
	assertNothingKept(t, root)
}

func TestOpenSeeksForRangeRequests(t *testing.T) {
	ctx := context.Background()
	d, _ := newTestDir(t)
	content, _ := io.ReadAll(&genReader{state: 7, left: 1000})
	info, err := d.Put(ctx, bytes.NewReader(content), 1000, "")
	if err != nil {
		t.Fatal(err)
	}

	f, _, err := d.Open(ctx, info.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if pos, err := f.Seek(-10, io.SeekEnd); err != nil || pos != 990 {
		t.Fatalf("Seek end: %d, %v", pos, err)
	}
	tail, _ := io.ReadAll(f)
	if !bytes.Equal(tail, content[990:]) {
		t.Errorf("tail = %x", tail)
	}

	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/blobs/"+info.SHA256, nil)
	req.Header.Set("Range", "bytes=100-199")
	http.ServeContent(rec, req, "", time.Time{}, f)
	if rec.Code != http.StatusPartialContent {
		t.Fatalf("status = %d, want 206", rec.Code)
	}
	if !bytes.Equal(rec.Body.Bytes(), content[100:200]) {
		t.Errorf("range body differs from content[100:200]")
	}
	if got := rec.Header().Get("Content-Range"); got != "bytes 100-199/1000" {
		t.Errorf("Content-Range = %q", got)
	}
}

func TestDeleteThenNotFound(t *testing.T) {
	ctx := context.Background()
	d, root := newTestDir(t)
	if _, err := d.Put(ctx, strings.NewReader("abc"), 3, ""); err != nil {
		t.Fatal(err)
	}
	if err := d.Delete(ctx, abcSHA256); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := d.Stat(ctx, abcSHA256); !errors.Is(err, ErrNotFound) {
		t.Errorf("Stat after Delete: err = %v, want ErrNotFound", err)
	}
	if _, _, err := d.Open(ctx, abcSHA256); !errors.Is(err, ErrNotFound) {
		t.Errorf("Open after Delete: err = %v, want ErrNotFound", err)
	}
	if err := d.Delete(ctx, abcSHA256); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Delete: err = %v, want ErrNotFound", err)
	} else if !strings.Contains(err.Error(), abcSHA256) {
		t.Errorf("error %q should name the digest", err)
	}
	assertNothingKept(t, root) // the sidecar went too
}

func TestStatMissingSidecarIsCorruptionNotNotFound(t *testing.T) {
	ctx := context.Background()
	d, root := newTestDir(t)
	if _, err := d.Put(ctx, strings.NewReader("abc"), 3, ""); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(root, "sha256", "ba", abcSHA256+".sha512")); err != nil {
		t.Fatal(err)
	}
	_, err := d.Stat(ctx, abcSHA256)
	if err == nil || errors.Is(err, ErrNotFound) || errors.Is(err, ErrInvalidDigest) || errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("err = %v, want a corruption error distinct from not-found", err)
	}
	if !strings.Contains(err.Error(), "sidecar") {
		t.Errorf("error %q should mention the sidecar", err)
	}
	// Putting the content again repairs it.
	if _, err := d.Put(ctx, strings.NewReader("abc"), 3, abcSHA256); err != nil {
		t.Fatal(err)
	}
	if info, err := d.Stat(ctx, abcSHA256); err != nil || info.SHA512 != abcSHA512 {
		t.Errorf("Stat after repair = %+v, %v", info, err)
	}
}

func TestNewDirRemovesStaleTemps(t *testing.T) {
	root := filepath.Join(t.TempDir(), "store")
	if _, err := NewDir(root); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(root, "tmp", "put-stale")
	fresh := filepath.Join(root, "tmp", "put-fresh")
	for _, p := range []string{stale, fresh} {
		if err := os.WriteFile(p, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-48 * time.Hour)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}
	if _, err := NewDir(root); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stale temp still present: %v", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("fresh temp (an upload in progress) was removed: %v", err)
	}
}

func TestNewDirRejectsEmptyRoot(t *testing.T) {
	if _, err := NewDir(""); err == nil {
		t.Error("NewDir(\"\") succeeded")
	}
}

func TestPing(t *testing.T) {
	d, root := newTestDir(t)
	if err := d.Ping(context.Background()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	assertNothingKept(t, root)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := d.Ping(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Ping with cancelled ctx: %v", err)
	}

	if err := os.RemoveAll(root); err != nil {
		t.Fatal(err)
	}
	if err := d.Ping(context.Background()); err == nil {
		t.Error("Ping succeeded after the store directory was removed")
	}
}
