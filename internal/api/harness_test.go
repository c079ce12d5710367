package api_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	agentid "github.com/steward-iot/steward/agent/identity"
	"github.com/steward-iot/steward/agent/proto"
	"github.com/steward-iot/steward/internal/access"
	"github.com/steward-iot/steward/internal/advisory"
	"github.com/steward-iot/steward/internal/api"
	"github.com/steward-iot/steward/internal/audit"
	"github.com/steward-iot/steward/internal/blob"
	"github.com/steward-iot/steward/internal/clock"
	"github.com/steward-iot/steward/internal/deviceapi"
	"github.com/steward-iot/steward/internal/disclosure"
	"github.com/steward-iot/steward/internal/identity"
	"github.com/steward-iot/steward/internal/inventory"
	"github.com/steward-iot/steward/internal/notify"
	"github.com/steward-iot/steward/internal/release"
	"github.com/steward-iot/steward/internal/rollout"
	"github.com/steward-iot/steward/internal/store"
	"github.com/steward-iot/steward/internal/store/storetest"
	"github.com/steward-iot/steward/internal/suit"
	"github.com/steward-iot/steward/internal/tenancy"
	"github.com/steward-iot/steward/internal/trust"
	"github.com/steward-iot/steward/internal/vuln"
)

// env is a live API over a real database with two organizations: "ops"
// (the instance org) and "acme" (a tenant), and one token per role in each.
type env struct {
	t          testing.TB
	db         *store.DB
	ten        *tenancy.Service
	ident      *identity.Service
	inv        *inventory.Service
	rel        *release.Service
	vul        *vuln.Service
	rollout    *rollout.Service
	notify     *notify.Service
	reports    *disclosure.Service
	advisories *advisory.Service
	tuf        *trust.Service
	srv        *api.Server
	ts         *httptest.Server
	clock      *clock.Fake
	orgs       map[string]tenancy.Org
	tokens     map[string]map[access.Role]string // org slug → role → secret
}

func newEnv(t testing.TB, d store.Dialect) *env {
	t.Helper()
	ctx := context.Background()
	c := clock.NewFake(time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC))
	db := storetest.New(t, d, c)
	ten := tenancy.NewService(db.Tenancy(), c)
	ident, err := identity.NewService(context.Background(), db.Identity(), c)
	if err != nil {
		t.Fatal(err)
	}
	inv := inventory.NewService(db.Inventory(), c)
	checkins := inventory.NewCheckins(db.Inventory(), c, inventory.CheckinConfig{}, nil)
	blobs, err := blob.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	rel := release.NewService(db.Release(), blobs, c, 1<<20)
	vul := vuln.NewService(db.Vuln(), c)
	deploy := rollout.NewService(db.Rollout(), c)
	// Nothing is delivered here (no dispatcher runs); email subscriptions
	// only need a relay to be configured.
	notes, err := notify.NewService(db.Notify(), c, notify.Config{AllowInsecureURLs: true, AllowPrivateNetworks: true,
		SMTP: notify.SMTPConfig{Addr: "127.0.0.1:2525", From: "steward@example.com"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	advs := advisory.NewService(db.Advisory(), c, advisory.Options{Notifier: notes})
	reports, err := disclosure.NewService(db.Disclosure(), c, disclosure.Config{}, disclosure.Deps{Notifier: notes})
	if err != nil {
		t.Fatal(err)
	}
	tuf := trust.NewService(db.TUFMeta, db, nil, c, nil)
	tuf.SetAudit(db.Audit())
	srv, err := api.New(api.Deps{Tenancy: ten, Audit: audit.NewService(db.Audit()), Idempotency: db.Idempotency(), Trust: tuf,
		Inventory: inv, Identity: ident, Device: deviceapi.New(ident, checkins, c, nil), Release: rel, Vuln: vul,
		Rollout: deploy, Director: trust.NewDirector(db.DirectorRoots, db, c, 0, nil), SUIT: suit.NewEmitter(db),
		Notify: notes, Reports: reports, Advisories: advs, PublicURL: "https://steward.example",
		Ready: db.Ping, Clock: c, Version: "test", MaxBody: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, db: db, ten: ten, ident: ident, inv: inv, rel: rel, vul: vul, rollout: deploy, notify: notes, reports: reports, advisories: advs, srv: srv, ts: httptest.NewServer(srv.Handler()), clock: c,
		orgs: map[string]tenancy.Org{}, tokens: map[string]map[access.Role]string{}}
	t.Cleanup(e.ts.Close)
	e.tuf = tuf
	ops, secret, created, err := ten.Bootstrap(ctx, "ops", "Operator")
	if err != nil || !created {
		t.Fatalf("bootstrap: %v %v", created, err)
	}
	e.orgs["ops"] = ops
	opsAdmin := e.principal(secret)
	acme, err := ten.CreateOrg(ctx, opsAdmin, tenancy.CreateOrgRequest{Slug: "acme", Name: "Acme"})
	if err != nil {
		t.Fatal(err)
	}
	e.orgs["acme"] = acme.Org
	for slug, adminSecret := range map[string]string{"ops": secret, "acme": acme.Token.Secret} {
		admin := e.principal(adminSecret)
		e.tokens[slug] = map[access.Role]string{access.RoleAdmin: adminSecret}
		for _, r := range access.Roles[1:] {
			tok, err := ten.CreateToken(ctx, admin, tenancy.CreateTokenRequest{Name: string(r), Role: r})
			if err != nil {
				t.Fatal(err)
			}
			e.tokens[slug][r] = tok.Secret
		}
		if _, err := inv.CreateProduct(ctx, admin, inventory.CreateProductRequest{Slug: "gw", Name: "Gateway", HardwareID: "gw-hw",
			Capability: inventory.CapabilityAB, LinkClass: "wifi"}); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

func (e *env) principal(secret string) access.Principal {
	e.t.Helper()
	p, err := e.ten.Authenticate(context.Background(), secret)
	if err != nil {
		e.t.Fatal(err)
	}
	return p
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("response is not JSON (%v): %s", err, r.body)
	}
}

func (r response) problem(t testing.TB) api.Problem {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("error response Content-Type = %q, want application/problem+json; body %s", ct, r.body)
	}
	var p api.Problem
	r.json(t, &p)
	if p.Status != r.status || p.Title == "" || p.Detail == "" {
		t.Fatalf("incomplete problem document: %s", r.body)
	}
	return p
}

// do sends a request; body may be a string (sent raw) or a value (JSON).
func (e *env) do(method, path, token string, body any, headers ...string) response {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, e.ts.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := e.ts.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return response{status: res.StatusCode, header: res.Header, body: b}
}

// auditCounts returns the number of events per chain, to prove a failed
// request appended nothing.
func (e *env) auditCounts() map[string]int64 {
	e.t.Helper()
	out := map[string]int64{}
	err := e.db.Audit().Read(context.Background(), func(tx audit.Tx) error {
		hs, err := tx.AuditHeads(context.Background())
		for _, h := range hs {
			out[h.OrgID] = h.Seq
		}
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

// enrollDevice enrolls a fresh device key into org as pending.
func (e *env) enrollDevice(org, serial string) string {
	e.t.Helper()
	key, _, err := agentid.LoadOrCreate(e.t.TempDir(), agentid.Ed25519)
	if err != nil {
		e.t.Fatal(err)
	}
	body, _ := json.Marshal(proto.EnrollRequest{ProtocolVersion: 1, Org: org, HardwareID: "gw-hw", Serial: serial,
		Algorithm: string(key.Algorithm()), PublicKeyPEM: string(key.PublicKeyPEM()), Timestamp: e.clock.Now()})
	sig, _ := key.Sign(body)
	res, err := e.ident.Enroll(context.Background(), body, base64.StdEncoding.EncodeToString(sig))
	if err != nil {
		e.t.Fatal(err)
	}
	return res.DeviceID
}
