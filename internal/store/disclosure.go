package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/steward-iot/steward/internal/disclosure"
	"github.com/steward-iot/steward/internal/problem"
)

var _ disclosure.Tx = (*Tx)(nil)

// Disclosure returns the vulnerability-report store.
func (db *DB) Disclosure() disclosure.Store { return domain[disclosure.Tx]{db} }

const reportCols = `id, org_id, source, title, description, product, product_version, reporter_name, reporter_email,
	credit_wanted, credit_name, language, stage, stage_reason, received_at, ack_due_at, acknowledged_at,
	ack_overdue_notified_at, stage_changed_at, last_update_at, updated_at, revision`

func scanReport(scan func(...any) error) (disclosure.Report, error) {
	var r disclosure.Report
	var received, due, stageAt, updated int64
	var acked, overdue, last sql.NullInt64
	err := scan(&r.ID, &r.OrgID, &r.Source, &r.Title, &r.Description, &r.Product, &r.Version, &r.ReporterName,
		&r.ReporterEmail, &r.CreditWanted, &r.CreditName, &r.Language, &r.Stage, &r.StageReason, &received, &due,
		&acked, &overdue, &stageAt, &last, &updated, &r.Revision)
	r.ReceivedAt, r.AckDueAt, r.StageAt, r.UpdatedAt = fromUS(received), fromUS(due), fromUS(stageAt), fromUS(updated)
	r.AckedAt, r.AckOverdueAt, r.LastUpdateAt = fromNullUS(acked), fromNullUS(overdue), fromNullUS(last)
	return r, err
}

func (tx *Tx) InsertReport(ctx context.Context, r disclosure.Report, tokenHash string) error {
	return tx.insert(ctx, "report "+r.ID, "INSERT INTO reports (token_hash, "+reportCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23)`,
		tokenHash, r.ID, r.OrgID, string(r.Source), r.Title, r.Description, r.Product, r.Version, r.ReporterName, r.ReporterEmail,
		r.CreditWanted, r.CreditName, r.Language, string(r.Stage), r.StageReason, us(r.ReceivedAt), us(r.AckDueAt),
		nullUS(r.AckedAt), nullUS(r.AckOverdueAt), us(r.StageAt), nullUS(r.LastUpdateAt), us(r.UpdatedAt), r.Revision)
}

func (tx *Tx) ReportByID(ctx context.Context, orgID, id string) (disclosure.Report, error) {
	return getOne(ctx, tx, "report "+id, scanReport, "SELECT "+reportCols+" FROM reports WHERE org_id = $1 AND id = $2", orgID, id)
}

func (tx *Tx) ReportByTokenHash(ctx context.Context, orgID, tokenHash string) (disclosure.Report, error) {
	return getOne(ctx, tx, "report", scanReport, "SELECT "+reportCols+" FROM reports WHERE token_hash = $1 AND org_id = $2", tokenHash, orgID)
}

func (tx *Tx) ListReports(ctx context.Context, orgID string, stage disclosure.Stage, after string, limit int) ([]disclosure.Report, error) {
	if stage == "" {
		return list(ctx, tx, "reports", scanReport, "SELECT "+reportCols+" FROM reports WHERE org_id = $1 AND id > $2 ORDER BY id LIMIT $3",
			orgID, after, limit)
	}
	return list(ctx, tx, "reports", scanReport, "SELECT "+reportCols+" FROM reports WHERE org_id = $1 AND stage = $2 AND id > $3 ORDER BY id LIMIT $4",
		orgID, string(stage), after, limit)
}

func (tx *Tx) UpdateReport(ctx context.Context, r disclosure.Report) error {
	res, err := tx.exec(ctx, `UPDATE reports SET stage = $4, stage_reason = $5, acknowledged_at = $6, stage_changed_at = $7,
		last_update_at = $8, updated_at = $9, revision = revision + 1
		WHERE org_id = $1 AND id = $2 AND revision = $3`,
		r.OrgID, r.ID, r.Revision, string(r.Stage), r.StageReason, nullUS(r.AckedAt), us(r.StageAt), nullUS(r.LastUpdateAt), us(r.UpdatedAt))
	if err != nil {
		return fmt.Errorf("update report %s: %w", r.ID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n != 1 {
		if _, err := tx.ReportByID(ctx, r.OrgID, r.ID); err != nil {
			return err
		}
		return problem.Conflict("report %s was changed by someone else meanwhile; reload it and try again", r.ID)
	}
	return nil
}

const messageCols = "id, org_id, report_id, author, author_name, internal, body, created_at"

func scanMessage(scan func(...any) error) (disclosure.Message, error) {
	var m disclosure.Message
	var created int64
	err := scan(&m.ID, &m.OrgID, &m.ReportID, &m.Author, &m.AuthorName, &m.Internal, &m.Body, &created)
	m.CreatedAt = fromUS(created)
	return m, err
}

func (tx *Tx) InsertReportMessage(ctx context.Context, m disclosure.Message) error {
	return tx.insert(ctx, "report message "+m.ID, "INSERT INTO report_messages ("+messageCols+") VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
		m.ID, m.OrgID, m.ReportID, string(m.Author), m.AuthorName, m.Internal, m.Body, us(m.CreatedAt))
}

func (tx *Tx) ListReportMessages(ctx context.Context, orgID, reportID string, internal bool) ([]disclosure.Message, error) {
	q := "SELECT " + messageCols + " FROM report_messages WHERE org_id = $1 AND report_id = $2"
	if !internal {
		q += " AND internal = FALSE"
	}
	return list(ctx, tx, "report messages", scanMessage, q+" ORDER BY id", orgID, reportID)
}

func (tx *Tx) CountReportMessages(ctx context.Context, orgID, reportID string, author disclosure.Author) (int, error) {
	var n int
	err := tx.tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM report_messages WHERE org_id = $1 AND report_id = $2 AND author = $3",
		orgID, reportID, string(author)).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count report messages: %w", err)
	}
	return n, nil
}

func (tx *Tx) LinkReportVulnerability(ctx context.Context, l disclosure.Link) (bool, error) {
	// ON CONFLICT DO NOTHING (both databases) keeps a repeated link from
	// aborting a PostgreSQL transaction the way a failed INSERT would.
	res, err := tx.exec(ctx, `INSERT INTO report_vulnerabilities (report_id, org_id, vulnerability_id, linked_at)
		VALUES ($1, $2, $3, $4) ON CONFLICT (report_id, vulnerability_id) DO NOTHING`, l.ReportID, l.OrgID, l.VulnerabilityID, us(l.LinkedAt))
	if err != nil {
		return false, fmt.Errorf("link report %s: %w", l.ReportID, err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

func (tx *Tx) UnlinkReportVulnerability(ctx context.Context, orgID, reportID, vulnerabilityID string) error {
	return tx.updateOne(ctx, "link of report "+reportID+" to "+vulnerabilityID,
		"DELETE FROM report_vulnerabilities WHERE org_id = $1 AND report_id = $2 AND vulnerability_id = $3", orgID, reportID, vulnerabilityID)
}

func (tx *Tx) ListReportVulnerabilities(ctx context.Context, orgID, reportID string) ([]disclosure.Link, error) {
	return list(ctx, tx, "report vulnerabilities", func(scan func(...any) error) (disclosure.Link, error) {
		var l disclosure.Link
		var at int64
		err := scan(&l.OrgID, &l.ReportID, &l.VulnerabilityID, &at)
		l.LinkedAt = fromUS(at)
		return l, err
	}, `SELECT org_id, report_id, vulnerability_id, linked_at FROM report_vulnerabilities
		WHERE org_id = $1 AND report_id = $2 ORDER BY linked_at, vulnerability_id`, orgID, reportID)
}

func (tx *Tx) ListAckOverdue(ctx context.Context, now time.Time, limit int) ([]disclosure.Report, error) {
	return list(ctx, tx, "overdue reports", scanReport, "SELECT "+reportCols+` FROM reports
		WHERE acknowledged_at IS NULL AND ack_overdue_notified_at IS NULL AND ack_due_at <= $1
		ORDER BY ack_due_at, id LIMIT $2`, us(now), limit)
}

func (tx *Tx) ClaimAckOverdue(ctx context.Context, orgID, id string, at time.Time) (bool, error) {
	res, err := tx.exec(ctx, `UPDATE reports SET ack_overdue_notified_at = $3
		WHERE org_id = $1 AND id = $2 AND acknowledged_at IS NULL AND ack_overdue_notified_at IS NULL`, orgID, id, us(at))
	if err != nil {
		return false, fmt.Errorf("claim overdue report %s: %w", id, err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

func (tx *Tx) ReleaseAckOverdue(ctx context.Context, orgID, id string) error {
	return tx.updateOne(ctx, "report "+id, "UPDATE reports SET ack_overdue_notified_at = NULL WHERE org_id = $1 AND id = $2", orgID, id)
}
