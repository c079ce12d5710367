package disclosure

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/steward-iot/steward/internal/access"
	"github.com/steward-iot/steward/internal/audit"
	"github.com/steward-iot/steward/internal/clock"
	"github.com/steward-iot/steward/internal/id"
	"github.com/steward-iot/steward/internal/notify"
	"github.com/steward-iot/steward/internal/paging"
	"github.com/steward-iot/steward/internal/problem"
)

// Service implements report intake (for anyone holding nothing or a
// tracking token) and report handling (for the vendor's team).
type Service struct {
	store    Store
	clock    clock.Clock
	cfg      Config
	notifier Notifier
	vulns    VulnerabilityChecker
	log      *slog.Logger
}

// Deps are the optional collaborators of a Service.
type Deps struct {
	// Notifier receives notifications; nil drops them.
	Notifier Notifier
	// Vulnerabilities checks ids given to LinkVulnerability; nil accepts
	// any well-formed id.
	Vulnerabilities VulnerabilityChecker
	Log             *slog.Logger
}

// NewService returns a disclosure service. cfg is defaulted; only the
// timers must be valid here (the public surface is checked by NewHandler),
// so the team side works on instances that publish no disclosure pages.
func NewService(s Store, c clock.Clock, cfg Config, d Deps) (*Service, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validateTimers(); err != nil {
		return nil, err
	}
	if c == nil {
		c = clock.Real
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	return &Service{store: s, clock: c, cfg: cfg, notifier: d.Notifier, vulns: d.Vulnerabilities, log: d.Log}, nil
}

// Config returns the defaulted configuration.
func (s *Service) Config() Config { return s.cfg }

// reporterActor records a reporter in the audit log. Reporters have no
// account, so they act as the system on behalf of their report; the name
// says which, and no token ever reaches the log.
func reporterActor(reportID string) access.Actor {
	return access.Actor{Kind: access.ActorSystem, ID: "reporter", Name: "reporter of report " + reportID}
}

// sweepActor records the acknowledgement sweep.
var sweepActor = access.System("report acknowledgement sweep")

// errNoReport answers every token that does not open a report — missing,
// malformed, unknown or another organization's — identically, so the
// answer reveals nothing about which tokens exist.
func errNoReport() error {
	return problem.Unauthenticated("no report matches this tracking token; send the whole token you were given as Authorization: Bearer <token>")
}

func (s *Service) byToken(ctx context.Context, tx Tx, orgID, token string) (Report, error) {
	if orgID == "" || !plausibleToken(token) {
		return Report{}, errNoReport()
	}
	r, err := tx.ReportByTokenHash(ctx, orgID, hashToken(token))
	if problem.Is(err, problem.KindNotFound) {
		return Report{}, errNoReport()
	}
	return r, err
}

func when(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") }

// Submit records a new report for orgID and returns its receipt with the
// tracking token, which is not kept and cannot be shown again.
func (s *Service) Submit(ctx context.Context, orgID string, req ReportRequest, src Source) (Receipt, error) {
	if orgID == "" {
		return Receipt{}, problem.NotFound("this instance accepts no vulnerability reports")
	}
	if src != SourceForm && src != SourceAPI {
		return Receipt{}, fmt.Errorf("disclosure: unknown report source %q", src)
	}
	in, err := cleanRequest(req)
	if err != nil {
		return Receipt{}, err
	}
	now := s.clock.Now()
	r := Report{ID: id.New(), OrgID: orgID, Source: src, Title: in.Title, Description: in.Description, Product: in.Product,
		Version: in.Version, ReporterName: in.ReporterName, ReporterEmail: in.ReporterEmail, CreditWanted: in.CreditWanted,
		CreditName: in.CreditName, Language: in.Language, Stage: StageReceived, ReceivedAt: now,
		AckDueAt: clock.Norm(now.Add(s.cfg.AckWithin)), StageAt: now, UpdatedAt: now}
	token := newToken()
	err = s.store.Write(ctx, func(tx Tx) error {
		if err := tx.InsertReport(ctx, r, hashToken(token)); err != nil {
			return err
		}
		// The audit log is append-only: the report's text and the
		// reporter's address stay out of it, so they can still be erased.
		_, err := tx.AppendAudit(ctx, audit.Record{OrgID: orgID, Actor: reporterActor(r.ID), Action: "report.submit",
			TargetType: "report", TargetID: r.ID, Details: map[string]any{"source": src, "email_given": r.ReporterEmail != "",
				"ack_due_at": r.AckDueAt}})
		return err
	})
	if err != nil {
		return Receipt{}, err
	}
	s.notify(ctx, notify.Message{OrgID: orgID, Type: NotifyReceived, Subject: "New vulnerability report: " + r.Title,
		Data: map[string]any{"report_id": r.ID, "title": r.Title, "product": r.Product, "source": src,
			"received_at": r.ReceivedAt, "ack_due_at": r.AckDueAt}})
	return s.receipt(r, token), nil
}

func (s *Service) receipt(r Report, token string) Receipt {
	rc := Receipt{Reference: r.ID, Token: token, Stage: r.Stage, ReceivedAt: r.ReceivedAt, AckDueAt: r.AckDueAt,
		Message: fmt.Sprintf("Thank you. We received your report on %s. A person on our security team will acknowledge it by %s. "+
			"Keep the tracking token: it is the only way to read the status and write to us about this report, and we cannot show it again.",
			when(r.ReceivedAt), when(r.AckDueAt))}
	if s.cfg.BaseURL != "" {
		rc.StatusURL, rc.StatusPage = s.cfg.BaseURL+pathAPIStatus, s.cfg.BaseURL+pathStatusPage
	}
	return rc
}

// decoyReceipt looks exactly like a real receipt but names nothing stored:
// it is what a bot that filled the form's honeypot gets, so it learns
// nothing from the answer.
func (s *Service) decoyReceipt() Receipt {
	now := s.clock.Now()
	return s.receipt(Report{ID: id.New(), Stage: StageReceived, ReceivedAt: now, AckDueAt: clock.Norm(now.Add(s.cfg.AckWithin))}, newToken())
}

// statusText says what a stage means to a reporter.
func statusText(st Stage) string {
	switch st {
	case StageReceived:
		return "We have received your report. A person on our security team will acknowledge it soon."
	case StageAcknowledged:
		return "Our security team has acknowledged your report and will investigate it."
	case StageTriaging:
		return "We are investigating your report."
	case StageConfirmed:
		return "We have confirmed the vulnerability and are working on a fix."
	case StageRejected:
		return "We have assessed your report and concluded that it does not describe a vulnerability we will fix; see the messages for why."
	case StageDuplicate:
		return "This issue had already been reported to us and is being handled."
	case StageClosed:
		return "This report is closed."
	}
	return ""
}

// Status returns what the holder of token may see of their report.
func (s *Service) Status(ctx context.Context, orgID, token string) (ReporterStatus, error) {
	var st ReporterStatus
	err := s.store.Read(ctx, func(tx Tx) error {
		r, err := s.byToken(ctx, tx, orgID, token)
		if err != nil {
			return err
		}
		msgs, err := tx.ListReportMessages(ctx, orgID, r.ID, false)
		if err != nil {
			return err
		}
		st = s.reporterStatus(r, msgs)
		return nil
	})
	return st, err
}

func (s *Service) reporterStatus(r Report, msgs []Message) ReporterStatus {
	st := ReporterStatus{Reference: r.ID, Title: r.Title, Stage: r.Stage, Status: statusText(r.Stage), ReceivedAt: r.ReceivedAt,
		AckedAt: r.AckedAt, LastUpdateAt: r.LastUpdateAt, Messages: []PublicMessage{}, MaxMessageSize: MaxReporterMessage}
	mine := 0
	for _, m := range msgs {
		if m.Internal { // the store filters them already; never rely on one layer for this
			continue
		}
		if m.Author == AuthorReporter {
			mine++
		}
		st.Messages = append(st.Messages, PublicMessage{ID: m.ID, From: m.Author, Body: m.Body, CreatedAt: m.CreatedAt})
	}
	st.MessagesLeft = max(0, MaxReporterMessages-mine)
	switch {
	case r.AckedAt == nil:
		due := r.AckDueAt
		st.AckDueAt, st.NextUpdateDue = &due, &due
	case !r.Stage.terminal():
		last := *r.AckedAt
		if r.LastUpdateAt != nil && r.LastUpdateAt.After(last) {
			last = *r.LastUpdateAt
		}
		next := clock.Norm(last.Add(s.cfg.StatusUpdateEvery))
		st.NextUpdateDue = &next
	}
	return st
}

// AddReporterMessage adds a message from the holder of token.
func (s *Service) AddReporterMessage(ctx context.Context, orgID, token string, req MessageRequest) (PublicMessage, error) {
	var f fields
	body := f.text("body", req.Body, true, MaxReporterMessage)
	if err := f.err(); err != nil {
		return PublicMessage{}, err
	}
	m := Message{ID: id.New(), OrgID: orgID, Author: AuthorReporter, Body: body, CreatedAt: s.clock.Now()}
	var r Report
	err := s.store.Write(ctx, func(tx Tx) error {
		var err error
		if r, err = s.byToken(ctx, tx, orgID, token); err != nil {
			return err
		}
		n, err := tx.CountReportMessages(ctx, orgID, r.ID, AuthorReporter)
		if err != nil {
			return err
		}
		if n >= MaxReporterMessages {
			return problem.Conflict("this report already holds the %d messages you may add; write to the security contact instead", MaxReporterMessages)
		}
		m.ReportID = r.ID
		if err := tx.InsertReportMessage(ctx, m); err != nil {
			return err
		}
		_, err = tx.AppendAudit(ctx, audit.Record{OrgID: orgID, Actor: reporterActor(r.ID), Action: "report.message",
			TargetType: "report", TargetID: r.ID, Details: map[string]any{"message_id": m.ID, "bytes": len(m.Body)}})
		return err
	})
	if err != nil {
		return PublicMessage{}, err
	}
	s.notify(ctx, notify.Message{OrgID: orgID, Type: NotifyReporterWrote, Subject: "Reporter wrote on report: " + r.Title,
		Data: map[string]any{"report_id": r.ID, "message_id": m.ID, "title": r.Title, "stage": r.Stage}})
	return PublicMessage{ID: m.ID, From: m.Author, Body: m.Body, CreatedAt: m.CreatedAt}, nil
}

// ListReports lists the caller's organization's reports, oldest first (the
// order they should be answered in), optionally of one stage.
func (s *Service) ListReports(ctx context.Context, p access.Principal, q ListQuery) ([]Report, string, error) {
	if err := p.Require(access.ReportRead); err != nil {
		return nil, "", err
	}
	if q.Stage != "" && !q.Stage.Valid() {
		return nil, "", problem.InvalidField("stage", "unknown stage %q; use one of %v", q.Stage, Stages)
	}
	return paging.List(ctx, s.store.Read, q.Limit, func(tx Tx, limit int) ([]Report, error) {
		return tx.ListReports(ctx, p.OrgID, q.Stage, q.After, limit)
	}, func(r Report) string { return r.ID })
}

func notFound(reportID string) error { return problem.NotFound("report %s not found", reportID) }

// GetReport returns a report with its whole conversation, internal notes
// included, and its linked vulnerabilities.
func (s *Service) GetReport(ctx context.Context, p access.Principal, reportID string) (ReportDetail, error) {
	if err := p.Require(access.ReportRead); err != nil {
		return ReportDetail{}, err
	}
	if !id.Valid(reportID) {
		return ReportDetail{}, notFound(reportID)
	}
	var d ReportDetail
	err := s.store.Read(ctx, func(tx Tx) error {
		var err error
		if d.Report, err = tx.ReportByID(ctx, p.OrgID, reportID); err != nil {
			return err
		}
		if d.Messages, err = tx.ListReportMessages(ctx, p.OrgID, reportID, true); err != nil {
			return err
		}
		d.Vulnerabilities, err = tx.ListReportVulnerabilities(ctx, p.OrgID, reportID)
		return err
	})
	if d.Messages == nil {
		d.Messages = []Message{}
	}
	if d.Vulnerabilities == nil {
		d.Vulnerabilities = []Link{}
	}
	return d, err
}

// change is one team action on a report, run in a write transaction.
type change struct {
	action  string
	details map[string]any
	// public is set when the reporter can see the change, which restarts
	// the status-update clock and emails the reporter.
	public bool
}

// modify loads a report of the caller's org, lets fn change it, stores it
// with an audit event, and tells the reporter about public changes.
func (s *Service) modify(ctx context.Context, p access.Principal, reportID string, fn func(tx Tx, r *Report, now time.Time) (change, error)) (Report, error) {
	if err := p.Require(access.ReportWrite); err != nil {
		return Report{}, err
	}
	if !id.Valid(reportID) {
		return Report{}, notFound(reportID)
	}
	var r Report
	var c change
	err := s.store.Write(ctx, func(tx Tx) error {
		var err error
		if r, err = tx.ReportByID(ctx, p.OrgID, reportID); err != nil {
			return err
		}
		now := s.clock.Now()
		before := r
		if c, err = fn(tx, &r, now); err != nil {
			return err
		}
		if c.public {
			// Any answer a reporter can see is a human response: it counts
			// as the acknowledgement if none was given yet.
			if r.AckedAt == nil {
				r.AckedAt = &now
				if r.Stage == StageReceived {
					r.Stage, r.StageAt = StageAcknowledged, now
				}
				c.details["acknowledged"] = true
			}
			r.LastUpdateAt = &now
		}
		if r != before {
			r.UpdatedAt = now
			if err := tx.UpdateReport(ctx, r); err != nil {
				return err
			}
			r.Revision++
		}
		_, err = tx.AppendAudit(ctx, audit.Record{OrgID: p.OrgID, Actor: p.Actor, Action: c.action, TargetType: "report",
			TargetID: r.ID, Details: c.details})
		return err
	})
	if err != nil {
		return Report{}, err
	}
	if c.public {
		s.tellReporter(ctx, r, c.action)
	}
	return r, nil
}

// teamMessage validates an optional team message and adds it to tx.
func teamMessage(ctx context.Context, tx Tx, p access.Principal, r Report, body string, internal bool, now time.Time) (Message, error) {
	m := Message{ID: id.New(), OrgID: r.OrgID, ReportID: r.ID, Author: AuthorTeam, AuthorName: p.Actor.Name,
		Internal: internal, Body: body, CreatedAt: now}
	return m, tx.InsertReportMessage(ctx, m)
}

func optionalText(field, s string, max int) (string, error) {
	var f fields
	out := f.text(field, s, false, max)
	return out, f.err()
}

// Acknowledge records that a person has seen the report, optionally with
// a message to the reporter.
func (s *Service) Acknowledge(ctx context.Context, p access.Principal, reportID string, req AcknowledgeRequest) (Report, error) {
	msg, err := optionalText("message", req.Message, MaxTeamMessage)
	if err != nil {
		return Report{}, err
	}
	return s.modify(ctx, p, reportID, func(tx Tx, r *Report, now time.Time) (change, error) {
		if r.AckedAt != nil {
			return change{}, problem.Conflict("report %s was already acknowledged at %s", r.ID, r.AckedAt.Format(time.RFC3339))
		}
		c := change{action: "report.acknowledge", details: map[string]any{"late": now.After(r.AckDueAt)}, public: true}
		if msg != "" {
			m, err := teamMessage(ctx, tx, p, *r, msg, false, now)
			if err != nil {
				return c, err
			}
			c.details["message_id"] = m.ID
		}
		return c, nil
	})
}

// Reply adds a team message to a report: to the reporter, or an internal
// note when req.Internal is set. A reply to the reporter acknowledges an
// unacknowledged report.
func (s *Service) Reply(ctx context.Context, p access.Principal, reportID string, req ReplyRequest) (Message, error) {
	var f fields
	body := f.text("body", req.Body, true, MaxTeamMessage)
	if err := f.err(); err != nil {
		return Message{}, err
	}
	var m Message
	_, err := s.modify(ctx, p, reportID, func(tx Tx, r *Report, now time.Time) (change, error) {
		var err error
		m, err = teamMessage(ctx, tx, p, *r, body, req.Internal, now)
		action := "report.reply"
		if req.Internal {
			action = "report.note"
		}
		return change{action: action, details: map[string]any{"message_id": m.ID, "bytes": len(body)}, public: !req.Internal}, err
	})
	if err != nil {
		return Message{}, err
	}
	return m, nil
}

// SetStage moves a report to another stage (see transitions). Rejected and
// duplicate need a reason, which stays internal; req.Message, if given, is
// what the reporter is told.
func (s *Service) SetStage(ctx context.Context, p access.Principal, reportID string, req StageRequest) (Report, error) {
	if !req.Stage.Valid() || req.Stage == StageReceived {
		return Report{}, problem.InvalidField("stage", "unknown or unreachable stage %q; use one of %v", req.Stage, Stages[1:])
	}
	var f fields
	reason := f.text("reason", req.Reason, req.Stage == StageRejected || req.Stage == StageDuplicate, MaxReason)
	msg := f.text("message", req.Message, false, MaxTeamMessage)
	if err := f.err(); err != nil {
		return Report{}, err
	}
	return s.modify(ctx, p, reportID, func(tx Tx, r *Report, now time.Time) (change, error) {
		from := r.Stage
		if from == req.Stage {
			return change{}, problem.Conflict("report %s is already %s", r.ID, from)
		}
		if !slices.Contains(transitions[from], req.Stage) {
			return change{}, problem.Conflict("a %s report cannot move to %s; it can move to %v", from, req.Stage, transitions[from])
		}
		r.Stage, r.StageReason, r.StageAt = req.Stage, reason, now
		c := change{action: "report.stage", details: map[string]any{"from": from, "to": req.Stage, "reason": reason}, public: true}
		if msg != "" {
			m, err := teamMessage(ctx, tx, p, *r, msg, false, now)
			if err != nil {
				return c, err
			}
			c.details["message_id"] = m.ID
		}
		return c, nil
	})
}

func cleanVulnID(v string) (string, error) {
	var f fields
	out := f.line("vulnerability_id", v, true, MaxVulnerabilityID)
	if err := f.err(); err != nil {
		return "", err
	}
	if out != v {
		return "", problem.InvalidField("vulnerability_id", "must not contain spaces or control characters")
	}
	return out, nil
}

// LinkVulnerability links a report to a vulnerability the organization
// tracks. Linking twice is harmless and returns the existing link.
func (s *Service) LinkVulnerability(ctx context.Context, p access.Principal, reportID, vulnerabilityID string) (Link, error) {
	if err := p.Require(access.ReportWrite); err != nil {
		return Link{}, err
	}
	vid, err := cleanVulnID(vulnerabilityID)
	if err != nil {
		return Link{}, err
	}
	if !id.Valid(reportID) {
		return Link{}, notFound(reportID)
	}
	// An unknown report is NotFound whatever the vulnerability id says.
	if err := s.store.Read(ctx, func(tx Tx) error {
		_, err := tx.ReportByID(ctx, p.OrgID, reportID)
		return err
	}); err != nil {
		return Link{}, err
	}
	// Checked before the write transaction: the checker reads on its own,
	// and SQLite has a single writer.
	if s.vulns != nil {
		if err := s.vulns.CheckVulnerability(ctx, p.OrgID, vid); problem.Is(err, problem.KindNotFound) {
			return Link{}, problem.InvalidField("vulnerability_id", "%s is not a vulnerability of this organization", vid)
		} else if err != nil {
			return Link{}, err
		}
	}
	l := Link{OrgID: p.OrgID, ReportID: reportID, VulnerabilityID: vid, LinkedAt: s.clock.Now()}
	err = s.store.Write(ctx, func(tx Tx) error {
		if _, err := tx.ReportByID(ctx, p.OrgID, reportID); err != nil {
			return err
		}
		created, err := tx.LinkReportVulnerability(ctx, l)
		if err != nil || !created {
			return err
		}
		_, err = tx.AppendAudit(ctx, audit.Record{OrgID: p.OrgID, Actor: p.Actor, Action: "report.link_vulnerability",
			TargetType: "report", TargetID: reportID, Details: map[string]any{"vulnerability_id": vid}})
		return err
	})
	if err != nil {
		return Link{}, err
	}
	// Read back so a repeated link returns the original time.
	err = s.store.Read(ctx, func(tx Tx) error {
		links, err := tx.ListReportVulnerabilities(ctx, p.OrgID, reportID)
		for _, x := range links {
			if x.VulnerabilityID == vid {
				l = x
			}
		}
		return err
	})
	return l, err
}

// UnlinkVulnerability removes a link made by mistake.
func (s *Service) UnlinkVulnerability(ctx context.Context, p access.Principal, reportID, vulnerabilityID string) error {
	if err := p.Require(access.ReportWrite); err != nil {
		return err
	}
	vulnerabilityID, err := cleanVulnID(vulnerabilityID)
	if err != nil {
		return err
	}
	if !id.Valid(reportID) {
		return notFound(reportID)
	}
	return s.store.Write(ctx, func(tx Tx) error {
		if _, err := tx.ReportByID(ctx, p.OrgID, reportID); err != nil {
			return err
		}
		if err := tx.UnlinkReportVulnerability(ctx, p.OrgID, reportID, vulnerabilityID); err != nil {
			return err
		}
		_, err := tx.AppendAudit(ctx, audit.Record{OrgID: p.OrgID, Actor: p.Actor, Action: "report.unlink_vulnerability",
			TargetType: "report", TargetID: reportID, Details: map[string]any{"vulnerability_id": vulnerabilityID}})
		return err
	})
}

// overdueBatch bounds one pass of CheckOverdue.
const overdueBatch = 100

// CheckOverdue notifies the owning organization, once per report, of every
// report of any organization that nobody acknowledged by its due time, and
// returns how many it notified. Run it from the scheduler; it is safe to
// run concurrently (a claim in the database decides who notifies).
//
// The claim and its audit event commit before the notification goes out;
// if the notification fails, the claim is released (with an audit event
// saying so) and the error returned, so the next sweep tries again.
func (s *Service) CheckOverdue(ctx context.Context, now time.Time) (int, error) {
	now = clock.Norm(now)
	n := 0
	for {
		var batch []Report
		if err := s.store.Read(ctx, func(tx Tx) error {
			var err error
			batch, err = tx.ListAckOverdue(ctx, now, overdueBatch)
			return err
		}); err != nil {
			return n, err
		}
		for _, r := range batch {
			claimed := false
			err := s.store.Write(ctx, func(tx Tx) error {
				var err error
				if claimed, err = tx.ClaimAckOverdue(ctx, r.OrgID, r.ID, now); err != nil || !claimed {
					return err
				}
				_, err = tx.AppendAudit(ctx, audit.Record{OrgID: r.OrgID, Actor: sweepActor, Action: "report.ack_overdue",
					TargetType: "report", TargetID: r.ID, Details: map[string]any{"ack_due_at": r.AckDueAt}})
				return err
			})
			if err != nil {
				return n, err
			}
			if !claimed {
				continue
			}
			m := notify.Message{OrgID: r.OrgID, Type: NotifyAckOverdue,
				Subject: "Vulnerability report not acknowledged in time: " + r.Title,
				Data: map[string]any{"report_id": r.ID, "title": r.Title, "received_at": r.ReceivedAt, "ack_due_at": r.AckDueAt,
					"overdue_by": now.Sub(r.AckDueAt).Round(time.Second).String()}}
			if s.notifier == nil {
				n++
				continue
			}
			if err := s.notifier.Notify(context.WithoutCancel(ctx), m); err != nil {
				rerr := s.store.Write(ctx, func(tx Tx) error {
					if err := tx.ReleaseAckOverdue(ctx, r.OrgID, r.ID); err != nil {
						return err
					}
					_, err := tx.AppendAudit(ctx, audit.Record{OrgID: r.OrgID, Actor: sweepActor, Action: "report.ack_overdue_retry",
						TargetType: "report", TargetID: r.ID, Details: map[string]any{"reason": "notification failed"}})
					return err
				})
				if rerr != nil {
					return n, fmt.Errorf("notify overdue report %s: %w (and releasing the claim: %v)", r.ID, err, rerr)
				}
				return n, fmt.Errorf("notify overdue report %s: %w", r.ID, err)
			}
			n++
		}
		if len(batch) < overdueBatch {
			return n, nil
		}
	}
}

// notify sends m after the change committed. A failure is logged, not
// returned: the report is stored, and the overdue sweep catches a team
// that never heard of it.
func (s *Service) notify(ctx context.Context, m notify.Message) {
	if s.notifier == nil {
		return
	}
	if err := s.notifier.Notify(context.WithoutCancel(ctx), m); err != nil {
		s.log.ErrorContext(ctx, "disclosure notification failed", "type", m.Type, "org_id", m.OrgID, "err", err)
	}
}

// tellReporter emails a reporter who left an address that their report
// changed. The mail carries no message text: mail often travels in clear
// and the text may hold vulnerability details; the reporter reads it with
// the token. Reporters are only ever mailed after a person on the team
// acted, so the public form cannot be used to send mail to strangers.
func (s *Service) tellReporter(ctx context.Context, r Report, event string) {
	if r.ReporterEmail == "" {
		return
	}
	data := map[string]any{"reference": r.ID, "event": event, "stage": r.Stage, "status": statusText(r.Stage)}
	if s.cfg.BaseURL != "" {
		data["status_page"] = s.cfg.BaseURL + pathStatusPage
	}
	subject := "Update on your vulnerability report " + r.ID
	if s.cfg.OrgName != "" {
		subject = s.cfg.OrgName + " security: " + subject
	}
	s.notify(ctx, notify.Message{OrgID: r.OrgID, Type: NotifyReporterUpdate, Subject: subject, Data: data, To: []string{r.ReporterEmail}})
}
