package deviceapi_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	agentid "github.com/steward-iot/steward/agent/identity"
	"github.com/steward-iot/steward/agent/proto"
	"github.com/steward-iot/steward/internal/access"
	"github.com/steward-iot/steward/internal/api"
	"github.com/steward-iot/steward/internal/audit"
	"github.com/steward-iot/steward/internal/clock"
	"github.com/steward-iot/steward/internal/deviceapi"
	"github.com/steward-iot/steward/internal/identity"
	"github.com/steward-iot/steward/internal/inventory"
	"github.com/steward-iot/steward/internal/store"
	"github.com/steward-iot/steward/internal/store/storetest"
	"github.com/steward-iot/steward/internal/tenancy"
)

type fleet struct {
	t        testing.TB
	db       *store.DB
	clock    *clock.Fake
	ts       *httptest.Server
	admin    string // admin token of org "acme"
	admin2   string // admin token of org "other"
	inv      *inventory.Service
	ident    *identity.Service
	checkins *inventory.Checkins
	p        access.Principal
}

func newFleet(t *testing.T, d store.Dialect) *fleet { return newFleetTB(t, d) }

// newFleetTB builds a fleet for a test or a benchmark.
func newFleetTB(t testing.TB, d store.Dialect) *fleet {
	t.Helper()
	ctx := context.Background()
	c := clock.NewFake(time.Now())
	db := storetest.New(t, d, c)
	ten := tenancy.NewService(db.Tenancy(), c)
	_, opsSecret, _, err := ten.Bootstrap(ctx, "ops", "Ops")
	if err != nil {
		t.Fatal(err)
	}
	ops, _ := ten.Authenticate(ctx, opsSecret)
	acme, err := ten.CreateOrg(ctx, ops, tenancy.CreateOrgRequest{Slug: "acme", Name: "Acme"})
	if err != nil {
		t.Fatal(err)
	}
	other, err := ten.CreateOrg(ctx, ops, tenancy.CreateOrgRequest{Slug: "other", Name: "Other"})
	if err != nil {
		t.Fatal(err)
	}
	ident, err := identity.NewService(ctx, db.Identity(), c)
	if err != nil {
		t.Fatal(err)
	}
	inv := inventory.NewService(db.Inventory(), c)
	checkins := inventory.NewCheckins(db.Inventory(), c, inventory.CheckinConfig{Interval: time.Minute}, nil)
	srv, err := api.New(api.Deps{Tenancy: ten, Audit: audit.NewService(db.Audit()), Idempotency: db.Idempotency(),
		Inventory: inv, Identity: ident, Device: deviceapi.New(ident, checkins, c, nil), Clock: c, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	f := &fleet{t: t, db: db, clock: c, ts: httptest.NewServer(srv.Handler()), admin: acme.Token.Secret,
		admin2: other.Token.Secret, inv: inv, ident: ident, checkins: checkins}
	t.Cleanup(f.ts.Close)
	f.p, _ = ten.Authenticate(ctx, acme.Token.Secret)
	for _, tok := range []string{f.admin, f.admin2} {
		org := "acme"
		if tok == f.admin2 {
			org = "other"
		}
		f.adminDo("POST", "/api/v1/orgs/"+org+"/products", tok, inventory.CreateProductRequest{Slug: "gw-100", Name: "Gateway",
			HardwareID: "gw-100-rev-b", Capability: inventory.CapabilityAB, LinkClass: "wifi"}, 201)
	}
	return f
}

func (f *fleet) adminDo(method, path, token string, body any, want int) []byte {
	f.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, f.ts.URL+path, rd)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != want {
		f.t.Fatalf("%s %s: %d, want %d: %s", method, path, res.StatusCode, want, b)
	}
	return b
}

type device struct {
	f      *fleet
	id     *agentid.Identity
	serial string
	devID  string
	token  string
}

func (f *fleet) newDevice(serial string) *device { return f.newDeviceAlg(serial, agentid.Ed25519) }

func (f *fleet) newDeviceAlg(serial string, alg agentid.Algorithm) *device {
	f.t.Helper()
	id, err := agentid.Generate(alg)
	if err != nil {
		f.t.Fatal(err)
	}
	return &device{f: f, id: id, serial: serial}
}

type result struct {
	status  int
	body    []byte
	problem proto.Problem
}

// post sends raw bytes, optionally signed by signer.
func (d *device) post(path string, body []byte, signer *agentid.Identity, bearer string) result {
	d.f.t.Helper()
	req, _ := http.NewRequest("POST", d.f.ts.URL+path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if signer != nil {
		sig, err := signer.Sign(body)
		if err != nil {
			d.f.t.Fatal(err)
		}
		req.Header.Set(proto.SignatureHeader, base64.StdEncoding.EncodeToString(sig))
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		d.f.t.Fatal(err)
	}
	defer res.Body.Close()
	r := result{status: res.StatusCode}
	r.body, _ = io.ReadAll(res.Body)
	if res.StatusCode >= 400 {
		if ct := res.Header.Get("Content-Type"); ct != "application/problem+json" {
			d.f.t.Fatalf("error with Content-Type %q: %s", ct, r.body)
		}
		_ = json.Unmarshal(r.body, &r.problem)
	}
	return r
}

func (d *device) enrollBody(org, token string) []byte {
	b, _ := json.Marshal(proto.EnrollRequest{ProtocolVersion: 1, Org: org, HardwareID: "gw-100-rev-b", Serial: d.serial,
		Algorithm: string(d.id.Algorithm()), PublicKeyPEM: string(d.id.PublicKeyPEM()), EnrollmentToken: token, Timestamp: d.f.clock.Now()})
	return b
}

func (d *device) enroll(org, token string) result {
	d.f.t.Helper()
	r := d.post("/device/v1/enroll", d.enrollBody(org, token), d.id, "")
	if r.status < 300 {
		var er proto.EnrollResponse
		_ = json.Unmarshal(r.body, &er)
		d.devID = er.DeviceID
	}
	return r
}

func (d *device) authBody(at time.Time) []byte {
	b, _ := json.Marshal(proto.AuthRequest{KeyID: d.id.KeyID(), Timestamp: at})
	return b
}

func (d *device) auth() result {
	d.f.t.Helper()
	d.f.clock.Advance(time.Millisecond) // each auth needs a newer timestamp
	r := d.post("/device/v1/auth", d.authBody(d.f.clock.Now()), d.id, "")
	if r.status == 200 {
		var ar proto.AuthResponse
		_ = json.Unmarshal(r.body, &ar)
		d.token = ar.Token
	}
	return r
}

func report(version string, battery int) proto.CheckinRequest {
	return proto.CheckinRequest{
		Installed: proto.Installed{Version: version, Components: []proto.Component{
			{Purl: "pkg:deb/debian/openssl@3.0.11-1~deb12u2?arch=armhf", Version: "3.0.11-1~deb12u2"},
			{Purl: "pkg:generic/busybox@1.36.1", Version: "1.36.1"}}},
		State: proto.State{BatteryPercent: &battery, Link: "wifi", FreeStorage: 1 << 30},
	}
}

func (d *device) checkin(req any) result {
	d.f.t.Helper()
	b, _ := json.Marshal(req)
	return d.post("/device/v1/checkin", b, nil, d.token)
}

func (f *fleet) auditEvents() int64 {
	f.t.Helper()
	if _, err := audit.SealPending(context.Background(), f.db.Audit()); err != nil {
		f.t.Fatal(err)
	}
	res, err := audit.Verify(context.Background(), f.db.Audit())
	if err != nil || len(res.Breaks) > 0 {
		f.t.Fatalf("audit: %+v %v", res, err)
	}
	return res.Events
}

func want(t *testing.T, r result, status int, code string) {
	t.Helper()
	if r.status != status || (code != "" && r.problem.Code != code) {
		t.Fatalf("status %d code %q, want %d %q: %s", r.status, r.problem.Code, status, code, r.body)
	}
}

// TestEnrollmentStateMachine walks pending → active → rejected → active →
// revoked, checking that each operator change applies on the device's very
// next request even though its token has not expired.
func TestEnrollmentStateMachine(t *testing.T) {
	for _, d := range storetest.Dialects(t) {
		t.Run(string(d), func(t *testing.T) {
			f := newFleet(t, d)
			dev := f.newDevice("SN-0001")
			want(t, dev.enroll("acme", ""), 202, "")
			want(t, dev.auth(), 403, proto.CodeDevicePending)
			// Enrolling again is idempotent.
			first := dev.devID
			if r := dev.enroll("acme", ""); r.status != 202 || dev.devID != first {
				t.Fatalf("re-enroll: %d %s", r.status, r.body)
			}
			var list struct{ Items []inventory.Device }
			json.Unmarshal(f.adminDo("GET", "/api/v1/orgs/acme/devices?status=pending", f.admin, nil, 200), &list)
			if len(list.Items) != 1 || list.Items[0].ID != dev.devID {
				t.Fatalf("pending list: %+v", list.Items)
			}
			// Another org cannot act on it.
			f.adminDo("POST", "/api/v1/orgs/other/devices/accept", f.admin2, map[string]any{"device_ids": []string{dev.devID}}, 200)
			want(t, dev.auth(), 403, proto.CodeDevicePending)

			f.adminDo("POST", "/api/v1/orgs/acme/devices/accept", f.admin, map[string]any{"device_ids": []string{dev.devID}}, 200)
			want(t, dev.auth(), 200, "")
			want(t, dev.checkin(report("2.3.0", 80)), 200, "")

			f.adminDo("POST", "/api/v1/orgs/acme/devices/reject", f.admin, map[string]any{"device_ids": []string{dev.devID}}, 200)
			want(t, dev.checkin(report("2.3.0", 80)), 403, proto.CodeDeviceRejected)
			want(t, dev.auth(), 403, proto.CodeDeviceRejected)

			f.adminDo("POST", "/api/v1/orgs/acme/devices/accept", f.admin, map[string]any{"device_ids": []string{dev.devID}}, 200)
			want(t, dev.auth(), 200, "")
			want(t, dev.checkin(report("2.3.0", 80)), 200, "")
			var res struct{ Results []identity.StatusResult }
			json.Unmarshal(f.adminDo("POST", "/api/v1/orgs/acme/devices/revoke", f.admin,
				map[string]any{"device_ids": []string{dev.devID, "no-such-device"}}, 200), &res)
			if len(res.Results) != 2 || res.Results[0].Status != "revoked" || res.Results[1].Error == "" {
				t.Fatalf("bulk revoke results: %+v", res.Results)
			}
			want(t, dev.checkin(report("2.3.0", 80)), 403, proto.CodeDeviceRevoked)
			want(t, dev.auth(), 403, proto.CodeDeviceRevoked)
			// A revoked device cannot be accepted back: it must re-enroll with a new key after decommissioning.
			json.Unmarshal(f.adminDo("POST", "/api/v1/orgs/acme/devices/accept", f.admin, map[string]any{"device_ids": []string{dev.devID}}, 200), &res)
			if res.Results[0].Error == "" {
				t.Fatal("a revoked device was accepted again")
			}
		})
	}
}

func TestEnrollmentTokensAndPreauthorization(t *testing.T) {
	f := newFleet(t, store.SQLite)
	var tok identity.CreatedEnrollmentToken
	json.Unmarshal(f.adminDo("POST", "/api/v1/orgs/acme/enrollment-tokens", f.admin,
		identity.CreateEnrollmentTokenRequest{Name: "factory", Product: "gw-100", MaxUses: 2, ExpiresIn: "1h"}, 201), &tok)
	a, b, c := f.newDevice("A"), f.newDevice("B"), f.newDevice("C")
	want(t, a.enroll("", tok.Secret), 200, "")
	want(t, a.auth(), 200, "")
	// Secure-element devices use ECDSA P-256 keys.
	se := f.newDeviceAlg("SE-1", agentid.ECDSAP256)
	f.adminDo("POST", "/api/v1/orgs/acme/preauthorizations", f.admin, identity.PreauthorizeRequest{KeyIDs: []string{se.id.KeyID()}}, 201)
	want(t, se.enroll("acme", ""), 200, "")
	want(t, se.auth(), 200, "")
	want(t, se.checkin(report("1.0.0", 90)), 200, "")
	want(t, b.enroll("", tok.Secret), 200, "")
	want(t, c.enroll("", tok.Secret), 401, "") // used up
	// A token of one org does not enroll into another.
	want(t, c.enroll("other", ""), 202, "")
	var other struct{ Items []inventory.Device }
	json.Unmarshal(f.adminDo("GET", "/api/v1/orgs/other/devices", f.admin2, nil, 200), &other)
	if len(other.Items) != 1 || other.Items[0].Status != "pending" {
		t.Fatalf("other org: %+v", other.Items)
	}

	var tok2 identity.CreatedEnrollmentToken
	json.Unmarshal(f.adminDo("POST", "/api/v1/orgs/acme/enrollment-tokens", f.admin,
		identity.CreateEnrollmentTokenRequest{Name: "short", ExpiresIn: "1m"}, 201), &tok2)
	f.clock.Advance(2 * time.Minute)
	want(t, f.newDevice("D").enroll("", tok2.Secret), 401, "")
	f.adminDo("DELETE", "/api/v1/orgs/acme/enrollment-tokens/"+tok.ID, f.admin, nil, 200)
	want(t, f.newDevice("E").enroll("", tok.Secret), 401, "")
	want(t, f.newDevice("F").enroll("", "set_bogus"), 401, "")

	// Pre-authorized serials and keys go active without a token.
	g := f.newDevice("PRE-1")
	h := f.newDevice("anything")
	f.adminDo("POST", "/api/v1/orgs/acme/preauthorizations", f.admin,
		identity.PreauthorizeRequest{Serials: []string{"PRE-1"}, KeyIDs: []string{h.id.KeyID()}}, 201)
	want(t, g.enroll("acme", ""), 200, "")
	want(t, h.enroll("acme", ""), 200, "")
	// A serial already enrolled cannot be taken by another key.
	want(t, f.newDevice("PRE-1").enroll("acme", ""), 409, "")
	// Unknown hardware id and unknown org.
	x := f.newDevice("X")
	body := bytes.Replace(x.enrollBody("acme", ""), []byte("gw-100-rev-b"), []byte("toaster"), 1)
	want(t, x.post("/device/v1/enroll", body, x.id, ""), 400, "")
	want(t, x.enroll("nope", ""), 404, "")
}

// TestForgedReplayedExpired attacks enrollment and authentication.
func TestForgedReplayedExpired(t *testing.T) {
	f := newFleet(t, store.SQLite)
	dev, mallory := f.newDevice("SN-1"), f.newDevice("SN-M")
	f.adminDo("POST", "/api/v1/orgs/acme/preauthorizations", f.admin, identity.PreauthorizeRequest{Serials: []string{"SN-1"}}, 201)
	before := f.auditEvents()

	// Forged enrollment: signed by another key than the one enclosed.
	want(t, dev.post("/device/v1/enroll", dev.enrollBody("acme", ""), mallory.id, ""), 401, proto.CodeBadSignature)
	// Altered after signing.
	body := dev.enrollBody("acme", "")
	sig, _ := dev.id.Sign(body)
	altered := bytes.Replace(body, []byte("SN-1"), []byte("SN-2"), 1)
	req, _ := http.NewRequest("POST", f.ts.URL+"/device/v1/enroll", bytes.NewReader(altered))
	req.Header.Set(proto.SignatureHeader, base64.StdEncoding.EncodeToString(sig))
	if res, _ := http.DefaultClient.Do(req); res.StatusCode != 401 {
		t.Fatalf("altered enrollment: %d", res.StatusCode)
	}
	want(t, dev.post("/device/v1/enroll", dev.enrollBody("acme", ""), nil, ""), 401, proto.CodeBadSignature)
	if f.auditEvents() != before {
		t.Fatal("rejected enrollments wrote audit events")
	}
	want(t, dev.enroll("acme", ""), 200, "")

	// Forged auth: mallory signs for dev's key id.
	want(t, dev.post("/device/v1/auth", dev.authBody(f.clock.Now()), mallory.id, ""), 401, proto.CodeBadSignature)
	// Skewed timestamps.
	want(t, dev.post("/device/v1/auth", dev.authBody(f.clock.Now().Add(-10*time.Minute)), dev.id, ""), 401, proto.CodeClockSkew)
	want(t, dev.post("/device/v1/auth", dev.authBody(f.clock.Now().Add(10*time.Minute)), dev.id, ""), 401, proto.CodeClockSkew)
	// Replay: the same signed request twice.
	f.clock.Advance(time.Second)
	authBody := dev.authBody(f.clock.Now())
	want(t, dev.post("/device/v1/auth", authBody, dev.id, ""), 200, "")
	want(t, dev.post("/device/v1/auth", authBody, dev.id, ""), 401, proto.CodeReplay)
	// Older but in-window timestamp: also a replay.
	want(t, dev.post("/device/v1/auth", dev.authBody(f.clock.Now().Add(-time.Second)), dev.id, ""), 401, proto.CodeReplay)
	// Unknown key.
	want(t, mallory.post("/device/v1/auth", mallory.authBody(f.clock.Now()), mallory.id, ""), 401, proto.CodeUnknownDevice)

	// Device tokens: tampered, wrong kind, expired.
	want(t, dev.auth(), 200, "")
	good := dev.token
	dev.token = good[:len(good)-2] + "xx"
	want(t, dev.checkin(report("1.0.0", 50)), 401, proto.CodeTokenInvalid)
	dev.token = f.admin
	want(t, dev.checkin(report("1.0.0", 50)), 401, proto.CodeTokenInvalid)
	dev.token = good
	want(t, dev.checkin(report("1.0.0", 50)), 200, "")
	f.clock.Advance(identity.DeviceTokenTTL + time.Second)
	want(t, dev.checkin(report("1.0.0", 50)), 401, proto.CodeTokenInvalid)
	// Device tokens do not open the admin API.
	req, _ = http.NewRequest("GET", f.ts.URL+"/api/v1/whoami", nil)
	req.Header.Set("Authorization", "Bearer "+good)
	if res, _ := http.DefaultClient.Do(req); res.StatusCode != 401 {
		t.Fatalf("device token on the admin API: %d", res.StatusCode)
	}
}

// TestCheckin covers reports: cheap when unchanged, recorded when changed,
// and bad ones refused without changing anything.
func TestCheckin(t *testing.T) {
	for _, d := range storetest.Dialects(t) {
		t.Run(string(d), func(t *testing.T) {
			f := newFleet(t, d)
			dev := f.newDevice("SN-C")
			f.adminDo("POST", "/api/v1/orgs/acme/preauthorizations", f.admin, identity.PreauthorizeRequest{Serials: []string{"SN-C"}}, 201)
			want(t, dev.enroll("acme", ""), 200, "")
			want(t, dev.auth(), 200, "")
			r := dev.checkin(report("2.3.0", 80))
			want(t, r, 200, "")
			var resp proto.CheckinResponse
			json.Unmarshal(r.body, &resp)
			if resp.Action != proto.ActionNone || resp.PollIntervalSeconds < 54 || resp.PollIntervalSeconds > 66 {
				t.Fatalf("checkin reply: %+v", resp)
			}
			events := f.auditEvents()
			for range 3 {
				want(t, dev.checkin(report("2.3.0", 79)), 200, "")
			}
			if f.auditEvents() != events {
				t.Fatal("unchanged reports wrote audit events")
			}
			f.clock.Advance(time.Minute)
			want(t, dev.checkin(report("2.4.0", 60)), 200, "")
			if f.auditEvents() != events+1 {
				t.Fatal("a version change was not audited")
			}
			if err := f.checkins.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			var dd inventory.DeviceDetail
			json.Unmarshal(f.adminDo("GET", "/api/v1/orgs/acme/devices/"+dev.devID, f.admin, nil, 200), &dd)
			if dd.InstalledVersion != "2.4.0" || len(dd.Components) != 2 || len(dd.Versions) != 2 || dd.Versions[0].Version != "2.4.0" ||
				dd.LastSeenAt == nil || dd.State.BatteryPercent == nil || *dd.State.BatteryPercent != 60 || dd.State.Link != "wifi" {
				t.Fatalf("device after check-ins: %+v", dd)
			}

			bad := map[string]struct {
				body   string
				status int
			}{
				"malformed":     {`{"installed":`, 400},
				"unknown field": {`{"installed":{"version":"1"},"state":{},"extra":1}`, 400},
				"no version":    {`{"installed":{"version":""},"state":{}}`, 400},
				"battery 150":   {`{"installed":{"version":"1"},"state":{"battery_percent":150}}`, 400},
				"bad purl":      {`{"installed":{"version":"1","components":[{"purl":"openssl 3.0"}]},"state":{}}`, 400},
				"bad link":      {`{"installed":{"version":"1"},"state":{"link":"carrier-pigeon"}}`, 400},
				"neg storage":   {`{"installed":{"version":"1"},"state":{"free_storage_bytes":-1}}`, 400},
				"oversized":     {`{"installed":{"version":"1","components":[` + strings.Repeat(`{"purl":"pkg:generic/x@1"},`, 20000) + `{"purl":"pkg:generic/y@1"}]},"state":{}}`, 413},
				"duplicate":     {`{"installed":{"version":"1","components":[{"purl":"pkg:generic/x@1"},{"purl":"pkg:generic/x@1"}]},"state":{}}`, 400},
			}
			for name, c := range bad {
				before := f.auditEvents()
				r := dev.post("/device/v1/checkin", []byte(c.body), nil, dev.token)
				if r.status != c.status || r.problem.Detail == "" {
					t.Fatalf("%s: %d %s", name, r.status, r.body)
				}
				if f.auditEvents() != before {
					t.Fatalf("%s changed the audit log", name)
				}
			}
			var after inventory.DeviceDetail
			json.Unmarshal(f.adminDo("GET", "/api/v1/orgs/acme/devices/"+dev.devID, f.admin, nil, 200), &after)
			if after.InstalledVersion != "2.4.0" || len(after.Components) != 2 {
				t.Fatalf("bad reports changed the device: %+v", after)
			}
		})
	}
}

// TestInventoryQueries exercises search, groups, tags, export and versions.
func TestInventoryQueries(t *testing.T) {
	for _, d := range storetest.Dialects(t) {
		t.Run(string(d), func(t *testing.T) { testInventoryQueries(t, d) })
	}
}

func testInventoryQueries(t *testing.T, d store.Dialect) {
	f := newFleet(t, d)
	var tok identity.CreatedEnrollmentToken
	json.Unmarshal(f.adminDo("POST", "/api/v1/orgs/acme/enrollment-tokens", f.admin,
		identity.CreateEnrollmentTokenRequest{Name: "bulk", MaxUses: 100}, 201), &tok)
	versions := []string{"2.3.9", "2.3.10", "2.4.0", "2.10.0", "2.4.0-rc.1"}
	var ids []string
	for i, v := range versions {
		dev := f.newDevice(fmt.Sprintf("Q-%d", i))
		want(t, dev.enroll("", tok.Secret), 200, "")
		want(t, dev.auth(), 200, "")
		want(t, dev.checkin(report(v, 10*i)), 200, "")
		ids = append(ids, dev.devID)
	}
	f.checkins.Flush(context.Background())
	f.adminDo("PUT", "/api/v1/orgs/acme/devices/"+ids[0]+"/tags", f.admin, map[string]any{"tags": map[string]string{"region": "eu"}}, 200)
	f.adminDo("PUT", "/api/v1/orgs/acme/devices/"+ids[3]+"/tags", f.admin, map[string]any{"tags": map[string]string{"region": "eu"}}, 200)

	search := func(q string) []string {
		var page struct{ Items []inventory.Device }
		json.Unmarshal(f.adminDo("GET", "/api/v1/orgs/acme/devices?query="+urlEscape(q), f.admin, nil, 200), &page)
		var got []string
		for _, d := range page.Items {
			got = append(got, d.InstalledVersion)
		}
		return got
	}
	cases := map[string][]string{
		`version < "2.4.0"`:                             {"2.3.9", "2.3.10", "2.4.0-rc.1"},
		`version >= "2.4.0" and tag.region = "eu"`:      {"2.10.0"},
		`product = "gw-100" and battery < 25`:           {"2.3.9", "2.3.10", "2.4.0"},
		`tag.region != "eu"`:                            {"2.3.10", "2.4.0", "2.4.0-rc.1"},
		`version in ("2.4.0", "2.3.9") or battery > 35`: {"2.3.9", "2.4.0", "2.4.0-rc.1"},
	}
	for q, wantVersions := range cases {
		got := search(q)
		if !sameSet(got, wantVersions) {
			t.Errorf("%s: got %v, want %v", q, got, wantVersions)
		}
	}
	// A bad query is a 400 that says where.
	b := f.adminDo("GET", "/api/v1/orgs/acme/devices?query="+urlEscape(`version < `), f.admin, nil, 400)
	if !strings.Contains(string(b), "query") {
		t.Fatalf("bad query problem: %s", b)
	}
	// Dynamic and static groups.
	var dyn, static inventory.Group
	json.Unmarshal(f.adminDo("POST", "/api/v1/orgs/acme/groups", f.admin, inventory.CreateGroupRequest{Name: "old", Query: `version < "2.4.0"`}, 201), &dyn)
	json.Unmarshal(f.adminDo("POST", "/api/v1/orgs/acme/groups", f.admin, inventory.CreateGroupRequest{Name: "canary"}, 201), &static)
	f.adminDo("POST", "/api/v1/orgs/acme/groups/"+static.ID+"/members", f.admin, map[string]any{"device_ids": ids[:2]}, 200)
	f.adminDo("POST", "/api/v1/orgs/acme/groups/"+dyn.ID+"/members", f.admin, map[string]any{"device_ids": ids[:2]}, 409)
	for g, n := range map[string]int{dyn.ID: 3, static.ID: 2} {
		var page struct{ Items []inventory.Device }
		json.Unmarshal(f.adminDo("GET", "/api/v1/orgs/acme/devices?group="+g, f.admin, nil, 200), &page)
		if len(page.Items) != n {
			t.Errorf("group %s has %d members, want %d", g, len(page.Items), n)
		}
	}
	// Export.
	csvBody := f.adminDo("GET", "/api/v1/orgs/acme/devices/export?format=csv&query="+urlEscape(`tag.region = "eu"`), f.admin, nil, 200)
	if lines := strings.Split(strings.TrimSpace(string(csvBody)), "\n"); len(lines) != 3 || !strings.Contains(lines[1], "region=eu") {
		t.Fatalf("csv export: %s", csvBody)
	}
	var all []inventory.Device
	if err := json.Unmarshal(f.adminDo("GET", "/api/v1/orgs/acme/devices/export?format=json", f.admin, nil, 200), &all); err != nil || len(all) != 5 {
		t.Fatalf("json export: %d devices, %v", len(all), err)
	}
	// Versions of the product.
	var vr inventory.VersionReport
	json.Unmarshal(f.adminDo("GET", "/api/v1/orgs/acme/products/gw-100/versions?stale_days=1", f.admin, nil, 200), &vr)
	if vr.Active != 5 || len(vr.Distribution) != 5 || vr.Distribution[0].Version != "2.10.0" || vr.NotSeen != 0 {
		t.Fatalf("versions: %+v", vr)
	}
	f.clock.Advance(49 * time.Hour)
	json.Unmarshal(f.adminDo("GET", "/api/v1/orgs/acme/products/gw-100/versions?stale_days=2", f.admin, nil, 200), &vr)
	if vr.NotSeen != 5 {
		t.Fatalf("not seen after 49h with stale_days=2: %d", vr.NotSeen)
	}
	// A device that never reported has no version: it matches no
	// version comparison rather than sorting below every version.
	silent := f.newDevice("Q-silent")
	want(t, silent.enroll("", tok.Secret), 200, "")
	if got := search(`version < "99"`); len(got) != 5 {
		t.Fatalf("version < 99 matched %d devices, want the 5 that reported", len(got))
	}
	if got := search(`version != "2.3.9"`); len(got) != 5 {
		t.Fatalf("version != 2.3.9 matched %d devices, want 4 reported + 1 unknown", len(got))
	}
}

func urlEscape(s string) string { return url.QueryEscape(s) }

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	m := map[string]int{}
	for _, x := range a {
		m[x]++
	}
	for _, x := range b {
		m[x]--
	}
	for _, v := range m {
		if v != 0 {
			return false
		}
	}
	return true
}
