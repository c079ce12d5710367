package trust

import (
	"context"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"path"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// TargetStore holds target files by content; the blob store implements it.
type TargetStore interface {
	// Open returns the content with that sha256 and its size, or an error
	// wrapping ErrNotFound.
	Open(ctx context.Context, sha256hex string) (io.ReadSeekCloser, int64, error)
}

// Handler serves a repository to TUF clients (mount it under a prefix with
// http.StripPrefix):
//
//	GET /metadata/{name}   N.root.json, N.targets.json, N.snapshot.json, timestamp.json, root.json
//	GET /targets/{path...} <dir>/<hex digest>.<basename>, by sha256 or sha512
//
// Every file that does not exist answers 404: the client walks N.root.json
// upwards until a 404 and fails on any other status. Only targets listed in
// the newest published targets metadata are served, so a digest known from
// elsewhere does not open the blob store. Target files answer Range requests.
func Handler(store MetaStore, targets TargetStore) http.Handler {
	s := &server{store: store, targets: targets}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metadata/{name}", s.serveMetadata)
	mux.HandleFunc("GET /targets/{path...}", s.serveTarget)
	return mux
}

// metadataName matches the served metadata names; staged documents and
// anything else stay private.
var metadataName = regexp.MustCompile(`^(?:[1-9][0-9]{0,18}\.(?:root|targets|snapshot)|root|timestamp)\.json$`)

// Versioned files and target files never change once written.
const immutable = "public, max-age=31536000, immutable"

type server struct {
	store   MetaStore
	targets TargetStore

	mu    sync.Mutex
	index targetIndex
}

// targetIndex is the targets list of one snapshot version, by path.
type targetIndex struct {
	snapshot int64
	files    map[string]*metadata.TargetFiles
}

func (s *server) serveMetadata(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !metadataName.MatchString(name) {
		http.NotFound(w, r)
		return
	}
	data, err := s.store.Get(r.Context(), name)
	if errors.Is(err, ErrNotFound) {
		http.NotFound(w, r)
		return
	}
	if err != nil {
		http.Error(w, "metadata unavailable", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(data)))
	if name == nameRoot || name == nameTimestamp {
		h.Set("Cache-Control", "no-cache")
	} else {
		h.Set("Cache-Control", immutable)
	}
	_, _ = w.Write(data)
}

func (s *server) serveTarget(w http.ResponseWriter, r *http.Request) {
	dir, name := path.Split(r.PathValue("path"))
	digest, base, ok := strings.Cut(name, ".")
	if !ok {
		http.NotFound(w, r)
		return
	}
	tf, err := s.lookup(r.Context(), dir+base)
	if err != nil {
		http.Error(w, "metadata unavailable", http.StatusInternalServerError)
		return
	}
	alg := map[int]string{64: "sha256", 128: "sha512"}[len(digest)]
	if tf == nil || alg == "" || hex.EncodeToString(tf.Hashes[alg]) != digest {
		http.NotFound(w, r)
		return
	}
	f, size, err := s.targets.Open(r.Context(), hex.EncodeToString(tf.Hashes["sha256"]))
	if errors.Is(err, ErrNotFound) {
		http.NotFound(w, r)
		return
	}
	if err != nil {
		http.Error(w, "target unavailable", http.StatusInternalServerError)
		return
	}
	defer f.Close()
	if size != tf.Length {
		// Every client would reject it; say so instead of sending it.
		http.Error(w, "stored target does not match its signed length", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Cache-Control", immutable)
	http.ServeContent(w, r, "", time.Time{}, f)
}

// lookup finds path in the newest published targets metadata, or returns nil.
func (s *server) lookup(ctx context.Context, path string) (*metadata.TargetFiles, error) {
	ts, err := optional(load[metadata.TimestampType](ctx, s.store, nameTimestamp))
	if err != nil || ts == nil {
		return nil, err
	}
	sm := ts.Signed.Meta["snapshot.json"]
	if sm == nil {
		return nil, errors.New("trust: timestamp.json names no snapshot.json")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// The timestamp is small and re-read each time; the targets list is
	// parsed again only when a new snapshot names another one.
	if s.index.files == nil || s.index.snapshot != sm.Version {
		_, targets, err := publishedTargets(ctx, s.store, ts)
		if err != nil {
			return nil, err
		}
		s.index = targetIndex{snapshot: sm.Version, files: targets.Signed.Targets}
	}
	return s.index.files[path], nil
}
