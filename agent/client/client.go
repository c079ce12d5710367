// Package client is an HTTP client for the Steward device API (/device/v1,
// see package proto): enrollment, authentication with the device key, and
// check-in. It signs requests with the device's identity and manages the
// short-lived bearer token itself, so callers only enroll once and then
// check in.
package client

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/steward-iot/steward/agent"
	"github.com/steward-iot/steward/agent/identity"
	"github.com/steward-iot/steward/agent/proto"
)

// Device API paths, relative to the server URL.
const (
	enrollPath  = "/device/v1/enroll"
	authPath    = "/device/v1/auth"
	checkinPath = "/device/v1/checkin"
	statusPath  = "/device/v1/updates/status"
)

// MaxResponse bounds the response bodies the client reads, so that a
// misdirected server URL cannot make a small device buffer without limit.
const MaxResponse = 1 << 20

// tokenMargin is how long before its expiry a token is replaced, so that
// it does not expire in flight or because of a little clock drift.
const tokenMargin = 30 * time.Second

// timestampStep is the server's timestamp precision: auth timestamps must
// differ by at least this much to count as newer.
const timestampStep = time.Microsecond

// Options configures a Client. The zero value is usable.
type Options struct {
	// HTTPClient sends the requests; nil means one with a 30 s timeout.
	// Share one among many Clients to share connections.
	HTTPClient *http.Client
	// Clock tells the time for signed timestamps and token expiry; nil
	// means time.Now.
	Clock func() time.Time
	// UserAgent defaults to "steward-agent (protocol N)".
	UserAgent string
}

// Client talks to the device API as one device. It is safe for concurrent
// use. It copes with a device clock that is far off, as on devices without
// a real-time clock: when the server refuses a timestamp as skewed, the
// client adopts the server's time from the problem and retries once.
type Client struct {
	base      string
	id        *identity.Identity
	hc        *http.Client
	clock     func() time.Time
	userAgent string

	// offset (server time minus local clock, in ns) is learned from
	// clock_skew problems: many devices have no real-time clock and boot
	// with a wrong time, yet must sign timestamps the server accepts.
	offset atomic.Int64

	// authMu serializes authentication, so that signed timestamps reach the
	// server in increasing order and concurrent requests share one token.
	authMu   sync.Mutex
	token    string
	expires  time.Time // server time, compared with now()
	lastAuth time.Time // timestamp of the last auth request sent
}

// New returns a Client for the device API at serverURL (scheme and host,
// optionally a path prefix) acting as the device with identity id.
func New(serverURL string, id *identity.Identity, opts Options) *Client {
	c := &Client{
		base:      strings.TrimRight(serverURL, "/"),
		id:        id,
		hc:        opts.HTTPClient,
		clock:     opts.Clock,
		userAgent: opts.UserAgent,
	}
	if c.hc == nil {
		c.hc = &http.Client{Timeout: 30 * time.Second}
	}
	if c.clock == nil {
		c.clock = time.Now
	}
	if c.userAgent == "" {
		c.userAgent = fmt.Sprintf("steward-agent (protocol %d)", agent.ProtocolVersion)
	}
	return c
}

// now is the local clock corrected by what clock_skew problems taught.
func (c *Client) now() time.Time {
	return c.clock().Add(time.Duration(c.offset.Load())).UTC()
}

// EnrollParams describe the device to the server at enrollment.
type EnrollParams struct {
	// Org is the owner organization's slug; it may be empty when
	// EnrollmentToken is set.
	Org        string
	HardwareID string
	Serial     string
	// EnrollmentToken, when valid, makes the device active at once;
	// without one it stays pending until an operator accepts it.
	EnrollmentToken string
}

// Enroll registers the device's public key with the server. Enrolling
// again is safe: the server answers with the device's current status.
func (c *Client) Enroll(ctx context.Context, p EnrollParams) (proto.EnrollResponse, error) {
	var resp proto.EnrollResponse
	err := c.adjustingClock(func() error {
		req := proto.EnrollRequest{
			ProtocolVersion: agent.ProtocolVersion,
			Org:             p.Org,
			HardwareID:      p.HardwareID,
			Serial:          p.Serial,
			Algorithm:       string(c.id.Algorithm()),
			PublicKeyPEM:    string(c.id.PublicKeyPEM()),
			EnrollmentToken: p.EnrollmentToken,
			Timestamp:       c.now().Truncate(timestampStep),
		}
		return c.signedPost(ctx, enrollPath, req, &resp)
	})
	return resp, err
}

// Authenticate proves possession of the device key and caches the token it
// gets. Checkin calls it as needed; calling it directly is rarely useful.
func (c *Client) Authenticate(ctx context.Context) (proto.AuthResponse, error) {
	c.authMu.Lock()
	defer c.authMu.Unlock()
	return c.authenticate(ctx)
}

// authenticate needs authMu held.
func (c *Client) authenticate(ctx context.Context) (proto.AuthResponse, error) {
	var resp proto.AuthResponse
	err := c.adjustingClock(func() error {
		// The server rejects a timestamp not newer than the previous one,
		// at its microsecond precision, even if our clock stands still.
		ts := c.now().Truncate(timestampStep)
		if !ts.After(c.lastAuth) {
			ts = c.lastAuth.Add(timestampStep)
		}
		prev := c.lastAuth
		c.lastAuth = ts
		err := c.signedPost(ctx, authPath, proto.AuthRequest{KeyID: c.id.KeyID(), Timestamp: ts}, &resp)
		if IsCode(err, proto.CodeClockSkew) {
			// Refused, so not an auth later ones must beat; keeping it would
			// carry a skewed timestamp into the retry.
			c.lastAuth = prev
		}
		return err
	})
	if err != nil {
		c.token = ""
		return proto.AuthResponse{}, err
	}
	c.token, c.expires = resp.Token, resp.ExpiresAt
	return resp, nil
}

// bearer returns a token valid for at least tokenMargin, authenticating if
// there is none.
func (c *Client) bearer(ctx context.Context) (string, error) {
	c.authMu.Lock()
	defer c.authMu.Unlock()
	if c.token != "" && c.now().Add(tokenMargin).Before(c.expires) {
		return c.token, nil
	}
	resp, err := c.authenticate(ctx)
	return resp.Token, err
}

// ServerURL is the server the client talks to, without a trailing slash.
func (c *Client) ServerURL() string { return c.base }

// Token returns a valid device token, authenticating when needed, for
// requests the client does not make itself (the director's TUF fetcher).
func (c *Client) Token(ctx context.Context) (string, error) { return c.bearer(ctx) }

// dropToken forgets token unless a concurrent request already replaced it.
func (c *Client) dropToken(token string) {
	c.authMu.Lock()
	defer c.authMu.Unlock()
	if c.token == token {
		c.token = ""
	}
}

// Checkin reports what the device runs and its state, and returns what the
// server wants it to do. It authenticates first when the token is missing
// or about to expire, and once more if the server rejects the token.
func (c *Client) Checkin(ctx context.Context, req proto.CheckinRequest) (proto.CheckinResponse, error) {
	var resp proto.CheckinResponse
	err := c.authorizedPost(ctx, checkinPath, req, &resp)
	return resp, err
}

// ReportStatus sends one update status report. The server acknowledges a
// report it stored before as Duplicate, so a retry is always safe.
func (c *Client) ReportStatus(ctx context.Context, s proto.UpdateStatus) (proto.UpdateStatusResponse, error) {
	var resp proto.UpdateStatusResponse
	err := c.authorizedPost(ctx, statusPath, s, &resp)
	return resp, err
}

func (c *Client) authorizedPost(ctx context.Context, path string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	for retried := false; ; retried = true {
		token, err := c.bearer(ctx)
		if err != nil {
			return err
		}
		err = c.post(ctx, path, body, func(h http.Header) { h.Set("Authorization", "Bearer "+token) }, out)
		// The server may forget tokens before they expire, e.g. on restart.
		if !retried && IsCode(err, proto.CodeTokenInvalid) {
			c.dropToken(token)
			continue
		}
		return err
	}
}

// adjustingClock runs a signed request, and if the server refuses its
// timestamp as skewed, corrects the clock offset by the server's time and
// runs it once more.
func (c *Client) adjustingClock(send func() error) error {
	err := send()
	var ae *APIError
	if errors.As(err, &ae) && ae.Problem.Code == proto.CodeClockSkew && !ae.Problem.ServerTime.IsZero() {
		c.offset.Store(int64(ae.Problem.ServerTime.Sub(c.clock())))
		err = send()
	}
	return err
}

// signedPost marshals in once and signs exactly those bytes.
func (c *Client) signedPost(ctx context.Context, path string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	sig, err := c.id.Sign(body)
	if err != nil {
		return fmt.Errorf("signing the request: %w", err)
	}
	return c.post(ctx, path, body, func(h http.Header) {
		h.Set(proto.SignatureHeader, base64.StdEncoding.EncodeToString(sig))
	}, out)
}

func (c *Client) post(ctx context.Context, path string, body []byte, auth func(http.Header), out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, application/problem+json")
	req.Header.Set("User-Agent", c.userAgent)
	auth(req.Header)
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponse+1))
	if err != nil {
		return fmt.Errorf("reading the response to %s: %w", path, err)
	}
	if len(data) > MaxResponse {
		return fmt.Errorf("the response to %s is larger than %d bytes; is the server URL %s right?", path, MaxResponse, c.base)
	}
	mediaType, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return newAPIError(resp, mediaType, data)
	}
	// A captive portal or proxy may answer 200 with HTML.
	if mediaType != "application/json" {
		return fmt.Errorf("the server at %s answered %s with %q instead of JSON; is the server URL right?", c.base, path, mediaType)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("unexpected response to %s: %w", path, err)
	}
	return nil
}

// APIError is a non-2xx answer of the device API.
type APIError struct {
	Status int
	// Problem is the server's problem document; for an answer that is not
	// one (e.g. from a proxy) it has only Status, Title and, from the body,
	// Detail.
	Problem proto.Problem
	// RetryAfter is the server's Retry-After in seconds, or 0.
	RetryAfter time.Duration
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "device API: %d", e.Status)
	if e.Problem.Code != "" {
		b.WriteString(" " + clean(e.Problem.Code))
	} else if text := http.StatusText(e.Status); text != "" {
		b.WriteString(" " + text)
	}
	if d := e.Problem.Detail; d != "" {
		b.WriteString(": " + clean(d))
	} else if t := e.Problem.Title; t != "" && t != http.StatusText(e.Status) {
		b.WriteString(": " + clean(t))
	}
	return b.String()
}

// IsCode reports whether err is, or wraps, an APIError with problem code.
func IsCode(err error, code string) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Problem.Code == code
}

func newAPIError(resp *http.Response, mediaType string, body []byte) *APIError {
	e := &APIError{Status: resp.StatusCode}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		e.RetryAfter = time.Duration(s) * time.Second
	}
	isJSON := mediaType == "application/problem+json" || mediaType == "application/json"
	if isJSON && json.Unmarshal(body, &e.Problem) == nil && e.Problem.Status != 0 {
		e.Problem.Status = resp.StatusCode // the HTTP status is authoritative
		return e
	}
	e.Problem = proto.Problem{
		Status: resp.StatusCode,
		Title:  http.StatusText(resp.StatusCode),
		Detail: strings.TrimSpace(string(body[:min(len(body), 200)])),
	}
	return e
}

// clean makes server-supplied text safe for logs and terminals: control
// characters, which could forge log lines, become spaces.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return ' '
		}
		return r
	}, s)
}
