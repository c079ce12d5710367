package deviceapi_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/steward-iot/steward/internal/identity"
	"github.com/steward-iot/steward/internal/store"
	"github.com/steward-iot/steward/internal/store/storetest"
)

// BenchmarkCheckin measures one check-in through the whole HTTP handler
// (device token check, status read, validation, change detection) with an
// unchanged report — the steady state of a fleet — and with a report whose
// software changed, which writes. The server handler is called directly,
// without sockets, so the figure is the server's cost per check-in.
func BenchmarkCheckin(b *testing.B) {
	for _, d := range storetest.Dialects(b) {
		for _, mode := range []string{"unchanged", "changed"} {
			b.Run(fmt.Sprintf("%s/%s", d, mode), func(b *testing.B) { benchCheckin(b, d, mode) })
		}
	}
}

func benchCheckin(b *testing.B, d store.Dialect, mode string) {
	f := newFleetTB(b, d)
	const devices = 200
	var tok identity.CreatedEnrollmentToken
	json.Unmarshal(f.adminDo("POST", "/api/v1/orgs/acme/enrollment-tokens", f.admin,
		identity.CreateEnrollmentTokenRequest{Name: "bench", MaxUses: devices}, 201), &tok)
	devs := make([]*device, devices)
	for i := range devs {
		devs[i] = f.newDevice(fmt.Sprintf("B-%d", i))
		if r := devs[i].enroll("", tok.Secret); r.status != 200 {
			b.Fatalf("enroll: %s", r.body)
		}
		if r := devs[i].auth(); r.status != 200 {
			b.Fatalf("auth: %s", r.body)
		}
		devs[i].checkin(report("1.0.0", 50))
	}
	handler := f.ts.Config.Handler
	bodies := [2][]byte{}
	for i, v := range []string{"1.0.0", "1.0.1"} {
		bodies[i], _ = json.Marshal(report(v, 50))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		dev := devs[i%devices]
		body := bodies[0]
		if mode == "changed" {
			body = bodies[(i/devices)%2]
			if i < devices {
				body = bodies[1]
			}
		}
		req := httptest.NewRequest("POST", "/device/v1/checkin", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+dev.token)
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("checkin: %d %s", rec.Code, rec.Body)
		}
	}
	b.StopTimer()
	if err := f.checkins.Flush(b.Context()); err != nil {
		b.Fatal(err)
	}
}
