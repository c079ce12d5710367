// Package notify tells people and systems what changed: signed webhooks
// (Standard Webhooks) and email, with retries and a delivery log.
//
// Notify writes one delivery row per destination in a single transaction
// (an outbox), so a message survives a crash between being raised and
// being sent. A dispatcher (Run, DeliverDue) claims due rows with a lease,
// sends them outside any transaction, and records every attempt. Delivery
// is at least once: a process that dies after sending but before recording
// the result sends again when the lease expires; receivers deduplicate on
// the webhook-id header (or the email Message-ID).
package notify

import (
	"context"
	"encoding/json"
	"time"

	"github.com/steward-iot/steward/internal/audit"
)

// Message is one notification. Services raise it; subscriptions of the
// organization that match Type receive it, and To names people to email
// directly (an escalation reaches a person, not a subscription).
type Message struct {
	OrgID string
	Type  string // e.g. "advisory.published", "vulnerability.escalated"
	// Subject is a one-line human summary used for email subjects.
	Subject string
	// Data is the JSON-encodable event payload.
	Data any
	To   []string
	// At is when the event happened (the payload's timestamp); zero
	// means when Notify is called.
	At time.Time
}

// Event types. Subscriptions name the ones they want, or "*".
const (
	EventAdvisoryPublished         = "advisory.published"
	EventDeviceExposureChanged     = "device.exposure_changed"
	EventVulnerabilityEscalated    = "vulnerability.escalated"
	EventVulnerabilityStageChanged = "vulnerability.stage_changed"
	EventReportReceived            = "report.received"
	EventReportAckOverdue          = "report.ack_overdue"
	EventSupportEnding             = "support.ending"
	// EventPing is sent by SendTest only; no filter selects it.
	EventPing = "ping"
	// AllEvents in a filter selects every event type, including ones
	// added later.
	AllEvents = "*"
)

// EventTypes lists the event types a subscription may name. A service
// that raises a new type adds it here so that it can be subscribed to by
// name ("*" receives it regardless).
var EventTypes = []string{
	EventAdvisoryPublished, EventDeviceExposureChanged, EventVulnerabilityEscalated,
	EventVulnerabilityStageChanged, EventReportReceived, EventReportAckOverdue, EventSupportEnding,
}

// Subscription kinds.
const (
	KindWebhook = "webhook"
	KindEmail   = "email"
)

// Subscription is a destination that receives the events it names.
type Subscription struct {
	ID          string   `json:"id"`
	OrgID       string   `json:"org_id"`
	Kind        string   `json:"kind" enum:"webhook,email"`
	URL         string   `json:"url,omitempty" doc:"webhook endpoint (kind webhook)"`
	Email       string   `json:"email,omitempty" doc:"recipient address (kind email)"`
	Description string   `json:"description,omitempty"`
	EventTypes  []string `json:"event_types" doc:"event types delivered, or [\"*\"] for all"`
	Enabled     bool     `json:"enabled"`
	// DisabledReason says why Steward disabled it on its own.
	DisabledReason string `json:"disabled_reason,omitempty" doc:"why Steward disabled the subscription, e.g. the endpoint answered 410 Gone"`
	// PreviousSecretUntil is set after a rotation: until then webhooks
	// carry a signature with the old secret too.
	PreviousSecretUntil *time.Time `json:"previous_secret_until,omitempty" doc:"after a secret rotation, webhooks are also signed with the previous secret until this time"`
	CreatedAt           time.Time  `json:"created_at"`
	UpdatedAt           time.Time  `json:"updated_at"`

	// SigningSecret and PreviousSecret sign webhooks. They never leave
	// the server except in the response that creates or rotates them.
	SigningSecret  Secret `json:"-"`
	PreviousSecret Secret `json:"-"`
}

// Target is where the subscription sends: its URL or address.
func (s Subscription) Target() string {
	if s.Kind == KindEmail {
		return s.Email
	}
	return s.URL
}

// Matches reports whether the subscription wants events of type t.
func (s Subscription) Matches(t string) bool {
	for _, want := range s.EventTypes {
		if want == AllEvents || want == t {
			return true
		}
	}
	return false
}

// Delivery states.
const (
	StatusPending   = "pending"   // waiting for its next attempt
	StatusSucceeded = "succeeded" // the destination accepted it
	StatusFailed    = "failed"    // out of attempts, or a permanent error
	StatusCanceled  = "canceled"  // the subscription was disabled before it went out
)

// Delivery is one message on its way to one destination.
type Delivery struct {
	ID             string `json:"id"`
	OrgID          string `json:"org_id"`
	SubscriptionID string `json:"subscription_id,omitempty" doc:"empty for email sent to a named person"`
	// MessageID is the webhook-id header and the email Message-ID: the
	// same on every attempt, so receivers can deduplicate.
	MessageID     string     `json:"message_id" doc:"msg_…; the webhook-id header, the same on every retry"`
	Kind          string     `json:"kind" enum:"webhook,email"`
	Target        string     `json:"target" doc:"URL or email address at the time the message was raised"`
	EventType     string     `json:"event_type"`
	Subject       string     `json:"subject,omitempty"`
	Status        string     `json:"status" enum:"pending,succeeded,failed,canceled"`
	Attempts      int        `json:"attempts"`
	NextAttemptAt *time.Time `json:"next_attempt_at,omitempty" doc:"when a pending delivery is tried next"`
	LastError     string     `json:"last_error,omitempty"`
	CreatedAt     time.Time  `json:"created_at"`
	UpdatedAt     time.Time  `json:"updated_at"`
	// Payload is the exact body sent (and signed).
	Payload []byte `json:"-"`
}

// Attempt is one try at a delivery, as logged.
type Attempt struct {
	ID         string    `json:"id"`
	DeliveryID string    `json:"delivery_id"`
	N          int       `json:"n" doc:"1 for the first attempt"`
	At         time.Time `json:"at"`
	StatusCode int       `json:"status_code,omitempty" doc:"HTTP status, or SMTP reply code; absent when nothing answered"`
	Error      string    `json:"error,omitempty"`
	LatencyUS  int64     `json:"latency_us" doc:"microseconds from sending to the answer"`
	Response   string    `json:"response,omitempty" doc:"start of the response body or SMTP reply"`
}

// DeliveryDetail is a delivery with its payload and attempts.
type DeliveryDetail struct {
	Delivery
	Body json.RawMessage `json:"payload" doc:"the body sent (the email body is rendered from it)"`
	Log  []Attempt       `json:"attempt_log" doc:"every attempt, oldest first"`
}

// DeliveryUpdate is the outcome a dispatcher records for a claimed delivery.
type DeliveryUpdate struct {
	ID            string
	Status        string
	Attempts      int
	NextAttemptAt time.Time
	LastError     string
	UpdatedAt     time.Time
}

// Tx is what notify needs from a store transaction.
type Tx interface {
	AppendAudit(ctx context.Context, r audit.Record) (audit.Event, error)

	InsertSubscription(ctx context.Context, s Subscription) error
	SubscriptionByID(ctx context.Context, orgID, id string) (Subscription, error)
	ListSubscriptions(ctx context.Context, orgID, after string, limit int) ([]Subscription, error)
	// EnabledSubscriptions lists every enabled subscription of an org.
	EnabledSubscriptions(ctx context.Context, orgID string) ([]Subscription, error)
	// UpdateSubscription stores the mutable fields: description, event
	// types, enabled, disabled reason, secrets, updated_at.
	UpdateSubscription(ctx context.Context, s Subscription) error
	// DeleteSubscription removes it with its deliveries and attempts.
	DeleteSubscription(ctx context.Context, orgID, id string) error

	InsertDelivery(ctx context.Context, d Delivery) error
	DeliveryByID(ctx context.Context, orgID, id string) (Delivery, error)
	// ListDeliveries lists a subscription's deliveries newest first:
	// those with an id below before ("" for the first page).
	ListDeliveries(ctx context.Context, orgID, subscriptionID, before string, limit int) ([]Delivery, error)
	// ClaimDeliveries leases up to limit pending deliveries due at now
	// and not leased by anyone, oldest due first, until until, under
	// token. A delivery is never leased to two claimers at once.
	ClaimDeliveries(ctx context.Context, now, until time.Time, token string, limit int) ([]Delivery, error)
	// FinishDelivery records an outcome and releases the lease, if the
	// lease is still token's; it reports whether it was.
	FinishDelivery(ctx context.Context, u DeliveryUpdate, token string) (bool, error)
	InsertAttempt(ctx context.Context, a Attempt) error
	ListAttempts(ctx context.Context, deliveryID string) ([]Attempt, error)
	// PruneDeliveries deletes up to limit finished deliveries last
	// updated before before, and reports how many.
	PruneDeliveries(ctx context.Context, before time.Time, limit int) (int, error)
}

// Store runs functions in read or write transactions.
type Store interface {
	Read(ctx context.Context, fn func(Tx) error) error
	Write(ctx context.Context, fn func(Tx) error) error
}
