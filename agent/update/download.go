package update

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/steward-iot/steward/agent/crashpoint"
)

// Errors Download returns, wrapped with details. After either one nothing
// of the download is kept: resuming it could only repeat the failure.
var (
	ErrEndlessData  = errors.New("server sent more than the signed length")
	ErrDownloadHash = errors.New("downloaded image does not match its signed hash")
)

// StatusError is an HTTP answer the downloader cannot use.
type StatusError struct {
	URL        string
	StatusCode int
}

func (e *StatusError) Error() string { return fmt.Sprintf("GET %s: HTTP %d", e.URL, e.StatusCode) }

// Downloader streams targets to files in Dir, resuming partial files, so a
// device on a flaky link makes progress and never holds an image in memory
// (go-tuf's DownloadTarget does both wrong for images).
//
// Files in Dir are named by the target's sha256: "<hex>.part" while it is
// downloaded (with "<hex>.etag", the validator the download started with),
// "<hex>" once verified. One Downloader must not fetch the same target
// twice at once.
type Downloader struct {
	Client *http.Client // nil: http.DefaultClient
	Dir    string
	// Attempts is how many requests one Download makes at most (default 5);
	// Backoff the wait after the first failure (default 1s), doubled each time.
	Attempts int
	Backoff  time.Duration
	// Progress, if set, is called as bytes arrive with the bytes of the
	// file so far and its signed length; it must return quickly.
	Progress func(done, total int64)
	// StallTimeout ends a request that has received nothing for this long
	// (default 2 minutes); the bytes kept so far are resumed by the next
	// attempt. Without it a server or link that stalls mid-body would hold
	// the agent until TCP gives up, which can take hours.
	StallTimeout time.Duration
}

// Download fetches url, which must hold want.Length bytes with want's
// sha256 (and sha512 if given), and returns the path of the verified file.
// A network failure is retried from where it stopped; a cancelled ctx
// leaves the partial file for the next call.
func (d *Downloader) Download(ctx context.Context, url string, want Image) (string, error) {
	sum := want.Hashes["sha256"]
	if len(sum) != sha256.Size || want.Length < 0 {
		return "", fmt.Errorf("%w: %s: no sha256 or length to check against", ErrDownloadHash, url)
	}
	if err := os.MkdirAll(d.Dir, 0o700); err != nil {
		return "", err
	}
	final := filepath.Join(d.Dir, hex.EncodeToString(sum))
	part, etag := final+".part", final+".etag"
	if _, err := os.Stat(final); err == nil {
		// Finished earlier; check it again, the disk may have changed.
		if err := verifyFile(final, want); err == nil {
			return final, nil
		}
		_ = os.Remove(final)
	}
	attempts, backoff := d.Attempts, d.Backoff
	if attempts <= 0 {
		attempts = 5
	}
	if backoff <= 0 {
		backoff = time.Second
	}
	var last error
	best := fileSize(part)
	for i := 0; i < attempts; i++ {
		if i > 0 {
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				return "", ctx.Err()
			case <-t.C:
			}
			backoff *= 2
		}
		err := d.once(ctx, url, part, etag, want)
		if err == nil {
			crashpoint.Hit("download/before-rename")
			if err := os.Rename(part, final); err != nil {
				return "", err
			}
			_ = os.Remove(etag)
			return final, nil
		}
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		if errors.Is(err, ErrEndlessData) || errors.Is(err, ErrDownloadHash) {
			_ = os.Remove(part)
			_ = os.Remove(etag)
			return "", err
		}
		var se *StatusError
		if errors.As(err, &se) && se.StatusCode < 500 && se.StatusCode != http.StatusRequestedRangeNotSatisfiable {
			return "", err // 404 and the like will not get better by asking again
		}
		last = err
		// A link that drops often but makes progress is not giving up:
		// Attempts counts failures in a row without a new byte kept.
		if n := fileSize(part); n > best {
			best, i, backoff = n, 0, d.Backoff
			if backoff <= 0 {
				backoff = time.Second
			}
		}
	}
	return "", fmt.Errorf("download %s: giving up after %d attempts: %w", url, attempts, last)
}

// errRestart: the server's answer did not continue the partial file, which
// is now emptied; the next attempt starts from zero.
var errRestart = errors.New("server did not continue the partial download")

// once makes one request, continuing part if it holds anything.
func (d *Downloader) once(ctx context.Context, url, part, etagFile string, want Image) error {
	f, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	hs := newHashes(want)
	// Hash what earlier attempts kept: the digest covers the whole file.
	have, err := io.Copy(hs, io.LimitReader(f, want.Length+1))
	if err != nil {
		return err
	}
	restart := func() error {
		hs = newHashes(want)
		have = 0
		_ = os.Remove(etagFile)
		return f.Truncate(0)
	}
	if have > want.Length {
		if err := restart(); err != nil {
			return err
		}
	}
	if have == want.Length {
		return hs.verify(url, want)
	}

	stall := d.StallTimeout
	if stall <= 0 {
		stall = 2 * time.Minute
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	watchdog := time.AfterFunc(stall, func() { cancel(errStalled) })
	defer watchdog.Stop()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if have > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(have, 10)+"-")
		// If-Range makes a server whose file changed send all of it (200)
		// instead of a tail that does not fit; weak tags are not allowed.
		if tag, err := os.ReadFile(etagFile); err == nil && len(tag) > 0 && !bytes.HasPrefix(tag, []byte("W/")) {
			req.Header.Set("If-Range", string(tag))
		}
	}
	client := d.Client
	if client == nil {
		client = http.DefaultClient
	}
	res, err := client.Do(req)
	if err != nil {
		if context.Cause(ctx) == errStalled {
			return fmt.Errorf("GET %s: %w (no answer)", url, errStalled)
		}
		return err
	}
	defer res.Body.Close()
	switch res.StatusCode {
	case http.StatusPartialContent:
		if start, ok := rangeStart(res.Header.Get("Content-Range")); !ok || start != have || have == 0 {
			if err := restart(); err != nil {
				return err
			}
			return fmt.Errorf("%w: asked for byte %d, got %q", errRestart, have, res.Header.Get("Content-Range"))
		}
	case http.StatusOK:
		// The whole file: the server ignores Range, or If-Range failed.
		if err := restart(); err != nil {
			return err
		}
		if tag := res.Header.Get("ETag"); tag != "" {
			if err := os.WriteFile(etagFile, []byte(tag), 0o600); err != nil {
				return err
			}
		}
	case http.StatusRequestedRangeNotSatisfiable:
		// The server has fewer bytes than we kept: start again.
		if err := restart(); err != nil {
			return err
		}
		return &StatusError{URL: url, StatusCode: res.StatusCode}
	default:
		return &StatusError{URL: url, StatusCode: res.StatusCode}
	}
	left := want.Length - have
	if res.ContentLength > left {
		return fmt.Errorf("%w: %s announces %d bytes from byte %d, the signed length is %d", ErrEndlessData, url, res.ContentLength, have, want.Length)
	}
	if _, err := f.Seek(have, io.SeekStart); err != nil {
		return err
	}
	var w io.Writer = io.MultiWriter(crashWriter{f, "download/write"}, hs, stallWriter{watchdog, stall})
	if d.Progress != nil {
		w = &progressWriter{w: w, done: have, total: want.Length, report: d.Progress}
	}
	n, err := io.Copy(w, io.LimitReader(res.Body, left))
	if err != nil {
		if context.Cause(ctx) == errStalled {
			return fmt.Errorf("GET %s: %w after byte %d", url, errStalled, have+n)
		}
		return err // what was written stays for the next attempt
	}
	if n < left {
		return fmt.Errorf("GET %s: %w after %d of %d bytes", url, io.ErrUnexpectedEOF, have+n, want.Length)
	}
	// Never write beyond the signed length; a server with more is lying.
	var extra [1]byte
	if k, _ := io.ReadFull(res.Body, extra[:]); k > 0 {
		return fmt.Errorf("%w: %s continues past %d bytes", ErrEndlessData, url, want.Length)
	}
	if err := hs.verify(url, want); err != nil {
		return err
	}
	return f.Sync()
}

// errStalled: no byte arrived for StallTimeout.
var errStalled = errors.New("no data for too long; the download is resumed")

// stallWriter resets the stall watchdog whenever bytes arrive.
type stallWriter struct {
	t *time.Timer
	d time.Duration
}

func (s stallWriter) Write(p []byte) (int, error) {
	s.t.Reset(s.d)
	return len(p), nil
}

// progressWriter tells Progress how far a download got.
type progressWriter struct {
	w           io.Writer
	done, total int64
	report      func(done, total int64)
}

func (p *progressWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	p.done += int64(n)
	p.report(p.done, p.total)
	return n, err
}

// crashWriter marks each write as a point where power may fail.
type crashWriter struct {
	w    io.Writer
	name string
}

func (c crashWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	crashpoint.Hit(c.name)
	return n, err
}

// rangeStart reads the first byte position of "bytes a-b/n".
func rangeStart(cr string) (int64, bool) {
	rest, ok := strings.CutPrefix(cr, "bytes ")
	if !ok {
		return 0, false
	}
	a, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(a, 10, 64)
	return n, err == nil && n >= 0
}

// hashes computes sha256 and, when the target signs it, sha512.
type hashes struct {
	io.Writer
	s256, s512 hash.Hash
}

func newHashes(want Image) *hashes {
	h := &hashes{s256: sha256.New()}
	h.Writer = h.s256
	if len(want.Hashes["sha512"]) > 0 {
		h.s512 = sha512.New()
		h.Writer = io.MultiWriter(h.s256, h.s512)
	}
	return h
}

func (h *hashes) verify(name string, want Image) error {
	if got := h.s256.Sum(nil); !bytes.Equal(got, want.Hashes["sha256"]) {
		return fmt.Errorf("%w: %s has sha256 %x, signed %x", ErrDownloadHash, name, got, want.Hashes["sha256"])
	}
	if h.s512 != nil && !bytes.Equal(h.s512.Sum(nil), want.Hashes["sha512"]) {
		return fmt.Errorf("%w: %s sha512", ErrDownloadHash, name)
	}
	return nil
}

func fileSize(p string) int64 {
	fi, err := os.Stat(p)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// verifyFile checks a whole file against want's length and hashes.
func verifyFile(path string, want Image) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	hs := newHashes(want)
	n, err := io.Copy(hs, io.LimitReader(f, want.Length+1))
	if err != nil {
		return err
	}
	if n != want.Length {
		return fmt.Errorf("%w: %s is %d bytes, signed %d", ErrDownloadHash, path, n, want.Length)
	}
	return hs.verify(path, want)
}
