package tlog

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"

	"github.com/steward-iot/steward/internal/problem"
)

// InclusionResponse is the body of GET /proof/inclusion.
type InclusionResponse struct {
	Index  int64  `json:"index"`
	Size   int64  `json:"size"`
	Hashes []Hash `json:"hashes"`
}

// ConsistencyResponse is the body of GET /proof/consistency.
type ConsistencyResponse struct {
	Old    int64  `json:"old"`
	New    int64  `json:"new"`
	Hashes []Hash `json:"hashes"`
}

// LookupResponse is the body of GET /lookup.
type LookupResponse struct {
	Indexes []int64 `json:"indexes"`
}

// Entries and proofs for a given index and size never change.
const immutable = "public, max-age=31536000, immutable"

// Handler serves l read-only; the package documentation lists the routes.
func Handler(l *Log) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /checkpoint", func(w http.ResponseWriter, r *http.Request) {
		cp, err := l.Checkpoint(r.Context())
		if err != nil {
			fail(w, err)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		_, _ = w.Write(cp)
	})
	mux.HandleFunc("GET /entries/{index}", func(w http.ResponseWriter, r *http.Request) {
		index, err := number("index", r.PathValue("index"))
		if err != nil {
			fail(w, err)
			return
		}
		leaf, err := l.Leaf(r.Context(), index)
		if err != nil {
			fail(w, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", immutable)
		_, _ = w.Write(leaf)
	})
	mux.HandleFunc("GET /proof/inclusion", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		index, err := number("index", q.Get("index"))
		if err != nil {
			fail(w, err)
			return
		}
		size, err := number("size", q.Get("size"))
		if err != nil {
			fail(w, err)
			return
		}
		p, err := l.InclusionProof(r.Context(), index, size)
		if err != nil {
			fail(w, err)
			return
		}
		writeJSON(w, InclusionResponse{Index: index, Size: size, Hashes: p})
	})
	mux.HandleFunc("GET /proof/consistency", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		oldSize, err := number("old", q.Get("old"))
		if err != nil {
			fail(w, err)
			return
		}
		newSize, err := number("new", q.Get("new"))
		if err != nil {
			fail(w, err)
			return
		}
		p, err := l.ConsistencyProof(r.Context(), oldSize, newSize)
		if err != nil {
			fail(w, err)
			return
		}
		writeJSON(w, ConsistencyResponse{Old: oldSize, New: newSize, Hashes: p})
	})
	mux.HandleFunc("GET /lookup", func(w http.ResponseWriter, r *http.Request) {
		key, err := lookupKeyOf(r.URL.Query())
		if err != nil {
			fail(w, err)
			return
		}
		ix, err := l.Find(r.Context(), key)
		if err != nil {
			fail(w, err)
			return
		}
		// Later appends can add entries under the same key.
		writeJSONCached(w, LookupResponse{Indexes: ix}, "no-cache")
	})
	return mux
}

// lookupKeyOf reads a release (product, release_counter) or a metadata
// version (role, metadata_version) from a lookup query.
func lookupKeyOf(q url.Values) (string, error) {
	switch {
	case q.Has("product") && !q.Has("role"):
		n, err := number("release_counter", q.Get("release_counter"))
		if err != nil {
			return "", err
		}
		return ReleaseKey(q.Get("product"), n), nil
	case q.Has("role") && !q.Has("product"):
		n, err := number("metadata_version", q.Get("metadata_version"))
		if err != nil {
			return "", err
		}
		return MetadataKey(q.Get("role"), n), nil
	}
	return "", problem.Invalid("look up either product and release_counter, or role and metadata_version")
}

// number parses a parameter in its one spelling: decimal, no sign, no
// leading zeros, so equal requests have equal (cacheable) URLs.
func number(name, s string) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != s {
		return 0, problem.InvalidField(name, "%q is not a non-negative decimal number", s)
	}
	return n, nil
}

func writeJSON(w http.ResponseWriter, v any) {
	writeJSONCached(w, v, immutable)
}

func writeJSONCached(w http.ResponseWriter, v any, cache string) {
	b, _ := json.Marshal(v) // proofs, sizes and indexes always marshal
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", cache)
	_, _ = w.Write(append(b, '\n'))
}

// fail answers 400 or 404 with the problem's detail, and 500 without
// details for anything else.
func fail(w http.ResponseWriter, err error) {
	switch problem.KindOf(err) {
	case problem.KindInvalid:
		http.Error(w, err.Error(), http.StatusBadRequest)
	case problem.KindNotFound:
		http.Error(w, err.Error(), http.StatusNotFound)
	default:
		http.Error(w, "transparency log unavailable", http.StatusInternalServerError)
	}
}
