package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/steward-iot/steward/internal/problem"
	"github.com/steward-iot/steward/internal/release"
)

var _ release.Tx = (*Tx)(nil)

// Release returns the release store.
func (db *DB) Release() release.Store { return domain[release.Tx]{db} }

const artifactCols = "id, org_id, name, sha256, sha512, size, created_at, created_by"

func scanArtifact(scan func(...any) error) (release.Artifact, error) {
	var a release.Artifact
	var created int64
	err := scan(&a.ID, &a.OrgID, &a.Name, &a.SHA256, &a.SHA512, &a.Size, &created, &a.CreatedBy)
	a.CreatedAt = fromUS(created)
	return a, err
}

func (tx *Tx) InsertArtifact(ctx context.Context, a release.Artifact) error {
	return tx.insert(ctx, "artifact with sha256 "+a.SHA256,
		"INSERT INTO artifacts ("+artifactCols+") VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
		a.ID, a.OrgID, a.Name, a.SHA256, a.SHA512, a.Size, us(a.CreatedAt), a.CreatedBy)
}

func (tx *Tx) ArtifactByID(ctx context.Context, orgID, id string) (release.Artifact, error) {
	return getOne(ctx, tx, "artifact "+id, scanArtifact, "SELECT "+artifactCols+" FROM artifacts WHERE org_id = $1 AND id = $2", orgID, id)
}

func (tx *Tx) ArtifactBySHA256(ctx context.Context, orgID, sum string) (release.Artifact, error) {
	return getOne(ctx, tx, "artifact with sha256 "+sum, scanArtifact, "SELECT "+artifactCols+" FROM artifacts WHERE org_id = $1 AND sha256 = $2", orgID, sum)
}

func (tx *Tx) ListArtifacts(ctx context.Context, orgID, after string, limit int) ([]release.Artifact, error) {
	return list(ctx, tx, "artifacts", scanArtifact,
		"SELECT "+artifactCols+" FROM artifacts WHERE org_id = $1 AND id > $2 ORDER BY id LIMIT $3", orgID, after, limit)
}

func (tx *Tx) MaxReleaseCounter(ctx context.Context, productID string) (int64, error) {
	var n int64
	err := tx.tx.QueryRowContext(ctx, "SELECT COALESCE(MAX(release_counter), 0) FROM releases WHERE product_id = $1", productID).Scan(&n)
	return n, err
}

func (tx *Tx) InsertRelease(ctx context.Context, r release.Release, comps []release.Component) error {
	fixes, err := json.Marshal(r.Fixes)
	if err != nil {
		return err
	}
	if err := tx.insert(ctx, fmt.Sprintf("release %s (counter %d) of this product", r.Version, r.Counter),
		`INSERT INTO releases (id, org_id, product_id, version, release_counter, notes, security_fix, fixes, sbom_artifact, sbom_format,
		 created_at, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
		r.ID, r.OrgID, r.ProductID, r.Version, r.Counter, r.Notes, r.SecurityFix, string(fixes), nullString(r.SBOMArtifact), r.SBOMFormat,
		us(r.CreatedAt), r.CreatedBy); err != nil {
		return err
	}
	for _, a := range r.Artifacts {
		if err := tx.insert(ctx, "artifact "+a.ID+" in this release",
			"INSERT INTO release_artifacts (release_id, artifact_id, kind, precursor_sha256) VALUES ($1, $2, $3, $4)",
			r.ID, a.ID, a.Kind, a.PrecursorSHA256); err != nil {
			return err
		}
	}
	stmt, err := tx.tx.PrepareContext(ctx, `INSERT INTO release_components (release_id, purl, name, version, source_name, source_version, distro)
		VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for _, c := range comps {
		if _, err := stmt.ExecContext(ctx, r.ID, c.Purl, c.Name, c.Version, c.SourceName, c.SourceVersion, c.Distro); err != nil {
			return fmt.Errorf("store SBOM component %s: %w", c.Name, err)
		}
	}
	return nil
}

const releaseCols = `r.id, r.org_id, r.product_id, p.slug, r.version, r.release_counter, r.notes, r.security_fix, r.fixes,
	COALESCE(r.sbom_artifact, ''), r.sbom_format, r.created_at, r.created_by,
	(SELECT COUNT(*) FROM release_components c WHERE c.release_id = r.id)`

const releaseFrom = " FROM releases r JOIN products p ON p.id = r.product_id "

func scanRelease(scan func(...any) error) (release.Release, error) {
	var r release.Release
	var fixes string
	var created int64
	err := scan(&r.ID, &r.OrgID, &r.ProductID, &r.Product, &r.Version, &r.Counter, &r.Notes, &r.SecurityFix, &fixes,
		&r.SBOMArtifact, &r.SBOMFormat, &created, &r.CreatedBy, &r.Components)
	if err == nil {
		err = json.Unmarshal([]byte(fixes), &r.Fixes)
	}
	r.CreatedAt = fromUS(created)
	return r, err
}

func (tx *Tx) ReleaseByID(ctx context.Context, orgID, id string) (release.Release, error) {
	r, err := getOne(ctx, tx, "release "+id, scanRelease, "SELECT "+releaseCols+releaseFrom+"WHERE r.org_id = $1 AND r.id = $2", orgID, id)
	if err != nil {
		return r, err
	}
	r.Artifacts, err = list(ctx, tx, "release artifacts", func(scan func(...any) error) (release.ReleaseArtifact, error) {
		var a release.ReleaseArtifact
		var created int64
		err := scan(&a.ID, &a.OrgID, &a.Name, &a.SHA256, &a.SHA512, &a.Size, &created, &a.CreatedBy, &a.Kind, &a.PrecursorSHA256)
		a.CreatedAt = fromUS(created)
		return a, err
	}, `SELECT a.id, a.org_id, a.name, a.sha256, a.sha512, a.size, a.created_at, a.created_by, ra.kind, ra.precursor_sha256
		FROM release_artifacts ra JOIN artifacts a ON a.id = ra.artifact_id WHERE ra.release_id = $1 ORDER BY ra.kind, a.id`, r.ID)
	return r, err
}

func (tx *Tx) ListReleases(ctx context.Context, orgID, productID, after string, limit int) ([]release.Release, error) {
	return list(ctx, tx, "releases", scanRelease, "SELECT "+releaseCols+releaseFrom+
		"WHERE r.org_id = $1 AND ($2 = '' OR r.product_id = $2) AND r.id > $3 ORDER BY r.id LIMIT $4", orgID, productID, after, limit)
}

func (tx *Tx) ReleaseComponents(ctx context.Context, releaseID string) ([]release.Component, error) {
	return list(ctx, tx, "release components", func(scan func(...any) error) (release.Component, error) {
		var c release.Component
		err := scan(&c.Purl, &c.Name, &c.Version, &c.SourceName, &c.SourceVersion, &c.Distro)
		return c, err
	}, "SELECT purl, name, version, source_name, source_version, distro FROM release_components WHERE release_id = $1 ORDER BY purl, name", releaseID)
}

// InstalledVersions counts a product's active devices by installed version.
func (tx *Tx) InstalledVersions(ctx context.Context, orgID, productID string) (map[string]int, error) {
	rows, err := tx.tx.QueryContext(ctx, `SELECT installed_version, COUNT(*) FROM devices
		WHERE org_id = $1 AND product_id = $2 AND status = 'active' AND installed_version <> '' GROUP BY installed_version`, orgID, productID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var v string
		var n int
		if err := rows.Scan(&v, &n); err != nil {
			return nil, err
		}
		out[v] = n
	}
	return out, rows.Err()
}

// ReleaseByVersion returns a product's release of a version.
func (tx *Tx) ReleaseByVersion(ctx context.Context, orgID, productID, version string) (release.Release, error) {
	var id string
	err := tx.tx.QueryRowContext(ctx, "SELECT id FROM releases WHERE org_id = $1 AND product_id = $2 AND version = $3", orgID, productID, version).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return release.Release{}, problem.NotFound("no release %s of this product", version)
	}
	if err != nil {
		return release.Release{}, err
	}
	return tx.ReleaseByID(ctx, orgID, id)
}
