// Package window evaluates maintenance windows: the times at which a device
// may download and install an update.
//
// Two kinds of window exist. A group window is a cron expression (when an
// opening starts), a duration (how long it stays open, as elapsed time) and
// an IANA time zone the cron is read in:
//
//	Parse("0 2 * * *", 2*time.Hour, "Europe/Berlin")
//
// A device window is what a device reports about itself, a daily wall-clock
// range with an optional zone (UTC when omitted); the range may wrap past
// midnight, and it ends when the local clock shows the end time:
//
//	ParseDevice("22:00-02:00 Europe/Berlin")
//
// # Cron dialect
//
// Standard five fields (minute hour day-of-month month day-of-week), parsed by
// github.com/robfig/cron/v3: numbers, ranges, steps, lists, month and day
// names, and '?' as '*'. Day-of-week is 0-6 (Sunday is 0; 7 is refused). When
// both day fields are restricted a day matching either fires, as in Vixie
// cron. The descriptors @yearly, @annually, @monthly, @weekly, @daily,
// @midnight and @hourly are accepted; @every (not anchored to the clock) and a
// seconds field are refused, as is a TZ= prefix (the zone is its own input).
// A cron that never matches a date (February 30) is refused.
//
// # Daylight saving time
//
// Wall-clock times that the local clock skips or shows twice are handled as
// Vixie cron does:
//   - A cron whose hour field is fixed (not starting with '*'), such as
//     "30 2 * * *": a start time skipped by a spring-forward change opens the
//     window the instant the clock jumps (03:00 CEST for 02:30 in Berlin), so
//     the day keeps its opening; a start time shown twice in autumn opens the
//     window once, at its first occurrence.
//   - A cron whose hour field is a wildcard ("*/15 * * * *", @hourly) is
//     periodic in elapsed time: it fires whenever the clock shows a matching
//     time, twice in the repeated hour and not at all in the skipped one.
//
// A group window's duration is elapsed time, so an opening that spans a
// change ends at start+duration on the new clock. A device window ends at the
// first instant its end time is shown (or when the clock jumps past it); an
// opening wholly inside a skipped hour does not occur that day.
//
// # Overlaps and combination
//
// Openings may overlap (a duration longer than the cron period); Open reports
// whether any opening contains t, and Next reports the union of the openings
// that overlap or touch. Several windows combine with AND: an update may run
// when every window that applies (the group's and the device's own) is open
// — see AllOpen and NextAll. A zero Window means "no window configured".
//
// Searches are bounded (SearchHorizon ahead, MaxMerge of merging), so every
// call terminates; a window with no opening in the horizon reports zero times.
// The zone database is embedded (time/tzdata), so zones resolve on hosts
// without /usr/share/zoneinfo.
package window

import (
	"math/bits"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
	_ "time/tzdata" // zones must resolve in minimal containers too

	"github.com/robfig/cron/v3"

	"github.com/steward-iot/steward/internal/problem"
)

const (
	// SearchHorizon bounds how far ahead Next looks for an opening: long
	// enough for "0 0 29 2 *", whose firings can be 8 years apart (2096 to
	// 2104).
	SearchHorizon = 9 * 366 * 24 * time.Hour
	// MaxMerge bounds how far before and after t Next follows a chain of
	// overlapping openings; a window that is open that long is reported as
	// open for at least that long.
	MaxMerge = 48 * time.Hour
	// MaxDuration is the exclusive upper bound on a window's duration.
	MaxDuration = 24 * time.Hour
	// MinDuration is the shortest window: cron fires on whole minutes.
	MinDuration = time.Minute

	maxInput = 256
	// maxOffsetSpan bounds |wall clock - UTC| plus one zone change; used to
	// bracket searches between civil and absolute time.
	maxOffsetSpan = 27 * time.Hour
)

// Window is a parsed maintenance window. Values are comparable with ==: two
// windows are equal when their specs are (String round-trips through
// ParseSpec to an equal value). The zero Window is "no window".
type Window struct {
	spec string // canonical cron text; empty for device windows
	dur  time.Duration
	tz   string
	loc  *time.Location

	minute, hour, dom, month, dow uint64 // robfig bit sets (bit 63: field was '*')
	elapsed                       bool   // hour field is a wildcard: periodic in elapsed time

	device bool
	from   int // device window: start and end, minutes after local midnight
	to     int
}

const starBit = 1 << 63

var parser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

var descriptors = map[string]bool{
	"@yearly": true, "@annually": true, "@monthly": true, "@weekly": true,
	"@daily": true, "@midnight": true, "@hourly": true,
}

// fieldRE is the grammar of one comma-separated element of a cron field;
// robfig's parser is lenient ("*-5" means "*", "+5" means 5), so untrusted
// text is held to the plain form first.
var fieldRE = regexp.MustCompile(`^(\*|\?|[0-9a-z]+(-[0-9a-z]+)?)(/[0-9]{1,2})?$`)

var fieldNames = [5]string{"minute", "hour", "day-of-month", "month", "day-of-week"}

// Parse returns a group window: openings start when cronExpr fires, read in
// time zone tz (an IANA name such as "Europe/Berlin", or "UTC"), and last d.
func Parse(cronExpr string, d time.Duration, tz string) (Window, error) {
	spec, err := normalizeCron(cronExpr)
	if err != nil {
		return Window{}, err
	}
	if d < MinDuration || d >= MaxDuration {
		return Window{}, problem.InvalidField("duration", "%s is out of range: a window lasts at least %s and less than %s",
			d, MinDuration, MaxDuration)
	}
	if tz == "" {
		return Window{}, problem.InvalidField("tz", "missing: name the IANA time zone the cron is read in, such as Europe/Berlin or UTC")
	}
	loc, err := location(tz, "tz")
	if err != nil {
		return Window{}, err
	}
	sched, err := parser.Parse(spec)
	if err != nil {
		return Window{}, problem.InvalidField("cron", "%q: %v; expected five fields: minute hour day-of-month month day-of-week", cronExpr, err)
	}
	ss, ok := sched.(*cron.SpecSchedule)
	if !ok { // @every slipped past normalizeCron
		return Window{}, problem.InvalidField("cron", "%q is not a clock schedule", cronExpr)
	}
	w := Window{spec: spec, dur: d, tz: tz, loc: loc,
		minute: ss.Minute, hour: ss.Hour, dom: ss.Dom, month: ss.Month, dow: ss.Dow,
		elapsed: hourWildcard(spec)}
	// Any date pattern that matches at all matches within 8 years.
	ref := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, ok := w.civilNext(ref, ref.Add(SearchHorizon)); !ok {
		return Window{}, problem.InvalidField("cron", "%q never fires: no date matches its day and month fields (like February 30)", cronExpr)
	}
	return w, nil
}

// hourWildcard reports whether the hour field starts with a wildcard, which
// makes the schedule periodic in elapsed time (Vixie cron's rule for DST).
func hourWildcard(spec string) bool {
	if strings.HasPrefix(spec, "@") {
		return spec == "@hourly"
	}
	h := strings.Fields(spec)[1]
	return h[0] == '*' || h[0] == '?'
}

func normalizeCron(s string) (string, error) {
	if len(s) > maxInput {
		return "", problem.InvalidField("cron", "longer than %d bytes", maxInput)
	}
	fields := strings.Fields(strings.ToLower(s))
	if len(fields) == 0 {
		return "", problem.InvalidField("cron", "missing: give five fields (minute hour day-of-month month day-of-week), such as \"0 2 * * *\"")
	}
	if strings.HasPrefix(fields[0], "tz=") || strings.HasPrefix(fields[0], "cron_tz=") {
		return "", problem.InvalidField("cron", "%q embeds a time zone; give the zone in tz instead", s)
	}
	if strings.HasPrefix(fields[0], "@") {
		if len(fields) == 1 && descriptors[fields[0]] {
			return fields[0], nil
		}
		return "", problem.InvalidField("cron", "%q: unsupported descriptor; use @yearly, @monthly, @weekly, @daily or @hourly, or five cron fields (@every is not anchored to the clock)", s)
	}
	if len(fields) != 5 {
		hint := ""
		if len(fields) == 6 {
			hint = " (seconds fields are not supported)"
		}
		return "", problem.InvalidField("cron", "%q has %d fields%s; expected five: minute hour day-of-month month day-of-week", s, len(fields), hint)
	}
	for i, f := range fields {
		for _, el := range strings.Split(f, ",") {
			if !fieldRE.MatchString(el) {
				return "", problem.InvalidField("cron", "%q: %s field %q is not a number, name, range, step or '*'", s, fieldNames[i], f)
			}
		}
	}
	return strings.Join(fields, " "), nil
}

var zoneNameRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)*$`)

var locations sync.Map // name → *time.Location; one pointer per name keeps Window comparable

func location(name, field string) (*time.Location, error) {
	if l, ok := locations.Load(name); ok {
		return l.(*time.Location), nil
	}
	// "Local" would make the window depend on the server's zone.
	if len(name) > 64 || !zoneNameRE.MatchString(name) || name == "Local" {
		return nil, problem.InvalidField(field, "%q is not an IANA time zone name; use one such as Europe/Berlin, America/New_York or UTC", name)
	}
	l, err := time.LoadLocation(name)
	if err != nil {
		return nil, problem.InvalidField(field, "unknown time zone %q; use an IANA name such as Europe/Berlin, America/New_York or UTC", name)
	}
	actual, _ := locations.LoadOrStore(name, l)
	return actual.(*time.Location), nil
}

var deviceRE = regexp.MustCompile(`^([0-9]{2}):([0-9]{2}) *- *([0-9]{2}):([0-9]{2})(?: +(\S+))?$`)

// ParseDevice parses a device's own window, "HH:MM-HH:MM ZONE": a daily
// range of local wall-clock time, which wraps past midnight when the end is
// earlier than the start ("22:00-02:00 UTC"). The zone is an IANA name and
// defaults to UTC; "24:00" is accepted as an end and means midnight.
func ParseDevice(s string) (Window, error) {
	if len(s) > maxInput {
		return Window{}, problem.InvalidField("window", "longer than %d bytes", maxInput)
	}
	m := deviceRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return Window{}, problem.InvalidField("window", "%q: expected \"HH:MM-HH:MM ZONE\", such as \"02:00-04:00 Europe/Berlin\" (zone optional, UTC by default)", s)
	}
	num := func(i int) int { n, _ := strconv.Atoi(m[i]); return n }
	fh, fm, th, tm := num(1), num(2), num(3), num(4)
	if fh > 23 || fm > 59 || th > 24 || tm > 59 || (th == 24 && tm != 0) {
		return Window{}, problem.InvalidField("window", "%q: hours are 00-23 (24:00 only as an end) and minutes 00-59", s)
	}
	from, to := fh*60+fm, (th*60+tm)%1440
	if from == to {
		return Window{}, problem.InvalidField("window", "%q is empty: start and end are equal (an all-day window needs no window)", s)
	}
	tz := m[5]
	if tz == "" {
		tz = "UTC"
	}
	loc, err := location(tz, "window")
	if err != nil {
		return Window{}, err
	}
	return Window{dur: time.Duration((to-from+1440)%1440) * time.Minute, tz: tz, loc: loc,
		minute: 1 << uint(fm), hour: 1 << uint(fh), dom: all(1, 31), month: all(1, 12), dow: all(0, 6),
		device: true, from: from, to: to}, nil
}

func all(lo, hi uint) uint64 { return (^uint64(0)>>(63-hi))&(^uint64(0)<<lo) | starBit }

// ParseSpec parses what String returns, of either kind: a device window
// ("02:00-04:00 Europe/Berlin") or a group window
// ("0 2 * * * for 2h0m0s in Europe/Berlin"). The empty string is the zero
// Window.
func ParseSpec(s string) (Window, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Window{}, nil
	}
	if deviceRE.MatchString(s) {
		return ParseDevice(s)
	}
	if len(s) > 2*maxInput {
		return Window{}, problem.InvalidField("window", "longer than %d bytes", 2*maxInput)
	}
	in := strings.LastIndex(s, " in ")
	if in < 0 {
		return Window{}, problem.InvalidField("window", "%q: expected \"CRON for DURATION in ZONE\" or \"HH:MM-HH:MM ZONE\"", s)
	}
	rest, tz := s[:in], strings.TrimSpace(s[in+4:])
	f := strings.LastIndex(rest, " for ")
	if f < 0 {
		return Window{}, problem.InvalidField("window", "%q: expected \"CRON for DURATION in ZONE\" or \"HH:MM-HH:MM ZONE\"", s)
	}
	d, err := time.ParseDuration(strings.TrimSpace(rest[f+5:]))
	if err != nil {
		return Window{}, problem.InvalidField("duration", "%q is not a duration such as 2h or 90m", strings.TrimSpace(rest[f+5:]))
	}
	return Parse(rest[:f], d, tz)
}

// String returns the window's spec, which ParseSpec (and, for a device
// window, ParseDevice) turns back into an equal Window.
func (w Window) String() string {
	switch {
	case w.IsZero():
		return ""
	case w.device:
		return hhmm(w.from) + "-" + hhmm(w.to) + " " + w.tz
	default:
		return w.spec + " for " + w.dur.String() + " in " + w.tz
	}
}

func hhmm(m int) string {
	return string([]byte{byte('0' + m/600), byte('0' + m/60%10), ':', byte('0' + m%60/10), byte('0' + m%10)})
}

// MarshalText encodes the window as its String.
func (w Window) MarshalText() ([]byte, error) { return []byte(w.String()), nil }

// UnmarshalText parses a spec with ParseSpec.
func (w *Window) UnmarshalText(b []byte) error {
	v, err := ParseSpec(string(b))
	if err != nil {
		return err
	}
	*w = v
	return nil
}

// IsZero reports whether w is the zero Window ("no window").
func (w Window) IsZero() bool { return w.loc == nil }

// IsDevice reports whether w came from ParseDevice.
func (w Window) IsDevice() bool { return w.device }

// Cron returns a group window's canonical cron expression ("" for a device window).
func (w Window) Cron() string { return w.spec }

// Duration returns the window's nominal length (for a device window, the
// wall-clock length of its range).
func (w Window) Duration() time.Duration { return w.dur }

// TZ returns the window's time zone name.
func (w Window) TZ() string { return w.tz }

// Location returns the window's time zone (nil for the zero Window).
func (w Window) Location() *time.Location { return w.loc }

// Open reports whether t lies inside an opening of w, including one that
// started before t (up to its duration ago). The zero Window is never open.
func (w Window) Open(t time.Time) bool {
	if w.IsZero() {
		return false
	}
	o, ok := w.lastOpening(t)
	return ok && t.Before(o.end)
}

// Next returns the opening that contains t or, if none does, the first one
// after t, as [start, end). Openings that overlap or touch are returned as
// their union, followed at most MaxMerge before and after t. Times are in the
// window's zone. Zero times mean no opening within SearchHorizon (or the zero
// Window).
func (w Window) Next(t time.Time) (start, end time.Time) {
	if w.IsZero() {
		return time.Time{}, time.Time{}
	}
	o, ok := w.lastOpening(t)
	if !ok || !t.Before(o.end) {
		if o, ok = w.nextOpening(t); !ok {
			return time.Time{}, time.Time{}
		}
	}
	// Extend forward: the latest opening starting by the current end has
	// the latest end (ends rise with starts), so each step jumps a whole
	// opening.
	for !o.end.After(t.Add(MaxMerge)) {
		p, ok := w.lastOpening(o.end)
		if !ok || !p.end.After(o.end) {
			break
		}
		o.end = p.end
	}
	for !o.start.Before(t.Add(-MaxMerge)) {
		p, ok := w.lastOpening(o.start.Add(-time.Nanosecond))
		if !ok || p.end.Before(o.start) {
			break
		}
		o.start = p.start
	}
	return o.start.In(w.loc), o.end.In(w.loc)
}

// AllOpen reports whether every non-zero window in ws is open at t: group
// and device windows combine with AND. With no windows configured it is
// true.
func AllOpen(ws []Window, t time.Time) bool {
	for _, w := range ws {
		if !w.IsZero() && !w.Open(t) {
			return false
		}
	}
	return true
}

// NextAll returns the first interval, containing t or after it, in which
// every non-zero window in ws is open. Zero times mean none within
// SearchHorizon. With no windows configured it returns (t, zero end): always
// open.
func NextAll(ws []Window, t time.Time) (start, end time.Time) {
	var active []Window
	for _, w := range ws {
		if !w.IsZero() {
			active = append(active, w)
		}
	}
	if len(active) == 0 {
		return t, time.Time{}
	}
	cur, limit := t, t.Add(SearchHorizon)
	// Each round either finds a common point or moves cur to a later start.
	for cur.Before(limit) {
		var hi, lo time.Time
		for i, w := range active {
			s, e := w.Next(cur)
			if s.IsZero() {
				return time.Time{}, time.Time{}
			}
			if i == 0 || s.After(hi) {
				hi = s
			}
			if i == 0 || e.Before(lo) {
				lo = e
			}
		}
		if hi.Before(lo) {
			return hi.In(active[0].loc), lo.In(active[0].loc)
		}
		if !hi.After(cur) { // cannot happen with well-formed openings; never spin
			hi = cur.Add(time.Minute)
		}
		cur = hi
	}
	return time.Time{}, time.Time{}
}

type opening struct{ start, end time.Time }

// lastOpening returns the opening with the latest start at or before t
// (among those that could still reach t).
func (w Window) lastOpening(t time.Time) (opening, bool) {
	look := w.dur
	if w.device {
		look += maxOffsetSpan // a wall-clock range stretches across a zone change
	}
	s, c, ok := w.prevStart(t, t.Add(-look))
	if !ok {
		return opening{}, false
	}
	return opening{s, w.endOf(s, c)}, true
}

// nextOpening returns the first non-empty opening starting after t.
func (w Window) nextOpening(t time.Time) (opening, bool) {
	limit := t.Add(SearchHorizon)
	for t.Before(limit) {
		s, c, ok := w.nextStart(t, limit)
		if !ok {
			return opening{}, false
		}
		if e := w.endOf(s, c); e.After(s) {
			return opening{s, e}, true
		}
		t = s // a device range wholly inside a skipped hour: try the next day
	}
	return opening{}, false
}

// endOf returns the end of the opening that starts at s for the cron time c.
func (w Window) endOf(s, c time.Time) time.Time {
	if !w.device {
		return s.Add(w.dur)
	}
	return w.firstInstant(c.Add(w.dur))
}

// ---- zones ----

// zone is an interval of constant UTC offset; hasStart/hasEnd are false at
// the ends of time.
type zone struct {
	start, end       time.Time
	hasStart, hasEnd bool
	off              time.Duration
}

func (w Window) zoneAt(t time.Time) zone {
	lt := t.In(w.loc)
	_, off := lt.Zone()
	s, e := lt.ZoneBounds()
	return zone{start: s, end: e, hasStart: !s.IsZero(), hasEnd: !e.IsZero(), off: time.Duration(off) * time.Second}
}

// civil is the wall-clock reading of instant i in a zone with offset off,
// represented as a UTC time with the same fields.
func civil(i time.Time, off time.Duration) time.Time { return i.UTC().Add(off) }

// highWater is the latest wall-clock time shown before the zone z starts:
// wall times in z below it are repeats, and wall times from it up to z's
// first reading were skipped.
func (w Window) highWater(z zone) time.Time {
	p := w.zoneAt(z.start.Add(-time.Nanosecond))
	hw := civil(z.start, p.off)
	for range 4 { // a short earlier zone could have shown later times still
		if !p.hasStart || p.start.Before(z.start.Add(-2*maxOffsetSpan)) {
			break
		}
		q := w.zoneAt(p.start.Add(-time.Nanosecond))
		if c := civil(p.start, q.off); c.After(hw) {
			hw = c
		}
		p = q
	}
	return hw
}

// nextStart returns the first start strictly after t and before limit, and
// the cron (wall-clock) time it stands for.
func (w Window) nextStart(t, limit time.Time) (time.Time, time.Time, bool) {
	after := t.Add(time.Nanosecond)
	z := w.zoneAt(after)
	for {
		lo := after
		var hw time.Time
		fixed := !w.elapsed && z.hasStart
		if fixed {
			hw = w.highWater(z)
			if !z.start.Before(after) {
				lo = z.start
				// Wall times the clock skipped open at the jump.
				if first := civil(z.start, z.off); hw.Before(first) {
					if c, ok := w.civilNext(hw, first.Add(-time.Nanosecond)); ok {
						return z.start, c, true
					}
				}
			}
		}
		hi := limit
		if z.hasEnd && z.end.Before(hi) {
			hi = z.end
		}
		if lo.Before(hi) {
			clo := civil(lo, z.off)
			if fixed && clo.Before(hw) {
				clo = hw // skip the repeated hour
			}
			if c, ok := w.civilNext(clo, civil(hi, z.off).Add(-time.Nanosecond)); ok {
				return c.Add(-z.off), c, true
			}
		}
		if !z.hasEnd || !z.end.Before(limit) {
			return time.Time{}, time.Time{}, false
		}
		z = w.zoneAt(z.end)
	}
}

// prevStart returns the latest start at or before t and not before floor,
// and the cron time it stands for.
func (w Window) prevStart(t, floor time.Time) (time.Time, time.Time, bool) {
	z := w.zoneAt(t)
	for {
		hi := t
		if z.hasEnd && !z.end.After(hi) {
			hi = z.end.Add(-time.Nanosecond)
		}
		lo := floor
		if z.hasStart && z.start.After(lo) {
			lo = z.start
		}
		fixed := !w.elapsed && z.hasStart
		var hw time.Time
		if fixed {
			hw = w.highWater(z)
		}
		if !hi.Before(lo) {
			clo := civil(lo, z.off)
			if fixed && clo.Before(hw) {
				clo = hw
			}
			if c, ok := w.civilPrev(civil(hi, z.off), clo); ok {
				return c.Add(-z.off), c, true
			}
		}
		if fixed && !z.start.Before(floor) && !z.start.After(t) {
			if first := civil(z.start, z.off); hw.Before(first) {
				if c, ok := w.civilNext(hw, first.Add(-time.Nanosecond)); ok {
					return z.start, c, true
				}
			}
		}
		if !z.hasStart || !z.start.After(floor) {
			return time.Time{}, time.Time{}, false
		}
		z = w.zoneAt(z.start.Add(-time.Nanosecond))
	}
}

// firstInstant maps a wall-clock time to the first instant the clock shows
// it, or to the instant the clock jumps past it when it is skipped.
func (w Window) firstInstant(c time.Time) time.Time {
	z := w.zoneAt(c.Add(-maxOffsetSpan))
	for range 16 {
		if z.hasStart {
			if hw := w.highWater(z); !c.Before(hw) && c.Before(civil(z.start, z.off)) {
				return z.start // skipped
			}
		}
		if i := c.Add(-z.off); (!z.hasStart || !i.Before(z.start)) && (!z.hasEnd || i.Before(z.end)) {
			return i
		}
		if !z.hasEnd {
			break
		}
		z = w.zoneAt(z.end)
	}
	_, off := c.In(w.loc).Zone() // unreachable for real zones; stay total
	return c.Add(-time.Duration(off) * time.Second)
}

// ---- cron on the wall clock (a UTC timeline: no zone changes) ----

func (w Window) dayMatches(t time.Time) bool {
	domMatch := w.dom&(1<<uint(t.Day())) != 0
	dowMatch := w.dow&(1<<uint(t.Weekday())) != 0
	if w.dom&starBit != 0 || w.dow&starBit != 0 {
		return domMatch && dowMatch
	}
	return domMatch || dowMatch
}

// civilNext returns the first matching minute at or after c and not after
// limit.
func (w Window) civilNext(c, limit time.Time) (time.Time, bool) {
	m := c.Truncate(time.Minute)
	if m.Before(c) {
		m = m.Add(time.Minute)
	}
	for !m.After(limit) {
		y, mo, d := m.Date()
		switch {
		case w.month&(1<<uint(mo)) == 0:
			m = time.Date(y, mo+1, 1, 0, 0, 0, 0, time.UTC)
		case !w.dayMatches(m):
			m = time.Date(y, mo, d+1, 0, 0, 0, 0, time.UTC)
		case w.hour&(1<<uint(m.Hour())) == 0:
			m = time.Date(y, mo, d, m.Hour()+1, 0, 0, 0, time.UTC)
		default:
			// Lowest minute bit at or above the current minute.
			rest := w.minute &^ starBit >> uint(m.Minute())
			if rest == 0 {
				m = time.Date(y, mo, d, m.Hour()+1, 0, 0, 0, time.UTC)
				continue
			}
			m = m.Add(time.Duration(bits.TrailingZeros64(rest)) * time.Minute)
			if m.After(limit) {
				return time.Time{}, false
			}
			return m, true
		}
	}
	return time.Time{}, false
}

// civilPrev returns the last matching minute at or before c and not before
// floor.
func (w Window) civilPrev(c, floor time.Time) (time.Time, bool) {
	m := c.Truncate(time.Minute)
	for !m.Before(floor) {
		y, mo, d := m.Date()
		switch {
		case w.month&(1<<uint(mo)) == 0:
			m = time.Date(y, mo, 1, 0, 0, 0, 0, time.UTC).Add(-time.Minute)
		case !w.dayMatches(m):
			m = time.Date(y, mo, d, 0, 0, 0, 0, time.UTC).Add(-time.Minute)
		case w.hour&(1<<uint(m.Hour())) == 0:
			m = time.Date(y, mo, d, m.Hour(), 0, 0, 0, time.UTC).Add(-time.Minute)
		default:
			// Highest minute bit at or below the current minute.
			below := w.minute &^ starBit << uint(63-m.Minute())
			if below == 0 {
				m = time.Date(y, mo, d, m.Hour(), 0, 0, 0, time.UTC).Add(-time.Minute)
				continue
			}
			m = m.Add(-time.Duration(bits.LeadingZeros64(below)) * time.Minute)
			if m.Before(floor) {
				return time.Time{}, false
			}
			return m, true
		}
	}
	return time.Time{}, false
}
