package store

import (
	"context"
	"encoding/json"

	"github.com/steward-iot/steward/internal/vuln"
)

var _ vuln.Tx = (*Tx)(nil)

// Vuln returns the vulnerability store.
func (db *DB) Vuln() vuln.Store { return domain[vuln.Tx]{db} }

const vulnCols = "id, org_id, vuln_id, aliases, summary, modified, osv, created_at, updated_at"

func scanVuln(scan func(...any) error) (vuln.Vulnerability, error) {
	var v vuln.Vulnerability
	var aliases, osv string
	var modified, created, updated int64
	err := scan(&v.ID, &v.OrgID, &v.VulnID, &aliases, &v.Summary, &modified, &osv, &created, &updated)
	if err == nil {
		err = json.Unmarshal([]byte(aliases), &v.Aliases)
	}
	v.OSV, v.Modified, v.CreatedAt, v.UpdatedAt = []byte(osv), fromUS(modified), fromUS(created), fromUS(updated)
	return v, err
}

// UpsertVulnerability inserts v, or replaces the record of the same
// vuln_id, and reports whether it was new.
func (tx *Tx) UpsertVulnerability(ctx context.Context, v vuln.Vulnerability) (vuln.Vulnerability, bool, error) {
	aliases, err := json.Marshal(v.Aliases)
	if err != nil {
		return v, false, err
	}
	existing, err := getOne(ctx, tx, "vulnerability", scanVuln, "SELECT "+vulnCols+" FROM vulnerabilities WHERE org_id = $1 AND vuln_id = $2", v.OrgID, v.VulnID)
	if err == nil {
		v.ID, v.CreatedAt = existing.ID, existing.CreatedAt
		err = tx.updateOne(ctx, "vulnerability "+v.VulnID, `UPDATE vulnerabilities SET aliases = $3, summary = $4, modified = $5, osv = $6, updated_at = $7
			WHERE org_id = $1 AND id = $2`, v.OrgID, v.ID, string(aliases), v.Summary, us(v.Modified), string(v.OSV), us(v.UpdatedAt))
		return v, false, err
	}
	err = tx.insert(ctx, "vulnerability "+v.VulnID, "INSERT INTO vulnerabilities ("+vulnCols+") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
		v.ID, v.OrgID, v.VulnID, string(aliases), v.Summary, us(v.Modified), string(v.OSV), us(v.CreatedAt), us(v.UpdatedAt))
	return v, err == nil, err
}

func (tx *Tx) VulnerabilityByID(ctx context.Context, orgID, id string) (vuln.Vulnerability, error) {
	return getOne(ctx, tx, "vulnerability "+id, scanVuln, "SELECT "+vulnCols+" FROM vulnerabilities WHERE org_id = $1 AND (id = $2 OR vuln_id = $2)", orgID, id)
}

func (tx *Tx) ListVulnerabilities(ctx context.Context, orgID, after string, limit int) ([]vuln.Vulnerability, error) {
	return list(ctx, tx, "vulnerabilities", scanVuln, "SELECT "+vulnCols+" FROM vulnerabilities WHERE org_id = $1 AND id > $2 ORDER BY id LIMIT $3", orgID, after, limit)
}

func (tx *Tx) scanComponents(ctx context.Context, q string, orgID string, fn func(vuln.ComponentRef) error) error {
	rows, err := tx.tx.QueryContext(ctx, q, orgID)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var c vuln.ComponentRef
		if err := rows.Scan(&c.OwnerID, &c.OwnerLabel, &c.Purl, &c.Version, &c.SourceName, &c.SourceVersion, &c.Distro); err != nil {
			return err
		}
		if err := fn(c); err != nil {
			return err
		}
	}
	return rows.Err()
}

func (tx *Tx) ScanReleaseComponents(ctx context.Context, orgID string, fn func(vuln.ComponentRef) error) error {
	return tx.scanComponents(ctx, `SELECT c.release_id, p.slug || ' ' || r.version, c.purl, c.version, c.source_name, c.source_version, c.distro
		FROM release_components c JOIN releases r ON r.id = c.release_id JOIN products p ON p.id = r.product_id
		WHERE r.org_id = $1 AND c.purl <> '' ORDER BY c.release_id`, orgID, fn)
}

func (tx *Tx) ScanDeviceComponents(ctx context.Context, orgID string, fn func(vuln.ComponentRef) error) error {
	return tx.scanComponents(ctx, `SELECT c.device_id, d.serial, c.purl, c.version, '', '', ''
		FROM device_components c JOIN devices d ON d.id = c.device_id
		WHERE d.org_id = $1 AND d.status IN ('active', 'quarantined') ORDER BY c.device_id`, orgID, fn)
}
