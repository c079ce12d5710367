package release

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"regexp"
	"slices"

	"github.com/steward-iot/steward/agent/delta"
	"github.com/steward-iot/steward/internal/access"
	"github.com/steward-iot/steward/internal/audit"
	"github.com/steward-iot/steward/internal/id"
	"github.com/steward-iot/steward/internal/problem"
)

// MaxDeltaPrecursors bounds the deltas made for one image: from the
// product's latest release and from the releases most devices run.
const MaxDeltaPrecursors = 3

// deltaWorthIt is the largest patch, as a share of the full image, worth
// offering: past it the download saving does not pay for the apply work
// and the extra metadata.
const deltaWorthIt = 0.8

// precursors picks the releases of a product that deltas start from: the
// latest one, then those the most active devices report running.
func (s *Service) precursors(ctx context.Context, orgID, productID string) ([]Release, error) {
	var out []Release
	err := s.store.Read(ctx, func(tx Tx) error {
		var all []Release
		after := ""
		for {
			page, err := tx.ListReleases(ctx, orgID, productID, after, 500)
			if err != nil {
				return err
			}
			all = append(all, page...)
			if len(page) < 500 {
				break
			}
			after = page[len(page)-1].ID
		}
		if len(all) == 0 {
			return nil
		}
		installed, err := tx.InstalledVersions(ctx, orgID, productID)
		if err != nil {
			return err
		}
		slices.SortFunc(all, func(a, b Release) int {
			switch {
			case a.Counter > b.Counter:
				return -1
			case a.Counter < b.Counter:
				return 1
			}
			return 0
		})
		out = append(out, all[0])
		rest := slices.Clone(all[1:])
		slices.SortStableFunc(rest, func(a, b Release) int { return installed[b.Version] - installed[a.Version] })
		for _, r := range rest {
			if len(out) == MaxDeltaPrecursors || installed[r.Version] == 0 {
				break
			}
			out = append(out, r)
		}
		// Lists do not carry artifacts: read the chosen ones whole.
		for i, r := range out {
			if out[i], err = tx.ReleaseByID(ctx, orgID, r.ID); err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}

// deltasFor generates deltas for a release about to be created, unless
// the product, the version or an artifact reference is wrong (CreateRelease
// then says so). Deltas are stored as artifacts before the release is: if
// the release is then refused (a concurrent release of the same version),
// they stay as ordinary, content-addressed artifacts that a retry reuses.
func (s *Service) deltasFor(ctx context.Context, p access.Principal, req *CreateReleaseRequest) error {
	var productID string
	err := s.store.Read(ctx, func(tx Tx) error {
		prod, err := tx.ProductBySlug(ctx, p.OrgID, req.Product)
		if problem.Is(err, problem.KindNotFound) {
			prod, err = tx.ProductByID(ctx, p.OrgID, req.Product)
		}
		if err != nil {
			return err
		}
		if _, err := tx.ReleaseByVersion(ctx, p.OrgID, prod.ID, req.Version); !problem.Is(err, problem.KindNotFound) {
			return err // nil: the version exists, no deltas
		}
		productID = prod.ID
		return nil
	})
	switch {
	case problem.Is(err, problem.KindNotFound):
		return nil
	case err != nil:
		return err
	case productID == "":
		return nil
	}
	return s.makeDeltas(ctx, p, productID, req)
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._+-]+`)

// makeDeltas adds to req a delta for each full image from each precursor
// release's image of the same name (or its only full image), when the
// patch is small enough to be worth it. Patches are made in memory (images
// are bounded by delta.MaxImageSize) so nothing is stored for one that is
// then thrown away.
func (s *Service) makeDeltas(ctx context.Context, p access.Principal, productID string, req *CreateReleaseRequest) error {
	precursors, err := s.precursors(ctx, p.OrgID, productID)
	if err != nil || len(precursors) == 0 {
		return err
	}
	// Every reference must resolve before anything is made: a release that
	// will be refused leaves no delta behind.
	var images []Artifact
	for _, ref := range req.Artifacts {
		img, err := s.GetArtifact(ctx, p, ref.ID)
		if problem.Is(err, problem.KindNotFound) {
			return nil // CreateRelease names the bad reference
		} else if err != nil {
			return err
		}
		if ref.Kind == "" || ref.Kind == KindFull {
			images = append(images, img)
		}
	}
	var made []ArtifactRef
	used := map[string]bool{} // precursor digests already given a delta
	for _, img := range images {
		for _, pr := range precursors {
			old := precursorImage(pr, img.Name, len(images) == 1)
			if old != nil && used[old.SHA256] {
				continue // one delta per precursor image
			}
			if len(req.Artifacts)+len(made) >= maxArtifacts {
				break
			}
			if old == nil || old.SHA256 == img.SHA256 || old.Size > delta.MaxImageSize || img.Size > delta.MaxImageSize {
				continue
			}
			if slices.ContainsFunc(req.Artifacts, func(a ArtifactRef) bool { return a.Kind == KindDelta && a.PrecursorSHA256 == old.SHA256 }) {
				continue // the caller brought its own
			}
			a, ok, err := s.makeDelta(ctx, p, *old, img, pr.Version)
			if err != nil {
				return fmt.Errorf("making the delta from %s %s: %w", pr.Product, pr.Version, err)
			}
			if ok {
				made = append(made, ArtifactRef{ID: a.ID, Kind: KindDelta, PrecursorSHA256: old.SHA256})
				used[old.SHA256] = true
			}
		}
	}
	req.Artifacts = append(req.Artifacts, made...)
	return nil
}

// precursorImage is the full image of r named name, or, when both releases
// have a single image (renamed between versions), r's only full image.
func precursorImage(r Release, name string, single bool) *ReleaseArtifact {
	var full []ReleaseArtifact
	for _, a := range r.Artifacts {
		if a.Kind != KindFull {
			continue
		}
		if a.Name == name {
			return &a
		}
		full = append(full, a)
	}
	if single && len(full) == 1 {
		return &full[0]
	}
	return nil
}

// deltaSlot admits one delta generation at a time per process: each holds
// both images (up to delta.MaxImageSize each) in memory.
var deltaSlot = make(chan struct{}, 1)

func (s *Service) makeDelta(ctx context.Context, p access.Principal, old ReleaseArtifact, img Artifact, fromVersion string) (Artifact, bool, error) {
	select {
	case deltaSlot <- struct{}{}:
		defer func() { <-deltaSlot }()
	case <-ctx.Done():
		return Artifact{}, false, ctx.Err()
	}
	oldF, _, err := s.blobs.Open(ctx, old.SHA256)
	if err != nil {
		return Artifact{}, false, err
	}
	defer oldF.Close()
	oldAt, ok := oldF.(io.ReaderAt)
	if !ok {
		b, err := io.ReadAll(oldF)
		if err != nil {
			return Artifact{}, false, err
		}
		oldAt = bytes.NewReader(b)
	}
	newF, _, err := s.blobs.Open(ctx, img.SHA256)
	if err != nil {
		return Artifact{}, false, err
	}
	defer newF.Close()
	var patch bytes.Buffer
	stats, err := delta.Create(oldAt, old.Size, newF, &patch, delta.Options{})
	if err != nil {
		return Artifact{}, false, err
	}
	if float64(stats.PatchSize) > deltaWorthIt*float64(img.Size) {
		return Artifact{}, false, nil
	}
	name := unsafeName.ReplaceAllString(img.Name+".from-"+fromVersion+".delta", "_")
	if len(name) > 200 {
		name = name[len(name)-200:]
	}
	info, err := s.blobs.Put(ctx, &patch, s.maxArtifact, "")
	if err != nil {
		return Artifact{}, false, err
	}
	a := Artifact{ID: id.New(), OrgID: p.OrgID, Name: name, SHA256: info.SHA256, SHA512: info.SHA512, Size: info.Size,
		CreatedAt: s.clock.Now(), CreatedBy: p.Actor.ID}
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
		_, err := tx.AppendAudit(ctx, audit.Record{OrgID: p.OrgID, Actor: p.Actor, Action: "artifact.delta",
			TargetType: "artifact", TargetID: a.ID, Details: map[string]any{"name": a.Name, "sha256": a.SHA256, "size": a.Size,
				"precursor_sha256": old.SHA256, "image_sha256": img.SHA256}})
		return err
	})
	return a, err == nil, err
}
