package simulator

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// trivialAPI answers the device API without checking anything, so that a
// benchmark measures the simulator: enroll is active, auth grants a token
// for a day, check-in says "none". It calls onCheckin with the number of
// check-ins so far.
func trivialAPI(onCheckin func(n int64)) http.Handler {
	var count atomic.Int64
	reply := func(body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, body)
		}
	}
	expires := time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339)
	mux := http.NewServeMux()
	mux.Handle("POST /device/v1/enroll", reply(`{"device_id":"d","status":"active"}`))
	mux.Handle("POST /device/v1/auth", reply(`{"device_id":"d","token":"t","expires_at":"`+expires+`"}`))
	checkin := reply(`{"action":"none","poll_interval_seconds":60}`)
	mux.HandleFunc("POST /device/v1/checkin", func(w http.ResponseWriter, r *http.Request) {
		checkin(w, r)
		onCheckin(count.Add(1))
	})
	return mux
}

// handlerTransport serves requests in memory, leaving out the network.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, r)
	return rec.Result(), nil
}

// BenchmarkCheckin measures the cost per check-in of the dispatcher, the
// workers and the client against a trivial handler: in memory (the
// simulator's own overhead) and over loopback HTTP (what a load test gets
// from the machine), for fleets of 1,000 and 10,000 devices checking in as
// fast as they can. The clock starts once every device has enrolled,
// authenticated and checked in about twice.
func BenchmarkCheckin(b *testing.B) {
	for _, devices := range []int{1000, 10000} {
		for _, transport := range []string{"in-memory", "loopback"} {
			b.Run(fmt.Sprintf("devices=%d/%s", devices, transport), func(b *testing.B) {
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				warmup := int64(2 * devices)
				var started, stopped time.Time
				h := trivialAPI(func(n int64) {
					// Only this call sees each n, so the timer calls
					// cannot overlap; Run blocks the benchmark meanwhile.
					switch n {
					case warmup:
						b.ResetTimer()
						started = time.Now()
					case warmup + int64(b.N):
						b.StopTimer()
						stopped = time.Now()
						cancel()
					}
				})
				cfg := Config{
					Devices: devices, EnrollmentToken: "t", IntervalOverride: time.Nanosecond, Concurrency: 64,
					ServerURL:  "http://simulated",
					HTTPClient: &http.Client{Transport: handlerTransport{h}},
				}
				if transport == "loopback" {
					srv := httptest.NewServer(h)
					defer srv.Close()
					cfg.ServerURL, cfg.HTTPClient = srv.URL, nil
				}
				sim, err := New(cfg)
				if err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				if err := sim.Run(ctx); err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(b.N)/stopped.Sub(started).Seconds(), "checkins/s")
			})
		}
	}
}
