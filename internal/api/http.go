package api

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/steward-iot/steward/internal/access"
	"github.com/steward-iot/steward/internal/paging"
	"github.com/steward-iot/steward/internal/problem"
	"github.com/steward-iot/steward/internal/problem/httpstatus"
)

// Problem is an RFC 9457 problem details document.
type Problem struct {
	Type     string               `json:"type" doc:"always about:blank: the status and title say what kind of problem it is"`
	Title    string               `json:"title"`
	Status   int                  `json:"status"`
	Detail   string               `json:"detail,omitempty" doc:"what was wrong and what to do about it"`
	Instance string               `json:"instance,omitempty" doc:"the request id, for reports and logs"`
	Errors   []problem.FieldError `json:"errors,omitempty"`
	Code     string               `json:"code,omitempty" doc:"machine-readable reason, where clients act on it"`
}

// statusError carries an HTTP status that has no domain kind (415, 422, 405).
type statusError struct {
	status int
	detail string
}

func (e *statusError) Error() string { return e.detail }

// writeError turns any error into a problem document. Internal errors are
// logged with the request id, and the client sees only that id: raw error
// text can leak schema, paths or secrets.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	reqID := w.Header().Get("X-Request-Id")
	p := Problem{Type: "about:blank", Instance: reqID}
	var se *statusError
	var pe *problem.Error
	switch {
	case errors.As(err, &se):
		p.Status, p.Detail = se.status, se.detail
	case errors.As(err, &pe) && pe.Kind != problem.KindInternal:
		p.Status, p.Detail, p.Errors, p.Code = httpstatus.Of(pe.Kind), pe.Detail, pe.Fields, pe.Code
	default:
		p.Status = http.StatusInternalServerError
		p.Detail = "internal error; quote request id " + reqID + " when reporting it"
		s.log.ErrorContext(r.Context(), "request failed", "request_id", reqID, "method", r.Method, "path", r.URL.Path, "err", err)
	}
	p.Title = http.StatusText(p.Status)
	if p.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="steward"`)
	}
	writeJSON(w, "application/problem+json", p.Status, p)
}

func writeJSON(w http.ResponseWriter, contentType string, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Our own response types always marshal; this is a programming error.
		b = []byte(`{"type":"about:blank","title":"Internal Server Error","status":500}`)
		status, contentType = http.StatusInternalServerError, "application/problem+json"
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// call is one authenticated API request as handlers see it.
type call struct {
	r    *http.Request
	w    http.ResponseWriter // for raw-body routes that bound their own reads
	p    access.Principal
	body []byte
}

// decode parses the JSON body into v strictly: unknown fields, trailing
// data and type mismatches are errors that name the field.
func (c *call) decode(v any) error {
	if len(bytes.TrimSpace(c.body)) == 0 {
		return problem.Invalid("the request body is empty; send a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(c.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return problem.Invalid("the request body has data after the JSON object; send exactly one object")
	}
	return nil
}

func decodeError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return problem.Invalid("malformed JSON at byte %d: %s", syn.Offset, syn.Error())
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			return problem.Invalid("the request body must be a JSON object, not a JSON %s", typ.Value)
		}
		return problem.InvalidField(field, "must be a JSON %s, not a JSON %s", jsonKind(typ.Type.Kind().String()), typ.Value)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return problem.Invalid("malformed JSON: the body ends before the object does")
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		f := strings.Trim(name, `"`)
		return problem.InvalidField(f, "unknown field %q; check the spelling against /api/v1/openapi.json", f)
	}
	return problem.Invalid("malformed JSON: %s", strings.TrimPrefix(err.Error(), "json: "))
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "string"
	case "bool":
		return "boolean"
	case "slice", "array":
		return "array"
	case "struct", "map":
		return "object"
	}
	return "number"
}

// readBody reads a bounded request body and checks its media type.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if r.Body == nil || r.ContentLength == 0 {
		return nil, nil
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return nil, &statusError{http.StatusUnsupportedMediaType, fmt.Sprintf("Content-Type %q is not supported; send application/json", ct)}
		}
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.maxBody))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, problem.TooLarge("the request body is larger than the %d-byte limit", mbe.Limit)
	}
	if err != nil {
		return nil, problem.Invalid("could not read the request body: %v", err)
	}
	return b, nil
}

// Cursor pagination. Cursors are opaque to clients (base64url of the last
// key seen), so the key format can change without breaking them.
const (
	defaultLimit = 100
	maxLimit     = paging.MaxLimit
)

type pageQuery struct {
	after string
	limit int
}

func (c *call) page() (pageQuery, error) {
	q := c.r.URL.Query()
	pq := pageQuery{limit: defaultLimit}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxLimit {
			return pq, problem.InvalidField("limit", "%q is not a whole number from 1 to %d", v, maxLimit)
		}
		pq.limit = n
	}
	if v := q.Get("cursor"); v != "" {
		after, err := decodeCursor(v)
		if err != nil {
			return pq, problem.InvalidField("cursor", "not a cursor this server issued; pass next_cursor from the previous page unchanged")
		}
		pq.after = after
	}
	return pq, nil
}

const cursorPrefix = "c1:"

func encodeCursor(key string) string {
	if key == "" {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString([]byte(cursorPrefix + key))
}

func decodeCursor(s string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return "", err
	}
	key, ok := strings.CutPrefix(string(b), cursorPrefix)
	if !ok || key == "" || len(key) > 200 {
		return "", errors.New("bad cursor")
	}
	return key, nil
}

// Page is one page of a list response.
type Page[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor,omitempty" doc:"pass as ?cursor= for the next page; absent on the last page"`
}

func newPage[T any](items []T, next string) Page[T] {
	if items == nil {
		items = []T{}
	}
	return Page[T]{Items: items, NextCursor: encodeCursor(next)}
}

// bearer extracts the token from an Authorization header.
func bearer(r *http.Request) (string, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", problem.Unauthenticated("this endpoint needs an API token: send Authorization: Bearer <token>")
	}
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		return "", problem.Unauthenticated("the Authorization header must be \"Bearer <token>\"")
	}
	return strings.TrimSpace(tok), nil
}

// logAttrs are the request fields every log line carries.
func logAttrs(r *http.Request, reqID string) []any {
	return []any{slog.String("request_id", reqID), slog.String("method", r.Method), slog.String("path", r.URL.Path)}
}
