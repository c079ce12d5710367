package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/steward-iot/steward/internal/advisory"
	"github.com/steward-iot/steward/internal/problem"
)

var _ advisory.Tx = (*Tx)(nil)

// Advisory returns the advisory store.
func (db *DB) Advisory() advisory.Store { return domain[advisory.Tx]{db} }

const advisoryCols = `id, org_id, tracking_id, file_stem, title, tlp, status, version, pending, draft,
	initial_release_at, current_release_at, created_at, updated_at`

func scanAdvisory(scan func(...any) error) (advisory.Advisory, error) {
	var a advisory.Advisory
	var draft string
	var initial, current sql.NullInt64
	var created, updated int64
	err := scan(&a.ID, &a.OrgID, &a.TrackingID, &a.FileStem, &a.Title, &a.TLP, &a.Status, &a.Version, &a.Pending, &draft,
		&initial, &current, &created, &updated)
	if err == nil {
		err = json.Unmarshal([]byte(draft), &a.Draft)
	}
	a.InitialReleaseDate, a.CurrentReleaseDate = fromNullUS(initial), fromNullUS(current)
	a.CreatedAt, a.UpdatedAt = fromUS(created), fromUS(updated)
	return a, err
}

func (tx *Tx) InsertAdvisory(ctx context.Context, a advisory.Advisory) error {
	draft, err := json.Marshal(a.Draft)
	if err != nil {
		return err
	}
	return tx.insert(ctx, fmt.Sprintf("advisory %s", a.TrackingID), "INSERT INTO advisories ("+advisoryCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
		a.ID, a.OrgID, a.TrackingID, a.FileStem, a.Title, a.TLP, string(a.Status), a.Version, a.Pending, string(draft),
		nullUS(a.InitialReleaseDate), nullUS(a.CurrentReleaseDate), us(a.CreatedAt), us(a.UpdatedAt))
}

func (tx *Tx) UpdateAdvisory(ctx context.Context, a advisory.Advisory, prevVersion int) error {
	draft, err := json.Marshal(a.Draft)
	if err != nil {
		return err
	}
	res, err := tx.exec(ctx, `UPDATE advisories SET tracking_id = $4, file_stem = $5, title = $6, tlp = $7, status = $8, version = $9,
		pending = $10, draft = $11, initial_release_at = $12, current_release_at = $13, updated_at = $14
		WHERE org_id = $1 AND id = $2 AND version = $3`,
		a.OrgID, a.ID, prevVersion, a.TrackingID, a.FileStem, a.Title, a.TLP, string(a.Status), a.Version,
		a.Pending, string(draft), nullUS(a.InitialReleaseDate), nullUS(a.CurrentReleaseDate), us(a.UpdatedAt))
	if isUnique(err) {
		return problem.Conflict("advisory %s already exists", a.TrackingID)
	}
	if err != nil {
		return fmt.Errorf("update advisory %s: %w", a.ID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n != 1 {
		return problem.NotFound("advisory %s at version %d not found", a.ID, prevVersion)
	}
	return nil
}

func (tx *Tx) AdvisoryByID(ctx context.Context, orgID, ref string) (advisory.Advisory, error) {
	return getOne(ctx, tx, "advisory "+ref, scanAdvisory, "SELECT "+advisoryCols+
		" FROM advisories WHERE org_id = $1 AND (id = $2 OR tracking_id = $2 OR file_stem = $3)", orgID, ref, advisory.FileStem(ref))
}

func (tx *Tx) ListAdvisories(ctx context.Context, orgID, after string, limit int) ([]advisory.Advisory, error) {
	return list(ctx, tx, "advisories", scanAdvisory, "SELECT "+advisoryCols+
		" FROM advisories WHERE org_id = $1 AND id > $2 ORDER BY id LIMIT $3", orgID, after, limit)
}

func (tx *Tx) NextTrackingNumber(ctx context.Context, orgID string, year int) (int, error) {
	var n int
	err := tx.tx.QueryRowContext(ctx, `INSERT INTO advisory_counters (org_id, year, last) VALUES ($1, $2, 1)
		ON CONFLICT (org_id, year) DO UPDATE SET last = advisory_counters.last + 1 RETURNING last`, orgID, year).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("next tracking number: %w", err)
	}
	return n, nil
}

const versionCols = `v.advisory_id, v.version, v.org_id, v.tracking_id, v.title, v.tlp, v.summary, v.severity,
	v.released_at, v.initial_release_at, v.published_by, v.key_fingerprint`

func scanVersion(scan func(...any) error, extra ...any) (advisory.Version, error) {
	var v advisory.Version
	var released, initial int64
	var actor string
	err := scan(append([]any{&v.AdvisoryID, &v.Version, &v.OrgID, &v.TrackingID, &v.Title, &v.TLP, &v.Summary, &v.Severity,
		&released, &initial, &actor, &v.KeyFingerprint}, extra...)...)
	if err == nil {
		err = json.Unmarshal([]byte(actor), &v.PublishedBy)
	}
	v.ReleasedAt, v.InitialReleaseDate = fromUS(released), fromUS(initial)
	return v, err
}

func (tx *Tx) InsertAdvisoryVersion(ctx context.Context, v advisory.Version) error {
	if v.Draft == nil {
		return fmt.Errorf("insert advisory version %s/%d: no draft", v.AdvisoryID, v.Version)
	}
	draft, err := json.Marshal(v.Draft)
	if err != nil {
		return err
	}
	actor, err := json.Marshal(v.PublishedBy)
	if err != nil {
		return err
	}
	what := fmt.Sprintf("version %d of advisory %s", v.Version, v.TrackingID)
	if err := tx.insert(ctx, what, `INSERT INTO advisory_versions (advisory_id, version, org_id, tracking_id, title, tlp, summary, severity,
		draft, released_at, initial_release_at, published_by, key_fingerprint) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
		v.AdvisoryID, v.Version, v.OrgID, v.TrackingID, v.Title, v.TLP, v.Summary, v.Severity, string(draft),
		us(v.ReleasedAt), us(v.InitialReleaseDate), string(actor), v.KeyFingerprint); err != nil {
		return err
	}
	for _, d := range v.Documents {
		if err := tx.insert(ctx, fmt.Sprintf("%s document of %s", d.Profile, what), `INSERT INTO advisory_documents (advisory_id, version,
			profile, org_id, tracking_id, file_name, document, sha256, sha512, signature) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
			v.AdvisoryID, v.Version, string(d.Profile), v.OrgID, d.TrackingID, d.FileName, string(d.Data), d.SHA256, d.SHA512, d.Signature); err != nil {
			return err
		}
	}
	return nil
}

// docCols are a document's own columns; its dates, title and label come
// from its version.
const docCols = "d.profile, d.tracking_id, d.file_name, d.sha256, d.sha512, d.signature"

// scanDocument reads versionCols, then docCols, then (withData) the bytes.
func scanDocument(withData bool) func(scan func(...any) error) (advisory.Document, error) {
	return func(scan func(...any) error) (advisory.Document, error) {
		var d advisory.Document
		var data string
		extra := []any{&d.Profile, &d.TrackingID, &d.FileName, &d.SHA256, &d.SHA512, &d.Signature}
		if withData {
			extra = append(extra, &data)
		}
		v, err := scanVersion(scan, extra...)
		fillDocument(&d, v)
		if withData {
			d.Data = []byte(data)
		}
		return d, err
	}
}

func fillDocument(d *advisory.Document, v advisory.Version) {
	d.AdvisoryID, d.Version, d.TLP, d.Title, d.Severity = v.AdvisoryID, v.Version, v.TLP, v.Title, v.Severity
	d.ReleasedAt, d.InitialReleaseDate, d.KeyFingerprint = v.ReleasedAt, v.InitialReleaseDate, v.KeyFingerprint
	d.Path = advisory.DocumentPath(d.TLP, d.InitialReleaseDate, d.FileName)
}

// documents lists the documents of an advisory's versions, without data.
func (tx *Tx) documents(ctx context.Context, orgID, advisoryID string, version int) ([]advisory.Document, error) {
	return list(ctx, tx, "advisory documents", scanDocument(false), "SELECT "+versionCols+", "+docCols+`
		FROM advisory_versions v JOIN advisory_documents d ON d.advisory_id = v.advisory_id AND d.version = v.version
		WHERE v.org_id = $1 AND v.advisory_id = $2 AND (v.version = $3 OR $3 = 0) ORDER BY v.version, d.profile`, orgID, advisoryID, version)
}

func (tx *Tx) AdvisoryVersions(ctx context.Context, orgID, advisoryID string) ([]advisory.Version, error) {
	versions, err := list(ctx, tx, "advisory versions", func(scan func(...any) error) (advisory.Version, error) { return scanVersion(scan) },
		"SELECT "+versionCols+" FROM advisory_versions v WHERE v.org_id = $1 AND v.advisory_id = $2 ORDER BY v.version", orgID, advisoryID)
	if err != nil {
		return nil, err
	}
	docs, err := tx.documents(ctx, orgID, advisoryID, 0)
	if err != nil {
		return nil, err
	}
	for i := range versions {
		for _, d := range docs {
			if d.Version == versions[i].Version {
				versions[i].Documents = append(versions[i].Documents, d)
			}
		}
	}
	return versions, nil
}

func (tx *Tx) AdvisoryVersion(ctx context.Context, orgID, advisoryID string, version int) (advisory.Version, error) {
	var draft string
	v, err := getOne(ctx, tx, fmt.Sprintf("version %d of advisory %s", version, advisoryID), func(scan func(...any) error) (advisory.Version, error) {
		return scanVersion(scan, &draft)
	}, "SELECT "+versionCols+", v.draft FROM advisory_versions v WHERE v.org_id = $1 AND v.advisory_id = $2 AND v.version = $3",
		orgID, advisoryID, version)
	if err != nil {
		return v, err
	}
	v.Draft = new(advisory.Draft)
	if err := json.Unmarshal([]byte(draft), v.Draft); err != nil {
		return v, fmt.Errorf("read version %d of advisory %s: %w", version, advisoryID, err)
	}
	v.Documents, err = tx.documents(ctx, orgID, advisoryID, version)
	return v, err
}

func (tx *Tx) AdvisoryDocument(ctx context.Context, orgID, advisoryID string, version int, profile advisory.Profile) (advisory.Document, error) {
	return getOne(ctx, tx, fmt.Sprintf("%s document of version %d of advisory %s", profile, version, advisoryID), scanDocument(true),
		"SELECT "+versionCols+", "+docCols+`, d.document
		FROM advisory_versions v JOIN advisory_documents d ON d.advisory_id = v.advisory_id AND d.version = v.version
		WHERE v.org_id = $1 AND v.advisory_id = $2 AND v.version = $3 AND d.profile = $4`, orgID, advisoryID, version, string(profile))
}

// latestDocuments joins each advisory's latest version and its documents.
const latestDocuments = `FROM advisories a
	JOIN advisory_versions v ON v.advisory_id = a.id AND v.version = a.version
	JOIN advisory_documents d ON d.advisory_id = v.advisory_id AND d.version = v.version
	WHERE a.org_id = $1 AND v.tlp = $2`

func (tx *Tx) PublishedDocuments(ctx context.Context, orgID, tlp string) ([]advisory.Document, error) {
	return list(ctx, tx, "published advisory documents", scanDocument(false),
		"SELECT "+versionCols+", "+docCols+" "+latestDocuments+" ORDER BY v.released_at DESC, d.file_name", orgID, tlp)
}

func (tx *Tx) PublishedDocument(ctx context.Context, orgID, tlp, fileName string) (advisory.Document, error) {
	return getOne(ctx, tx, "advisory document "+fileName, scanDocument(true),
		"SELECT "+versionCols+", "+docCols+", d.document "+latestDocuments+" AND d.file_name = $3", orgID, tlp, fileName)
}

const keyCols = "org_id, fingerprint, public_key, created_at, retired_at"

func scanKey(extra ...any) func(scan func(...any) error) (advisory.SigningKey, error) {
	return func(scan func(...any) error) (advisory.SigningKey, error) {
		var k advisory.SigningKey
		var created int64
		var retired sql.NullInt64
		err := scan(append([]any{&k.OrgID, &k.Fingerprint, &k.PublicKey, &created, &retired}, extra...)...)
		k.CreatedAt, k.RetiredAt = fromUS(created), fromNullUS(retired)
		return k, err
	}
}

func (tx *Tx) InsertSigningKey(ctx context.Context, k advisory.SigningKey) error {
	return tx.insert(ctx, "advisory signing key "+k.Fingerprint, `INSERT INTO advisory_keys (org_id, fingerprint, public_key, private_key,
		created_at, retired_at) VALUES ($1, $2, $3, $4, $5, $6)`,
		k.OrgID, k.Fingerprint, k.PublicKey, k.Private, us(k.CreatedAt), nullUS(k.RetiredAt))
}

func (tx *Tx) RetireSigningKey(ctx context.Context, orgID, fingerprint string, at time.Time) error {
	return tx.updateOne(ctx, "active advisory signing key "+fingerprint,
		"UPDATE advisory_keys SET retired_at = $3 WHERE org_id = $1 AND fingerprint = $2 AND retired_at IS NULL", orgID, fingerprint, us(at))
}

func (tx *Tx) ActiveSigningKey(ctx context.Context, orgID string) (advisory.SigningKey, error) {
	var private string
	k, err := getOne(ctx, tx, "advisory signing key", scanKey(&private),
		"SELECT "+keyCols+", private_key FROM advisory_keys WHERE org_id = $1 AND retired_at IS NULL", orgID)
	k.Private = private
	return k, err
}

func (tx *Tx) SigningKeys(ctx context.Context, orgID string) ([]advisory.SigningKey, error) {
	return list(ctx, tx, "advisory signing keys", scanKey(),
		"SELECT "+keyCols+" FROM advisory_keys WHERE org_id = $1 ORDER BY created_at, fingerprint", orgID)
}
