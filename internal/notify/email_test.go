package notify_test

import (
	"bytes"
	"io"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/steward-iot/steward/internal/notify"
	"github.com/steward-iot/steward/internal/store"
)

func mailConfig(t *testing.T, sink *smtpSink) notify.Config {
	cfg := labConfig()
	cfg.SMTP = notify.SMTPConfig{Addr: sink.addr(), From: "Steward Alerts <alerts@steward.example>", HelloName: "steward.test"}
	return cfg
}

func parseMail(t *testing.T, m sinkMessage) (*mail.Message, string) {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(m.data))
	if err != nil {
		t.Fatalf("received mail does not parse: %v\n%s", err, m.data)
	}
	if msg.Header.Get("Content-Transfer-Encoding") != "quoted-printable" {
		t.Fatalf("transfer encoding %q", msg.Header.Get("Content-Transfer-Encoding"))
	}
	body, err := io.ReadAll(quotedprintable.NewReader(msg.Body))
	if err != nil {
		t.Fatal(err)
	}
	return msg, string(body)
}

// Email goes out through the relay with AUTH, proper headers, a MIME
// encoded non-ASCII subject and a readable body; a person named in To
// and subscribed too gets one copy.
func TestEmailDelivered(t *testing.T) {
	eachDialect(t, func(t *testing.T, d store.Dialect) {
		sink := newSMTPSink(t)
		cfg := mailConfig(t, sink)
		cfg.SMTP.Username = "steward"
		pwFile := filepath.Join(t.TempDir(), "smtp-password")
		if err := os.WriteFile(pwFile, []byte("s3cret-pw\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg.SMTP.PasswordFile = pwFile
		if err := cfg.SMTP.LoadPassword(func(string) string { return "" }); err != nil {
			t.Fatal(err)
		}
		e := newEnv(t, d, cfg)
		sub, err := e.svc.CreateSubscription(ctx, e.admin, notify.CreateSubscriptionRequest{Kind: notify.KindEmail,
			Email: "secteam@example.com", EventTypes: []string{notify.EventVulnerabilityEscalated}})
		if err != nil || sub.Secret != "" {
			t.Fatalf("email subscription: %+v %v", sub, err)
		}
		subject := "Sicherheitslücke eskaliert: CVE-2026-1234 — Gerät ✓"
		e.notify(t, notify.Message{Type: notify.EventVulnerabilityEscalated, Subject: subject,
			Data: map[string]any{"vulnerability": "CVE-2026-1234", "priority": "immediate"},
			To:   []string{"oncall@example.com", "SECTEAM@example.com", "oncall@example.com"}})
		if n := e.deliverDue(t, nil); n != 2 {
			t.Fatalf("attempted %d deliveries, want 2 (subscription + one on-call)", n)
		}
		msgs := sink.messages()
		if len(msgs) != 2 {
			t.Fatalf("sink got %d messages", len(msgs))
		}
		rcpts := map[string]bool{}
		for _, m := range msgs {
			if m.from != "alerts@steward.example" || len(m.to) != 1 {
				t.Fatalf("envelope %q → %v", m.from, m.to)
			}
			rcpts[m.to[0]] = true
			msg, body := parseMail(t, m)
			h := msg.Header
			dec, err := new(mime.WordDecoder).DecodeHeader(h.Get("Subject"))
			if err != nil || dec != subject || !strings.HasPrefix(h.Get("Subject"), "=?utf-8?q?") {
				t.Fatalf("subject %q → %q %v", h.Get("Subject"), dec, err)
			}
			if date, err := h.Date(); err != nil || !date.Equal(e.clk.Now().Truncate(time.Second)) {
				t.Fatalf("Date %q: %v", h.Get("Date"), err)
			}
			from, err := mail.ParseAddress(h.Get("From"))
			if err != nil || from.Address != "alerts@steward.example" || from.Name != "Steward Alerts" {
				t.Fatalf("From %q", h.Get("From"))
			}
			to, err := mail.ParseAddress(h.Get("To"))
			if err != nil || to.Address != m.to[0] {
				t.Fatalf("To %q, envelope %v", h.Get("To"), m.to)
			}
			if id := h.Get("Message-Id"); !strings.HasPrefix(id, "<msg_") || !strings.HasSuffix(id, "@steward.example>") {
				t.Fatalf("Message-ID %q", id)
			}
			if h.Get("Auto-Submitted") != "auto-generated" || !strings.HasPrefix(h.Get("Content-Type"), "text/plain; charset=utf-8") {
				t.Fatalf("headers %v", h)
			}
			for _, want := range []string{subject, "Event:       vulnerability.escalated", `  "vulnerability": "CVE-2026-1234"`,
				`  "priority": "immediate"`} {
				if !strings.Contains(body, want) {
					t.Fatalf("body lacks %q:\n%s", want, body)
				}
			}
		}
		if !rcpts["secteam@example.com"] || !rcpts["oncall@example.com"] {
			t.Fatalf("recipients %v", rcpts)
		}
		sink.mu.Lock()
		auths := append([]string(nil), sink.auths...)
		sink.mu.Unlock()
		if len(auths) != 2 || auths[0] != "\x00steward\x00s3cret-pw" {
			t.Fatalf("AUTH PLAIN %q", auths)
		}
		dl := e.deliveries(t, sub.ID)
		if len(dl) != 1 || dl[0].Status != notify.StatusSucceeded || dl[0].Log[0].StatusCode != 250 {
			t.Fatalf("email delivery log %+v", dl)
		}
	})
}

// A transient SMTP failure (451) is logged and retried; the next attempt
// succeeds. A permanent one (550) ends the delivery.
func TestEmailRetriedAfterTransientFailure(t *testing.T) {
	eachDialect(t, func(t *testing.T, d store.Dialect) {
		sink := newSMTPSink(t, "451 4.3.0 mailbox temporarily unavailable", "250 2.0.0 queued", "550 5.1.1 no such user")
		e := newEnv(t, d, mailConfig(t, sink))
		sub, err := e.svc.CreateSubscription(ctx, e.admin, notify.CreateSubscriptionRequest{Kind: notify.KindEmail,
			Email: "secteam@example.com", EventTypes: []string{"*"}})
		if err != nil {
			t.Fatal(err)
		}
		e.notify(t, notify.Message{Type: notify.EventReportAckOverdue, Subject: "Report R-1 not acknowledged"})
		e.deliverDue(t, nil)
		dl := e.deliveries(t, sub.ID)[0]
		if dl.Status != notify.StatusPending || dl.Attempts != 1 || dl.Log[0].StatusCode != 451 ||
			!strings.Contains(dl.LastError, "451") || !strings.Contains(dl.Log[0].Response, "temporarily unavailable") {
			t.Fatalf("after 451: %+v %+v", dl.Delivery, dl.Log)
		}
		if len(sink.messages()) != 0 {
			t.Fatal("the sink kept a refused message")
		}
		e.clk.Advance(6 * time.Second)
		e.deliverDue(t, nil)
		dl = e.deliveries(t, sub.ID)[0]
		if dl.Status != notify.StatusSucceeded || dl.Attempts != 2 || len(dl.Log) != 2 || dl.Log[1].StatusCode != 250 {
			t.Fatalf("after the retry: %+v %+v", dl.Delivery, dl.Log)
		}
		if msgs := sink.messages(); len(msgs) != 1 || msgs[0].to[0] != "secteam@example.com" {
			t.Fatalf("sink got %v", msgs)
		}

		e.notify(t, notify.Message{Type: notify.EventReportAckOverdue, Subject: "Report R-2 not acknowledged"})
		e.deliverDue(t, nil)
		dl = e.deliveries(t, sub.ID)[1]
		if dl.Status != notify.StatusFailed || dl.Attempts != 1 || dl.Log[0].StatusCode != 550 {
			t.Fatalf("after 550: %+v", dl.Delivery)
		}
	})
}

// A relay that cannot be reached is retried, not failed.
func TestEmailRelayDown(t *testing.T) {
	eachDialect(t, func(t *testing.T, d store.Dialect) {
		sink := newSMTPSink(t)
		cfg := mailConfig(t, sink)
		e := newEnv(t, d, cfg)
		sub, err := e.svc.CreateSubscription(ctx, e.admin, notify.CreateSubscriptionRequest{Kind: notify.KindEmail,
			Email: "secteam@example.com", EventTypes: []string{"*"}})
		if err != nil {
			t.Fatal(err)
		}
		sink.ln.Close()
		e.notify(t, notify.Message{Type: notify.EventSupportEnding})
		e.deliverDue(t, nil)
		dl := e.deliveries(t, sub.ID)[0]
		if dl.Status != notify.StatusPending || dl.Log[0].StatusCode != 0 || !strings.HasPrefix(dl.LastError, "SMTP") {
			t.Fatalf("relay down: %+v", dl.Delivery)
		}
	})
}
