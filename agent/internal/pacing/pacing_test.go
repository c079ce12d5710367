package pacing

import (
	"testing"
	"time"
)

func TestBackoffDoublesToCap(t *testing.T) {
	const almostOne = 0.999999
	want := []time.Duration{1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300}
	for n, w := range want {
		got := Backoff(n, almostOne)
		w *= time.Second
		if got > w || got < w*999/1000 {
			t.Errorf("Backoff(%d, ~1) = %v, want just under %v", n, got, w)
		}
	}
	if got := Backoff(1000, almostOne); got > BackoffMax || got < BackoffMax*999/1000 {
		t.Errorf("Backoff(1000) = %v, want just under the cap", got)
	}
	if got := Backoff(3, 0); got != 0 {
		t.Errorf("Backoff(3, 0) = %v, want 0 (full jitter)", got)
	}
	if got := Backoff(3, 0.5); got != 4*time.Second {
		t.Errorf("Backoff(3, 0.5) = %v, want 4s", got)
	}
}

func TestJitter(t *testing.T) {
	for _, c := range []struct {
		r    float64
		want time.Duration
	}{{0, 54 * time.Second}, {0.5, 60 * time.Second}, {1, 66 * time.Second}} {
		if got := Jitter(time.Minute, c.r); got != c.want {
			t.Errorf("Jitter(1m, %v) = %v, want %v", c.r, got, c.want)
		}
	}
}
