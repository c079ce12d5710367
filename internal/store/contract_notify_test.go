package store_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/steward-iot/steward/internal/clock"
	"github.com/steward-iot/steward/internal/id"
	"github.com/steward-iot/steward/internal/notify"
	"github.com/steward-iot/steward/internal/problem"
	"github.com/steward-iot/steward/internal/store"
	"github.com/steward-iot/steward/internal/store/storetest"
	"github.com/steward-iot/steward/internal/tenancy"
)

func TestContractNotify(t *testing.T) {
	tests := []struct {
		name string
		fn   func(t *testing.T, db *store.DB)
	}{
		{"Subscriptions", testNotifySubscriptions},
		{"Deliveries", testNotifyDeliveries},
		{"Claims", testNotifyClaims},
		{"ConcurrentClaims", testNotifyConcurrentClaims},
		{"Attempts", testNotifyAttempts},
		{"Prune", testNotifyPrune},
	}
	for _, d := range storetest.Dialects(t) {
		t.Run(string(d), func(t *testing.T) {
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					tc.fn(t, storetest.New(t, d, clock.NewFake(t0)))
				})
			}
		})
	}
}

func notifyNewSubscription(org tenancy.Org, kind string, enabled bool) notify.Subscription {
	s := notify.Subscription{ID: id.New(), OrgID: org.ID, Kind: kind, EventTypes: []string{notify.EventAdvisoryPublished},
		Enabled: enabled, CreatedAt: clock.Norm(t0), UpdatedAt: clock.Norm(t0)}
	if kind == notify.KindEmail {
		s.Email = "ada@example.com"
	} else {
		s.URL, s.SigningSecret = "https://hooks.example.com/steward", notify.Secret(notify.GenerateSecret())
	}
	return s
}

func notifyInsertSubscription(t *testing.T, db *store.DB, s notify.Subscription) notify.Subscription {
	t.Helper()
	write(t, db, func(tx *store.Tx) error { return tx.InsertSubscription(context.Background(), s) })
	return s
}

func notifyNewDelivery(org tenancy.Org, subID string, due time.Time) notify.Delivery {
	did := id.New()
	due = clock.Norm(due)
	return notify.Delivery{ID: did, OrgID: org.ID, SubscriptionID: subID, MessageID: "msg_" + did, Kind: notify.KindWebhook,
		Target: "https://hooks.example.com/steward", EventType: notify.EventAdvisoryPublished, Subject: "Advisory published",
		Status: notify.StatusPending, NextAttemptAt: &due, CreatedAt: clock.Norm(t0), UpdatedAt: clock.Norm(t0),
		Payload: []byte(`{"type":"advisory.published","timestamp":"2026-11-26T08:00:00Z","data":{"ü":"<&>"}}`)}
}

func notifyInsertDelivery(t *testing.T, db *store.DB, d notify.Delivery) notify.Delivery {
	t.Helper()
	write(t, db, func(tx *store.Tx) error { return tx.InsertDelivery(context.Background(), d) })
	return d
}

func testNotifySubscriptions(t *testing.T, db *store.DB) {
	ctx := context.Background()
	var a, b tenancy.Org
	write(t, db, func(tx *store.Tx) error {
		a, b = newOrg(t, tx, "a"), newOrg(t, tx, "b")
		return nil
	})
	hook := notifyNewSubscription(a, notify.KindWebhook, true)
	until := clock.Norm(t0.Add(24 * time.Hour))
	hook.PreviousSecret, hook.PreviousSecretUntil, hook.Description = notify.Secret(notify.GenerateSecret()), &until, "SIEM"
	notifyInsertSubscription(t, db, hook)
	mail := notifyInsertSubscription(t, db, notifyNewSubscription(a, notify.KindEmail, false))
	notifyInsertSubscription(t, db, notifyNewSubscription(b, notify.KindWebhook, true))
	err := db.Write(ctx, func(tx *store.Tx) error { return tx.InsertSubscription(ctx, hook) })
	wantKind(t, err, problem.KindConflict, "duplicate subscription id")

	read(t, db, func(tx *store.Tx) error {
		got, err := tx.SubscriptionByID(ctx, a.ID, hook.ID)
		if err != nil || got.URL != hook.URL || got.Email != "" || got.SigningSecret != hook.SigningSecret ||
			got.PreviousSecret != hook.PreviousSecret || !got.PreviousSecretUntil.Equal(until) || !got.Enabled ||
			got.Description != "SIEM" || !slices.Equal(got.EventTypes, hook.EventTypes) || !got.CreatedAt.Equal(hook.CreatedAt) {
			t.Fatalf("webhook read back: %+v %v", got, err)
		}
		got, err = tx.SubscriptionByID(ctx, a.ID, mail.ID)
		if err != nil || got.Email != "ada@example.com" || got.URL != "" || got.Enabled || got.SigningSecret != "" || got.PreviousSecretUntil != nil {
			t.Fatalf("email read back: %+v %v", got, err)
		}
		_, err = tx.SubscriptionByID(ctx, b.ID, hook.ID)
		wantKind(t, err, problem.KindNotFound, "subscription through another org")
		all, err := tx.ListSubscriptions(ctx, a.ID, "", 10)
		if err != nil || len(all) != 2 || all[0].ID > all[1].ID {
			t.Fatalf("ListSubscriptions: %v %v", all, err)
		}
		rest, err := tx.ListSubscriptions(ctx, a.ID, all[0].ID, 10)
		if err != nil || len(rest) != 1 || rest[0].ID != all[1].ID {
			t.Fatalf("ListSubscriptions after: %v %v", rest, err)
		}
		enabled, err := tx.EnabledSubscriptions(ctx, a.ID)
		if err != nil || len(enabled) != 1 || enabled[0].ID != hook.ID {
			t.Fatalf("EnabledSubscriptions: %v %v", enabled, err)
		}
		return nil
	})

	// Update writes every mutable field; the kind and target stay.
	upd := hook
	upd.Enabled, upd.DisabledReason, upd.Description = false, "410", "gone"
	upd.EventTypes = []string{notify.AllEvents}
	upd.SigningSecret, upd.PreviousSecret, upd.PreviousSecretUntil = notify.Secret(notify.GenerateSecret()), "", nil
	upd.UpdatedAt = clock.Norm(t0.Add(time.Hour))
	upd.URL = "https://elsewhere.example.com/"
	write(t, db, func(tx *store.Tx) error { return tx.UpdateSubscription(ctx, upd) })
	read(t, db, func(tx *store.Tx) error {
		got, err := tx.SubscriptionByID(ctx, a.ID, hook.ID)
		if err != nil || got.Enabled || got.DisabledReason != "410" || got.Description != "gone" || got.EventTypes[0] != "*" ||
			got.SigningSecret != upd.SigningSecret || got.PreviousSecret != "" || got.PreviousSecretUntil != nil ||
			!got.UpdatedAt.Equal(upd.UpdatedAt) || got.URL != hook.URL {
			t.Fatalf("after update: %+v %v", got, err)
		}
		return nil
	})
	missing := upd
	missing.ID = id.New()
	err = db.Write(ctx, func(tx *store.Tx) error { return tx.UpdateSubscription(ctx, missing) })
	wantKind(t, err, problem.KindNotFound, "updating a missing subscription")
	wrongOrg := upd
	wrongOrg.OrgID = b.ID
	err = db.Write(ctx, func(tx *store.Tx) error { return tx.UpdateSubscription(ctx, wrongOrg) })
	wantKind(t, err, problem.KindNotFound, "updating through another org")

	// Delete takes the deliveries and attempts with it, and nothing else.
	d1 := notifyInsertDelivery(t, db, notifyNewDelivery(a, hook.ID, t0))
	d2 := notifyInsertDelivery(t, db, notifyNewDelivery(a, mail.ID, t0))
	write(t, db, func(tx *store.Tx) error {
		return tx.InsertAttempt(ctx, notify.Attempt{ID: id.New(), DeliveryID: d1.ID, N: 1, At: clock.Norm(t0), StatusCode: 500})
	})
	err = db.Write(ctx, func(tx *store.Tx) error { return tx.DeleteSubscription(ctx, b.ID, hook.ID) })
	wantKind(t, err, problem.KindNotFound, "deleting through another org")
	write(t, db, func(tx *store.Tx) error { return tx.DeleteSubscription(ctx, a.ID, hook.ID) })
	read(t, db, func(tx *store.Tx) error {
		_, err := tx.SubscriptionByID(ctx, a.ID, hook.ID)
		wantKind(t, err, problem.KindNotFound, "deleted subscription")
		_, err = tx.DeliveryByID(ctx, a.ID, d1.ID)
		wantKind(t, err, problem.KindNotFound, "delivery of a deleted subscription")
		if as, err := tx.ListAttempts(ctx, d1.ID); err != nil || len(as) != 0 {
			t.Fatalf("attempts of a deleted subscription: %v %v", as, err)
		}
		if _, err := tx.DeliveryByID(ctx, a.ID, d2.ID); err != nil {
			t.Fatalf("another subscription's delivery went too: %v", err)
		}
		return nil
	})
	err = db.Write(ctx, func(tx *store.Tx) error { return tx.DeleteSubscription(ctx, a.ID, hook.ID) })
	wantKind(t, err, problem.KindNotFound, "deleting twice")
}

func testNotifyDeliveries(t *testing.T, db *store.DB) {
	ctx := context.Background()
	var a, b tenancy.Org
	write(t, db, func(tx *store.Tx) error {
		a, b = newOrg(t, tx, "a"), newOrg(t, tx, "b")
		return nil
	})
	sub := notifyInsertSubscription(t, db, notifyNewSubscription(a, notify.KindWebhook, true))
	other := notifyInsertSubscription(t, db, notifyNewSubscription(a, notify.KindWebhook, true))
	var ds []notify.Delivery
	for i := range 4 {
		ds = append(ds, notifyInsertDelivery(t, db, notifyNewDelivery(a, sub.ID, t0.Add(time.Duration(i)*time.Second))))
	}
	notifyInsertDelivery(t, db, notifyNewDelivery(a, other.ID, t0))
	direct := notifyNewDelivery(a, "", t0)
	direct.Kind, direct.Target = notify.KindEmail, "ada@example.com"
	notifyInsertDelivery(t, db, direct)
	dup := notifyNewDelivery(a, sub.ID, t0)
	dup.MessageID = ds[0].MessageID
	err := db.Write(ctx, func(tx *store.Tx) error { return tx.InsertDelivery(ctx, dup) })
	wantKind(t, err, problem.KindConflict, "duplicate message id")

	read(t, db, func(tx *store.Tx) error {
		got, err := tx.DeliveryByID(ctx, a.ID, ds[1].ID)
		if err != nil || got.SubscriptionID != sub.ID || got.MessageID != ds[1].MessageID || string(got.Payload) != string(ds[1].Payload) ||
			got.Status != notify.StatusPending || got.NextAttemptAt == nil || !got.NextAttemptAt.Equal(*ds[1].NextAttemptAt) ||
			got.Subject != "Advisory published" || got.Target != ds[1].Target || got.Attempts != 0 || !got.CreatedAt.Equal(ds[1].CreatedAt) {
			t.Fatalf("DeliveryByID: %+v %v", got, err)
		}
		got, err = tx.DeliveryByID(ctx, a.ID, direct.ID)
		if err != nil || got.SubscriptionID != "" || got.Kind != notify.KindEmail {
			t.Fatalf("direct email delivery: %+v %v", got, err)
		}
		_, err = tx.DeliveryByID(ctx, b.ID, ds[1].ID)
		wantKind(t, err, problem.KindNotFound, "delivery through another org")

		page, err := tx.ListDeliveries(ctx, a.ID, sub.ID, "", 3)
		if err != nil || len(page) != 3 || page[0].ID != ds[3].ID || page[2].ID != ds[1].ID {
			t.Fatalf("ListDeliveries newest first: %v %v", page, err)
		}
		page, err = tx.ListDeliveries(ctx, a.ID, sub.ID, ds[1].ID, 3)
		if err != nil || len(page) != 1 || page[0].ID != ds[0].ID {
			t.Fatalf("ListDeliveries before: %v %v", page, err)
		}
		if page, err := tx.ListDeliveries(ctx, b.ID, sub.ID, "", 10); err != nil || len(page) != 0 {
			t.Fatalf("ListDeliveries through another org: %v %v", page, err)
		}
		return nil
	})
}

func notifyClaim(t *testing.T, db *store.DB, now, until time.Time, token string, limit int) []notify.Delivery {
	t.Helper()
	var out []notify.Delivery
	write(t, db, func(tx *store.Tx) error {
		var err error
		out, err = tx.ClaimDeliveries(context.Background(), now, until, token, limit)
		return err
	})
	return out
}

func notifyFinish(t *testing.T, db *store.DB, u notify.DeliveryUpdate, token string) bool {
	t.Helper()
	var ok bool
	write(t, db, func(tx *store.Tx) error {
		var err error
		ok, err = tx.FinishDelivery(context.Background(), u, token)
		return err
	})
	return ok
}

func notifyIDs(ds []notify.Delivery) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.ID)
	}
	return out
}

func testNotifyClaims(t *testing.T, db *store.DB) {
	ctx := context.Background()
	var a tenancy.Org
	write(t, db, func(tx *store.Tx) error { a = newOrg(t, tx, "a"); return nil })
	sub := notifyInsertSubscription(t, db, notifyNewSubscription(a, notify.KindWebhook, true))
	now := clock.Norm(t0)
	later := notifyInsertDelivery(t, db, notifyNewDelivery(a, sub.ID, now.Add(time.Minute)))
	second := notifyInsertDelivery(t, db, notifyNewDelivery(a, sub.ID, now.Add(-time.Second)))
	first := notifyInsertDelivery(t, db, notifyNewDelivery(a, sub.ID, now.Add(-time.Hour)))
	done := notifyNewDelivery(a, sub.ID, now.Add(-time.Hour))
	done.Status = notify.StatusSucceeded
	notifyInsertDelivery(t, db, done)

	lease := now.Add(time.Minute)
	if got := notifyClaim(t, db, now, lease, "A", 1); !slices.Equal(notifyIDs(got), []string{first.ID}) {
		t.Fatalf("claim with limit 1: %v, want the oldest due", notifyIDs(got))
	}
	if got := notifyClaim(t, db, now, lease, "A", 10); !slices.Equal(notifyIDs(got), []string{second.ID}) || string(got[0].Payload) != string(second.Payload) {
		t.Fatalf("claim: %v, want the other due delivery only", notifyIDs(got))
	}
	if got := notifyClaim(t, db, now, lease, "B", 10); len(got) != 0 {
		t.Fatalf("leased deliveries claimed again: %v", notifyIDs(got))
	}

	// Finishing needs the lease's token.
	retry := notify.DeliveryUpdate{ID: first.ID, Status: notify.StatusPending, Attempts: 1, NextAttemptAt: now.Add(5 * time.Second),
		LastError: "HTTP 500", UpdatedAt: now}
	if notifyFinish(t, db, retry, "B") {
		t.Fatal("finished under another claimer's token")
	}
	if !notifyFinish(t, db, retry, "A") {
		t.Fatal("claimer could not finish its delivery")
	}
	read(t, db, func(tx *store.Tx) error {
		got, err := tx.DeliveryByID(ctx, a.ID, first.ID)
		if err != nil || got.Attempts != 1 || got.LastError != "HTTP 500" || !got.NextAttemptAt.Equal(retry.NextAttemptAt) {
			t.Fatalf("after finish: %+v %v", got, err)
		}
		return nil
	})
	if notifyFinish(t, db, retry, "A") {
		t.Fatal("finished twice with one claim")
	}
	// Released, it is claimable again once due, without waiting for the lease.
	if got := notifyClaim(t, db, now.Add(5*time.Second), now.Add(time.Hour), "C", 10); !slices.Equal(notifyIDs(got), []string{first.ID}) {
		t.Fatalf("after its retry time: %v", notifyIDs(got))
	}

	// An expired lease lets another claimer take over; the first one's
	// late result is refused.
	if got := notifyClaim(t, db, lease, lease.Add(time.Minute), "D", 10); !slices.Equal(notifyIDs(got), []string{second.ID, later.ID}) {
		t.Fatalf("after lease expiry: %v, want the abandoned one then the newly due one", notifyIDs(got))
	}
	if notifyFinish(t, db, notify.DeliveryUpdate{ID: second.ID, Status: notify.StatusSucceeded, Attempts: 1, UpdatedAt: now}, "A") {
		t.Fatal("a lost lease still finished")
	}
	if !notifyFinish(t, db, notify.DeliveryUpdate{ID: second.ID, Status: notify.StatusSucceeded, Attempts: 1, UpdatedAt: lease}, "D") {
		t.Fatal("the new claimer could not finish")
	}
	read(t, db, func(tx *store.Tx) error {
		got, err := tx.DeliveryByID(ctx, a.ID, second.ID)
		if err != nil || got.Status != notify.StatusSucceeded || got.NextAttemptAt != nil {
			t.Fatalf("succeeded delivery: %+v %v", got, err)
		}
		return nil
	})
	// Finished deliveries are never claimed, however late.
	if got := notifyClaim(t, db, now.Add(1000*time.Hour), now.Add(1001*time.Hour), "E", 10); slices.Contains(notifyIDs(got), second.ID) || slices.Contains(notifyIDs(got), done.ID) {
		t.Fatalf("finished deliveries claimed: %v", notifyIDs(got))
	}
}

// Many claimers at once: each delivery is leased to exactly one.
func testNotifyConcurrentClaims(t *testing.T, db *store.DB) {
	var a tenancy.Org
	write(t, db, func(tx *store.Tx) error { a = newOrg(t, tx, "a"); return nil })
	sub := notifyInsertSubscription(t, db, notifyNewSubscription(a, notify.KindWebhook, true))
	const n = 60
	write(t, db, func(tx *store.Tx) error {
		for range n {
			if err := tx.InsertDelivery(context.Background(), notifyNewDelivery(a, sub.ID, t0)); err != nil {
				return err
			}
		}
		return nil
	})
	now := clock.Norm(t0)
	var mu sync.Mutex
	owner := map[string]string{}
	var wg sync.WaitGroup
	for c := range 6 {
		token := fmt.Sprintf("claimer-%d", c)
		wg.Go(func() {
			for {
				var got []notify.Delivery
				err := db.Write(context.Background(), func(tx *store.Tx) error {
					var err error
					got, err = tx.ClaimDeliveries(context.Background(), now, now.Add(time.Minute), token, 4)
					return err
				})
				if err != nil {
					t.Error(err)
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, d := range got {
					if prev, dup := owner[d.ID]; dup {
						t.Errorf("delivery %s claimed by %s and %s", d.ID, prev, token)
					}
					owner[d.ID] = token
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(owner) != n {
		t.Fatalf("%d of %d deliveries claimed", len(owner), n)
	}
}

func testNotifyAttempts(t *testing.T, db *store.DB) {
	ctx := context.Background()
	var a tenancy.Org
	write(t, db, func(tx *store.Tx) error { a = newOrg(t, tx, "a"); return nil })
	sub := notifyInsertSubscription(t, db, notifyNewSubscription(a, notify.KindWebhook, true))
	d := notifyInsertDelivery(t, db, notifyNewDelivery(a, sub.ID, t0))
	want := []notify.Attempt{
		{ID: id.New(), DeliveryID: d.ID, N: 2, At: clock.Norm(t0.Add(5 * time.Second)), StatusCode: 200, LatencyUS: 1234, Response: "ok ✓"},
		{ID: id.New(), DeliveryID: d.ID, N: 1, At: clock.Norm(t0), Error: "no answer within 15s", LatencyUS: 15_000_000},
	}
	write(t, db, func(tx *store.Tx) error {
		for _, at := range want {
			if err := tx.InsertAttempt(ctx, at); err != nil {
				return err
			}
		}
		return nil
	})
	err := db.Write(ctx, func(tx *store.Tx) error {
		return tx.InsertAttempt(ctx, notify.Attempt{ID: id.New(), DeliveryID: id.New(), N: 1, At: clock.Norm(t0)})
	})
	if err == nil {
		t.Fatal("attempt of a missing delivery accepted")
	}
	read(t, db, func(tx *store.Tx) error {
		got, err := tx.ListAttempts(ctx, d.ID)
		if err != nil || len(got) != 2 {
			t.Fatalf("ListAttempts: %v %v", got, err)
		}
		if got[0] != want[1] || got[1] != want[0] {
			t.Fatalf("attempts read back (in order of n): %+v, want %+v", got, []notify.Attempt{want[1], want[0]})
		}
		return nil
	})
}

func testNotifyPrune(t *testing.T, db *store.DB) {
	ctx := context.Background()
	var a tenancy.Org
	write(t, db, func(tx *store.Tx) error { a = newOrg(t, tx, "a"); return nil })
	sub := notifyInsertSubscription(t, db, notifyNewSubscription(a, notify.KindWebhook, true))
	var old []notify.Delivery
	for _, status := range []string{notify.StatusSucceeded, notify.StatusFailed, notify.StatusCanceled} {
		d := notifyNewDelivery(a, sub.ID, t0)
		d.Status = status
		old = append(old, notifyInsertDelivery(t, db, d))
	}
	pending := notifyInsertDelivery(t, db, notifyNewDelivery(a, sub.ID, t0)) // pending, however old, stays
	recent := notifyNewDelivery(a, sub.ID, t0)
	recent.Status, recent.UpdatedAt = notify.StatusSucceeded, clock.Norm(t0.Add(48*time.Hour))
	notifyInsertDelivery(t, db, recent)
	write(t, db, func(tx *store.Tx) error {
		return tx.InsertAttempt(ctx, notify.Attempt{ID: id.New(), DeliveryID: old[0].ID, N: 1, At: clock.Norm(t0)})
	})
	before := t0.Add(24 * time.Hour)
	var n1, n2, n3 int
	write(t, db, func(tx *store.Tx) error {
		var err error
		n1, err = tx.PruneDeliveries(ctx, before, 2)
		return err
	})
	write(t, db, func(tx *store.Tx) error {
		var err error
		n2, err = tx.PruneDeliveries(ctx, before, 2)
		return err
	})
	write(t, db, func(tx *store.Tx) error {
		var err error
		n3, err = tx.PruneDeliveries(ctx, before, 2)
		return err
	})
	if n1 != 2 || n2 != 1 || n3 != 0 {
		t.Fatalf("pruned %d, %d, %d; want 2, 1, 0", n1, n2, n3)
	}
	read(t, db, func(tx *store.Tx) error {
		for _, d := range old {
			_, err := tx.DeliveryByID(ctx, a.ID, d.ID)
			wantKind(t, err, problem.KindNotFound, "pruned delivery "+d.Status)
		}
		if as, err := tx.ListAttempts(ctx, old[0].ID); err != nil || len(as) != 0 {
			t.Fatalf("attempts of a pruned delivery: %v %v", as, err)
		}
		for _, keep := range []string{pending.ID, recent.ID} {
			if _, err := tx.DeliveryByID(ctx, a.ID, keep); err != nil {
				t.Fatalf("kept delivery: %v", err)
			}
		}
		return nil
	})
}
