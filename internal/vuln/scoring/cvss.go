package scoring

import (
	"errors"
	"fmt"
	"math"
	"strings"

	gocvss30 "github.com/pandatix/go-cvss/30"
	gocvss31 "github.com/pandatix/go-cvss/31"
	gocvss40 "github.com/pandatix/go-cvss/40"
)

// MaxVectorLen is the longest input ParseCVSS will look at. The longest valid
// vector (CVSS 4.0 with every optional metric set) is under 200 bytes, so
// anything longer is not a vector and is refused before parsing.
const MaxVectorLen = 512

// ErrInvalidCVSS is wrapped by every error ParseCVSS returns, so callers can
// tell bad input (errors.Is) from other failures.
var ErrInvalidCVSS = errors.New("invalid CVSS vector")

// errLibraryPanic marks a panic recovered from go-cvss; the fuzz target
// fails on it so that such inputs are found rather than silently refused.
var errLibraryPanic = errors.New("CVSS library panicked")

// CVSS is a parsed, scored CVSS vector.
type CVSS struct {
	Version   string  `json:"version" enum:"3.0,3.1,4.0"`
	Vector    string  `json:"vector"`
	BaseScore float64 `json:"base_score"`
	Severity  string  `json:"severity" enum:"none,low,medium,high,critical"`
}

// Metric abbreviations per version, in specification order; the base
// metrics come first and are mandatory.
var (
	cvss3Metrics = []string{
		// base
		"AV", "AC", "PR", "UI", "S", "C", "I", "A",
		// temporal
		"E", "RL", "RC",
		// environmental
		"CR", "IR", "AR", "MAV", "MAC", "MPR", "MUI", "MS", "MC", "MI", "MA",
	}
	cvss3Base = cvss3Metrics[:8]

	cvss4Metrics = []string{
		// base
		"AV", "AC", "AT", "PR", "UI", "VC", "VI", "VA", "SC", "SI", "SA",
		// threat
		"E",
		// environmental
		"CR", "IR", "AR", "MAV", "MAC", "MAT", "MPR", "MUI", "MVC", "MVI", "MVA", "MSC", "MSI", "MSA",
		// supplemental
		"S", "AU", "R", "V", "RE", "U",
	}
	cvss4Base = cvss4Metrics[:11]
	// cvss4Scored are the non-base metrics that change a 4.0 score; the
	// supplemental ones after them never do.
	cvss4Scored = cvss4Metrics[11:26]
)

// ParseCVSS parses and scores a CVSS 3.0, 3.1 or 4.0 vector string.
//
// Surrounding white space is ignored; anything else must be a valid vector
// of its version (4.0 also fixes the metric order). Vector is the input as
// go-cvss prints it: canonical metric order, "not defined" (X) metrics
// dropped. BaseScore is the base score even when the vector carries
// temporal, threat or environmental metrics: for 3.x those never enter the
// base score, and for 4.0 the score is taken with them reset to X (CVSS-B),
// so the same vulnerability scores the same whoever enriched its vector.
// Severity is the specification's rating of BaseScore.
func ParseCVSS(vector string) (CVSS, error) {
	if len(vector) > MaxVectorLen {
		return CVSS{}, cvssError("", "vector is %d bytes, over the %d-byte limit", len(vector), MaxVectorLen)
	}
	vector = strings.TrimSpace(vector)
	if vector == "" {
		return CVSS{}, cvssError("", "vector is empty")
	}
	version, body, err := splitVersion(vector)
	if err != nil {
		return CVSS{}, err
	}
	if body == "" {
		return CVSS{}, cvssError(version, "vector has no metrics")
	}
	return score(version, vector, body)
}

// score parses and scores a vector whose version prefix has been checked.
func score(version, vector, body string) (c CVSS, err error) {
	// go-cvss panics on internal states its parser should never let
	// through; a feed must not be able to take the process down if it does.
	defer func() {
		if r := recover(); r != nil {
			c, err = CVSS{}, fmt.Errorf("scoring: %w: CVSS %s: %w: %v", ErrInvalidCVSS, version, errLibraryPanic, r)
		}
	}()

	var s float64
	switch version {
	case "3.0":
		v, perr := gocvss30.ParseVector(vector)
		if perr != nil {
			return CVSS{}, explain(version, body, perr, cvss3Metrics, cvss3Base, false, func(m, val string) error {
				return new(gocvss30.CVSS30).Set(m, val)
			})
		}
		vector, s = v.Vector(), v.BaseScore()
	case "3.1":
		v, perr := gocvss31.ParseVector(vector)
		if perr != nil {
			return CVSS{}, explain(version, body, perr, cvss3Metrics, cvss3Base, false, func(m, val string) error {
				return new(gocvss31.CVSS31).Set(m, val)
			})
		}
		vector, s = v.Vector(), v.BaseScore()
	case "4.0":
		v, perr := gocvss40.ParseVector(vector)
		if perr != nil {
			return CVSS{}, explain(version, body, perr, cvss4Metrics, cvss4Base, true, func(m, val string) error {
				return new(gocvss40.CVSS40).Set(m, val)
			})
		}
		base := *v
		for _, m := range cvss4Scored {
			if serr := base.Set(m, "X"); serr != nil {
				return CVSS{}, cvssError(version, "cannot reset %s to take the base score: %v", m, serr)
			}
		}
		vector, s = v.Vector(), base.Score()
	}

	// Scores are defined to one decimal; rounding again only removes float
	// noise so the severity thresholds compare exactly.
	s = math.Round(s*10) / 10
	if !(s >= 0 && s <= 10) {
		return CVSS{}, cvssError(version, "library scored %v, outside 0–10", s)
	}
	return CVSS{Version: version, Vector: vector, BaseScore: s, Severity: severity(s)}, nil
}

// severity is the qualitative rating scale shared by CVSS 3.x and 4.0:
// none 0.0, low 0.1–3.9, medium 4.0–6.9, high 7.0–8.9, critical 9.0–10.0.
func severity(score float64) string {
	switch {
	case score <= 0:
		return "none"
	case score < 4.0:
		return "low"
	case score < 7.0:
		return "medium"
	case score < 9.0:
		return "high"
	default:
		return "critical"
	}
}

// splitVersion reads the "CVSS:x.y/" prefix, the only place a vector states
// its version.
func splitVersion(vector string) (version, body string, err error) {
	rest, ok := strings.CutPrefix(vector, "CVSS:")
	if !ok {
		return "", "", cvssError("", "%s has no version prefix; want CVSS:3.0/, CVSS:3.1/ or CVSS:4.0/ (CVSS v2 is not supported)", quoteShort(vector))
	}
	version, body, _ = strings.Cut(rest, "/")
	switch version {
	case "3.0", "3.1", "4.0":
		return version, body, nil
	}
	return "", "", cvssError("", "version %s is not supported; want 3.0, 3.1 or 4.0", quoteShort(version))
}

// explain turns a go-cvss parse error into one naming the offending metric.
// go-cvss stays the judge of validity: this runs only after it has refused
// the vector, and falls back to its own message if no culprit is found.
func explain(version, body string, libErr error, known, base []string, ordered bool, set func(metric, value string) error) error {
	if msg := diagnose(body, known, base, ordered, set); msg != "" {
		return cvssError(version, "%s", msg)
	}
	return fmt.Errorf("scoring: %w: CVSS %s: %w", ErrInvalidCVSS, version, libErr)
}

func diagnose(body string, known, base []string, ordered bool, set func(metric, value string) error) string {
	pos := make(map[string]int, len(known))
	for i, m := range known {
		pos[m] = i
	}
	isBase := func(i int) bool { return i < len(base) }
	seen := make(map[string]bool, len(known))
	next := 0 // index in known of the earliest metric allowed next (4.0)
	for _, seg := range strings.Split(body, "/") {
		if seg == "" {
			return `empty metric (doubled or trailing "/")`
		}
		m, val, ok := strings.Cut(seg, ":")
		if !ok {
			return fmt.Sprintf("metric %s has no value; want NAME:VALUE", quoteShort(seg))
		}
		i, ok := pos[m]
		if !ok {
			return fmt.Sprintf("unknown metric %s", quoteShort(m))
		}
		if seen[m] {
			return fmt.Sprintf("metric %s appears more than once", m)
		}
		seen[m] = true
		if ordered {
			if i < next {
				return fmt.Sprintf("metric %s is out of order; CVSS 4.0 requires the order %s", m, strings.Join(known, "/"))
			}
			for j := next; j < i; j++ {
				if isBase(j) {
					return fmt.Sprintf("base metric %s is missing (or out of order) before %s", known[j], m)
				}
			}
			next = i + 1
		}
		if err := set(m, val); err != nil {
			return fmt.Sprintf("metric %s has invalid value %s", m, quoteShort(val))
		}
	}
	for _, m := range base {
		if !seen[m] {
			return fmt.Sprintf("base metric %s is missing", m)
		}
	}
	return ""
}

func cvssError(version, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if version != "" {
		msg = "CVSS " + version + ": " + msg
	}
	return fmt.Errorf("scoring: %w: %s", ErrInvalidCVSS, msg)
}
