package simulator

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"math/bits"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// Stats describe a simulation so far, or in the end.
type Stats struct {
	Devices int `json:"devices"`
	// Enrolled devices are pending or active.
	Enrolled int `json:"enrolled"`
	Pending  int `json:"pending"`
	// Active devices are enrolled, accepted and online.
	Active  int `json:"active"`
	Offline int `json:"offline"`
	// Stopped devices were refused by the server (rejected, revoked).
	Stopped int `json:"stopped"`
	// CheckedIn devices have checked in at least once.
	CheckedIn int   `json:"checked_in"`
	Checkins  int64 `json:"checkins"`
	// WentOffline counts churn events, Resumed the first successful
	// check-ins after them.
	WentOffline int64 `json:"went_offline"`
	Resumed     int64 `json:"resumed"`
	// Errors counts failed requests by problem code, "http_<status>",
	// "transport", "timeout" or "bad_response".
	Errors            map[string]int64 `json:"errors"`
	Elapsed           time.Duration    `json:"-"`
	CheckinsPerSecond float64          `json:"checkins_per_second"`
	// LatencyP50 and LatencyP99 are of successful check-ins, to about 6%.
	LatencyP50 time.Duration `json:"-"`
	LatencyP99 time.Duration `json:"-"`
	// Updates is nil unless the simulator installs updates.
	Updates *UpdateStats `json:"updates,omitempty"`
}

// UpdateStats describe the updates of a simulation. The counts of
// started, committed, rolled back and failed updates are of the status
// reports the server acknowledged, each counted once.
type UpdateStats struct {
	// Waiting devices were offered an update and wait for a turn in the
	// update pool; Updating ones have it.
	Waiting  int `json:"waiting"`
	Updating int `json:"updating"`
	// Started counts "downloading" reports: attempts that got an offer
	// through TUF and Agree.
	Started    int64 `json:"started"`
	Committed  int64 `json:"committed"`
	RolledBack int64 `json:"rolled_back"`
	// Failed counts "failed" reports by reason code.
	Failed map[string]int64 `json:"failed"`
	// Retried counts updates that stopped on an error (the network, the
	// server, TUF metadata) and go on at the next offer, by kind.
	Retried map[string]int64 `json:"retried"`
	// BytesFull and BytesDelta are image bytes downloaded: of full images
	// and of deltas, counted when an update's state is removed.
	BytesFull  int64 `json:"bytes_full"`
	BytesDelta int64 `json:"bytes_delta"`
	// BytesIn and BytesOut are all the bytes over the simulated links
	// (bodies only), Requests their requests, of which RangeRequests
	// resumed a download and LostRequests were lost by the link.
	BytesIn       int64 `json:"bytes_in"`
	BytesOut      int64 `json:"bytes_out"`
	Requests      int64 `json:"requests"`
	RangeRequests int64 `json:"range_requests"`
	LostRequests  int64 `json:"lost_requests"`
	// OfferToCommitP50 and P95 are wall-clock times from the check-in that
	// offered an update to its commit, to about 6%.
	OfferToCommitP50 time.Duration `json:"-"`
	OfferToCommitP95 time.Duration `json:"-"`
	// Versions counts the devices running each version, a trial image
	// included.
	Versions map[string]int `json:"versions"`
}

// MarshalJSON adds the durations in seconds.
func (u UpdateStats) MarshalJSON() ([]byte, error) {
	type plain UpdateStats
	return json.Marshal(struct {
		plain
		P50 float64 `json:"offer_to_commit_p50_seconds"`
		P95 float64 `json:"offer_to_commit_p95_seconds"`
	}{plain(u), u.OfferToCommitP50.Seconds(), u.OfferToCommitP95.Seconds()})
}

func (u *UpdateStats) String() string {
	return fmt.Sprintf("updates: waiting %d updating %d started %d committed %d rolled back %d failed: %s retried: %s | image bytes full %d delta %d, requests %d (ranged %d, lost %d) | offer to commit p50 %s p95 %s | versions: %s",
		u.Waiting, u.Updating, u.Started, u.Committed, u.RolledBack, formatErrors(u.Failed), formatErrors(u.Retried),
		u.BytesFull, u.BytesDelta, u.Requests, u.RangeRequests, u.LostRequests,
		u.OfferToCommitP50.Round(time.Millisecond), u.OfferToCommitP95.Round(time.Millisecond), formatCounts(u.Versions))
}

func formatCounts(m map[string]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}

// MarshalJSON adds the durations in readable units.
func (st Stats) MarshalJSON() ([]byte, error) {
	type plain Stats // without this method
	return json.Marshal(struct {
		plain
		ElapsedSeconds float64 `json:"elapsed_seconds"`
		LatencyP50ms   float64 `json:"latency_p50_ms"`
		LatencyP99ms   float64 `json:"latency_p99_ms"`
	}{plain(st), st.Elapsed.Seconds(), ms(st.LatencyP50), ms(st.LatencyP99)})
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// String is a one-line summary over the whole run.
func (st Stats) String() string {
	return summary(st.Elapsed, st, st.CheckinsPerSecond, st.LatencyP50, st.LatencyP99)
}

func formatErrors(errs map[string]int64) string {
	if len(errs) == 0 {
		return "none"
	}
	var parts []string
	for _, code := range slices.Sorted(maps.Keys(errs)) {
		parts = append(parts, fmt.Sprintf("%s=%d", code, errs[code]))
	}
	return strings.Join(parts, " ")
}

// Stats may be called at any time, also during Run.
func (s *Simulator) Stats() Stats {
	now := s.since()
	st := Stats{
		Devices:     len(s.devices),
		Checkins:    s.checkins.Load(),
		WentOffline: s.wentOffline.Load(),
		Resumed:     s.resumed.Load(),
	}
	for _, d := range s.devices {
		offline := time.Duration(d.offlineUntil.Load()) > now
		switch d.status.Load() {
		case statusPending:
			st.Enrolled++
			st.Pending++
		case statusActive:
			st.Enrolled++
			if !offline {
				st.Active++
			}
		case statusStopped:
			st.Stopped++
		}
		if offline {
			st.Offline++
		}
		if d.checkins.Load() > 0 {
			st.CheckedIn++
		}
	}
	s.errMu.Lock()
	st.Errors = maps.Clone(s.errors)
	s.errMu.Unlock()
	if s.running.Load() {
		end := time.Duration(s.runEnd.Load())
		if end == 0 {
			end = now
		}
		st.Elapsed = end - time.Duration(s.runStart.Load())
	}
	if st.Elapsed > 0 {
		st.CheckinsPerSecond = float64(st.Checkins) / st.Elapsed.Seconds()
	}
	h := s.latency.snapshot()
	st.LatencyP50, st.LatencyP99 = percentile(h, 0.5), percentile(h, 0.99)
	if s.upd != nil {
		st.Updates = s.upd.stats(s.devices)
	}
	return st
}

func (u *updater) stats(devices []*device) *UpdateStats {
	st := &UpdateStats{
		Waiting:       u.queue.len(),
		Updating:      int(u.updating.Load()),
		BytesIn:       u.counters.bytesIn.Load(),
		BytesOut:      u.counters.bytesOut.Load(),
		Requests:      u.counters.requests.Load(),
		RangeRequests: u.counters.ranged.Load(),
		LostRequests:  u.counters.lost.Load(),
		Versions:      map[string]int{},
	}
	for _, d := range devices {
		st.Versions[d.running.Load().Version]++
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	st.Started, st.Committed, st.RolledBack = u.started, u.committed, u.rolledBack
	st.Failed, st.Retried = maps.Clone(u.failed), maps.Clone(u.retried)
	st.BytesFull, st.BytesDelta = u.bytesFull, u.bytesDelta
	h := u.offerCommit.snapshot()
	st.OfferToCommitP50, st.OfferToCommitP95 = percentile(h, 0.5), percentile(h, 0.95)
	return st
}

// histogram counts durations in logarithmic buckets of microseconds:
// values below subBuckets exactly, larger ones with subBuckets buckets per
// power of two. It is lock-free, for many workers recording at once.
type histogram struct {
	counts [64 * subBuckets]atomic.Int64
}

const subBuckets = 16

func bucketOf(d time.Duration) int {
	v := uint64(max(d, 0) / time.Microsecond)
	if v < subBuckets {
		return int(v)
	}
	shift := bits.Len64(v) - 5 // v>>shift is in [16, 32)
	return (shift+1)*subBuckets + int(v>>shift) - subBuckets
}

// bucketValue is the middle of bucket b.
func bucketValue(b int) time.Duration {
	if b < subBuckets {
		return time.Duration(b) * time.Microsecond
	}
	shift := b/subBuckets - 1
	low := uint64(b%subBuckets+subBuckets) << shift
	return time.Duration(low+(uint64(1)<<shift)/2) * time.Microsecond
}

func (h *histogram) record(d time.Duration) { h.counts[bucketOf(d)].Add(1) }

func (h *histogram) snapshot() []int64 {
	out := make([]int64, len(h.counts))
	for i := range h.counts {
		out[i] = h.counts[i].Load()
	}
	return out
}

// percentile returns the p-quantile (0 < p ≤ 1) of bucket counts, or 0
// for none.
func percentile(counts []int64, p float64) time.Duration {
	var total int64
	for _, c := range counts {
		total += c
	}
	if total == 0 {
		return 0
	}
	rank := max(1, int64(math.Ceil(p*float64(total))))
	for b, c := range counts {
		rank -= c
		if rank <= 0 {
			return bucketValue(b)
		}
	}
	return bucketValue(len(counts) - 1)
}
