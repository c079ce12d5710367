package vuln

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/steward-iot/steward/internal/access"
	"github.com/steward-iot/steward/internal/audit"
	"github.com/steward-iot/steward/internal/clock"
	"github.com/steward-iot/steward/internal/problem"
	"github.com/steward-iot/steward/internal/vuln/scoring"
)

// Stage is an ISO/IEC 30111 handling stage.
type Stage string

const (
	Received     Stage = "received"
	Acknowledged Stage = "acknowledged"
	Triaging     Stage = "triaging"
	Confirmed    Stage = "confirmed"
	Rejected     Stage = "rejected"
	Duplicate    Stage = "duplicate"
	Remediation  Stage = "remediation"
	RiskAccepted Stage = "risk-accepted"
	FixReleased  Stage = "fix-released"
	Disclosed    Stage = "disclosed"
	Closed       Stage = "closed"
)

// ImportStage is where an imported OSV record starts. The record is a
// published advisory about a component we ship: receiving it is its
// acknowledgement (there is no reporter to answer), and what remains is to
// find out whether and how it affects our products — triage.
const ImportStage = Triaging

// transitions is the stage machine. Entering risk-accepted and leaving it
// go through AcceptRisk, RevokeRiskAcceptance and the expiry sweep, which
// need more than a reason; leaving closed, rejected or duplicate re-opens
// the vulnerability and needs a reason.
var transitions = map[Stage][]Stage{
	Received:     {Acknowledged},
	Acknowledged: {Triaging},
	Triaging:     {Confirmed, Rejected, Duplicate},
	Confirmed:    {Remediation},
	Remediation:  {FixReleased, RiskAccepted},
	RiskAccepted: {Remediation},
	FixReleased:  {Disclosed},
	Disclosed:    {Closed},
	Rejected:     {Closed, Triaging},
	Duplicate:    {Closed, Triaging},
	Closed:       {Triaging, Remediation},
}

// Stages lists every stage in process order.
var Stages = []Stage{Received, Acknowledged, Triaging, Confirmed, Rejected, Duplicate, Remediation, RiskAccepted,
	FixReleased, Disclosed, Closed}

// Next returns the stages s may move to.
func (s Stage) Next() []Stage { return slices.Clone(transitions[s]) }

// ParseStage validates a stage name from input.
func ParseStage(s string) (Stage, error) {
	if _, ok := transitions[Stage(s)]; !ok {
		return "", problem.InvalidField("to", "unknown stage %q; use one of %v", s, Stages)
	}
	return Stage(s), nil
}

// done reports stages whose handling is over (leaving them re-opens).
func (s Stage) done() bool { return s == Closed || s == Rejected || s == Duplicate }

// notAVulnerability reports stages that say the report was not (a new) one.
func (s Stage) notAVulnerability() bool { return s == Rejected || s == Duplicate }

// DeadlineState is how a clock stands.
type DeadlineState string

const (
	StatePending  DeadlineState = "pending"  // the clock has not started (final CRA report before a fix)
	StateRunning  DeadlineState = "running"  // started, not met, not past due (or no due date)
	StateMet      DeadlineState = "met"      // met on or before its due date
	StateBreached DeadlineState = "breached" // past due and not met, or met late
)

// Deadline is one clock: an SLA deadline or a CRA reporting obligation.
type Deadline struct {
	Start *time.Time    `json:"start,omitempty" doc:"when the clock started; absent while pending"`
	Due   *time.Time    `json:"due,omitempty" doc:"absent when no deadline applies"`
	MetAt *time.Time    `json:"met_at,omitempty"`
	State DeadlineState `json:"state" enum:"pending,running,met,breached"`
}

func (d *Deadline) refresh(now time.Time) {
	switch {
	case d.Start == nil:
		d.State = StatePending
	case d.MetAt != nil && (d.Due == nil || !d.MetAt.After(*d.Due)):
		d.State = StateMet
	case d.Due != nil && (d.MetAt != nil || now.After(*d.Due)):
		d.State = StateBreached
	default:
		d.State = StateRunning
	}
}

// open reports an unmet deadline with a due date.
func (d *Deadline) open() bool { return d != nil && d.Start != nil && d.MetAt == nil && d.Due != nil }

// SLA holds the release-criteria clocks. An unmet clock's due date is its
// start plus the deadline of the current class under the policy in force
// at the vulnerability's last change; a met clock keeps its due date.
type SLA struct {
	Class       scoring.Priority `json:"class,omitempty" doc:"the priority class whose deadlines apply (the policy's default class until assessed)"`
	Acknowledge *Deadline        `json:"acknowledge,omitempty" doc:"from receipt to acknowledgement"`
	Triage      *Deadline        `json:"triage,omitempty" doc:"from acknowledgement to confirmed, rejected or duplicate"`
	Remediation *Deadline        `json:"remediation,omitempty" doc:"from confirmation (or re-opening) to a released fix or an accepted risk"`
}

// Escalation is where the escalation of a breached deadline stands.
type Escalation struct {
	Level int `json:"level" doc:"people notified so far for the watched deadline: 1 the owner, 2 the deputy, 3… the chain"`
	// EscalatedAt is the last escalation.
	EscalatedAt *time.Time `json:"escalated_at,omitempty"`
	Deadline    string     `json:"deadline,omitempty" doc:"the deadline being watched" enum:"acknowledge,triage,remediation,cra_early_warning,cra_notification,cra_final_report"`
	DueAt       *time.Time `json:"due_at,omitempty" doc:"when the watched deadline is due"`
	NextAt      *time.Time `json:"next_at,omitempty" doc:"the earliest time the next escalation may happen"`
}

// Assessment is the recorded scoring of a vulnerability.
type Assessment struct {
	CVSS           []scoring.CVSS   `json:"cvss"`
	SSVC           scoring.SSVC     `json:"ssvc" doc:"deployer inputs; exploitation is active whenever known_exploited is set"`
	KnownExploited bool             `json:"known_exploited"`
	SSVCPriority   scoring.Priority `json:"ssvc_priority" enum:"defer,scheduled,out-of-cycle,immediate"`
	Override       scoring.Priority `json:"priority_override,omitempty" enum:"defer,scheduled,out-of-cycle,immediate"`
	OverrideReason string           `json:"override_reason,omitempty"`
	Cost           *scoring.Cost    `json:"cost,omitempty" doc:"what deploying the fix costs the fleet"`
	AssessedAt     time.Time        `json:"assessed_at"`
	AssessedBy     access.Actor     `json:"assessed_by"`
}

// RiskAcceptance is a decision to live with a vulnerability for a while.
type RiskAcceptance struct {
	ApproverID    string       `json:"approver_id"`
	ApproverEmail string       `json:"approver_email"`
	Justification string       `json:"justification"`
	AcceptedAt    time.Time    `json:"accepted_at"`
	AcceptedBy    access.Actor `json:"accepted_by" doc:"who recorded it"`
	ExpiresAt     time.Time    `json:"expires_at"`
	EndedAt       *time.Time   `json:"ended_at,omitempty"`
	EndReason     string       `json:"end_reason,omitempty" enum:"expired,revoked"`
	RevokeReason  string       `json:"revoke_reason,omitempty"`
}

// CRA holds the reporting obligations of Regulation (EU) 2024/2847
// Art. 14 for an actively exploited vulnerability, counted from when the
// organization became aware of the exploitation.
type CRA struct {
	AwareAt time.Time `json:"aware_at"`
	// Applies is false once the vulnerability is no longer considered
	// exploited (or turned out not to be one); the record is kept.
	Applies      bool      `json:"applies"`
	EarlyWarning CRAReport `json:"early_warning" doc:"due 24 hours after awareness"`
	Notification CRAReport `json:"notification" doc:"due 72 hours after awareness"`
	FinalReport  CRAReport `json:"final_report" doc:"due 14 days after a corrective measure is available"`
}

// CRAReport is one reporting obligation and its submission.
type CRAReport struct {
	Deadline
	SubmittedBy *access.Actor `json:"submitted_by,omitempty"`
	Reference   string        `json:"reference,omitempty" doc:"the submission's reference at the reporting platform"`
}

// CRA deadlines, fixed by Art. 14(2) and 14(2)(c).
const (
	CRAEarlyWarning = 24 * time.Hour
	CRANotification = 72 * time.Hour
	CRAFinalReport  = 14 * Day
)

// CRA report kinds.
const (
	ReportEarlyWarning = "early-warning"
	ReportNotification = "notification"
	ReportFinal        = "final-report"
)

// Input bounds.
const (
	maxReason          = 2000
	maxJustification   = 4000
	maxReference       = 200
	maxEscalationChain = 8
)

// --- derived state ---------------------------------------------------------

// plan recomputes what follows from the stored state and the policy: the
// SLA class and the due dates of unmet clocks (a met clock keeps the due
// date it was judged against), the CRA due dates, the deadline the
// escalation runner watches and when it should next act. A changed watched
// deadline starts its escalation afresh.
func (s *Service) plan(v *Vulnerability) {
	class, d := s.policy.deadlines(v.Priority)
	v.SLA.Class = class
	due := func(dl *Deadline, span Duration) {
		if dl == nil || dl.Start == nil || dl.MetAt != nil {
			return
		}
		dl.Due = nil
		if span > 0 {
			t := dl.Start.Add(span.D())
			dl.Due = &t
		}
	}
	due(v.SLA.Acknowledge, d.Acknowledge)
	due(v.SLA.Triage, d.Triage)
	due(v.SLA.Remediation, d.Remediation)
	v.planCRA()

	name, at := v.watched()
	if !sameTime(at, v.Escalation.DueAt) {
		v.Escalation.Level, v.Escalation.EscalatedAt = 0, nil
	}
	v.Escalation.Deadline, v.Escalation.DueAt = name, at
	v.Escalation.NextAt = s.nextEscalation(v)
}

// nextEscalation is when the runner should next escalate v, nil when the
// ladder is exhausted or nothing is watched.
func (s *Service) nextEscalation(v *Vulnerability) *time.Time {
	e := v.Escalation
	if e.DueAt == nil || e.Level >= max(len(v.ladder()), 1) {
		return nil
	}
	next := *e.DueAt
	if e.EscalatedAt != nil {
		if t := e.EscalatedAt.Add(s.policy.EscalationInterval.D()); t.After(next) {
			next = t
		}
	}
	return &next
}

func (v *Vulnerability) planCRA() {
	c := v.CRA
	if c == nil {
		return
	}
	c.Applies = v.KnownExploited && !v.Stage.notAVulnerability()
	aware := c.AwareAt
	ew, nt := aware.Add(CRAEarlyWarning), aware.Add(CRANotification)
	c.EarlyWarning.Start, c.EarlyWarning.Due = &aware, &ew
	c.Notification.Start, c.Notification.Due = &aware, &nt
	c.FinalReport.Start, c.FinalReport.Due = nil, nil
	if v.FixReleasedAt != nil {
		fix, fr := *v.FixReleasedAt, v.FixReleasedAt.Add(CRAFinalReport)
		c.FinalReport.Start, c.FinalReport.Due = &fix, &fr
	}
}

// watched returns the earliest unmet deadline that escalates: the SLA
// clock of the current stage and, while they apply, the CRA obligations.
func (v *Vulnerability) watched() (string, *time.Time) {
	var name string
	var at *time.Time
	consider := func(n string, d *Deadline) {
		if d.open() && (at == nil || d.Due.Before(*at)) {
			name, at = n, d.Due
		}
	}
	switch v.Stage {
	case Received:
		consider("acknowledge", v.SLA.Acknowledge)
	case Acknowledged, Triaging:
		consider("triage", v.SLA.Triage)
	case Confirmed, Remediation:
		consider("remediation", v.SLA.Remediation)
	}
	if c := v.CRA; c != nil && c.Applies {
		consider("cra_early_warning", &c.EarlyWarning.Deadline)
		consider("cra_notification", &c.Notification.Deadline)
		consider("cra_final_report", &c.FinalReport.Deadline)
	}
	return name, at
}

// view fills in the states of every clock at now.
func (v *Vulnerability) view(now time.Time) {
	for _, d := range []*Deadline{v.SLA.Acknowledge, v.SLA.Triage, v.SLA.Remediation} {
		if d != nil {
			d.refresh(now)
		}
	}
	if c := v.CRA; c != nil {
		v.planCRA()
		for _, r := range []*CRAReport{&c.EarlyWarning, &c.Notification, &c.FinalReport} {
			r.refresh(now)
		}
	}
	v.Escalation.Deadline, _ = v.watched()
	if v.EscalationChain == nil {
		v.EscalationChain = []string{}
	}
}

// ladder is who escalations reach, in order: owner, deputy, chain.
func (v *Vulnerability) ladder() []string {
	var out []string
	for _, id := range append([]string{v.OwnerID, v.DeputyID}, v.EscalationChain...) {
		if id != "" {
			out = append(out, id)
		}
	}
	return out
}

// meet marks a clock met at now unless it already was; a clock that never
// started (data from before triage existed) starts and ends at now.
func meet(d **Deadline, now time.Time) {
	if *d == nil {
		*d = &Deadline{Start: &now}
	}
	if (*d).MetAt == nil {
		(*d).MetAt = &now
	}
}

func sameTime(a, b *time.Time) bool {
	return a == nil && b == nil || a != nil && b != nil && a.Equal(*b)
}

// --- the write path --------------------------------------------------------

// change runs one triage change of the vulnerability ref in a write
// transaction: it locks the row, lets fn change it, re-plans the clocks,
// stores it and appends fn's audit record, all or nothing.
func (s *Service) change(ctx context.Context, p access.Principal, ref string,
	fn func(tx Tx, v *Vulnerability, now time.Time) (action string, details map[string]any, err error)) (Vulnerability, error) {
	now := s.clock.Now()
	var out Vulnerability
	err := s.store.Write(ctx, func(tx Tx) error {
		v, err := tx.LockVulnerability(ctx, p.OrgID, ref)
		if err != nil {
			return err
		}
		level := v.Escalation.Level
		action, details, err := fn(tx, &v, now)
		if err != nil {
			return err
		}
		v.UpdatedAt = now
		s.plan(&v)
		if err := tx.UpdateVulnerabilityTriage(ctx, v, level); err != nil {
			return err
		}
		details["vuln_id"] = v.VulnID
		if _, err := tx.AppendAudit(ctx, audit.Record{OrgID: p.OrgID, Actor: p.Actor, Action: action,
			TargetType: "vulnerability", TargetID: v.ID, Details: details}); err != nil {
			return err
		}
		out = v
		return nil
	})
	if err != nil {
		return Vulnerability{}, err
	}
	out.view(now)
	return out, nil
}

// --- stages ----------------------------------------------------------------

// TransitionRequest moves a vulnerability to another stage.
type TransitionRequest struct {
	To          Stage  `json:"to" enum:"received,acknowledged,triaging,confirmed,rejected,duplicate,remediation,fix-released,disclosed,closed"`
	Reason      string `json:"reason,omitempty" doc:"required to reject and to re-open a closed, rejected or duplicate vulnerability"`
	DuplicateOf string `json:"duplicate_of,omitempty" doc:"id or vuln_id of the vulnerability this one duplicates; required for duplicate"`
}

// Transition moves a vulnerability to the next stage. Confirming needs an
// assessment (its priority sets the remediation deadline); risk-accepted
// is entered and left through AcceptRisk and RevokeRiskAcceptance.
func (s *Service) Transition(ctx context.Context, p access.Principal, ref string, req TransitionRequest) (Vulnerability, error) {
	if err := p.Require(access.VulnWrite); err != nil {
		return Vulnerability{}, err
	}
	to, err := ParseStage(string(req.To))
	if err != nil {
		return Vulnerability{}, err
	}
	reason, err := text("reason", req.Reason, maxReason)
	if err != nil {
		return Vulnerability{}, err
	}
	return s.change(ctx, p, ref, func(tx Tx, v *Vulnerability, now time.Time) (string, map[string]any, error) {
		from := v.Stage
		if !slices.Contains(transitions[from], to) {
			return "", nil, illegal(v, to)
		}
		if to == RiskAccepted || from == RiskAccepted {
			return "", nil, problem.Conflict("vulnerability %s: risk acceptance is granted with an approver, a justification and an expiry, and ended by revoking it", v.VulnID)
		}
		reopen := from.done()
		if reason == "" && (reopen || to == Rejected) {
			return "", nil, problem.InvalidField("reason", "moving from %s to %s needs a reason", from, to)
		}
		if to != Duplicate && req.DuplicateOf != "" {
			return "", nil, problem.InvalidField("duplicate_of", "only a duplicate names the vulnerability it duplicates")
		}
		details := map[string]any{"from": from, "to": to, "reason": reason}
		switch to {
		case Acknowledged:
			meet(&v.SLA.Acknowledge, now)
			v.SLA.Triage = &Deadline{Start: &now}
		case Confirmed:
			if v.Priority == "" {
				return "", nil, problem.Conflict("vulnerability %s has no priority: assess it (SSVC) before confirming, since the priority sets the remediation deadline", v.VulnID)
			}
			meet(&v.SLA.Triage, now)
			v.SLA.Remediation = &Deadline{Start: &now}
		case Rejected:
			meet(&v.SLA.Triage, now)
		case Duplicate:
			orig, err := s.original(ctx, tx, v, req.DuplicateOf)
			if err != nil {
				return "", nil, err
			}
			v.DuplicateOf = orig.ID
			details["duplicate_of"] = orig.ID
			meet(&v.SLA.Triage, now)
		case FixReleased:
			v.FixReleasedAt = &now
			meet(&v.SLA.Remediation, now)
		case Triaging:
			if reopen { // a new look: triage starts over
				v.SLA.Triage = &Deadline{Start: &now}
				v.SLA.Remediation = nil
			}
		case Remediation:
			if reopen {
				if v.Priority == "" || v.SLA.Remediation == nil {
					return "", nil, problem.Conflict("vulnerability %s was never confirmed: re-open it to triaging", v.VulnID)
				}
				v.SLA.Remediation = &Deadline{Start: &now}
			}
		}
		if from == Duplicate {
			v.DuplicateOf = ""
		}
		v.Stage, v.StageReason, v.StageChangedAt = to, reason, now
		return "vulnerability.transition", details, nil
	})
}

// illegal is the Conflict for a transition the table does not allow.
func illegal(v *Vulnerability, to Stage) error {
	next := transitions[v.Stage]
	names := make([]string, len(next))
	for i, n := range next {
		names[i] = string(n)
	}
	return problem.Conflict("vulnerability %s is %s; it cannot move to %s, only to %s",
		v.VulnID, v.Stage, to, strings.Join(names, ", "))
}

// original resolves the vulnerability v duplicates: another one of the
// same organization that is not itself a duplicate (so chains stay one
// step long).
func (s *Service) original(ctx context.Context, tx Tx, v *Vulnerability, ref string) (Vulnerability, error) {
	if strings.TrimSpace(ref) == "" {
		return Vulnerability{}, problem.InvalidField("duplicate_of", "a duplicate must name the vulnerability it duplicates")
	}
	orig, err := tx.VulnerabilityByID(ctx, v.OrgID, ref)
	if problem.Is(err, problem.KindNotFound) {
		return orig, problem.InvalidField("duplicate_of", "no vulnerability %q in this organization", ref)
	}
	if err != nil {
		return orig, err
	}
	if orig.ID == v.ID {
		return orig, problem.InvalidField("duplicate_of", "a vulnerability cannot duplicate itself")
	}
	if orig.Stage == Duplicate {
		return orig, problem.InvalidField("duplicate_of", "%s is itself a duplicate of %s: name that one", orig.VulnID, orig.DuplicateOf)
	}
	return orig, nil
}

// --- ownership -------------------------------------------------------------

// OwnershipRequest sets who handles a vulnerability and who escalations
// reach: the owner first, then the deputy, then the chain in order. Every
// one must be an active user of the organization whose role may triage
// vulnerabilities. Empty ids clear the field.
type OwnershipRequest struct {
	OwnerID         string   `json:"owner_id,omitempty"`
	DeputyID        string   `json:"deputy_id,omitempty"`
	EscalationChain []string `json:"escalation_chain,omitempty" doc:"user ids, at most 8"`
}

// SetOwnership replaces the owner, deputy and escalation chain.
func (s *Service) SetOwnership(ctx context.Context, p access.Principal, ref string, req OwnershipRequest) (Vulnerability, error) {
	if err := p.Require(access.VulnWrite); err != nil {
		return Vulnerability{}, err
	}
	if req.OwnerID == "" && (req.DeputyID != "" || len(req.EscalationChain) > 0) {
		return Vulnerability{}, problem.InvalidField("owner_id", "a deputy or an escalation chain needs an owner")
	}
	if len(req.EscalationChain) > maxEscalationChain {
		return Vulnerability{}, problem.InvalidField("escalation_chain", "at most %d people", maxEscalationChain)
	}
	type slot struct{ field, id string }
	slots := []slot{{"owner_id", req.OwnerID}, {"deputy_id", req.DeputyID}}
	for i, id := range req.EscalationChain {
		slots = append(slots, slot{fmt.Sprintf("escalation_chain[%d]", i), id})
	}
	return s.change(ctx, p, ref, func(tx Tx, v *Vulnerability, _ time.Time) (string, map[string]any, error) {
		seen := map[string]bool{}
		for _, sl := range slots {
			if sl.id == "" {
				if strings.HasPrefix(sl.field, "escalation_chain") {
					return "", nil, problem.InvalidField(sl.field, "empty user id")
				}
				continue // clears the owner or deputy
			}
			if seen[sl.id] {
				return "", nil, problem.InvalidField(sl.field, "user %s appears twice on the escalation ladder", sl.id)
			}
			seen[sl.id] = true
			if _, err := eligible(ctx, tx, v.OrgID, sl.field, sl.id, access.VulnWrite); err != nil {
				return "", nil, err
			}
		}
		details := map[string]any{
			"from": map[string]any{"owner_id": v.OwnerID, "deputy_id": v.DeputyID, "escalation_chain": v.EscalationChain},
			"to":   map[string]any{"owner_id": req.OwnerID, "deputy_id": req.DeputyID, "escalation_chain": req.EscalationChain},
		}
		v.OwnerID, v.DeputyID = req.OwnerID, req.DeputyID
		v.EscalationChain = append([]string{}, req.EscalationChain...)
		return "vulnerability.ownership", details, nil
	})
}

// eligible checks that user id of org is active and holds perm. A user
// of another organization reads as unknown, so ids cannot be probed
// across tenants.
func eligible(ctx context.Context, tx Tx, orgID, field, id string, perm access.Permission) (Person, error) {
	u, err := tx.VulnPerson(ctx, orgID, id)
	if problem.Is(err, problem.KindNotFound) {
		return u, problem.InvalidField(field, "%s is not a user of this organization", id)
	}
	if err != nil {
		return u, err
	}
	if u.Disabled {
		return u, problem.InvalidField(field, "user %s (%s) is disabled", id, u.Email)
	}
	if !u.Role.Can(perm) {
		return u, problem.InvalidField(field, "user %s (%s) has role %s, which may not %s", id, u.Email, u.Role, perm)
	}
	return u, nil
}

// --- assessment ------------------------------------------------------------

// AssessRequest records a (re-)assessment; it replaces the previous one.
type AssessRequest struct {
	CVSS []string     `json:"cvss,omitempty" doc:"CVSS vector strings, at most one per version (3.x, 4.0)"`
	SSVC scoring.SSVC `json:"ssvc"`
	// KnownExploited records reliable evidence of active exploitation. It
	// and SSVC exploitation "active" are the same fact: either sets both,
	// and it starts the EU CRA reporting clocks.
	KnownExploited bool `json:"known_exploited,omitempty"`
	// AwareAt is when the organization became aware of active
	// exploitation, if earlier than now; it starts the CRA clocks.
	AwareAt          *time.Time       `json:"aware_at,omitempty"`
	Cost             *scoring.Cost    `json:"cost,omitempty"`
	PriorityOverride scoring.Priority `json:"priority_override,omitempty" enum:"defer,scheduled,out-of-cycle,immediate" doc:"may only raise the SSVC decision"`
	OverrideReason   string           `json:"override_reason,omitempty" doc:"required with priority_override"`
}

// Assess scores a vulnerability: CVSS vectors, SSVC deployer inputs and
// the resulting priority. An override may only raise the SSVC decision,
// never lower it: the decision tree is the floor, so no vulnerability (and
// in particular no known-exploited one) ends up below what its inputs say.
// The priority picks the SLA class; changing it re-plans the due dates
// from the clocks' unchanged start times.
func (s *Service) Assess(ctx context.Context, p access.Principal, ref string, req AssessRequest) (Vulnerability, error) {
	if err := p.Require(access.VulnWrite); err != nil {
		return Vulnerability{}, err
	}
	a := Assessment{CVSS: []scoring.CVSS{}, SSVC: req.SSVC, Cost: req.Cost, AssessedBy: p.Actor}
	if len(req.CVSS) > 2 {
		return Vulnerability{}, problem.InvalidField("cvss", "at most one vector per CVSS version")
	}
	for i, vec := range req.CVSS {
		c, err := scoring.ParseCVSS(strings.TrimSpace(vec))
		if err != nil {
			return Vulnerability{}, problem.InvalidField(fmt.Sprintf("cvss[%d]", i), "%v", err)
		}
		for _, prev := range a.CVSS {
			if prev.Version[0] == c.Version[0] {
				return Vulnerability{}, problem.InvalidField(fmt.Sprintf("cvss[%d]", i), "a second CVSS %c.x vector", c.Version[0])
			}
		}
		a.CVSS = append(a.CVSS, c)
	}
	a.KnownExploited = req.KnownExploited || req.SSVC.Exploitation == scoring.ExploitationActive
	if a.KnownExploited {
		a.SSVC.Exploitation = scoring.ExploitationActive
	}
	if err := a.SSVC.Validate(); err != nil {
		return Vulnerability{}, problem.InvalidField("ssvc", "%v", err)
	}
	a.SSVCPriority = scoring.Deployer(a.SSVC)
	priority := a.SSVCPriority
	if req.PriorityOverride != "" {
		o, err := scoring.ParsePriority(string(req.PriorityOverride))
		if err != nil {
			return Vulnerability{}, problem.InvalidField("priority_override", "%v", err)
		}
		if o.Rank() <= a.SSVCPriority.Rank() {
			return Vulnerability{}, problem.InvalidField("priority_override",
				"an override may only raise the SSVC decision %s", a.SSVCPriority)
		}
		reason, err := text("override_reason", req.OverrideReason, maxReason)
		if err != nil {
			return Vulnerability{}, err
		}
		if reason == "" {
			return Vulnerability{}, problem.InvalidField("override_reason", "an override needs a reason")
		}
		a.Override, a.OverrideReason, priority = o, reason, o
	} else if req.OverrideReason != "" {
		return Vulnerability{}, problem.InvalidField("override_reason", "given without priority_override")
	}
	if err := validCost(req.Cost); err != nil {
		return Vulnerability{}, err
	}
	if req.AwareAt != nil && !a.KnownExploited {
		return Vulnerability{}, problem.InvalidField("aware_at", "only for a known-exploited vulnerability")
	}
	return s.change(ctx, p, ref, func(_ Tx, v *Vulnerability, now time.Time) (string, map[string]any, error) {
		if v.Stage.done() {
			return "", nil, problem.Conflict("vulnerability %s is %s: re-open it before assessing it again", v.VulnID, v.Stage)
		}
		a.AssessedAt = now
		if a.KnownExploited {
			aware := now
			if req.AwareAt != nil {
				aware = clock.Norm(*req.AwareAt)
				if aware.After(now) {
					return "", nil, problem.InvalidField("aware_at", "is in the future")
				}
			}
			switch {
			case v.CRA == nil:
				v.CRA = &CRA{AwareAt: aware}
			case req.AwareAt != nil && !aware.Equal(v.CRA.AwareAt):
				if v.CRA.EarlyWarning.MetAt != nil {
					return "", nil, problem.Conflict("vulnerability %s: the CRA early warning was already submitted, counting from %s",
						v.VulnID, v.CRA.AwareAt.Format(time.RFC3339))
				}
				v.CRA.AwareAt = aware
			}
		}
		details := map[string]any{"cvss": a.CVSS, "ssvc": a.SSVC, "known_exploited": a.KnownExploited,
			"ssvc_priority": a.SSVCPriority, "priority_override": a.Override, "override_reason": a.OverrideReason,
			"cost": a.Cost, "priority_from": v.Priority, "priority": priority}
		if v.CRA != nil {
			details["cra_aware_at"] = v.CRA.AwareAt
		}
		v.Assessment, v.Priority, v.KnownExploited = &a, priority, a.KnownExploited
		return "vulnerability.assess", details, nil
	})
}

func validCost(c *scoring.Cost) error {
	if c == nil {
		return nil
	}
	bad := func(f float64) bool { return math.IsNaN(f) || math.IsInf(f, 0) || f < 0 }
	switch {
	case c.Bytes < 0:
		return problem.InvalidField("cost.bytes", "is negative")
	case bad(c.EnergyMWh):
		return problem.InvalidField("cost.energy_mwh", "must be a non-negative number")
	case c.Downtime < 0:
		return problem.InvalidField("cost.downtime_ns", "is negative")
	case bad(c.BrickRisk) || c.BrickRisk > 1:
		return problem.InvalidField("cost.brick_risk", "must be between 0 and 1")
	}
	return nil
}

// --- risk acceptance -------------------------------------------------------

// AcceptRiskRequest accepts the risk of a vulnerability in remediation
// until ExpiresAt.
type AcceptRiskRequest struct {
	ApproverID    string    `json:"approver_id" doc:"the user who approved: active, of this organization, with a role that may accept risk"`
	Justification string    `json:"justification"`
	ExpiresAt     time.Time `json:"expires_at" doc:"required; at most the policy's max_risk_acceptance (default 365 days) ahead"`
}

// AcceptRisk records a risk acceptance and moves the vulnerability from
// remediation to risk-accepted, which stops its remediation clock. The
// caller must hold risk.accept itself: it may record its own approval or
// that of another eligible approver (a decision taken in a meeting), but
// someone without the permission cannot name an approver on their behalf.
// When the acceptance expires the vulnerability returns to remediation.
func (s *Service) AcceptRisk(ctx context.Context, p access.Principal, ref string, req AcceptRiskRequest) (Vulnerability, error) {
	if err := p.Require(access.RiskAccept); err != nil {
		return Vulnerability{}, err
	}
	just, err := text("justification", req.Justification, maxJustification)
	if err != nil {
		return Vulnerability{}, err
	}
	if just == "" {
		return Vulnerability{}, problem.InvalidField("justification", "is required")
	}
	if req.ApproverID == "" {
		return Vulnerability{}, problem.InvalidField("approver_id", "is required")
	}
	if req.ExpiresAt.IsZero() {
		return Vulnerability{}, problem.InvalidField("expires_at", "is required")
	}
	expires := clock.Norm(req.ExpiresAt)
	return s.change(ctx, p, ref, func(tx Tx, v *Vulnerability, now time.Time) (string, map[string]any, error) {
		if v.Stage != Remediation {
			return "", nil, illegal(v, RiskAccepted)
		}
		if !expires.After(now) {
			return "", nil, problem.InvalidField("expires_at", "is not in the future")
		}
		if limit := now.Add(s.policy.MaxRiskAcceptance.D()); expires.After(limit) {
			return "", nil, problem.InvalidField("expires_at", "may be at most %s ahead (%s)", s.policy.MaxRiskAcceptance, limit.Format(time.RFC3339))
		}
		approver, err := eligible(ctx, tx, v.OrgID, "approver_id", req.ApproverID, access.RiskAccept)
		if err != nil {
			return "", nil, err
		}
		v.RiskAcceptance = &RiskAcceptance{ApproverID: approver.ID, ApproverEmail: approver.Email, Justification: just,
			AcceptedAt: now, AcceptedBy: p.Actor, ExpiresAt: expires}
		meet(&v.SLA.Remediation, now)
		v.Stage, v.StageReason, v.StageChangedAt = RiskAccepted, just, now
		return "vulnerability.risk_accept", map[string]any{"from": Remediation, "to": RiskAccepted,
			"approver_id": approver.ID, "justification": just, "expires_at": expires}, nil
	})
}

// RevokeRiskRequest ends a risk acceptance early.
type RevokeRiskRequest struct {
	Reason string `json:"reason"`
}

// RevokeRiskAcceptance ends the current risk acceptance and returns the
// vulnerability to remediation with a fresh remediation clock.
func (s *Service) RevokeRiskAcceptance(ctx context.Context, p access.Principal, ref string, req RevokeRiskRequest) (Vulnerability, error) {
	if err := p.Require(access.RiskAccept); err != nil {
		return Vulnerability{}, err
	}
	reason, err := text("reason", req.Reason, maxReason)
	if err != nil {
		return Vulnerability{}, err
	}
	if reason == "" {
		return Vulnerability{}, problem.InvalidField("reason", "is required")
	}
	return s.change(ctx, p, ref, func(_ Tx, v *Vulnerability, now time.Time) (string, map[string]any, error) {
		if v.Stage != RiskAccepted || v.RiskAcceptance == nil {
			return "", nil, problem.Conflict("vulnerability %s is %s: there is no risk acceptance to revoke", v.VulnID, v.Stage)
		}
		endRisk(v, now, "revoked", reason)
		return "vulnerability.risk_revoke", map[string]any{"from": RiskAccepted, "to": Remediation, "reason": reason}, nil
	})
}

// endRisk returns a risk-accepted vulnerability to remediation.
func endRisk(v *Vulnerability, now time.Time, why, reason string) {
	v.RiskAcceptance.EndedAt, v.RiskAcceptance.EndReason, v.RiskAcceptance.RevokeReason = &now, why, reason
	v.SLA.Remediation = &Deadline{Start: &now}
	msg := "risk acceptance " + why
	if reason != "" {
		msg += ": " + reason
	}
	v.Stage, v.StageReason, v.StageChangedAt = Remediation, msg, now
}

// --- EU CRA ----------------------------------------------------------------

// CRASubmission records that a CRA report was sent.
type CRASubmission struct {
	Report      string     `json:"report" enum:"early-warning,notification,final-report"`
	SubmittedAt *time.Time `json:"submitted_at,omitempty" doc:"when it was sent; now when absent"`
	Reference   string     `json:"reference,omitempty"`
}

// SubmitCRAReport marks a CRA report as submitted. Reports go in order
// (early warning, notification, final report), and the final report needs
// a released fix, since it describes the corrective measure.
func (s *Service) SubmitCRAReport(ctx context.Context, p access.Principal, ref string, req CRASubmission) (Vulnerability, error) {
	if err := p.Require(access.VulnWrite); err != nil {
		return Vulnerability{}, err
	}
	refText, err := text("reference", req.Reference, maxReference)
	if err != nil {
		return Vulnerability{}, err
	}
	if req.Report != ReportEarlyWarning && req.Report != ReportNotification && req.Report != ReportFinal {
		return Vulnerability{}, problem.InvalidField("report", "unknown report %q; use %s, %s or %s", req.Report,
			ReportEarlyWarning, ReportNotification, ReportFinal)
	}
	return s.change(ctx, p, ref, func(_ Tx, v *Vulnerability, now time.Time) (string, map[string]any, error) {
		c := v.CRA
		if c == nil {
			return "", nil, problem.Conflict("vulnerability %s is not known to be actively exploited: no CRA reporting applies", v.VulnID)
		}
		at := now
		if req.SubmittedAt != nil {
			at = clock.Norm(*req.SubmittedAt)
		}
		if at.After(now) {
			return "", nil, problem.InvalidField("submitted_at", "is in the future")
		}
		if at.Before(c.AwareAt) {
			return "", nil, problem.InvalidField("submitted_at", "is before the organization became aware (%s)", c.AwareAt.Format(time.RFC3339))
		}
		var r, before *CRAReport
		switch req.Report {
		case ReportEarlyWarning:
			r = &c.EarlyWarning
		case ReportNotification:
			r, before = &c.Notification, &c.EarlyWarning
		case ReportFinal:
			r, before = &c.FinalReport, &c.Notification
			if v.FixReleasedAt == nil {
				return "", nil, problem.Conflict("vulnerability %s has no released fix: the final report follows the corrective measure", v.VulnID)
			}
		}
		if r.MetAt != nil {
			return "", nil, problem.Conflict("vulnerability %s: the CRA %s was already submitted at %s", v.VulnID, req.Report, r.MetAt.Format(time.RFC3339))
		}
		if before != nil && (before.MetAt == nil || at.Before(*before.MetAt)) {
			return "", nil, problem.Conflict("vulnerability %s: submit the previous CRA report before the %s", v.VulnID, req.Report)
		}
		r.MetAt, r.SubmittedBy, r.Reference = &at, &p.Actor, refText
		return "vulnerability.cra_submit", map[string]any{"report": req.Report, "submitted_at": at, "reference": refText}, nil
	})
}

// text trims a free-text input and bounds it.
func text(field, s string, limit int) (string, error) {
	s = strings.TrimSpace(s)
	if len(s) > limit {
		return "", problem.InvalidField(field, "is longer than %d bytes", limit)
	}
	if strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 && r != '\n' && r != '\t' || r == 0x7f }) {
		return "", problem.InvalidField(field, "contains control characters")
	}
	return s, nil
}
