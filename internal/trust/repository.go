package trust

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/secure-systems-lab/go-securesystemslib/cjson"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/steward-iot/steward/internal/clock"
	"github.com/steward-iot/steward/internal/problem"
)

// Config configures a Repository.
type Config struct {
	Clock    clock.Clock // clock.Real when nil
	Expiries Expiries
	// Signers are the private keys this process holds: at least the
	// snapshot and timestamp keys, and root or targets keys when those are
	// kept online. Keys given to Init and RotateRoot are added.
	Signers []*Signer
}

// Repository manages one organization's TUF metadata in a MetaStore. All
// state is in the store, so a Repository can be reopened after a restart.
// Its methods are safe for concurrent use; two processes must not write
// the same store at once.
type Repository struct {
	store MetaStore
	clock clock.Clock
	life  Expiries

	mu      sync.Mutex         // versions must not fork
	signers map[string]*Signer // by key id, only those with a private key

	// Newest published documents; nil until published.
	root      *metadata.Metadata[metadata.RootType]
	targets   *metadata.Metadata[metadata.TargetsType]
	snapshot  *metadata.Metadata[metadata.SnapshotType]
	timestamp *metadata.Metadata[metadata.TimestampType]

	// The next version of root or targets while it collects signatures.
	stagedRoot    *metadata.Metadata[metadata.RootType]
	stagedTargets *metadata.Metadata[metadata.TargetsType]
}

// Open returns the repository kept in store, empty until Init.
func Open(ctx context.Context, store MetaStore, cfg Config) (*Repository, error) {
	life, err := cfg.Expiries.withDefaults()
	if err != nil {
		return nil, err
	}
	r := &Repository{store: store, clock: cfg.Clock, life: life, signers: map[string]*Signer{}}
	if r.clock == nil {
		r.clock = clock.Real
	}
	r.remember(cfg.Signers)
	if err := r.load(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Repository) remember(keys []*Signer) {
	for _, k := range keys {
		if k.priv != nil {
			r.signers[k.id] = k
		}
	}
}

// load reads the newest published documents and any staged ones.
func (r *Repository) load(ctx context.Context) error {
	var err error
	r.root, err = optional(load[metadata.RootType](ctx, r.store, nameRoot))
	if err != nil {
		return err
	}
	// N.root.json is written before root.json: walk on past a crash between them.
	for {
		var v int64
		if r.root != nil {
			v = r.root.Signed.Version
		}
		next, err := optional(load[metadata.RootType](ctx, r.store, versioned(RoleRoot, v+1)))
		if err != nil {
			return err
		}
		if next == nil {
			break
		}
		r.root = next
	}
	r.timestamp, err = optional(load[metadata.TimestampType](ctx, r.store, nameTimestamp))
	if err != nil {
		return err
	}
	if r.timestamp != nil {
		if r.snapshot, r.targets, err = publishedTargets(ctx, r.store, r.timestamp); err != nil {
			return err
		}
	}
	staged, err := optional(load[metadata.RootType](ctx, r.store, nameStagedRoot))
	if err != nil {
		return err
	}
	if staged != nil && (r.root == nil || staged.Signed.Version > r.root.Signed.Version) {
		r.stagedRoot = staged
	}
	stagedTargets, err := optional(load[metadata.TargetsType](ctx, r.store, nameStagedTargets))
	if err != nil {
		return err
	}
	if stagedTargets != nil && (r.targets == nil || stagedTargets.Signed.Version > r.targets.Signed.Version) {
		r.stagedTargets = stagedTargets
	}
	return nil
}

// publishedTargets follows timestamp to the snapshot and targets it names.
func publishedTargets(ctx context.Context, store MetaStore, ts *metadata.Metadata[metadata.TimestampType]) (*metadata.Metadata[metadata.SnapshotType], *metadata.Metadata[metadata.TargetsType], error) {
	sm := ts.Signed.Meta["snapshot.json"]
	if sm == nil {
		return nil, nil, errors.New("trust: timestamp.json names no snapshot.json")
	}
	snap, err := load[metadata.SnapshotType](ctx, store, versioned(RoleSnapshot, sm.Version))
	if err != nil {
		return nil, nil, err
	}
	tm := snap.Signed.Meta["targets.json"]
	if tm == nil {
		return nil, nil, fmt.Errorf("trust: snapshot version %d names no targets.json", snap.Signed.Version)
	}
	targets, err := load[metadata.TargetsType](ctx, store, versioned(RoleTargets, tm.Version))
	if err != nil {
		return nil, nil, err
	}
	return snap, targets, nil
}

// optional turns ErrNotFound into a nil document.
func optional[T metadata.Roles](md *metadata.Metadata[T], err error) (*metadata.Metadata[T], error) {
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	return md, err
}

// keyRoot is the root that lists the keys of every role: the published one,
// or version 1 while it still waits for signatures. Only RotateRoot changes
// keys, and only root's, so a staged later root lists the same others.
func (r *Repository) keyRoot() *metadata.Metadata[metadata.RootType] {
	if r.root != nil {
		return r.root
	}
	return r.stagedRoot
}

// Init creates version 1 of every role. keys lists the keys of all four
// roles (each key in one role only); thresholds defaults to 1 for a role it
// omits. Snapshot and timestamp keys must have private keys: the server
// re-signs those roles unattended. Root and targets keys may be offline;
// then their first version waits for AddSignature (see UnsignedRoot and
// UnsignedTargets), and nothing is served until targets version 1 is
// signed.
func (r *Repository) Init(ctx context.Context, keys []*Signer, thresholds map[Role]int) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.keyRoot() != nil {
		return problem.Conflict("the repository is already initialized")
	}
	for role := range thresholds {
		if !role.valid() {
			return problem.Invalid("threshold for unknown role %q", role)
		}
	}
	now := r.clock.Now()
	root := metadata.Root(expiry(now, r.life.Root))
	if err := addKeys(root, keys, nil); err != nil {
		return err
	}
	for _, role := range allRoles {
		th := thresholds[role]
		if th == 0 {
			th = 1
		}
		if err := setThreshold(root, role, th); err != nil {
			return err
		}
	}
	r.remember(keys)
	for _, role := range []Role{RoleSnapshot, RoleTimestamp} {
		online := 0
		for id := range roleKeys(root, role) {
			if r.signers[id] != nil {
				online++
			}
		}
		if th := root.Signed.Roles[string(role)].Threshold; online < th {
			return problem.Invalid("%s is signed unattended: %d of its keys must have private keys here, %d do", role, th, online)
		}
	}
	if _, err := r.stageOrPublishRoot(ctx, nil, root); err != nil {
		return err
	}
	_, err := r.stageOrPublishTargets(ctx, metadata.Targets(expiry(now, r.life.Targets)), now)
	return err
}

// addKeys adds keys to root under their roles, refusing a key listed twice
// or already used by a role in other (a key in two roles would let a stolen
// online key sign for an offline role).
func addKeys(root *metadata.Metadata[metadata.RootType], keys []*Signer, other []Role) error {
	seen := map[string]Role{}
	for _, role := range other {
		for _, id := range root.Signed.Roles[string(role)].KeyIDs {
			seen[id] = role
		}
	}
	for _, k := range keys {
		if prev, ok := seen[k.id]; ok {
			if prev == k.role {
				return problem.Invalid("key %s is listed twice", short(k.id))
			}
			return problem.Invalid("key %s is listed for %s and %s: each role needs keys of its own", short(k.id), prev, k.role)
		}
		seen[k.id] = k.role
		if err := root.Signed.AddKey(k.key, string(k.role)); err != nil {
			return fmt.Errorf("trust: %w", err)
		}
	}
	return nil
}

func setThreshold(root *metadata.Metadata[metadata.RootType], role Role, th int) error {
	n := len(root.Signed.Roles[string(role)].KeyIDs)
	if n == 0 {
		return problem.Invalid("role %s has no keys", role)
	}
	if th < 1 || th > n {
		return problem.Invalid("%s threshold %d must be between 1 and its %d keys", role, th, n)
	}
	root.Signed.Roles[string(role)].Threshold = th
	return nil
}

// AddTargets adds targets to the next targets version (or to the staged one,
// whose collected signatures it then drops, since the signed bytes change),
// then publishes it with a new snapshot and timestamp if the targets keys
// here meet the threshold. A path keeps its content once signed: adding it
// again with other hashes, length or custom data is a conflict. With no
// targets it renews the targets expiry.
func (r *Repository) AddTargets(ctx context.Context, targets []Target) (Outcome, error) {
	files := make(map[string]*metadata.TargetFiles, len(targets))
	for _, t := range targets {
		tf, err := t.file()
		if err != nil {
			return Outcome{}, err
		}
		if files[t.Path] != nil {
			return Outcome{}, problem.Invalid("target %q is listed twice", t.Path)
		}
		files[t.Path] = tf
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	base := r.stagedTargets
	if base == nil {
		base = r.targets
	}
	if base == nil {
		return Outcome{}, problem.Conflict("the repository is not initialized")
	}
	now := r.clock.Now()
	next := metadata.Targets(expiry(now, r.life.Targets))
	next.Signed.Version = base.Signed.Version
	if r.stagedTargets == nil {
		next.Signed.Version++
	}
	maps.Copy(next.Signed.Targets, base.Signed.Targets)
	for path, tf := range files {
		if old := next.Signed.Targets[path]; old != nil && !sameTarget(old, tf) {
			return Outcome{}, problem.Conflict("target %q is already signed with other content; publish it under a new path", path)
		}
		next.Signed.Targets[path] = tf
	}
	return r.stageOrPublishTargets(ctx, next, now)
}

// RotateRoot writes the next root version with keys (all RoleRoot) as the
// root keys and threshold as their threshold; the other roles keep theirs.
// It is published once signed by a threshold of the current root keys and
// a threshold of the new ones, as clients check both; until then it is
// staged and replaces any root staged before. Rotating to the same keys
// renews the root expiry.
func (r *Repository) RotateRoot(ctx context.Context, keys []*Signer, threshold int) (Outcome, error) {
	for _, k := range keys {
		if k.role != RoleRoot {
			return Outcome{}, problem.Invalid("key %s is a %s key, not a root key", short(k.id), k.role)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.root == nil {
		return Outcome{}, problem.Conflict("root version 1 is not published yet")
	}
	next, err := clone(r.root)
	if err != nil {
		return Outcome{}, err
	}
	next.ClearSignatures()
	next.Signed.Version++
	next.Signed.Expires = expiry(r.clock.Now(), r.life.Root)
	for _, id := range slices.Clone(next.Signed.Roles[metadata.ROOT].KeyIDs) {
		if err := next.Signed.RevokeKey(id, metadata.ROOT); err != nil {
			return Outcome{}, fmt.Errorf("trust: %w", err)
		}
	}
	if err := addKeys(next, keys, []Role{RoleTargets, RoleSnapshot, RoleTimestamp}); err != nil {
		return Outcome{}, err
	}
	if err := setThreshold(next, RoleRoot, threshold); err != nil {
		return Outcome{}, err
	}
	r.remember(keys)
	return r.stageOrPublishRoot(ctx, r.root, next)
}

// UnsignedRoot returns the staged root version and the canonical bytes of
// its "signed" part, which each offline root key signs (Signer.Sign).
func (r *Repository) UnsignedRoot() (int64, []byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stagedRoot == nil {
		return 0, nil, problem.NotFound("no root version awaits signatures")
	}
	b, err := cjson.EncodeCanonical(r.stagedRoot.Signed)
	return r.stagedRoot.Signed.Version, b, err
}

// UnsignedTargets is UnsignedRoot for the staged targets version.
func (r *Repository) UnsignedTargets() (int64, []byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stagedTargets == nil {
		return 0, nil, problem.NotFound("no targets version awaits signatures")
	}
	b, err := cjson.EncodeCanonical(r.stagedTargets.Signed)
	return r.stagedTargets.Signed.Version, b, err
}

// AddSignature adds a signature made elsewhere to the staged root or
// targets version, and publishes that version once its thresholds are met.
// A signature that does not verify, or comes from a key the version does not
// accept, is refused.
func (r *Repository) AddSignature(ctx context.Context, role Role, version int64, sig metadata.Signature) (Outcome, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch role {
	case RoleRoot:
		if r.stagedRoot == nil || r.stagedRoot.Signed.Version != version {
			return Outcome{}, problem.NotFound("root version %d does not await signatures", version)
		}
		next, err := clone(r.stagedRoot)
		if err != nil {
			return Outcome{}, err
		}
		if err := addVerified(next, role, version, sig, rootSigningKeys(r.root, next)); err != nil {
			return Outcome{}, err
		}
		return r.stageOrPublishRoot(ctx, r.root, next)
	case RoleTargets:
		if r.stagedTargets == nil || r.stagedTargets.Signed.Version != version {
			return Outcome{}, problem.NotFound("targets version %d does not await signatures", version)
		}
		next, err := clone(r.stagedTargets)
		if err != nil {
			return Outcome{}, err
		}
		if err := addVerified(next, role, version, sig, roleKeys(r.keyRoot(), RoleTargets)); err != nil {
			return Outcome{}, err
		}
		return r.stageOrPublishTargets(ctx, next, r.clock.Now())
	}
	return Outcome{}, problem.Invalid("only root and targets take signatures from elsewhere, not %q", role)
}

// addVerified checks sig against keys and the canonical bytes of md, then
// adds it, replacing an earlier signature by the same key.
func addVerified[T metadata.Roles](md *metadata.Metadata[T], role Role, version int64, sig metadata.Signature, keys map[string]*metadata.Key) error {
	key := keys[sig.KeyID]
	if key == nil {
		return problem.Invalid("key %s may not sign %s version %d", short(sig.KeyID), role, version)
	}
	payload, err := cjson.EncodeCanonical(md.Signed)
	if err != nil {
		return fmt.Errorf("trust: canonical %s: %w", role, err)
	}
	if err := verifySignature(key, payload, sig.Signature); err != nil {
		return problem.Invalid("signature by key %s over %s version %d: %v", short(sig.KeyID), role, version, err)
	}
	setSignature(md, sig)
	return nil
}

// RefreshTimestamp re-signs the timestamp (a new version) when less than a
// third of its life is left at now, and the snapshot too when the same holds
// for it, since both are signed online and nothing else renews them. The
// server runs it periodically; it reports whether it wrote anything.
func (r *Repository) RefreshTimestamp(ctx context.Context, now time.Time) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.timestamp == nil {
		return false, problem.Conflict("no timestamp is published yet")
	}
	renewSnapshot := due(r.snapshot.Signed.Expires, now, r.life.Snapshot)
	if !renewSnapshot && !due(r.timestamp.Signed.Expires, now, r.life.Timestamp) {
		return false, nil
	}
	var files []file
	snap := r.snapshot
	var sb []byte
	var err error
	if renewSnapshot {
		tb, err := r.read(ctx, versioned(RoleTargets, r.targets.Signed.Version))
		if err != nil {
			return false, err
		}
		var sf file
		if snap, sf, err = r.nextSnapshot(now, r.targets.Signed.Version, tb); err != nil {
			return false, err
		}
		files, sb = append(files, sf), sf.data
	} else if sb, err = r.read(ctx, versioned(RoleSnapshot, snap.Signed.Version)); err != nil {
		return false, err
	}
	ts, tf, err := r.nextTimestamp(now, snap.Signed.Version, sb)
	if err != nil {
		return false, err
	}
	if err := write(ctx, r.store, append(files, tf)...); err != nil {
		return false, err
	}
	r.snapshot, r.timestamp = snap, ts
	return true, nil
}

// read returns a served file's bytes, which the next snapshot or timestamp hashes.
func (r *Repository) read(ctx context.Context, name string) ([]byte, error) {
	data, err := r.store.Get(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("trust: read %s: %w", name, err)
	}
	return data, nil
}

// stageOrPublishRoot signs next with the root keys held here, current
// (prev) and new, and publishes it if both thresholds are met; otherwise it
// stages it.
func (r *Repository) stageOrPublishRoot(ctx context.Context, prev, next *metadata.Metadata[metadata.RootType]) (Outcome, error) {
	out := Outcome{Role: RoleRoot, Version: next.Signed.Version}
	if err := signWith(next, r.signers, rootSigningKeys(prev, next)); err != nil {
		return out, err
	}
	ready := true
	for _, delegator := range []*metadata.Metadata[metadata.RootType]{prev, next} {
		if delegator == nil {
			continue
		}
		err := delegator.VerifyDelegate(metadata.ROOT, next)
		if unsigned(err) {
			ready = false
		} else if err != nil {
			return out, fmt.Errorf("trust: verify root: %w", err)
		}
	}
	if !ready {
		f, err := encode(nameStagedRoot, next)
		if err == nil {
			err = write(ctx, r.store, f)
		}
		if err != nil {
			return out, err
		}
		r.stagedRoot = next
		return out, nil
	}
	f, err := encode(versioned(RoleRoot, next.Signed.Version), next)
	if err != nil {
		return out, err
	}
	// N.root.json is what clients walk to; root.json is a copy for bootstrapping.
	if err := write(ctx, r.store, f, file{nameRoot, f.data}); err != nil {
		return out, err
	}
	r.root, r.stagedRoot = next, nil
	out.Published = true
	return out, nil
}

// stageOrPublishTargets signs t with the targets keys held here and, if
// they meet the threshold, publishes it with a new snapshot and timestamp;
// otherwise it stages it.
func (r *Repository) stageOrPublishTargets(ctx context.Context, t *metadata.Metadata[metadata.TargetsType], now time.Time) (Outcome, error) {
	out := Outcome{Role: RoleTargets, Version: t.Signed.Version}
	root := r.keyRoot()
	if err := signWith(t, r.signers, roleKeys(root, RoleTargets)); err != nil {
		return out, err
	}
	err := root.VerifyDelegate(metadata.TARGETS, t)
	if unsigned(err) {
		f, err := encode(nameStagedTargets, t)
		if err == nil {
			err = write(ctx, r.store, f)
		}
		if err != nil {
			return out, err
		}
		r.stagedTargets = t
		return out, nil
	}
	if err != nil {
		return out, fmt.Errorf("trust: verify targets: %w", err)
	}
	tf, err := encode(versioned(RoleTargets, t.Signed.Version), t)
	if err != nil {
		return out, err
	}
	snap, sf, err := r.nextSnapshot(now, t.Signed.Version, tf.data)
	if err != nil {
		return out, err
	}
	ts, tsf, err := r.nextTimestamp(now, snap.Signed.Version, sf.data)
	if err != nil {
		return out, err
	}
	// timestamp.json last: until it is written no client can reach the others.
	if err := write(ctx, r.store, tf, sf, tsf); err != nil {
		return out, err
	}
	r.targets, r.stagedTargets, r.snapshot, r.timestamp = t, nil, snap, ts
	out.Published = true
	return out, nil
}

// nextSnapshot signs the snapshot version after the current one, naming
// targets version tv whose served bytes are tb.
func (r *Repository) nextSnapshot(now time.Time, tv int64, tb []byte) (*metadata.Metadata[metadata.SnapshotType], file, error) {
	s := metadata.Snapshot(expiry(now, r.life.Snapshot))
	if r.snapshot != nil {
		s.Signed.Version = r.snapshot.Signed.Version + 1
	}
	s.Signed.Meta["targets.json"] = metaFile(tv, tb)
	f, err := signAndEncode(r.keyRoot(), s, r.signers, RoleSnapshot, versioned(RoleSnapshot, s.Signed.Version))
	return s, f, err
}

// nextTimestamp signs the timestamp version after the current one, naming
// snapshot version sv whose served bytes are sb.
func (r *Repository) nextTimestamp(now time.Time, sv int64, sb []byte) (*metadata.Metadata[metadata.TimestampType], file, error) {
	ts := metadata.Timestamp(expiry(now, r.life.Timestamp))
	if r.timestamp != nil {
		ts.Signed.Version = r.timestamp.Signed.Version + 1
	}
	ts.Signed.Meta["snapshot.json"] = metaFile(sv, sb)
	f, err := signAndEncode(r.keyRoot(), ts, r.signers, RoleTimestamp, nameTimestamp)
	return ts, f, err
}

// metaFile describes a served file by version, length and SHA-256, so the
// client checks the bytes it downloads and not only the signature inside.
func metaFile(v int64, data []byte) *metadata.MetaFiles {
	sum := sha256.Sum256(data)
	m := metadata.MetaFile(v)
	m.Length = int64(len(data))
	m.Hashes = metadata.Hashes{"sha256": sum[:]}
	return m
}

// signAndEncode signs md with the role's keys held here, which must meet
// its threshold, and encodes it under name.
func signAndEncode[T metadata.Roles](root *metadata.Metadata[metadata.RootType], md *metadata.Metadata[T], signers map[string]*Signer, role Role, name string) (file, error) {
	if err := signWith(md, signers, roleKeys(root, role)); err != nil {
		return file{}, err
	}
	if err := root.VerifyDelegate(string(role), md); err != nil {
		return file{}, fmt.Errorf("trust: sign %s: %w", role, err)
	}
	return encode(name, md)
}

// rootSigningKeys are the keys whose signatures count for root next: the
// current root keys and the new ones.
func rootSigningKeys(prev, next *metadata.Metadata[metadata.RootType]) map[string]*metadata.Key {
	keys := roleKeys(next, RoleRoot)
	if prev != nil {
		maps.Copy(keys, roleKeys(prev, RoleRoot))
	}
	return keys
}

// roleKeys returns the keys root lists for role, by id.
func roleKeys(root *metadata.Metadata[metadata.RootType], role Role) map[string]*metadata.Key {
	keys := map[string]*metadata.Key{}
	for _, id := range root.Signed.Roles[string(role)].KeyIDs {
		keys[id] = root.Signed.Keys[id]
	}
	return keys
}

// signWith signs md with every key in keys that has a signer here.
func signWith[T metadata.Roles](md *metadata.Metadata[T], signers map[string]*Signer, keys map[string]*metadata.Key) error {
	payload, err := cjson.EncodeCanonical(md.Signed)
	if err != nil {
		return fmt.Errorf("trust: canonical JSON: %w", err)
	}
	for id := range keys {
		s := signers[id]
		if s == nil {
			continue
		}
		sig, err := s.Sign(payload)
		if err != nil {
			return err
		}
		setSignature(md, sig)
	}
	return nil
}

// setSignature adds sig, replacing one by the same key: go-tuf refuses
// metadata with two signatures from one key.
func setSignature[T metadata.Roles](md *metadata.Metadata[T], sig metadata.Signature) {
	md.Signatures = slices.DeleteFunc(md.Signatures, func(s metadata.Signature) bool { return s.KeyID == sig.KeyID })
	md.Signatures = append(md.Signatures, sig)
}

// clone deep-copies md through its JSON form.
func clone[T metadata.Roles](md *metadata.Metadata[T]) (*metadata.Metadata[T], error) {
	data, err := md.ToBytes(false)
	if err != nil {
		return nil, fmt.Errorf("trust: copy metadata: %w", err)
	}
	c, err := new(metadata.Metadata[T]).FromBytes(data)
	if err != nil {
		return nil, fmt.Errorf("trust: copy metadata: %w", err)
	}
	return c, nil
}
