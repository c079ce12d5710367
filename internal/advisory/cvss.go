package advisory

import (
	"errors"
	"fmt"
	"math"
	"strings"

	gocvss30 "github.com/pandatix/go-cvss/30"
	gocvss31 "github.com/pandatix/go-cvss/31"
	gocvss40 "github.com/pandatix/go-cvss/40"
)

// cvssRating is a vector with the score and severity computed from it.
type cvssRating struct {
	version  string // "3.0", "3.1", "4.0"
	vector   string // normalized: metrics in the specification's order
	score    float64
	severity string // NONE, LOW, MEDIUM, HIGH, CRITICAL
	// metrics are the CSAF cvss_v3 base properties implied by the vector.
	metrics map[string]string
}

// cvss3Base maps base metric abbreviations to the CSAF (CVSS JSON schema)
// property names and value names.
var cvss3Base = []struct {
	abbr, prop string
	values     map[string]string
}{
	{"AV", "attackVector", map[string]string{"N": "NETWORK", "A": "ADJACENT_NETWORK", "L": "LOCAL", "P": "PHYSICAL"}},
	{"AC", "attackComplexity", map[string]string{"L": "LOW", "H": "HIGH"}},
	{"PR", "privilegesRequired", map[string]string{"N": "NONE", "L": "LOW", "H": "HIGH"}},
	{"UI", "userInteraction", map[string]string{"N": "NONE", "R": "REQUIRED"}},
	{"S", "scope", map[string]string{"U": "UNCHANGED", "C": "CHANGED"}},
	{"C", "confidentialityImpact", map[string]string{"N": "NONE", "L": "LOW", "H": "HIGH"}},
	{"I", "integrityImpact", map[string]string{"N": "NONE", "L": "LOW", "H": "HIGH"}},
	{"A", "availabilityImpact", map[string]string{"N": "NONE", "L": "LOW", "H": "HIGH"}},
}

// rateCVSS3 parses a CVSS v3.0/v3.1 vector and checks a given base score
// and severity against it: CSAF test 6.1.9 refuses scores that do not
// follow from their vector.
func rateCVSS3(c CVSS3) (cvssRating, error) {
	v := strings.TrimSpace(c.Vector)
	if len(v) > 300 {
		return cvssRating{}, errors.New("vector is too long")
	}
	var r cvssRating
	var get func(string) (string, error)
	switch {
	case strings.HasPrefix(v, "CVSS:3.1/"):
		p, err := gocvss31.ParseVector(v)
		if err != nil {
			return r, fmt.Errorf("invalid CVSS 3.1 vector: %v", err)
		}
		r = cvssRating{version: "3.1", vector: p.Vector(), score: p.BaseScore()}
		r.severity, err = gocvss31.Rating(r.score)
		if err != nil {
			return r, err
		}
		get = p.Get
	case strings.HasPrefix(v, "CVSS:3.0/"):
		p, err := gocvss30.ParseVector(v)
		if err != nil {
			return r, fmt.Errorf("invalid CVSS 3.0 vector: %v", err)
		}
		r = cvssRating{version: "3.0", vector: p.Vector(), score: p.BaseScore()}
		r.severity, err = gocvss30.Rating(r.score)
		if err != nil {
			return r, err
		}
		get = p.Get
	default:
		return r, errors.New("vector must start with CVSS:3.1/ or CVSS:3.0/ (a CVSS 4.0 vector goes in cvss_v4)")
	}
	r.metrics = map[string]string{}
	for _, m := range cvss3Base {
		abbr, err := get(m.abbr)
		if err != nil {
			return r, fmt.Errorf("vector: %v", err)
		}
		val, ok := m.values[abbr]
		if !ok {
			return r, fmt.Errorf("vector: unexpected %s:%s", m.abbr, abbr)
		}
		r.metrics[m.prop] = val
	}
	if c.BaseScore != 0 && math.Abs(c.BaseScore-r.score) > 0.001 {
		return r, fmt.Errorf("base score %.1f does not match the vector, which scores %.1f", c.BaseScore, r.score)
	}
	if s := strings.TrimSpace(c.Severity); s != "" && !strings.EqualFold(s, r.severity) {
		return r, fmt.Errorf("severity %s does not match the vector, which rates %s", s, r.severity)
	}
	return r, nil
}

// rateCVSS4 parses a CVSS 4.0 vector.
func rateCVSS4(v string) (cvssRating, error) {
	if len(v) > 300 {
		return cvssRating{}, errors.New("vector is too long")
	}
	if !strings.HasPrefix(v, "CVSS:4.0/") {
		return cvssRating{}, errors.New("vector must start with CVSS:4.0/")
	}
	p, err := gocvss40.ParseVector(v)
	if err != nil {
		return cvssRating{}, fmt.Errorf("invalid CVSS 4.0 vector: %v", err)
	}
	r := cvssRating{version: "4.0", vector: p.Vector(), score: p.Score()}
	r.severity, err = gocvss40.Rating(r.score)
	return r, err
}

// severityRank orders severities for the document's aggregate severity.
func severityRank(s string) int {
	switch strings.ToUpper(s) {
	case "LOW":
		return 1
	case "MEDIUM":
		return 2
	case "HIGH":
		return 3
	case "CRITICAL":
		return 4
	}
	return 0
}

// titleCase turns CRITICAL into Critical for people.
func titleCase(s string) string {
	if s == "" {
		return ""
	}
	s = strings.ToLower(s)
	return strings.ToUpper(s[:1]) + s[1:]
}
