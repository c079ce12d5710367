package notify

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/steward-iot/steward/internal/id"
	"github.com/steward-iot/steward/internal/problem"
)

// MaxPayload bounds one message's JSON body. The spec recommends small
// (thin) payloads; this is a guard against a caller sending a whole
// document.
const MaxPayload = 256 << 10

// maxTo bounds the people one message names directly.
const maxTo = 100

// Notify fans m out to every enabled subscription of m.OrgID whose filter
// matches m.Type, and to every address in m.To by email. All deliveries
// are written in one transaction before Notify returns, so a crash can
// delay them but not lose them; the dispatcher sends them. Nothing is
// written when m is invalid.
func (s *Service) Notify(ctx context.Context, m Message) error {
	if m.OrgID == "" {
		return problem.Invalid("notification without an organization")
	}
	if !validType(m.Type) {
		return problem.Invalid("notification type %q is not dotted lowercase words like advisory.published", m.Type)
	}
	if m.Type == EventPing {
		return problem.Invalid("notification type %q is reserved for test deliveries", EventPing)
	}
	m.Subject = oneLine(m.Subject)
	if len(m.To) > maxTo {
		return problem.Invalid("notification names %d recipients; at most %d", len(m.To), maxTo)
	}
	var to []string
	for _, addr := range m.To {
		a, err := validEmail("to", addr)
		if err != nil {
			return err
		}
		if !slices.Contains(to, a) {
			to = append(to, a)
		}
	}
	now := s.clock.Now()
	body, err := payload(m, now)
	if err != nil {
		return err
	}
	if len(to) > 0 && !s.cfg.SMTP.Enabled() {
		s.log.Warn("notification names email recipients but no SMTP relay is configured; not emailing them",
			"type", m.Type, "org", m.OrgID, "recipients", len(to))
		to = nil
	}
	queued := 0
	err = s.store.Write(ctx, func(tx Tx) error {
		queued = 0
		subs, err := tx.EnabledSubscriptions(ctx, m.OrgID)
		if err != nil {
			return err
		}
		var emailed []string
		for _, sub := range subs {
			if !sub.Matches(m.Type) || (sub.Kind == KindEmail && !s.cfg.SMTP.Enabled()) {
				continue
			}
			if sub.Kind == KindEmail {
				if slices.Contains(emailed, sub.Email) {
					continue // two subscriptions of one address get one email
				}
				emailed = append(emailed, sub.Email)
			}
			if err := tx.InsertDelivery(ctx, s.newDelivery(m, body, sub.Kind, sub.Target(), sub.ID, now)); err != nil {
				return err
			}
			queued++
		}
		for _, addr := range to {
			if slices.Contains(emailed, addr) {
				continue // already emailed through a subscription
			}
			if err := tx.InsertDelivery(ctx, s.newDelivery(m, body, KindEmail, addr, "", now)); err != nil {
				return err
			}
			queued++
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("queue %s notification: %w", m.Type, err)
	}
	if queued > 0 {
		s.nudge()
	}
	return nil
}

// nudge wakes Run without blocking; one pending wake-up is enough.
func (s *Service) nudge() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// payload renders the Standard Webhooks body: type, timestamp of the
// event, data. These exact bytes are stored, signed and sent on every
// attempt.
func payload(m Message, now time.Time) ([]byte, error) {
	at := m.At
	if at.IsZero() {
		at = now
	}
	data := m.Data
	if data == nil {
		data = struct{}{}
	}
	b, err := json.Marshal(struct {
		Type      string `json:"type"`
		Timestamp string `json:"timestamp"`
		Data      any    `json:"data"`
	}{m.Type, at.UTC().Format(time.RFC3339Nano), data})
	if err != nil {
		return nil, fmt.Errorf("encode %s notification data: %w", m.Type, err)
	}
	if len(b) > MaxPayload {
		return nil, problem.Invalid("%s notification is %d bytes; at most %d (send identifiers, not documents)", m.Type, len(b), MaxPayload)
	}
	return b, nil
}

func (s *Service) newDelivery(m Message, body []byte, kind, target, subID string, now time.Time) Delivery {
	deliveryID := id.New()
	next := now.Add(s.cfg.Schedule[0])
	return Delivery{ID: deliveryID, OrgID: m.OrgID, SubscriptionID: subID, MessageID: messageID(deliveryID), Kind: kind,
		Target: target, EventType: m.Type, Subject: m.Subject, Status: StatusPending, NextAttemptAt: &next,
		CreatedAt: now, UpdatedAt: now, Payload: body}
}

// messageID derives the msg_ id from the delivery's UUID: unique, free of
// the "." that separates the signed fields, and time-ordered.
func messageID(deliveryID string) string {
	u := uuid.MustParse(deliveryID)
	return "msg_" + hex.EncodeToString(u[:])
}

// validType accepts dotted lowercase identifiers, as the spec recommends.
func validType(t string) bool {
	if t == "" || len(t) > 100 {
		return false
	}
	for part := range strings.SplitSeq(t, ".") {
		if part == "" {
			return false
		}
		for _, c := range part {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
				return false
			}
		}
	}
	return true
}

// oneLine keeps a subject on one line and within the length a mail header
// can carry comfortably.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 200 {
		s = truncateUTF8(s, 200)
	}
	return s
}
