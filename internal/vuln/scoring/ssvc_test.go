package scoring

import (
	"errors"
	"strings"
	"testing"
)

// deployerCSV is the published SSVC deployer decision table, transcribed
// row for row from CERTCC/SSVC data/csvs/deployer-options.csv (spelling as
// there: "PoC", "very high").
const deployerCSV = `
none,small,no,low,defer
none,small,no,medium,defer
none,small,no,high,scheduled
none,small,no,very high,scheduled
none,small,yes,low,defer
none,small,yes,medium,scheduled
none,small,yes,high,scheduled
none,small,yes,very high,scheduled
none,controlled,no,low,defer
none,controlled,no,medium,scheduled
none,controlled,no,high,scheduled
none,controlled,no,very high,scheduled
none,controlled,yes,low,scheduled
none,controlled,yes,medium,scheduled
none,controlled,yes,high,scheduled
none,controlled,yes,very high,scheduled
none,open,no,low,defer
none,open,no,medium,scheduled
none,open,no,high,scheduled
none,open,no,very high,scheduled
none,open,yes,low,scheduled
none,open,yes,medium,scheduled
none,open,yes,high,scheduled
none,open,yes,very high,out-of-cycle
PoC,small,no,low,defer
PoC,small,no,medium,scheduled
PoC,small,no,high,scheduled
PoC,small,no,very high,scheduled
PoC,small,yes,low,scheduled
PoC,small,yes,medium,scheduled
PoC,small,yes,high,scheduled
PoC,small,yes,very high,scheduled
PoC,controlled,no,low,defer
PoC,controlled,no,medium,scheduled
PoC,controlled,no,high,scheduled
PoC,controlled,no,very high,scheduled
PoC,controlled,yes,low,scheduled
PoC,controlled,yes,medium,scheduled
PoC,controlled,yes,high,scheduled
PoC,controlled,yes,very high,out-of-cycle
PoC,open,no,low,scheduled
PoC,open,no,medium,scheduled
PoC,open,no,high,scheduled
PoC,open,no,very high,out-of-cycle
PoC,open,yes,low,scheduled
PoC,open,yes,medium,scheduled
PoC,open,yes,high,out-of-cycle
PoC,open,yes,very high,out-of-cycle
active,small,no,low,scheduled
active,small,no,medium,scheduled
active,small,no,high,out-of-cycle
active,small,no,very high,out-of-cycle
active,small,yes,low,scheduled
active,small,yes,medium,out-of-cycle
active,small,yes,high,out-of-cycle
active,small,yes,very high,out-of-cycle
active,controlled,no,low,scheduled
active,controlled,no,medium,scheduled
active,controlled,no,high,out-of-cycle
active,controlled,no,very high,out-of-cycle
active,controlled,yes,low,out-of-cycle
active,controlled,yes,medium,out-of-cycle
active,controlled,yes,high,out-of-cycle
active,controlled,yes,very high,out-of-cycle
active,open,no,low,scheduled
active,open,no,medium,out-of-cycle
active,open,no,high,out-of-cycle
active,open,no,very high,immediate
active,open,yes,low,out-of-cycle
active,open,yes,medium,out-of-cycle
active,open,yes,high,immediate
active,open,yes,very high,immediate
`

func TestDeployerPublishedTable(t *testing.T) {
	exploitation := map[string]Exploitation{"none": ExploitationNone, "PoC": ExploitationPublicPoC, "active": ExploitationActive}
	automatable := map[string]bool{"no": false, "yes": true}
	seen := map[SSVC]bool{}
	for _, line := range strings.Split(strings.TrimSpace(deployerCSV), "\n") {
		f := strings.Split(line, ",")
		if len(f) != 5 {
			t.Fatalf("bad row %q", line)
		}
		e, eok := exploitation[f[0]]
		a, aok := automatable[f[2]]
		want, perr := ParsePriority(f[4])
		if !eok || !aok || perr != nil {
			t.Fatalf("bad row %q", line)
		}
		in := SSVC{Exploitation: e, Exposure: Exposure(f[1]), Automatable: a, HumanImpact: HumanImpact(strings.ReplaceAll(f[3], " ", "-"))}
		if err := in.Validate(); err != nil {
			t.Fatalf("row %q: %v", line, err)
		}
		if seen[in] {
			t.Fatalf("row %q appears twice", line)
		}
		seen[in] = true
		if got := Deployer(in); got != want {
			t.Errorf("Deployer(%+v) = %s, want %s (row %q)", in, got, want, line)
		}
	}
	if len(seen) != 3*3*2*4 {
		t.Fatalf("table has %d distinct rows, want 72", len(seen))
	}
}

// allSSVC enumerates every valid input, least severe first on each axis.
func allSSVC(visit func(in SSVC)) {
	for _, e := range exploitations {
		for _, x := range exposures {
			for _, a := range []bool{false, true} {
				for _, h := range humanImpacts {
					visit(SSVC{Exploitation: e, Exposure: x, Automatable: a, HumanImpact: h})
				}
			}
		}
	}
}

// Raising any single input by one step never lowers the decision.
func TestDeployerMonotone(t *testing.T) {
	next := func(in SSVC) []SSVC {
		var up []SSVC
		if i := index(in.Exploitation, exploitations); i+1 < len(exploitations) {
			r := in
			r.Exploitation = exploitations[i+1]
			up = append(up, r)
		}
		if i := index(in.Exposure, exposures); i+1 < len(exposures) {
			r := in
			r.Exposure = exposures[i+1]
			up = append(up, r)
		}
		if !in.Automatable {
			r := in
			r.Automatable = true
			up = append(up, r)
		}
		if i := index(in.HumanImpact, humanImpacts); i+1 < len(humanImpacts) {
			r := in
			r.HumanImpact = humanImpacts[i+1]
			up = append(up, r)
		}
		return up
	}
	count := 0
	allSSVC(func(in SSVC) {
		count++
		p := Deployer(in)
		if p.Rank() < 0 {
			t.Errorf("Deployer(%+v) = %q, not a priority", in, p)
		}
		for _, r := range next(in) {
			if q := Deployer(r); q.Rank() < p.Rank() {
				t.Errorf("raising %+v to %+v lowers %s to %s", in, r, p, q)
			}
		}
	})
	if count != 72 {
		t.Fatalf("visited %d inputs, want 72", count)
	}
	// The extremes of the published table.
	if p := Deployer(SSVC{ExploitationNone, ExposureSmall, false, HumanImpactLow}); p != Defer {
		t.Errorf("least severe input: %s, want defer", p)
	}
	if p := Deployer(SSVC{ExploitationActive, ExposureOpen, true, HumanImpactVeryHigh}); p != Immediate {
		t.Errorf("most severe input: %s, want immediate", p)
	}
}

func TestSSVCValidate(t *testing.T) {
	ok := SSVC{Exploitation: ExploitationActive, Exposure: ExposureOpen, Automatable: true, HumanImpact: HumanImpactHigh}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid input: %v", err)
	}
	tests := []struct {
		name string
		in   SSVC
		want string
	}{
		{"all missing names exploitation first", SSVC{}, "exploitation is missing (valid: none, public-poc, active)"},
		{"unknown exploitation", SSVC{Exploitation: "poc", Exposure: ExposureOpen, HumanImpact: HumanImpactLow}, `exploitation "poc" is not a known value (valid: none, public-poc, active)`},
		{"missing exposure", SSVC{Exploitation: ExploitationNone, HumanImpact: HumanImpactLow}, "exposure is missing (valid: small, controlled, open)"},
		{"unknown exposure", SSVC{Exploitation: ExploitationNone, Exposure: "Open", HumanImpact: HumanImpactLow}, `exposure "Open" is not a known value`},
		{"missing human impact", SSVC{Exploitation: ExploitationNone, Exposure: ExposureSmall}, "human impact is missing (valid: low, medium, high, very-high)"},
		{"unknown human impact", SSVC{Exploitation: ExploitationNone, Exposure: ExposureSmall, HumanImpact: "very high"}, `human impact "very high" is not a known value`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.in.Validate()
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, ErrInvalidSSVC) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want ErrInvalidSSVC containing %q", err, tt.want)
			}
			// Invalid input must not yield a decision.
			if p := Deployer(tt.in); p != "" {
				t.Errorf("Deployer(%+v) = %s, want empty", tt.in, p)
			}
		})
	}
}

// humanImpactCSV is CERTCC/SSVC data/csvs/human-impact_v2.csv, row for row
// (Situated Safety Impact, Mission Impact, Human Impact).
const humanImpactCSV = `
None,None,Low
None,Degraded,Low
None,Crippled,Low
None,MEF Failure,Medium
None,Mission Failure,Very High
Minor,None,Low
Minor,Degraded,Low
Minor,Crippled,Low
Minor,MEF Failure,Medium
Minor,Mission Failure,Very High
Major,None,Medium
Major,Degraded,Medium
Major,Crippled,Medium
Major,MEF Failure,High
Major,Mission Failure,Very High
Hazardous,None,High
Hazardous,Degraded,High
Hazardous,Crippled,High
Hazardous,MEF Failure,High
Hazardous,Mission Failure,Very High
Catastrophic,None,Very High
Catastrophic,Degraded,Very High
Catastrophic,Crippled,Very High
Catastrophic,MEF Failure,Very High
Catastrophic,Mission Failure,Very High
`

func TestHumanImpactOfPublishedTable(t *testing.T) {
	mission := map[string]MissionImpact{
		"None": MissionNone, "Degraded": MissionDegraded, "Crippled": MissionCrippled,
		"MEF Failure": MissionMEFFailure, "Mission Failure": MissionFailure,
	}
	type key struct {
		s SafetyImpact
		m MissionImpact
	}
	seen := map[key]bool{}
	for _, line := range strings.Split(strings.TrimSpace(humanImpactCSV), "\n") {
		f := strings.Split(line, ",")
		m, ok := mission[f[1]]
		if len(f) != 3 || !ok {
			t.Fatalf("bad row %q", line)
		}
		s := SafetyImpact(strings.ToLower(f[0]))
		want := HumanImpact(strings.ReplaceAll(strings.ToLower(f[2]), " ", "-"))
		seen[key{s, m}] = true
		got, err := HumanImpactOf(s, m)
		if err != nil || got != want {
			t.Errorf("HumanImpactOf(%s, %s) = %q, %v; want %s", s, m, got, err, want)
		}
	}
	if len(seen) != 25 {
		t.Fatalf("table has %d distinct rows, want 25", len(seen))
	}
}

func TestHumanImpactOfMonotone(t *testing.T) {
	for si, s := range safetyImpacts {
		for mi, m := range missionImpacts {
			h, _ := HumanImpactOf(s, m)
			hr := index(h, humanImpacts)
			if si+1 < len(safetyImpacts) {
				up, _ := HumanImpactOf(safetyImpacts[si+1], m)
				if index(up, humanImpacts) < hr {
					t.Errorf("raising safety %s→%s lowers %s to %s", s, safetyImpacts[si+1], h, up)
				}
			}
			if mi+1 < len(missionImpacts) {
				up, _ := HumanImpactOf(s, missionImpacts[mi+1])
				if index(up, humanImpacts) < hr {
					t.Errorf("raising mission %s→%s lowers %s to %s", m, missionImpacts[mi+1], h, up)
				}
			}
		}
	}
}

func TestHumanImpactOfRejects(t *testing.T) {
	tests := []struct {
		s    SafetyImpact
		m    MissionImpact
		want string
	}{
		{"", MissionNone, "situated safety impact is missing"},
		// The IEC 61508 scale is refused, not guessed (see HumanImpactOf).
		{"marginal", MissionNone, `situated safety impact "marginal" is not a known value (valid: none, minor, major, hazardous, catastrophic)`},
		{SafetyMinor, "", "mission impact is missing"},
		{SafetyMinor, "crippled", `mission impact "crippled" is not a known value`},
	}
	for _, tt := range tests {
		h, err := HumanImpactOf(tt.s, tt.m)
		if err == nil || h != "" || !errors.Is(err, ErrInvalidSSVC) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("HumanImpactOf(%q, %q) = %q, %v; want ErrInvalidSSVC containing %q", tt.s, tt.m, h, err, tt.want)
		}
	}
}
