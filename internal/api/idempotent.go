package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"

	"github.com/steward-iot/steward/internal/idempotency"
	"github.com/steward-iot/steward/internal/problem"
)

// idempotent runs a create at most once per (org, Idempotency-Key): a
// retry with the same request gets the stored response; the same key with
// a different request is refused. Failed requests release the key so a
// corrected retry may run. Secrets are never stored: a replayed response
// omits them (the client must revoke and recreate if it lost the first).
func (s *Server) idempotent(w http.ResponseWriter, c *call, key string, run func(http.ResponseWriter)) {
	if len(key) > 255 || !printableASCII(key) {
		s.writeError(w, c.r, problem.InvalidField("Idempotency-Key", "must be 1-255 printable ASCII characters"))
		return
	}
	h := sha256.New()
	h.Write([]byte(c.r.Method + " " + c.r.URL.Path + "\n"))
	h.Write(c.body)
	rec := idempotency.Record{OrgID: c.p.OrgID, Key: key, Method: c.r.Method, Path: c.r.URL.Path,
		RequestHash: hex.EncodeToString(h.Sum(nil)), CreatedAt: s.clock.Now()}
	var existing idempotency.Record
	var claimed bool
	err := s.idem.Write(c.r.Context(), func(tx idempotency.Tx) error {
		var err error
		existing, claimed, err = tx.ClaimIdempotencyKey(c.r.Context(), rec)
		return err
	})
	switch {
	case err != nil:
		s.writeError(w, c.r, err)
		return
	case !claimed && existing.RequestHash != rec.RequestHash:
		s.writeError(w, c.r, &statusError{http.StatusUnprocessableEntity,
			"Idempotency-Key " + key + " was already used for a different request; use a new key for a new request"})
		return
	case !claimed && existing.Status == 0:
		s.writeError(w, c.r, problem.Conflict("a request with Idempotency-Key %s is still being processed; retry shortly", key))
		return
	case !claimed:
		w.Header().Set("Content-Type", existing.ContentType)
		w.Header().Set("Idempotent-Replayed", "true")
		w.WriteHeader(existing.Status)
		_, _ = w.Write(existing.Body)
		return
	}
	out := httptest.NewRecorder()
	run(out)
	// The key's fate is settled on a context that outlives a client that
	// hung up, so the key is never left "in progress".
	ctx := context.WithoutCancel(c.r.Context())
	if out.Code >= 200 && out.Code < 300 {
		err = s.idem.Write(ctx, func(tx idempotency.Tx) error {
			return tx.CompleteIdempotencyKey(ctx, rec.OrgID, key, out.Code, out.Header().Get("Content-Type"), withoutSecrets(out.Body.Bytes()))
		})
	} else {
		err = s.idem.Write(ctx, func(tx idempotency.Tx) error { return tx.ReleaseIdempotencyKey(ctx, rec.OrgID, key) })
	}
	if err != nil {
		s.log.ErrorContext(ctx, "idempotency key not settled", "key", key, "err", err)
	}
	for k, v := range out.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(out.Code)
	_, _ = w.Write(out.Body.Bytes())
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return s != ""
}

// withoutSecrets drops every "secret" member from a JSON document.
func withoutSecrets(body []byte) []byte {
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return body
	}
	var strip func(any)
	strip = func(v any) {
		switch t := v.(type) {
		case map[string]any:
			delete(t, "secret")
			for _, c := range t {
				strip(c)
			}
		case []any:
			for _, c := range t {
				strip(c)
			}
		}
	}
	strip(v)
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(v); err != nil {
		return body
	}
	return buf.Bytes()
}
