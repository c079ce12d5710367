package client_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/steward-iot/steward/agent"
	"github.com/steward-iot/steward/agent/client"
	"github.com/steward-iot/steward/agent/fakeserver"
	"github.com/steward-iot/steward/agent/identity"
	"github.com/steward-iot/steward/agent/proto"
)

const token = "enroll-secret"

// fakeClock is a settable clock shared by a client and the fake server.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newIdentity(t *testing.T, alg identity.Algorithm) *identity.Identity {
	t.Helper()
	id, err := identity.Generate(alg)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// setup starts a fake server and returns it with an enrolled client.
func setup(t *testing.T, opts fakeserver.Options, clock func() time.Time) (*fakeserver.Server, *client.Client) {
	t.Helper()
	opts.EnrollmentToken = token
	fs := fakeserver.New(opts)
	srv := httptest.NewServer(fs)
	t.Cleanup(srv.Close)
	c := client.New(srv.URL, newIdentity(t, identity.Ed25519), client.Options{Clock: clock})
	resp, err := c.Enroll(context.Background(), client.EnrollParams{HardwareID: "gw-100", Serial: "s-1", EnrollmentToken: token})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != proto.StatusActive || resp.DeviceID == "" {
		t.Fatalf("enroll with a token: %+v, want an active device", resp)
	}
	return fs, c
}

func checkin(t *testing.T, c *client.Client) proto.CheckinResponse {
	t.Helper()
	resp, err := c.Checkin(context.Background(), proto.CheckinRequest{
		Installed: proto.Installed{Version: "1.0.0"},
		State:     proto.State{OnMains: true, Link: proto.LinkEthernet},
	})
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func TestEnrollSignsExactBody(t *testing.T) {
	for _, alg := range []identity.Algorithm{identity.Ed25519, identity.ECDSAP256} {
		id := newIdentity(t, alg)
		var got proto.EnrollRequest
		var verifyErr error
		var header http.Header
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			header = r.Header.Clone()
			sig, err := base64.StdEncoding.DecodeString(r.Header.Get(proto.SignatureHeader))
			if err == nil {
				err = identity.Verify(id.PublicKey(), body, sig)
			}
			verifyErr = err
			if err := json.Unmarshal(body, &got); err != nil {
				verifyErr = err
			}
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"device_id":"dev-9","status":"active"}`)
		}))
		defer srv.Close()

		now := time.Date(2030, 5, 6, 7, 8, 9, 123456789, time.UTC)
		c := client.New(srv.URL+"/", id, client.Options{Clock: func() time.Time { return now }, UserAgent: "vendor-agent/2"})
		resp, err := c.Enroll(context.Background(), client.EnrollParams{Org: "acme", HardwareID: "gw-100", Serial: "SN1", EnrollmentToken: "tok"})
		if err != nil {
			t.Fatal(err)
		}
		if resp.DeviceID != "dev-9" || resp.Status != proto.StatusActive {
			t.Errorf("%s: response %+v", alg, resp)
		}
		if verifyErr != nil {
			t.Errorf("%s: signature over the body: %v", alg, verifyErr)
		}
		want := proto.EnrollRequest{
			ProtocolVersion: agent.ProtocolVersion, Org: "acme", HardwareID: "gw-100", Serial: "SN1",
			Algorithm: string(alg), PublicKeyPEM: string(id.PublicKeyPEM()), EnrollmentToken: "tok",
			Timestamp: now.Truncate(time.Microsecond),
		}
		if got != want {
			t.Errorf("%s: request\n%+v\nwant\n%+v", alg, got, want)
		}
		if header.Get("User-Agent") != "vendor-agent/2" || header.Get("Content-Type") != "application/json" {
			t.Errorf("%s: headers %v", alg, header)
		}
	}
}

func TestCheckinAuthenticatesOnce(t *testing.T) {
	fs, c := setup(t, fakeserver.Options{PollIntervalSeconds: 42}, nil)
	for range 3 {
		if resp := checkin(t, c); resp.PollIntervalSeconds != 42 || resp.Action != proto.ActionNone {
			t.Errorf("check-in answered %+v", resp)
		}
	}
	if n := fs.Counts(); n.Auths != 1 || n.Checkins != 3 {
		t.Errorf("counts %+v, want 1 auth for 3 check-ins", n)
	}
}

func TestTokenExpiryReauthenticates(t *testing.T) {
	clock := newFakeClock()
	fs, c := setup(t, fakeserver.Options{Clock: clock.Now, TokenTTL: 10 * time.Minute}, clock.Now)
	checkin(t, c)
	clock.Advance(9*time.Minute + 29*time.Second) // 31 s left: more than the margin
	checkin(t, c)
	if n := fs.Counts().Auths; n != 1 {
		t.Fatalf("%d auths with a valid token, want 1", n)
	}
	clock.Advance(2 * time.Second) // 29 s left: within the margin
	checkin(t, c)
	if n := fs.Counts().Auths; n != 2 {
		t.Errorf("%d auths after the token neared expiry, want 2", n)
	}
	clock.Advance(time.Hour) // long expired
	checkin(t, c)
	if n := fs.Counts(); n.Auths != 3 || n.Checkins != 4 {
		t.Errorf("counts %+v, want 3 auths and 4 check-ins", n)
	}
}

func TestTokenInvalidReauthenticatesOnce(t *testing.T) {
	fs, c := setup(t, fakeserver.Options{}, nil)
	checkin(t, c)
	fs.InvalidateTokens()
	checkin(t, c) // 401 token_invalid, re-auth, retry
	if n := fs.Counts(); n.Auths != 2 || n.Checkins != 2 {
		t.Errorf("counts %+v, want 2 auths and 2 check-ins", n)
	}

	// A server that keeps refusing the token gets exactly one retry.
	var mu sync.Mutex
	attempts := 0
	fs, c = setup(t, fakeserver.Options{Fault: func(op string) *proto.Problem {
		if op != "checkin" {
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		attempts++
		return &proto.Problem{Status: http.StatusUnauthorized, Code: proto.CodeTokenInvalid, Detail: "nope"}
	}}, nil)
	_, err := c.Checkin(context.Background(), proto.CheckinRequest{})
	if !client.IsCode(err, proto.CodeTokenInvalid) {
		t.Fatalf("error %v, want token_invalid", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if n := fs.Counts().Auths; attempts != 2 || n != 2 {
		t.Errorf("%d check-in attempts and %d auths, want 2 and 2", attempts, n)
	}
}

func TestAuthTimestampsIncreaseWithFrozenClock(t *testing.T) {
	frozen := time.Date(2030, 1, 1, 0, 0, 0, 999, time.UTC) // below µs: the server truncates it
	fs, c := setup(t, fakeserver.Options{Clock: func() time.Time { return frozen }}, func() time.Time { return frozen })
	for i := range 5 {
		// The fake server refuses a timestamp not after the previous one
		// with code replay.
		if _, err := c.Authenticate(context.Background()); err != nil {
			t.Fatalf("auth %d: %v", i, err)
		}
	}
	if n := fs.Counts().Auths; n != 5 {
		t.Errorf("%d successful auths, want 5", n)
	}
}

func TestAuthTimestampsStepByMicrosecond(t *testing.T) {
	var mu sync.Mutex
	var stamps []time.Time
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req proto.AuthRequest
		_ = json.NewDecoder(r.Body).Decode(&req)
		mu.Lock()
		stamps = append(stamps, req.Timestamp)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"device_id":"dev-1","token":"t","expires_at":"2099-01-01T00:00:00Z"}`)
	}))
	defer srv.Close()
	frozen := time.Date(2030, 1, 1, 0, 0, 0, 500, time.UTC)
	c := client.New(srv.URL, newIdentity(t, identity.Ed25519), client.Options{Clock: func() time.Time { return frozen }})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if _, err := c.Authenticate(context.Background()); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	want := frozen.Truncate(time.Microsecond)
	for i, ts := range stamps {
		if !ts.Equal(want) {
			t.Errorf("auth %d: timestamp %s, want %s", i, ts.Format(time.RFC3339Nano), want.Format(time.RFC3339Nano))
		}
		want = want.Add(time.Microsecond)
	}
}

func TestClockSkewCorrected(t *testing.T) {
	var mu sync.Mutex
	calls := map[string]int{}
	fs := fakeserver.New(fakeserver.Options{EnrollmentToken: token, Fault: func(op string) *proto.Problem {
		mu.Lock()
		defer mu.Unlock()
		calls[op]++
		return nil
	}})
	srv := httptest.NewServer(fs)
	defer srv.Close()
	// A device without a real-time clock that booted in 1970.
	bootTime := time.Unix(0, 0)
	start := time.Now()
	clock := func() time.Time { return bootTime.Add(time.Since(start)) }
	c := client.New(srv.URL, newIdentity(t, identity.Ed25519), client.Options{Clock: clock})
	if _, err := c.Enroll(context.Background(), client.EnrollParams{HardwareID: "gw", Serial: "s", EnrollmentToken: token}); err != nil {
		t.Fatal(err)
	}
	checkin(t, c)
	checkin(t, c)
	mu.Lock()
	defer mu.Unlock()
	if calls["enroll"] != 2 || calls["auth"] != 1 || calls["checkin"] != 2 {
		t.Errorf("requests %v, want one enroll refused for skew, then one auth and two check-ins", calls)
	}
}

func TestPendingDevice(t *testing.T) {
	fs := fakeserver.New(fakeserver.Options{RetryAfterSeconds: 17})
	srv := httptest.NewServer(fs)
	defer srv.Close()
	c := client.New(srv.URL, newIdentity(t, identity.ECDSAP256), client.Options{})
	resp, err := c.Enroll(context.Background(), client.EnrollParams{Org: "acme", HardwareID: "gw", Serial: "s"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != proto.StatusPending || resp.RetryAfterSeconds != 17 {
		t.Errorf("enroll without a token: %+v, want pending with retry after 17", resp)
	}
	_, err = c.Checkin(context.Background(), proto.CheckinRequest{})
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Problem.Code != proto.CodeDevicePending || ae.RetryAfter != 17*time.Second {
		t.Fatalf("check-in of a pending device: %#v, want device_pending with Retry-After 17s", err)
	}
	fs.SetStatus(resp.DeviceID, proto.StatusActive)
	checkin(t, c)
}

func TestAPIErrors(t *testing.T) {
	type answer struct {
		status      int
		contentType string
		body        string
		retryAfter  string
	}
	var next answer
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if next.contentType != "" {
			w.Header().Set("Content-Type", next.contentType)
		}
		if next.retryAfter != "" {
			w.Header().Set("Retry-After", next.retryAfter)
		}
		w.WriteHeader(next.status)
		io.WriteString(w, next.body)
	}))
	defer srv.Close()
	c := client.New(srv.URL, newIdentity(t, identity.Ed25519), client.Options{})
	enroll := func() error {
		_, err := c.Enroll(context.Background(), client.EnrollParams{Org: "acme"})
		return err
	}

	next = answer{http.StatusForbidden, "application/problem+json",
		`{"type":"about:blank","title":"Forbidden","status":403,"code":"device_rejected","detail":"rejected by\nan operator"}`, ""}
	err := enroll()
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Status != 403 || ae.Problem.Code != proto.CodeDeviceRejected {
		t.Fatalf("problem answer: %#v", err)
	}
	if got, want := err.Error(), "device API: 403 device_rejected: rejected by an operator"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if wrapped := fmt.Errorf("context: %w", err); !client.IsCode(wrapped, proto.CodeDeviceRejected) || client.IsCode(wrapped, proto.CodeDeviceRevoked) {
		t.Error("IsCode does not see through wrapping or matches the wrong code")
	}

	next = answer{http.StatusBadGateway, "text/html", "<html>bad gateway</html>", ""}
	err = enroll()
	if !errors.As(err, &ae) || ae.Status != 502 || ae.Problem.Code != "" || !strings.Contains(ae.Problem.Detail, "bad gateway") {
		t.Fatalf("non-problem answer: %#v", err)
	}
	if got := err.Error(); got != "device API: 502 Bad Gateway: <html>bad gateway</html>" {
		t.Errorf("Error() = %q", got)
	}

	next = answer{http.StatusServiceUnavailable, "application/problem+json", `{"status":503,"title":"Service Unavailable"}`, "120"}
	if err := enroll(); !errors.As(err, &ae) || ae.RetryAfter != 2*time.Minute {
		t.Errorf("Retry-After not parsed: %#v", err)
	}

	next = answer{http.StatusOK, "text/html", "<html>captive portal</html>", ""}
	if err := enroll(); err == nil || !strings.Contains(err.Error(), "instead of JSON") {
		t.Errorf("HTML answer: %v", err)
	}

	next = answer{http.StatusOK, "application/json", `{"device_id":"` + strings.Repeat("x", client.MaxResponse) + `"}`, ""}
	if err := enroll(); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("oversized answer: %v", err)
	}
}
