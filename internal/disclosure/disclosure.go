// Package disclosure owns the public side of vulnerability handling and the
// reports it receives: RFC 9116 security.txt, the disclosure-policy page, a
// report form and JSON API that need no account, tracking tokens with which
// a reporter reads the status and talks to the team, acknowledgement timers,
// and the team-side service that acknowledges, answers, stages and links
// reports. Everything a reporter sends is hostile input: it is bounded,
// cleaned of control characters, checked for UTF-8 and escaped on output.
package disclosure

import (
	"context"
	"time"

	"github.com/steward-iot/steward/internal/audit"
	"github.com/steward-iot/steward/internal/notify"
)

// Stage is where a report stands (ISO/IEC 30111's receipt → verification →
// resolution, as the reporter and the team see it).
type Stage string

const (
	StageReceived     Stage = "received"     // in, nobody has looked yet
	StageAcknowledged Stage = "acknowledged" // a person confirmed receipt
	StageTriaging     Stage = "triaging"     // being verified
	StageConfirmed    Stage = "confirmed"    // a real vulnerability
	StageRejected     Stage = "rejected"     // not a vulnerability (needs a reason)
	StageDuplicate    Stage = "duplicate"    // already known (needs a reason)
	StageClosed       Stage = "closed"       // done
)

// Stages lists every stage in lifecycle order.
var Stages = []Stage{StageReceived, StageAcknowledged, StageTriaging, StageConfirmed, StageRejected, StageDuplicate, StageClosed}

// transitions says which stages a report may move to. Rejected, duplicate
// and closed reports can be reopened into triage when new facts arrive;
// nothing goes back to received or acknowledged.
var transitions = map[Stage][]Stage{
	StageReceived:     {StageAcknowledged, StageRejected, StageDuplicate, StageClosed},
	StageAcknowledged: {StageTriaging, StageRejected, StageDuplicate, StageClosed},
	StageTriaging:     {StageConfirmed, StageRejected, StageDuplicate, StageClosed},
	StageConfirmed:    {StageTriaging, StageClosed},
	StageRejected:     {StageTriaging, StageClosed},
	StageDuplicate:    {StageTriaging, StageClosed},
	StageClosed:       {StageTriaging},
}

// Valid reports whether s is a known stage.
func (s Stage) Valid() bool { _, ok := transitions[s]; return ok }

// terminal stages promise the reporter no further updates.
func (s Stage) terminal() bool {
	return s == StageRejected || s == StageDuplicate || s == StageClosed
}

// Source says how a report arrived.
type Source string

const (
	SourceForm Source = "form" // the HTML form
	SourceAPI  Source = "api"  // POST /api/v1/reports
)

// Report is an inbound vulnerability report as the team sees it.
type Report struct {
	ID            string     `json:"id"`
	OrgID         string     `json:"org_id"`
	Source        Source     `json:"source" enum:"form,api"`
	Title         string     `json:"title"`
	Description   string     `json:"description"`
	Product       string     `json:"product,omitempty"`
	Version       string     `json:"version,omitempty"`
	ReporterName  string     `json:"reporter_name,omitempty"`
	ReporterEmail string     `json:"reporter_email,omitempty"`
	CreditWanted  bool       `json:"credit_wanted"`
	CreditName    string     `json:"credit_name,omitempty" doc:"how the reporter wants to be credited, when credit_wanted"`
	Language      string     `json:"language,omitempty" doc:"the reporter's preferred language (BCP 47 tag)"`
	Stage         Stage      `json:"stage" enum:"received,acknowledged,triaging,confirmed,rejected,duplicate,closed"`
	StageReason   string     `json:"stage_reason,omitempty" doc:"why the report was rejected, marked duplicate or otherwise moved; internal"`
	ReceivedAt    time.Time  `json:"received_at"`
	AckDueAt      time.Time  `json:"ack_due_at" doc:"when the acknowledgement is due (received_at + the configured ack time)"`
	AckedAt       *time.Time `json:"acknowledged_at,omitempty"`
	AckOverdueAt  *time.Time `json:"ack_overdue_notified_at,omitempty" doc:"when the team was told the acknowledgement is overdue"`
	StageAt       time.Time  `json:"stage_changed_at"`
	LastUpdateAt  *time.Time `json:"last_update_at,omitempty" doc:"the team's last update the reporter can see (ack, reply, stage change)"`
	UpdatedAt     time.Time  `json:"updated_at"`
	// Revision counts updates; UpdateReport refuses a stale one so two
	// concurrent stage changes cannot both pass their checks.
	Revision int64 `json:"-"`
}

// Author says who wrote a message.
type Author string

const (
	AuthorReporter Author = "reporter"
	AuthorTeam     Author = "team"
)

// Message is one entry in a report's conversation.
type Message struct {
	ID         string    `json:"id"`
	OrgID      string    `json:"org_id"`
	ReportID   string    `json:"report_id"`
	Author     Author    `json:"author" enum:"reporter,team"`
	AuthorName string    `json:"author_name,omitempty" doc:"the team member (token or user name); empty for the reporter"`
	Internal   bool      `json:"internal" doc:"a team note the reporter never sees"`
	Body       string    `json:"body"`
	CreatedAt  time.Time `json:"created_at"`
}

// Link ties a report to a tracked vulnerability.
type Link struct {
	OrgID           string    `json:"-"`
	ReportID        string    `json:"report_id"`
	VulnerabilityID string    `json:"vulnerability_id"`
	LinkedAt        time.Time `json:"linked_at"`
}

// ReportDetail is a report with its whole conversation (internal notes
// included) and the vulnerabilities it is linked to.
type ReportDetail struct {
	Report
	Messages        []Message `json:"messages"`
	Vulnerabilities []Link    `json:"vulnerabilities"`
}

// ReportRequest is a new report from the public form or API.
type ReportRequest struct {
	Title         string `json:"title" doc:"one line, at most 200 characters"`
	Description   string `json:"description" doc:"what is wrong, how to reproduce it, what an attacker gains; at most 64 KiB"`
	Product       string `json:"product,omitempty" doc:"the product concerned, free text"`
	Version       string `json:"version,omitempty" doc:"the version(s) concerned, free text"`
	ReporterName  string `json:"reporter_name,omitempty"`
	ReporterEmail string `json:"reporter_email,omitempty" doc:"used only to tell you when the team acknowledges or answers"`
	CreditWanted  bool   `json:"credit_wanted,omitempty" doc:"whether you want to be credited in the advisory"`
	CreditName    string `json:"credit_name,omitempty" doc:"the name to credit; defaults to reporter_name"`
	Language      string `json:"language,omitempty" doc:"your preferred language, a BCP 47 tag such as en or de-AT"`
}

// Receipt is what a reporter gets back, once: the tracking token is not
// stored and cannot be shown again.
type Receipt struct {
	Reference  string    `json:"reference" doc:"the report's id; quote it when you write to us by other means"`
	Token      string    `json:"token" doc:"tracking token, shown once: send it as Authorization: Bearer <token>"`
	Stage      Stage     `json:"stage"`
	ReceivedAt time.Time `json:"received_at"`
	AckDueAt   time.Time `json:"ack_due_at" doc:"a person will acknowledge the report by then"`
	Message    string    `json:"message" doc:"the automatic receipt"`
	StatusURL  string    `json:"status_url,omitempty" doc:"GET with the token as bearer credential for the status"`
	StatusPage string    `json:"status_page,omitempty" doc:"the HTML status page (enter the token there)"`
}

// PublicMessage is a message as the reporter sees it: no internal notes and
// no team member names.
type PublicMessage struct {
	ID        string    `json:"id"`
	From      Author    `json:"from" enum:"reporter,team"`
	Body      string    `json:"body"`
	CreatedAt time.Time `json:"created_at"`
}

// MessageRequest is a message from the reporter.
type MessageRequest struct {
	Body string `json:"body" doc:"at most 16 KiB"`
}

// ReporterStatus is what the holder of a tracking token may see.
type ReporterStatus struct {
	Reference      string          `json:"reference"`
	Title          string          `json:"title"`
	Stage          Stage           `json:"stage"`
	Status         string          `json:"status" doc:"what the stage means, in words"`
	ReceivedAt     time.Time       `json:"received_at"`
	AckedAt        *time.Time      `json:"acknowledged_at,omitempty"`
	AckDueAt       *time.Time      `json:"ack_due_at,omitempty" doc:"set while the report waits for acknowledgement"`
	LastUpdateAt   *time.Time      `json:"last_update_at,omitempty"`
	NextUpdateDue  *time.Time      `json:"next_update_due_at,omitempty" doc:"when the team will have written again at the latest; absent once the report is settled"`
	Messages       []PublicMessage `json:"messages"`
	MessagesLeft   int             `json:"messages_left" doc:"how many more messages you may add to this report"`
	MaxMessageSize int             `json:"max_message_bytes"`
}

// ListQuery selects a page of reports.
type ListQuery struct {
	Stage Stage  // empty: every stage
	After string // cursor: the last id of the previous page
	Limit int
}

// AcknowledgeRequest acknowledges a report, optionally with a first
// message to the reporter.
type AcknowledgeRequest struct {
	Message string `json:"message,omitempty" doc:"sent to the reporter with the acknowledgement"`
}

// ReplyRequest is a team message on a report.
type ReplyRequest struct {
	Body     string `json:"body"`
	Internal bool   `json:"internal,omitempty" doc:"a note for the team only; the reporter never sees it and is not emailed"`
}

// StageRequest moves a report to another stage.
type StageRequest struct {
	Stage  Stage  `json:"stage" enum:"acknowledged,triaging,confirmed,rejected,duplicate,closed"`
	Reason string `json:"reason,omitempty" doc:"why; required for rejected and duplicate. Internal: the reporter does not see it"`
	// Message is the explanation the reporter does see. The reason stays
	// internal so that, say, an embargoed duplicate is never revealed by
	// accident.
	Message string `json:"message,omitempty" doc:"a message to the reporter sent with the change"`
}

// LinkRequest links a report to a tracked vulnerability.
type LinkRequest struct {
	VulnerabilityID string `json:"vulnerability_id"`
}

// Notifier delivers notifications (package notify's dispatcher).
type Notifier interface {
	Notify(ctx context.Context, m notify.Message) error
}

// VulnerabilityChecker confirms that a vulnerability id names a
// vulnerability of the organization before a report is linked to it. It
// returns a problem.NotFound (or any error) when it does not.
type VulnerabilityChecker interface {
	CheckVulnerability(ctx context.Context, orgID, vulnerabilityID string) error
}

// Notification types raised by this package.
const (
	NotifyReceived       = "report.received"        // to the org's subscriptions
	NotifyReporterWrote  = "report.message"         // the reporter added a message
	NotifyAckOverdue     = "report.ack_overdue"     // nobody acknowledged in time
	NotifyReporterUpdate = "report.reporter_update" // to the reporter's email
)

// Tx is what disclosure needs from a store transaction.
type Tx interface {
	AppendAudit(ctx context.Context, r audit.Record) (audit.Event, error)
	// InsertReport stores a new report with the SHA-256 of its tracking token.
	InsertReport(ctx context.Context, r Report, tokenHash string) error
	ReportByID(ctx context.Context, orgID, id string) (Report, error)
	ReportByTokenHash(ctx context.Context, orgID, tokenHash string) (Report, error)
	// ListReports lists an org's reports by id, optionally of one stage.
	ListReports(ctx context.Context, orgID string, stage Stage, after string, limit int) ([]Report, error)
	// UpdateReport writes the mutable fields (stage, reason, ack and update
	// times) if the stored revision is still r.Revision, and bumps it;
	// otherwise it returns a Conflict.
	UpdateReport(ctx context.Context, r Report) error
	InsertReportMessage(ctx context.Context, m Message) error
	// ListReportMessages lists a report's messages oldest first, internal
	// notes only when internal is set.
	ListReportMessages(ctx context.Context, orgID, reportID string, internal bool) ([]Message, error)
	CountReportMessages(ctx context.Context, orgID, reportID string, author Author) (int, error)
	// LinkReportVulnerability records a link and reports whether it is new.
	LinkReportVulnerability(ctx context.Context, l Link) (bool, error)
	UnlinkReportVulnerability(ctx context.Context, orgID, reportID, vulnerabilityID string) error
	ListReportVulnerabilities(ctx context.Context, orgID, reportID string) ([]Link, error)
	// ListAckOverdue lists reports of every org whose acknowledgement was
	// due at or before now, is missing, and has not been notified.
	ListAckOverdue(ctx context.Context, now time.Time, limit int) ([]Report, error)
	// ClaimAckOverdue marks the overdue notification as sent; false when
	// the report was acknowledged or claimed meanwhile.
	ClaimAckOverdue(ctx context.Context, orgID, id string, at time.Time) (bool, error)
	// ReleaseAckOverdue undoes a claim whose notification failed.
	ReleaseAckOverdue(ctx context.Context, orgID, id string) error
}

// Store runs functions in read or write transactions.
type Store interface {
	Read(ctx context.Context, fn func(Tx) error) error
	Write(ctx context.Context, fn func(Tx) error) error
}
