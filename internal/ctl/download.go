package ctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"time"
)

// errStalled cancels a transfer that moved nothing for --timeout.
var errStalled = errors.New("transfer stalled")

// transfer is one request that may move far more data than fits in
// --timeout: --timeout bounds the wait for the response and every silence
// while data flows rather than the whole exchange, so exporting a large
// fleet or uploading a firmware image is not cut off while bytes move.
type transfer struct {
	c      *client
	ctx    context.Context // the request's; cancelled with errStalled on silence
	cancel context.CancelCauseFunc
	idle   time.Duration
	timer  *time.Timer
}

func (c *client) newTransfer(ctx context.Context) *transfer {
	ctx, cancel := context.WithCancelCause(ctx)
	t := &transfer{c: c, ctx: ctx, cancel: cancel, idle: c.hc.Timeout}
	if t.idle > 0 {
		t.timer = time.AfterFunc(t.idle, func() { cancel(errStalled) })
	}
	return t
}

// close releases the transfer; call it once the response body is done.
func (t *transfer) close() {
	if t.timer != nil {
		t.timer.Stop()
	}
	t.cancel(nil)
}

// moved restarts the idle timer: data flowed. Safe for concurrent use
// (the transport reads a request body on its own goroutine).
func (t *transfer) moved() {
	if t.timer != nil {
		t.timer.Reset(t.idle)
	}
}

// stalled reports whether the idle timer ended the transfer.
func (t *transfer) stalled() bool { return errors.Is(context.Cause(t.ctx), errStalled) }

// do sends req, which must carry t.ctx, without the client's
// whole-request time limit (the idle timer replaces it).
func (t *transfer) do(req *http.Request, stalled func() error) (*http.Response, error) {
	hc := *t.c.hc
	hc.Timeout = 0
	resp, err := hc.Do(req)
	if err != nil {
		if t.stalled() {
			return nil, stalled()
		}
		return nil, t.c.transportError(err)
	}
	return resp, nil
}

// download streams the body of a GET (an export, which may be far larger
// than maxResponse) to w unchanged. wantType is the media type a
// successful response must have. It returns the number of bytes written.
func (c *client) download(ctx context.Context, path string, q url.Values, wantType string, w io.Writer) (int64, error) {
	t := c.newTransfer(ctx)
	defer t.close()
	stalled := func() error {
		return fmt.Errorf("the Steward server at %s sent nothing for %s; check --server, or raise --timeout", c.base, t.idle)
	}

	req, err := c.request(t.ctx, http.MethodGet, path, q, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Accept", wantType+", application/problem+json")
	resp, err := t.do(req, stalled)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if err := c.checkStream(req, resp, wantType); err != nil {
		return 0, err
	}

	body := &watchedReader{r: resp.Body, progress: func(int) { t.moved() }}
	n, err := io.Copy(w, body)
	switch {
	case err == nil:
		return n, nil
	case body.err == nil: // the writer failed
		return n, fmt.Errorf("writing the export: %w", err)
	case t.stalled():
		return n, fmt.Errorf("%w; the output is incomplete (%d bytes)", stalled(), n)
	}
	return n, fmt.Errorf("the export from %s broke off after %d bytes (%v); the output is incomplete", c.base, n, body.err)
}

// checkStream turns an error status into the server's problem, and
// refuses a successful response that is not of wantType.
func (c *client) checkStream(req *http.Request, resp *http.Response, wantType string) error {
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return responseError(resp.StatusCode, mt, body)
	}
	if mt != wantType {
		return fmt.Errorf("the server at %s answered %s %s with %s instead of %s; is --server pointing at a Steward server?",
			c.base, req.Method, req.URL.Path, describeType(mt), wantType)
	}
	return nil
}

// watchedReader reports progress and remembers its read error, so a
// failed copy can blame the right side.
type watchedReader struct {
	r        io.Reader
	progress func(n int) // called with the size of each non-empty read
	err      error
}

func (w *watchedReader) Read(p []byte) (int, error) {
	n, err := w.r.Read(p)
	if n > 0 && w.progress != nil {
		w.progress(n)
	}
	if err != nil && err != io.EOF {
		w.err = err
	}
	return n, err
}
