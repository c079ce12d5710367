package disclosure

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/steward-iot/steward/internal/problem"
	"github.com/steward-iot/steward/internal/problem/httpstatus"
)

// Routes lists the ServeMux patterns the public handler serves, so the
// server can mount it at each.
func Routes() []string {
	return []string{
		"GET " + pathSecurityTxt,
		"GET " + pathPolicy,
		"GET " + pathForm,
		"POST " + pathForm,
		"GET " + pathStatusPage,
		"POST " + pathStatusPage,
		"POST " + pathAPIReports,
		"GET " + pathAPIStatus,
		"POST " + pathAPIMessages,
	}
}

type handler struct {
	svc      *Service
	cfg      Config
	log      *slog.Logger
	trusted  []netip.Prefix
	reports  *limiter
	status   *limiter
	messages *limiter
	mux      *http.ServeMux
	pages    *template.Template
}

// NewHandler returns the public disclosure endpoints (see Routes) for the
// organization svc's Config names. Nobody authenticates here: reporters
// prove nothing but possession of a tracking token, so every input is
// bounded, rate-limited per client and escaped on the way out. The
// configuration comes from the service so the pages and the sweep can
// never disagree; it must pass Config.Validate.
func NewHandler(svc *Service, log *slog.Logger) (http.Handler, error) {
	cfg := svc.Config()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	trusted, _ := parsePrefixes(cfg.TrustedProxies) // checked by Validate
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	h := &handler{svc: svc, cfg: cfg, log: log, trusted: trusted, pages: pages,
		reports: newLimiter(cfg.ReportRate, svc.clock), status: newLimiter(cfg.StatusRate, svc.clock),
		messages: newLimiter(cfg.MessageRate, svc.clock), mux: http.NewServeMux()}
	for pattern, fn := range map[string]http.HandlerFunc{
		"GET " + pathSecurityTxt:  h.securityTxt,
		"GET " + pathPolicy:       h.policyPage,
		"GET " + pathForm:         h.formPage,
		"POST " + pathForm:        h.formSubmit,
		"GET " + pathStatusPage:   h.statusForm,
		"POST " + pathStatusPage:  h.statusPage,
		"POST " + pathAPIReports:  h.apiSubmit,
		"GET " + pathAPIStatus:    h.apiStatus,
		"POST " + pathAPIMessages: h.apiMessage,
	} {
		h.mux.HandleFunc(pattern, fn)
	}
	return h, nil
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("X-Frame-Options", "DENY")
	if _, pattern := h.mux.Handler(r); pattern == "" {
		// ServeMux would answer in plain text; answer like the API does.
		probe := &headerProbe{header: http.Header{}}
		h.mux.ServeHTTP(probe, r)
		if allow := probe.header.Get("Allow"); probe.status == http.StatusMethodNotAllowed && allow != "" {
			hd.Set("Allow", allow)
			h.problem(w, r, &statusError{http.StatusMethodNotAllowed, r.Method + " is not allowed here; allowed: " + allow})
			return
		}
		h.problem(w, r, problem.NotFound("no such endpoint: %s", r.URL.Path))
		return
	}
	h.mux.ServeHTTP(w, r)
}

type headerProbe struct {
	header http.Header
	status int
}

func (p *headerProbe) Header() http.Header         { return p.header }
func (p *headerProbe) Write(b []byte) (int, error) { return len(b), nil }
func (p *headerProbe) WriteHeader(status int)      { p.status = status }

// statusError carries an HTTP status with no domain kind (405, 415).
type statusError struct {
	status int
	detail string
}

func (e *statusError) Error() string { return e.detail }

// rateLimited is a client over its budget.
type rateLimited struct{ wait time.Duration }

func (e *rateLimited) Error() string {
	return fmt.Sprintf("too many requests from your address; try again in %d seconds", retryAfter(e.wait))
}

// Problem is an RFC 9457 problem details document, as the admin API writes it.
type Problem struct {
	Type     string               `json:"type"`
	Title    string               `json:"title"`
	Status   int                  `json:"status"`
	Detail   string               `json:"detail,omitempty"`
	Instance string               `json:"instance,omitempty" doc:"the request id, when the server assigned one"`
	Errors   []problem.FieldError `json:"errors,omitempty"`
}

// classify turns err into a problem document and sets the headers that go
// with it. Internal errors are logged; the client sees only the request id.
func (h *handler) classify(w http.ResponseWriter, r *http.Request, err error) Problem {
	reqID := w.Header().Get("X-Request-Id")
	p := Problem{Type: "about:blank", Instance: reqID}
	var se *statusError
	var rl *rateLimited
	var pe *problem.Error
	switch {
	case errors.As(err, &se):
		p.Status, p.Detail = se.status, se.detail
	case errors.As(err, &rl):
		p.Status, p.Detail = http.StatusTooManyRequests, rl.Error()
		w.Header().Set("Retry-After", strconv.Itoa(retryAfter(rl.wait)))
	case errors.As(err, &pe) && pe.Kind != problem.KindInternal:
		p.Status, p.Detail, p.Errors = httpstatus.Of(pe.Kind), pe.Detail, pe.Fields
	default:
		p.Status, p.Detail = http.StatusInternalServerError, "internal error"
		if reqID != "" {
			p.Detail += "; quote request id " + reqID + " when reporting it"
		}
		h.log.ErrorContext(r.Context(), "disclosure request failed", "request_id", reqID, "method", r.Method, "path", r.URL.Path, "err", err)
	}
	if p.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="vulnerability reports"`)
	}
	p.Title = http.StatusText(p.Status)
	return p
}

// problem writes err as application/problem+json.
func (h *handler) problem(w http.ResponseWriter, r *http.Request, err error) {
	p := h.classify(w, r, err)
	writeJSON(w, "application/problem+json", p.Status, p)
}

func writeJSON(w http.ResponseWriter, contentType string, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		b, status, contentType = []byte(`{"type":"about:blank","title":"Internal Server Error","status":500}`), 500, "application/problem+json"
	}
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// take charges one request to key's bucket in l, answering 429 when empty.
func (h *handler) take(w http.ResponseWriter, r *http.Request, l *limiter, key string, html bool) bool {
	ok, wait := l.allow(key)
	if ok {
		return true
	}
	if html {
		h.htmlError(w, r, &rateLimited{wait})
	} else {
		h.problem(w, r, &rateLimited{wait})
	}
	return false
}

// refund gives back a request that was refused as invalid: the limits are
// there to stop floods of stored reports, not to lock out a person who
// mistyped their email address five times.
func (l *limiter) refund(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if b := l.buckets[key]; b != nil {
		b.tokens = min(float64(l.rate.N), b.tokens+1)
	}
}

func refundable(err error) bool {
	var se *statusError
	return errors.As(err, &se) || problem.Is(err, problem.KindInvalid) || problem.Is(err, problem.KindTooLarge)
}

// readBody checks the media type and reads a bounded body.
func (h *handler) readBody(w http.ResponseWriter, r *http.Request, want string) ([]byte, error) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	ok := err == nil && (mt == want || (want == "application/json" && strings.HasSuffix(mt, "+json")))
	if !ok {
		// A JSON body must say so: that also forces a CORS preflight on any
		// cross-site script, which a text/plain "simple request" avoids.
		return nil, &statusError{http.StatusUnsupportedMediaType,
			fmt.Sprintf("Content-Type %q is not supported here; send %s", r.Header.Get("Content-Type"), want)}
	}
	if r.ContentLength > h.cfg.MaxBody {
		return nil, tooLarge(h.cfg.MaxBody)
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.cfg.MaxBody))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, tooLarge(h.cfg.MaxBody)
	}
	if err != nil {
		return nil, problem.Invalid("could not read the request body")
	}
	return b, nil
}

func tooLarge(limit int64) error {
	return problem.TooLarge("the request body is larger than the %d-byte limit; a description may hold up to %d bytes", limit, MaxDescription)
}

// decodeJSON parses one JSON object strictly: unknown fields, trailing
// data and wrong types are errors that name the field.
func decodeJSON(b []byte, v any) error {
	if len(bytes.TrimSpace(b)) == 0 {
		return problem.Invalid("the request body is empty; send a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var syn *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syn):
			return problem.Invalid("malformed JSON at byte %d", syn.Offset)
		case errors.As(err, &typ) && typ.Field != "":
			return problem.InvalidField(typ.Field, "has the wrong JSON type (%s)", typ.Value)
		case errors.As(err, &typ):
			return problem.Invalid("the request body must be a JSON object, not a JSON %s", typ.Value)
		case errors.Is(err, io.ErrUnexpectedEOF):
			return problem.Invalid("malformed JSON: the body ends before the object does")
		}
		if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			f := strings.Trim(name, `"`)
			return problem.InvalidField(f, "unknown field")
		}
		return problem.Invalid("malformed JSON")
	}
	if _, err := dec.Token(); err != io.EOF {
		return problem.Invalid("the request body has data after the JSON object; send exactly one object")
	}
	return nil
}

// decodeReport parses and validates a JSON report (the fuzzed path).
func decodeReport(b []byte) (ReportRequest, error) {
	var req ReportRequest
	if err := decodeJSON(b, &req); err != nil {
		return req, err
	}
	return cleanRequest(req)
}

// bearerToken returns the token of an "Authorization: Bearer" header, or
// "" — which the service answers exactly like a wrong token.
func bearerToken(r *http.Request) string {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(tok)
}

func (h *handler) securityTxt(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	_, _ = io.WriteString(w, SecurityTxt(h.cfg, h.svc.clock.Now()))
}

func (h *handler) apiSubmit(w http.ResponseWriter, r *http.Request) {
	key := clientKey(r, h.trusted)
	if !h.take(w, r, h.reports, key, false) {
		return
	}
	b, err := h.readBody(w, r, "application/json")
	var req ReportRequest
	if err == nil {
		req, err = decodeReport(b)
	}
	var rc Receipt
	if err == nil {
		rc, err = h.svc.Submit(r.Context(), h.cfg.OrgID, req, SourceAPI)
	}
	if err != nil {
		if refundable(err) {
			h.reports.refund(key)
		}
		h.problem(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, "application/json", http.StatusCreated, rc)
}

func (h *handler) apiStatus(w http.ResponseWriter, r *http.Request) {
	if !h.take(w, r, h.status, clientKey(r, h.trusted), false) {
		return
	}
	st, err := h.svc.Status(r.Context(), h.cfg.OrgID, bearerToken(r))
	if err != nil {
		h.problem(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, "application/json", http.StatusOK, st)
}

func (h *handler) apiMessage(w http.ResponseWriter, r *http.Request) {
	key := clientKey(r, h.trusted)
	if !h.take(w, r, h.messages, key, false) {
		return
	}
	b, err := h.readBody(w, r, "application/json")
	var req MessageRequest
	if err == nil {
		err = decodeJSON(b, &req)
	}
	var m PublicMessage
	if err == nil {
		m, err = h.svc.AddReporterMessage(r.Context(), h.cfg.OrgID, bearerToken(r), req)
	}
	if err != nil {
		if refundable(err) {
			h.messages.refund(key)
		}
		h.problem(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, "application/json", http.StatusCreated, m)
}
