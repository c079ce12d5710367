package scoring

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	gocvss40 "github.com/pandatix/go-cvss/40"
)

// Published scores of well-known vectors (NVD / FIRST calculators).
func TestParseCVSSKnownVectors(t *testing.T) {
	tests := []struct {
		name, vector string
		version      string
		score        float64
		severity     string
	}{
		{"CVE-2021-44228 Log4Shell", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", "3.1", 10.0, "critical"},
		{"CVE-2014-6271 Shellshock", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "3.1", 9.8, "critical"},
		{"CVE-2023-4863 libwebp", "CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:U/C:H/I:H/A:H", "3.1", 8.8, "high"},
		{"CVE-2017-0144 EternalBlue", "CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:H/A:H", "3.1", 8.1, "high"},
		{"CVE-2021-4034 PwnKit", "CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H", "3.1", 7.8, "high"},
		{"CVE-2014-0160 Heartbleed", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N", "3.1", 7.5, "high"},
		{"reflected XSS", "CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N", "3.1", 6.1, "medium"},
		{"CVE-2017-5753 Spectre v1", "CVSS:3.1/AV:L/AC:H/PR:L/UI:N/S:C/C:H/I:N/A:N", "3.1", 5.6, "medium"},
		{"no impact", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N", "3.1", 0.0, "none"},
		{"CVE-2017-5638 Struts2 (3.0)", "CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", "3.0", 10.0, "critical"},
		{"3.0 Heartbleed", "CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N", "3.0", 7.5, "high"},
		{"4.0 network, no subsequent impact", "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N", "4.0", 9.3, "critical"},
		{"4.0 everything high", "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:H/SI:H/SA:H", "4.0", 10.0, "critical"},
		{"4.0 no impact", "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:N/VI:N/VA:N/SC:N/SI:N/SA:N", "4.0", 0.0, "none"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseCVSS(tt.vector)
			if err != nil {
				t.Fatalf("ParseCVSS: %v", err)
			}
			want := CVSS{Version: tt.version, Vector: tt.vector, BaseScore: tt.score, Severity: tt.severity}
			if c != want {
				t.Errorf("got %+v, want %+v", c, want)
			}
		})
	}
}

// CVSS 4.0 base scores produced by the reference implementation, taken from
// the test data of Red Hat's CVSS library (tests/vectors_simple4), which is
// generated with the FIRST reference calculator. Chosen to cover every
// attack vector, both AT values and the severity boundaries.
func TestParseCVSS40ReferenceScores(t *testing.T) {
	tests := []struct {
		vector string
		score  float64
	}{
		{"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:L/VI:H/VA:L/SC:N/SI:H/SA:L", 9.2},
		{"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:L/VI:L/VA:N/SC:N/SI:L/SA:N", 6.9},
		{"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:P/VC:L/VI:N/VA:N/SC:L/SI:N/SA:L", 5.3},
		{"CVSS:4.0/AV:N/AC:L/AT:N/PR:L/UI:A/VC:H/VI:H/VA:H/SC:H/SI:N/SA:H", 9.3},
		{"CVSS:4.0/AV:N/AC:L/AT:P/PR:N/UI:N/VC:H/VI:N/VA:N/SC:L/SI:L/SA:H", 9.0},
		{"CVSS:4.0/AV:N/AC:L/AT:P/PR:N/UI:N/VC:N/VI:L/VA:L/SC:H/SI:L/SA:L", 7.0},
		{"CVSS:4.0/AV:N/AC:L/AT:P/PR:N/UI:A/VC:N/VI:N/VA:N/SC:L/SI:N/SA:N", 2.1},
		{"CVSS:4.0/AV:N/AC:L/AT:P/PR:H/UI:A/VC:N/VI:L/VA:L/SC:L/SI:N/SA:N", 1.8},
		{"CVSS:4.0/AV:N/AC:H/AT:N/PR:H/UI:A/VC:N/VI:N/VA:N/SC:N/SI:H/SA:N", 4.0},
		{"CVSS:4.0/AV:N/AC:H/AT:N/PR:L/UI:P/VC:H/VI:H/VA:H/SC:H/SI:L/SA:H", 8.8},
		{"CVSS:4.0/AV:N/AC:H/AT:N/PR:L/UI:A/VC:L/VI:L/VA:N/SC:N/SI:N/SA:H", 4.3},
		{"CVSS:4.0/AV:N/AC:H/AT:P/PR:N/UI:N/VC:H/VI:H/VA:H/SC:H/SI:L/SA:N", 9.5},
		{"CVSS:4.0/AV:L/AC:H/AT:N/PR:L/UI:N/VC:H/VI:H/VA:L/SC:N/SI:H/SA:L", 8.5},
		{"CVSS:4.0/AV:L/AC:H/AT:N/PR:L/UI:P/VC:L/VI:N/VA:N/SC:N/SI:N/SA:N", 1.0},
		{"CVSS:4.0/AV:L/AC:H/AT:N/PR:H/UI:P/VC:N/VI:N/VA:N/SC:H/SI:N/SA:N", 1.8},
		{"CVSS:4.0/AV:L/AC:H/AT:P/PR:H/UI:N/VC:L/VI:N/VA:N/SC:H/SI:N/SA:N", 4.0},
		{"CVSS:4.0/AV:L/AC:H/AT:P/PR:L/UI:P/VC:L/VI:L/VA:L/SC:L/SI:H/SA:H", 2.3},
		{"CVSS:4.0/AV:P/AC:L/AT:N/PR:N/UI:N/VC:L/VI:N/VA:L/SC:L/SI:L/SA:N", 2.4},
		{"CVSS:4.0/AV:P/AC:L/AT:N/PR:N/UI:P/VC:H/VI:H/VA:L/SC:L/SI:H/SA:H", 8.5},
		{"CVSS:4.0/AV:P/AC:L/AT:N/PR:H/UI:N/VC:N/VI:N/VA:N/SC:N/SI:H/SA:N", 4.1},
		{"CVSS:4.0/AV:P/AC:L/AT:P/PR:N/UI:A/VC:L/VI:N/VA:L/SC:H/SI:N/SA:N", 1.8},
		{"CVSS:4.0/AV:P/AC:L/AT:P/PR:L/UI:P/VC:H/VI:N/VA:N/SC:N/SI:N/SA:L", 4.1},
	}
	for _, tt := range tests {
		c, err := ParseCVSS(tt.vector)
		if err != nil {
			t.Errorf("%s: %v", tt.vector, err)
			continue
		}
		if c.BaseScore != tt.score || c.Severity != severity(tt.score) {
			t.Errorf("%s: got %.1f %s, want %.1f %s", tt.vector, c.BaseScore, c.Severity, tt.score, severity(tt.score))
		}
	}
}

// Known divergence, pinned so that a go-cvss upgrade that changes it is
// noticed and reviewed. For 522 of the 104,976 CVSS 4.0 base vectors the
// exact score ends in .x5 but float arithmetic lands one ULP below it.
// go-cvss v0.6.4 and the calculator deployed by FIRST round down (8.5
// here); Red Hat's reference implementation since its late-2024 rounding
// fix rounds up (8.6). The specification does not settle it.
func TestParseCVSS40RoundingTieFollowsGoCVSS(t *testing.T) {
	c, err := ParseCVSS("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:P/VC:H/VI:L/VA:N/SC:H/SI:H/SA:H")
	if err != nil {
		t.Fatal(err)
	}
	if c.BaseScore != 8.5 {
		t.Errorf("BaseScore = %.1f; go-cvss changed its 4.0 rounding: decide which calculator to follow and update this test", c.BaseScore)
	}
}

// Every one of the 2,592 CVSS 3.x base vectors is checked against the base
// score formula of the specifications (3.1 §7.1 and Appendix A Roundup; 3.0
// §8.1 with its plain round-up), implemented independently here.
func TestParseCVSS3AllBaseVectorsMatchSpecification(t *testing.T) {
	n := 0
	for _, av := range []string{"N", "A", "L", "P"} {
		for _, ac := range []string{"L", "H"} {
			for _, pr := range []string{"N", "L", "H"} {
				for _, ui := range []string{"N", "R"} {
					for _, s := range []string{"U", "C"} {
						for _, ci := range []string{"H", "L", "N"} {
							for _, ii := range []string{"H", "L", "N"} {
								for _, ai := range []string{"H", "L", "N"} {
									n++
									body := fmt.Sprintf("AV:%s/AC:%s/PR:%s/UI:%s/S:%s/C:%s/I:%s/A:%s", av, ac, pr, ui, s, ci, ii, ai)
									raw := specRawBase3(av, ac, pr, ui, s, ci, ii, ai)
									checkSpec(t, "CVSS:3.1/"+body, roundup31(raw))
									checkSpec(t, "CVSS:3.0/"+body, math.Ceil(raw*10)/10)
								}
							}
						}
					}
				}
			}
		}
	}
	if n != 2592 {
		t.Fatalf("enumerated %d vectors, want 2592", n)
	}
}

func checkSpec(t *testing.T, vector string, want float64) {
	t.Helper()
	c, err := ParseCVSS(vector)
	if err != nil {
		t.Errorf("%s: %v", vector, err)
		return
	}
	if c.BaseScore != want || c.Severity != severity(want) || c.Vector != vector {
		t.Errorf("%s: got %+v, want score %.1f", vector, c, want)
	}
}

// specRawBase3 is the CVSS 3.x base score before rounding, straight from
// the specification's formulas and constants.
func specRawBase3(av, ac, pr, ui, s, c, i, a string) float64 {
	changed := s == "C"
	w := map[string]float64{"N": 0.85, "A": 0.62, "L": 0.55, "P": 0.2}[av] *
		map[string]float64{"L": 0.77, "H": 0.44}[ac] *
		map[string]float64{"N": 0.85, "R": 0.62}[ui]
	if changed {
		w *= map[string]float64{"N": 0.85, "L": 0.68, "H": 0.5}[pr]
	} else {
		w *= map[string]float64{"N": 0.85, "L": 0.62, "H": 0.27}[pr]
	}
	exploitability := 8.22 * w
	cia := map[string]float64{"H": 0.56, "L": 0.22, "N": 0}
	iss := 1 - (1-cia[c])*(1-cia[i])*(1-cia[a])
	impact := 6.42 * iss
	if changed {
		impact = 7.52*(iss-0.029) - 3.25*math.Pow(iss-0.02, 15)
	}
	switch {
	case impact <= 0:
		return 0
	case changed:
		return math.Min(1.08*(impact+exploitability), 10)
	default:
		return math.Min(impact+exploitability, 10)
	}
}

// roundup31 is Roundup from CVSS 3.1 Appendix A.
func roundup31(x float64) float64 {
	i := math.Round(x * 100000)
	if math.Mod(i, 10000) == 0 {
		return i / 100000
	}
	return (math.Floor(i/10000) + 1) / 10
}

func TestSeverityThresholds(t *testing.T) {
	for score, want := range map[float64]string{
		0.0: "none", 0.1: "low", 3.9: "low", 4.0: "medium", 6.9: "medium",
		7.0: "high", 8.9: "high", 9.0: "critical", 10.0: "critical",
	} {
		if got := severity(score); got != want {
			t.Errorf("severity(%.1f) = %s, want %s", score, got, want)
		}
	}
}

func TestParseCVSSNormalises(t *testing.T) {
	tests := []struct {
		name, in, vector string
		score            float64
	}{
		{"3.x metric order", "CVSS:3.1/A:H/I:H/C:H/S:C/UI:N/PR:N/AC:L/AV:N",
			"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", 10.0},
		{"surrounding space", " \tCVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N\n",
			"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N", 7.5},
		// Temporal metrics are kept in the vector but never lower the base score.
		{"3.x temporal kept, not scored", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H/E:U/RL:O/RC:U",
			"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H/E:U/RL:O/RC:U", 10.0},
		{"3.x not-defined dropped", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H/E:X/MAV:X",
			"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", 10.0},
		{"3.0 environmental kept, not scored", "CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N/CR:L/MAV:P",
			"CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N/CR:L/MAV:P", 7.5},
		{"4.0 not-defined dropped", "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N/E:X/CR:X/U:X",
			"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N", 9.3},
		{"4.0 supplemental kept", "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N/S:P/AU:Y/U:Red",
			"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N/S:P/AU:Y/U:Red", 9.3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseCVSS(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if c.Vector != tt.vector || c.BaseScore != tt.score {
				t.Errorf("got %s %.1f, want %s %.1f", c.Vector, c.BaseScore, tt.vector, tt.score)
			}
		})
	}
}

// A 4.0 vector enriched with threat or environmental metrics still reports
// its CVSS-B score, although go-cvss alone would score CVSS-BT/BTE.
func TestParseCVSS40BaseScoreIgnoresThreatAndEnvironment(t *testing.T) {
	const base = "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"
	for _, extra := range []string{
		"/E:U",
		"/E:P/CR:L/IR:L/AR:L",
		"/MAV:P/MAC:H/MAT:P/MPR:H/MUI:A/MVC:N/MVI:N/MVA:N/MSC:H/MSI:S/MSA:S",
	} {
		vector := base + extra
		lib, err := gocvss40.ParseVector(vector)
		if err != nil {
			t.Fatal(err)
		}
		if lib.Score() == 9.3 {
			t.Fatalf("%s: library scores it 9.3 too, so this case proves nothing", vector)
		}
		c, err := ParseCVSS(vector)
		if err != nil {
			t.Fatal(err)
		}
		if c.BaseScore != 9.3 || c.Vector != vector {
			t.Errorf("%s: got %s %.1f, want the vector unchanged and 9.3", vector, c.Vector, c.BaseScore)
		}
	}
}

func TestParseCVSSErrors(t *testing.T) {
	const b31 = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"
	const b40 = "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"
	tests := []struct{ in, want string }{
		{"", "vector is empty"},
		{" \n", "vector is empty"},
		{strings.Repeat("A", MaxVectorLen+1), "513 bytes, over the 512-byte limit"},
		{b31 + "/" + strings.Repeat("E:X/", 120), "over the 512-byte limit"},
		{"AV:N/AC:L/Au:N/C:P/I:P/A:P", "no version prefix"},
		{"cvss:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "no version prefix"},
		{"CVSS:2.0/AV:N/AC:L/Au:N/C:P/I:P/A:P", `version "2.0" is not supported`},
		{"CVSS:3.2/AV:N", `version "3.2" is not supported`},
		{"CVSS:3.1", "CVSS 3.1: vector has no metrics"},
		{"CVSS:4.0/", "CVSS 4.0: vector has no metrics"},
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H", "CVSS 3.1: base metric A is missing"},
		{"CVSS:3.0/AV:N/AC:L/UI:N/S:U/C:H/I:H/A:H", "CVSS 3.0: base metric PR is missing"},
		{"CVSS:3.1/AV:Q/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", `metric AV has invalid value "Q"`},
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:X", `metric A has invalid value "X"`},
		{b31 + "/XX:1", `unknown metric "XX"`},
		{b31 + "/AV:N", "metric AV appears more than once"},
		{"CVSS:3.1/AV:N//AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "empty metric"},
		{b31 + "/", "empty metric"},
		{"CVSS:3.1/AV/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", `metric "AV" has no value`},
		{"CVSS:3.1/AV:N /AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", `metric AV has invalid value "N "`},
		{"CVSS:4.0/AC:L/AV:N/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N", "CVSS 4.0: base metric AV is missing (or out of order) before AC"},
		{b40 + "/CR:H/E:A", "metric E is out of order"},
		{"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N", "CVSS 4.0: base metric SA is missing"},
		{b40 + "/U:Blue", `metric U has invalid value "Blue"`},
		{b40 + "/E:A/E:A", "metric E appears more than once"},
		{b40 + "/AV:N", "metric AV appears more than once"},
		{b40 + "/Z:1", `unknown metric "Z"`},
	}
	for _, tt := range tests {
		c, err := ParseCVSS(tt.in)
		if err == nil {
			t.Errorf("ParseCVSS(%.60q) = %+v, want error containing %q", tt.in, c, tt.want)
			continue
		}
		if !errors.Is(err, ErrInvalidCVSS) {
			t.Errorf("ParseCVSS(%.60q): %v does not wrap ErrInvalidCVSS", tt.in, err)
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseCVSS(%.60q) error = %q, want it to contain %q", tt.in, err, tt.want)
		}
		if c != (CVSS{}) {
			t.Errorf("ParseCVSS(%.60q) returned %+v with its error", tt.in, c)
		}
	}
}

// FuzzParseCVSS checks that no input panics (in go-cvss either: a recovered
// library panic fails the target) and that anything accepted is well formed
// and stable: its normalised vector parses back to exactly the same result.
func FuzzParseCVSS(f *testing.F) {
	for _, seed := range []string{
		"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H",
		"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H/E:U/RL:O/RC:C/CR:H/IR:M/AR:L/MAV:A/MAC:H/MPR:L/MUI:R/MS:U/MC:L/MI:N/MA:H",
		"CVSS:3.0/AV:P/AC:H/PR:H/UI:R/S:U/C:N/I:N/A:N",
		"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N",
		"CVSS:4.0/AV:A/AC:L/AT:P/PR:L/UI:N/VC:N/VI:H/VA:L/SC:N/SI:N/SA:L/E:P/CR:X/IR:L/AR:M/MAV:X/MAC:X/MAT:N/MPR:L/MUI:X/MVC:X/MVI:N/MVA:N/MSC:X/MSI:N/MSA:N/S:P/AU:X/R:A/V:X/RE:M/U:Clear",
		"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:N/VI:N/VA:N/SC:N/SI:N/SA:N/MVC:H/MSI:S",
		"CVSS:4.0//AV:N",
		"CVSS:3.1/AV:N/AV:N",
		"CVSS:",
		"",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		c, err := ParseCVSS(in)
		if err != nil {
			if errors.Is(err, errLibraryPanic) {
				t.Fatalf("go-cvss panicked on %q: %v", in, err)
			}
			if !errors.Is(err, ErrInvalidCVSS) {
				t.Fatalf("error %v does not wrap ErrInvalidCVSS", err)
			}
			return
		}
		if len(in) > MaxVectorLen {
			t.Fatalf("accepted %d bytes", len(in))
		}
		switch c.Version {
		case "3.0", "3.1", "4.0":
		default:
			t.Fatalf("version %q", c.Version)
		}
		if !strings.HasPrefix(c.Vector, "CVSS:"+c.Version+"/") {
			t.Fatalf("vector %q does not carry version %s", c.Vector, c.Version)
		}
		if c.BaseScore < 0 || c.BaseScore > 10 || math.Round(c.BaseScore*10)/10 != c.BaseScore {
			t.Fatalf("score %v", c.BaseScore)
		}
		if c.Severity != severity(c.BaseScore) {
			t.Fatalf("severity %s for %.1f", c.Severity, c.BaseScore)
		}
		again, err := ParseCVSS(c.Vector)
		if err != nil {
			t.Fatalf("normalised vector %q of %q does not parse: %v", c.Vector, in, err)
		}
		if again != c {
			t.Fatalf("re-parse of %q: got %+v, want %+v", in, again, c)
		}
	})
}

// Random valid vectors with optional metrics: accepted, stable under
// re-parsing, and scored exactly like their base metrics alone.
func TestParseCVSSOptionalMetricsNeverChangeBaseScore(t *testing.T) {
	values := map[string][]string{
		// 3.x
		"3:AV": {"N", "A", "L", "P"}, "3:AC": {"L", "H"}, "3:PR": {"N", "L", "H"}, "3:UI": {"N", "R"},
		"3:S": {"U", "C"}, "3:C": {"H", "L", "N"}, "3:I": {"H", "L", "N"}, "3:A": {"H", "L", "N"},
		"3:E": {"X", "U", "P", "F", "H"}, "3:RL": {"X", "O", "T", "W", "U"}, "3:RC": {"X", "U", "R", "C"},
		"3:CR": {"X", "L", "M", "H"}, "3:IR": {"X", "L", "M", "H"}, "3:AR": {"X", "L", "M", "H"},
		"3:MAV": {"X", "N", "A", "L", "P"}, "3:MAC": {"X", "L", "H"}, "3:MPR": {"X", "N", "L", "H"},
		"3:MUI": {"X", "N", "R"}, "3:MS": {"X", "U", "C"}, "3:MC": {"X", "H", "L", "N"},
		"3:MI": {"X", "H", "L", "N"}, "3:MA": {"X", "H", "L", "N"},
		// 4.0
		"4:AV": {"N", "A", "L", "P"}, "4:AC": {"L", "H"}, "4:AT": {"N", "P"}, "4:PR": {"N", "L", "H"},
		"4:UI": {"N", "P", "A"}, "4:VC": {"H", "L", "N"}, "4:VI": {"H", "L", "N"}, "4:VA": {"H", "L", "N"},
		"4:SC": {"H", "L", "N"}, "4:SI": {"H", "L", "N"}, "4:SA": {"H", "L", "N"},
		"4:E": {"X", "A", "P", "U"}, "4:CR": {"X", "H", "M", "L"}, "4:IR": {"X", "H", "M", "L"}, "4:AR": {"X", "H", "M", "L"},
		"4:MAV": {"X", "N", "A", "L", "P"}, "4:MAC": {"X", "L", "H"}, "4:MAT": {"X", "N", "P"},
		"4:MPR": {"X", "N", "L", "H"}, "4:MUI": {"X", "N", "P", "A"}, "4:MVC": {"X", "H", "L", "N"},
		"4:MVI": {"X", "H", "L", "N"}, "4:MVA": {"X", "H", "L", "N"}, "4:MSC": {"X", "H", "L", "N"},
		"4:MSI": {"X", "S", "H", "L", "N"}, "4:MSA": {"X", "S", "H", "L", "N"},
		"4:S": {"X", "N", "P"}, "4:AU": {"X", "N", "Y"}, "4:R": {"X", "A", "U", "I"}, "4:V": {"X", "D", "C"},
		"4:RE": {"X", "L", "M", "H"}, "4:U": {"X", "Clear", "Green", "Amber", "Red"},
	}
	rng := rand.New(rand.NewPCG(31, 40))
	build := func(ver string, metrics []string, nBase int) (full, base string) {
		var all, b []string
		for i, m := range metrics {
			vs := values[ver[:1]+":"+m]
			if len(vs) == 0 {
				t.Fatalf("no values for %s %s", ver, m)
			}
			part := m + ":" + vs[rng.IntN(len(vs))]
			if i < nBase {
				b = append(b, part)
				all = append(all, part)
			} else if rng.IntN(2) == 0 {
				all = append(all, part)
			}
		}
		return "CVSS:" + ver + "/" + strings.Join(all, "/"), "CVSS:" + ver + "/" + strings.Join(b, "/")
	}
	for range 3000 {
		for _, v := range []struct {
			ver     string
			metrics []string
			nBase   int
		}{{"3.0", cvss3Metrics, 8}, {"3.1", cvss3Metrics, 8}, {"4.0", cvss4Metrics, 11}} {
			full, base := build(v.ver, v.metrics, v.nBase)
			c, err := ParseCVSS(full)
			if err != nil {
				t.Fatalf("%s: %v", full, err)
			}
			b, err := ParseCVSS(base)
			if err != nil {
				t.Fatalf("%s: %v", base, err)
			}
			if c.BaseScore != b.BaseScore || c.Severity != b.Severity {
				t.Fatalf("%s scores %.1f, its base part %.1f", full, c.BaseScore, b.BaseScore)
			}
			if again, err := ParseCVSS(c.Vector); err != nil || again != c {
				t.Fatalf("%s: re-parse of %s gave %+v, %v", full, c.Vector, again, err)
			}
			if strings.Contains(c.Vector, ":X") {
				t.Fatalf("%s: normalised vector %s keeps not-defined metrics", full, c.Vector)
			}
		}
	}
}
