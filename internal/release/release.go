// Package release owns what a vendor ships: artifacts (firmware images and
// SBOMs stored by content hash) and releases of a product — a version, a
// release counter that only ever increases (devices refuse anything lower:
// anti-rollback), the artifacts that install it, the components its SBOM
// lists, and the vulnerabilities it fixes.
package release

import (
	"context"
	"time"

	"github.com/steward-iot/steward/internal/audit"
	"github.com/steward-iot/steward/internal/inventory"
)

// Artifact is an uploaded, content-addressed file.
type Artifact struct {
	ID        string    `json:"id"`
	OrgID     string    `json:"org_id"`
	Name      string    `json:"name"`
	SHA256    string    `json:"sha256"`
	SHA512    string    `json:"sha512"`
	Size      int64     `json:"size"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by"`
}

// Artifact kinds within a release.
const (
	KindFull  = "full"  // a complete image
	KindDelta = "delta" // a binary delta from PrecursorSHA256
)

// ReleaseArtifact is an artifact's role in a release.
type ReleaseArtifact struct {
	Artifact
	Kind            string `json:"kind" enum:"full,delta"`
	PrecursorSHA256 string `json:"precursor_sha256,omitempty" doc:"for deltas: the installed image they apply to"`
}

// Component is one software component a release contains, from its SBOM.
type Component struct {
	Purl          string `json:"purl,omitempty"`
	Name          string `json:"name"`
	Version       string `json:"version"`
	SourceName    string `json:"source_name,omitempty"`
	SourceVersion string `json:"source_version,omitempty"`
	Distro        string `json:"distro,omitempty"`
}

// Release is a version of a product.
type Release struct {
	ID        string `json:"id"`
	OrgID     string `json:"org_id"`
	ProductID string `json:"product_id"`
	Product   string `json:"product" doc:"product slug"`
	Version   string `json:"version"`
	// Counter orders releases of a product; devices persist the highest
	// they committed and refuse lower ones.
	Counter      int64             `json:"release_counter"`
	Notes        string            `json:"notes,omitempty"`
	SecurityFix  bool              `json:"security_fix"`
	Fixes        []string          `json:"fixes" doc:"vulnerability ids this release fixes"`
	SBOMArtifact string            `json:"sbom_artifact_id,omitempty"`
	SBOMFormat   string            `json:"sbom_format,omitempty" enum:"cyclonedx,spdx"`
	Artifacts    []ReleaseArtifact `json:"artifacts"`
	Components   int               `json:"components" doc:"number of SBOM components"`
	CreatedAt    time.Time         `json:"created_at"`
	CreatedBy    string            `json:"created_by"`
}

// Tx is what release needs from a store transaction.
type Tx interface {
	AppendAudit(ctx context.Context, r audit.Record) (audit.Event, error)
	ProductByID(ctx context.Context, orgID, id string) (inventory.Product, error)
	ProductBySlug(ctx context.Context, orgID, slug string) (inventory.Product, error)

	InsertArtifact(ctx context.Context, a Artifact) error
	ArtifactByID(ctx context.Context, orgID, id string) (Artifact, error)
	ArtifactBySHA256(ctx context.Context, orgID, sha256 string) (Artifact, error)
	ListArtifacts(ctx context.Context, orgID, after string, limit int) ([]Artifact, error)

	// MaxReleaseCounter returns the highest counter of a product (0 if none).
	MaxReleaseCounter(ctx context.Context, productID string) (int64, error)
	InsertRelease(ctx context.Context, r Release, components []Component) error
	ReleaseByID(ctx context.Context, orgID, id string) (Release, error)
	ReleaseByVersion(ctx context.Context, orgID, productID, version string) (Release, error)
	ListReleases(ctx context.Context, orgID, productID, after string, limit int) ([]Release, error)
	ReleaseComponents(ctx context.Context, releaseID string) ([]Component, error)
	// InstalledVersions counts the product's active devices by the version
	// they report running.
	InstalledVersions(ctx context.Context, orgID, productID string) (map[string]int, error)
}

// Store runs functions in read or write transactions.
type Store interface {
	Read(ctx context.Context, fn func(Tx) error) error
	Write(ctx context.Context, fn func(Tx) error) error
}
