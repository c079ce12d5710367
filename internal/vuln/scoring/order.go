package scoring

import (
	"cmp"
	"math"
	"slices"
	"time"
)

// Cost is what deploying a fix costs the fleet.
type Cost struct {
	Bytes     int64         `json:"bytes"`
	EnergyMWh float64       `json:"energy_mwh"`
	Downtime  time.Duration `json:"downtime_ns"`
	BrickRisk float64       `json:"brick_risk" doc:"expected share of devices that fail the update, 0–1"`
}

// Item is one unit of remediation work to order.
type Item struct {
	ID             string
	Priority       Priority
	KnownExploited bool
	CVSSScore      float64
	Cost           *Cost // nil when unknown
}

// Order sorts items most urgent first: by priority class, then within a
// class by the rules documented on the function.
//
// The rules, each consulted only when all earlier ones tie:
//
//  1. Priority class: immediate, out-of-cycle, scheduled, defer. An item
//     whose Priority is none of these (Rank -1) sorts after defer, so it
//     stays visible without outranking any decided item. No later rule can
//     move an item across classes: SSVC weighs deployment cost only within
//     a class, never against urgency.
//  2. Known-exploited items first, whatever they cost.
//  3. Cheaper deployment first. An item with a known cost comes before one
//     whose cost is unknown: an unmeasured update may brick devices, so it
//     waits behind measured ones of equal urgency until it has been
//     measured (e.g. on a canary). A cost with a NaN, infinite or negative
//     field, or a brick risk above 1, counts as unknown. Two known costs
//     compare field by field: brick risk, then energy, then bytes, then
//     downtime, lower first. Brick risk leads because a bricked device
//     needs a site visit, which outweighs any amount of radio time.
//  4. Higher CVSS score first; a NaN score counts as lowest.
//  5. ID ascending, so the order is deterministic. Items that tie on all of
//     the above keep their input order.
func Order(items []Item) {
	slices.SortStableFunc(items, compareItems)
}

// compareItems is negative when a is more urgent than b.
func compareItems(a, b Item) int {
	if c := cmp.Compare(b.Priority.Rank(), a.Priority.Rank()); c != 0 {
		return c
	}
	if a.KnownExploited != b.KnownExploited {
		if a.KnownExploited {
			return -1
		}
		return 1
	}
	ak, bk := knownCost(a.Cost), knownCost(b.Cost)
	switch {
	case ak && !bk:
		return -1
	case !ak && bk:
		return 1
	case ak && bk:
		if c := compareCost(*a.Cost, *b.Cost); c != 0 {
			return c
		}
	}
	if c := cmp.Compare(scoreKey(b.CVSSScore), scoreKey(a.CVSSScore)); c != 0 {
		return c
	}
	return cmp.Compare(a.ID, b.ID)
}

// knownCost reports whether c can be compared: present and every field a
// finite, non-negative number (brick risk a share, at most 1).
func knownCost(c *Cost) bool {
	if c == nil {
		return false
	}
	finite := func(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) && f >= 0 }
	return c.Bytes >= 0 && c.Downtime >= 0 && finite(c.EnergyMWh) && finite(c.BrickRisk) && c.BrickRisk <= 1
}

// compareCost orders known costs cheapest first, lexicographically.
func compareCost(a, b Cost) int {
	if c := cmp.Compare(a.BrickRisk, b.BrickRisk); c != 0 {
		return c
	}
	if c := cmp.Compare(a.EnergyMWh, b.EnergyMWh); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Bytes, b.Bytes); c != 0 {
		return c
	}
	return cmp.Compare(a.Downtime, b.Downtime)
}

// scoreKey maps NaN below every real score so the comparison stays a total
// order.
func scoreKey(s float64) float64 {
	if math.IsNaN(s) {
		return math.Inf(-1)
	}
	return s
}
