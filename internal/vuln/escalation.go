package vuln

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/steward-iot/steward/internal/access"
	"github.com/steward-iot/steward/internal/audit"
	"github.com/steward-iot/steward/internal/clock"
	"github.com/steward-iot/steward/internal/notify"
	"github.com/steward-iot/steward/internal/problem"
	"github.com/steward-iot/steward/internal/vuln/scoring"
)

// Notification types this package raises.
const (
	TypeEscalated   = "vulnerability.escalated"
	TypeRiskExpired = "vulnerability.risk_expired"
)

// EscalationNotice is the Data of a vulnerability.escalated message.
type EscalationNotice struct {
	VulnerabilityID string           `json:"vulnerability_id"`
	VulnID          string           `json:"vuln_id"`
	Summary         string           `json:"summary,omitempty"`
	Stage           Stage            `json:"stage"`
	Priority        scoring.Priority `json:"priority,omitempty"`
	Deadline        string           `json:"deadline"`
	DueAt           time.Time        `json:"due_at"`
	Level           int              `json:"level"`
	UserID          string           `json:"user_id,omitempty" doc:"the person escalated to; empty when nobody on the ladder could be reached"`
}

// RiskExpiredNotice is the Data of a vulnerability.risk_expired message.
type RiskExpiredNotice struct {
	VulnerabilityID string    `json:"vulnerability_id"`
	VulnID          string    `json:"vuln_id"`
	ApproverID      string    `json:"approver_id"`
	ExpiredAt       time.Time `json:"expired_at"`
}

// SweepResult counts what one RunEscalations did.
type SweepResult struct {
	Expired   int `json:"expired" doc:"risk acceptances that expired, returning their vulnerability to remediation"`
	Escalated int `json:"escalated"`
}

// sweepBatch bounds the vulnerabilities one sweep query returns.
const sweepBatch = 100

// RunEscalations does the time-driven work of triage as of now, across
// every organization: it ends expired risk acceptances (back to
// remediation, with a fresh remediation clock), then escalates each
// vulnerability whose watched deadline is breached one level up its
// ladder — owner, deputy, then the escalation chain — and notifies that
// person. An escalation happens at most once per EscalationInterval for
// the same deadline, and a deadline that changes (met, re-planned) starts
// over at level 0.
//
// It is safe to run often and on several replicas at once: candidates come
// from an index on the next-escalation time (never a scan of everything),
// and each one is changed in its own write transaction that locks the row,
// re-checks it and updates it only if its escalation level is unchanged.
// Notifications are sent after their transaction commits, so a rolled-back
// escalation never notifies and the notifier may write to the same
// database; a failed notification is reported in the error, while the
// escalation stays recorded in the audit log.
func (s *Service) RunEscalations(ctx context.Context, now time.Time) (SweepResult, error) {
	now = clock.Norm(now)
	var res SweepResult
	var errs []error
	expired, err := s.sweep(ctx, now, Tx.VulnerabilitiesRiskExpired, s.expireRisk)
	res.Expired = expired
	errs = append(errs, err)
	escalated, err := s.sweep(ctx, now, Tx.VulnerabilitiesToEscalate, s.escalate)
	res.Escalated = escalated
	errs = append(errs, err)
	return res, errors.Join(errs...)
}

// sweep walks the candidates find lists, in keyset batches, and applies
// act to each; act reports whether it changed anything. A failing
// candidate does not stop the others.
func (s *Service) sweep(ctx context.Context, now time.Time,
	find func(Tx, context.Context, time.Time, DueRef, int) ([]DueRef, error),
	act func(context.Context, DueRef, time.Time) (bool, []notify.Message, error)) (int, error) {
	var cursor DueRef
	var done int
	var errs []error
	for {
		var batch []DueRef
		if err := s.store.Read(ctx, func(tx Tx) error {
			var err error
			batch, err = find(tx, ctx, now, cursor, sweepBatch)
			return err
		}); err != nil {
			return done, errors.Join(append(errs, err)...)
		}
		for _, ref := range batch {
			changed, msgs, err := act(ctx, ref, now)
			if err != nil {
				errs = append(errs, fmt.Errorf("vulnerability %s: %w", ref.ID, err))
				continue
			}
			if changed {
				done++
			}
			errs = append(errs, s.send(ctx, msgs))
		}
		if len(batch) < sweepBatch {
			return done, errors.Join(errs...)
		}
		cursor = batch[len(batch)-1]
	}
}

func (s *Service) send(ctx context.Context, msgs []notify.Message) error {
	if s.notifier == nil {
		return nil
	}
	var errs []error
	for _, m := range msgs {
		if err := s.notifier.Notify(ctx, m); err != nil {
			errs = append(errs, fmt.Errorf("notify %s: %w", m.Type, err))
		}
	}
	return errors.Join(errs...)
}

// escalate raises the escalation of one vulnerability by a level if it is
// still due under the row lock.
func (s *Service) escalate(ctx context.Context, ref DueRef, now time.Time) (bool, []notify.Message, error) {
	var msgs []notify.Message
	err := s.store.Write(ctx, func(tx Tx) error {
		msgs = nil
		v, err := tx.LockVulnerability(ctx, ref.OrgID, ref.ID)
		if err != nil {
			return err
		}
		e := v.Escalation
		if e.NextAt == nil || !e.NextAt.Before(now) || e.DueAt == nil {
			return errNotDue // another runner got here first, or it changed
		}
		v.view(now) // names the watched deadline
		deadline := v.Escalation.Deadline
		ladder := v.ladder()
		old := e.Level
		// The next reachable person: someone disabled or stripped of the
		// role since being named is skipped.
		var to *Person
		level := max(len(ladder), 1)
		for i := old; i < len(ladder); i++ {
			u, err := eligible(ctx, tx, v.OrgID, "ladder", ladder[i], access.VulnWrite)
			if err == nil {
				to, level = &u, i+1
				break
			}
			if !problem.Is(err, problem.KindInvalid) {
				return err
			}
		}
		v.Escalation.Level, v.Escalation.EscalatedAt = level, &now
		v.Escalation.NextAt = s.nextEscalation(&v)
		if err := tx.UpdateVulnerabilityTriage(ctx, v, old); err != nil {
			return err
		}
		notice := EscalationNotice{VulnerabilityID: v.ID, VulnID: v.VulnID, Summary: v.Summary, Stage: v.Stage,
			Priority: v.Priority, Deadline: deadline, DueAt: *e.DueAt, Level: level}
		m := notify.Message{OrgID: v.OrgID, Type: TypeEscalated, Data: notice,
			Subject: fmt.Sprintf("%s: %s deadline breached (due %s), escalation level %d",
				v.VulnID, deadline, e.DueAt.Format(time.RFC3339), level)}
		details := map[string]any{"vuln_id": v.VulnID, "deadline": deadline, "due_at": *e.DueAt, "from_level": old, "level": level}
		if to != nil {
			notice.UserID, m.To = to.ID, []string{to.Email}
			m.Data = notice
			details["user_id"], details["email"] = to.ID, to.Email
		}
		if _, err := tx.AppendAudit(ctx, audit.Record{OrgID: v.OrgID, Actor: access.System("escalation"),
			Action: "vulnerability.escalate", TargetType: "vulnerability", TargetID: v.ID, Details: details}); err != nil {
			return err
		}
		msgs = []notify.Message{m}
		return nil
	})
	if errors.Is(err, errNotDue) || problem.Is(err, problem.KindConflict) {
		return false, nil, nil
	}
	return err == nil, msgs, err
}

// errNotDue rolls back a sweep transaction that found nothing to do.
var errNotDue = errors.New("no longer due")

// expireRisk returns a vulnerability whose risk acceptance expired to
// remediation, and tells its owner and the approver.
func (s *Service) expireRisk(ctx context.Context, ref DueRef, now time.Time) (bool, []notify.Message, error) {
	var msgs []notify.Message
	err := s.store.Write(ctx, func(tx Tx) error {
		msgs = nil
		v, err := tx.LockVulnerability(ctx, ref.OrgID, ref.ID)
		if err != nil {
			return err
		}
		ra := v.RiskAcceptance
		if v.Stage != RiskAccepted || ra == nil || ra.ExpiresAt.After(now) {
			return errNotDue
		}
		level := v.Escalation.Level
		endRisk(&v, now, "expired", "")
		v.UpdatedAt = now
		s.plan(&v)
		if err := tx.UpdateVulnerabilityTriage(ctx, v, level); err != nil {
			return err
		}
		if _, err := tx.AppendAudit(ctx, audit.Record{OrgID: v.OrgID, Actor: access.System("risk-expiry"),
			Action: "vulnerability.risk_expire", TargetType: "vulnerability", TargetID: v.ID,
			Details: map[string]any{"vuln_id": v.VulnID, "from": RiskAccepted, "to": Remediation,
				"approver_id": ra.ApproverID, "expires_at": ra.ExpiresAt}}); err != nil {
			return err
		}
		var to []string
		seen := map[string]bool{}
		for _, uid := range []string{v.OwnerID, ra.ApproverID} {
			if uid == "" || seen[uid] {
				continue
			}
			seen[uid] = true
			if u, err := tx.VulnPerson(ctx, v.OrgID, uid); err == nil && !u.Disabled {
				to = append(to, u.Email)
			}
		}
		msgs = []notify.Message{{OrgID: v.OrgID, Type: TypeRiskExpired, To: to,
			Subject: fmt.Sprintf("%s: risk acceptance expired, back to remediation", v.VulnID),
			Data:    RiskExpiredNotice{VulnerabilityID: v.ID, VulnID: v.VulnID, ApproverID: ra.ApproverID, ExpiredAt: ra.ExpiresAt}}}
		return nil
	})
	if errors.Is(err, errNotDue) || problem.Is(err, problem.KindConflict) {
		return false, nil, nil
	}
	return err == nil, msgs, err
}
