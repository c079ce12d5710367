package notify_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/steward-iot/steward/internal/access"
	"github.com/steward-iot/steward/internal/notify"
	"github.com/steward-iot/steward/internal/problem"
	"github.com/steward-iot/steward/internal/store"
)

func TestSubscriptionLifecycle(t *testing.T) {
	eachDialect(t, func(t *testing.T, d store.Dialect) {
		e := newEnv(t, d, labConfig())
		rc := newReceiver(t, nil)
		created, err := e.svc.CreateSubscription(ctx, e.admin, notify.CreateSubscriptionRequest{Kind: notify.KindWebhook,
			URL: rc.URL + "/h?token=abc", EventTypes: []string{notify.EventSupportEnding, notify.EventAdvisoryPublished, notify.EventSupportEnding},
			Description: "SIEM"})
		if err != nil {
			t.Fatal(err)
		}
		if !created.Enabled || created.Description != "SIEM" || created.OrgID != e.org.ID ||
			strings.Join(created.EventTypes, ",") != "advisory.published,support.ending" || !created.CreatedAt.Equal(e.clk.Now()) {
			t.Fatalf("created %+v", created.Subscription)
		}
		got, err := e.svc.GetSubscription(ctx, e.admin, created.ID)
		if err != nil || got.URL != created.URL || got.SigningSecret != notify.Secret(created.Secret) {
			t.Fatalf("get: %+v %v", got, err)
		}
		ev := e.auditEvents(t)[0]
		if ev.Action != "subscription.create" || ev.TargetID != created.ID || ev.Actor.ID != "tok-admin" ||
			strings.Contains(string(ev.Details), "abc") || !strings.Contains(string(ev.Details), "redacted") {
			t.Fatalf("create audit: %+v %s", ev, ev.Details)
		}

		// Update: disable, narrow the filter, describe.
		e.clk.Advance(time.Minute)
		off, desc := false, "SIEM (paused)"
		upd, err := e.svc.UpdateSubscription(ctx, e.admin, created.ID, notify.UpdateSubscriptionRequest{
			Enabled: &off, EventTypes: []string{notify.EventReportReceived}, Description: &desc})
		if err != nil || upd.Enabled || upd.Description != desc || upd.EventTypes[0] != notify.EventReportReceived ||
			!upd.UpdatedAt.Equal(e.clk.Now()) || upd.SigningSecret != got.SigningSecret {
			t.Fatalf("update: %+v %v", upd, err)
		}
		if ev := e.auditEvents(t)[0]; ev.Action != "subscription.update" || !strings.Contains(string(ev.Details), `"enabled":false`) {
			t.Fatalf("update audit: %+v %s", ev, ev.Details)
		}
		// A no-op update writes nothing.
		before := len(e.auditEvents(t))
		if _, err := e.svc.UpdateSubscription(ctx, e.admin, created.ID, notify.UpdateSubscriptionRequest{Enabled: &off}); err != nil {
			t.Fatal(err)
		}
		if len(e.auditEvents(t)) != before {
			t.Fatal("a no-op update was audited")
		}
		_, err = e.svc.UpdateSubscription(ctx, e.admin, created.ID, notify.UpdateSubscriptionRequest{})
		wantKind(t, err, problem.KindInvalid, "empty update")
		_, err = e.svc.UpdateSubscription(ctx, e.admin, created.ID, notify.UpdateSubscriptionRequest{EventTypes: []string{"nope"}})
		wantKind(t, err, problem.KindInvalid, "update to an unknown type")

		// Test deliveries need an enabled subscription.
		_, err = e.svc.SendTest(ctx, e.admin, created.ID)
		wantKind(t, err, problem.KindConflict, "testing a disabled subscription")
		on := true
		if _, err := e.svc.UpdateSubscription(ctx, e.admin, created.ID, notify.UpdateSubscriptionRequest{Enabled: &on}); err != nil {
			t.Fatal(err)
		}
		ping, err := e.svc.SendTest(ctx, e.admin, created.ID)
		if err != nil || ping.EventType != notify.EventPing || ping.Status != notify.StatusPending {
			t.Fatalf("SendTest: %+v %v", ping, err)
		}
		if ev := e.auditEvents(t)[0]; ev.Action != "subscription.test" || !strings.Contains(string(ev.Details), ping.MessageID) {
			t.Fatalf("test audit: %+v", ev)
		}
		e.deliverDue(t, nil)
		reqs := rc.requests()
		if len(reqs) != 1 || reqs[0].header.Get(notify.HeaderID) != ping.MessageID {
			t.Fatalf("ping not delivered: %d", len(reqs))
		}
		if typ, _, data := decodePayload(t, reqs[0].body); typ != notify.EventPing || data["subscription_id"] != created.ID {
			t.Fatalf("ping payload %s", reqs[0].body)
		}
		if err := notify.Verify(created.Secret, reqs[0].header, reqs[0].body, time.Minute, e.clk.Now()); err != nil {
			t.Fatal(err)
		}
		_, err = e.svc.GetDelivery(ctx, e.admin, created.ID, ping.ID)
		if err != nil {
			t.Fatal(err)
		}

		// Delete drops the subscription and its log.
		if err := e.svc.DeleteSubscription(ctx, e.admin, created.ID); err != nil {
			t.Fatal(err)
		}
		_, err = e.svc.GetSubscription(ctx, e.admin, created.ID)
		wantKind(t, err, problem.KindNotFound, "deleted subscription")
		_, _, err = e.svc.ListDeliveries(ctx, e.admin, created.ID, "", 10)
		wantKind(t, err, problem.KindNotFound, "log of a deleted subscription")
		_, err = e.svc.GetDelivery(ctx, e.admin, created.ID, ping.ID)
		wantKind(t, err, problem.KindNotFound, "delivery of a deleted subscription")
		if ev := e.auditEvents(t)[0]; ev.Action != "subscription.delete" || ev.TargetID != created.ID {
			t.Fatalf("delete audit: %+v", ev)
		}
		err = e.svc.DeleteSubscription(ctx, e.admin, created.ID)
		wantKind(t, err, problem.KindNotFound, "deleting twice")
	})
}

func TestSubscriptionValidation(t *testing.T) {
	eachDialect(t, func(t *testing.T, d store.Dialect) {
		e := newEnv(t, d, labConfig())
		all := []string{"*"}
		for name, req := range map[string]notify.CreateSubscriptionRequest{
			"unknown kind":           {Kind: "sms", URL: "http://127.0.0.1/", EventTypes: all},
			"webhook without url":    {Kind: notify.KindWebhook, EventTypes: all},
			"webhook with email":     {Kind: notify.KindWebhook, URL: "http://127.0.0.1/", Email: "a@example.com", EventTypes: all},
			"email without smtp":     {Kind: notify.KindEmail, Email: "a@example.com", EventTypes: all},
			"multi-line description": {Kind: notify.KindWebhook, URL: "http://127.0.0.1/", EventTypes: all, Description: "a\nb"},
			"long description":       {Kind: notify.KindWebhook, URL: "http://127.0.0.1/", EventTypes: all, Description: strings.Repeat("x", 501)},
		} {
			_, err := e.svc.CreateSubscription(ctx, e.admin, req)
			wantKind(t, err, problem.KindInvalid, name)
		}
		mail := e.service(t, notify.Config{SMTP: notify.SMTPConfig{Addr: "127.0.0.1:25", From: "steward@example.com"}})
		for _, addr := range []string{"", "not-an-address", "Ada <ada@example.com>", "ada@example.com\r\nBcc: x@example.com"} {
			_, err := mail.CreateSubscription(ctx, e.admin, notify.CreateSubscriptionRequest{Kind: notify.KindEmail, Email: addr, EventTypes: all})
			wantKind(t, err, problem.KindInvalid, "email "+addr)
		}
		s, err := mail.CreateSubscription(ctx, e.admin, notify.CreateSubscriptionRequest{Kind: notify.KindEmail, Email: "Ada@Example.com", EventTypes: all})
		if err != nil || s.Email != "ada@example.com" || s.Secret != "" || s.SigningSecret != "" {
			t.Fatalf("email subscription %+v %v", s, err)
		}
		_, err = mail.RotateSecret(ctx, e.admin, s.ID)
		wantKind(t, err, problem.KindConflict, "rotating an email subscription's secret")
		for _, ref := range []string{"nope", "01890000-0000-7000-8000-000000000000"} {
			_, err = e.svc.GetSubscription(ctx, e.admin, ref)
			wantKind(t, err, problem.KindNotFound, "subscription "+ref)
		}
	})
}

func TestPermissions(t *testing.T) {
	eachDialect(t, func(t *testing.T, d store.Dialect) {
		e := newEnv(t, d, labConfig())
		rc := newReceiver(t, nil)
		sub := e.webhook(t, rc.URL)
		req := notify.CreateSubscriptionRequest{Kind: notify.KindWebhook, URL: rc.URL, EventTypes: []string{"*"}}
		on := true
		for _, role := range []access.Role{access.RoleAuditor, access.RoleReleaseManager} {
			p := principal(e.org, role)
			_, err := e.svc.CreateSubscription(ctx, p, req)
			wantKind(t, err, problem.KindForbidden, string(role)+" creates")
			_, err = e.svc.UpdateSubscription(ctx, p, sub.ID, notify.UpdateSubscriptionRequest{Enabled: &on})
			wantKind(t, err, problem.KindForbidden, string(role)+" updates")
			wantKind(t, e.svc.DeleteSubscription(ctx, p, sub.ID), problem.KindForbidden, string(role)+" deletes")
			_, err = e.svc.RotateSecret(ctx, p, sub.ID)
			wantKind(t, err, problem.KindForbidden, string(role)+" rotates")
			_, err = e.svc.SendTest(ctx, p, sub.ID)
			wantKind(t, err, problem.KindForbidden, string(role)+" tests")
			// Reading is allowed.
			if got, err := e.svc.GetSubscription(ctx, p, sub.ID); err != nil || got.ID != sub.ID {
				t.Fatalf("%s reads: %v", role, err)
			}
			if _, _, err := e.svc.ListDeliveries(ctx, p, sub.ID, "", 10); err != nil {
				t.Fatalf("%s reads the log: %v", role, err)
			}
		}
		for _, role := range []access.Role{access.RoleOperator, access.RoleSecurityOfficer} {
			if _, err := e.svc.CreateSubscription(ctx, principal(e.org, role), req); err != nil {
				t.Fatalf("%s may manage subscriptions: %v", role, err)
			}
		}
		// Another organization sees nothing.
		other := principal(newOrg(t, e.db, "other"), access.RoleAdmin)
		_, err := e.svc.GetSubscription(ctx, other, sub.ID)
		wantKind(t, err, problem.KindNotFound, "another org reads")
		_, _, err = e.svc.ListDeliveries(ctx, other, sub.ID, "", 10)
		wantKind(t, err, problem.KindNotFound, "another org reads the log")
		wantKind(t, e.svc.DeleteSubscription(ctx, other, sub.ID), problem.KindNotFound, "another org deletes")
		if list, _, err := e.svc.ListSubscriptions(ctx, other, "", 10); err != nil || len(list) != 0 {
			t.Fatalf("another org lists %d subscriptions: %v", len(list), err)
		}
	})
}

func TestListsPage(t *testing.T) {
	eachDialect(t, func(t *testing.T, d store.Dialect) {
		e := newEnv(t, d, labConfig())
		rc := newReceiver(t, nil)
		var ids []string
		for range 3 {
			ids = append(ids, e.webhook(t, rc.URL).ID)
		}
		page, next, err := e.svc.ListSubscriptions(ctx, e.admin, "", 2)
		if err != nil || len(page) != 2 || next != ids[1] || page[0].ID != ids[0] {
			t.Fatalf("page 1: %d %q %v", len(page), next, err)
		}
		page, next, err = e.svc.ListSubscriptions(ctx, e.admin, next, 2)
		if err != nil || len(page) != 1 || next != "" || page[0].ID != ids[2] {
			t.Fatalf("page 2: %d %q %v", len(page), next, err)
		}
		for i := range 5 {
			e.notify(t, notify.Message{Type: notify.EventSupportEnding, Data: map[string]int{"i": i}})
		}
		// The delivery log pages newest first.
		var seen []string
		cursor := ""
		for {
			page, next, err := e.svc.ListDeliveries(ctx, e.admin, ids[0], cursor, 2)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range page {
				seen = append(seen, d.ID)
			}
			if next == "" {
				break
			}
			cursor = next
		}
		if len(seen) != 5 {
			t.Fatalf("log pages returned %d deliveries", len(seen))
		}
		for i := 1; i < len(seen); i++ {
			if seen[i] >= seen[i-1] {
				t.Fatalf("log not newest first: %v", seen)
			}
		}
	})
}

func TestNotifyRejectsBadMessagesWritingNothing(t *testing.T) {
	eachDialect(t, func(t *testing.T, d store.Dialect) {
		e := newEnv(t, d, labConfig())
		rc := newReceiver(t, nil)
		sub := e.webhook(t, rc.URL)
		for name, m := range map[string]notify.Message{
			"no org":        {Type: notify.EventSupportEnding},
			"bad type":      {OrgID: e.org.ID, Type: "Support Ending"},
			"ping":          {OrgID: e.org.ID, Type: notify.EventPing},
			"bad recipient": {OrgID: e.org.ID, Type: notify.EventSupportEnding, To: []string{"ada@example.com", "nobody"}},
			"unencodable":   {OrgID: e.org.ID, Type: notify.EventSupportEnding, Data: map[string]any{"f": func() {}}},
			"huge":          {OrgID: e.org.ID, Type: notify.EventSupportEnding, Data: strings.Repeat("x", notify.MaxPayload)},
		} {
			if err := e.svc.Notify(ctx, m); err == nil {
				t.Fatalf("%s: accepted", name)
			}
		}
		if list, _, _ := e.svc.ListDeliveries(ctx, e.admin, sub.ID, "", 10); len(list) != 0 {
			t.Fatalf("a rejected message left %d deliveries", len(list))
		}
	})
}

// Prune drops finished deliveries past the retention, and keeps pending
// ones whatever their age.
func TestPrune(t *testing.T) {
	eachDialect(t, func(t *testing.T, d store.Dialect) {
		cfg := labConfig()
		cfg.Retention = 48 * time.Hour
		e := newEnv(t, d, cfg)
		ok := newReceiver(t, nil)
		failing := newReceiver(t, func(int, *http.Request) (int, string, http.Header) { return 500, "", nil })
		good, bad := e.webhook(t, ok.URL), e.webhook(t, failing.URL)
		e.notify(t, notify.Message{Type: notify.EventSupportEnding})
		e.deliverDue(t, nil)
		e.clk.Advance(47 * time.Hour)
		if n, err := e.svc.Prune(ctx); err != nil || n != 0 {
			t.Fatalf("pruned %d within retention: %v", n, err)
		}
		e.clk.Advance(2 * time.Hour)
		if n, err := e.svc.Prune(ctx); err != nil || n != 1 {
			t.Fatalf("pruned %d, want the one delivered: %v", n, err)
		}
		if len(e.deliveries(t, good.ID)) != 0 || len(e.deliveries(t, bad.ID)) != 1 {
			t.Fatal("prune removed the wrong deliveries")
		}
	})
}
