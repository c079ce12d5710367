package scoring

import (
	"strings"
	"testing"
)

func TestPriorityRank(t *testing.T) {
	for want, p := range Priorities {
		if got := p.Rank(); got != want {
			t.Errorf("%s.Rank() = %d, want %d", p, got, want)
		}
	}
	for _, p := range []Priority{"", "Immediate", "urgent", " defer"} {
		if got := p.Rank(); got != -1 {
			t.Errorf("Priority(%q).Rank() = %d, want -1", p, got)
		}
	}
}

func TestParsePriority(t *testing.T) {
	for _, p := range Priorities {
		got, err := ParsePriority(string(p))
		if err != nil || got != p {
			t.Errorf("ParsePriority(%q) = %q, %v", p, got, err)
		}
	}
	tests := []struct{ in, want string }{
		{"", "priority is empty (valid: defer, scheduled, out-of-cycle, immediate)"},
		{"urgent", `unknown priority "urgent" (valid: defer, scheduled, out-of-cycle, immediate)`},
		// Near misses are refused too, with a hint: callers keep the input
		// as given, and "Out-of-Cycle" would then Rank as unknown.
		{"Out-of-Cycle", `unknown priority "Out-of-Cycle" (valid: defer, scheduled, out-of-cycle, immediate; names are lower-case, without spaces)`},
		{"immediate ", "names are lower-case, without spaces"},
		{strings.Repeat("x", 100), `"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"…`},
	}
	for _, tt := range tests {
		got, err := ParsePriority(tt.in)
		if err == nil || got != "" || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParsePriority(%q) = %q, %v; want error containing %q", tt.in, got, err, tt.want)
		}
	}
}
