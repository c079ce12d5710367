package notify_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/steward-iot/steward/internal/access"
	"github.com/steward-iot/steward/internal/audit"
	"github.com/steward-iot/steward/internal/clock"
	"github.com/steward-iot/steward/internal/id"
	"github.com/steward-iot/steward/internal/notify"
	"github.com/steward-iot/steward/internal/problem"
	"github.com/steward-iot/steward/internal/store"
	"github.com/steward-iot/steward/internal/store/storetest"
	"github.com/steward-iot/steward/internal/tenancy"
)

// t0 has a sub-microsecond part: stored times must be truncated alike.
var t0 = time.Date(2026, 11, 26, 8, 0, 0, 123456789, time.UTC)

var ctx = context.Background()

// eachDialect runs fn on a fresh database of every backend, in parallel.
func eachDialect(t *testing.T, fn func(t *testing.T, d store.Dialect)) {
	for _, d := range storetest.Dialects(t) {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			fn(t, d)
		})
	}
}

// labConfig lets webhooks reach httptest servers on loopback over http.
func labConfig() notify.Config {
	return notify.Config{AllowInsecureURLs: true, AllowPrivateNetworks: true, Timeout: 5 * time.Second}
}

type env struct {
	db    *store.DB
	clk   *clock.Fake
	svc   *notify.Service
	org   tenancy.Org
	admin access.Principal
}

func newEnv(t *testing.T, d store.Dialect, cfg notify.Config) *env {
	t.Helper()
	clk := clock.NewFake(t0)
	db := storetest.New(t, d, clk)
	e := &env{db: db, clk: clk, org: newOrg(t, db, "acme")}
	e.svc = e.service(t, cfg)
	e.admin = principal(e.org, access.RoleAdmin)
	return e
}

// service returns another service (a replica, or one configured
// differently) over the same store and clock.
func (e *env) service(t *testing.T, cfg notify.Config) *notify.Service {
	t.Helper()
	svc, err := notify.NewService(e.db.Notify(), e.clk, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

func newOrg(t *testing.T, db *store.DB, slug string) tenancy.Org {
	t.Helper()
	o := tenancy.Org{ID: id.New(), Slug: slug, Name: "Org " + slug, CreatedAt: clock.Norm(t0)}
	if err := db.Write(ctx, func(tx *store.Tx) error { return tx.InsertOrg(ctx, o) }); err != nil {
		t.Fatal(err)
	}
	return o
}

func principal(o tenancy.Org, role access.Role) access.Principal {
	return access.Principal{OrgID: o.ID, OrgSlug: o.Slug, Role: role,
		Actor: access.Actor{Kind: access.ActorToken, ID: "tok-" + string(role), Name: string(role) + " token"}}
}

func (e *env) webhook(t *testing.T, url string, types ...string) notify.CreatedSubscription {
	t.Helper()
	if len(types) == 0 {
		types = []string{notify.AllEvents}
	}
	sub, err := e.svc.CreateSubscription(ctx, e.admin, notify.CreateSubscriptionRequest{Kind: notify.KindWebhook, URL: url, EventTypes: types})
	if err != nil {
		t.Fatal(err)
	}
	return sub
}

func (e *env) notify(t *testing.T, m notify.Message) {
	t.Helper()
	if m.OrgID == "" {
		m.OrgID = e.org.ID
	}
	if err := e.svc.Notify(ctx, m); err != nil {
		t.Fatal(err)
	}
}

func (e *env) deliverDue(t *testing.T, svc *notify.Service) int {
	t.Helper()
	if svc == nil {
		svc = e.svc
	}
	n, err := svc.DeliverDue(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// deliveries returns the subscription's log, oldest first, with attempts.
func (e *env) deliveries(t *testing.T, subID string) []notify.DeliveryDetail {
	t.Helper()
	list, _, err := e.svc.ListDeliveries(ctx, e.admin, subID, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	var out []notify.DeliveryDetail
	for i := len(list) - 1; i >= 0; i-- {
		d, err := e.svc.GetDelivery(ctx, e.admin, subID, list[i].ID)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, d)
	}
	return out
}

func (e *env) auditEvents(t *testing.T) []audit.Event {
	t.Helper()
	var evs []audit.Event
	err := e.db.Read(ctx, func(tx *store.Tx) error {
		var err error
		evs, err = tx.ListAudit(ctx, audit.Query{OrgID: e.org.ID, Limit: 500})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func wantKind(t *testing.T, err error, k problem.Kind, what string) {
	t.Helper()
	if !problem.Is(err, k) {
		t.Fatalf("%s: got %v, want kind %d", what, err, k)
	}
}

// receiver is a webhook endpoint that records what it gets and answers
// with respond (200 by default).
type receiver struct {
	*httptest.Server
	mu      sync.Mutex
	got     []received
	respond func(n int, r *http.Request) (status int, body string, header http.Header)
}

type received struct {
	path   string
	header http.Header
	body   []byte
}

func newReceiver(t *testing.T, respond func(n int, r *http.Request) (int, string, http.Header)) *receiver {
	rc := &receiver{respond: respond}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.got = append(rc.got, received{path: r.URL.Path, header: r.Header.Clone(), body: body})
		n := len(rc.got)
		rc.mu.Unlock()
		status, text, h := http.StatusOK, `{"ok":true}`, http.Header(nil)
		if rc.respond != nil {
			status, text, h = rc.respond(n, r)
		}
		for k, v := range h {
			w.Header()[k] = v
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, text)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) requests() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.got...)
}

// decodePayload checks the Standard Webhooks body shape.
func decodePayload(t *testing.T, b []byte) (typ string, ts time.Time, data map[string]any) {
	t.Helper()
	var p struct {
		Type      string         `json:"type"`
		Timestamp string         `json:"timestamp"`
		Data      map[string]any `json:"data"`
	}
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatalf("payload %s: %v", b, err)
	}
	ts, err := time.Parse(time.RFC3339Nano, p.Timestamp)
	if err != nil {
		t.Fatalf("payload timestamp %q: %v", p.Timestamp, err)
	}
	return p.Type, ts, p.Data
}

// smtpSink is a minimal SMTP server: enough of EHLO, AUTH PLAIN, MAIL,
// RCPT, DATA, RSET and QUIT for net/smtp. dataReplies, when set, answers
// the end of each DATA in turn (then 250).
type smtpSink struct {
	ln          net.Listener
	mu          sync.Mutex
	dataReplies []string
	msgs        []sinkMessage
	auths       []string
	sessions    int
}

type sinkMessage struct {
	from string
	to   []string
	data []byte
}

func newSMTPSink(t *testing.T, dataReplies ...string) *smtpSink {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &smtpSink{ln: ln, dataReplies: dataReplies}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { s.serve(c) })
		}
	})
	return s
}

func (s *smtpSink) addr() string { return s.ln.Addr().String() }

func (s *smtpSink) messages() []sinkMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sinkMessage(nil), s.msgs...)
}

func (s *smtpSink) serve(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	s.mu.Lock()
	s.sessions++
	s.mu.Unlock()
	r := textproto.NewReader(bufio.NewReader(c))
	say := func(lines ...string) { _, _ = io.WriteString(c, strings.Join(lines, "\r\n")+"\r\n") }
	say("220 sink.test ESMTP ready")
	var cur sinkMessage
	for {
		line, err := r.ReadLine()
		if err != nil {
			return
		}
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "EHLO", "HELO":
			say("250-sink.test greets "+arg, "250-AUTH PLAIN", "250 8BITMIME")
		case "AUTH":
			mech, resp, _ := strings.Cut(arg, " ")
			b, err := base64.StdEncoding.DecodeString(resp)
			if mech != "PLAIN" || err != nil {
				say("504 unsupported")
				continue
			}
			s.mu.Lock()
			s.auths = append(s.auths, string(b))
			s.mu.Unlock()
			say("235 2.7.0 authenticated")
		case "MAIL":
			cur = sinkMessage{from: between(arg, "<", ">")}
			say("250 2.1.0 ok")
		case "RCPT":
			cur.to = append(cur.to, between(arg, "<", ">"))
			say("250 2.1.5 ok")
		case "DATA":
			say("354 end with <CRLF>.<CRLF>")
			data, err := r.ReadDotBytes()
			if err != nil {
				return
			}
			cur.data = data
			reply := "250 2.0.0 queued"
			s.mu.Lock()
			if len(s.dataReplies) > 0 {
				reply, s.dataReplies = s.dataReplies[0], s.dataReplies[1:]
			}
			if strings.HasPrefix(reply, "250") {
				s.msgs = append(s.msgs, cur)
			}
			s.mu.Unlock()
			cur = sinkMessage{}
			say(reply)
		case "RSET":
			cur = sinkMessage{}
			say("250 ok")
		case "NOOP":
			say("250 ok")
		case "QUIT":
			say("221 bye")
			return
		default:
			say("502 5.5.2 unknown command")
		}
	}
}

func between(s, open, close string) string {
	_, after, _ := strings.Cut(s, open)
	before, _, _ := strings.Cut(after, close)
	return before
}
