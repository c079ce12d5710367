package deviceapi_test

import (
	"bytes"
	"net/http/httptest"
	"testing"

	"github.com/steward-iot/steward/internal/store"
)

// FuzzDeviceRequests throws arbitrary bodies and signatures at every device
// endpoint: each answer must be a 2xx or a 4xx problem document, never a
// 5xx, whatever the input.
func FuzzDeviceRequests(f *testing.F) {
	fl := newFleetTB(f, store.SQLite)
	dev := fl.newDevice("FUZZ-1")
	enroll := dev.enrollBody("acme", "")
	for _, seed := range [][]byte{enroll, dev.authBody(fl.clock.Now()), []byte(`{"installed":{"version":"1"},"state":{}}`),
		[]byte(`{`), []byte(`null`), []byte(`{"protocol_version":1e400}`), {0xff, 0xfe}} {
		for ep := range 3 {
			f.Add(uint8(ep), seed, "c2ln", "")
		}
	}
	handler := fl.ts.Config.Handler
	f.Fuzz(func(t *testing.T, endpoint uint8, body []byte, sig, bearer string) {
		path := []string{"/device/v1/enroll", "/device/v1/auth", "/device/v1/checkin"}[int(endpoint)%3]
		req := httptest.NewRequest("POST", path, bytes.NewReader(body))
		req.Header.Set("Steward-Signature", sig)
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		if rec.Code >= 500 || (rec.Code >= 400 && rec.Header().Get("Content-Type") != "application/problem+json") {
			t.Fatalf("%s %q: %d %s", path, body, rec.Code, rec.Body)
		}
	})
}
