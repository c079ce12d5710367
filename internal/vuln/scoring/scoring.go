// Package scoring turns what is known about a vulnerability into a priority:
// CVSS 3.0, 3.1 and 4.0 base scores, the CERT/CC SSVC deployer decision, and
// the order of work within a priority class by the cost of deploying the fix.
package scoring

import (
	"fmt"
	"strings"
)

// Priority is an SSVC deployer decision, least urgent first.
type Priority string

const (
	Defer      Priority = "defer"
	Scheduled  Priority = "scheduled"
	OutOfCycle Priority = "out-of-cycle"
	Immediate  Priority = "immediate"
)

// Priorities lists every priority, least urgent first.
var Priorities = []Priority{Defer, Scheduled, OutOfCycle, Immediate}

// Rank orders priorities: 0 for defer … 3 for immediate, -1 if unknown.
// Only the exact constant spellings are known; use ParsePriority on input.
func (p Priority) Rank() int {
	switch p {
	case Defer:
		return 0
	case Scheduled:
		return 1
	case OutOfCycle:
		return 2
	case Immediate:
		return 3
	}
	return -1
}

// ParsePriority validates a priority name from input. Only the exact
// constant spellings are accepted: callers use it to validate values they
// then keep as given (map keys, stored records), so a tolerated "Immediate"
// would slip through and later Rank as unknown.
func ParsePriority(s string) (Priority, error) {
	p := Priority(s)
	if p.Rank() >= 0 {
		return p, nil
	}
	if s == "" {
		return "", fmt.Errorf("scoring: priority is empty (valid: %s)", priorityNames())
	}
	hint := ""
	if Priority(strings.ToLower(strings.TrimSpace(s))).Rank() >= 0 {
		hint = "; names are lower-case, without spaces"
	}
	return "", fmt.Errorf("scoring: unknown priority %s (valid: %s%s)", quoteShort(s), priorityNames(), hint)
}

func priorityNames() string {
	names := make([]string, len(Priorities))
	for i, p := range Priorities {
		names[i] = string(p)
	}
	return strings.Join(names, ", ")
}

// quoteShort quotes untrusted input for an error message, cut short so a
// hostile feed cannot flood logs through our errors.
func quoteShort(s string) string {
	const max = 40
	if len(s) > max {
		return fmt.Sprintf("%q…", s[:max])
	}
	return fmt.Sprintf("%q", s)
}
