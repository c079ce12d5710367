package notify_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/steward-iot/steward/internal/access"
	"github.com/steward-iot/steward/internal/notify"
	"github.com/steward-iot/steward/internal/problem"
	"github.com/steward-iot/steward/internal/store"
)

// A message reaches a webhook signed so that Verify accepts it, in the
// Standard Webhooks shape, once.
func TestWebhookDelivered(t *testing.T) {
	eachDialect(t, func(t *testing.T, d store.Dialect) {
		e := newEnv(t, d, labConfig())
		rc := newReceiver(t, func(int, *http.Request) (int, string, http.Header) { return 202, "accepted, thanks", nil })
		sub := e.webhook(t, rc.URL+"/hooks/steward", notify.EventAdvisoryPublished)
		if !strings.HasPrefix(sub.Secret, notify.SecretPrefix) {
			t.Fatalf("created secret %q", sub.Secret)
		}
		at := t0.Add(-time.Hour)
		e.notify(t, notify.Message{Type: notify.EventAdvisoryPublished, Subject: "Advisory STW-2026-001 published",
			Data: map[string]any{"advisory_id": "STW-2026-001", "cves": []string{"CVE-2026-1234"}}, At: at})
		if n := e.deliverDue(t, nil); n != 1 {
			t.Fatalf("DeliverDue attempted %d, want 1", n)
		}
		if n := e.deliverDue(t, nil); n != 0 {
			t.Fatalf("a delivered message was attempted again (%d)", n)
		}
		reqs := rc.requests()
		if len(reqs) != 1 {
			t.Fatalf("receiver got %d requests", len(reqs))
		}
		r := reqs[0]
		if err := notify.Verify(sub.Secret, r.header, r.body, 5*time.Minute, e.clk.Now()); err != nil {
			t.Fatalf("Verify rejected our own webhook: %v", err)
		}
		if r.path != "/hooks/steward" || r.header.Get("Content-Type") != "application/json" ||
			strings.Count(r.header.Get(notify.HeaderSignature), "v1,") != 1 {
			t.Fatalf("request %s %v", r.path, r.header)
		}
		typ, ts, data := decodePayload(t, r.body)
		if typ != notify.EventAdvisoryPublished || !ts.Equal(at) || data["advisory_id"] != "STW-2026-001" {
			t.Fatalf("payload %s", r.body)
		}
		log := e.deliveries(t, sub.ID)
		if len(log) != 1 {
			t.Fatalf("delivery log has %d entries", len(log))
		}
		dl := log[0]
		if dl.Status != notify.StatusSucceeded || dl.Attempts != 1 || dl.NextAttemptAt != nil || dl.LastError != "" ||
			dl.MessageID != r.header.Get(notify.HeaderID) || !strings.HasPrefix(dl.MessageID, "msg_") ||
			dl.Subject != "Advisory STW-2026-001 published" || string(dl.Body) != string(r.body) {
			t.Fatalf("delivery %+v", dl)
		}
		if len(dl.Log) != 1 || dl.Log[0].StatusCode != 202 || dl.Log[0].Response != "accepted, thanks" || dl.Log[0].N != 1 ||
			!dl.Log[0].At.Equal(e.clk.Now()) || dl.Log[0].LatencyUS <= 0 {
			t.Fatalf("attempt log %+v", dl.Log)
		}
	})
}

// A 500 is retried on the schedule (5 s, with jitter) and the retry
// carries the same webhook-id and a fresh signature.
func TestWebhookRetriedWithBackoff(t *testing.T) {
	eachDialect(t, func(t *testing.T, d store.Dialect) {
		e := newEnv(t, d, labConfig())
		rc := newReceiver(t, func(n int, _ *http.Request) (int, string, http.Header) {
			if n == 1 {
				return 500, "database is down", nil
			}
			return 200, "", nil
		})
		sub := e.webhook(t, rc.URL)
		e.notify(t, notify.Message{Type: notify.EventReportReceived, Data: map[string]string{"report": "r1"}})
		start := e.clk.Now()
		if n := e.deliverDue(t, nil); n != 1 {
			t.Fatalf("first DeliverDue: %d", n)
		}
		dl := e.deliveries(t, sub.ID)[0]
		if dl.Status != notify.StatusPending || dl.Attempts != 1 || dl.LastError != "HTTP 500" || dl.NextAttemptAt == nil {
			t.Fatalf("after a 500: %+v", dl.Delivery)
		}
		if wait := dl.NextAttemptAt.Sub(start); wait < 4500*time.Millisecond || wait > 5500*time.Millisecond {
			t.Fatalf("second attempt scheduled after %s, want 5s ± 10%%", wait)
		}
		e.clk.Advance(4 * time.Second)
		if n := e.deliverDue(t, nil); n != 0 {
			t.Fatalf("retried before the backoff elapsed")
		}
		e.clk.Advance(2 * time.Second)
		if n := e.deliverDue(t, nil); n != 1 {
			t.Fatalf("not retried after the backoff: %d", n)
		}
		dl = e.deliveries(t, sub.ID)[0]
		if dl.Status != notify.StatusSucceeded || dl.Attempts != 2 || len(dl.Log) != 2 ||
			dl.Log[0].StatusCode != 500 || dl.Log[0].Response != "database is down" || dl.Log[0].Error != "HTTP 500" ||
			dl.Log[1].StatusCode != 200 || dl.Log[1].N != 2 || !dl.Log[1].At.Equal(e.clk.Now()) {
			t.Fatalf("after the retry: %+v log %+v", dl.Delivery, dl.Log)
		}
		reqs := rc.requests()
		if len(reqs) != 2 || reqs[0].header.Get(notify.HeaderID) != reqs[1].header.Get(notify.HeaderID) ||
			reqs[0].header.Get(notify.HeaderTimestamp) == reqs[1].header.Get(notify.HeaderTimestamp) {
			t.Fatalf("retry headers: %v / %v", reqs[0].header, reqs[1].header)
		}
		if err := notify.Verify(sub.Secret, reqs[1].header, reqs[1].body, time.Minute, e.clk.Now()); err != nil {
			t.Fatalf("retry signature: %v", err)
		}
		// The first attempt's signature is now a replay.
		if err := notify.Verify(sub.Secret, reqs[0].header, reqs[0].body, time.Second, e.clk.Now()); err == nil {
			t.Fatal("first attempt still verifies 6 s later with a 1 s tolerance")
		}
	})
}

// Retry-After pushes the next attempt beyond the schedule.
func TestWebhookRetryAfter(t *testing.T) {
	eachDialect(t, func(t *testing.T, d store.Dialect) {
		e := newEnv(t, d, labConfig())
		rc := newReceiver(t, func(int, *http.Request) (int, string, http.Header) {
			return 429, "slow down", http.Header{"Retry-After": {"600"}}
		})
		sub := e.webhook(t, rc.URL)
		e.notify(t, notify.Message{Type: notify.EventSupportEnding})
		e.deliverDue(t, nil)
		dl := e.deliveries(t, sub.ID)[0]
		if dl.Status != notify.StatusPending || dl.NextAttemptAt == nil || dl.NextAttemptAt.Sub(e.clk.Now()) != 10*time.Minute {
			t.Fatalf("after 429 with Retry-After 600: %+v", dl.Delivery)
		}
	})
}

// 410 Gone fails the delivery and disables the subscription, recorded in
// the audit log as done by Steward.
func TestWebhookGoneDisablesSubscription(t *testing.T) {
	eachDialect(t, func(t *testing.T, d store.Dialect) {
		e := newEnv(t, d, labConfig())
		rc := newReceiver(t, func(int, *http.Request) (int, string, http.Header) { return 410, "", nil })
		sub := e.webhook(t, rc.URL)
		e.notify(t, notify.Message{Type: notify.EventSupportEnding})
		e.deliverDue(t, nil)
		got, err := e.svc.GetSubscription(ctx, e.admin, sub.ID)
		if err != nil || got.Enabled || !strings.Contains(got.DisabledReason, "410") {
			t.Fatalf("after 410: %+v %v", got, err)
		}
		dl := e.deliveries(t, sub.ID)[0]
		if dl.Status != notify.StatusFailed || dl.Attempts != 1 || dl.Log[0].StatusCode != 410 {
			t.Fatalf("delivery after 410: %+v", dl.Delivery)
		}
		ev := e.auditEvents(t)[0]
		if ev.Action != "subscription.disable" || ev.Actor.Kind != access.ActorSystem || ev.TargetID != sub.ID {
			t.Fatalf("audit after 410: %+v", ev)
		}
		e.notify(t, notify.Message{Type: notify.EventSupportEnding})
		e.clk.Advance(24 * time.Hour)
		if n := e.deliverDue(t, nil); n != 0 || len(rc.requests()) != 1 {
			t.Fatalf("a disabled subscription still receives: %d", n)
		}
		// Re-enabling clears the reason.
		on := true
		got, err = e.svc.UpdateSubscription(ctx, e.admin, sub.ID, notify.UpdateSubscriptionRequest{Enabled: &on})
		if err != nil || !got.Enabled || got.DisabledReason != "" {
			t.Fatalf("re-enable: %+v %v", got, err)
		}
	})
}

// An endpoint that keeps failing is given up on after MaxAttempts; every
// attempt is logged.
func TestWebhookGivesUp(t *testing.T) {
	eachDialect(t, func(t *testing.T, d store.Dialect) {
		cfg := labConfig()
		cfg.MaxAttempts = 3
		e := newEnv(t, d, cfg)
		rc := newReceiver(t, func(int, *http.Request) (int, string, http.Header) { return 503, "maintenance", nil })
		sub := e.webhook(t, rc.URL)
		e.notify(t, notify.Message{Type: notify.EventVulnerabilityEscalated})
		for range 6 {
			e.deliverDue(t, nil)
			e.clk.Advance(11 * time.Hour)
		}
		if n := len(rc.requests()); n != 3 {
			t.Fatalf("receiver got %d requests, want 3", n)
		}
		dl := e.deliveries(t, sub.ID)[0]
		if dl.Status != notify.StatusFailed || dl.Attempts != 3 || len(dl.Log) != 3 || dl.NextAttemptAt != nil ||
			!strings.Contains(dl.LastError, "gave up after 3 attempts") {
			t.Fatalf("after giving up: %+v", dl.Delivery)
		}
		for i, a := range dl.Log {
			if a.N != i+1 || a.StatusCode != 503 || a.Response != "maintenance" {
				t.Fatalf("attempt %d: %+v", i, a)
			}
		}
		// The subscription stays enabled: only 410 disables.
		if got, _ := e.svc.GetSubscription(ctx, e.admin, sub.ID); !got.Enabled {
			t.Fatal("failing endpoint disabled")
		}
	})
}

// A redirect is not followed: it is a failed attempt.
func TestWebhookRedirectNotFollowed(t *testing.T) {
	eachDialect(t, func(t *testing.T, d store.Dialect) {
		e := newEnv(t, d, labConfig())
		target := newReceiver(t, nil)
		rc := newReceiver(t, func(int, *http.Request) (int, string, http.Header) {
			return 307, "", http.Header{"Location": {target.URL}}
		})
		sub := e.webhook(t, rc.URL)
		e.notify(t, notify.Message{Type: notify.EventSupportEnding})
		e.deliverDue(t, nil)
		dl := e.deliveries(t, sub.ID)[0]
		if len(target.requests()) != 0 || dl.Status != notify.StatusPending || dl.Log[0].StatusCode != 307 ||
			!strings.Contains(dl.LastError, "redirects are not followed") {
			t.Fatalf("redirect: %+v, target got %d", dl.Delivery, len(target.requests()))
		}
	})
}

// An endpoint that does not answer within the timeout is a failed
// attempt, retried.
func TestWebhookTimeout(t *testing.T) {
	eachDialect(t, func(t *testing.T, d store.Dialect) {
		cfg := labConfig()
		cfg.Timeout = time.Second
		e := newEnv(t, d, cfg)
		release := make(chan struct{})
		rc := newReceiver(t, func(int, *http.Request) (int, string, http.Header) {
			<-release
			return 200, "", nil
		})
		defer close(release)
		sub := e.webhook(t, rc.URL)
		e.notify(t, notify.Message{Type: notify.EventSupportEnding})
		e.deliverDue(t, nil)
		dl := e.deliveries(t, sub.ID)[0]
		if dl.Status != notify.StatusPending || dl.Log[0].StatusCode != 0 || !strings.Contains(dl.LastError, "no answer within 1s") {
			t.Fatalf("timeout: %+v", dl.Delivery)
		}
	})
}

// Two dispatchers (replicas) draining the same outbox at once send every
// message exactly once.
func TestConcurrentDispatchersNeverDoubleSend(t *testing.T) {
	eachDialect(t, func(t *testing.T, d store.Dialect) {
		cfg := labConfig()
		cfg.BatchSize, cfg.Workers = 7, 3
		e := newEnv(t, d, cfg)
		var mu sync.Mutex
		seen := map[string]int{}
		rc := newReceiver(t, func(_ int, r *http.Request) (int, string, http.Header) {
			mu.Lock()
			seen[r.Header.Get(notify.HeaderID)]++
			mu.Unlock()
			time.Sleep(2 * time.Millisecond) // keep both dispatchers busy at once
			return 200, "", nil
		})
		e.webhook(t, rc.URL)
		e.webhook(t, rc.URL+"/second")
		const messages = 25
		for i := range messages {
			e.notify(t, notify.Message{Type: notify.EventDeviceExposureChanged, Data: map[string]int{"i": i}})
		}
		replicas := []*notify.Service{e.svc, e.service(t, cfg), e.service(t, cfg)}
		var wg sync.WaitGroup
		attempted := make([]int, len(replicas))
		for i, svc := range replicas {
			wg.Go(func() {
				for {
					n, err := svc.DeliverDue(ctx)
					if err != nil {
						t.Error(err)
						return
					}
					if n == 0 {
						return
					}
					attempted[i] += n
				}
			})
		}
		wg.Wait()
		total := 0
		for _, n := range attempted {
			total += n
		}
		if len(seen) != 2*messages || total != 2*messages || len(rc.requests()) != 2*messages {
			t.Fatalf("%d distinct messages, %d attempts, %d requests; want %d each", len(seen), total, len(rc.requests()), 2*messages)
		}
		for id, n := range seen {
			if n != 1 {
				t.Fatalf("message %s sent %d times", id, n)
			}
		}
	})
}

// Only enabled subscriptions whose filter names the type (or "*") get a
// message.
func TestEventFilter(t *testing.T) {
	eachDialect(t, func(t *testing.T, d store.Dialect) {
		e := newEnv(t, d, labConfig())
		rc := newReceiver(t, nil)
		e.webhook(t, rc.URL+"/advisories", notify.EventAdvisoryPublished, notify.EventSupportEnding)
		e.webhook(t, rc.URL+"/all", notify.AllEvents)
		e.webhook(t, rc.URL+"/reports", notify.EventReportReceived)
		off := false
		if _, err := e.svc.CreateSubscription(ctx, e.admin, notify.CreateSubscriptionRequest{Kind: notify.KindWebhook,
			URL: rc.URL + "/disabled", EventTypes: []string{"*"}, Enabled: &off}); err != nil {
			t.Fatal(err)
		}
		other := newOrg(t, e.db, "other")
		if _, err := e.svc.CreateSubscription(ctx, principal(other, access.RoleAdmin), notify.CreateSubscriptionRequest{
			Kind: notify.KindWebhook, URL: rc.URL + "/other-org", EventTypes: []string{"*"}}); err != nil {
			t.Fatal(err)
		}
		e.notify(t, notify.Message{Type: notify.EventAdvisoryPublished})
		e.notify(t, notify.Message{Type: notify.EventReportReceived})
		e.notify(t, notify.Message{Type: "rollout.paused"}) // a type added later reaches "*" only
		e.deliverDue(t, nil)
		got := map[string][]string{}
		for _, r := range rc.requests() {
			typ, _, _ := decodePayload(t, r.body)
			got[r.path] = append(got[r.path], typ)
		}
		want := map[string]int{"/advisories": 1, "/all": 3, "/reports": 1}
		for path, n := range want {
			if len(got[path]) != n {
				t.Fatalf("%s got %v, want %d messages", path, got[path], n)
			}
		}
		if len(got) != len(want) {
			t.Fatalf("unexpected receivers: %v", got)
		}
		if got["/advisories"][0] != notify.EventAdvisoryPublished || got["/reports"][0] != notify.EventReportReceived {
			t.Fatalf("wrong types: %v", got)
		}
		for _, types := range [][]string{nil, {}, {"advisory.unpublished"}, {"*", notify.EventReportReceived}, {"ping"}} {
			_, err := e.svc.CreateSubscription(ctx, e.admin, notify.CreateSubscriptionRequest{Kind: notify.KindWebhook, URL: rc.URL, EventTypes: types})
			wantKind(t, err, problem.KindInvalid, "event types "+strings.Join(types, ","))
		}
	})
}

// With private networks not allowed, internal destinations are refused
// when the subscription is created, and again when connecting, which is
// what stops DNS rebinding: here a subscription made while allowed (as a
// name that resolved publicly would be) is refused at dial time.
func TestSSRFRefused(t *testing.T) {
	eachDialect(t, func(t *testing.T, d store.Dialect) {
		e := newEnv(t, d, labConfig())
		rc := newReceiver(t, nil)
		strictCfg := notify.Config{AllowInsecureURLs: true, Timeout: 5 * time.Second}
		strict := e.service(t, strictCfg)
		port := rc.URL[strings.LastIndex(rc.URL, ":"):]
		for _, url := range []string{
			rc.URL, "http://localhost" + port, "http://169.254.169.254/latest/meta-data/iam/", "http://10.0.0.8/hook",
			"http://192.168.0.1/", "http://[::1]" + port, "http://[::ffff:127.0.0.1]" + port, "http://0.0.0.0" + port,
			"http://100.100.100.200/", "http://[fd00::1]/",
		} {
			_, err := strict.CreateSubscription(ctx, e.admin, notify.CreateSubscriptionRequest{Kind: notify.KindWebhook, URL: url, EventTypes: []string{"*"}})
			wantKind(t, err, problem.KindInvalid, "creating a webhook to "+url)
		}
		_, err := e.service(t, notify.Config{}).CreateSubscription(ctx, e.admin, notify.CreateSubscriptionRequest{
			Kind: notify.KindWebhook, URL: "http://203.0.113.10/hook", EventTypes: []string{"*"}})
		wantKind(t, err, problem.KindInvalid, "plain http without the lab flag")

		byIP := e.webhook(t, rc.URL+"/ip")
		byName := e.webhook(t, "http://localhost"+port+"/name")
		e.notify(t, notify.Message{Type: notify.EventSupportEnding})
		if n := e.deliverDue(t, strict); n != 2 {
			t.Fatalf("strict dispatcher attempted %d", n)
		}
		if n := len(rc.requests()); n != 0 {
			t.Fatalf("the internal endpoint received %d requests", n)
		}
		for _, sub := range []notify.CreatedSubscription{byIP, byName} {
			dl := e.deliveries(t, sub.ID)[0]
			if dl.Status != notify.StatusFailed || dl.Attempts != 1 || !strings.Contains(dl.LastError, "loopback") {
				t.Fatalf("delivery to %s: %+v", sub.URL, dl.Delivery)
			}
		}
	})
}

// The signing secret is returned on creation and rotation only; it is in
// no read, list or audit event. After a rotation both secrets sign until
// the overlap ends.
func TestSecretShownOnceAndRotated(t *testing.T) {
	eachDialect(t, func(t *testing.T, d store.Dialect) {
		e := newEnv(t, d, labConfig())
		rc := newReceiver(t, nil)
		created := e.webhook(t, rc.URL)
		key := func(s string) string { return strings.TrimPrefix(s, notify.SecretPrefix) }
		got, err := e.svc.GetSubscription(ctx, e.admin, created.ID)
		if err != nil {
			t.Fatal(err)
		}
		list, _, err := e.svc.ListSubscriptions(ctx, e.admin, "", 10)
		if err != nil {
			t.Fatal(err)
		}
		rotated, err := e.svc.RotateSecret(ctx, e.admin, created.ID)
		if err != nil {
			t.Fatal(err)
		}
		if rotated.Secret == created.Secret || !strings.HasPrefix(rotated.Secret, notify.SecretPrefix) || rotated.PreviousSecretUntil == nil ||
			!rotated.PreviousSecretUntil.Equal(e.clk.Now().Add(24*time.Hour)) {
			t.Fatalf("rotation: %+v", rotated.Subscription)
		}
		out, _ := json.Marshal([]any{got, list})
		var audited strings.Builder
		for _, ev := range e.auditEvents(t) {
			audited.Write(ev.Details)
		}
		for _, secret := range []string{created.Secret, rotated.Secret} {
			if strings.Contains(string(out), key(secret)) {
				t.Fatalf("secret in a read: %s", out)
			}
			if strings.Contains(audited.String(), key(secret)) {
				t.Fatalf("secret in the audit log: %s", audited.String())
			}
		}
		if withSecret, _ := json.Marshal(created); !strings.Contains(string(withSecret), `"secret":"`+created.Secret) {
			t.Fatalf("the creation response lacks the secret: %s", withSecret)
		}

		// During the overlap a receiver with either secret accepts.
		e.notify(t, notify.Message{Type: notify.EventSupportEnding})
		e.deliverDue(t, nil)
		r := rc.requests()[0]
		if n := len(strings.Fields(r.header.Get(notify.HeaderSignature))); n != 2 {
			t.Fatalf("%d signatures during the overlap", n)
		}
		for _, secret := range []string{created.Secret, rotated.Secret} {
			if err := notify.Verify(secret, r.header, r.body, time.Minute, e.clk.Now()); err != nil {
				t.Fatalf("during the overlap: %v", err)
			}
		}
		// After it, only the new one.
		e.clk.Advance(25 * time.Hour)
		e.notify(t, notify.Message{Type: notify.EventSupportEnding})
		e.deliverDue(t, nil)
		r = rc.requests()[1]
		if err := notify.Verify(rotated.Secret, r.header, r.body, time.Minute, e.clk.Now()); err != nil {
			t.Fatalf("new secret after the overlap: %v", err)
		}
		if err := notify.Verify(created.Secret, r.header, r.body, time.Minute, e.clk.Now()); err == nil {
			t.Fatal("old secret still signs after the overlap")
		}
	})
}

// Webhooks over TLS verify the endpoint's certificate against RootCAs.
func TestWebhookTLS(t *testing.T) {
	eachDialect(t, func(t *testing.T, d store.Dialect) {
		srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) }))
		defer srv.Close()
		cfg := labConfig()
		cfg.AllowInsecureURLs = false
		e := newEnv(t, d, cfg)
		sub := e.webhook(t, srv.URL)
		e.notify(t, notify.Message{Type: notify.EventSupportEnding})
		e.deliverDue(t, nil)
		if dl := e.deliveries(t, sub.ID)[0]; dl.Status != notify.StatusPending || !strings.Contains(dl.LastError, "certificate") {
			t.Fatalf("untrusted certificate accepted: %+v", dl.Delivery)
		}
		cfg.RootCAs = srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
		trusting := e.service(t, cfg)
		e.clk.Advance(time.Minute)
		e.deliverDue(t, trusting)
		if dl := e.deliveries(t, sub.ID)[0]; dl.Status != notify.StatusSucceeded || dl.Log[1].StatusCode != 204 {
			t.Fatalf("trusted TLS endpoint: %+v", dl.Delivery)
		}
	})
}

// Run sends what Notify queues at once, without waiting for its poll, and
// stops with its context.
func TestRunDeliversPromptly(t *testing.T) {
	eachDialect(t, func(t *testing.T, d store.Dialect) {
		cfg := labConfig()
		cfg.PollInterval = time.Hour
		e := newEnv(t, d, cfg)
		got := make(chan string, 10)
		rc := newReceiver(t, func(_ int, r *http.Request) (int, string, http.Header) {
			got <- r.Header.Get(notify.HeaderID)
			return 200, "", nil
		})
		sub := e.webhook(t, rc.URL)
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { e.svc.Run(runCtx); close(done) }()
		e.notify(t, notify.Message{Type: notify.EventSupportEnding})
		select {
		case <-got:
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not deliver a queued message")
		}
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not stop")
		}
		if dl := e.deliveries(t, sub.ID)[0]; dl.Status != notify.StatusSucceeded {
			t.Fatalf("after Run: %+v", dl.Delivery)
		}
	})
}

// Only the start of a large response is read and kept.
func TestResponseSnippetCapped(t *testing.T) {
	eachDialect(t, func(t *testing.T, d store.Dialect) {
		e := newEnv(t, d, labConfig())
		rc := newReceiver(t, func(int, *http.Request) (int, string, http.Header) {
			return 500, strings.Repeat("é", 128<<10), nil
		})
		sub := e.webhook(t, rc.URL)
		e.notify(t, notify.Message{Type: notify.EventSupportEnding})
		e.deliverDue(t, nil)
		a := e.deliveries(t, sub.ID)[0].Log[0]
		if len(a.Response) == 0 || len(a.Response) > 1024 || !utf8.ValidString(a.Response) {
			t.Fatalf("stored response of %d bytes", len(a.Response))
		}
	})
}

// A message queued for a subscription that is disabled before it goes out
// is canceled, keeping the attempts it had.
func TestDisabledBeforeSendCancels(t *testing.T) {
	eachDialect(t, func(t *testing.T, d store.Dialect) {
		e := newEnv(t, d, labConfig())
		rc := newReceiver(t, func(n int, _ *http.Request) (int, string, http.Header) { return 500, "", nil })
		sub := e.webhook(t, rc.URL)
		e.notify(t, notify.Message{Type: notify.EventSupportEnding})
		e.deliverDue(t, nil)
		off := false
		if _, err := e.svc.UpdateSubscription(ctx, e.admin, sub.ID, notify.UpdateSubscriptionRequest{Enabled: &off}); err != nil {
			t.Fatal(err)
		}
		e.clk.Advance(time.Minute)
		if n := e.deliverDue(t, nil); n != 1 {
			t.Fatalf("attempted %d", n)
		}
		dl := e.deliveries(t, sub.ID)[0]
		if dl.Status != notify.StatusCanceled || dl.Attempts != 1 || len(dl.Log) != 1 || len(rc.requests()) != 1 {
			t.Fatalf("after disabling: %+v, %d requests", dl.Delivery, len(rc.requests()))
		}
	})
}
