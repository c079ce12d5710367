package simulator

import "time"

// queue is a min-heap of devices by due time (container/heap).
type queue []*device

func (q queue) Len() int           { return len(q) }
func (q queue) Less(i, j int) bool { return q[i].due < q[j].due }

func (q queue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].heapIdx, q[j].heapIdx = i, j
}

func (q *queue) Push(x any) {
	d := x.(*device)
	d.heapIdx = len(*q)
	*q = append(*q, d)
}

func (q *queue) Pop() any {
	old := *q
	d := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	d.heapIdx = -1
	return d
}

// limiter spaces events at a rate with a little burst (the generic cell
// rate algorithm). reserve grants every request a time slot rather than
// refusing it, so that the dispatcher can file the device under that time
// instead of stalling the devices behind it.
type limiter struct {
	interval  time.Duration // between events at the rate
	tolerance time.Duration // how far events may run ahead: the burst
	tat       time.Duration // theoretical arrival time of the next event
}

// newLimiter returns a limiter for rate events per second, or nil for no
// limit.
func newLimiter(rate float64) *limiter {
	if rate <= 0 {
		return nil
	}
	// 50 ms of burst absorbs timer jitter at high rates.
	return &limiter{interval: time.Duration(float64(time.Second) / rate), tolerance: 50 * time.Millisecond}
}

// reserve returns when an event requested at now may happen, and books it.
func (l *limiter) reserve(now time.Duration) time.Duration {
	tat := max(l.tat, now)
	l.tat = tat + l.interval
	return max(now, tat-l.tolerance)
}
