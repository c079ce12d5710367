package plan

import (
	"iter"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/steward-iot/steward/internal/problem"
)

const mib = 1 << 20

func near(t *testing.T, what string, got, want, tol float64) {
	t.Helper()
	if math.Abs(got-want) > tol {
		t.Errorf("%s = %v, want %v (±%v)", what, got, want, tol)
	}
}

func nearDur(t *testing.T, what string, got time.Duration, want float64) {
	t.Helper()
	near(t, what, got.Seconds(), want, 1e-3)
}

// plain is a link with no overhead, RTT or setup: hand arithmetic applies.
func plain(bps, watts float64) Link {
	return Link{Name: "plain", DownBitsPerSecond: bps, Efficiency: 1, ActiveWatts: watts, Wakeable: true, Source: "test"}
}

func mustEstimate(t *testing.T, in Input) Result {
	t.Helper()
	r, err := Estimate(in)
	if err != nil {
		t.Fatalf("Estimate: %v", err)
	}
	return r
}

func TestGoodputEnergyAndBatteryArithmetic(t *testing.T) {
	// 1 MiB over 250 kbit/s goodput: 8,388,608 bits / 250,000 = 33.554432 s;
	// at 0.5 W that is 16.777216 J, 0.466% of a 1 Wh battery.
	links := map[string]Link{"plain": plain(250e3, 0.5)}
	r := mustEstimate(t, Input{Links: links, Wakeups: true, InstallTime: 10 * time.Second,
		Devices: []Device{{Link: "plain", FullBytes: mib, BatteryPowered: true, BatteryWh: 1}}})
	lr := r.PerLink["plain"]
	nearDur(t, "radio time", lr.RadioTime, 33.554432)
	nearDur(t, "download time", lr.DownloadTimeP50, 33.554432)
	near(t, "energy J", lr.EnergyJ, 16.777216, 1e-9)
	near(t, "battery share %", lr.BatterySharePctMax, 16.777216/3600*100, 1e-9)
	near(t, "battery share mean %", lr.BatterySharePctMean, 16.777216/3600*100, 1e-9)
	nearDur(t, "time to 95%", r.TimeTo95, 43.554432) // woken at once, then download and install
	if r.TotalBytes != mib || r.FullBytes != mib || r.DevicesFull != 1 || r.DevicesDelta != 0 || !r.Reached95 {
		t.Errorf("totals = %+v", r)
	}

	// Efficiency 0.8 and 20% loss: goodput 1 Mbit/s × 0.8 × 0.8 = 640 kbit/s,
	// so 640,000 bytes take 8 s on air; 7 requests of 100,000 bytes wait
	// 0.5 s each; setup 1 s. Radio 12.5 s, at 2 W 25 J.
	lossy := Link{Name: "lossy", DownBitsPerSecond: 1e6, Efficiency: 0.8, Loss: 0.2, RTT: 500 * time.Millisecond,
		SetupTime: time.Second, ChunkBytes: 100_000, ActiveWatts: 2, Wakeable: true}
	near(t, "goodput", lossy.Goodput(), 640e3, 1e-6)
	r = mustEstimate(t, Input{Links: map[string]Link{"lossy": lossy}, PollInterval: time.Minute,
		Devices: []Device{{Link: "lossy", FullBytes: 640_000}}})
	nearDur(t, "radio time with overhead", r.PerLink["lossy"].RadioTime, 12.5)
	near(t, "energy with overhead", r.PerLink["lossy"].EnergyJ, 25, 1e-9)
}

func TestDeltaReducesBytesTimeAndEnergyProportionally(t *testing.T) {
	links := map[string]Link{"plain": plain(1e6, 1)}
	fleet := func(delta int64) []Device {
		var ds []Device
		for range 10 {
			ds = append(ds, Device{Link: "plain", FullBytes: 4 * mib, DeltaBytes: delta, BatteryPowered: true, PollInterval: time.Hour})
		}
		return ds
	}
	full := mustEstimate(t, Input{Links: links, Devices: fleet(0)})
	delta := mustEstimate(t, Input{Links: links, Devices: fleet(mib)})
	if full.TotalBytes != 40*mib || delta.TotalBytes != 10*mib || delta.DeltaBytes != 10*mib || delta.FullBytes != 0 {
		t.Errorf("bytes: full %d, delta %d (%d as deltas)", full.TotalBytes, delta.TotalBytes, delta.DeltaBytes)
	}
	if delta.DevicesDelta != 10 || delta.SavedBytes != 30*mib || delta.PerLink["plain"].DevicesDelta != 10 {
		t.Errorf("delta accounting: %+v", delta)
	}
	f, d := full.PerLink["plain"], delta.PerLink["plain"]
	near(t, "radio time ratio", d.RadioTime.Seconds()/f.RadioTime.Seconds(), 0.25, 1e-9)
	near(t, "energy ratio", d.EnergyJ/f.EnergyJ, 0.25, 1e-9)
	near(t, "battery share ratio", d.BatterySharePctMax/f.BatterySharePctMax, 0.25, 1e-9)

	// A delta no smaller than the image is not used.
	big := mustEstimate(t, Input{Links: links, PollInterval: time.Hour,
		Devices: []Device{{Link: "plain", FullBytes: mib, DeltaBytes: mib}, {Link: "plain", FullBytes: mib, DeltaBytes: 2 * mib}}})
	if big.DevicesDelta != 0 || big.TotalBytes != 2*mib {
		t.Errorf("oversized deltas were used: %+v", big)
	}
}

// Each device: 1,000,000 bytes at 8 Mbit/s (1 s) plus 59 s install, so done
// 60 s after its check-in, which is uniform over a 600 s poll interval.
func gatedFleet(n int) []Device {
	ds := make([]Device, n)
	for i := range ds {
		ds[i] = Device{Link: "plain", FullBytes: 1_000_000, PollInterval: 10 * time.Minute}
	}
	return ds
}

func TestPhasesAddTheirGates(t *testing.T) {
	links := map[string]Link{"plain": plain(8e6, 1)}
	base := Input{Links: links, Devices: gatedFleet(20), InstallTime: 59 * time.Second}

	one := mustEstimate(t, base)
	// 95% of a uniform [60, 660] s: 60 + 0.95·600 = 630 s.
	nearDur(t, "single phase", one.TimeTo95, 630)
	nearDur(t, "single phase 50%", one.TimeTo50, 360)
	nearDur(t, "single phase all", one.TimeToAll, 660)

	// 10% for at least an hour, then everyone: phase 2 starts at 3600 s;
	// 95% needs 0.1 + 0.9·F(t−3600) = 0.95, F = 17/18, t = 3600+60+566.67.
	in := base
	in.Phases = []Phase{{Percent: 10, MinDuration: time.Hour}, {Percent: 100}}
	two := mustEstimate(t, in)
	nearDur(t, "gated by MinDuration", two.TimeTo95, 3600+60+600*17.0/18)
	tl := two.PhaseTimeline
	if len(tl) != 2 || tl[0].Devices != 2 || tl[1].Devices != 18 {
		t.Fatalf("timeline = %+v", tl)
	}
	nearDur(t, "phase 1 done", tl[0].Done, 630)
	nearDur(t, "phase 1 gate", tl[0].Gate, 3600)
	nearDur(t, "phase 2 start", tl[1].Start, 3600)
	nearDur(t, "phase 2 all done", tl[1].AllDone, 3600+660)

	// A short MinDuration gates on completion instead: 95% of phase 1 at 630 s.
	in.Phases = []Phase{{Percent: 10, MinDuration: time.Minute}, {Percent: 100}}
	nearDur(t, "gated by completion", mustEstimate(t, in).TimeTo95, 630+60+600*17.0/18)

	// SuccessRatio 1 waits for the whole phase (660 s).
	in.SuccessRatio = 1
	nearDur(t, "gated by all of phase 1", mustEstimate(t, in).TimeTo95, 660+60+600*17.0/18)

	// Phases that stop at 50% never reach 95%.
	in.Phases = []Phase{{Percent: 10}, {Percent: 50}}
	short := mustEstimate(t, in)
	if short.Reached95 || short.TimeTo95 != 0 || short.TimeTo50 == 0 {
		t.Errorf("50%% rollout: reached95 %v, TimeTo95 %s, TimeTo50 %s", short.Reached95, short.TimeTo95, short.TimeTo50)
	}
}

func TestWakeupsRemoveThePollWait(t *testing.T) {
	links := map[string]Link{"plain": plain(8e6, 1)}
	sleepy := plain(8e6, 1)
	sleepy.Wakeable = false // PSM or Class A: a wake-up cannot reach it
	links["sleepy"] = sleepy
	in := Input{Links: links, Devices: gatedFleet(10), InstallTime: 59 * time.Second, Wakeups: true}
	nearDur(t, "woken", mustEstimate(t, in).TimeTo95, 60)
	in.Wakeups = false
	nearDur(t, "polling", mustEstimate(t, in).TimeTo95, 630)

	for i := range in.Devices {
		in.Devices[i].Link = "sleepy"
	}
	in.Wakeups = true
	nearDur(t, "unwakeable link still polls", mustEstimate(t, in).TimeTo95, 630)

	// Woken devices need no poll interval at all.
	woken := Input{Links: links, Wakeups: true, Devices: []Device{{Link: "plain", FullBytes: 1}}}
	if _, err := Estimate(woken); err != nil {
		t.Errorf("woken device without poll interval: %v", err)
	}
}

func TestEmptyFleetAndZeroSizeImage(t *testing.T) {
	r := mustEstimate(t, Input{Phases: []Phase{{Percent: 1, MinDuration: time.Hour}, {Percent: 100, MinDuration: time.Hour}}})
	if r.Devices != 0 || r.TotalBytes != 0 || !r.Reached95 || r.TimeTo95 != 0 || len(r.PerLink) != 0 {
		t.Errorf("empty fleet: %+v", r)
	}
	if len(r.PhaseTimeline) != 2 || r.PhaseTimeline[1].Start != time.Hour || r.PhaseTimeline[1].Gate != 2*time.Hour {
		t.Errorf("empty fleet timeline = %+v", r.PhaseTimeline)
	}

	// A zero-byte image still costs the setup and one request.
	l := Link{Name: "x", DownBitsPerSecond: 1e6, Efficiency: 1, RTT: 100 * time.Millisecond, SetupTime: 200 * time.Millisecond, ActiveWatts: 1, Wakeable: true}
	z := mustEstimate(t, Input{Links: map[string]Link{"x": l}, Wakeups: true, Devices: []Device{{Link: "x"}}})
	if z.TotalBytes != 0 {
		t.Errorf("zero-size image sent %d bytes", z.TotalBytes)
	}
	nearDur(t, "zero-size radio time", z.PerLink["x"].RadioTime, 0.3)
	nearDur(t, "zero-size time to 95%", z.TimeTo95, 0.3)
}

func TestInvalidInputsNameTheField(t *testing.T) {
	pct := 150
	links := map[string]Link{"plain": plain(1e6, 1)}
	ok := Device{Link: "plain", FullBytes: 1, PollInterval: time.Minute}
	dev := func(f func(*Device)) []Device { d := ok; f(&d); return []Device{ok, d} }
	cases := []struct {
		in    Input
		field string
		want  string
	}{
		{Input{Links: links, Devices: dev(func(d *Device) { d.FullBytes = -1 })}, "devices[1].full_bytes", "negative"},
		{Input{Links: links, Devices: dev(func(d *Device) { d.DeltaBytes = -5 })}, "devices[1].delta_bytes", "negative"},
		{Input{Links: links, Devices: dev(func(d *Device) { d.Link = "5g" })}, "devices[1].link", `unknown link "5g"; known links: plain`},
		{Input{Links: links, Devices: dev(func(d *Device) { d.BatteryPercent = &pct })}, "devices[1].battery_percent", "0-100"},
		{Input{Links: links, Devices: dev(func(d *Device) { d.BatteryWh = math.NaN() })}, "devices[1].battery_wh", "not a capacity"},
		{Input{Links: links, Devices: dev(func(d *Device) { d.PollInterval = 0 })}, "devices[1].poll_interval", "unknown"},
		{Input{Links: links, Devices: dev(func(d *Device) { d.PollInterval = -time.Second })}, "devices[1].poll_interval", "negative"},
		{Input{Links: links, Phases: []Phase{{Percent: 120}}}, "phases[0].percent", "at most 100"},
		{Input{Links: links, Phases: []Phase{{Percent: 0}}}, "phases[0].percent", "above 0"},
		{Input{Links: links, Phases: []Phase{{Percent: 50}, {Percent: 50}}}, "phases[1].percent", "must increase"},
		{Input{Links: links, Phases: []Phase{{Percent: 50}, {Percent: 10}}}, "phases[1].percent", "must increase"},
		{Input{Links: links, Phases: []Phase{{Percent: math.NaN()}}}, "phases[0].percent", "out of range"},
		{Input{Links: links, Phases: []Phase{{Percent: 10, MinDuration: -time.Hour}}}, "phases[0].min_duration", "negative"},
		{Input{Links: links, SuccessRatio: 1.5}, "success_ratio", "between 0 and 1"},
		{Input{Links: links, InstallTime: -time.Second}, "install_time", "negative"},
		{Input{Links: links, Devices: []Device{ok}, DeviceSeq: slices.Values([]Device{ok})}, "devices", "not both"},
		{Input{Links: map[string]Link{"plain": {DownBitsPerSecond: 1e6, Efficiency: 1.2}}, Devices: []Device{ok}}, "links.plain.efficiency", "at most 1"},
		{Input{Links: map[string]Link{"plain": {DownBitsPerSecond: 0, Efficiency: 1}}, Devices: []Device{ok}}, "links.plain.down_bits_per_second", "positive rate"},
		{Input{Links: map[string]Link{"plain": {DownBitsPerSecond: 1, Efficiency: 1, Loss: 1}}, Devices: []Device{ok}}, "links.plain.loss", "out of range"},
		{Input{Links: map[string]Link{"plain": {DownBitsPerSecond: 1, Efficiency: 1, DutyCycle: 2}}, Devices: []Device{ok}}, "links.plain.duty_cycle", "out of range"},
	}
	for _, c := range cases {
		_, err := Estimate(c.in)
		pe, isProblem := err.(*problem.Error)
		if err == nil || !isProblem || !problem.Is(err, problem.KindInvalid) || len(pe.Fields) != 1 || pe.Fields[0].Field != c.field {
			t.Errorf("%s: Estimate error = %v, want an invalid-field error for it", c.field, err)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %q does not say %q", c.field, err, c.want)
		}
	}
}

func TestLoRaAirtimeMatchesPublishedExamples(t *testing.T) {
	// Semtech's formula, worked examples from the RF Wireless World airtime
	// calculator (SF7 and SF11 with low-data-rate optimisation, CRC on, 10 bytes)
	// and the AN1200.13 spreadsheet (SF9, 13 bytes).
	cases := []struct {
		pl, sf   int
		crc, lde bool
		want     float64 // ms
	}{
		{10, 7, true, false, 41.216},
		{10, 11, true, true, 577.536},
		{13, 9, true, false, 164.864},
		{235, 7, false, false, 368.896}, // a full DR5 downlink: (12.25 + 8 + 68·5) symbols × 1.024 ms
	}
	for _, c := range cases {
		got := LoRaAirtime(c.pl, c.sf, 125000, 1, c.crc, true, c.lde)
		near(t, "airtime ms", float64(got)/float64(time.Millisecond), c.want, 1e-6)
	}
}

func TestLoRaShowsTheDutyCycleHonestly(t *testing.T) {
	links := DefaultLinks()
	lora := links["lora"]
	r := mustEstimate(t, Input{PollInterval: time.Hour,
		Devices: []Device{{Link: "lora", FullBytes: mib, BatteryPowered: true}}})
	lr := r.PerLink["lora"]
	goodput := 5470 * lora.Efficiency * 0.9
	air := float64(mib*8) / goodput
	wantWall := 1 + air/0.01 // one RTT (RX1 delay) plus airtime stretched by the 1% duty cycle
	nearDur(t, "lora download", lr.DownloadTimeP50, wantWall)
	if lr.DownloadTimeP50 < 48*time.Hour {
		t.Errorf("1 MiB over LoRa EU868 takes %s; at a 1%% duty cycle it must take days", lr.DownloadTimeP50)
	}
	// Class C listens throughout: radio time equals the wall time, and the
	// energy shows in the battery.
	nearDur(t, "lora radio time", lr.RadioTime, wantWall)
	near(t, "lora battery share %", lr.BatterySharePctMax, lora.ActiveWatts*wantWall/(DefaultBatteryWh*3600)*100, 1e-9)
	if lr.BatterySharePctMax < 10 {
		t.Errorf("a days-long Class C session takes only %.1f%% of the battery", lr.BatterySharePctMax)
	}
	near(t, "lora efficiency", lora.Efficiency, 219*8/0.368896/5470, 1e-9)
}

func TestDefaultLinksAreCompleteAndOrdered(t *testing.T) {
	links := DefaultLinks()
	for _, name := range []string{"ethernet", "wifi", "cellular", "lte-m", "nb-iot", "lora"} {
		l, ok := links[name]
		if !ok {
			t.Fatalf("no default link %q", name)
		}
		if l.Name != name || l.Source == "" {
			t.Errorf("%s: name %q, source %q", name, l.Name, l.Source)
		}
		if err := checkLink(name, l); err != nil {
			t.Errorf("default link %s is invalid: %v", name, err)
		}
	}
	// Goodput ordering follows the technologies.
	order := []string{"ethernet", "wifi", "cellular", "nb-iot", "lora"}
	for i := 1; i < len(order); i++ {
		if links[order[i]].Goodput() >= links[order[i-1]].Goodput() {
			t.Errorf("%s goodput %.0f ≥ %s goodput %.0f", order[i], links[order[i]].Goodput(), order[i-1], links[order[i-1]].Goodput())
		}
	}
	links["ethernet"] = Link{}
	if DefaultLinks()["ethernet"].DownBitsPerSecond == 0 {
		t.Error("DefaultLinks returns a shared map")
	}
	near(t, "ethernet efficiency", DefaultLinks()["ethernet"].Efficiency, 1448.0/1538*16384/16406, 1e-12)
}

func TestBatteryShortAndDefaults(t *testing.T) {
	low, high := 1, 90
	r := mustEstimate(t, Input{PollInterval: time.Hour, Devices: []Device{
		{Link: "lora", FullBytes: mib, BatteryPowered: true, BatteryPercent: &low},
		{Link: "lora", FullBytes: mib, BatteryPowered: true, BatteryPercent: &high},
		{Link: "lora", FullBytes: mib, BatteryPowered: true, BatteryWh: 50}, // ten times the default capacity
		{Link: "lora", FullBytes: mib},                                      // mains powered
	}})
	lr := r.PerLink["lora"]
	if lr.BatteryDevices != 3 || lr.BatteryShort != 1 {
		t.Errorf("battery devices %d, short %d; want 3 and 1", lr.BatteryDevices, lr.BatteryShort)
	}
	near(t, "mean share", lr.BatterySharePctMean, lr.BatterySharePctMax*(1+1+0.1)/3, 1e-9)
}

func TestPerLinkPercentilesAndMetered(t *testing.T) {
	links := map[string]Link{"plain": plain(8e6, 1)}
	var ds []Device
	for i := 1; i <= 20; i++ {
		ds = append(ds, Device{Link: "plain", FullBytes: int64(i) * 1_000_000, Metered: i%2 == 0, PollInterval: time.Hour})
	}
	r := mustEstimate(t, Input{Links: links, Devices: ds})
	lr := r.PerLink["plain"]
	// i MB at 1 MB/s take i seconds; nearest rank: p50 = 10th, p95 = 19th.
	nearDur(t, "p50", lr.RadioTimeP50, 10)
	nearDur(t, "p95", lr.RadioTimeP95, 19)
	nearDur(t, "sum", lr.RadioTime, 210)
	if r.MeteredBytes != 110_000_000 { // 2+4+...+20 MB
		t.Errorf("metered bytes = %d", r.MeteredBytes)
	}
}

func TestDeviceSeqMatchesSlice(t *testing.T) {
	ds := []Device{{Link: "wifi", FullBytes: 5 * mib, DeltaBytes: mib}, {Link: "nb-iot", FullBytes: 2 * mib, BatteryPowered: true}}
	a := mustEstimate(t, Input{Devices: ds, PollInterval: time.Hour, Phases: []Phase{{Percent: 50}, {Percent: 100}}})
	var seq iter.Seq[Device] = slices.Values(ds)
	b := mustEstimate(t, Input{DeviceSeq: seq, PollInterval: time.Hour, Phases: []Phase{{Percent: 50}, {Percent: 100}}})
	if a.TotalBytes != b.TotalBytes || a.TimeTo95 != b.TimeTo95 || a.PerLink["nb-iot"] != b.PerLink["nb-iot"] {
		t.Errorf("slice and sequence differ: %+v vs %+v", a, b)
	}
}

func TestMixtureIsExact(t *testing.T) {
	// One device done at exactly 10 s, one uniform over [0, 100] s.
	m := newMixture([]completion{{start: 10}, {start: 0, width: 100}})
	near(t, "cdf(5)", m.cdf(5), 0.025, 1e-12)
	near(t, "cdf(10)", m.cdf(10), 0.55, 1e-12)
	near(t, "cdf(50)", m.cdf(50), 0.75, 1e-12)
	near(t, "cdf(100)", m.cdf(100), 1, 1e-12)
	near(t, "cdf(-1)", m.cdf(-1), 0, 0)
	near(t, "median", m.quantile(0.5), 10, 1e-6)
	near(t, "q 0.9", m.quantile(0.9), 80, 1e-6)
}

func BenchmarkEstimate100k(b *testing.B) {
	names := []string{"ethernet", "wifi", "cellular", "nb-iot", "lora"}
	ds := make([]Device, 100_000)
	for i := range ds {
		pct := i % 101
		ds[i] = Device{Link: names[i%len(names)], FullBytes: int64(1+i%7) * mib, BatteryPowered: i%3 == 0,
			BatteryPercent: &pct, PollInterval: time.Duration(1+i%24) * time.Hour, Metered: i%4 == 0}
		if i%2 == 0 {
			ds[i].DeltaBytes = ds[i].FullBytes / 5
		}
	}
	in := Input{Devices: ds, InstallTime: 2 * time.Minute,
		Phases: []Phase{{Percent: 1, MinDuration: time.Hour}, {Percent: 10, MinDuration: 6 * time.Hour}, {Percent: 50, MinDuration: 12 * time.Hour}, {Percent: 100}}}
	for b.Loop() {
		if _, err := Estimate(in); err != nil {
			b.Fatal(err)
		}
	}
}
