package ctl

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"

	"github.com/steward-iot/steward/internal/api"
)

// maxResponse bounds a response body so a misdirected --server cannot make
// ctl buffer without limit.
const maxResponse = 16 << 20

// pageSize is the ?limit= of list requests: the server's maximum, so a
// full listing takes few round trips. Tests lower it.
var pageSize = 500

// client calls the admin API with one bearer token.
type client struct {
	base  string // server URL without a trailing slash
	token string
	hc    *http.Client
}

func (c *client) get(ctx context.Context, path string, q url.Values, out any) (json.RawMessage, error) {
	req, err := c.request(ctx, http.MethodGet, path, q, nil)
	if err != nil {
		return nil, err
	}
	return c.send(req, out)
}

// create POSTs a new resource. The random Idempotency-Key makes a retry of
// this request safe: net/http resends requests carrying it when a reused
// connection fails, and the server answers a repeat with the first result
// instead of creating a second resource.
func (c *client) create(ctx context.Context, path string, in, out any) (json.RawMessage, error) {
	req, err := c.request(ctx, http.MethodPost, path, nil, in)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Idempotency-Key", rand.Text())
	return c.send(req, out)
}

// change sends a body-less state change such as DELETE or .../disable.
func (c *client) change(ctx context.Context, method, path string, out any) (json.RawMessage, error) {
	req, err := c.request(ctx, method, path, nil, nil)
	if err != nil {
		return nil, err
	}
	return c.send(req, out)
}

// sendJSON sends a JSON body without an Idempotency-Key: for changes
// that are idempotent by nature (bulk status changes, tag replacement,
// group membership), where repeating the request does no harm.
func (c *client) sendJSON(ctx context.Context, method, path string, in, out any) (json.RawMessage, error) {
	req, err := c.request(ctx, method, path, nil, in)
	if err != nil {
		return nil, err
	}
	return c.send(req, out)
}

func (c *client) request(ctx context.Context, method, path string, q url.Values, in any) (*http.Request, error) {
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("User-Agent", "steward-ctl")
	req.Header.Set("Accept", "application/json, application/problem+json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req, nil
}

// send performs req and decodes a successful JSON response into out (when
// not nil). It returns the body as received, for --json output that keeps
// fields this build of ctl does not know.
func (c *client) send(req *http.Request, out any) (json.RawMessage, error) {
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, c.transportError(err)
	}
	return c.readJSON(req, resp, out)
}

// readJSON reads and closes the response to req, decoding it as send
// describes.
func (c *client) readJSON(req *http.Request, resp *http.Response, out any) (json.RawMessage, error) {
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return nil, fmt.Errorf("reading the response from %s: %w", c.base, err)
	}
	if len(body) > maxResponse {
		return nil, fmt.Errorf("the response to %s %s is larger than %d MiB; is --server pointing at a Steward server?",
			req.Method, req.URL.Path, maxResponse>>20)
	}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, responseError(resp.StatusCode, mt, body)
	}
	if resp.StatusCode == http.StatusNoContent {
		return nil, nil
	}
	if mt != "application/json" {
		return nil, fmt.Errorf("the server at %s answered %s %s with %s instead of JSON; is --server pointing at a Steward server?",
			c.base, req.Method, req.URL.Path, describeType(mt))
	}
	// Lenient decoding: a newer server may add fields.
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			return nil, fmt.Errorf("unexpected response to %s %s: %w", req.Method, req.URL.Path, err)
		}
	}
	return body, nil
}

func (c *client) transportError(err error) error {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("the Steward server at %s is not reachable (connection refused); "+
			"start it with 'steward serve', or point --server or STEWARD_SERVER at a running server", c.base)
	case errors.Is(err, context.Canceled):
		return err
	case errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("the Steward server at %s did not answer within %s; check --server, or raise --timeout", c.base, c.hc.Timeout)
	}
	return fmt.Errorf("cannot reach the Steward server at %s: %w", c.base, err)
}

// problemError is an API error in RFC 9457 problem details form.
type problemError struct{ api.Problem }

func (e *problemError) Error() string {
	title := e.Title
	if title == "" {
		title = http.StatusText(e.Status)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%d)", clean(title), e.Status)
	if e.Detail != "" {
		b.WriteString(": " + clean(e.Detail))
	}
	for _, f := range e.Errors {
		// A single invalid field is usually the whole detail already.
		if f.Field+": "+f.Detail == e.Detail {
			continue
		}
		fmt.Fprintf(&b, "\n  %s: %s", clean(f.Field), clean(f.Detail))
	}
	return b.String()
}

func responseError(status int, mediaType string, body []byte) error {
	var p api.Problem
	if mediaType == "application/problem+json" && json.Unmarshal(body, &p) == nil && p.Status != 0 {
		return &problemError{p}
	}
	msg := fmt.Sprintf("the server answered %d %s with %s", status, http.StatusText(status), describeType(mediaType))
	if text := strings.TrimSpace(clean(string(body[:min(len(body), 200)]))); text != "" {
		msg += ": " + text
	}
	return errors.New(msg)
}

func describeType(mediaType string) string {
	if mediaType == "" {
		return "no content type"
	}
	return mediaType
}

// clean makes server-supplied text safe for a terminal: control characters
// (escape sequences, line breaks that would fake output) become spaces.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return ' '
		}
		return r
	}, s)
}

// fetchAll fetches a paged collection, following next_cursor to the end or
// until limit (when > 0) items. It returns the items as received (for
// --json) and decoded.
func fetchAll[T any](s *session, path string, q url.Values, limit int) ([]json.RawMessage, []T, error) {
	if limit < 0 {
		return nil, nil, fmt.Errorf("--limit %d is negative; use 0 for all", limit)
	}
	if q == nil {
		q = url.Values{}
	}
	raw := []json.RawMessage{}
	for {
		n := pageSize
		if limit > 0 {
			n = min(n, limit-len(raw))
		}
		q.Set("limit", strconv.Itoa(n))
		var pg api.Page[json.RawMessage]
		if _, err := s.get(s.ctx, path, q, &pg); err != nil {
			return nil, nil, err
		}
		raw = append(raw, pg.Items...)
		if pg.NextCursor == "" || (limit > 0 && len(raw) >= limit) {
			break
		}
		// A server that repeats a cursor would otherwise loop forever.
		if pg.NextCursor == q.Get("cursor") {
			return nil, nil, fmt.Errorf("the server repeated cursor %q for %s", pg.NextCursor, path)
		}
		q.Set("cursor", pg.NextCursor)
	}
	if limit > 0 && len(raw) > limit {
		raw = raw[:limit]
	}
	items := make([]T, len(raw))
	for i, r := range raw {
		if err := json.Unmarshal(r, &items[i]); err != nil {
			return nil, nil, fmt.Errorf("unexpected item in %s: %w", path, err)
		}
	}
	return raw, items, nil
}
