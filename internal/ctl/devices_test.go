package ctl

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	agentid "github.com/steward-iot/steward/agent/identity"
	"github.com/steward-iot/steward/agent/proto"
	"github.com/steward-iot/steward/internal/identity"
	"github.com/steward-iot/steward/internal/inventory"
)

// testDevice is a simulated device talking to the test server's device API.
type testDevice struct {
	id     *agentid.Identity
	serial string
	devID  string
}

// newProduct declares the product "gw" (hardware id gw-hw) through ctl.
func (s *testServer) newProduct(t *testing.T) inventory.Product {
	t.Helper()
	return decode[inventory.Product](t, ok(t, s.ctl(t, "--json", "products", "create", "gw", "--name", "Gateway",
		"--hardware-id", "gw-hw", "--capability", "ab", "--link", "wifi")).out)
}

// enroll enrolls a fresh device key with serial into org acme over the
// device API, with an enrollment token when token is not empty, and
// returns the device and the status the server gave it.
func (s *testServer) enroll(t *testing.T, serial, token string) (*testDevice, string) {
	t.Helper()
	key, _, err := agentid.LoadOrCreate(t.TempDir(), agentid.Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	d := &testDevice{id: key, serial: serial}
	var res proto.EnrollResponse
	s.devicePost(t, d, "/device/v1/enroll", proto.EnrollRequest{ProtocolVersion: 1, Org: "acme", HardwareID: "gw-hw",
		Serial: serial, Algorithm: string(key.Algorithm()), PublicKeyPEM: string(key.PublicKeyPEM()),
		EnrollmentToken: token, Timestamp: time.Now()}, true, "", &res)
	d.devID = res.DeviceID
	return d, res.Status
}

// pending enrolls n devices without a token: they are pending. Serials
// are SN-1, SN-2, ... in enrollment order across calls.
func (s *testServer) pending(t *testing.T, n int) []*testDevice {
	t.Helper()
	var devs []*testDevice
	for range n {
		s.serials++
		d, status := s.enroll(t, "SN-"+strconv.Itoa(s.serials), "")
		if status != proto.StatusPending {
			t.Fatalf("device enrolled %s, want pending", status)
		}
		devs = append(devs, d)
	}
	return devs
}

// checkin authenticates d and reports version and battery, then flushes
// the server's batched last-seen updates.
func (s *testServer) checkin(t *testing.T, d *testDevice, version string, battery int) {
	t.Helper()
	var auth proto.AuthResponse
	s.devicePost(t, d, "/device/v1/auth", proto.AuthRequest{KeyID: d.id.KeyID(), Timestamp: time.Now()}, true, "", &auth)
	s.devicePost(t, d, "/device/v1/checkin", proto.CheckinRequest{
		Installed: proto.Installed{Version: version, Components: []proto.Component{
			{Purl: "pkg:deb/debian/openssl@3.0.11-1~deb12u2?arch=armhf", Version: "3.0.11-1~deb12u2"},
			{Purl: "pkg:generic/busybox@1.36.1", Version: "1.36.1"}}},
		State: proto.State{BatteryPercent: &battery, Link: "wifi", FreeStorage: 1 << 30},
	}, false, auth.Token, nil)
	if err := s.checkins.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func (s *testServer) devicePost(t *testing.T, d *testDevice, path string, in any, sign bool, bearer string, out any) {
	t.Helper()
	body, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, s.url+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if sign {
		sig, err := d.id.Sign(body)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set(proto.SignatureHeader, base64.StdEncoding.EncodeToString(sig))
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode > 299 {
		t.Fatalf("POST %s: %d %s", path, res.StatusCode, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("POST %s: %v: %s", path, err, b)
		}
	}
}

func ids(devs ...*testDevice) []string {
	out := make([]string, len(devs))
	for i, d := range devs {
		out[i] = d.devID
	}
	return out
}

// dataRows returns the lines of a table after its header.
func dataRows(t *testing.T, table string) []string {
	t.Helper()
	lines := strings.Split(strings.TrimRight(table, "\n"), "\n")
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "ID ") {
		t.Fatalf("no table header in:\n%s", table)
	}
	return lines[1:]
}

func TestProducts(t *testing.T) {
	s := newTestServer(t)
	r := ok(t, s.ctl(t, "products", "create", "sensor-1", "--name", "Soil Sensor", "--hardware-id", "ss-1",
		"--capability", "mcu-suit", "--link", "lora", "--battery", "--end-of-support", "2031-12-31"))
	contains(t, r.out, "sensor-1", "Soil Sensor", "ss-1", "mcu-suit", "lora", "battery powered:  yes", "2031-12-31")
	gw := s.newProduct(t)
	if gw.Slug != "gw" || gw.Capability != inventory.CapabilityAB || gw.BatteryPowered || gw.EndOfSupport != nil {
		t.Errorf("products create --json = %+v", gw)
	}

	list := ok(t, s.ctl(t, "products", "list")).out
	contains(t, list, "HARDWARE ID", "CAPABILITY", "END OF SUPPORT")
	contains(t, rowWith(t, list, "sensor-1"), "Soil Sensor", "ss-1", "mcu-suit", "lora", "yes", "2031-12-31")
	contains(t, rowWith(t, list, gw.ID), "gw-hw", "ab", "wifi", "no")
	if ps := decode[[]inventory.Product](t, ok(t, s.ctl(t, "--json", "products", "list")).out); len(ps) != 2 {
		t.Errorf("products list --json = %+v, want 2 products", ps)
	}

	contains(t, ok(t, s.ctl(t, "products", "show", "gw")).out, gw.ID, "Gateway", "gw-hw")
	contains(t, ok(t, s.ctl(t, "products", "show", gw.ID)).out, "slug:", "gw")
	failed(t, s.ctl(t, "products", "show", "nope"), "error: Not Found (404)")

	failed(t, s.ctl(t, "products", "create", "x", "--name", "X", "--hardware-id", "x", "--capability", "dual", "--link", "wifi"),
		`error: Bad Request (400): capability: "dual": use one of`)
	failed(t, s.ctl(t, "products", "create", "x", "--name", "X", "--hardware-id", "x", "--capability", "ab", "--link", "wifi",
		"--end-of-support", "2031"), `end_of_support: "2031" is not a date`)
	failed(t, s.ctl(t, "products", "create", "x", "--name", "X"), `required flag(s) "capability", "hardware-id", "link" not set`)
}

func TestEnrollTokens(t *testing.T) {
	s := newTestServer(t)
	s.newProduct(t)
	r := ok(t, s.ctl(t, "enroll-tokens", "create", "--name", "line 2", "--product", "gw", "--max-uses", "5", "--expires-in", "48h"))
	contains(t, r.out, "line 2", "product:", "gw", "max uses:", "5", "shown only once")
	secret := wordWithPrefix(r.out, "set_")
	if secret == "" {
		t.Fatalf("no secret in:\n%s", r.out)
	}

	// A device enrolling with the secret is active at once.
	d, status := s.enroll(t, "SN-T1", secret)
	if status != proto.StatusActive {
		t.Fatalf("device enrolled with a token is %s, want active", status)
	}

	row := rowWith(t, ok(t, s.ctl(t, "enroll-tokens", "list")).out, "line 2")
	contains(t, row, "gw", "1/5", "active")
	toks := decode[[]identity.EnrollmentToken](t, ok(t, s.ctl(t, "--json", "enroll-tokens", "list")).out)
	if len(toks) != 1 || toks[0].Uses != 1 || time.Until(toks[0].ExpiresAt) > 48*time.Hour || time.Until(toks[0].ExpiresAt) < 47*time.Hour {
		t.Fatalf("enroll-tokens list --json = %+v, want one token used once, expiring in 48h", toks)
	}
	if strings.Contains(ok(t, s.ctl(t, "--json", "enroll-tokens", "list")).out, secret) {
		t.Error("enroll-tokens list shows the secret")
	}

	created := decode[identity.CreatedEnrollmentToken](t, ok(t, s.ctl(t, "--json", "enroll-tokens", "create", "--name", "spare")).out)
	if created.Secret == "" || created.MaxUses != 1 || created.ProductID != "" {
		t.Errorf("enroll-tokens create --json = %+v, want the secret, 1 use, any product", created)
	}
	contains(t, rowWith(t, ok(t, s.ctl(t, "enroll-tokens", "list")).out, "spare"), "any", "0/1", "active")

	r = ok(t, s.ctl(t, "enroll-tokens", "revoke", toks[0].ID, created.ID))
	contains(t, r.out, "revoked enrollment token "+toks[0].ID+" (line 2)", "revoked enrollment token "+created.ID+" (spare)")
	contains(t, rowWith(t, ok(t, s.ctl(t, "enroll-tokens", "list")).out, "line 2"), "revoked")

	r = s.ctl(t, "enroll-tokens", "revoke", created.ID)
	failed(t, r, "error: "+created.ID+": Conflict (409): enrollment token "+created.ID+" was already revoked")
	contains(t, r.errOut, "error: 1 of 1 enrollment tokens not revoked")

	// The enrolled device stays.
	contains(t, rowWith(t, ok(t, s.ctl(t, "devices", "list")).out, d.devID), "SN-T1", "active")

	failed(t, s.ctl(t, "enroll-tokens", "create", "--name", "x", "--product", "nope"), `error: Bad Request (400): product: no product "nope"`)
}

func TestEnrollTokenLostSecret(t *testing.T) {
	s := newTestServer(t)
	s.mu.Lock()
	s.lostResponse = true
	s.mu.Unlock()
	r := s.ctl(t, "enroll-tokens", "create", "--name", "lost")
	failed(t, r, "error: enrollment token ")
	contains(t, r.errOut, " was created but the server did not return its secret; revoke it with 'steward ctl enroll-tokens revoke ")
}

func TestPreauthorize(t *testing.T) {
	s := newTestServer(t)
	s.newProduct(t)
	r := ok(t, s.ctl(t, "devices", "preauthorize", "--product", "gw", "--serial", "SN-P1", "--serial", "SN-P2"))
	contains(t, rowWith(t, r.out, "SN-P1"), "serial", "gw")
	contains(t, rowWith(t, r.out, "SN-P2"), "serial", "gw")
	contains(t, r.out, "2 preauthorized")

	if _, status := s.enroll(t, "SN-P1", ""); status != proto.StatusActive {
		t.Errorf("preauthorized device enrolled %s, want active", status)
	}
	if _, status := s.enroll(t, "SN-X", ""); status != proto.StatusPending {
		t.Errorf("other device enrolled %s, want pending", status)
	}

	failed(t, s.ctl(t, "devices", "preauthorize"), "error: give at least one --serial or --key-id")
	failed(t, s.ctl(t, "devices", "preauthorize", "--key-id", "abc"), `error: Bad Request (400): key_ids: "abc" is not a 64-character`)
}

func TestDevicesAcceptReject(t *testing.T) {
	s := newTestServer(t)
	s.newProduct(t)
	devs := s.pending(t, 3)

	pending := ok(t, s.ctl(t, "devices", "list", "--status", "pending")).out
	contains(t, pending, "ID", "PRODUCT", "SERIAL", "STATUS", "VERSION", "LAST SEEN", "LINK", "BATTERY")
	if rows := dataRows(t, pending); len(rows) != 3 {
		t.Fatalf("devices list --status pending =\n%s\nwant 3 devices", pending)
	}
	for _, d := range devs {
		contains(t, rowWith(t, pending, d.devID), "gw", d.serial, "pending", "never")
	}

	// Two in one request.
	s.requests()
	r := ok(t, s.ctl(t, "devices", "accept", devs[0].devID, devs[1].devID))
	contains(t, r.out, "accepted device "+devs[0].devID+": active", "accepted device "+devs[1].devID+": active")
	if n := countPosts(s.requests(), "/devices/accept"); n != 1 {
		t.Errorf("accepting two devices took %d requests, want 1", n)
	}

	active := ok(t, s.ctl(t, "devices", "list", "--status", "active")).out
	if rows := dataRows(t, active); len(rows) != 2 {
		t.Fatalf("devices list --status active =\n%s\nwant the 2 accepted devices", active)
	}
	contains(t, active, devs[0].devID, devs[1].devID)

	r = ok(t, s.ctl(t, "devices", "reject", devs[2].devID))
	contains(t, r.out, "rejected device "+devs[2].devID+": rejected")
	if rows := dataRows(t, ok(t, s.ctl(t, "devices", "list", "--status", "pending")).out); len(rows) != 0 {
		t.Errorf("pending devices left after accept and reject: %v", rows)
	}

	// One bad device fails the command but not the others.
	const missing = "01900000-0000-7000-8000-000000000000"
	r = s.ctl(t, "devices", "revoke", devs[0].devID, missing)
	failed(t, r, "error: "+missing+": ")
	contains(t, r.out, "revoked device "+devs[0].devID+": revoked")
	contains(t, r.errOut, "error: 1 of 2 devices not revoked")
	r = s.ctl(t, "devices", "accept", devs[0].devID)
	failed(t, r, "error: "+devs[0].devID+": cannot accept a revoked device")

	res := decode[[]identity.StatusResult](t, ok(t, s.ctl(t, "--json", "devices", "reject", devs[1].devID)).out)
	if len(res) != 1 || res[0].DeviceID != devs[1].devID || res[0].Status != proto.StatusRejected {
		t.Errorf("devices reject --json = %+v", res)
	}

	failed(t, s.ctl(t, "devices", "list", "--status", "pendnig"), `error: --status "pendnig" is not a device status`)
}

func TestDeviceBulkChunks(t *testing.T) {
	s := newTestServer(t)
	defer func(n int) { bulkSize = n }(bulkSize)
	bulkSize = 2
	s.newProduct(t)
	devs := s.pending(t, 5)
	s.requests()
	r := ok(t, s.ctl(t, append([]string{"--org", "acme", "devices", "accept"}, ids(devs...)...)...))
	if n := strings.Count(r.out, ": active\n"); n != 5 {
		t.Errorf("accept printed %d result lines, want 5:\n%s", n, r.out)
	}
	if n := countPosts(s.requests(), "/devices/accept"); n != 3 {
		t.Errorf("accepting 5 devices 2 per request took %d requests, want 3", n)
	}

	g := decode[inventory.Group](t, ok(t, s.ctl(t, "--json", "groups", "create", "all")).out)
	s.requests()
	contains(t, ok(t, s.ctl(t, append([]string{"--org", "acme", "groups", "add", g.ID}, ids(devs...)...)...)).out,
		"added 5 devices to group all")
	if n := countPosts(s.requests(), "/members"); n != 3 {
		t.Errorf("adding 5 members 2 per request took %d requests, want 3", n)
	}
}

func countPosts(reqs []seenRequest, suffix string) int {
	n := 0
	for _, r := range reqs {
		if r.method == http.MethodPost && strings.HasSuffix(r.path, suffix) {
			n++
		}
	}
	return n
}

// fleet enrolls and accepts three devices, checked in with versions
// 2.3.0, 2.3.0 and 2.4.1 and batteries 20, 60 and 90.
func (s *testServer) fleet(t *testing.T) []*testDevice {
	t.Helper()
	s.newProduct(t)
	devs := s.pending(t, 3)
	ok(t, s.ctl(t, append([]string{"devices", "accept"}, ids(devs...)...)...))
	for i, v := range []string{"2.3.0", "2.3.0", "2.4.1"} {
		s.checkin(t, devs[i], v, []int{20, 60, 90}[i])
	}
	return devs
}

func TestDevicesQuery(t *testing.T) {
	s := newTestServer(t)
	devs := s.fleet(t)

	out := ok(t, s.ctl(t, "devices", "list", "--query", `version < "2.4.0"`)).out
	if rows := dataRows(t, out); len(rows) != 2 {
		t.Fatalf("devices list --query 'version < \"2.4.0\"' =\n%s\nwant 2 devices", out)
	}
	contains(t, rowWith(t, out, devs[0].devID), "SN-1", "active", "2.3.0", "wifi", "20%")
	contains(t, rowWith(t, out, devs[1].devID), "2.3.0", "60%")

	out = ok(t, s.ctl(t, "devices", "list", "--query", `battery >= 60 and product = "gw"`, "--status", "active")).out
	if rows := dataRows(t, out); len(rows) != 2 || strings.Contains(out, devs[0].devID) {
		t.Errorf("battery >= 60 =\n%s\nwant devices 2 and 3", out)
	}
	if rows := dataRows(t, ok(t, s.ctl(t, "devices", "list", "--query", `status = "pending"`)).out); len(rows) != 0 {
		t.Errorf("status = \"pending\" matched %v", rows)
	}

	// The limit caps the listing.
	if got := decode[[]inventory.Device](t, ok(t, s.ctl(t, "--json", "devices", "list", "--limit", "2")).out); len(got) != 2 {
		t.Errorf("devices list --limit 2 returned %d devices", len(got))
	}
}

func TestBadQueryPrintsProblem(t *testing.T) {
	s := newTestServer(t)
	s.newProduct(t)
	for _, args := range [][]string{
		{"devices", "list", "--query", `version <`},
		{"devices", "list", "--csv", "--query", `version <`},
		{"groups", "create", "bad", "--query", `version <`},
	} {
		r := s.ctl(t, args...)
		failed(t, r, "error: Bad Request (400): query: ")
		if r.out != "" {
			t.Errorf("%v: stdout = %q, want nothing", args, r.out)
		}
	}
	failed(t, s.ctl(t, "devices", "list", "--query", `colour = "red"`), `error: Bad Request (400): query: `)
}

func TestDevicesCSVAndJSON(t *testing.T) {
	s := newTestServer(t)
	defer func(n int) { pageSize = n }(pageSize)
	pageSize = 2
	devs := s.fleet(t)
	s.pending(t, 2) // SN-4 and SN-5, pending
	ok(t, s.ctl(t, "devices", "tag", devs[2].devID, "region=eu", "env=prod"))

	out := ok(t, s.ctl(t, "devices", "list", "--csv")).out
	recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatalf("devices list --csv is not CSV: %v\n%s", err, out)
	}
	if len(recs) != 6 || strings.Join(recs[0], ",") != "id,product,serial,status,installed_version,last_seen_at,link,battery_percent,tags" {
		t.Fatalf("devices list --csv =\n%s\nwant a header and 5 rows", out)
	}
	var row []string
	for _, r := range recs {
		if r[0] == devs[2].devID {
			row = r
		}
	}
	if row == nil || row[1] != "gw" || row[3] != "active" || row[4] != "2.4.1" || row[6] != "wifi" || row[7] != "90" ||
		row[8] != "env=prod;region=eu" {
		t.Errorf("CSV row of device 3 = %q", row)
	}

	s.requests()
	out = ok(t, s.ctl(t, "--org", "acme", "devices", "list", "--csv", "--status", "pending", "--query", `serial = "SN-4"`)).out
	if recs, err := csv.NewReader(strings.NewReader(out)).ReadAll(); err != nil || len(recs) != 2 || recs[1][2] != "SN-4" {
		t.Errorf("devices list --csv --status pending --query =\n%s\nwant SN-4 only (%v)", out, err)
	}
	reqs := s.requests()
	if len(reqs) != 1 || reqs[0].path != "/api/v1/orgs/acme/devices/export" ||
		!strings.Contains(reqs[0].query, "format=csv") || !strings.Contains(reqs[0].query, "status=pending") {
		t.Errorf("--csv requests = %+v, want one export", reqs)
	}

	all := decode[[]inventory.Device](t, ok(t, s.ctl(t, "--json", "devices", "list")).out)
	if len(all) != 5 {
		t.Errorf("devices list --json returned %d devices (2 per page), want all 5", len(all))
	}
	if got := decode[[]inventory.Device](t, ok(t, s.ctl(t, "--json", "devices", "list", "--status", "active")).out); len(got) != 3 {
		t.Errorf("devices list --json --status active returned %d devices, want 3", len(got))
	}
	if got := ok(t, s.ctl(t, "--json", "devices", "list", "--query", `serial = "none"`)).out; strings.TrimSpace(got) != "[]" {
		t.Errorf("an empty --json listing = %q, want []", got)
	}

	failed(t, s.ctl(t, "--json", "devices", "list", "--csv"), "error: --csv and --json are alternatives")
	failed(t, s.ctl(t, "devices", "list", "--csv", "--limit", "3"), "error: --limit does not apply to --csv")
}

func TestCSVExportCutShort(t *testing.T) {
	isolate(t)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		_, _ = io.WriteString(w, "id,product\n1,gw\n")
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	}))
	defer hs.Close()
	r := runCtl(t, "--server", hs.URL, "--token", "stw_x", "--org", "acme", "devices", "list", "--csv")
	failed(t, r, "broke off after 16 bytes")
	contains(t, r.errOut, "the output is incomplete")
	if r.out != "id,product\n1,gw\n" {
		t.Errorf("stdout = %q, want what arrived", r.out)
	}
}

func TestCSVExportStalls(t *testing.T) {
	isolate(t)
	release := make(chan struct{})
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/csv")
		_, _ = io.WriteString(w, "id\n")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer hs.Close()
	defer close(release)
	r := runCtl(t, "--server", hs.URL, "--token", "stw_x", "--org", "acme", "--timeout", "500ms", "devices", "list", "--csv")
	failed(t, r, "sent nothing for 500ms")
	contains(t, r.errOut, "the output is incomplete (3 bytes)")
}

func TestDeviceShow(t *testing.T) {
	s := newTestServer(t)
	devs := s.fleet(t)
	d := devs[2]
	ok(t, s.ctl(t, "devices", "tag", d.devID, "region=eu"))
	s.checkin(t, d, "2.4.2", 80)

	out := ok(t, s.ctl(t, "devices", "show", d.devID)).out
	contains(t, out, "id:", d.devID, "product:", "gw", "serial:", "SN-3", "status:", "active since", "key id:", d.id.KeyID(),
		"enrolled:", "via pending", "version:", "2.4.2", "battery:", "80%", "free storage:", "1.0 GiB",
		"tags:", "region=eu", "components:", "2", "pkg:generic/busybox@1.36.1", "1.36.1", "version history:")
	hist := out[strings.Index(out, "version history:"):]
	if i, j := strings.Index(hist, "2.4.2"), strings.Index(hist, "2.4.1"); i < 0 || j < 0 || i > j {
		t.Errorf("version history, newest first, lacks 2.4.2 before 2.4.1:\n%s", hist)
	}

	dd := decode[inventory.DeviceDetail](t, ok(t, s.ctl(t, "--json", "devices", "show", d.devID)).out)
	if len(dd.Components) != 2 || len(dd.Versions) != 2 || dd.Tags["region"] != "eu" {
		t.Errorf("devices show --json = %+v", dd)
	}

	// A pending device has no software yet.
	p := s.pending(t, 1)[0]
	contains(t, ok(t, s.ctl(t, "devices", "show", p.devID)).out, "last seen:", "never", "components:", "0", "version history:  none")

	failed(t, s.ctl(t, "devices", "show", "01900000-0000-7000-8000-000000000000"), "error: Not Found (404)")
}

func TestDeviceTags(t *testing.T) {
	s := newTestServer(t)
	s.newProduct(t)
	d := s.pending(t, 1)[0]
	tags := func() map[string]string {
		t.Helper()
		return decode[inventory.DeviceDetail](t, ok(t, s.ctl(t, "--json", "devices", "show", d.devID)).out).Tags
	}

	r := ok(t, s.ctl(t, "devices", "tag", d.devID, "region=eu", "env=prod"))
	contains(t, r.out, "device "+d.devID+" tags: env=prod, region=eu")

	// Merged into the current tags; a later pair wins.
	ok(t, s.ctl(t, "devices", "tag", d.devID, "owner=ops", "region=us", "region=apac"))
	if got := tags(); len(got) != 3 || got["region"] != "apac" || got["env"] != "prod" || got["owner"] != "ops" {
		t.Errorf("after merging, tags = %v", got)
	}

	// key= deletes.
	contains(t, ok(t, s.ctl(t, "devices", "tag", d.devID, "env=", "absent=")).out, "tags: owner=ops, region=apac")

	// A value may contain '='.
	ok(t, s.ctl(t, "devices", "tag", d.devID, "note=a=b"))
	if got := tags()["note"]; got != "a=b" {
		t.Errorf("tag note = %q, want a=b", got)
	}

	// --clear replaces everything.
	dev := decode[inventory.Device](t, ok(t, s.ctl(t, "--json", "devices", "tag", d.devID, "--clear", "site=berlin")).out)
	if len(dev.Tags) != 1 || dev.Tags["site"] != "berlin" {
		t.Errorf("after --clear site=berlin, tags = %v", dev.Tags)
	}
	contains(t, ok(t, s.ctl(t, "devices", "tag", d.devID, "--clear")).out, "tags: none")
	if got := tags(); len(got) != 0 {
		t.Errorf("after --clear, tags = %v", got)
	}

	failed(t, s.ctl(t, "devices", "tag", d.devID), "error: give key=value pairs to set, key= to delete, or --clear")
	failed(t, s.ctl(t, "devices", "tag", d.devID, "region"), `error: "region" is not key=value`)
	failed(t, s.ctl(t, "devices", "tag", d.devID, "Bad Key=x"), `error: Bad Request (400): tags: key "Bad Key"`)
	failed(t, s.ctl(t, "devices", "tag", "01900000-0000-7000-8000-000000000000", "a=b"), "error: Not Found (404)")
}

func TestGroups(t *testing.T) {
	s := newTestServer(t)
	devs := s.fleet(t)

	r := ok(t, s.ctl(t, "groups", "create", "lab"))
	contains(t, r.out, "name:", "lab", "type:", "static")
	lab := decode[[]inventory.Group](t, ok(t, s.ctl(t, "--json", "groups", "list")).out)[0]
	old := decode[inventory.Group](t, ok(t, s.ctl(t, "--json", "groups", "create", "old", "--query", `version < "2.4.0"`)).out)
	if old.Query == "" {
		t.Fatalf("groups create --query = %+v, want a dynamic group", old)
	}

	list := ok(t, s.ctl(t, "groups", "list")).out
	contains(t, list, "ID", "NAME", "TYPE", "QUERY")
	contains(t, rowWith(t, list, lab.ID), "lab", "static", "-")
	contains(t, rowWith(t, list, old.ID), "old", "dynamic", "version")

	r = ok(t, s.ctl(t, "groups", "add", lab.ID, devs[0].devID, devs[2].devID))
	contains(t, r.out, "added 2 devices to group lab ("+lab.ID+")")
	// Adding again is harmless.
	ok(t, s.ctl(t, "groups", "add", lab.ID, devs[0].devID))

	members := ok(t, s.ctl(t, "groups", "devices", lab.ID)).out
	if rows := dataRows(t, members); len(rows) != 2 {
		t.Fatalf("groups devices lab =\n%s\nwant 2 devices", members)
	}
	contains(t, members, devs[0].devID, devs[2].devID)
	contains(t, rowWith(t, members, devs[2].devID), "2.4.1")
	for _, r := range s.requests() {
		if r.path == "/api/v1/orgs/acme/devices" && !strings.Contains(r.query, "group="+lab.ID) {
			t.Errorf("groups devices sent %s?%s, want group=%s", r.path, r.query, lab.ID)
		}
	}

	// A dynamic group's members are the devices matching its query.
	got := decode[[]inventory.Device](t, ok(t, s.ctl(t, "--json", "groups", "devices", old.ID)).out)
	if len(got) != 2 || got[0].InstalledVersion != "2.3.0" || got[1].InstalledVersion != "2.3.0" {
		t.Errorf("groups devices old = %+v, want the two 2.3.0 devices", got)
	}
	out := ok(t, s.ctl(t, "groups", "devices", lab.ID, "--csv")).out
	if n := strings.Count(out, "\n"); n != 3 {
		t.Errorf("groups devices --csv =\n%s\nwant a header and 2 rows", out)
	}
	if rows := dataRows(t, ok(t, s.ctl(t, "devices", "list", "--group", old.ID, "--query", "battery < 50")).out); len(rows) != 1 {
		t.Errorf("devices list --group old --query 'battery < 50' = %v, want device 1", rows)
	}

	failed(t, s.ctl(t, "groups", "add", old.ID, devs[1].devID), `error: Conflict (409): group "old" is dynamic`)
	failed(t, s.ctl(t, "groups", "add", lab.ID, "01900000-0000-7000-8000-000000000000"), "error: Bad Request (400): device_ids: no device")
	failed(t, s.ctl(t, "groups", "devices", "01900000-0000-7000-8000-000000000000"), "error: Not Found (404)")
}

func TestVersions(t *testing.T) {
	s := newTestServer(t)
	s.fleet(t)
	s.pending(t, 1) // a pending device is not counted

	out := ok(t, s.ctl(t, "versions", "--product", "gw")).out
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 5 {
		t.Fatalf("versions =\n%s\nwant a header, 2 versions, a blank line and a summary", out)
	}
	contains(t, lines[0], "VERSION", "DEVICES", "SHARE")
	contains(t, lines[1], "2.4.1", "1", "33.3%")
	contains(t, lines[2], "2.3.0", "2", "66.7%")
	if lines[4] != "3 active devices, 0 not seen for 7 days" {
		t.Errorf("summary = %q", lines[4])
	}

	s.requests()
	contains(t, ok(t, s.ctl(t, "versions", "--product", "gw", "--stale-days", "30")).out, "3 active devices, 0 not seen for 30 days")
	for _, r := range s.requests() {
		if strings.HasSuffix(r.path, "/versions") && r.query != "stale_days=30" {
			t.Errorf("versions --stale-days 30 sent ?%s", r.query)
		}
	}

	rep := decode[inventory.VersionReport](t, ok(t, s.ctl(t, "--json", "versions", "--product", "gw")).out)
	if rep.Active != 3 || len(rep.Distribution) != 2 || rep.StaleDays != 7 {
		t.Errorf("versions --json = %+v", rep)
	}

	failed(t, s.ctl(t, "versions", "--product", "gw", "--stale-days", "-1"), "error: Bad Request (400): stale_days:")
	failed(t, s.ctl(t, "versions", "--product", "nope"), "error: Not Found (404)")
	failed(t, s.ctl(t, "versions"), `required flag(s) "product" not set`)
}

// wordWithPrefix returns the first whitespace-separated word of s
// starting with prefix.
func wordWithPrefix(s, prefix string) string {
	for _, w := range strings.Fields(s) {
		if strings.HasPrefix(w, prefix) {
			return w
		}
	}
	return ""
}

func TestDeviceCreatesSendIdempotencyKey(t *testing.T) {
	s := newTestServer(t)
	s.newProduct(t)
	ok(t, s.ctl(t, "enroll-tokens", "create", "--name", "a"))
	ok(t, s.ctl(t, "groups", "create", "g"))
	keys := map[string]bool{}
	for _, r := range s.requests() {
		if r.method == http.MethodPost {
			keys[r.header.Get("Idempotency-Key")] = true
		}
	}
	if len(keys) != 3 || keys[""] {
		t.Errorf("idempotency keys of three creates = %v, want three distinct keys", keys)
	}
}
