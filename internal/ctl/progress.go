package ctl

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// redrawEvery is how often a progress line is redrawn at most.
const redrawEvery = 200 * time.Millisecond

// meter shows the progress of a transfer as one line on stderr, redrawn
// in place with \r: bytes done of the total, percent and rate. A nil
// *meter shows nothing, so callers need not check. It is safe for
// concurrent use: the HTTP transport reads request bodies on its own
// goroutine.
type meter struct {
	w     io.Writer
	label string
	total int64
	now   func() time.Time

	mu        sync.Mutex
	n         int64     // bytes done, including any resumed from earlier
	base      int64     // bytes done before start, left out of the rate
	start     time.Time // when this run began
	drawn     time.Time // last redraw
	lastWidth int       // length of the line last drawn, to blank its rest
	finished  bool
}

// showProgress reports whether transfers should show a meter: when asked
// to, or when stderr is a terminal.
func showProgress(s *session, flag bool) bool {
	if flag {
		return true
	}
	f, ok := s.errOut.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// newMeter returns a meter for label of total bytes, already done of
// which are done (a resumed download), or nil when !show.
func newMeter(s *session, show bool, label string, total, done int64) *meter {
	if !show {
		return nil
	}
	now := time.Now()
	return &meter{w: s.errOut, label: clean(label), total: total, now: time.Now, n: done, base: done, start: now}
}

// add counts n more bytes done.
func (m *meter) add(n int) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.n += int64(n)
	if now := m.now(); !m.finished && now.Sub(m.drawn) >= redrawEvery {
		m.draw(now)
	}
}

// restart counts from done bytes again, as when a request is retried.
func (m *meter) restart(done int64) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.n, m.base, m.start = done, done, m.now()
}

// finish draws the final state and ends the line. Later calls do nothing.
func (m *meter) finish() {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.finished {
		return
	}
	m.draw(m.now())
	m.finished = true
	fmt.Fprintln(m.w)
}

func (m *meter) draw(now time.Time) {
	m.drawn = now
	line := fmt.Sprintf("%s: %s / %s  %s  %s", m.label, bytesIEC(m.n), bytesIEC(m.total), percent(m.n, m.total),
		rate(m.n-m.base, now.Sub(m.start)))
	pad := max(m.lastWidth-len(line), 0)
	m.lastWidth = len(line)
	fmt.Fprint(m.w, "\r"+line+strings.Repeat(" ", pad))
}

func percent(n, total int64) string {
	if total <= 0 {
		return "100%"
	}
	return fmt.Sprintf("%3d%%", n*100/total)
}

func rate(n int64, d time.Duration) string {
	if d < time.Millisecond {
		return "- /s"
	}
	return bytesIEC(int64(float64(n)/d.Seconds())) + "/s"
}
