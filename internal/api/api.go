// Package api serves Steward's admin API under /api/v1 and the operational
// endpoints (/healthz, /readyz, /metrics). Handlers are thin: they decode,
// call a domain service (which authorizes), and encode. Every route is
// listed once, in routes(), which also generates the OpenAPI document.
package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"strings"

	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/steward-iot/steward/internal/advisory"
	"github.com/steward-iot/steward/internal/audit"
	"github.com/steward-iot/steward/internal/clock"
	"github.com/steward-iot/steward/internal/disclosure"
	"github.com/steward-iot/steward/internal/idempotency"
	"github.com/steward-iot/steward/internal/identity"
	"github.com/steward-iot/steward/internal/inventory"
	"github.com/steward-iot/steward/internal/notify"
	"github.com/steward-iot/steward/internal/openapi"
	"github.com/steward-iot/steward/internal/release"
	"github.com/steward-iot/steward/internal/rollout"
	"github.com/steward-iot/steward/internal/tenancy"
	"github.com/steward-iot/steward/internal/trust"
	"github.com/steward-iot/steward/internal/vuln"
)

// Deps are the services the API needs.
type Deps struct {
	Tenancy     *tenancy.Service
	Audit       *audit.Service
	Idempotency idempotency.Store
	// Inventory and Identity serve products, devices and enrollment; nil
	// leaves those routes out.
	Inventory *inventory.Service
	Identity  *identity.Service
	Release   *release.Service
	Vuln      *vuln.Service
	// Rollout assigns releases to devices; Director gives out director
	// roots for provisioning.
	Rollout  *rollout.Service
	Director DirectorRoots
	// SUIT serves envelopes of microcontroller releases.
	SUIT  SUITEnvelopes
	Trust *trust.Service // TUF key ceremonies; nil leaves those routes out
	// Notify manages subscriptions; Reports is the team's side of
	// inbound vulnerability reports.
	Notify     *notify.Service
	Reports    *disclosure.Service
	Advisories *advisory.Service
	// PublicURL is where people reach this server (advisory publisher namespace).
	PublicURL string
	// Device serves the device API under /device/v1/ (its own auth).
	Device http.Handler
	// Mounts are further public handlers by ServeMux pattern (TUF
	// repositories), served with the same logging and metrics.
	Mounts map[string]http.Handler
	// Ready reports whether backing stores answer (for /readyz).
	Ready    func(context.Context) error
	Log      *slog.Logger
	Clock    clock.Clock
	Registry *prometheus.Registry // metrics are registered here
	Version  string
	// MaxBody bounds JSON request bodies (default 1 MiB).
	MaxBody int64
}

// Server is the admin API.
type Server struct {
	tenancy    *tenancy.Service
	audit      *audit.Service
	idem       idempotency.Store
	inventory  *inventory.Service
	identity   *identity.Service
	release    *release.Service
	vuln       *vuln.Service
	trust      *trust.Service
	rollout    *rollout.Service
	director   DirectorRoots
	suit       SUITEnvelopes
	notify     *notify.Service
	reports    *disclosure.Service
	advisories *advisory.Service
	publicURL  string
	ready      func(context.Context) error
	log        *slog.Logger
	clock      clock.Clock
	version    string
	maxBody    int64
	metrics    *metrics
	mux        *http.ServeMux
	openapi    []byte
}

// New builds the API and its route table.
func New(d Deps) (*Server, error) {
	s := &Server{tenancy: d.Tenancy, audit: d.Audit, idem: d.Idempotency, inventory: d.Inventory, identity: d.Identity, release: d.Release, vuln: d.Vuln, ready: d.Ready,
		rollout: d.Rollout, director: d.Director, suit: d.SUIT,
		notify: d.Notify, reports: d.Reports, advisories: d.Advisories, publicURL: d.PublicURL, log: d.Log,
		clock: d.Clock, version: d.Version, maxBody: d.MaxBody}
	s.trust = d.Trust
	if s.maxBody <= 0 {
		s.maxBody = 1 << 20
	}
	if s.version == "" {
		s.version = "dev"
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.clock == nil {
		s.clock = clock.Real
	}
	reg := d.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	s.metrics = newMetrics(reg)
	doc, err := openapi.Build(openapi.Info{Title: "Steward admin API", Version: s.version,
		Description: "Fleet inventory, secure updates and vulnerability management for IoT devices."}, s.Operations())
	if err != nil {
		return nil, err
	}
	s.openapi = doc
	s.mux = http.NewServeMux()
	for _, rt := range s.routes() {
		s.mux.Handle(rt.op.Method+" "+rt.op.Path, s.wrap(rt))
	}
	s.mux.Handle("GET /metrics", promMetricsHandler(reg))
	if d.Device != nil {
		s.mux.Handle("/device/v1/", d.Device)
	}
	for pattern, h := range d.Mounts {
		s.mux.Handle(pattern, h)
	}
	return s, nil
}

// route is one endpoint: its documentation and its handler.
type route struct {
	op openapi.Operation
	// handle serves an authenticated request; its result is encoded as
	// JSON with op.Status.
	handle func(c *call) (any, error)
	// public routes skip authentication and write their own response.
	public http.HandlerFunc
	// crossOrg routes resolve {org} themselves instead of requiring the
	// caller's own organization.
	crossOrg bool
	// idempotent creates honour Idempotency-Key.
	idempotent bool
	// rawBody routes stream the request body themselves (uploads).
	rawBody bool
}

// Operations returns the documented operations, for the OpenAPI document.
func (s *Server) Operations() []openapi.Operation {
	rts := s.routes()
	ops := make([]openapi.Operation, len(rts))
	for i, rt := range rts {
		ops[i] = rt.op
	}
	return ops
}

// OpenAPI returns the generated OpenAPI document.
func (s *Server) OpenAPI() []byte { return s.openapi }

// Handler returns the root handler with logging, metrics, request ids and
// panic recovery around the route table.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		reqID := newRequestID()
		w.Header().Set("X-Request-Id", reqID)
		rec := &statusRecorder{ResponseWriter: w}
		h, pattern := s.mux.Handler(r)
		defer func() {
			p := recover()
			if p == http.ErrAbortHandler {
				// A handler cut a streamed body short on purpose: let
				// net/http drop the connection so the client sees it.
				defer panic(p)
			} else if p != nil {
				s.log.ErrorContext(r.Context(), "panic serving request", append(logAttrs(r, reqID), "panic", p)...)
				if rec.status == 0 {
					s.writeError(rec, r, errPanic)
				}
			}
			route := pattern
			if route == "" {
				route = "unmatched"
			}
			s.metrics.observe(route, r.Method, rec.status, time.Since(start))
			// Device traffic and probes are the bulk of requests: keep them
			// out of the info log unless they fail.
			level := slog.LevelInfo
			if (strings.HasPrefix(r.URL.Path, "/device/") || strings.HasPrefix(r.URL.Path, "/tuf/") || !strings.HasPrefix(r.URL.Path, "/api/")) && rec.status < 500 {
				level = slog.LevelDebug
			}
			s.log.Log(r.Context(), level, "request", append(logAttrs(r, reqID),
				"route", route, "status", rec.status, "duration_ms", time.Since(start).Milliseconds())...)
		}()
		if pattern == "" {
			// ServeMux answers unknown paths and wrong methods in plain
			// text; answer with a problem document instead.
			s.muxError(rec, r, h)
			return
		}
		s.mux.ServeHTTP(rec, r)
	})
}

var errPanic = &statusError{http.StatusInternalServerError, "internal error"}

func (s *Server) muxError(w http.ResponseWriter, r *http.Request, h http.Handler) {
	probe := &headerProbe{header: http.Header{}}
	h.ServeHTTP(probe, r)
	status := probe.status
	if status == 0 {
		status = http.StatusNotFound
	}
	detail := "no such endpoint: " + r.URL.Path + "; the API is described at /api/v1/openapi.json"
	if allow := probe.header.Get("Allow"); allow != "" {
		w.Header().Set("Allow", allow)
		detail = r.Method + " is not allowed on " + r.URL.Path + "; allowed: " + allow
	}
	s.writeError(w, r, &statusError{status, detail})
}

// headerProbe captures what ServeMux's own error handler would write.
type headerProbe struct {
	header http.Header
	status int
}

func (p *headerProbe) Header() http.Header         { return p.header }
func (p *headerProbe) Write(b []byte) (int, error) { return len(b), nil }
func (p *headerProbe) WriteHeader(status int)      { p.status = status }

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
	r.ResponseWriter.WriteHeader(status)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func newRequestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// wrap adapts a route to http.Handler: authenticate, scope to the org in
// the path, read the body, apply idempotency, encode the result.
func (s *Server) wrap(rt route) http.Handler {
	if rt.public != nil {
		return rt.public
	}
	status := rt.op.Status
	if status == 0 {
		status = http.StatusOK
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		secret, err := bearer(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		p, err := s.tenancy.Authenticate(r.Context(), secret)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if org := r.PathValue("org"); org != "" && !rt.crossOrg {
			if err := s.tenancy.ResolveOrg(p, org); err != nil {
				s.writeError(w, r, err)
				return
			}
		}
		var body []byte
		if !rt.rawBody {
			if body, err = s.readBody(w, r); err != nil {
				s.writeError(w, r, err)
				return
			}
		}
		c := &call{r: r, p: p, body: body, w: w}
		if key := r.Header.Get("Idempotency-Key"); key != "" && rt.idempotent {
			s.idempotent(w, c, key, func(w http.ResponseWriter) { s.respond(w, c, rt, status) })
			return
		}
		s.respond(w, c, rt, status)
	})
}

func (s *Server) respond(w http.ResponseWriter, c *call, rt route, status int) {
	v, err := rt.handle(c)
	if err != nil {
		s.writeError(w, c.r, err)
		return
	}
	if v == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if st, ok := v.(stream); ok {
		st(w)
		return
	}
	writeJSON(w, "application/json", status, v)
}

// stream is a handler result that writes its own body (exports).
type stream func(w http.ResponseWriter)
