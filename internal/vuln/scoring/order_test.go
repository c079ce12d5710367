package scoring

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

func ids(items []Item) string {
	s := make([]string, len(items))
	for i, it := range items {
		s[i] = it.ID
	}
	return strings.Join(s, " ")
}

func TestOrderRules(t *testing.T) {
	cost := func(brick, energy float64, bytes int64, down time.Duration) *Cost {
		return &Cost{BrickRisk: brick, EnergyMWh: energy, Bytes: bytes, Downtime: down}
	}
	free := cost(0, 0, 0, 0)
	huge := cost(0.5, 1e6, 1<<40, 48*time.Hour)
	tests := []struct {
		name  string
		items []Item
		want  string
	}{
		{"cost and exploitation never cross classes", []Item{
			{ID: "sched", Priority: Scheduled, KnownExploited: true, CVSSScore: 10, Cost: free},
			{ID: "defer", Priority: Defer, KnownExploited: true, CVSSScore: 10, Cost: free},
			{ID: "ooc", Priority: OutOfCycle, CVSSScore: 1, Cost: huge},
			{ID: "imm", Priority: Immediate, CVSSScore: 0},
		}, "imm ooc sched defer"},
		{"exploited first whatever it costs", []Item{
			{ID: "cheap", Priority: Scheduled, CVSSScore: 10, Cost: free},
			{ID: "exploited-unknown", Priority: Scheduled, KnownExploited: true, CVSSScore: 1},
			{ID: "exploited-huge", Priority: Scheduled, KnownExploited: true, CVSSScore: 1, Cost: huge},
		}, "exploited-huge exploited-unknown cheap"},
		{"known cost before unknown cost", []Item{
			{ID: "unknown", Priority: OutOfCycle, CVSSScore: 10},
			{ID: "known", Priority: OutOfCycle, CVSSScore: 1, Cost: huge},
		}, "known unknown"},
		{"brick risk outweighs energy, bytes and downtime", []Item{
			{ID: "risky", Priority: Scheduled, Cost: cost(0.002, 0, 0, 0)},
			{ID: "heavy", Priority: Scheduled, Cost: cost(0.001, 100, 1e9, time.Hour)},
		}, "heavy risky"},
		{"then energy, bytes, downtime", []Item{
			{ID: "e1", Priority: Scheduled, Cost: cost(0.01, 1, 0, 0)},
			{ID: "big", Priority: Scheduled, Cost: cost(0.01, 0.5, 9e9, 0)},
			{ID: "hour", Priority: Scheduled, Cost: cost(0.01, 0.5, 1, time.Hour)},
			{ID: "minute", Priority: Scheduled, Cost: cost(0.01, 0.5, 1, time.Minute)},
		}, "minute hour big e1"},
		{"cost beats CVSS score", []Item{
			{ID: "severe", Priority: Immediate, CVSSScore: 10, Cost: cost(0, 2, 0, 0)},
			{ID: "mild", Priority: Immediate, CVSSScore: 2, Cost: cost(0, 1, 0, 0)},
		}, "mild severe"},
		{"an unusable cost counts as unknown", []Item{
			{ID: "nan", Priority: Defer, CVSSScore: 9, Cost: &Cost{EnergyMWh: math.NaN()}},
			{ID: "neg", Priority: Defer, CVSSScore: 8, Cost: &Cost{Bytes: -1}},
			{ID: "over", Priority: Defer, CVSSScore: 7, Cost: &Cost{BrickRisk: 1.5}},
			{ID: "inf", Priority: Defer, CVSSScore: 6, Cost: &Cost{EnergyMWh: math.Inf(1)}},
			{ID: "nil", Priority: Defer, CVSSScore: 5},
			{ID: "valid", Priority: Defer, CVSSScore: 1, Cost: huge},
		}, "valid nan neg over inf nil"},
		{"then higher CVSS, NaN lowest, then ID", []Item{
			{ID: "nan", Priority: Scheduled, CVSSScore: math.NaN()},
			{ID: "five", Priority: Scheduled, CVSSScore: 5},
			{ID: "nine-b", Priority: Scheduled, CVSSScore: 9},
			{ID: "nine-a", Priority: Scheduled, CVSSScore: 9},
			{ID: "zero", Priority: Scheduled, CVSSScore: 0},
		}, "nine-a nine-b five zero nan"},
		{"undecided priorities sort after defer", []Item{
			{ID: "bogus", Priority: "urgent", KnownExploited: true, CVSSScore: 10},
			{ID: "defer", Priority: Defer},
			{ID: "empty", Priority: "", KnownExploited: true, CVSSScore: 10},
			{ID: "imm", Priority: Immediate},
		}, "imm defer bogus empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Every input order must give the same result.
			for r := range 20 {
				items := slices.Clone(tt.items)
				rng := rand.New(rand.NewPCG(uint64(r), 7))
				rng.Shuffle(len(items), func(i, j int) { items[i], items[j] = items[j], items[i] })
				Order(items)
				if got := ids(items); got != tt.want {
					t.Fatalf("got %q, want %q", got, tt.want)
				}
			}
		})
	}
}

func TestOrderKeepsInputOrderOfFullTies(t *testing.T) {
	a, b := &Cost{Bytes: 1}, &Cost{Bytes: 1}
	items := []Item{
		{ID: "x", Priority: Scheduled, Cost: b},
		{ID: "x", Priority: Immediate},
		{ID: "x", Priority: Scheduled, Cost: a},
	}
	Order(items)
	if items[0].Priority != Immediate || items[1].Cost != b || items[2].Cost != a {
		t.Errorf("full ties reordered: %+v", items)
	}
	Order(nil) // must not panic
	Order([]Item{})
}

// oracleKey restates the documented rules as a sort key, independently of
// compareItems: items must come out in non-decreasing key order.
type oracleKey struct {
	class, exploited, costUnknown int
	brick, energy                 float64
	bytes                         int64
	downtime                      time.Duration
	negScore                      float64
	id                            string
}

func keyOf(it Item) oracleKey {
	k := oracleKey{class: 4, exploited: 1, costUnknown: 1, negScore: math.Inf(1), id: it.ID}
	switch it.Priority {
	case Immediate:
		k.class = 0
	case OutOfCycle:
		k.class = 1
	case Scheduled:
		k.class = 2
	case Defer:
		k.class = 3
	}
	if it.KnownExploited {
		k.exploited = 0
	}
	if c := it.Cost; c != nil && c.Bytes >= 0 && c.Downtime >= 0 &&
		c.EnergyMWh >= 0 && c.EnergyMWh <= math.MaxFloat64 && c.BrickRisk >= 0 && c.BrickRisk <= 1 {
		k.costUnknown = 0
		k.brick, k.energy, k.bytes, k.downtime = c.BrickRisk, c.EnergyMWh, c.Bytes, c.Downtime
	}
	if !math.IsNaN(it.CVSSScore) {
		k.negScore = -it.CVSSScore
	}
	return k
}

func (a oracleKey) less(b oracleKey) bool {
	switch {
	case a.class != b.class:
		return a.class < b.class
	case a.exploited != b.exploited:
		return a.exploited < b.exploited
	case a.costUnknown != b.costUnknown:
		return a.costUnknown < b.costUnknown
	case a.brick != b.brick:
		return a.brick < b.brick
	case a.energy != b.energy:
		return a.energy < b.energy
	case a.bytes != b.bytes:
		return a.bytes < b.bytes
	case a.downtime != b.downtime:
		return a.downtime < b.downtime
	case a.negScore != b.negScore:
		return a.negScore < b.negScore
	}
	return a.id < b.id
}

func randomItem(rng *rand.Rand) Item {
	prios := []Priority{Defer, Scheduled, OutOfCycle, Immediate, Defer, Scheduled, OutOfCycle, Immediate, "", "urgent"}
	scores := []float64{0, 3.1, 5, 7.5, 9.8, 10, math.NaN()}
	it := Item{
		ID:             string(rune('a' + rng.IntN(6))),
		Priority:       prios[rng.IntN(len(prios))],
		KnownExploited: rng.IntN(3) == 0,
		CVSSScore:      scores[rng.IntN(len(scores))],
	}
	switch rng.IntN(8) {
	case 0, 1:
		// unknown
	case 2:
		bad := []Cost{{EnergyMWh: math.NaN()}, {Bytes: -5}, {BrickRisk: 2}, {EnergyMWh: math.Inf(1)}, {Downtime: -time.Second}, {BrickRisk: math.NaN()}}
		c := bad[rng.IntN(len(bad))]
		it.Cost = &c
	default:
		it.Cost = &Cost{
			BrickRisk: []float64{0, 0.001, 0.01}[rng.IntN(3)],
			EnergyMWh: []float64{0, 1.5, 3}[rng.IntN(3)],
			Bytes:     []int64{0, 1e6, 5e6}[rng.IntN(3)],
			Downtime:  []time.Duration{0, time.Minute, time.Hour}[rng.IntN(3)],
		}
	}
	return it
}

// valueKey identifies an item by value (NaN-safe, cost by content) so that
// orders can be compared across runs.
type valueKey struct {
	id        string
	prio      Priority
	exploited bool
	score     uint64
	hasCost   bool
	cost      Cost
	brickBits uint64
	energyBit uint64
}

func valueOf(it Item) valueKey {
	k := valueKey{id: it.ID, prio: it.Priority, exploited: it.KnownExploited, score: math.Float64bits(it.CVSSScore)}
	if it.Cost != nil {
		k.hasCost, k.cost = true, *it.Cost
		k.brickBits, k.energyBit = math.Float64bits(it.Cost.BrickRisk), math.Float64bits(it.Cost.EnergyMWh)
		k.cost.BrickRisk, k.cost.EnergyMWh = 0, 0 // compared via the bits
	}
	return k
}

func TestOrderProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(2024, 10))
	for round := range 2000 {
		in := make([]Item, rng.IntN(40))
		for i := range in {
			in[i] = randomItem(rng)
		}
		out := slices.Clone(in)
		Order(out)

		// A permutation of the input.
		count := map[valueKey]int{}
		for _, it := range in {
			count[valueOf(it)]++
		}
		for _, it := range out {
			count[valueOf(it)]--
		}
		for k, n := range count {
			if n != 0 {
				t.Fatalf("round %d: item %+v count off by %d", round, k, n)
			}
		}

		for i := range out {
			for j := i + 1; j < len(out); j++ {
				a, b := out[i], out[j]
				ra, rb := a.Priority.Rank(), b.Priority.Rank()
				if ra < rb {
					t.Fatalf("round %d: %s (%q) placed above more urgent %s (%q)", round, a.ID, a.Priority, b.ID, b.Priority)
				}
				if ra == rb && !a.KnownExploited && b.KnownExploited {
					t.Fatalf("round %d: non-exploited %s placed above exploited %s in class %q", round, a.ID, b.ID, a.Priority)
				}
			}
			if i > 0 && keyOf(out[i]).less(keyOf(out[i-1])) {
				t.Fatalf("round %d: %+v placed above %+v against the documented rules", round, out[i-1], out[i])
			}
		}

		// Deterministic: any input order gives the same result, up to items
		// that tie on every rule (those keep their input order).
		shuffled := slices.Clone(in)
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		Order(shuffled)
		for i := range out {
			if keyOf(out[i]) != keyOf(shuffled[i]) {
				t.Fatalf("round %d: order depends on input order at %d: %+v vs %+v", round, i, out[i], shuffled[i])
			}
		}
	}
}
