package release

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/steward-iot/steward/internal/access"
	"github.com/steward-iot/steward/internal/audit"
	"github.com/steward-iot/steward/internal/blob"
	"github.com/steward-iot/steward/internal/clock"
	"github.com/steward-iot/steward/internal/id"
	"github.com/steward-iot/steward/internal/paging"
	"github.com/steward-iot/steward/internal/problem"
	"github.com/steward-iot/steward/internal/sbom"
	"github.com/steward-iot/steward/internal/tlog"
	"github.com/steward-iot/steward/internal/trust"
)

// Limits on what a vendor uploads.
const (
	DefaultMaxArtifact = 4 << 30  // a full Linux image fits
	MaxSBOM            = 64 << 20 // big container SBOMs run to tens of MB
)

// Publisher signs a release's artifacts into the organization's update
// metadata (the TUF image repository).
type Publisher interface {
	Publish(ctx context.Context, orgID string, targets []trust.Target) error
}

// TransparencyLog appends entries to an organization's transparency log.
type TransparencyLog interface {
	AppendRelease(ctx context.Context, orgID string, e tlog.Entry) error
}

// Service implements artifacts and releases.
type Service struct {
	store       Store
	blobs       blob.Store
	clock       clock.Clock
	maxArtifact int64
	publisher   Publisher
	tlog        TransparencyLog
}

// SetPublisher makes new releases signed into update metadata.
func (s *Service) SetPublisher(p Publisher) { s.publisher = p }

// SetTransparencyLog makes new releases logged before they are signed.
func (s *Service) SetTransparencyLog(l TransparencyLog) { s.tlog = l }

// LogEntry is r as its transparency log entry records it, without the time
// it was logged: what the server appends, and what a verifier recomputes
// from the release the API returns to compare with the leaf it is served.
func LogEntry(orgSlug string, r Release) tlog.Entry {
	e := tlog.Entry{Kind: tlog.KindRelease, Org: orgSlug, Product: r.Product, Version: r.Version, ReleaseCounter: r.Counter}
	for _, a := range r.Artifacts {
		e.Artifacts = append(e.Artifacts, tlog.Artifact{Name: a.Name, SHA256: a.SHA256})
	}
	return e
}

// NewService returns a release service storing content in blobs.
func NewService(s Store, blobs blob.Store, c clock.Clock, maxArtifact int64) *Service {
	if c == nil {
		c = clock.Real
	}
	if maxArtifact <= 0 {
		maxArtifact = DefaultMaxArtifact
	}
	return &Service{store: s, blobs: blobs, clock: c, maxArtifact: maxArtifact}
}

// MaxArtifact is the upload limit in bytes.
func (s *Service) MaxArtifact() int64 { return s.maxArtifact }

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,199}$`)

// Upload streams an artifact into the blob store, hashing it on the way
// (never holding it in memory). Uploading the same content again returns
// the existing artifact.
func (s *Service) Upload(ctx context.Context, p access.Principal, name string, body io.Reader, wantSHA256 string) (Artifact, bool, error) {
	if err := p.Require(access.ReleaseWrite); err != nil {
		return Artifact{}, false, err
	}
	if !nameRE.MatchString(name) {
		return Artifact{}, false, problem.InvalidField("name", "%q: use a file name of 1-200 letters, digits and . _ + - (no paths)", name)
	}
	info, err := s.blobs.Put(ctx, body, s.maxArtifact, wantSHA256)
	switch {
	case errors.Is(err, blob.ErrTooLarge):
		return Artifact{}, false, problem.TooLarge("the artifact is larger than the %d-byte limit", s.maxArtifact)
	case errors.Is(err, blob.ErrDigestMismatch):
		return Artifact{}, false, problem.Invalid("the uploaded bytes do not match the sha256 you sent: the upload was corrupted or truncated; nothing was kept")
	case errors.Is(err, blob.ErrInvalidDigest):
		return Artifact{}, false, problem.InvalidField("sha256", "not a 64-character lowercase hex SHA-256")
	case err != nil:
		return Artifact{}, false, err
	}
	a := Artifact{ID: id.New(), OrgID: p.OrgID, Name: name, SHA256: info.SHA256, SHA512: info.SHA512, Size: info.Size,
		CreatedAt: s.clock.Now(), CreatedBy: p.Actor.ID}
	created := false
	err = s.store.Write(ctx, func(tx Tx) error {
		if existing, err := tx.ArtifactBySHA256(ctx, p.OrgID, info.SHA256); err == nil {
			a = existing
			return nil
		} else if !problem.Is(err, problem.KindNotFound) {
			return err
		}
		if err := tx.InsertArtifact(ctx, a); err != nil {
			return err
		}
		created = true
		_, err := tx.AppendAudit(ctx, audit.Record{OrgID: p.OrgID, Actor: p.Actor, Action: "artifact.upload",
			TargetType: "artifact", TargetID: a.ID, Details: map[string]any{"name": a.Name, "sha256": a.SHA256, "size": a.Size}})
		return err
	})
	return a, created, err
}

// GetArtifact returns an artifact's record.
func (s *Service) GetArtifact(ctx context.Context, p access.Principal, artifactID string) (Artifact, error) {
	if err := p.Require(access.ReleaseRead); err != nil {
		return Artifact{}, err
	}
	var a Artifact
	err := s.store.Read(ctx, func(tx Tx) error {
		var err error
		a, err = tx.ArtifactByID(ctx, p.OrgID, artifactID)
		return err
	})
	return a, err
}

// OpenArtifact opens an artifact's content for download (seekable, for
// Range requests).
func (s *Service) OpenArtifact(ctx context.Context, p access.Principal, artifactID string) (blob.File, Artifact, error) {
	a, err := s.GetArtifact(ctx, p, artifactID)
	if err != nil {
		return nil, a, err
	}
	f, _, err := s.blobs.Open(ctx, a.SHA256)
	if err != nil {
		return nil, a, fmt.Errorf("artifact %s content: %w", a.ID, err)
	}
	return f, a, nil
}

// ListArtifacts lists the organization's artifacts.
func (s *Service) ListArtifacts(ctx context.Context, p access.Principal, after string, limit int) ([]Artifact, string, error) {
	if err := p.Require(access.ReleaseRead); err != nil {
		return nil, "", err
	}
	return paging.List(ctx, s.store.Read, limit, func(tx Tx, limit int) ([]Artifact, error) {
		return tx.ListArtifacts(ctx, p.OrgID, after, limit)
	}, func(a Artifact) string { return a.ID })
}

// ArtifactRef names an artifact's role in a new release.
type ArtifactRef struct {
	ID              string `json:"id"`
	Kind            string `json:"kind,omitempty" enum:"full,delta" doc:"default full"`
	PrecursorSHA256 string `json:"precursor_sha256,omitempty" doc:"required for deltas"`
}

// CreateReleaseRequest creates a release.
type CreateReleaseRequest struct {
	Product     string        `json:"product" doc:"product slug or id"`
	Version     string        `json:"version"`
	Artifacts   []ArtifactRef `json:"artifacts"`
	SBOM        string        `json:"sbom_artifact_id,omitempty" doc:"an uploaded CycloneDX JSON or SPDX JSON SBOM"`
	Notes       string        `json:"notes,omitempty"`
	SecurityFix bool          `json:"security_fix,omitempty"`
	Fixes       []string      `json:"fixes,omitempty" doc:"vulnerability ids (CVE-…, GHSA-…, internal) this release fixes"`
	// NoDeltas skips generating deltas from earlier releases.
	NoDeltas bool `json:"no_deltas,omitempty" doc:"do not generate binary deltas from the latest release and the releases devices run"`
}

// maxArtifacts bounds the artifacts of one release, generated deltas included.
const maxArtifacts = 64

var vulnIDRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{1,63}$`)

func (req CreateReleaseRequest) validate() error {
	if req.Version == "" || len(req.Version) > 64 || strings.ContainsFunc(req.Version, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return problem.InvalidField("version", "must be 1-64 characters without spaces or control characters")
	}
	if len(req.Artifacts) == 0 || len(req.Artifacts) > maxArtifacts {
		return problem.InvalidField("artifacts", "give 1 to 64 artifacts, at least one full image")
	}
	full := false
	for i, a := range req.Artifacts {
		switch a.Kind {
		case "", KindFull:
			full = true
			if a.PrecursorSHA256 != "" {
				return problem.InvalidField(fmt.Sprintf("artifacts[%d].precursor_sha256", i), "only deltas have a precursor")
			}
		case KindDelta:
			if len(a.PrecursorSHA256) != 64 {
				return problem.InvalidField(fmt.Sprintf("artifacts[%d].precursor_sha256", i), "a delta needs the 64-hex SHA-256 of the image it applies to")
			}
		default:
			return problem.InvalidField(fmt.Sprintf("artifacts[%d].kind", i), "%q: use full or delta", a.Kind)
		}
	}
	if !full {
		return problem.InvalidField("artifacts", "a release needs a full image; deltas alone cannot install on every device")
	}
	if len(req.Fixes) > 1000 {
		return problem.InvalidField("fixes", "at most 1000 ids")
	}
	for _, f := range req.Fixes {
		if !vulnIDRE.MatchString(f) {
			return problem.InvalidField("fixes", "%q is not a vulnerability id like CVE-2024-1234 or GHSA-xxxx-xxxx-xxxx", f)
		}
	}
	if len(req.Notes) > 64<<10 {
		return problem.InvalidField("notes", "at most 64 KiB")
	}
	return nil
}

// CreateRelease records a release with the next release counter of its
// product, its artifacts and the components its SBOM lists.
func (s *Service) CreateRelease(ctx context.Context, p access.Principal, req CreateReleaseRequest) (Release, error) {
	if err := p.Require(access.ReleaseWrite); err != nil {
		return Release{}, err
	}
	if err := req.validate(); err != nil {
		return Release{}, err
	}
	var comps []Component
	var format string
	if req.SBOM != "" {
		var err error
		if comps, format, err = s.readSBOM(ctx, p, req.SBOM); err != nil {
			return Release{}, err
		}
	}
	if !req.NoDeltas {
		if err := s.deltasFor(ctx, p, &req); err != nil {
			return Release{}, err
		}
	}
	r := Release{ID: id.New(), OrgID: p.OrgID, Version: req.Version, Notes: req.Notes, SecurityFix: req.SecurityFix,
		Fixes: req.Fixes, SBOMArtifact: req.SBOM, SBOMFormat: format, Components: len(comps),
		CreatedAt: s.clock.Now(), CreatedBy: p.Actor.ID}
	if r.Fixes == nil {
		r.Fixes = []string{}
	}
	var hardwareID string
	err := s.store.Write(ctx, func(tx Tx) error {
		prod, err := tx.ProductBySlug(ctx, p.OrgID, req.Product)
		if problem.Is(err, problem.KindNotFound) {
			prod, err = tx.ProductByID(ctx, p.OrgID, req.Product)
		}
		if problem.Is(err, problem.KindNotFound) {
			return problem.InvalidField("product", "no product %q in this organization", req.Product)
		} else if err != nil {
			return err
		}
		r.ProductID, r.Product = prod.ID, prod.Slug
		names := map[string]bool{}
		for i, ref := range req.Artifacts {
			a, err := tx.ArtifactByID(ctx, p.OrgID, ref.ID)
			if problem.Is(err, problem.KindNotFound) {
				return problem.InvalidField(fmt.Sprintf("artifacts[%d].id", i), "no artifact %s in this organization: upload it first", ref.ID)
			} else if err != nil {
				return err
			}
			// Names become target paths and log entries, which must not collide.
			if names[a.Name] {
				return problem.InvalidField(fmt.Sprintf("artifacts[%d].id", i), "another artifact of this release is also named %q", a.Name)
			}
			names[a.Name] = true
			kind := ref.Kind
			if kind == "" {
				kind = KindFull
			}
			r.Artifacts = append(r.Artifacts, ReleaseArtifact{Artifact: a, Kind: kind, PrecursorSHA256: ref.PrecursorSHA256})
		}
		hardwareID = prod.HardwareID
		max, err := tx.MaxReleaseCounter(ctx, prod.ID)
		if err != nil {
			return err
		}
		r.Counter = max + 1
		if err := tx.InsertRelease(ctx, r, comps); err != nil {
			return err
		}
		_, err = tx.AppendAudit(ctx, audit.Record{OrgID: p.OrgID, Actor: p.Actor, Action: "release.create",
			TargetType: "release", TargetID: r.ID, Details: map[string]any{"product": r.Product, "version": r.Version,
				"release_counter": r.Counter, "artifacts": len(r.Artifacts), "components": len(comps), "fixes": r.Fixes}})
		return err
	})
	if err != nil {
		return r, err
	}
	// Logged before it is signed: devices learn of a release only from the
	// update metadata, so none is shown a release the log lacks.
	if s.tlog != nil {
		if err := s.tlog.AppendRelease(ctx, p.OrgID, LogEntry(p.OrgSlug, r)); err != nil {
			return r, fmt.Errorf("release %s was recorded but appending it to the transparency log failed, so it was not signed into the update metadata: %w", r.ID, err)
		}
	}
	if s.publisher == nil {
		return r, nil
	}
	// Signing happens after the release is recorded: the metadata store is
	// the same database, and SQLite has a single writer.
	if err := s.publisher.Publish(ctx, p.OrgID, Targets(r, hardwareID)); err != nil {
		return r, fmt.Errorf("release %s was recorded but signing it into the update metadata failed: %w", r.ID, err)
	}
	return r, nil
}

// TargetPath is where a release artifact appears in update metadata.
func TargetPath(r Release, a ReleaseArtifact) string {
	return r.Product + "/" + r.Version + "/" + a.Name
}

// Targets describes a release's artifacts for update metadata: devices
// check hardware id and release counter from the signed custom fields, and
// a delta names the image it applies to.
func Targets(r Release, hardwareID string) []trust.Target {
	out := make([]trust.Target, 0, len(r.Artifacts))
	for _, a := range r.Artifacts {
		s256, _ := hex.DecodeString(a.SHA256)
		s512, _ := hex.DecodeString(a.SHA512)
		custom := map[string]any{"hardware_id": hardwareID, "release_counter": r.Counter, "release_id": r.ID}
		if a.Kind == KindDelta {
			custom["precursor_sha256"] = a.PrecursorSHA256
		}
		cj, _ := json.Marshal(custom)
		out = append(out, trust.Target{Path: TargetPath(r, a), Length: a.Size,
			Hashes: map[string][]byte{"sha256": s256, "sha512": s512}, Custom: cj})
	}
	return out
}

func (s *Service) readSBOM(ctx context.Context, p access.Principal, artifactID string) ([]Component, string, error) {
	f, a, err := s.OpenArtifact(ctx, p, artifactID)
	if problem.Is(err, problem.KindNotFound) {
		return nil, "", problem.InvalidField("sbom_artifact_id", "no artifact %s: upload the SBOM first", artifactID)
	} else if err != nil {
		return nil, "", err
	}
	defer f.Close()
	if a.Size > MaxSBOM {
		return nil, "", problem.InvalidField("sbom_artifact_id", "the SBOM is %d bytes; the limit is %d", a.Size, MaxSBOM)
	}
	doc, err := sbom.Parse(f, MaxSBOM)
	if err != nil {
		return nil, "", problem.InvalidField("sbom_artifact_id", "%v", err)
	}
	comps := make([]Component, 0, len(doc.Components))
	for _, c := range doc.Components {
		comps = append(comps, Component{Purl: c.Purl, Name: c.Name, Version: c.Version, SourceName: c.SourceName,
			SourceVersion: c.SourceVersion, Distro: c.Distro})
	}
	return comps, doc.Format, nil
}

// GetRelease returns one release with its artifacts.
func (s *Service) GetRelease(ctx context.Context, p access.Principal, releaseID string) (Release, error) {
	if err := p.Require(access.ReleaseRead); err != nil {
		return Release{}, err
	}
	var r Release
	err := s.store.Read(ctx, func(tx Tx) error {
		var err error
		r, err = tx.ReleaseByID(ctx, p.OrgID, releaseID)
		return err
	})
	return r, err
}

// ListReleases lists releases, optionally of one product (slug or id).
func (s *Service) ListReleases(ctx context.Context, p access.Principal, product, after string, limit int) ([]Release, string, error) {
	if err := p.Require(access.ReleaseRead); err != nil {
		return nil, "", err
	}
	limit = paging.Limit(limit)
	var rs []Release
	err := s.store.Read(ctx, func(tx Tx) error {
		productID := ""
		if product != "" {
			prod, err := tx.ProductBySlug(ctx, p.OrgID, product)
			if problem.Is(err, problem.KindNotFound) {
				prod, err = tx.ProductByID(ctx, p.OrgID, product)
			}
			if err != nil {
				return err
			}
			productID = prod.ID
		}
		var err error
		rs, err = tx.ListReleases(ctx, p.OrgID, productID, after, limit+1)
		return err
	})
	rs, next := paging.Trim(rs, limit, func(r Release) string { return r.ID })
	for i := range rs {
		if rs[i].Artifacts == nil {
			rs[i].Artifacts = []ReleaseArtifact{}
		}
	}
	return rs, next, err
}

// Components lists the components of a release's SBOM.
func (s *Service) Components(ctx context.Context, p access.Principal, releaseID string) ([]Component, error) {
	if err := p.Require(access.ReleaseRead); err != nil {
		return nil, err
	}
	var cs []Component
	err := s.store.Read(ctx, func(tx Tx) error {
		if _, err := tx.ReleaseByID(ctx, p.OrgID, releaseID); err != nil {
			return err
		}
		var err error
		cs, err = tx.ReleaseComponents(ctx, releaseID)
		return err
	})
	if cs == nil {
		cs = []Component{}
	}
	return cs, err
}
