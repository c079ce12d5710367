package blob

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"
)

const (
	// copyBufSize bounds Put's memory use regardless of blob size.
	copyBufSize = 256 << 10
	// staleTempAge is how old an upload temp file must be before NewDir
	// deletes it as crash debris; generous so slow uploads survive.
	staleTempAge = 24 * time.Hour
	sidecarExt   = ".sha512"
)

// Dir is a Store in a local directory:
//
//	<root>/sha256/<hex[:2]>/<hex>         content
//	<root>/sha256/<hex[:2]>/<hex>.sha512  sha512 hex, so Stat and Open needn't rehash
//	<root>/tmp/                           uploads in progress
//
// Concurrent Puts of the same content are safe, also across processes.
// Put, Delete, Stat and Open of the same digest are serialised only within
// one process, so share a root between processes only if they don't Delete.
type Dir struct {
	root string
	// locks are striped by the first digest byte, which is also the shard
	// directory, so shard creation is covered too.
	locks [256]sync.RWMutex
}

var _ Store = (*Dir)(nil)

// NewDir opens (creating if needed) a store rooted at root. It also removes
// upload temp files left behind by crashes.
func NewDir(root string) (*Dir, error) {
	if root == "" {
		return nil, errors.New("blob: empty root directory")
	}
	d := &Dir{root: filepath.Clean(root)}
	for _, p := range []string{d.root, filepath.Join(d.root, "sha256"), d.tmpDir()} {
		if err := os.MkdirAll(p, 0o750); err != nil {
			return nil, fmt.Errorf("blob: %w", err)
		}
	}
	if err := syncDir(d.root); err != nil {
		return nil, fmt.Errorf("blob: %w", err)
	}
	d.removeStaleTemps(time.Now().Add(-staleTempAge))
	return d, nil
}

// Put implements Store. ctx is checked between chunks; a reader blocked in
// Read is not interrupted, so give r its own deadline (e.g. the request's).
// maxSize 0 allows only empty content.
func (d *Dir) Put(ctx context.Context, r io.Reader, maxSize int64, wantSHA256 string) (Info, error) {
	if wantSHA256 != "" {
		if err := checkHex("wantSHA256", wantSHA256, sha256.Size); err != nil {
			return Info{}, err
		}
	}
	if maxSize < 0 {
		return Info{}, fmt.Errorf("blob: put: negative maxSize %d", maxSize)
	}

	tmp, err := os.CreateTemp(d.tmpDir(), "put-*")
	if err != nil {
		return Info{}, fmt.Errorf("blob: put: %w", err)
	}
	// Temp names are cleared once renamed away, so this never removes a
	// file that a concurrent Put has since created under the same name.
	blobTmp, sideTmp := tmp.Name(), ""
	defer func() {
		tmp.Close() // second Close after success is a harmless no-op error
		if blobTmp != "" {
			os.Remove(blobTmp)
		}
		if sideTmp != "" {
			os.Remove(sideTmp)
		}
	}()

	h256, h512 := sha256.New(), sha512.New()
	n, err := copyChunks(ctx, io.MultiWriter(tmp, h256, h512), r, maxSize)
	if err != nil {
		return Info{}, err
	}
	info := Info{
		SHA256: hex.EncodeToString(h256.Sum(nil)),
		SHA512: hex.EncodeToString(h512.Sum(nil)),
		Size:   n,
	}
	if wantSHA256 != "" && info.SHA256 != wantSHA256 {
		return Info{}, fmt.Errorf("%w: got sha256:%s, want sha256:%s", ErrDigestMismatch, info.SHA256, wantSHA256)
	}
	if err := tmp.Sync(); err != nil {
		return Info{}, fmt.Errorf("blob: put: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return Info{}, fmt.Errorf("blob: put: %w", err)
	}
	if sideTmp, err = d.writeTemp("sha512-*", info.SHA512+"\n"); err != nil {
		return Info{}, fmt.Errorf("blob: put: %w", err)
	}
	// Last chance to honour cancellation before the blob becomes visible.
	if err := ctx.Err(); err != nil {
		return Info{}, fmt.Errorf("blob: put aborted before commit: %w", err)
	}

	l := d.lock(info.SHA256)
	l.Lock()
	defer l.Unlock()
	shard := filepath.Dir(d.blobPath(info.SHA256))
	switch err := os.Mkdir(shard, 0o750); {
	case err == nil:
		if err := syncDir(filepath.Dir(shard)); err != nil {
			return Info{}, fmt.Errorf("blob: put: %w", err)
		}
	case !errors.Is(err, fs.ErrExist):
		return Info{}, fmt.Errorf("blob: put: %w", err)
	}
	// Sidecar first: a crash in between leaves an orphan sidecar (harmless,
	// its content is fixed by the blob's), never a blob without its sha512.
	// Renaming over an existing blob is fine: same digest, same bytes.
	if err := os.Rename(sideTmp, d.blobPath(info.SHA256)+sidecarExt); err != nil {
		return Info{}, fmt.Errorf("blob: put: %w", err)
	}
	sideTmp = ""
	if err := os.Rename(blobTmp, d.blobPath(info.SHA256)); err != nil {
		return Info{}, fmt.Errorf("blob: put: %w", err)
	}
	blobTmp = ""
	if err := syncDir(shard); err != nil {
		return Info{}, fmt.Errorf("blob: put: %w", err)
	}
	return info, nil
}

// copyChunks copies src to dst, failing once more than maxSize bytes arrive
// and checking ctx between chunks.
func copyChunks(ctx context.Context, dst io.Writer, src io.Reader, maxSize int64) (int64, error) {
	buf := make([]byte, copyBufSize)
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return n, fmt.Errorf("blob: put aborted after %d bytes: %w", n, err)
		}
		k, rerr := src.Read(buf)
		if k > 0 {
			if int64(k) > maxSize-n {
				return n, fmt.Errorf("%w: content exceeds maxSize %d bytes", ErrTooLarge, maxSize)
			}
			if _, err := dst.Write(buf[:k]); err != nil {
				return n, fmt.Errorf("blob: put: %w", err)
			}
			n += int64(k)
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, fmt.Errorf("blob: put: reading content after %d bytes: %w", n, rerr)
		}
	}
}

// Open implements Store. The returned File is an *os.File; on Unix it stays
// readable even if the blob is deleted meanwhile.
func (d *Dir) Open(ctx context.Context, sha256hex string) (File, Info, error) {
	if err := checkKey(ctx, sha256hex); err != nil {
		return nil, Info{}, err
	}
	l := d.lock(sha256hex)
	l.RLock()
	defer l.RUnlock()
	f, err := os.Open(d.blobPath(sha256hex))
	if err != nil {
		return nil, Info{}, notFound(sha256hex, err)
	}
	info, err := d.info(sha256hex, f.Stat)
	if err != nil {
		f.Close()
		return nil, Info{}, err
	}
	return f, info, nil
}

// Stat implements Store.
func (d *Dir) Stat(ctx context.Context, sha256hex string) (Info, error) {
	if err := checkKey(ctx, sha256hex); err != nil {
		return Info{}, err
	}
	l := d.lock(sha256hex)
	l.RLock()
	defer l.RUnlock()
	return d.info(sha256hex, func() (fs.FileInfo, error) { return os.Stat(d.blobPath(sha256hex)) })
}

// info builds Info from the blob's metadata (from stat) and its sidecar.
func (d *Dir) info(sum string, stat func() (fs.FileInfo, error)) (Info, error) {
	fi, err := stat()
	if err != nil {
		return Info{}, notFound(sum, err)
	}
	if !fi.Mode().IsRegular() {
		return Info{}, fmt.Errorf("blob: sha256:%s: not a regular file (%v)", sum, fi.Mode().Type())
	}
	// Corruption is reported with %v, not %w: it must not look like
	// ErrNotFound or ErrInvalidDigest, which callers map to client errors.
	raw, err := os.ReadFile(d.blobPath(sum) + sidecarExt)
	if err != nil {
		return Info{}, fmt.Errorf("blob: sha256:%s: reading sha512 sidecar (Put the content again to repair): %v", sum, err)
	}
	sha512hex := strings.TrimSuffix(string(raw), "\n")
	if err := checkHex("sha512", sha512hex, sha512.Size); err != nil {
		return Info{}, fmt.Errorf("blob: sha256:%s: corrupt sha512 sidecar (Put the content again to repair): %v", sum, err)
	}
	return Info{SHA256: sum, SHA512: sha512hex, Size: fi.Size()}, nil
}

// Delete implements Store. Deleting a missing blob returns ErrNotFound.
func (d *Dir) Delete(ctx context.Context, sha256hex string) error {
	if err := checkKey(ctx, sha256hex); err != nil {
		return err
	}
	l := d.lock(sha256hex)
	l.Lock()
	defer l.Unlock()
	p := d.blobPath(sha256hex)
	// Blob first, mirroring Put: a crash in between leaves only an orphan sidecar.
	blobErr := os.Remove(p)
	if blobErr != nil && !errors.Is(blobErr, fs.ErrNotExist) {
		return fmt.Errorf("blob: delete: %w", blobErr)
	}
	if err := os.Remove(p + sidecarExt); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("blob: delete: %w", err)
	}
	if blobErr != nil {
		return notFound(sha256hex, blobErr)
	}
	if err := syncDir(filepath.Dir(p)); err != nil {
		return fmt.Errorf("blob: delete: %w", err)
	}
	return nil
}

// Ping implements Store by creating and removing a file in the temp directory.
func (d *Dir) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("blob: ping: %w", err)
	}
	fi, err := os.Stat(filepath.Join(d.root, "sha256"))
	if err != nil {
		return fmt.Errorf("blob: ping: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("blob: ping: %s is not a directory", filepath.Join(d.root, "sha256"))
	}
	f, err := os.CreateTemp(d.tmpDir(), "ping-*")
	if err != nil {
		return fmt.Errorf("blob: ping: store not writable: %w", err)
	}
	cerr := f.Close()
	if err := errors.Join(cerr, os.Remove(f.Name())); err != nil {
		return fmt.Errorf("blob: ping: %w", err)
	}
	return nil
}

func (d *Dir) tmpDir() string { return filepath.Join(d.root, "tmp") }

// blobPath maps a validated sha256 hex to its path; callers must have
// checked it with checkHex, which is what keeps it inside root.
func (d *Dir) blobPath(sum string) string {
	return filepath.Join(d.root, "sha256", sum[:2], sum)
}

func (d *Dir) lock(sum string) *sync.RWMutex {
	var b [1]byte
	hex.Decode(b[:], []byte(sum[:2])) // cannot fail: sum was validated
	return &d.locks[b[0]]
}

// writeTemp durably writes data to a new temp file and returns its name.
func (d *Dir) writeTemp(pattern, data string) (string, error) {
	f, err := os.CreateTemp(d.tmpDir(), pattern)
	if err != nil {
		return "", err
	}
	_, err = io.WriteString(f, data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

// removeStaleTemps deletes temp files modified before cutoff. Best effort:
// leftovers only waste space, so failure must not stop the server starting.
func (d *Dir) removeStaleTemps(cutoff time.Time) {
	entries, err := os.ReadDir(d.tmpDir())
	if err != nil {
		return
	}
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil || !fi.Mode().IsRegular() || !fi.ModTime().Before(cutoff) {
			continue
		}
		os.Remove(filepath.Join(d.tmpDir(), e.Name()))
	}
}

// checkKey validates a Store key and ctx before any filesystem access.
func checkKey(ctx context.Context, sha256hex string) error {
	if err := checkHex("sha256", sha256hex, sha256.Size); err != nil {
		return err
	}
	return ctx.Err()
}

func notFound(sum string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: sha256:%s", ErrNotFound, sum)
	}
	return fmt.Errorf("blob: sha256:%s: %w", sum, err)
}

// syncDir fsyncs a directory so renames and creations in it survive a crash.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil // directories cannot be opened for fsync there
	}
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
