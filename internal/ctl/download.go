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

// errStalled cancels a download that received nothing for --timeout.
var errStalled = errors.New("download stalled")

// download streams the body of a GET (an export, which may be far larger
// than maxResponse) to w unchanged. wantType is the media type a
// successful response must have. --timeout bounds the wait for the
// response and every silence within the body rather than the whole
// transfer, so exporting a large fleet is not cut off while data flows.
// It returns the number of bytes written.
func (c *client) download(ctx context.Context, path string, q url.Values, wantType string, w io.Writer) (int64, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	idle := c.hc.Timeout
	var timer *time.Timer
	if idle > 0 {
		timer = time.AfterFunc(idle, func() { cancel(errStalled) })
		defer timer.Stop()
	}
	stalled := func() error {
		return fmt.Errorf("the Steward server at %s sent nothing for %s; check --server, or raise --timeout", c.base, idle)
	}

	req, err := c.request(ctx, http.MethodGet, path, q, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Accept", wantType+", application/problem+json")
	hc := *c.hc
	hc.Timeout = 0 // replaced by the idle timer
	resp, err := hc.Do(req)
	if err != nil {
		if errors.Is(context.Cause(ctx), errStalled) {
			return 0, stalled()
		}
		return 0, c.transportError(err)
	}
	defer resp.Body.Close()

	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return 0, responseError(resp.StatusCode, mt, body)
	}
	if mt != wantType {
		return 0, fmt.Errorf("the server at %s answered %s %s with %s instead of %s; is --server pointing at a Steward server?",
			c.base, req.Method, req.URL.Path, describeType(mt), wantType)
	}

	body := &watchedReader{r: resp.Body}
	if timer != nil {
		body.progress = func() { timer.Reset(idle) }
	}
	n, err := io.Copy(w, body)
	switch {
	case err == nil:
		return n, nil
	case body.err == nil: // the writer failed
		return n, fmt.Errorf("writing the export: %w", err)
	case errors.Is(context.Cause(ctx), errStalled):
		return n, fmt.Errorf("%w; the output is incomplete (%d bytes)", stalled(), n)
	}
	return n, fmt.Errorf("the export from %s broke off after %d bytes (%v); the output is incomplete", c.base, n, body.err)
}

// watchedReader reports progress and remembers its read error, so a
// failed copy can blame the right side.
type watchedReader struct {
	r        io.Reader
	progress func()
	err      error
}

func (w *watchedReader) Read(p []byte) (int, error) {
	n, err := w.r.Read(p)
	if n > 0 && w.progress != nil {
		w.progress()
	}
	if err != nil && err != io.EOF {
		w.err = err
	}
	return n, err
}
