package scoring

import (
	"errors"
	"fmt"
)

// This file implements the CERT/CC SSVC deployer ("patch applier") decision
// as published in the CERTCC/SSVC repository: the decision table
// data/csvs/deployer-options.csv (Exploitation v1.1.0, System Exposure
// v1.0.1, Automatable v2.0.0, Human Impact → Defer/Scheduled/Out-of-Cycle/
// Immediate), also rendered at https://certcc.github.io/SSVC/howto/deployer_tree/
// and as src/ssvc/decision_tables/ssvc/deployer_dt.py (DEPLOYER_1).

// Exploitation, Exposure and HumanImpact are SSVC deployer decision points.
type (
	Exploitation string // none, public-poc, active
	Exposure     string // small, controlled, open
	HumanImpact  string // low, medium, high, very-high
)

// Decision point values, least severe first within each point.
const (
	ExploitationNone      Exploitation = "none"
	ExploitationPublicPoC Exploitation = "public-poc"
	ExploitationActive    Exploitation = "active"

	ExposureSmall      Exposure = "small"
	ExposureControlled Exposure = "controlled"
	ExposureOpen       Exposure = "open"

	HumanImpactLow      HumanImpact = "low"
	HumanImpactMedium   HumanImpact = "medium"
	HumanImpactHigh     HumanImpact = "high"
	HumanImpactVeryHigh HumanImpact = "very-high"
)

// Value lists, least severe first; their indexes address deployerTable.
// Unexported so no caller can reorder what the table lookup relies on.
var (
	exploitations = []Exploitation{ExploitationNone, ExploitationPublicPoC, ExploitationActive}
	exposures     = []Exposure{ExposureSmall, ExposureControlled, ExposureOpen}
	humanImpacts  = []HumanImpact{HumanImpactLow, HumanImpactMedium, HumanImpactHigh, HumanImpactVeryHigh}
)

// ErrInvalidSSVC is wrapped by the errors of Validate and HumanImpactOf.
var ErrInvalidSSVC = errors.New("invalid SSVC input")

// SSVC holds the deployer decision inputs as recorded on a vulnerability.
type SSVC struct {
	Exploitation Exploitation `json:"exploitation" enum:"none,public-poc,active"`
	Exposure     Exposure     `json:"exposure" enum:"small,controlled,open"`
	Automatable  bool         `json:"automatable"`
	HumanImpact  HumanImpact  `json:"human_impact" enum:"low,medium,high,very-high"`
}

// Validate names the first missing or unknown input, in the tree's order
// (exploitation, exposure, human impact). Automatable is a bool and so can
// be neither missing nor unknown here: a record that omits it reads as "no".
func (in SSVC) Validate() error {
	if err := checkValue("exploitation", in.Exploitation, exploitations); err != nil {
		return err
	}
	if err := checkValue("exposure", in.Exposure, exposures); err != nil {
		return err
	}
	return checkValue("human impact", in.HumanImpact, humanImpacts)
}

// Deployer returns the SSVC deployer decision for valid inputs. Inputs that
// fail Validate yield the empty Priority (Rank -1) rather than a guess, so a
// caller that skipped Validate cannot mistake a typo for a decision.
func Deployer(in SSVC) Priority {
	e, x, h := index(in.Exploitation, exploitations), index(in.Exposure, exposures), index(in.HumanImpact, humanImpacts)
	if e < 0 || x < 0 || h < 0 {
		return ""
	}
	a := 0
	if in.Automatable {
		a = 1
	}
	return deployerTable[e][x][a][h]
}

// deployerTable is indexed [exploitation][exposure][automatable][human
// impact], each axis least severe first, as in the published table.
var deployerTable = func() [3][3][2][4]Priority {
	const D, S, O, I = Defer, Scheduled, OutOfCycle, Immediate
	return [3][3][2][4]Priority{
		// Human impact:    low, medium, high, very high
		{ // exploitation: none
			{{D, D, S, S}, {D, S, S, S}}, // exposure small: automatable no, yes
			{{D, S, S, S}, {S, S, S, S}}, // controlled
			{{D, S, S, S}, {S, S, S, O}}, // open
		},
		{ // exploitation: public PoC
			{{D, S, S, S}, {S, S, S, S}},
			{{D, S, S, S}, {S, S, S, O}},
			{{S, S, S, O}, {S, S, O, O}},
		},
		{ // exploitation: active
			{{S, S, O, O}, {S, O, O, O}},
			{{S, S, O, O}, {O, O, O, O}},
			{{S, O, O, I}, {O, O, I, I}},
		},
	}
}()

// SafetyImpact is SSVC v2 Situated Safety Impact.
type SafetyImpact string

// MissionImpact is SSVC v2 Mission Impact.
type MissionImpact string

// Situated Safety Impact and Mission Impact values of SSVC v2, least severe
// first. MissionDegraded is "non-essential degraded"; MissionCrippled is
// "MEF support crippled".
const (
	SafetyNone         SafetyImpact = "none"
	SafetyMinor        SafetyImpact = "minor"
	SafetyMajor        SafetyImpact = "major"
	SafetyHazardous    SafetyImpact = "hazardous"
	SafetyCatastrophic SafetyImpact = "catastrophic"

	MissionNone       MissionImpact = "none"
	MissionDegraded   MissionImpact = "degraded"
	MissionCrippled   MissionImpact = "mef-support-crippled"
	MissionMEFFailure MissionImpact = "mef-failure"
	MissionFailure    MissionImpact = "mission-failure"
)

// Value lists, least severe first; their indexes address humanImpactTable.
var (
	safetyImpacts  = []SafetyImpact{SafetyNone, SafetyMinor, SafetyMajor, SafetyHazardous, SafetyCatastrophic}
	missionImpacts = []MissionImpact{MissionNone, MissionDegraded, MissionCrippled, MissionMEFFailure, MissionFailure}
)

// HumanImpactOf derives Human Impact from Situated Safety Impact and Mission
// Impact by the SSVC v2 table (CERTCC/SSVC data/csvs/human-impact_v2.csv).
//
// Only the SSVC v2.0 five-level safety scale is accepted. The later
// IEC 61508 scale (negligible, marginal, critical, catastrophic) is refused
// on purpose: CERT/CC's own decision table for it (DT_HI 1.0.0) and its
// value definitions (HI 2.0.2) disagree on several cells (CERTCC/SSVC
// issue #1227, unresolved), so any mapping here would be a guess.
func HumanImpactOf(safety SafetyImpact, mission MissionImpact) (HumanImpact, error) {
	if err := checkValue("situated safety impact", safety, safetyImpacts); err != nil {
		return "", err
	}
	if err := checkValue("mission impact", mission, missionImpacts); err != nil {
		return "", err
	}
	return humanImpactTable[index(safety, safetyImpacts)][index(mission, missionImpacts)], nil
}

// humanImpactTable is indexed [safety][mission], least severe first.
var humanImpactTable = func() [5][5]HumanImpact {
	const L, M, H, VH = HumanImpactLow, HumanImpactMedium, HumanImpactHigh, HumanImpactVeryHigh
	return [5][5]HumanImpact{
		// Mission: none, degraded, crippled, MEF failure, mission failure
		{L, L, L, M, VH},     // safety none
		{L, L, L, M, VH},     // minor
		{M, M, M, H, VH},     // major
		{H, H, H, H, VH},     // hazardous
		{VH, VH, VH, VH, VH}, // catastrophic
	}
}()

func index[T comparable](v T, values []T) int {
	for i, w := range values {
		if v == w {
			return i
		}
	}
	return -1
}

func checkValue[T ~string](name string, v T, valid []T) error {
	if index(v, valid) >= 0 {
		return nil
	}
	names := ""
	for i, w := range valid {
		if i > 0 {
			names += ", "
		}
		names += string(w)
	}
	if v == "" {
		return fmt.Errorf("scoring: %w: %s is missing (valid: %s)", ErrInvalidSSVC, name, names)
	}
	return fmt.Errorf("scoring: %w: %s %s is not a known value (valid: %s)", ErrInvalidSSVC, name, quoteShort(string(v)), names)
}
