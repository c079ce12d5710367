// Package plan estimates what a rollout will cost before it is launched:
// bytes sent (delta or full image per device), radio time and energy per
// link class, the share of battery it takes, and how long until 95% of the
// target runs the release, given the rollout's phases and the devices' poll
// intervals.
//
// # Model
//
// Per device:
//   - It downloads its delta when one applies and is smaller than the full
//     image (DeltaBytes > 0 and < FullBytes), else the full image.
//   - Transfer time A = 8·bytes / goodput, goodput = link rate × efficiency ×
//     (1 − loss). It makes ceil(bytes/ChunkBytes) requests (one when
//     ChunkBytes is 0, and one for an empty image), each waiting an RTT,
//     after SetupTime.
//   - A duty-cycled link (LoRa) may be on air only DutyCycle of the time, so
//     the download lasts setup + requests·RTT + A/DutyCycle of wall time.
//   - Radio time is the time the radio is on: setup + requests·RTT + A, or
//     the whole wall time for a link that listens continuously (LoRaWAN
//     Class C). Energy = ActiveWatts × radio time; battery share = energy /
//     (BatteryWh × 3600 J) for battery devices.
//
// Over time:
//   - Phases are cumulative percentages of the target. Membership is a
//     hash bucket independent of a device's link or image, so every phase
//     holds the same mix of devices: the estimate gives each device a weight
//     of (P_k − P_{k−1})/100 in phase k instead of picking devices.
//   - Phase 1 starts at launch. Phase k+1 starts when phase k has run for its
//     MinDuration and SuccessRatio of its devices have finished.
//   - A device in a started phase picks the update up at its next check-in,
//     uniformly distributed over its poll interval (no wait when Wakeups is
//     set and its link is Wakeable), then downloads and installs
//     (InstallTime).
//   - Completion over the target is the exact mixture of those uniform
//     distributions (piecewise linear), so TimeTo95 and every quantile are
//     computed, not sampled: the result is deterministic.
//
// Not modelled: maintenance windows, failures and retries (every device is
// assumed to succeed once), server or cell capacity shared between devices,
// and devices joining during the rollout.
package plan

import (
	"fmt"
	"iter"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/steward-iot/steward/internal/problem"
)

// Device is one device of the target as the estimate sees it.
type Device struct {
	Link           string // a key of Input.Links: ethernet, wifi, cellular, nb-iot, lora
	Metered        bool
	BatteryPowered bool
	BatteryPercent *int          // charge left, 0-100; nil when unknown
	BatteryWh      float64       // capacity; 0 uses the link's BatteryWh (DefaultBatteryWh if unset)
	FullBytes      int64         // full image size
	DeltaBytes     int64         // 0 when no delta applies to what the device runs
	PollInterval   time.Duration // 0 uses Input.PollInterval
}

// Phase is one step of a rollout.
type Phase struct {
	Percent     float64       // cumulative share of the target, 0 < Percent <= 100
	MinDuration time.Duration // least time the phase runs before the next may start
}

// Input describes the release's target and rollout.
type Input struct {
	Devices []Device
	// DeviceSeq, when set, is read instead of Devices (to stream a large
	// fleet from a store).
	DeviceSeq iter.Seq[Device]
	// Phases in increasing order; none means one phase of 100%.
	Phases []Phase
	// Links by name; nil means DefaultLinks().
	Links map[string]Link
	// Wakeups: the rollout wakes devices (immediate urgency), so devices on
	// wakeable links do not wait for their next poll.
	Wakeups bool
	// InstallTime is each device's install and reboot time after download.
	InstallTime time.Duration
	// SuccessRatio is the share of a phase's devices that must finish before
	// the next phase starts, 0 < SuccessRatio <= 1; 0 means 0.95.
	SuccessRatio float64
	// PollInterval is used for devices that report none.
	PollInterval time.Duration
}

// LinkResult sums up one link class.
type LinkResult struct {
	Devices      int
	DevicesDelta int
	Bytes        int64
	// RadioTime is summed over devices; the percentiles are per device
	// (nearest rank).
	RadioTime    time.Duration
	RadioTimeP50 time.Duration
	RadioTimeP95 time.Duration
	// DownloadTime is the wall time of one device's download, duty-cycle
	// pauses included.
	DownloadTimeP50 time.Duration
	DownloadTimeP95 time.Duration
	EnergyJ         float64
	// Battery devices only: share of capacity one download takes, in percent.
	BatteryDevices      int
	BatterySharePctMean float64
	BatterySharePctMax  float64
	// BatteryShort counts devices whose reported charge is below the share
	// the download needs.
	BatteryShort int
}

// PhaseResult is one phase on the timeline, as offsets from launch.
type PhaseResult struct {
	Percent float64
	Devices int           // expected devices in this phase
	Start   time.Duration // phase becomes active
	Done    time.Duration // SuccessRatio of its devices finished
	AllDone time.Duration // its last device finished
	Gate    time.Duration // the next phase may start: max(Start+MinDuration, Done)
}

// Result is the estimate.
type Result struct {
	Devices      int
	TotalBytes   int64 // bytes sent
	DeltaBytes   int64 // of TotalBytes, sent as deltas
	FullBytes    int64 // of TotalBytes, sent as full images
	SavedBytes   int64 // full-image bytes the deltas avoided
	MeteredBytes int64 // of TotalBytes, sent over metered links
	DevicesDelta int
	DevicesFull  int
	PerLink      map[string]LinkResult
	EnergyJ      float64
	// TimeTo95 is when 95% of the target runs the release; Reached95 is
	// false when the phases stop short of that (then TimeTo95 is 0). An
	// empty target has reached it at launch.
	TimeTo95  time.Duration
	Reached95 bool
	TimeTo50  time.Duration
	// TimeToAll is when the last device of the last phase has finished.
	TimeToAll     time.Duration
	PhaseTimeline []PhaseResult
}

// DefaultSuccessRatio is the phase gate used when Input.SuccessRatio is 0.
const DefaultSuccessRatio = 0.95

// Estimate computes the what-if for in. Invalid input yields an invalid-field
// error naming the offending field.
func Estimate(in Input) (Result, error) {
	links := in.Links
	if links == nil {
		links = DefaultLinks()
	}
	phases, err := checkInput(&in)
	if err != nil {
		return Result{}, err
	}
	checked := map[string]bool{}

	res := Result{PerLink: map[string]LinkResult{}}
	type perLink struct {
		radio, wall []float64
		shareSum    float64
	}
	acc := map[string]*perLink{}
	var comp []completion
	var maxDone float64

	devices := in.DeviceSeq
	if devices == nil {
		devices = slices.Values(in.Devices)
	}
	i := -1
	for d := range devices {
		i++
		l, ok := links[d.Link]
		if !ok {
			return Result{}, problem.InvalidField(fmt.Sprintf("devices[%d].link", i), "unknown link %q; known links: %s", d.Link, knownLinks(links))
		}
		if !checked[d.Link] {
			if err := checkLink(d.Link, l); err != nil {
				return Result{}, err
			}
			checked[d.Link] = true
		}
		if err := checkDevice(i, d); err != nil {
			return Result{}, err
		}
		c := deviceCost(d, l)

		res.Devices++
		res.TotalBytes += c.bytes
		res.EnergyJ += c.energyJ
		if d.Metered {
			res.MeteredBytes += c.bytes
		}
		lr := res.PerLink[d.Link]
		lr.Devices++
		lr.Bytes += c.bytes
		lr.EnergyJ += c.energyJ
		if c.delta {
			res.DevicesDelta++
			res.DeltaBytes += c.bytes
			res.SavedBytes += d.FullBytes - c.bytes
			lr.DevicesDelta++
		} else {
			res.DevicesFull++
			res.FullBytes += c.bytes
		}
		pl := acc[d.Link]
		if pl == nil {
			pl = &perLink{}
			acc[d.Link] = pl
		}
		pl.radio = append(pl.radio, c.radio)
		pl.wall = append(pl.wall, c.wall)
		if d.BatteryPowered {
			wh := d.BatteryWh
			if wh == 0 {
				wh = l.BatteryWh
			}
			if wh == 0 {
				wh = DefaultBatteryWh
			}
			share := c.energyJ / (wh * 3600) * 100
			lr.BatteryDevices++
			pl.shareSum += share
			lr.BatterySharePctMax = max(lr.BatterySharePctMax, share)
			if d.BatteryPercent != nil && share > float64(*d.BatteryPercent) {
				lr.BatteryShort++
			}
		}
		res.PerLink[d.Link] = lr

		poll := d.PollInterval
		if poll == 0 {
			poll = in.PollInterval
		}
		if in.Wakeups && l.Wakeable {
			poll = 0
		} else if poll == 0 {
			return Result{}, problem.InvalidField(fmt.Sprintf("devices[%d].poll_interval", i),
				"unknown: set the device's poll interval or Input.PollInterval (only woken devices need none)")
		}
		done := c.wall + in.InstallTime.Seconds()
		comp = append(comp, completion{start: done, width: poll.Seconds()})
		maxDone = max(maxDone, done+poll.Seconds())
	}

	for name, pl := range acc {
		lr := res.PerLink[name]
		var sum float64
		for _, r := range pl.radio {
			sum += r
		}
		lr.RadioTime = seconds(sum)
		lr.RadioTimeP50, lr.RadioTimeP95 = seconds(nearestRank(pl.radio, 0.5)), seconds(nearestRank(pl.radio, 0.95))
		lr.DownloadTimeP50, lr.DownloadTimeP95 = seconds(nearestRank(pl.wall, 0.5)), seconds(nearestRank(pl.wall, 0.95))
		if lr.BatteryDevices > 0 {
			lr.BatterySharePctMean = pl.shareSum / float64(lr.BatteryDevices)
		}
		res.PerLink[name] = lr
	}

	timeline(&res, phases, in.SuccessRatio, newMixture(comp), maxDone)
	return res, nil
}

type cost struct {
	bytes                int64
	delta                bool
	radio, wall, energyJ float64 // seconds, seconds, joules
}

func deviceCost(d Device, l Link) cost {
	c := cost{bytes: d.FullBytes}
	if d.DeltaBytes > 0 && d.DeltaBytes < d.FullBytes {
		c.bytes, c.delta = d.DeltaBytes, true
	}
	air := float64(c.bytes) * 8 / l.Goodput()
	requests := 1.0
	if l.ChunkBytes > 0 && c.bytes > 0 {
		requests = math.Ceil(float64(c.bytes) / float64(l.ChunkBytes))
	}
	fixed := l.SetupTime.Seconds() + requests*l.RTT.Seconds()
	c.wall = fixed + air
	if l.DutyCycle > 0 && l.DutyCycle < 1 {
		c.wall = fixed + air/l.DutyCycle
	}
	c.radio = fixed + air
	if l.ListenContinuously {
		c.radio = c.wall
	}
	c.energyJ = l.ActiveWatts * c.radio
	return c
}

// timeline fills the phase timeline and the time-to quantiles.
func timeline(res *Result, phases []Phase, successRatio float64, mix *mixture, maxDone float64) {
	var gateQ float64 // time after a phase starts until SuccessRatio of it is done
	if res.Devices > 0 {
		if successRatio >= 1 {
			gateQ = maxDone
		} else {
			gateQ = mix.quantile(successRatio)
		}
	}
	starts := make([]float64, len(phases))
	weights := make([]float64, len(phases))
	var start, prev float64
	for k, p := range phases {
		starts[k] = start
		weights[k] = (p.Percent - prev) / 100
		done := start + gateQ
		gate := max(start+p.MinDuration.Seconds(), done)
		all := start + maxDone
		if res.Devices == 0 {
			done, all = start, start
		}
		n := int(math.Round(float64(res.Devices)*p.Percent/100)) - int(math.Round(float64(res.Devices)*prev/100))
		res.PhaseTimeline = append(res.PhaseTimeline, PhaseResult{Percent: p.Percent, Devices: n,
			Start: seconds(start), Done: seconds(done), AllDone: seconds(all), Gate: seconds(gate)})
		prev, start = p.Percent, gate
	}
	last := phases[len(phases)-1]
	if res.Devices == 0 {
		res.Reached95 = true
		return
	}
	res.TimeToAll = seconds(starts[len(starts)-1] + maxDone)
	g := func(t float64) float64 {
		var s float64
		for k := range starts {
			s += weights[k] * mix.cdf(t-starts[k])
		}
		return s
	}
	hi := starts[len(starts)-1] + maxDone
	if last.Percent >= 95 {
		res.TimeTo95, res.Reached95 = seconds(solve(g, 0.95, hi)), true
	}
	if last.Percent >= 50 {
		res.TimeTo50 = seconds(solve(g, 0.5, hi))
	}
}

// solve returns the least t in [0, hi] with g(t) >= q, g non-decreasing.
func solve(g func(float64) float64, q, hi float64) float64 {
	const eps = 1e-9 // sums of many weights fall a hair short of exact
	if g(0) >= q-eps {
		return 0
	}
	lo := 0.0
	for range 200 {
		mid := lo + (hi-lo)/2
		if mid <= lo || mid >= hi {
			break
		}
		if g(mid) >= q-eps {
			hi = mid
		} else {
			lo = mid
		}
	}
	return hi
}

func seconds(s float64) time.Duration {
	if s >= math.MaxInt64/float64(time.Second) {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(math.Round(s * float64(time.Second)))
}

// nearestRank returns the q-quantile of xs by the nearest-rank method
// (sorting xs).
func nearestRank(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	sort.Float64s(xs)
	i := int(math.Ceil(q*float64(len(xs)))) - 1
	return xs[max(i, 0)]
}

func knownLinks(links map[string]Link) string {
	names := make([]string, 0, len(links))
	for n := range links {
		names = append(names, n)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

func checkInput(in *Input) ([]Phase, error) {
	if in.Devices != nil && in.DeviceSeq != nil {
		return nil, problem.InvalidField("devices", "give either Devices or DeviceSeq, not both")
	}
	if in.InstallTime < 0 {
		return nil, problem.InvalidField("install_time", "%s is negative", in.InstallTime)
	}
	if in.PollInterval < 0 {
		return nil, problem.InvalidField("poll_interval", "%s is negative", in.PollInterval)
	}
	switch {
	case in.SuccessRatio == 0:
		in.SuccessRatio = DefaultSuccessRatio
	case !finite(in.SuccessRatio) || in.SuccessRatio < 0 || in.SuccessRatio > 1:
		return nil, problem.InvalidField("success_ratio", "%v is out of range: give a share between 0 and 1 (0 means %v)", in.SuccessRatio, DefaultSuccessRatio)
	}
	phases := in.Phases
	if len(phases) == 0 {
		phases = []Phase{{Percent: 100}}
	}
	prev := 0.0
	for k, p := range phases {
		f := fmt.Sprintf("phases[%d]", k)
		switch {
		case !finite(p.Percent) || p.Percent <= 0 || p.Percent > 100:
			return nil, problem.InvalidField(f+".percent", "%v is out of range: a phase covers a cumulative share of the target, above 0 and at most 100", p.Percent)
		case p.Percent <= prev:
			return nil, problem.InvalidField(f+".percent", "%v does not exceed the previous phase's %v: percentages are cumulative and must increase", p.Percent, prev)
		case p.MinDuration < 0:
			return nil, problem.InvalidField(f+".min_duration", "%s is negative", p.MinDuration)
		}
		prev = p.Percent
	}
	return phases, nil
}

func checkDevice(i int, d Device) error {
	f := func(name string) string { return fmt.Sprintf("devices[%d].%s", i, name) }
	switch {
	case d.FullBytes < 0:
		return problem.InvalidField(f("full_bytes"), "%d is negative", d.FullBytes)
	case d.DeltaBytes < 0:
		return problem.InvalidField(f("delta_bytes"), "%d is negative (0 means no delta applies)", d.DeltaBytes)
	case d.PollInterval < 0:
		return problem.InvalidField(f("poll_interval"), "%s is negative", d.PollInterval)
	case !finite(d.BatteryWh) || d.BatteryWh < 0:
		return problem.InvalidField(f("battery_wh"), "%v is not a capacity: give watt-hours, or 0 for the link's default", d.BatteryWh)
	case d.BatteryPercent != nil && (*d.BatteryPercent < 0 || *d.BatteryPercent > 100):
		return problem.InvalidField(f("battery_percent"), "%d is out of range 0-100", *d.BatteryPercent)
	}
	return nil
}

func checkLink(name string, l Link) error {
	f := func(field string) string { return "links." + name + "." + field }
	switch {
	case !finite(l.DownBitsPerSecond) || l.DownBitsPerSecond <= 0:
		return problem.InvalidField(f("down_bits_per_second"), "%v: a link needs a positive rate", l.DownBitsPerSecond)
	case !finite(l.Efficiency) || l.Efficiency <= 0 || l.Efficiency > 1:
		return problem.InvalidField(f("efficiency"), "%v is out of range: the share of the rate carrying image bytes, above 0 and at most 1", l.Efficiency)
	case !finite(l.Loss) || l.Loss < 0 || l.Loss >= 1:
		return problem.InvalidField(f("loss"), "%v is out of range: a share from 0 up to (not including) 1", l.Loss)
	case !finite(l.DutyCycle) || l.DutyCycle < 0 || l.DutyCycle > 1:
		return problem.InvalidField(f("duty_cycle"), "%v is out of range 0-1 (0 means unlimited)", l.DutyCycle)
	case !finite(l.ActiveWatts) || l.ActiveWatts < 0:
		return problem.InvalidField(f("active_watts"), "%v is not a power", l.ActiveWatts)
	case !finite(l.BatteryWh) || l.BatteryWh < 0:
		return problem.InvalidField(f("battery_wh"), "%v is not a capacity", l.BatteryWh)
	case l.RTT < 0 || l.SetupTime < 0 || l.ChunkBytes < 0:
		return problem.InvalidField(f("rtt"), "RTT, SetupTime and ChunkBytes must not be negative")
	}
	return nil
}

// ---- completion-time distribution ----

// completion is one device's time from its phase's start to done: uniform
// over [start, start+width] (width 0: exactly start).
type completion struct{ start, width float64 }

// mixture is the CDF of the average of the devices' completion
// distributions: piecewise linear with jumps, stored at its breakpoints.
type mixture struct {
	xs    []float64 // breakpoints, increasing
	vals  []float64 // CDF at xs[i] (after any jump there)
	slope []float64 // slope on [xs[i], xs[i+1])
}

func newMixture(cs []completion) *mixture {
	n := float64(len(cs))
	type ev struct{ x, jump, dslope float64 }
	evs := make([]ev, 0, 2*len(cs))
	for _, c := range cs {
		if c.width == 0 {
			evs = append(evs, ev{c.start, 1 / n, 0})
			continue
		}
		s := 1 / (n * c.width)
		evs = append(evs, ev{c.start, 0, s}, ev{c.start + c.width, 0, -s})
	}
	slices.SortFunc(evs, func(a, b ev) int {
		switch {
		case a.x < b.x:
			return -1
		case a.x > b.x:
			return 1
		}
		return 0
	})
	m := &mixture{}
	var val, slope float64
	for i := 0; i < len(evs); {
		x := evs[i].x
		if len(m.xs) > 0 {
			val += slope * (x - m.xs[len(m.xs)-1])
		}
		for ; i < len(evs) && evs[i].x == x; i++ {
			val += evs[i].jump
			slope += evs[i].dslope
		}
		m.xs = append(m.xs, x)
		m.vals = append(m.vals, min(val, 1))
		m.slope = append(m.slope, max(slope, 0))
	}
	return m
}

// cdf is the share of devices done by t after their phase started.
func (m *mixture) cdf(t float64) float64 {
	i := sort.SearchFloat64s(m.xs, t) // first xs[i] >= t
	if i < len(m.xs) && m.xs[i] == t {
		return m.vals[i]
	}
	if i == 0 {
		return 0
	}
	i--
	return min(m.vals[i]+m.slope[i]*(t-m.xs[i]), 1)
}

// quantile is the least t with cdf(t) >= q.
func (m *mixture) quantile(q float64) float64 {
	if len(m.xs) == 0 {
		return 0
	}
	return solve(m.cdf, q, m.xs[len(m.xs)-1])
}
