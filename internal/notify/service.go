package notify

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"net/mail"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/steward-iot/steward/internal/access"
	"github.com/steward-iot/steward/internal/audit"
	"github.com/steward-iot/steward/internal/clock"
	"github.com/steward-iot/steward/internal/id"
	"github.com/steward-iot/steward/internal/paging"
	"github.com/steward-iot/steward/internal/problem"
)

// Service manages subscriptions, raises notifications and delivers them.
type Service struct {
	store  Store
	clock  clock.Clock
	cfg    Config
	log    *slog.Logger
	client *http.Client
	// wake nudges Run when Notify has queued something due now.
	wake chan struct{}
}

// NewService returns a notification service; it fails on an invalid
// config.
func NewService(s Store, c clock.Clock, cfg Config, log *slog.Logger) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if c == nil {
		c = clock.Real
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.withDefaults()
	svc := &Service{store: s, clock: c, cfg: cfg, log: log, wake: make(chan struct{}, 1)}
	svc.client = svc.newHTTPClient()
	return svc, nil
}

// newHTTPClient builds the webhook client: no proxy (a proxy would dial
// for us, past the address check), no redirects (the spec treats 3xx as a
// failure; following one could lead anywhere), and the dial-time guard.
// Each request's context carries the attempt timeout.
func (s *Service) newHTTPClient() *http.Client {
	d := &net.Dialer{Timeout: s.cfg.Timeout, KeepAlive: 30 * time.Second}
	if !s.cfg.AllowPrivateNetworks {
		d.Control = dialControl
	}
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         d.DialContext,
		TLSClientConfig:     &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: s.cfg.RootCAs},
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   true,
	}
	return &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// CreateSubscriptionRequest creates a subscription.
type CreateSubscriptionRequest struct {
	Kind        string   `json:"kind" enum:"webhook,email"`
	URL         string   `json:"url,omitempty" doc:"https endpoint, for kind webhook"`
	Email       string   `json:"email,omitempty" doc:"recipient, for kind email"`
	EventTypes  []string `json:"event_types" doc:"event types to deliver, or [\"*\"] for all"`
	Description string   `json:"description,omitempty"`
	Enabled     *bool    `json:"enabled,omitempty" doc:"default true"`
}

// CreatedSubscription is a subscription with its signing secret, which is
// shown only in the response that creates or rotates it.
type CreatedSubscription struct {
	Subscription
	Secret string `json:"secret,omitempty" doc:"webhook signing secret (whsec_…, Standard Webhooks); shown only here"`
}

// UpdateSubscriptionRequest changes a subscription; absent fields stay.
type UpdateSubscriptionRequest struct {
	Enabled     *bool    `json:"enabled,omitempty"`
	EventTypes  []string `json:"event_types,omitempty"`
	Description *string  `json:"description,omitempty"`
}

const maxDescription = 500

// CreateSubscription adds a webhook or email subscription.
func (s *Service) CreateSubscription(ctx context.Context, p access.Principal, req CreateSubscriptionRequest) (CreatedSubscription, error) {
	if err := p.Require(access.SubscriptionWrite); err != nil {
		return CreatedSubscription{}, err
	}
	types, err := validEventTypes(req.EventTypes)
	if err != nil {
		return CreatedSubscription{}, err
	}
	if err := validDescription(req.Description); err != nil {
		return CreatedSubscription{}, err
	}
	now := s.clock.Now()
	sub := Subscription{ID: id.New(), OrgID: p.OrgID, Kind: req.Kind, Description: req.Description, EventTypes: types,
		Enabled: req.Enabled == nil || *req.Enabled, CreatedAt: now, UpdatedAt: now}
	var secret string
	switch req.Kind {
	case KindWebhook:
		if req.Email != "" {
			return CreatedSubscription{}, problem.InvalidField("email", "a webhook subscription has a url, not an email")
		}
		if sub.URL, err = s.checkWebhookURL(ctx, req.URL); err != nil {
			return CreatedSubscription{}, err
		}
		secret = GenerateSecret()
		sub.SigningSecret = Secret(secret)
	case KindEmail:
		if req.URL != "" {
			return CreatedSubscription{}, problem.InvalidField("url", "an email subscription has an email, not a url")
		}
		if !s.cfg.SMTP.Enabled() {
			return CreatedSubscription{}, problem.InvalidField("kind", "this server has no SMTP relay configured, so it cannot send email")
		}
		if sub.Email, err = validEmail("email", req.Email); err != nil {
			return CreatedSubscription{}, err
		}
	default:
		return CreatedSubscription{}, problem.InvalidField("kind", "%q is not a subscription kind; use webhook or email", req.Kind)
	}
	err = s.store.Write(ctx, func(tx Tx) error {
		if err := tx.InsertSubscription(ctx, sub); err != nil {
			return err
		}
		return s.audit(ctx, tx, p.Actor, "subscription.create", sub, nil)
	})
	if err != nil {
		return CreatedSubscription{}, err
	}
	return CreatedSubscription{Subscription: sub, Secret: secret}, nil
}

// ListSubscriptions lists the organization's subscriptions.
func (s *Service) ListSubscriptions(ctx context.Context, p access.Principal, after string, limit int) ([]Subscription, string, error) {
	if err := p.Require(access.SubscriptionRead); err != nil {
		return nil, "", err
	}
	return paging.List(ctx, s.store.Read, limit, func(tx Tx, limit int) ([]Subscription, error) {
		return tx.ListSubscriptions(ctx, p.OrgID, after, limit)
	}, func(sub Subscription) string { return sub.ID })
}

// GetSubscription returns one subscription.
func (s *Service) GetSubscription(ctx context.Context, p access.Principal, subID string) (Subscription, error) {
	if err := p.Require(access.SubscriptionRead); err != nil {
		return Subscription{}, err
	}
	var sub Subscription
	err := s.store.Read(ctx, func(tx Tx) error {
		var err error
		sub, err = subscriptionByID(ctx, tx, p.OrgID, subID)
		return err
	})
	return sub, err
}

// UpdateSubscription enables or disables a subscription, or changes its
// event filter or description. Re-enabling clears the reason Steward gave
// for disabling it.
func (s *Service) UpdateSubscription(ctx context.Context, p access.Principal, subID string, req UpdateSubscriptionRequest) (Subscription, error) {
	if err := p.Require(access.SubscriptionWrite); err != nil {
		return Subscription{}, err
	}
	if req.Enabled == nil && req.EventTypes == nil && req.Description == nil {
		return Subscription{}, problem.Invalid("nothing to change: give enabled, event_types or description")
	}
	var types []string
	if req.EventTypes != nil {
		var err error
		if types, err = validEventTypes(req.EventTypes); err != nil {
			return Subscription{}, err
		}
	}
	if req.Description != nil {
		if err := validDescription(*req.Description); err != nil {
			return Subscription{}, err
		}
	}
	var sub Subscription
	err := s.store.Write(ctx, func(tx Tx) error {
		var err error
		if sub, err = subscriptionByID(ctx, tx, p.OrgID, subID); err != nil {
			return err
		}
		changes := map[string]any{}
		if req.Enabled != nil && *req.Enabled != sub.Enabled {
			sub.Enabled = *req.Enabled
			changes["enabled"] = sub.Enabled
			if sub.Enabled {
				sub.DisabledReason = ""
			}
		}
		if types != nil && !slices.Equal(types, sub.EventTypes) {
			sub.EventTypes = types
			changes["event_types"] = types
		}
		if req.Description != nil && *req.Description != sub.Description {
			sub.Description = *req.Description
			changes["description"] = sub.Description
		}
		if len(changes) == 0 {
			return nil // nothing changed: no write, no audit event
		}
		sub.UpdatedAt = s.clock.Now()
		if err := tx.UpdateSubscription(ctx, sub); err != nil {
			return err
		}
		return s.audit(ctx, tx, p.Actor, "subscription.update", sub, changes)
	})
	return sub, err
}

// DeleteSubscription removes a subscription with its delivery log;
// pending deliveries are dropped.
func (s *Service) DeleteSubscription(ctx context.Context, p access.Principal, subID string) error {
	if err := p.Require(access.SubscriptionWrite); err != nil {
		return err
	}
	return s.store.Write(ctx, func(tx Tx) error {
		sub, err := subscriptionByID(ctx, tx, p.OrgID, subID)
		if err != nil {
			return err
		}
		if err := tx.DeleteSubscription(ctx, p.OrgID, sub.ID); err != nil {
			return err
		}
		return s.audit(ctx, tx, p.Actor, "subscription.delete", sub, nil)
	})
}

// RotateSecret gives a webhook subscription a new signing secret and
// returns it (once). The previous secret keeps signing alongside it for
// Config.RotationOverlap, so receivers can switch without a gap.
func (s *Service) RotateSecret(ctx context.Context, p access.Principal, subID string) (CreatedSubscription, error) {
	if err := p.Require(access.SubscriptionWrite); err != nil {
		return CreatedSubscription{}, err
	}
	secret := GenerateSecret()
	var sub Subscription
	err := s.store.Write(ctx, func(tx Tx) error {
		var err error
		if sub, err = subscriptionByID(ctx, tx, p.OrgID, subID); err != nil {
			return err
		}
		if sub.Kind != KindWebhook {
			return problem.Conflict("subscription %s is an email subscription and has no signing secret", sub.ID)
		}
		now := s.clock.Now()
		sub.PreviousSecret, sub.PreviousSecretUntil = "", nil
		if s.cfg.RotationOverlap > 0 {
			until := now.Add(s.cfg.RotationOverlap)
			sub.PreviousSecret, sub.PreviousSecretUntil = sub.SigningSecret, &until
		}
		sub.SigningSecret, sub.UpdatedAt = Secret(secret), now
		if err := tx.UpdateSubscription(ctx, sub); err != nil {
			return err
		}
		var details map[string]any
		if sub.PreviousSecretUntil != nil {
			details = map[string]any{"previous_secret_until": sub.PreviousSecretUntil}
		}
		return s.audit(ctx, tx, p.Actor, "subscription.rotate_secret", sub, details)
	})
	if err != nil {
		return CreatedSubscription{}, err
	}
	return CreatedSubscription{Subscription: sub, Secret: secret}, nil
}

// SendTest queues a "ping" event to one enabled subscription, whatever
// its filter, and returns the delivery so its outcome can be followed in
// the delivery log.
func (s *Service) SendTest(ctx context.Context, p access.Principal, subID string) (Delivery, error) {
	if err := p.Require(access.SubscriptionWrite); err != nil {
		return Delivery{}, err
	}
	var d Delivery
	err := s.store.Write(ctx, func(tx Tx) error {
		sub, err := subscriptionByID(ctx, tx, p.OrgID, subID)
		if err != nil {
			return err
		}
		if !sub.Enabled {
			return problem.Conflict("subscription %s is disabled; enable it before testing it", sub.ID)
		}
		now := s.clock.Now()
		m := Message{OrgID: p.OrgID, Type: EventPing, Subject: "Steward test notification", At: now,
			Data: map[string]any{"subscription_id": sub.ID, "message": "This is a test notification from Steward."}}
		body, err := payload(m, now)
		if err != nil {
			return err
		}
		d = s.newDelivery(m, body, sub.Kind, sub.Target(), sub.ID, now)
		if err := tx.InsertDelivery(ctx, d); err != nil {
			return err
		}
		return s.audit(ctx, tx, p.Actor, "subscription.test", sub, map[string]any{"message_id": d.MessageID})
	})
	if err == nil {
		s.nudge()
	}
	return d, err
}

// ListDeliveries lists a subscription's delivery log, newest first; the
// cursor is the id of the last delivery of the previous page.
func (s *Service) ListDeliveries(ctx context.Context, p access.Principal, subID, after string, limit int) ([]Delivery, string, error) {
	if err := p.Require(access.SubscriptionRead); err != nil {
		return nil, "", err
	}
	return paging.List(ctx, s.store.Read, limit, func(tx Tx, limit int) ([]Delivery, error) {
		if _, err := subscriptionByID(ctx, tx, p.OrgID, subID); err != nil {
			return nil, err
		}
		return tx.ListDeliveries(ctx, p.OrgID, subID, after, limit)
	}, func(d Delivery) string { return d.ID })
}

// GetDelivery returns one delivery of a subscription with its payload and
// every attempt.
func (s *Service) GetDelivery(ctx context.Context, p access.Principal, subID, deliveryID string) (DeliveryDetail, error) {
	if err := p.Require(access.SubscriptionRead); err != nil {
		return DeliveryDetail{}, err
	}
	var out DeliveryDetail
	err := s.store.Read(ctx, func(tx Tx) error {
		if !id.Valid(deliveryID) {
			return problem.NotFound("delivery %s not found", deliveryID)
		}
		d, err := tx.DeliveryByID(ctx, p.OrgID, deliveryID)
		if err != nil {
			return err
		}
		if d.SubscriptionID != subID {
			return problem.NotFound("delivery %s not found", deliveryID)
		}
		log, err := tx.ListAttempts(ctx, d.ID)
		if err != nil {
			return err
		}
		if log == nil {
			log = []Attempt{}
		}
		out = DeliveryDetail{Delivery: d, Body: d.Payload, Log: log}
		return nil
	})
	return out, err
}

func subscriptionByID(ctx context.Context, tx Tx, orgID, subID string) (Subscription, error) {
	if !id.Valid(subID) {
		return Subscription{}, problem.NotFound("subscription %s not found", subID)
	}
	return tx.SubscriptionByID(ctx, orgID, subID)
}

// audit records a change to sub. Details name the destination without
// secrets: a webhook URL loses its query, which may carry a token.
func (s *Service) audit(ctx context.Context, tx Tx, actor access.Actor, action string, sub Subscription, extra map[string]any) error {
	details := map[string]any{"kind": sub.Kind, "event_types": sub.EventTypes, "enabled": sub.Enabled}
	if sub.Kind == KindWebhook {
		details["url"] = redactURL(sub.URL)
	} else {
		details["email"] = sub.Email
	}
	for k, v := range extra {
		details[k] = v
	}
	_, err := tx.AppendAudit(ctx, audit.Record{OrgID: sub.OrgID, Actor: actor, Action: action,
		TargetType: "subscription", TargetID: sub.ID, Details: details})
	return err
}

func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	if u.RawQuery != "" {
		u.RawQuery = "redacted"
	}
	u.User = nil
	return u.String()
}

func validEventTypes(in []string) ([]string, error) {
	const field = "event_types"
	if len(in) == 0 {
		return nil, problem.InvalidField(field, "name at least one event type, or \"*\" for all; known types: %s", strings.Join(EventTypes, ", "))
	}
	out := make([]string, 0, len(in))
	for _, t := range in {
		if t == AllEvents {
			if len(in) != 1 {
				return nil, problem.InvalidField(field, "\"*\" selects every type and cannot be combined with others")
			}
			return []string{AllEvents}, nil
		}
		if !slices.Contains(EventTypes, t) {
			return nil, problem.InvalidField(field, "unknown event type %q; known types: %s", t, strings.Join(EventTypes, ", "))
		}
		out = append(out, t)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

func validDescription(d string) error {
	if len(d) > maxDescription {
		return problem.InvalidField("description", "longer than %d bytes", maxDescription)
	}
	if strings.ContainsAny(d, "\r\n\x00") {
		return problem.InvalidField("description", "must be one line")
	}
	return nil
}

// validEmail accepts a bare address (no display name), as users give it.
func validEmail(field, s string) (string, error) {
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || len(s) > 254 || !strings.Contains(s, "@") {
		return "", problem.InvalidField(field, "%q is not a plain email address like ada@example.com", s)
	}
	return strings.ToLower(s), nil
}
