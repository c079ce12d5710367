package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"sync"

	"golang.org/x/mod/sumdb/note"

	"github.com/steward-iot/steward/internal/clock"
	"github.com/steward-iot/steward/internal/problem"
	"github.com/steward-iot/steward/internal/store"
	"github.com/steward-iot/steward/internal/tenancy"
	"github.com/steward-iot/steward/internal/tlog"
	"github.com/steward-iot/steward/internal/trust"
)

// tlogs runs the release transparency logs: one per organization, each
// with its own checkpoint signing key, served publicly at /tlog/{org}/.
//
// Why one log per organization rather than one for the instance: each
// tenant's TUF repository is already its own (/tuf/{org}/), and its log
// sits beside it. A public instance-wide log would list every tenant's
// products and releases to anyone, which the admin API takes care never to
// reveal across tenants. Appends of one tenant (timestamps are re-signed
// daily per organization and on every publish) do not queue behind
// another's, and a device or auditor follows only its vendor's log, whose
// proofs stay short. The cost is one key per organization to pin, and
// witnesses that want to cover the instance follow several logs.
//
// The signing key is made on an organization's first entry and kept online
// in the database (tlog_keys), like the embedded default's TUF keys: a
// checkpoint says that this server committed to these entries, which
// lets devices and auditors that compare checkpoints catch a server that
// shows different histories to different clients; it does not protect
// against whoever holds the database writing a consistent false history
// from the start.
type tlogs struct {
	db    *store.DB
	clock clock.Clock

	mu   sync.Mutex
	open map[string]*orgLog // by organization id
}

// orgLog is one organization's open log.
type orgLog struct {
	*tlog.Log
	slug     string
	verifier string // note verifier key, public
	handler  http.Handler
}

func newTLogs(db *store.DB, c clock.Clock) *tlogs {
	return &tlogs{db: db, clock: c, open: map[string]*orgLog{}}
}

// origin names an organization's log in checkpoints and its key. The
// organization id keeps it unique across installations that share slugs.
func origin(slug, orgID string) string { return "steward-tlog/" + slug + "/" + orgID }

// get opens an organization's log. With create, the first use makes its
// signing key; without, a log that does not exist yet is NotFound.
func (t *tlogs) get(ctx context.Context, orgID string, create bool) (*orgLog, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if l, ok := t.open[orgID]; ok {
		return l, nil
	}
	var org tenancy.Org
	err := t.db.Tenancy().Read(ctx, func(tx tenancy.Tx) error {
		var err error
		org, err = tx.OrgByID(ctx, orgID)
		return err
	})
	if err != nil {
		return nil, err
	}
	var generate func() (string, string, error)
	if create {
		generate = func() (string, string, error) { return note.GenerateKey(rand.Reader, origin(org.Slug, org.ID)) }
	}
	skey, vkey, err := t.db.TLogKey(ctx, orgID, generate)
	if err != nil {
		return nil, err
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		return nil, fmt.Errorf("the transparency log key of organization %s is damaged: %w", org.Slug, err)
	}
	l, err := tlog.New(t.db.TLog(orgID), signer.Name(), signer, t.clock)
	if err != nil {
		return nil, err
	}
	ol := &orgLog{Log: l, slug: org.Slug, verifier: vkey,
		handler: http.StripPrefix("/tlog/"+org.Slug, tlog.Handler(l))}
	t.open[orgID] = ol
	return ol, nil
}

// AppendRelease implements release.TransparencyLog.
func (t *tlogs) AppendRelease(ctx context.Context, orgID string, e tlog.Entry) error {
	l, err := t.get(ctx, orgID, true)
	if err != nil {
		return err
	}
	return l.appendOnce(ctx, e)
}

// appendOnce appends e unless the log already holds the same entry (a
// write retried after a failure): retries do not multiply entries.
func (l *orgLog) appendOnce(ctx context.Context, e tlog.Entry) error {
	ix, err := l.Find(ctx, e.Key())
	if err != nil {
		return err
	}
	for _, i := range ix {
		leaf, err := l.Leaf(ctx, i)
		if err != nil {
			return err
		}
		if got, err := tlog.ParseEntry(leaf); err == nil && tlog.SameExceptTime(got, e) {
			return nil
		}
	}
	_, err = l.Append(ctx, e)
	return err
}

// metaStores wraps each organization's TUF metadata store so that every
// signed metadata version clients can fetch is appended to the log first.
func (t *tlogs) metaStores(inner func(orgID string) trust.MetaStore) func(orgID string) trust.MetaStore {
	return func(orgID string) trust.MetaStore { return loggedMeta{MetaStore: inner(orgID), orgID: orgID, logs: t} }
}

// loggedMeta appends a metadata entry before it stores a served version.
//
// Ordering: the entry is committed before the file is written, so a
// client can never fetch a version the log lacks. A crash or failure in
// between leaves a logged version that was never served; that is
// harmless, since the log promises that what is served is logged, not the
// converse, and a monitor may well want to see it. The repository then
// signs that version number again, with new bytes, and the log records
// both. Writing identical bytes again appends nothing (appendOnce). If
// the log cannot be written, neither is the file: publishing fails rather
// than serving unlogged metadata.
type loggedMeta struct {
	trust.MetaStore
	orgID string
	logs  *tlogs
}

func (m loggedMeta) Put(ctx context.Context, name string, data []byte) error {
	role, version, ok, err := servedVersion(name, data)
	if err != nil {
		return err
	}
	if ok {
		l, err := m.logs.get(ctx, m.orgID, true)
		if err == nil {
			sum := sha256.Sum256(data)
			err = l.appendOnce(ctx, tlog.Entry{Kind: tlog.KindMetadata, Org: l.slug, Role: role, MetadataVersion: version,
				SHA256: hex.EncodeToString(sum[:])})
		}
		if err != nil {
			return fmt.Errorf("logging %s in the transparency log (so it was not published): %w", name, err)
		}
	}
	return m.MetaStore.Put(ctx, name, data)
}

var versionedName = regexp.MustCompile(`^([1-9][0-9]{0,18})\.(root|targets|snapshot)\.json$`)

// servedVersion says which role and version a stored metadata file is, if
// it is one clients fetch by that name. root.json is a copy of the newest
// N.root.json, written after it; staged files are never served.
func servedVersion(name string, data []byte) (role string, version int64, ok bool, err error) {
	if m := versionedName.FindStringSubmatch(name); m != nil {
		v, err := strconv.ParseInt(m[1], 10, 64)
		return m[2], v, err == nil, err
	}
	if name != "timestamp.json" {
		return "", 0, false, nil
	}
	var md struct {
		Signed struct {
			Version int64 `json:"version"`
		} `json:"signed"`
	}
	if err := json.Unmarshal(data, &md); err != nil || md.Signed.Version < 1 {
		return "", 0, false, fmt.Errorf("timestamp.json without a version: %v", err)
	}
	return "timestamp", md.Signed.Version, true, nil
}

// handler serves each organization's log at /tlog/{org}/: the routes of
// tlog.Handler, and GET /tlog/{org}/key, the checkpoint verifier key in
// note.NewVerifier format. Like the TUF repositories it is public: the log
// exists to be checked by anyone. An organization without a log yet (no
// release) answers 404.
func (t *tlogs) handler(ten *tenancy.Service) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		slug := r.PathValue("org")
		orgID, err := ten.PublicOrgID(r.Context(), slug)
		var l *orgLog
		if err == nil {
			l, err = t.get(r.Context(), orgID, false)
		}
		switch {
		case problem.Is(err, problem.KindNotFound):
			http.Error(w, "no transparency log for organization "+strconv.Quote(slug)+" (yet: it starts with the first release)", http.StatusNotFound)
			return
		case err != nil:
			http.Error(w, "transparency log unavailable", http.StatusInternalServerError)
			return
		}
		if r.URL.Path == "/tlog/"+slug+"/key" {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Header().Set("Cache-Control", "no-cache")
			_, _ = w.Write([]byte(l.verifier + "\n"))
			return
		}
		l.handler.ServeHTTP(w, r)
	})
}
