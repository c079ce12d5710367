package trust

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/secure-systems-lab/go-securesystemslib/cjson"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/steward-iot/steward/internal/access"
	"github.com/steward-iot/steward/internal/audit"
	"github.com/steward-iot/steward/internal/problem"
)

// This file is the server side of key ceremonies (`steward ctl tuf`, with
// `steward keys` signing offline): initialize a repository whose root and
// targets keys the server never sees, export what awaits signatures, take
// signatures made elsewhere, rotate root, and say plainly which keys are
// online.

// AuditLog is where ceremony steps are recorded; the store's audit store
// implements it. Metadata files are written one transaction each
// (MetaStore.Put), so the event follows the change instead of sharing its
// transaction, as release signing follows the release's commit.
type AuditLog interface {
	Write(ctx context.Context, fn func(audit.Tx) error) error
}

// SetAudit makes ceremony steps recorded in each organization's audit log.
// Without it, ceremony changes are refused.
func (s *Service) SetAudit(a AuditLog) { s.audit = a }

// Limits on what a ceremony request names.
const (
	maxCeremonyKeys = 16
	// expiringSoon is when Status starts warning about root or targets
	// metadata that people must re-sign.
	expiringSoon = 30 * 24 * time.Hour
)

// InitRequest creates an organization's repository with root and targets
// keys held offline. The server generates and keeps the snapshot and
// timestamp keys, which it must re-sign unattended.
type InitRequest struct {
	RootKeys         []string `json:"root_keys" doc:"PEM public keys (PKIX, as 'steward keys generate' writes them) of the offline root keys"`
	RootThreshold    int      `json:"root_threshold" doc:"how many root keys must sign each root version"`
	TargetsKeys      []string `json:"targets_keys" doc:"PEM public keys of the offline targets keys"`
	TargetsThreshold int      `json:"targets_threshold,omitempty" doc:"how many targets keys must sign each targets version; default 1"`
}

// RotateRootRequest names the next root version's keys.
type RotateRootRequest struct {
	RootKeys      []string `json:"root_keys" doc:"PEM public keys of the new root keys; the same keys renew root's expiry"`
	RootThreshold int      `json:"root_threshold"`
}

// KeyStatus is one key of a role.
type KeyStatus struct {
	KeyID  string `json:"keyid"`
	Type   string `json:"type" doc:"ed25519 or ecdsa (P-256)"`
	Online bool   `json:"online" doc:"the server holds the private key"`
}

// SignatureRequirement is one threshold a version must meet: targets
// versions one (the targets keys), root versions after the first two (the
// current root keys and the new ones, as TUF clients check both).
type SignatureRequirement struct {
	Keys      string   `json:"keys" doc:"whose signatures count, e.g. \"root version 1\" or \"targets\""`
	Threshold int      `json:"threshold"`
	Signed    []string `json:"signed" doc:"key ids whose signatures it carries"`
	Missing   []string `json:"missing" doc:"key ids that have not signed"`
	Needed    int      `json:"needed" doc:"signatures still needed; 0 once the threshold is met"`
}

// PendingTarget is a target a staged targets version adds or changes:
// devices do not see it until that version is signed.
type PendingTarget struct {
	Path      string `json:"path"`
	Length    int64  `json:"length"`
	SHA256    string `json:"sha256"`
	ReleaseID string `json:"release_id,omitempty"`
}

// StagedVersion is a root or targets version collecting signatures.
type StagedVersion struct {
	Version      int64                  `json:"version"`
	Expires      time.Time              `json:"expires"`
	SignedSHA256 string                 `json:"signed_sha256" doc:"hex SHA-256 of the canonical bytes the keys sign"`
	Requirements []SignatureRequirement `json:"requirements"`
	Targets      []PendingTarget        `json:"targets,omitempty" doc:"targets only: what devices see once it is signed"`
}

// RoleStatus describes one top-level role.
type RoleStatus struct {
	Role      Role           `json:"role" enum:"root,targets,snapshot,timestamp"`
	Online    bool           `json:"online" doc:"the server holds enough private keys to sign this role on its own"`
	Threshold int            `json:"threshold"`
	Keys      []KeyStatus    `json:"keys"`
	Version   int64          `json:"version" doc:"newest published version; 0 before the first"`
	Expires   *time.Time     `json:"expires,omitempty" doc:"expiry of the published version"`
	Staged    *StagedVersion `json:"staged,omitempty" doc:"the next version, while it awaits signatures"`
}

// RepoStatus is what `steward ctl tuf status` shows.
type RepoStatus struct {
	Initialized bool         `json:"initialized" doc:"false until 'ctl tuf init' or the first release (which creates a repository with every key online)"`
	Roles       []RoleStatus `json:"roles"`
	Warnings    []string     `json:"warnings" doc:"plain-language risks: online root or targets keys, versions awaiting signatures, expiries"`
}

// UnsignedMetadata is a staged version exported for offline signing.
type UnsignedMetadata struct {
	Role         Role                   `json:"role" enum:"root,targets"`
	Version      int64                  `json:"version"`
	SignedSHA256 string                 `json:"signed_sha256" doc:"hex SHA-256 of the canonical JSON of signed"`
	Signed       json.RawMessage        `json:"signed" doc:"the document's signed part; each key signs its canonical JSON (OLPC canonical form, which is not always valid JSON: key PEMs keep raw line breaks)"`
	Requirements []SignatureRequirement `json:"requirements" doc:"which keys may sign and which have"`
}

// OfflineSignature is a signature made elsewhere ('steward keys sign') over
// a staged version.
type OfflineSignature struct {
	Role         Role   `json:"role" enum:"root,targets"`
	Version      int64  `json:"version"`
	SignedSHA256 string `json:"signed_sha256" doc:"hex SHA-256 of the canonical bytes signed: names the exact staged content"`
	KeyID        string `json:"keyid"`
	Sig          string `json:"sig" doc:"hex signature, as in TUF metadata"`
}

// SigningState reports a version after a ceremony step.
type SigningState struct {
	Role         Role                   `json:"role" enum:"root,targets"`
	Version      int64                  `json:"version"`
	Published    bool                   `json:"published" doc:"devices can fetch it"`
	Requirements []SignatureRequirement `json:"requirements"`
}

// ceremonyView is a repository's documents at one moment. Documents are
// replaced, never changed, once a Repository holds them, so they may be
// read after the lock is released.
type ceremonyView struct {
	root, stagedRoot       *metadata.Metadata[metadata.RootType]
	targets, stagedTargets *metadata.Metadata[metadata.TargetsType]
	snapshot               *metadata.Metadata[metadata.SnapshotType]
	timestamp              *metadata.Metadata[metadata.TimestampType]
	online                 map[string]bool // key ids with a private key here
}

func (r *Repository) ceremonyView() ceremonyView {
	r.mu.Lock()
	defer r.mu.Unlock()
	v := ceremonyView{root: r.root, stagedRoot: r.stagedRoot, targets: r.targets, stagedTargets: r.stagedTargets,
		snapshot: r.snapshot, timestamp: r.timestamp, online: map[string]bool{}}
	for id := range r.signers {
		v.online[id] = true
	}
	return v
}

// keyRoot is Repository.keyRoot on the view.
func (v ceremonyView) keyRoot() *metadata.Metadata[metadata.RootType] {
	if v.root != nil {
		return v.root
	}
	return v.stagedRoot
}

// empty reports whether nothing was ever published, so no device can
// trust anything of it yet and Init may start over.
func (v ceremonyView) empty() bool { return v.root == nil && v.timestamp == nil }

// Status reports the organization's repository: per role its keys (online
// or not), threshold, versions and expiry, what awaits signatures, and
// warnings in plain words.
func (s *Service) Status(ctx context.Context, p access.Principal) (RepoStatus, error) {
	if err := p.Require(access.ReleaseRead); err != nil {
		return RepoStatus{}, err
	}
	r, err := s.repo(ctx, p.OrgID, false)
	if errors.Is(err, ErrNotFound) {
		return RepoStatus{Roles: []RoleStatus{}, Warnings: []string{
			"no TUF repository yet: the first release creates one with EVERY key online (the embedded default); " +
				"to keep root and targets keys offline, run 'steward ctl tuf init' before the first release"}}, nil
	} else if err != nil {
		return RepoStatus{}, err
	}
	return r.ceremonyView().status(s.clock.Now()), nil
}

func (v ceremonyView) status(now time.Time) RepoStatus {
	st := RepoStatus{Initialized: true, Roles: []RoleStatus{}, Warnings: []string{}}
	kr := v.keyRoot()
	if kr == nil {
		return st
	}
	for _, role := range allRoles {
		rs := RoleStatus{Role: role, Threshold: kr.Signed.Roles[string(role)].Threshold, Keys: []KeyStatus{}}
		online := 0
		for _, id := range kr.Signed.Roles[string(role)].KeyIDs {
			k := KeyStatus{KeyID: id, Type: kr.Signed.Keys[id].Type, Online: v.online[id]}
			if k.Online {
				online++
			}
			rs.Keys = append(rs.Keys, k)
		}
		rs.Online = online >= rs.Threshold
		var expires time.Time
		switch role {
		case RoleRoot:
			if v.root != nil {
				rs.Version, expires = v.root.Signed.Version, v.root.Signed.Expires
			}
			if v.stagedRoot != nil {
				rs.Staged = stagedOf(v.stagedRoot, rootRequirements(v.root, v.stagedRoot))
			}
		case RoleTargets:
			if v.targets != nil {
				rs.Version, expires = v.targets.Signed.Version, v.targets.Signed.Expires
			}
			if v.stagedTargets != nil {
				rs.Staged = stagedOf(v.stagedTargets, targetsRequirements(kr, v.stagedTargets))
				rs.Staged.Targets = pendingTargets(v.targets, v.stagedTargets)
			}
		case RoleSnapshot:
			if v.snapshot != nil {
				rs.Version, expires = v.snapshot.Signed.Version, v.snapshot.Signed.Expires
			}
		case RoleTimestamp:
			if v.timestamp != nil {
				rs.Version, expires = v.timestamp.Signed.Version, v.timestamp.Signed.Expires
			}
		}
		if rs.Version > 0 {
			rs.Expires = &expires
		}
		st.Roles = append(st.Roles, rs)
	}
	st.Warnings = v.warnings(st.Roles, now)
	return st
}

func (v ceremonyView) warnings(roles []RoleStatus, now time.Time) []string {
	w := []string{}
	rootOnline, targetsOnline := roles[0].Online, roles[1].Online
	switch {
	case rootOnline && targetsOnline:
		w = append(w, "ALL signing keys are online (root and targets included): whoever controls this server can sign updates "+
			"that every device installs; keep root and targets keys offline for production (see docs/keys.md)")
	case rootOnline:
		w = append(w, "root keys are online: whoever controls this server can rotate root to keys of their own and sign anything; "+
			"rotate root to offline keys (ctl tuf rotate-root)")
	case targetsOnline:
		w = append(w, "targets keys are online: whoever controls this server can sign updates that every device installs")
	}
	if v.root == nil {
		w = append(w, "root version 1 awaits signatures: devices cannot use this repository until it is signed")
	}
	if v.stagedRoot != nil && v.root != nil {
		w = append(w, fmt.Sprintf("root version %d awaits signatures; devices keep trusting version %d until it is signed",
			v.stagedRoot.Signed.Version, v.root.Signed.Version))
	}
	if v.stagedTargets != nil {
		if n := len(pendingTargets(v.targets, v.stagedTargets)); n > 0 {
			w = append(w, fmt.Sprintf("targets version %d awaits signatures: devices do not see its %d new target file(s) until it is signed",
				v.stagedTargets.Signed.Version, n))
		} else {
			w = append(w, fmt.Sprintf("targets version %d awaits signatures", v.stagedTargets.Signed.Version))
		}
	}
	for _, rs := range roles[:2] { // snapshot and timestamp are renewed unattended
		if rs.Expires != nil && rs.Expires.Sub(now) < expiringSoon {
			w = append(w, fmt.Sprintf("%s version %d expires %s: devices refuse it after that; sign a new version before then",
				rs.Role, rs.Version, rs.Expires.Format(time.RFC3339)))
		}
	}
	return w
}

func stagedOf[T metadata.Roles](md *metadata.Metadata[T], reqs []SignatureRequirement) *StagedVersion {
	sv := &StagedVersion{Requirements: reqs}
	switch s := any(md.Signed).(type) {
	case metadata.RootType:
		sv.Version, sv.Expires = s.Version, s.Expires
	case metadata.TargetsType:
		sv.Version, sv.Expires = s.Version, s.Expires
	}
	if b, err := cjson.EncodeCanonical(md.Signed); err == nil {
		sv.SignedSHA256 = sha256Hex(b)
	}
	return sv
}

// requirementOf says how far sigs go towards the threshold root sets for role.
func requirementOf(label string, root *metadata.Metadata[metadata.RootType], role Role, sigs []metadata.Signature) SignatureRequirement {
	rr := root.Signed.Roles[string(role)]
	req := SignatureRequirement{Keys: label, Threshold: rr.Threshold, Signed: []string{}, Missing: []string{}}
	for _, id := range rr.KeyIDs {
		if slices.ContainsFunc(sigs, func(s metadata.Signature) bool { return s.KeyID == id }) {
			req.Signed = append(req.Signed, id)
		} else {
			req.Missing = append(req.Missing, id)
		}
	}
	req.Needed = max(0, req.Threshold-len(req.Signed))
	return req
}

// rootRequirements are the thresholds root next must meet: prev's root
// keys (absent for version 1) and its own.
func rootRequirements(prev, next *metadata.Metadata[metadata.RootType]) []SignatureRequirement {
	var reqs []SignatureRequirement
	if prev != nil {
		reqs = append(reqs, requirementOf(fmt.Sprintf("root version %d", prev.Signed.Version), prev, RoleRoot, next.Signatures))
	}
	return append(reqs, requirementOf(fmt.Sprintf("root version %d", next.Signed.Version), next, RoleRoot, next.Signatures))
}

func targetsRequirements(root *metadata.Metadata[metadata.RootType], t *metadata.Metadata[metadata.TargetsType]) []SignatureRequirement {
	return []SignatureRequirement{requirementOf("targets", root, RoleTargets, t.Signatures)}
}

// pendingTargets lists what staged adds or changes over published.
func pendingTargets(published, staged *metadata.Metadata[metadata.TargetsType]) []PendingTarget {
	out := []PendingTarget{}
	for path, tf := range staged.Signed.Targets {
		if published != nil {
			if old := published.Signed.Targets[path]; old != nil && sameTarget(old, tf) {
				continue
			}
		}
		pt := PendingTarget{Path: path, Length: tf.Length, SHA256: hex.EncodeToString(tf.Hashes["sha256"])}
		if tf.Custom != nil {
			var c struct {
				ReleaseID string `json:"release_id"`
			}
			if json.Unmarshal(*tf.Custom, &c) == nil {
				pt.ReleaseID = c.ReleaseID
			}
		}
		out = append(out, pt)
	}
	slices.SortFunc(out, func(a, b PendingTarget) int { return strings.Compare(a.Path, b.Path) })
	return out
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Init creates the organization's repository with the given offline root
// and targets keys and new online snapshot and timestamp keys. Root
// version 1 and targets version 1 then await signatures (Unsigned,
// AddSignature). It is refused once the organization's repository has
// published anything (devices may trust it); a repository that never
// published, such as an earlier Init whose root was never signed, is
// replaced.
func (s *Service) Init(ctx context.Context, p access.Principal, req InitRequest) (RepoStatus, error) {
	if err := p.Require(access.ReleaseWrite); err != nil {
		return RepoStatus{}, err
	}
	if s.audit == nil {
		return RepoStatus{}, errors.New("trust: no audit log configured for key ceremonies")
	}
	if req.RootThreshold == 0 {
		return RepoStatus{}, problem.InvalidField("root_threshold", "is required: how many root keys must sign each root version")
	}
	if req.TargetsThreshold == 0 {
		req.TargetsThreshold = 1
	}
	rootKeys, err := offlineKeys("root_keys", RoleRoot, req.RootKeys)
	if err != nil {
		return RepoStatus{}, err
	}
	targetsKeys, err := offlineKeys("targets_keys", RoleTargets, req.TargetsKeys)
	if err != nil {
		return RepoStatus{}, err
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	stored, err := s.keys.TUFKeys(ctx, p.OrgID)
	if err != nil {
		return RepoStatus{}, err
	}
	errPublished := problem.Conflict("this organization's TUF repository has already published metadata that devices may trust; " +
		"it cannot be initialized again: change root keys with rotate-root")
	online := map[Role]*Signer{}
	var r *Repository
	if len(stored) > 0 {
		if r, err = s.openLocked(ctx, p.OrgID, false); err != nil {
			return RepoStatus{}, err
		}
		if !r.ceremonyView().empty() {
			return RepoStatus{}, errPublished
		}
		// Starting over: keep the online keys the server already holds.
		for _, k := range stored {
			if k.Role != RoleSnapshot && k.Role != RoleTimestamp {
				continue
			}
			sg, err := storedSigner(p.OrgID, k)
			if err != nil {
				return RepoStatus{}, err
			}
			online[k.Role] = sg
		}
	}
	var fresh []StoredKey
	for _, role := range []Role{RoleSnapshot, RoleTimestamp} {
		if online[role] != nil {
			continue
		}
		sg, sk, err := generateOnlineKey(role)
		if err != nil {
			return RepoStatus{}, err
		}
		online[role], fresh = sg, append(fresh, sk)
	}
	keys := slices.Concat(rootKeys, targetsKeys, []*Signer{online[RoleSnapshot], online[RoleTimestamp]})
	thresholds := map[Role]int{RoleRoot: req.RootThreshold, RoleTargets: req.TargetsThreshold}
	// Validate on a repository in memory first: a bad threshold must not
	// leave new keys stored or an earlier staged root overwritten.
	probe, err := Open(ctx, &MemStore{}, Config{Clock: s.clock, Signers: []*Signer{online[RoleSnapshot], online[RoleTimestamp]}})
	if err != nil {
		return RepoStatus{}, err
	}
	if err := probe.Init(ctx, keys, thresholds); err != nil {
		return RepoStatus{}, err
	}
	if len(fresh) > 0 {
		if err := s.keys.SaveTUFKeys(ctx, p.OrgID, fresh); err != nil {
			return RepoStatus{}, err
		}
	}
	signers := []*Signer{online[RoleSnapshot], online[RoleTimestamp]}
	if r == nil {
		if r, err = Open(ctx, s.meta(p.OrgID), Config{Clock: s.clock, Signers: signers}); err != nil {
			return RepoStatus{}, err
		}
	} else if !r.forgetUnpublished() {
		return RepoStatus{}, errPublished
	}
	// The same Repository starts over (rather than a new one beside it), so
	// a request that holds it cannot write the old staged root back.
	if err := r.Init(ctx, keys, thresholds); err != nil {
		return RepoStatus{}, err
	}
	s.repos[p.OrgID] = r
	v := r.ceremonyView()
	s.log.Info("initialized a TUF image repository with root and targets keys offline; root version 1 awaits their signatures",
		"org_id", p.OrgID, "root_threshold", req.RootThreshold, "targets_threshold", req.TargetsThreshold)
	err = s.record(ctx, p, "tuf.init", map[string]any{
		"root_keys": keyIDs(rootKeys), "root_threshold": req.RootThreshold,
		"targets_keys": keyIDs(targetsKeys), "targets_threshold": req.TargetsThreshold,
		"online_keys": keyIDs(signers), "replaced_unpublished": len(stored) > 0})
	return v.status(s.clock.Now()), err
}

// forgetUnpublished drops the staged versions of a repository that never
// published anything, so Init can start over; Init then overwrites their
// files. It reports false, changing nothing, once anything is published.
func (r *Repository) forgetUnpublished() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.root != nil || r.timestamp != nil {
		return false
	}
	r.stagedRoot, r.stagedTargets = nil, nil
	return true
}

// Unsigned exports the staged root or targets version for offline signing.
func (s *Service) Unsigned(ctx context.Context, p access.Principal, role Role) (UnsignedMetadata, error) {
	if err := p.Require(access.ReleaseRead); err != nil {
		return UnsignedMetadata{}, err
	}
	if role != RoleRoot && role != RoleTargets {
		return UnsignedMetadata{}, problem.Invalid("only root and targets are signed offline, not %q", role)
	}
	r, err := s.existing(ctx, p.OrgID)
	if err != nil {
		return UnsignedMetadata{}, err
	}
	v := r.ceremonyView()
	u := UnsignedMetadata{Role: role}
	var signed any
	switch {
	case role == RoleRoot && v.stagedRoot != nil:
		u.Version, u.Requirements, signed = v.stagedRoot.Signed.Version, rootRequirements(v.root, v.stagedRoot), v.stagedRoot.Signed
	case role == RoleTargets && v.stagedTargets != nil:
		u.Version, u.Requirements, signed = v.stagedTargets.Signed.Version, targetsRequirements(v.keyRoot(), v.stagedTargets), v.stagedTargets.Signed
	default:
		return UnsignedMetadata{}, problem.NotFound("no %s version awaits signatures", role)
	}
	// Plain JSON travels; the signer canonicalizes it and checks the hash.
	payload, err := cjson.EncodeCanonical(signed)
	if err != nil {
		return UnsignedMetadata{}, fmt.Errorf("trust: canonical %s: %w", role, err)
	}
	if u.Signed, err = json.Marshal(signed); err != nil {
		return UnsignedMetadata{}, fmt.Errorf("trust: encode %s: %w", role, err)
	}
	u.SignedSHA256 = sha256Hex(payload)
	return u, nil
}

// AddSignature adds an offline signature to the staged root or targets
// version and publishes it once its thresholds are met. A signature for a
// version that is not the staged one (an old, replayed one included), over
// other bytes than the staged version's, or by a key the version does not
// accept is refused, and nothing changes.
func (s *Service) AddSignature(ctx context.Context, p access.Principal, role Role, sig OfflineSignature) (SigningState, error) {
	if err := p.Require(access.ReleaseWrite); err != nil {
		return SigningState{}, err
	}
	if s.audit == nil {
		return SigningState{}, errors.New("trust: no audit log configured for key ceremonies")
	}
	if role != RoleRoot && role != RoleTargets {
		return SigningState{}, problem.Invalid("only root and targets take signatures from elsewhere, not %q", role)
	}
	if sig.Role != role {
		return SigningState{}, problem.InvalidField("role", "the signature is for %q, not %s: give it to the matching command", sig.Role, role)
	}
	if sig.KeyID == "" {
		return SigningState{}, problem.InvalidField("keyid", "is required")
	}
	if sig.SignedSHA256 == "" {
		return SigningState{}, problem.InvalidField("signed_sha256", "is required: sign the file 'ctl tuf unsigned' exports with 'steward keys sign'")
	}
	raw, err := hex.DecodeString(sig.Sig)
	if err != nil || len(raw) == 0 {
		return SigningState{}, problem.InvalidField("sig", "is not a hex signature")
	}
	r, err := s.existing(ctx, p.OrgID)
	if err != nil {
		return SigningState{}, err
	}
	v := r.ceremonyView()
	var staged, published int64
	var payload []byte
	switch role {
	case RoleRoot:
		if v.root != nil {
			published = v.root.Signed.Version
		}
		if v.stagedRoot != nil {
			staged = v.stagedRoot.Signed.Version
			payload, err = cjson.EncodeCanonical(v.stagedRoot.Signed)
		}
	case RoleTargets:
		if v.targets != nil {
			published = v.targets.Signed.Version
		}
		if v.stagedTargets != nil {
			staged = v.stagedTargets.Signed.Version
			payload, err = cjson.EncodeCanonical(v.stagedTargets.Signed)
		}
	}
	if err != nil {
		return SigningState{}, fmt.Errorf("trust: canonical %s: %w", role, err)
	}
	switch {
	case staged == 0:
		return SigningState{}, problem.Conflict("no %s version awaits signatures (version %d is published); this signature for version %d is not needed",
			role, published, sig.Version)
	case sig.Version != staged && sig.Version <= published:
		return SigningState{}, problem.Conflict("%s version %d is already published; this signature is for that old version, not for version %d, which awaits signatures",
			role, sig.Version, staged)
	case sig.Version != staged:
		return SigningState{}, problem.Conflict("%s version %d awaits signatures, not version %d", role, staged, sig.Version)
	case !strings.EqualFold(sig.SignedSHA256, sha256Hex(payload)):
		return SigningState{}, problem.Conflict("the signature covers other bytes than %s version %d as staged now (sha256 %s, not %s): "+
			"the staged version changed since it was exported (each release adds its targets to it); export it again and sign the new file",
			role, staged, short(sha256Hex(payload)), short(sig.SignedSHA256))
	}
	out, err := r.AddSignature(ctx, role, staged, metadata.Signature{KeyID: sig.KeyID, Signature: raw})
	if err != nil {
		s.log.Warn("refused an offline TUF signature", "org_id", p.OrgID, "role", role, "version", sig.Version, "keyid", sig.KeyID, "err", err)
		return SigningState{}, err
	}
	st := r.ceremonyView().signingState(out, v.root)
	if out.Published {
		s.log.Info("published a TUF version signed offline", "org_id", p.OrgID, "role", role, "version", out.Version)
	}
	err = s.record(ctx, p, "tuf.sign", map[string]any{"role": role, "version": out.Version, "keyid": sig.KeyID, "published": out.Published})
	return st, err
}

// signingState describes out's version: the staged one, or the one just
// published, whose root signatures count against prevRoot.
func (v ceremonyView) signingState(out Outcome, prevRoot *metadata.Metadata[metadata.RootType]) SigningState {
	st := SigningState{Role: out.Role, Version: out.Version, Published: out.Published, Requirements: []SignatureRequirement{}}
	switch {
	case out.Role == RoleRoot && !out.Published && v.stagedRoot != nil:
		st.Requirements = rootRequirements(v.root, v.stagedRoot)
	case out.Role == RoleRoot && out.Published && v.root != nil:
		if prevRoot != nil && prevRoot.Signed.Version >= v.root.Signed.Version {
			prevRoot = nil // version 1: no predecessor
		}
		st.Requirements = rootRequirements(prevRoot, v.root)
	case out.Role == RoleTargets && !out.Published && v.stagedTargets != nil:
		st.Requirements = targetsRequirements(v.keyRoot(), v.stagedTargets)
	case out.Role == RoleTargets && out.Published && v.targets != nil:
		st.Requirements = targetsRequirements(v.keyRoot(), v.targets)
	}
	return st
}

// RotateRoot stages the next root version with new (offline) root keys and
// threshold. It is published once a threshold of the current root keys and
// a threshold of the new ones have signed; online current keys sign at once.
func (s *Service) RotateRoot(ctx context.Context, p access.Principal, req RotateRootRequest) (SigningState, error) {
	if err := p.Require(access.ReleaseWrite); err != nil {
		return SigningState{}, err
	}
	if s.audit == nil {
		return SigningState{}, errors.New("trust: no audit log configured for key ceremonies")
	}
	if req.RootThreshold == 0 {
		return SigningState{}, problem.InvalidField("root_threshold", "is required: how many new root keys must sign each root version")
	}
	keys, err := offlineKeys("root_keys", RoleRoot, req.RootKeys)
	if err != nil {
		return SigningState{}, err
	}
	r, err := s.existing(ctx, p.OrgID)
	if err != nil {
		return SigningState{}, err
	}
	prev := r.ceremonyView().root
	out, err := r.RotateRoot(ctx, keys, req.RootThreshold)
	if err != nil {
		return SigningState{}, err
	}
	st := r.ceremonyView().signingState(out, prev)
	s.log.Info("staged a TUF root rotation", "org_id", p.OrgID, "version", out.Version, "published", out.Published)
	err = s.record(ctx, p, "tuf.rotate_root", map[string]any{"version": out.Version, "root_keys": keyIDs(keys),
		"root_threshold": req.RootThreshold, "published": out.Published})
	return st, err
}

// RenewTargets stages (or, with online targets keys, publishes) a targets
// version with the same targets and a renewed expiry: offline targets must
// be re-signed before they expire even when nothing is released.
func (s *Service) RenewTargets(ctx context.Context, p access.Principal) (SigningState, error) {
	if err := p.Require(access.ReleaseWrite); err != nil {
		return SigningState{}, err
	}
	if s.audit == nil {
		return SigningState{}, errors.New("trust: no audit log configured for key ceremonies")
	}
	r, err := s.existing(ctx, p.OrgID)
	if err != nil {
		return SigningState{}, err
	}
	out, err := r.AddTargets(ctx, nil)
	if err != nil {
		return SigningState{}, err
	}
	st := r.ceremonyView().signingState(out, nil)
	err = s.record(ctx, p, "tuf.renew_targets", map[string]any{"version": out.Version, "published": out.Published})
	return st, err
}

// existing returns the organization's repository, or a problem saying
// there is none.
func (s *Service) existing(ctx context.Context, orgID string) (*Repository, error) {
	r, err := s.repo(ctx, orgID, false)
	if errors.Is(err, ErrNotFound) {
		return nil, problem.NotFound("this organization has no TUF repository yet: run 'steward ctl tuf init' (or create a release, which makes one with every key online)")
	}
	return r, err
}

func (s *Service) record(ctx context.Context, p access.Principal, action string, details map[string]any) error {
	err := s.audit.Write(ctx, func(tx audit.Tx) error {
		_, err := tx.AppendAudit(ctx, audit.Record{OrgID: p.OrgID, Actor: p.Actor, Action: action,
			TargetType: "tuf_repository", TargetID: p.OrgID, Details: details})
		return err
	})
	if err != nil {
		s.log.Error("a TUF ceremony step was made but could not be recorded in the audit log", "org_id", p.OrgID, "action", action, "err", err)
		return fmt.Errorf("%s was done, but recording it in the audit log failed: %w", action, err)
	}
	return nil
}

// offlineKeys parses PEM public keys for role.
func offlineKeys(field string, role Role, pems []string) ([]*Signer, error) {
	if len(pems) == 0 || len(pems) > maxCeremonyKeys {
		return nil, problem.InvalidField(field, "give 1 to %d public keys", maxCeremonyKeys)
	}
	out := make([]*Signer, 0, len(pems))
	for i, s := range pems {
		sg, err := PublicKeyFromPEM(role, []byte(s))
		if err != nil {
			return nil, problem.InvalidField(fmt.Sprintf("%s[%d]", field, i), "%v", err)
		}
		out = append(out, sg)
	}
	return out, nil
}

// PublicKeyFromPEM reads a PKIX public key ("PUBLIC KEY" PEM block) as a
// key of role whose private half is kept elsewhere. A private key is
// refused: it must never travel to the server.
func PublicKeyFromPEM(role Role, data []byte) (*Signer, error) {
	block, _ := pem.Decode(data)
	switch {
	case block == nil:
		return nil, problem.Invalid("not a PEM public key")
	case strings.Contains(block.Type, "PRIVATE KEY"):
		return nil, problem.Invalid("this is a private key; send only the public key ('steward keys public FILE' prints it)")
	case block.Type != "PUBLIC KEY":
		return nil, problem.Invalid("PEM block %q is not a PUBLIC KEY", block.Type)
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, problem.Invalid("unreadable public key: %v", err)
	}
	return NewOfflineSigner(role, pub)
}

func keyIDs(keys []*Signer) []string {
	ids := make([]string, len(keys))
	for i, k := range keys {
		ids[i] = k.KeyID()
	}
	return ids
}

// storedSigner turns a stored online key back into a signer.
func storedSigner(orgID string, k StoredKey) (*Signer, error) {
	priv, err := x509.ParsePKCS8PrivateKey(k.PKCS8)
	if err != nil {
		return nil, fmt.Errorf("TUF %s key of org %s is damaged: %w", k.Role, orgID, err)
	}
	cs, ok := priv.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("TUF %s key of org %s is a %T, not a signing key", k.Role, orgID, priv)
	}
	return NewSigner(k.Role, cs)
}

// generateOnlineKey makes a new Ed25519 key the server keeps.
func generateOnlineKey(role Role) (*Signer, StoredKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, StoredKey{}, err
	}
	sg, err := NewSigner(role, priv)
	if err != nil {
		return nil, StoredKey{}, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, StoredKey{}, err
	}
	return sg, StoredKey{Role: role, KeyID: sg.KeyID(), PKCS8: der}, nil
}

// published reports whether clients can fetch anything yet (a timestamp).
func (r *Repository) published() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.timestamp != nil
}
