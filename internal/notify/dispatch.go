package notify

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/steward-iot/steward/internal/access"
	"github.com/steward-iot/steward/internal/id"
	"github.com/steward-iot/steward/internal/problem"
)

// maxRetryAfter caps how far a receiver's Retry-After can push an attempt.
const maxRetryAfter = 24 * time.Hour

// outcome is what one attempt came to.
type outcome struct {
	ok         bool
	statusCode int    // HTTP status or SMTP reply code, 0 if nothing answered
	err        string // why it failed, for the log
	response   string // capped start of the answer
	// permanent ends the delivery now: retrying cannot help.
	permanent bool
	// gone is a webhook's 410: the receiver wants no more messages.
	gone       bool
	retryAfter time.Duration
}

// Run delivers due notifications until ctx ends: at once when Notify
// queues something, else every Config.PollInterval. It also prunes the
// delivery log hourly. Every replica may run it; leases keep them from
// sending one delivery twice at the same time. In-flight attempts finish
// (within Config.Timeout) and are recorded before Run returns.
func (s *Service) Run(ctx context.Context) {
	poll := time.NewTicker(s.cfg.PollInterval)
	defer poll.Stop()
	prune := time.NewTicker(time.Hour)
	defer prune.Stop()
	s.pruneAndLog(ctx)
	for {
		n, err := s.DeliverDue(ctx)
		if err != nil && ctx.Err() == nil {
			s.log.Warn("delivering notifications failed; will retry", "err", err)
		}
		if ctx.Err() != nil {
			return
		}
		if err == nil && n == s.cfg.BatchSize {
			continue // a full batch: more may be due
		}
		select {
		case <-ctx.Done():
			return
		case <-poll.C:
		case <-s.wake:
		case <-prune.C:
			s.pruneAndLog(ctx)
		}
	}
}

func (s *Service) pruneAndLog(ctx context.Context) {
	if n, err := s.Prune(ctx); err != nil && ctx.Err() == nil {
		s.log.Warn("pruning the notification delivery log failed", "err", err)
	} else if n > 0 {
		s.log.Info("pruned notification delivery log", "deliveries", n)
	}
}

// Prune deletes finished deliveries (and their attempts) older than
// Config.Retention and reports how many.
func (s *Service) Prune(ctx context.Context) (int, error) {
	const batch = 1000
	before := s.clock.Now().Add(-s.cfg.Retention)
	total := 0
	for {
		var n int
		err := s.store.Write(ctx, func(tx Tx) error {
			var err error
			n, err = tx.PruneDeliveries(ctx, before, batch)
			return err
		})
		total += n
		if err != nil || n < batch {
			return total, err
		}
	}
}

// lease is how long a claim of n deliveries is held: long enough for
// every one of them to be sent by the workers with a full timeout, plus
// a margin for recording the results.
func (s *Service) lease(n int) time.Duration {
	rounds := (n + s.cfg.Workers - 1) / s.cfg.Workers
	return time.Duration(rounds)*s.cfg.Timeout*2 + time.Minute
}

// DeliverDue claims up to Config.BatchSize due deliveries, sends them
// and records the attempts; it returns how many it attempted. Sends run
// outside any transaction, and survive ctx's cancellation so that an
// attempt made is an attempt recorded.
func (s *Service) DeliverDue(ctx context.Context) (int, error) {
	now := s.clock.Now()
	token := id.New()
	var claimed []Delivery
	err := s.store.Write(ctx, func(tx Tx) error {
		var err error
		claimed, err = tx.ClaimDeliveries(ctx, now, now.Add(s.lease(s.cfg.BatchSize)), token, s.cfg.BatchSize)
		return err
	})
	if err != nil || len(claimed) == 0 {
		return 0, err
	}
	ctx = context.WithoutCancel(ctx)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	sem := make(chan struct{}, s.cfg.Workers)
	for _, d := range claimed {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := s.deliver(ctx, d, token); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("delivery %s: %w", d.ID, err))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return len(claimed), errors.Join(errs...)
}

// deliver makes one attempt at a claimed delivery and records it.
func (s *Service) deliver(ctx context.Context, d Delivery, token string) error {
	var sub Subscription
	if d.SubscriptionID != "" {
		err := s.store.Read(ctx, func(tx Tx) error {
			var err error
			sub, err = tx.SubscriptionByID(ctx, d.OrgID, d.SubscriptionID)
			return err
		})
		if problem.Is(err, problem.KindNotFound) {
			return nil // deleted since: its deliveries went with it
		}
		if err != nil {
			return err
		}
		if !sub.Enabled {
			return s.finish(ctx, d, token, nil, DeliveryUpdate{Status: StatusCanceled, Attempts: d.Attempts,
				LastError: "the subscription was disabled before this was sent"}, false)
		}
	}
	n := d.Attempts + 1
	at := s.clock.Now()
	start := time.Now() // latency is real time, whatever the service clock says
	var o outcome
	switch d.Kind {
	case KindWebhook:
		o = s.sendWebhook(ctx, d, sub, at)
	case KindEmail:
		o = s.sendEmail(ctx, d, at)
	default:
		o = outcome{err: "unknown delivery kind " + d.Kind, permanent: true}
	}
	a := Attempt{ID: id.New(), DeliveryID: d.ID, N: n, At: at, StatusCode: o.statusCode, Error: sanitize(o.err, 1000),
		LatencyUS: time.Since(start).Microseconds(), Response: sanitize(o.response, maxSnippet)}
	u := DeliveryUpdate{Attempts: n, LastError: a.Error}
	switch {
	case o.ok:
		u.Status, u.LastError = StatusSucceeded, ""
	case o.permanent || o.gone || n >= s.cfg.MaxAttempts:
		u.Status = StatusFailed
		if !o.permanent && !o.gone {
			u.LastError = fmt.Sprintf("gave up after %d attempts: %s", n, a.Error)
		}
	default:
		u.Status = StatusPending
		u.NextAttemptAt = s.clock.Now().Add(max(s.backoff(n), min(o.retryAfter, maxRetryAfter)))
	}
	return s.finish(ctx, d, token, &a, u, o.gone)
}

// finish records an attempt (if any) and the delivery's new state in one
// transaction; a 410 also disables the subscription there, with an audit
// event by Steward itself.
func (s *Service) finish(ctx context.Context, d Delivery, token string, a *Attempt, u DeliveryUpdate, gone bool) error {
	u.ID, u.UpdatedAt = d.ID, s.clock.Now()
	var lost bool
	err := s.store.Write(ctx, func(tx Tx) error {
		if a != nil {
			if err := tx.InsertAttempt(ctx, *a); err != nil {
				return err
			}
		}
		ok, err := tx.FinishDelivery(ctx, u, token)
		if err != nil {
			return err
		}
		lost = !ok
		if !gone || d.SubscriptionID == "" {
			return nil
		}
		sub, err := tx.SubscriptionByID(ctx, d.OrgID, d.SubscriptionID)
		if err != nil || !sub.Enabled {
			return err
		}
		sub.Enabled, sub.UpdatedAt = false, u.UpdatedAt
		sub.DisabledReason = "the endpoint answered 410 Gone: it wants no more webhooks"
		if err := tx.UpdateSubscription(ctx, sub); err != nil {
			return err
		}
		return s.audit(ctx, tx, access.System("notify"), "subscription.disable", sub,
			map[string]any{"reason": sub.DisabledReason, "message_id": d.MessageID})
	})
	if problem.Is(err, problem.KindNotFound) {
		return nil // the subscription was deleted while we sent
	}
	if err == nil && lost {
		s.log.Warn("notification lease expired before its attempt was recorded; another dispatcher may resend it",
			"delivery", d.ID, "message_id", d.MessageID)
	}
	return err
}

// backoff is the delay after attempt n (1-based) failed: the schedule's
// next entry, or its last, with ±10 % jitter.
func (s *Service) backoff(n int) time.Duration {
	d := s.cfg.Schedule[min(n, len(s.cfg.Schedule)-1)]
	if d <= 0 {
		return 0
	}
	jitter := time.Duration((rand.Float64()*0.2 - 0.1) * float64(d))
	return d + jitter
}

// maxSnippet bounds the stored start of a response.
const maxSnippet = 1024

// sanitize makes s storable and readable: valid UTF-8, no NUL (which
// PostgreSQL TEXT refuses), at most n bytes.
func sanitize(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.ReplaceAll(s, "\x00", "")
	return truncateUTF8(s, n)
}

// truncateUTF8 cuts s to at most n bytes without splitting a character.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
