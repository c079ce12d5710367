// Package deviceapi serves the device API (/device/v1): enrollment, signed
// authentication and check-in. It has its own router and its own auth
// (device keys and device tokens), separate from the admin API's, so no
// admin credential works here and no device credential works there.
package deviceapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/steward-iot/steward/agent/proto"
	"github.com/steward-iot/steward/internal/clock"
	"github.com/steward-iot/steward/internal/identity"
	"github.com/steward-iot/steward/internal/inventory"
	"github.com/steward-iot/steward/internal/problem"
	"github.com/steward-iot/steward/internal/problem/httpstatus"
	"github.com/steward-iot/steward/internal/store"
	"github.com/steward-iot/steward/internal/trust"
)

// Server is the device API.
type Server struct {
	identity *identity.Service
	checkins *inventory.Checkins
	clock    clock.Clock
	log      *slog.Logger
	mux      *http.ServeMux
	updates  Updates
	statuses StatusRecorder
}

// Updates tells the device API what a device should install.
type Updates interface {
	// Pending decides, at check-in, whether the device should fetch its
	// director metadata because it has something to install, and how to
	// take it (nil: nothing). st is the state the device reports now.
	Pending(ctx context.Context, d inventory.Device, st proto.State) (*proto.UpdateOffer, error)
	// Director returns one of the device's director metadata files
	// ("N.root.json", "timestamp.json", "N.snapshot.json", "N.targets.json").
	Director(ctx context.Context, d inventory.Device, name string) ([]byte, error)
	// SUIT returns the signed SUIT envelope of the release a
	// microcontroller device should install, or an error wrapping
	// trust.ErrNotFound when it has none.
	SUIT(ctx context.Context, d inventory.Device) ([]byte, error)
}

// SetUpdates enables update delivery: check-ins answer "update" when a
// device has something to install, and the director serves its metadata.
func (s *Server) SetUpdates(u Updates) { s.updates = u }

// StatusRecorder stores the status reports devices send at each step of
// an update.
type StatusRecorder interface {
	// RecordStatus stores a report once per report id: a report seen
	// before answers duplicate and changes nothing.
	RecordStatus(ctx context.Context, d inventory.Device, req proto.UpdateStatus) (duplicate bool, err error)
}

// SetStatusRecorder enables POST /device/v1/updates/status.
func (s *Server) SetStatusRecorder(r StatusRecorder) { s.statuses = r }

// Routes lists the device API's endpoints, for the access tests.
var Routes = []string{"POST /device/v1/enroll", "POST /device/v1/auth", "POST /device/v1/checkin", "GET /device/v1/director/{file}", "GET /device/v1/suit",
	"POST /device/v1/updates/status"}

// New builds the device API.
func New(id *identity.Service, checkins *inventory.Checkins, c clock.Clock, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if c == nil {
		c = clock.Real
	}
	s := &Server{identity: id, checkins: checkins, clock: c, log: log, mux: http.NewServeMux()}
	s.mux.HandleFunc(Routes[0], s.enroll)
	s.mux.HandleFunc(Routes[1], s.auth)
	s.mux.HandleFunc(Routes[2], s.checkin)
	s.mux.HandleFunc(Routes[3], s.director)
	s.mux.HandleFunc(Routes[4], s.suitEnvelope)
	s.mux.HandleFunc(Routes[5], s.updateStatus)
	s.mux.HandleFunc("/device/v1/", func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, r, &statusErr{http.StatusNotFound, "no such device endpoint: " + r.Method + " " + r.URL.Path})
	})
	return s
}

// ServeHTTP serves /device/v1/. Its writes are device reports, which
// devices re-send (see store.DeviceTraffic).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mux.ServeHTTP(w, r.WithContext(store.DeviceTraffic(r.Context())))
}

type statusErr struct {
	status int
	detail string
}

func (e *statusErr) Error() string { return e.detail }

func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	p := proto.Problem{Type: "about:blank"}
	var se *statusErr
	var pe *problem.Error
	switch {
	case errors.As(err, &se):
		p.Status, p.Detail = se.status, se.detail
	case errors.As(err, &pe) && pe.Kind != problem.KindInternal:
		p.Status, p.Detail, p.Code = httpstatus.Of(pe.Kind), pe.Detail, pe.Code
		if pe.Code == proto.CodeClockSkew {
			p.ServerTime = s.clock.Now()
		}
	default:
		p.Status, p.Detail = 500, "internal error; quote request id "+w.Header().Get("X-Request-Id")
		s.log.ErrorContext(r.Context(), "device request failed", "request_id", w.Header().Get("X-Request-Id"), "path", r.URL.Path, "err", err)
	}
	p.Title = http.StatusText(p.Status)
	if p.Status == 401 {
		w.Header().Set("WWW-Authenticate", `Bearer realm="steward-device"`)
	}
	if p.Code == proto.CodeDevicePending {
		w.Header().Set("Retry-After", strconv.Itoa(int(identity.PendingRetry/time.Second)))
	}
	write(w, "application/problem+json", p.Status, p)
}

func write(w http.ResponseWriter, ct string, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// body reads a bounded JSON body.
func body(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	return bodyMax(w, r, proto.MaxBody)
}

// bodyMax reads a JSON body of at most limit bytes.
func bodyMax(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return nil, &statusErr{http.StatusUnsupportedMediaType, fmt.Sprintf("Content-Type %q is not supported; send application/json", ct)}
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, problem.TooLarge("the request body is over the %d-byte limit", limit)
	}
	if err != nil {
		return nil, problem.Invalid("could not read the request body: %v", err)
	}
	if len(b) == 0 {
		return nil, problem.Invalid("the request body is empty; send a JSON object")
	}
	return b, nil
}

func (s *Server) enroll(w http.ResponseWriter, r *http.Request) {
	b, err := body(w, r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	resp, err := s.identity.Enroll(r.Context(), b, r.Header.Get(proto.SignatureHeader))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	status := http.StatusOK
	if resp.Status == proto.StatusPending {
		status = http.StatusAccepted
	}
	write(w, "application/json", status, resp)
}

func (s *Server) auth(w http.ResponseWriter, r *http.Request) {
	b, err := body(w, r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	resp, err := s.identity.Authenticate(r.Context(), b, r.Header.Get(proto.SignatureHeader))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	write(w, "application/json", http.StatusOK, resp)
}

func (s *Server) checkin(w http.ResponseWriter, r *http.Request) {
	d, err := s.device(r.Context(), r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	b, err := body(w, r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var req proto.CheckinRequest
	if err := strictJSON(b, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	resp, err := s.checkins.Checkin(r.Context(), d, req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if s.updates != nil {
		d.InstalledVersion = req.Installed.Version
		offer, err := s.updates.Pending(r.Context(), d, req.State)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if offer != nil {
			resp.Action, resp.Update = proto.ActionUpdate, offer
		}
	}
	write(w, "application/json", http.StatusOK, resp)
}

// updateStatus records a device's report of an update step. The device
// retries until it gets an answer; a report it sent before is answered
// duplicate.
func (s *Server) updateStatus(w http.ResponseWriter, r *http.Request) {
	d, ok := s.authorized(w, r, s.statuses != nil, "record update status")
	if !ok {
		return
	}
	b, err := bodyMax(w, r, proto.MaxStatusBody)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var req proto.UpdateStatus
	if err := strictJSON(b, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	dup, err := s.statuses.RecordStatus(r.Context(), d, req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	write(w, "application/json", http.StatusOK, proto.UpdateStatusResponse{Accepted: true, Duplicate: dup})
}

// suitEnvelope serves a microcontroller device the SUIT envelope of what
// it should install; the device verifies it with the key it was
// provisioned with and fetches the image from the envelope's URI.
func (s *Server) suitEnvelope(w http.ResponseWriter, r *http.Request) {
	d, ok := s.authorized(w, r, s.updates != nil, "deliver updates")
	if !ok {
		return
	}
	env, err := s.updates.SUIT(r.Context(), d)
	if errors.Is(err, trust.ErrNotFound) {
		s.fail(w, r, &statusErr{http.StatusNotFound, "no SUIT envelope for this device: nothing is assigned, or its product is not mcu-suit"})
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/suit-envelope+cose")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(env)
}

// director serves the device's director repository to its TUF client.
func (s *Server) director(w http.ResponseWriter, r *http.Request) {
	d, ok := s.authorized(w, r, s.updates != nil, "deliver updates")
	if !ok {
		return
	}
	data, err := s.updates.Director(r.Context(), d, r.PathValue("file"))
	if errors.Is(err, trust.ErrNotFound) {
		// 404, never 403: the TUF client walks N.root.json until one is missing.
		s.fail(w, r, &statusErr{http.StatusNotFound, "no director file " + r.PathValue("file")})
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(data)
}

// authorized authenticates the device of an update endpoint, answering
// 404 when this server has the feature off.
func (s *Server) authorized(w http.ResponseWriter, r *http.Request, enabled bool, feature string) (inventory.Device, bool) {
	d, err := s.device(r.Context(), r)
	if err != nil {
		s.fail(w, r, err)
		return d, false
	}
	if !enabled {
		s.fail(w, r, &statusErr{http.StatusNotFound, "this server does not " + feature})
		return d, false
	}
	return d, true
}

func (s *Server) device(ctx context.Context, r *http.Request) (inventory.Device, error) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return inventory.Device{}, problem.Unauthenticated("send Authorization: Bearer <device token> from POST /device/v1/auth").WithCode(proto.CodeTokenInvalid)
	}
	return s.identity.DeviceFromToken(ctx, strings.TrimSpace(tok))
}

func strictJSON(b []byte, v any) error {
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return problem.Invalid("malformed request body: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	if _, err := dec.Token(); err != io.EOF {
		return problem.Invalid("the request body has data after the JSON object")
	}
	return nil
}
