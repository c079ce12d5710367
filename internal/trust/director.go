package trust

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/secure-systems-lab/go-securesystemslib/cjson"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/steward-iot/steward/internal/clock"
)

// DefaultDirectorLife is how long per-device director metadata stays valid.
// It is short because the director's keys are online: a stolen or frozen
// copy tells a device what to install for hours, not months. Metadata is
// signed when a device asks for it, so a device that sleeps longer simply
// gets a fresh copy on waking.
const DefaultDirectorLife = 12 * time.Hour

// ErrDirectorConflict is returned by DirectorStore.SaveDeviceMeta when the
// device's metadata changed since it was read.
var ErrDirectorConflict = errors.New("trust: director metadata changed concurrently")

// DeviceMeta is one device's director targets, snapshot and timestamp as
// served. All nil before the device first asks.
type DeviceMeta struct {
	Targets, Snapshot, Timestamp []byte
}

// DirectorStore keeps the director's online keys per organization and each
// device's current director metadata.
type DirectorStore interface {
	DirectorKeys(ctx context.Context, orgID string) ([]StoredKey, error)
	// SaveDirectorKeys stores an organization's first director keys; it
	// fails if the organization already has some.
	SaveDirectorKeys(ctx context.Context, orgID string, keys []StoredKey) error
	DeviceMeta(ctx context.Context, orgID, deviceID string) (DeviceMeta, error)
	// SaveDeviceMeta replaces the device's metadata if its timestamp is
	// still prev.Timestamp, else returns ErrDirectorConflict.
	SaveDeviceMeta(ctx context.Context, orgID, deviceID string, prev, next DeviceMeta) error
}

// Director is Uptane's director repository: online-signed, short-lived
// targets metadata per device naming exactly what that device should
// install. Each device sees a TUF repository of its own: its organization's
// director root (shipped with the device, like the image repository's
// root), and targets, snapshot and timestamp signed for it alone. An
// unmodified TUF client therefore refreshes it with TUF's rollback, freeze
// and mix-and-match protection; the agent then installs only what the
// director and the image repository agree on (see docs/director.md).
type Director struct {
	roots func(orgID string) MetaStore
	store DirectorStore
	clock clock.Clock
	life  time.Duration
	log   *slog.Logger

	mu       sync.Mutex
	repos    map[string]*Repository // director root repositories by org
	renewing sync.Mutex
	locks    [64]sync.Mutex // per device (sharded): versions must not fork in-process
}

// NewDirector returns a director. roots gives each organization's store for
// its director root files (kept apart from its image repository's).
func NewDirector(roots func(orgID string) MetaStore, store DirectorStore, c clock.Clock, life time.Duration, log *slog.Logger) *Director {
	if c == nil {
		c = clock.Real
	}
	if life <= 0 {
		life = DefaultDirectorLife
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Director{roots: roots, store: store, clock: c, life: life, log: log, repos: map[string]*Repository{}}
}

// repo opens, creating on first use, an organization's director root.
// Every director key is online: the director signs per device on demand.
func (d *Director) repo(ctx context.Context, orgID string) (*Repository, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if r, ok := d.repos[orgID]; ok {
		return r, nil
	}
	stored, err := d.store.DirectorKeys(ctx, orgID)
	if err != nil {
		return nil, err
	}
	var signers []*Signer
	for _, k := range stored {
		priv, err := x509.ParsePKCS8PrivateKey(k.PKCS8)
		if err != nil {
			return nil, fmt.Errorf("director %s key of org %s is damaged: %w", k.Role, orgID, err)
		}
		sg, err := NewSigner(k.Role, priv.(crypto.Signer))
		if err != nil {
			return nil, err
		}
		signers = append(signers, sg)
	}
	r, err := Open(ctx, d.roots(orgID), Config{Clock: d.clock, Signers: signers})
	if err != nil {
		return nil, err
	}
	if len(stored) == 0 {
		if signers, stored, err = newOnlineKeys(); err != nil {
			return nil, err
		}
		// One key per role and organization (unique in the store): of two
		// replicas creating keys at once, one fails here and the next
		// request uses the winner's.
		if err := d.store.SaveDirectorKeys(ctx, orgID, stored); err != nil {
			return nil, err
		}
	}
	// Keys without a root: a first attempt (or another replica) stored the
	// keys but did not get to write root version 1. Never cache a
	// repository without a root.
	r.mu.Lock()
	hasRoot := r.root != nil
	r.mu.Unlock()
	if !hasRoot {
		if err := r.Init(ctx, signers, map[Role]int{RoleRoot: 1, RoleTargets: 1, RoleSnapshot: 1, RoleTimestamp: 1}); err != nil {
			return nil, err
		}
		d.log.Info("created the director root of an organization; ship its 1.root.json with devices", "org_id", orgID)
	}
	d.repos[orgID] = r
	return r, nil
}

// Root returns a version of the organization's director root, the way a
// device is provisioned with it: version 1 unless told otherwise.
func (d *Director) Root(ctx context.Context, orgID string, version int64) ([]byte, error) {
	if _, err := d.repo(ctx, orgID); err != nil {
		return nil, err
	}
	return d.roots(orgID).Get(ctx, versioned(RoleRoot, version))
}

// Serve returns the director file name ("N.root.json", "timestamp.json",
// "N.snapshot.json", "N.targets.json") for one device, whose assignment is
// want. Asking for timestamp.json is what starts a refresh, so new
// metadata is signed then, when the assignment changed or the current copy
// has less than a third of its life left; the other files are the ones
// that timestamp names, or ErrNotFound.
func (d *Director) Serve(ctx context.Context, orgID, deviceID, name string, want []Target) ([]byte, error) {
	r, err := d.repo(ctx, orgID)
	if err != nil {
		return nil, err
	}
	ver, role, ok := parseName(name)
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	if role == RoleRoot {
		if err := d.renewRoot(ctx, r); err != nil {
			return nil, err
		}
		return d.roots(orgID).Get(ctx, name)
	}
	var cur DeviceMeta
	if role == RoleTimestamp {
		cur, err = d.ensure(ctx, r, orgID, deviceID, want)
	} else {
		cur, err = d.store.DeviceMeta(ctx, orgID, deviceID)
	}
	if err != nil {
		return nil, err
	}
	data := map[Role][]byte{RoleTargets: cur.Targets, RoleSnapshot: cur.Snapshot, RoleTimestamp: cur.Timestamp}[role]
	if data == nil || (role != RoleTimestamp && version(data) != ver) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	return data, nil
}

// renewRoot re-signs the director root with the same keys once a third of
// its life is left: devices refuse an expired newest root.
func (d *Director) renewRoot(ctx context.Context, r *Repository) error {
	d.renewing.Lock() // one renewal at a time, or two root versions
	defer d.renewing.Unlock()
	r.mu.Lock()
	root := r.root
	var keys []*Signer
	if root != nil {
		for _, id := range root.Signed.Roles[metadata.ROOT].KeyIDs {
			if s := r.signers[id]; s != nil {
				keys = append(keys, s)
			}
		}
	}
	r.mu.Unlock()
	if root == nil || !due(root.Signed.Expires, d.clock.Now(), r.life.Root) {
		return nil
	}
	_, err := r.RotateRoot(ctx, keys, root.Signed.Roles[metadata.ROOT].Threshold)
	return err
}

// ensure returns the device's current metadata, signing new versions first
// when needed.
func (d *Director) ensure(ctx context.Context, r *Repository, orgID, deviceID string, want []Target) (DeviceMeta, error) {
	h := fnv.New32a()
	h.Write([]byte(deviceID))
	lock := &d.locks[h.Sum32()%uint32(len(d.locks))]
	lock.Lock()
	defer lock.Unlock()

	wantFiles := map[string]*metadata.TargetFiles{}
	for _, t := range want {
		f, err := t.file()
		if err != nil {
			return DeviceMeta{}, err
		}
		if f.Custom, err = withDeviceID(t.Custom, deviceID); err != nil {
			return DeviceMeta{}, err
		}
		wantFiles[t.Path] = f
	}
	for range 3 {
		cur, err := d.store.DeviceMeta(ctx, orgID, deviceID)
		if err != nil {
			return DeviceMeta{}, err
		}
		fresh, err := d.current(r, cur, wantFiles)
		if err != nil || fresh {
			return cur, err
		}
		next, err := d.sign(r, cur, wantFiles)
		if err != nil {
			return DeviceMeta{}, err
		}
		err = d.store.SaveDeviceMeta(ctx, orgID, deviceID, cur, next)
		if errors.Is(err, ErrDirectorConflict) {
			continue // another replica signed first: serve what it wrote
		}
		return next, err
	}
	return DeviceMeta{}, fmt.Errorf("trust: director metadata of device %s keeps changing concurrently", deviceID)
}

// current reports whether cur still names want, verifies under the
// current root, and has a useful life left.
func (d *Director) current(r *Repository, cur DeviceMeta, want map[string]*metadata.TargetFiles) (bool, error) {
	if cur.Timestamp == nil {
		return false, nil
	}
	r.mu.Lock()
	root := r.root
	r.mu.Unlock()
	t, err := new(metadata.Metadata[metadata.TargetsType]).FromBytes(cur.Targets)
	if err != nil {
		return false, nil // re-sign over a damaged copy
	}
	ts, err := new(metadata.Metadata[metadata.TimestampType]).FromBytes(cur.Timestamp)
	if err != nil {
		return false, nil
	}
	now := d.clock.Now()
	if root.VerifyDelegate(metadata.TARGETS, t) != nil || root.VerifyDelegate(metadata.TIMESTAMP, ts) != nil ||
		due(t.Signed.Expires, now, d.life) || due(ts.Signed.Expires, now, d.life) {
		return false, nil
	}
	got, err := canonical(t.Signed.Targets)
	if err != nil {
		return false, err
	}
	wanted, err := canonical(want)
	if err != nil {
		return false, err
	}
	return bytes.Equal(got, wanted), nil
}

// canonical encodes targets the way they are signed, through their JSON
// form, so a parsed copy and a freshly built one compare equal.
func canonical(targets map[string]*metadata.TargetFiles) ([]byte, error) {
	b, err := json.Marshal(targets)
	if err != nil {
		return nil, err
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, err
	}
	return cjson.EncodeCanonical(v)
}

// sign makes the next targets, snapshot and timestamp for a device. Each
// version is at least the Unix time, so a database restored from backup
// cannot serve a device a version it has already passed.
func (d *Director) sign(r *Repository, cur DeviceMeta, want map[string]*metadata.TargetFiles) (DeviceMeta, error) {
	now := d.clock.Now()
	next := func(prev []byte) int64 { return max(version(prev)+1, now.Unix()) }
	r.mu.Lock()
	defer r.mu.Unlock()
	root, signers := r.root, r.signers

	t := metadata.Targets(expiry(now, d.life))
	t.Signed.Version = next(cur.Targets)
	t.Signed.Targets = want
	tf, err := signAndEncode(root, t, signers, RoleTargets, "targets.json")
	if err != nil {
		return DeviceMeta{}, err
	}
	s := metadata.Snapshot(expiry(now, d.life))
	s.Signed.Version = next(cur.Snapshot)
	s.Signed.Meta["targets.json"] = metaFile(t.Signed.Version, tf.data)
	sf, err := signAndEncode(root, s, signers, RoleSnapshot, "snapshot.json")
	if err != nil {
		return DeviceMeta{}, err
	}
	ts := metadata.Timestamp(expiry(now, d.life))
	ts.Signed.Version = next(cur.Timestamp)
	ts.Signed.Meta["snapshot.json"] = metaFile(s.Signed.Version, sf.data)
	tsf, err := signAndEncode(root, ts, signers, RoleTimestamp, nameTimestamp)
	if err != nil {
		return DeviceMeta{}, err
	}
	return DeviceMeta{Targets: tf.data, Snapshot: sf.data, Timestamp: tsf.data}, nil
}

// withDeviceID adds the device id to a target's custom fields, so a device
// can tell metadata signed for another device from its own.
func withDeviceID(custom []byte, deviceID string) (*json.RawMessage, error) {
	obj := map[string]any{}
	if len(custom) > 0 {
		if err := json.Unmarshal(custom, &obj); err != nil {
			return nil, fmt.Errorf("trust: target custom fields: %w", err)
		}
	}
	obj["device_id"] = deviceID
	b, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	raw := json.RawMessage(b)
	return &raw, nil
}

// version reads the signed version of a metadata file, 0 when absent.
func version(data []byte) int64 {
	if data == nil {
		return 0
	}
	var md struct {
		Signed struct {
			Version int64 `json:"version"`
		} `json:"signed"`
	}
	if json.Unmarshal(data, &md) != nil {
		return 0
	}
	return md.Signed.Version
}

// parseName splits "N.role.json" or "timestamp.json".
func parseName(name string) (int64, Role, bool) {
	if name == nameTimestamp {
		return 0, RoleTimestamp, true
	}
	v, rest, ok := strings.Cut(name, ".")
	n, err := strconv.ParseInt(v, 10, 64)
	if !ok || err != nil || n < 1 {
		return 0, "", false
	}
	role := Role(strings.TrimSuffix(rest, ".json"))
	if rest != string(role)+".json" || role == RoleTimestamp || !role.valid() {
		return 0, "", false
	}
	return n, role, true
}
