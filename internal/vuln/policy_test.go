package vuln_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/steward-iot/steward/internal/problem"
	"github.com/steward-iot/steward/internal/vuln"
	"github.com/steward-iot/steward/internal/vuln/scoring"
)

func TestDefaultPolicy(t *testing.T) {
	p := vuln.DefaultPolicy()
	if err := p.Validate(); err != nil {
		t.Fatalf("default policy invalid: %v", err)
	}
	want := map[scoring.Priority][3]time.Duration{
		scoring.Immediate:  {24 * time.Hour, 48 * time.Hour, 7 * vuln.Day},
		scoring.OutOfCycle: {48 * time.Hour, 5 * vuln.Day, 30 * vuln.Day},
		scoring.Scheduled:  {5 * vuln.Day, 14 * vuln.Day, 90 * vuln.Day},
		scoring.Defer:      {5 * vuln.Day, 30 * vuln.Day, 0},
	}
	for class, w := range want {
		c := p.Classes[class]
		if c.Acknowledge.D() != w[0] || c.Triage.D() != w[1] || c.Remediation.D() != w[2] {
			t.Errorf("%s: %+v, want %v", class, c, w)
		}
	}
}

func TestPolicyTextRoundTrip(t *testing.T) {
	src := `default_class: scheduled
classes:
  immediate: {acknowledge: 12h, triage: 1d, remediation: 3d}
  out-of-cycle: {acknowledge: 1d, triage: 3d, remediation: 14d}
  scheduled: {acknowledge: 3d, triage: 7d, remediation: 60d}
  defer: {acknowledge: 3d, triage: 30d}
escalation_interval: 4h
max_risk_acceptance: 180d
`
	var p vuln.Policy
	if err := yaml.Unmarshal([]byte(src), &p); err != nil {
		t.Fatal(err)
	}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	if p.Classes[scoring.Immediate].Acknowledge.D() != 12*time.Hour || p.Classes[scoring.Scheduled].Remediation.D() != 60*vuln.Day ||
		p.EscalationInterval.D() != 4*time.Hour || p.MaxRiskAcceptance.D() != 180*vuln.Day || p.DefaultClass != scoring.Scheduled {
		t.Fatalf("decoded %+v", p)
	}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"remediation":"60d"`) || !strings.Contains(string(b), `"escalation_interval":"4h0m0s"`) {
		t.Fatalf("JSON %s", b)
	}
	var back vuln.Policy
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Classes[scoring.Defer] != p.Classes[scoring.Defer] || back.MaxRiskAcceptance != p.MaxRiskAcceptance {
		t.Fatalf("round trip %+v", back)
	}
	if err := yaml.Unmarshal([]byte("escalation_interval: soon\n"), &p); err == nil {
		t.Fatal("accepted a duration that is not one")
	}
	for _, bad := range []string{"-1d", "-3h", "1.5d", "d", ""} {
		if _, err := vuln.ParseDuration(bad); err == nil {
			t.Errorf("ParseDuration(%q) accepted", bad)
		}
	}
}

func TestPolicyValidate(t *testing.T) {
	cases := []struct {
		name  string
		edit  func(p *vuln.Policy)
		field string
	}{
		{"unknown default class", func(p *vuln.Policy) { p.DefaultClass = "urgent" }, "default_class"},
		{"missing class", func(p *vuln.Policy) { delete(p.Classes, scoring.Scheduled) }, "classes.scheduled"},
		{"unknown class", func(p *vuln.Policy) { p.Classes["Immediate"] = p.Classes[scoring.Immediate] }, "classes"},
		{"zero acknowledge", func(p *vuln.Policy) {
			c := p.Classes[scoring.Defer]
			c.Acknowledge = 0
			p.Classes[scoring.Defer] = c
		}, "classes.defer"},
		{"urgent class slower", func(p *vuln.Policy) {
			c := p.Classes[scoring.Immediate]
			c.Remediation = vuln.Duration(60 * vuln.Day)
			p.Classes[scoring.Immediate] = c
		}, "classes.immediate"},
		{"urgent class without a fix deadline", func(p *vuln.Policy) {
			c := p.Classes[scoring.Immediate]
			c.Remediation = 0
			p.Classes[scoring.Immediate] = c
		}, "classes.immediate"},
		{"escalation too often", func(p *vuln.Policy) { p.EscalationInterval = vuln.Duration(time.Second) }, "escalation_interval"},
		{"risk acceptance unbounded", func(p *vuln.Policy) { p.MaxRiskAcceptance = vuln.Duration(5 * 365 * vuln.Day) }, "max_risk_acceptance"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := vuln.DefaultPolicy()
			c.edit(&p)
			err := p.Validate()
			if !problem.Is(err, problem.KindInvalid) || !strings.HasPrefix(err.Error(), c.field+":") {
				t.Fatalf("got %v, want an invalid %s", err, c.field)
			}
		})
	}
}
