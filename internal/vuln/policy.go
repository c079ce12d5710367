package vuln

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/steward-iot/steward/internal/problem"
	"github.com/steward-iot/steward/internal/vuln/scoring"
)

// Day is 24 hours; SLA policies are written in days.
const Day = 24 * time.Hour

// Duration is a time.Duration that reads and writes as text: Go durations
// ("36h", "90m") or whole days ("7d"), so policies stay legible in YAML
// and JSON alike.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String writes whole days as "Nd", anything else as a Go duration.
func (d Duration) String() string {
	if d != 0 && time.Duration(d)%Day == 0 {
		return strconv.FormatInt(int64(time.Duration(d)/Day), 10) + "d"
	}
	return time.Duration(d).String()
}

// MarshalText implements encoding.TextMarshaler (JSON and YAML).
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler (JSON and YAML).
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// ParseDuration reads "Nd" (whole days) or a Go duration; negative
// durations are refused.
func ParseDuration(s string) (Duration, error) {
	s = strings.TrimSpace(s)
	var d time.Duration
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseInt(days, 10, 32)
		if err != nil {
			return 0, fmt.Errorf("%q is not a duration: use whole days like \"7d\" or a Go duration like \"36h\"", s)
		}
		d = time.Duration(n) * Day
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, fmt.Errorf("%q is not a duration: use whole days like \"7d\" or a Go duration like \"36h\"", s)
		}
	}
	if d < 0 {
		return 0, fmt.Errorf("duration %q is negative", s)
	}
	return Duration(d), nil
}

// ClassDeadlines are the release criteria of one priority class: how long
// each stage may take, measured from the moment its clock starts.
type ClassDeadlines struct {
	// Acknowledge runs from receipt until the vulnerability is acknowledged.
	Acknowledge Duration `json:"acknowledge" yaml:"acknowledge"`
	// Triage runs from acknowledgement until it is confirmed, rejected or
	// marked a duplicate.
	Triage Duration `json:"triage" yaml:"triage"`
	// Remediation runs from confirmation until a fix is released (or the
	// risk is accepted). Zero means no fix release is due.
	Remediation Duration `json:"remediation,omitempty" yaml:"remediation,omitempty" doc:"0 or absent: no fix release due"`
}

// Policy is the organization-independent SLA and escalation policy a
// server runs with.
type Policy struct {
	// DefaultClass sets the acknowledgement and triage clocks of a
	// vulnerability that has no priority yet.
	DefaultClass scoring.Priority `json:"default_class" yaml:"default_class" enum:"defer,scheduled,out-of-cycle,immediate"`
	// Classes holds the deadlines of every priority class.
	Classes map[scoring.Priority]ClassDeadlines `json:"classes" yaml:"classes"`
	// EscalationInterval is the least time between two escalations of one
	// vulnerability for the same breached deadline.
	EscalationInterval Duration `json:"escalation_interval" yaml:"escalation_interval"`
	// MaxRiskAcceptance bounds how far ahead a risk acceptance may expire.
	MaxRiskAcceptance Duration `json:"max_risk_acceptance" yaml:"max_risk_acceptance"`
}

// DefaultPolicy is the policy a server runs with unless configured. An
// unassessed vulnerability runs on the out-of-cycle clocks: until someone
// has looked at it, it may be serious.
func DefaultPolicy() Policy {
	return Policy{
		DefaultClass: scoring.OutOfCycle,
		Classes: map[scoring.Priority]ClassDeadlines{
			scoring.Immediate:  {Acknowledge: Duration(24 * time.Hour), Triage: Duration(2 * Day), Remediation: Duration(7 * Day)},
			scoring.OutOfCycle: {Acknowledge: Duration(2 * Day), Triage: Duration(5 * Day), Remediation: Duration(30 * Day)},
			scoring.Scheduled:  {Acknowledge: Duration(5 * Day), Triage: Duration(14 * Day), Remediation: Duration(90 * Day)},
			scoring.Defer:      {Acknowledge: Duration(5 * Day), Triage: Duration(30 * Day)},
		},
		EscalationInterval: Duration(Day),
		MaxRiskAcceptance:  Duration(365 * Day),
	}
}

// Policy limits that keep a configuration sane.
const (
	minEscalationInterval = time.Minute
	maxRiskAcceptance     = 2 * 365 * Day
)

// Validate checks that every priority class has deadlines and that a more
// urgent class never allows more time than a less urgent one: otherwise
// raising a priority (which an override may only do) could loosen the
// deadline.
func (p Policy) Validate() error {
	if _, err := scoring.ParsePriority(string(p.DefaultClass)); err != nil {
		return problem.InvalidField("default_class", "%v", err)
	}
	for class := range p.Classes {
		if _, err := scoring.ParsePriority(string(class)); err != nil {
			return problem.InvalidField("classes", "%v", err)
		}
	}
	var prev *ClassDeadlines
	var prevClass scoring.Priority
	for _, class := range scoring.Priorities { // least urgent first
		c, ok := p.Classes[class]
		if !ok {
			return problem.InvalidField("classes."+string(class), "no deadlines for priority %s", class)
		}
		if c.Acknowledge <= 0 || c.Triage <= 0 {
			return problem.InvalidField("classes."+string(class), "acknowledge and triage deadlines must be positive")
		}
		if prev != nil {
			if c.Acknowledge > prev.Acknowledge || c.Triage > prev.Triage ||
				prev.Remediation > 0 && (c.Remediation == 0 || c.Remediation > prev.Remediation) {
				return problem.InvalidField("classes."+string(class),
					"priority %s allows more time than the less urgent %s", class, prevClass)
			}
		}
		prev, prevClass = &c, class
	}
	if p.EscalationInterval.D() < minEscalationInterval {
		return problem.InvalidField("escalation_interval", "must be at least %s", minEscalationInterval)
	}
	if p.MaxRiskAcceptance <= 0 || p.MaxRiskAcceptance.D() > maxRiskAcceptance {
		return problem.InvalidField("max_risk_acceptance", "must be positive and at most %s", Duration(maxRiskAcceptance))
	}
	return nil
}

// deadlines returns the deadlines of class, falling back to the default
// class for an unknown one.
func (p Policy) deadlines(class scoring.Priority) (scoring.Priority, ClassDeadlines) {
	if c, ok := p.Classes[class]; ok {
		return class, c
	}
	return p.DefaultClass, p.Classes[p.DefaultClass]
}
