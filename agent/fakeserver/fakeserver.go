// Package fakeserver is an in-memory fake of the Steward device API for
// testing agents, in the spirit of net/http/httptest: it checks what a
// device sends as the real server does (signatures over the exact body
// bytes, timestamp skew and replay, bearer tokens, device status) but keeps
// everything in memory and lets a test steer it (approve or reject devices,
// invalidate tokens, inject failures).
//
// It is not the real server, which also enforces organizations, enrollment
// policies and rate limits; tests against it show that an agent follows
// the protocol in package proto.
package fakeserver

import (
	"crypto"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/steward-iot/steward/agent"
	"github.com/steward-iot/steward/agent/identity"
	"github.com/steward-iot/steward/agent/proto"
)

// Options configures a Server. The zero value is usable.
type Options struct {
	// EnrollmentToken makes enrollments that carry it active at once;
	// others need an Org and start pending. Empty accepts no token.
	EnrollmentToken string
	// Clock is the server's time; nil means time.Now.
	Clock func() time.Time
	// TokenTTL is the lifetime of device tokens; 0 means 15 minutes.
	TokenTTL time.Duration
	// PollIntervalSeconds is what check-ins answer; 0 means 60.
	PollIntervalSeconds int
	// RetryAfterSeconds is what pending devices are told to wait; 0 means 30.
	RetryAfterSeconds int
	// Fault, when set, is asked before each request is handled, with op
	// "enroll", "auth" or "checkin"; a non-nil problem is the answer
	// instead (with Retry-After when RetryAfterSeconds is set and the
	// status is 429 or 503).
	Fault func(op string) *proto.Problem
}

// Device is what the server knows about an enrolled device.
type Device struct {
	ID         string
	KeyID      string
	Algorithm  identity.Algorithm
	Status     string
	Org        string
	HardwareID string
	Serial     string
	Enrolls    int // enroll requests for this key, including repeats
	Auths      int // successful auths
	// Checkins holds the server time of every check-in, in order.
	Checkins    []time.Time
	LastCheckin proto.CheckinRequest
}

type device struct {
	Device
	pub      crypto.PublicKey
	lastAuth time.Time
	token    string
}

type session struct {
	deviceID string
	expires  time.Time
}

// Server is a fake device API; it is an http.Handler for
// httptest.NewServer. Its methods are safe for concurrent use.
type Server struct {
	opts Options
	mux  *http.ServeMux

	mu      sync.Mutex
	byKey   map[string]*device // by key id
	byID    map[string]*device
	tokens  map[string]session
	nextID  int
	counter Counts
}

// Counts are the requests the server answered successfully.
type Counts struct {
	Enrolls, Auths, Checkins int
}

// New returns a fake device API server.
func New(opts Options) *Server {
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.TokenTTL == 0 {
		opts.TokenTTL = 15 * time.Minute
	}
	if opts.PollIntervalSeconds == 0 {
		opts.PollIntervalSeconds = 60
	}
	if opts.RetryAfterSeconds == 0 {
		opts.RetryAfterSeconds = 30
	}
	s := &Server{
		opts:   opts,
		mux:    http.NewServeMux(),
		byKey:  map[string]*device{},
		byID:   map[string]*device{},
		tokens: map[string]session{},
	}
	s.mux.HandleFunc("POST /device/v1/enroll", s.faulty("enroll", s.enroll))
	s.mux.HandleFunc("POST /device/v1/auth", s.faulty("auth", s.auth))
	s.mux.HandleFunc("POST /device/v1/checkin", s.faulty("checkin", s.checkin))
	return s
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Counts returns how many requests of each kind succeeded.
func (s *Server) Counts() Counts {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counter
}

// Device returns a copy of what the server knows about device id.
func (s *Server) Device(id string) (Device, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.byID[id]
	if !ok {
		return Device{}, false
	}
	return d.copy(), true
}

// Devices returns copies of all devices, in no particular order.
func (s *Server) Devices() []Device {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Device, 0, len(s.byID))
	for _, d := range s.byID {
		out = append(out, d.copy())
	}
	return out
}

func (d *device) copy() Device {
	c := d.Device
	c.Checkins = append([]time.Time(nil), d.Checkins...)
	return c
}

// SetStatus changes a device's status as an operator would, e.g. accept a
// pending device (proto.StatusActive) or revoke one. It reports whether the
// device exists.
func (s *Server) SetStatus(id, status string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.byID[id]
	if ok {
		d.Status = status
	}
	return ok
}

// InvalidateTokens forgets all device tokens before they expire, as a
// restarted server might.
func (s *Server) InvalidateTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.tokens)
	for _, d := range s.byID {
		d.token = ""
	}
}

// Forget deletes a device, as if it had never enrolled.
func (s *Server) Forget(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d, ok := s.byID[id]; ok {
		delete(s.byID, id)
		delete(s.byKey, d.KeyID)
		delete(s.tokens, d.token)
	}
}

func (s *Server) faulty(op string, h func(http.ResponseWriter, *http.Request) *proto.Problem) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var p *proto.Problem
		if s.opts.Fault != nil {
			p = s.opts.Fault(op)
		}
		if p == nil {
			p = h(w, r)
		}
		if p == nil {
			return
		}
		if p.Title == "" {
			p.Title = http.StatusText(p.Status)
		}
		if p.Type == "" {
			p.Type = "about:blank"
		}
		if p.Status == http.StatusTooManyRequests || p.Status == http.StatusServiceUnavailable ||
			p.Code == proto.CodeDevicePending {
			w.Header().Set("Retry-After", strconv.Itoa(s.opts.RetryAfterSeconds))
		}
		writeJSON(w, "application/problem+json", p.Status, p)
	}
}

func writeJSON(w http.ResponseWriter, contentType string, status int, v any) {
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // a write error means the client went away
}

func problem(status int, code, format string, args ...any) *proto.Problem {
	return &proto.Problem{Status: status, Code: code, Detail: fmt.Sprintf(format, args...)}
}

// readSigned reads a signed body into v and returns the raw bytes and the
// decoded signature for the caller to verify.
func readSigned(r *http.Request, v any) (body, sig []byte, p *proto.Problem) {
	body, err := io.ReadAll(io.LimitReader(r.Body, proto.MaxBody+1))
	if err != nil || len(body) > proto.MaxBody {
		return nil, nil, problem(http.StatusBadRequest, "", "unreadable or oversized body")
	}
	if err := json.Unmarshal(body, v); err != nil {
		return nil, nil, problem(http.StatusBadRequest, "", "bad JSON: %v", err)
	}
	sig, err = base64.StdEncoding.DecodeString(r.Header.Get(proto.SignatureHeader))
	if err != nil || len(sig) == 0 {
		return nil, nil, problem(http.StatusUnauthorized, proto.CodeBadSignature, "missing or malformed %s header", proto.SignatureHeader)
	}
	return body, sig, nil
}

func (s *Server) checkSkew(ts time.Time) *proto.Problem {
	now := s.opts.Clock()
	if d := now.Sub(ts); d > proto.MaxClockSkew || d < -proto.MaxClockSkew {
		p := problem(http.StatusUnauthorized, proto.CodeClockSkew, "timestamp %s is %v away from server time", ts.Format(time.RFC3339), d)
		p.ServerTime = now.UTC()
		return p
	}
	return nil
}

func (s *Server) enroll(w http.ResponseWriter, r *http.Request) *proto.Problem {
	var req proto.EnrollRequest
	body, sig, p := readSigned(r, &req)
	if p != nil {
		return p
	}
	if req.ProtocolVersion != agent.ProtocolVersion {
		return problem(http.StatusBadRequest, "", "protocol version %d is not supported", req.ProtocolVersion)
	}
	pub, alg, err := identity.ParsePublicKeyPEM([]byte(req.PublicKeyPEM))
	if err != nil {
		return problem(http.StatusBadRequest, "", "%v", err)
	}
	if string(alg) != req.Algorithm {
		return problem(http.StatusBadRequest, "", "algorithm %q does not match the %s key", req.Algorithm, alg)
	}
	if err := identity.Verify(pub, body, sig); err != nil {
		return problem(http.StatusUnauthorized, proto.CodeBadSignature, "%v", err)
	}
	if p := s.checkSkew(req.Timestamp); p != nil {
		return p
	}
	keyID, _ := identity.PublicKeyID(pub)
	withToken := req.EnrollmentToken != "" && req.EnrollmentToken == s.opts.EnrollmentToken
	if req.EnrollmentToken != "" && !withToken {
		return problem(http.StatusForbidden, "", "invalid enrollment token")
	}
	if !withToken && req.Org == "" {
		return problem(http.StatusBadRequest, "", "org is required without an enrollment token")
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.byKey[keyID]
	if !ok {
		s.nextID++
		d = &device{pub: pub, Device: Device{
			ID: fmt.Sprintf("dev-%d", s.nextID), KeyID: keyID, Algorithm: alg, Status: proto.StatusPending,
			Org: req.Org, HardwareID: req.HardwareID, Serial: req.Serial,
		}}
		if withToken {
			d.Status = proto.StatusActive
		}
		s.byKey[keyID] = d
		s.byID[d.ID] = d
	}
	d.Enrolls++
	s.counter.Enrolls++
	resp := proto.EnrollResponse{DeviceID: d.ID, Status: d.Status}
	if d.Status == proto.StatusPending {
		resp.RetryAfterSeconds = s.opts.RetryAfterSeconds
	}
	writeJSON(w, "application/json", http.StatusOK, resp)
	return nil
}

// statusProblem refuses a device that is not active, or returns nil.
func statusProblem(d *device) *proto.Problem {
	switch d.Status {
	case proto.StatusActive:
		return nil
	case proto.StatusPending:
		return problem(http.StatusForbidden, proto.CodeDevicePending, "device %s awaits approval", d.ID)
	case proto.StatusRejected:
		return problem(http.StatusForbidden, proto.CodeDeviceRejected, "device %s was rejected", d.ID)
	default:
		return problem(http.StatusForbidden, proto.CodeDeviceRevoked, "device %s is %s", d.ID, d.Status)
	}
}

func (s *Server) auth(w http.ResponseWriter, r *http.Request) *proto.Problem {
	var req proto.AuthRequest
	body, sig, p := readSigned(r, &req)
	if p != nil {
		return p
	}
	s.mu.Lock()
	d, ok := s.byKey[req.KeyID]
	var pub crypto.PublicKey
	if ok {
		pub = d.pub
	}
	s.mu.Unlock()
	if !ok {
		return problem(http.StatusUnauthorized, proto.CodeUnknownDevice, "no device has key %s", req.KeyID)
	}
	// Verify outside the lock: it is the expensive part.
	if err := identity.Verify(pub, body, sig); err != nil {
		return problem(http.StatusUnauthorized, proto.CodeBadSignature, "%v", err)
	}
	if p := s.checkSkew(req.Timestamp); p != nil {
		return p
	}
	ts := req.Timestamp.Truncate(time.Microsecond)

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byKey[req.KeyID] != d {
		return problem(http.StatusUnauthorized, proto.CodeUnknownDevice, "no device has key %s", req.KeyID)
	}
	if !ts.After(d.lastAuth) {
		return problem(http.StatusUnauthorized, proto.CodeReplay, "timestamp %s is not after the previous auth's", ts.Format(time.RFC3339Nano))
	}
	if p := statusProblem(d); p != nil {
		return p
	}
	d.lastAuth = ts
	delete(s.tokens, d.token)
	d.token = rand.Text()
	expires := s.opts.Clock().Add(s.opts.TokenTTL).UTC()
	s.tokens[d.token] = session{deviceID: d.ID, expires: expires}
	d.Auths++
	s.counter.Auths++
	writeJSON(w, "application/json", http.StatusOK, proto.AuthResponse{DeviceID: d.ID, Token: d.token, ExpiresAt: expires})
	return nil
}

func (s *Server) checkin(w http.ResponseWriter, r *http.Request) *proto.Problem {
	var req proto.CheckinRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, proto.MaxBody)).Decode(&req); err != nil {
		return problem(http.StatusBadRequest, "", "bad JSON: %v", err)
	}
	const prefix = "Bearer "
	auth := r.Header.Get("Authorization")
	if len(auth) <= len(prefix) || auth[:len(prefix)] != prefix {
		return problem(http.StatusUnauthorized, proto.CodeTokenInvalid, "missing bearer token")
	}
	now := s.opts.Clock()

	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.tokens[auth[len(prefix):]]
	if !ok || !now.Before(sess.expires) {
		return problem(http.StatusUnauthorized, proto.CodeTokenInvalid, "unknown or expired token")
	}
	d := s.byID[sess.deviceID]
	if p := statusProblem(d); p != nil {
		return p
	}
	d.Checkins = append(d.Checkins, now)
	d.LastCheckin = req
	s.counter.Checkins++
	writeJSON(w, "application/json", http.StatusOK, proto.CheckinResponse{
		Action: proto.ActionNone, PollIntervalSeconds: s.opts.PollIntervalSeconds, ServerTime: now.UTC(),
	})
	return nil
}
