package ctl

import (
	"fmt"
	"io"
	"net/url"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/steward-iot/steward/internal/rollout"
)

// rolloutsCommand manages phased rollouts.
func rolloutsCommand(o *options) *cobra.Command {
	cmd := &cobra.Command{Use: "rollouts", Short: "Create, follow and control phased rollouts of releases (docs/rollouts.md)"}
	cmd.AddCommand(rolloutCreateCommand(o), rolloutListCommand(o), rolloutShowCommand(o), rolloutWatchCommand(o),
		rolloutDevicesCommand(o), rolloutActionCommand(o, "pause", "Pause a rollout: no more devices are offered the release"),
		rolloutActionCommand(o, "resume", "Resume a paused rollout; failures so far no longer count toward pausing"),
		rolloutActionCommand(o, "cancel", "Cancel a rollout: devices that have not started get nothing"),
		rolloutWindowCommand(o), rolloutPlanCommand(o))
	return cmd
}

// createFlags adds the flags of a rollout request to cmd and returns a
// function that builds the request from them.
func createFlags(cmd *cobra.Command) func() (rollout.CreateRequest, error) {
	var req rollout.CreateRequest
	var phases, deadline string
	var retries, battery int
	f := cmd.Flags()
	f.StringVar(&req.ReleaseID, "release", "", "id of the release to roll out (required)")
	f.StringVar(&req.TargetQuery, "target", "", "fleet query selecting the target devices, e.g. 'tag.region = \"eu\"'")
	f.StringVar(&req.TargetGroupID, "group", "", "id of the device group to target instead of --target")
	f.StringVar(&req.Urgency, "urgency", "", "scheduled, out-of-cycle or immediate (required)")
	f.StringVar(&req.Mode, "mode", "", "forced, soft or download-only (default: forced for immediate, soft otherwise)")
	f.StringVar(&req.Name, "name", "", "a name for people (default: product and version)")
	f.StringVar(&phases, "phases", "", "phases as PERCENT[:SOAK],… (default 1:1h,10:4h,50:12h,100)")
	f.Float64Var(&req.SuccessRatio, "success-ratio", 0, "share of offered devices that must succeed to advance (default 0.95)")
	f.Float64Var(&req.PauseFailureRatio, "pause-failure-ratio", 0, "pause when this share of finished devices failed (default 0.05)")
	f.IntVar(&req.PauseFailureCount, "pause-failure-count", 0, "pause when this many devices failed (default off)")
	f.Float64Var(&req.AbortFailureRatio, "abort-failure-ratio", 0, "abort when this share of finished devices failed (default off)")
	f.IntVar(&req.AbortFailureCount, "abort-failure-count", 0, "abort when this many devices failed (default off)")
	f.IntVar(&retries, "max-retries", -1, "offers after a failure, per device (default 2)")
	f.Int64Var(&req.DeviceTimeout, "device-timeout", 0, "seconds without progress before a device's update times out (default 7200)")
	f.IntVar(&battery, "min-battery", -1, "battery percent below which devices not on mains wait (default 30)")
	f.StringVar(&deadline, "deadline", "", "when the last phase must have started: RFC 3339 time or a duration from now like 48h")
	return func() (rollout.CreateRequest, error) {
		r := req
		var err error
		if phases != "" {
			if r.Phases, err = rollout.ParsePhases(phases); err != nil {
				return r, fmt.Errorf("--phases: %w", err)
			}
		}
		if deadline != "" {
			t, err := parseDeadline(deadline, time.Now())
			if err != nil {
				return r, err
			}
			r.Deadline = &t
		}
		if retries >= 0 {
			r.MaxRetries = &retries
		}
		if battery >= 0 {
			r.MinBattery = &battery
		}
		return r, nil
	}
}

func rolloutCreateCommand(o *options) *cobra.Command {
	var build func() (rollout.CreateRequest, error)
	create := &cobra.Command{
		Use:   "create --release ID (--target 'QUERY' | --group ID) --urgency scheduled|out-of-cycle|immediate",
		Short: "Start a phased rollout of a release",
		Long: `Start a rollout of a release to the devices of a fleet query (--target) or
a group (--group), in phases of cumulative percentages. Each device's phase
is a hash of its id and the rollout's, so no device list is computed;
devices that join the target later are included.

--phases lists percentages with optional minimum soak times, e.g.
'1:1h,10:4h,50:12h,100' (a phase without a time soaks an hour, the last
none). Urgency scales soak times (out-of-cycle ×1/4, immediate ×1/20) and
decides how maintenance windows apply; see docs/rollouts.md. Try
'steward ctl rollouts plan' with the same flags first.`,
		Args: cobra.NoArgs,
		RunE: o.run(func(s *session, _ []string) error {
			path, err := s.orgPath("/rollouts")
			if err != nil {
				return err
			}
			req, err := build()
			if err != nil {
				return err
			}
			var r rollout.Rollout
			raw, err := s.create(s.ctx, path, req, &r)
			if err != nil {
				return err
			}
			if s.json {
				return s.printJSON(raw)
			}
			_, err = fmt.Fprintf(s.out, "rollout %s started: %s, %s, %s, %d phases; follow it with 'steward ctl rollouts watch %s'\n",
				r.ID, r.Name, r.Urgency, r.Mode, len(r.Phases), r.ID)
			return err
		}),
	}
	build = createFlags(create)
	_ = create.MarkFlagRequired("release")
	_ = create.MarkFlagRequired("urgency")
	return create
}

func rolloutPlanCommand(o *options) *cobra.Command {
	var build func() (rollout.CreateRequest, error)
	cmd := &cobra.Command{
		Use:   "plan [ID | --release ID (--target 'QUERY' | --group ID) --urgency U ...]",
		Short: "What-if: bytes, radio time, energy, battery share and time to 95% of a rollout",
		Long: `Estimate a rollout over its target as it is now: bytes to send (a delta
where one applies to the image a device runs, else the full image), radio
time and energy per link class, the battery share one download takes, and
the time until 95% of the target runs the release given the phases and the
devices' poll interval. Give a rollout ID, or the flags 'create' takes for
one not yet created.`,
		Args: cobra.MaximumNArgs(1),
		RunE: o.run(func(s *session, args []string) error {
			var p rollout.Plan
			var raw []byte
			if len(args) == 1 {
				path, err := s.orgPath("/rollouts/" + url.PathEscape(args[0]) + "/plan")
				if err != nil {
					return err
				}
				if raw, err = s.get(s.ctx, path, nil, &p); err != nil {
					return err
				}
			} else {
				path, err := s.orgPath("/rollouts/plan")
				if err != nil {
					return err
				}
				req, err := build()
				if err != nil {
					return err
				}
				if raw, err = s.sendJSON(s.ctx, "POST", path, req, &p); err != nil {
					return err
				}
			}
			if s.json {
				return s.printJSON(raw)
			}
			return writePlan(s.out, p)
		}),
	}
	build = createFlags(cmd)
	return cmd
}

// writePlan renders a what-if for people.
func writePlan(w io.Writer, p rollout.Plan) error {
	secs := func(f float64) string { return (time.Duration(f * float64(time.Second))).Round(time.Second).String() }
	fmt.Fprintf(w, "%d devices: %d get a delta, %d the full image\n", p.Devices, p.DevicesDelta, p.DevicesFull)
	fmt.Fprintf(w, "bytes to send %d (deltas %d, full %d; deltas save %d; over metered links %d)\n",
		p.TotalBytes, p.DeltaBytes, p.FullBytes, p.SavedBytes, p.MeteredBytes)
	fmt.Fprintf(w, "energy %.1f J; poll interval %s; wake-ups %s\n", p.EnergyJoules, secs(p.PollIntervalSeconds), yesNo(p.Wakeups))
	if p.Reached95 {
		fmt.Fprintf(w, "time to 50%% %s, to 95%% %s, to all %s\n\n", secs(p.TimeTo50Seconds), secs(p.TimeTo95Seconds), secs(p.TimeToAllSeconds))
	} else {
		fmt.Fprintf(w, "the phases never reach 95%% of the target\n\n")
	}
	t := newTable(w, "LINK", "DEVICES", "DELTA", "BYTES", "RADIO", "RADIO P95", "DOWNLOAD P95", "ENERGY J", "BATTERY % MEAN", "MAX", "SHORT")
	links := make([]string, 0, len(p.PerLink))
	for name := range p.PerLink {
		links = append(links, name)
	}
	sort.Strings(links)
	for _, name := range links {
		l := p.PerLink[name]
		t.row(name, fmt.Sprint(l.Devices), fmt.Sprint(l.DevicesDelta), fmt.Sprint(l.Bytes), secs(l.RadioSeconds), secs(l.RadioP95Seconds),
			secs(l.DownloadP95Seconds), fmt.Sprintf("%.1f", l.EnergyJoules), fmt.Sprintf("%.3f", l.BatterySharePctMean),
			fmt.Sprintf("%.3f", l.BatterySharePctMax), fmt.Sprint(l.BatteryShort))
	}
	if err := t.flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	t = newTable(w, "PHASE", "PERCENT", "DEVICES", "STARTS", "DONE", "ALL DONE")
	for i, ph := range p.Phases {
		t.row(fmt.Sprint(i+1), fmt.Sprintf("%v%%", ph.Percent), fmt.Sprint(ph.Devices), secs(ph.StartSeconds), secs(ph.DoneSeconds), secs(ph.AllDoneSeconds))
	}
	return t.flush()
}

// parseDeadline reads an RFC 3339 time or a duration from now.
func parseDeadline(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(d).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("--deadline %q is neither an RFC 3339 time (2026-05-01T12:00:00Z) nor a duration (48h)", s)
	}
	return t, nil
}

func rolloutListCommand(o *options) *cobra.Command {
	var limit int
	var state string
	list := &cobra.Command{
		Use:   "list",
		Short: "List rollouts",
		Args:  cobra.NoArgs,
		RunE: o.run(func(s *session, _ []string) error {
			path, err := s.orgPath("/rollouts")
			if err != nil {
				return err
			}
			q := url.Values{}
			if state != "" {
				q.Set("state", state)
			}
			raw, rs, err := fetchAll[rollout.Rollout](s, path, q, limit)
			if err != nil {
				return err
			}
			if s.json {
				return s.printJSONList(raw)
			}
			t := newTable(s.out, "ID", "NAME", "URGENCY", "MODE", "STATE", "PHASE", "CREATED")
			for _, r := range rs {
				t.row(r.ID, r.Name, r.Urgency, r.Mode, r.State, phaseLabel(r), timestamp(r.CreatedAt))
			}
			return t.flush()
		}),
	}
	list.Flags().IntVar(&limit, "limit", 0, "list at most this many (default: all)")
	list.Flags().StringVar(&state, "state", "", "only rollouts in this state (running, paused, completed, cancelled, aborted)")
	return list
}

func phaseLabel(r rollout.Rollout) string {
	if len(r.Phases) == 0 {
		return "-"
	}
	return fmt.Sprintf("%d/%d (%v%%)", r.Phase+1, len(r.Phases), r.Phases[r.Phase].Percent)
}

func (s *session) rolloutProgress(id string) (rollout.Progress, []byte, error) {
	path, err := s.orgPath("/rollouts/" + url.PathEscape(id))
	if err != nil {
		return rollout.Progress{}, nil, err
	}
	var pr rollout.Progress
	raw, err := s.get(s.ctx, path, nil, &pr)
	return pr, raw, err
}

func rolloutShowCommand(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "show ID",
		Short: "Show a rollout's progress per phase and per device state",
		Args:  cobra.ExactArgs(1),
		RunE: o.run(func(s *session, args []string) error {
			pr, raw, err := s.rolloutProgress(args[0])
			if err != nil {
				return err
			}
			if s.json {
				return s.printJSON(raw)
			}
			return writeProgress(s.out, pr)
		}),
	}
}

// writeProgress renders a rollout's progress for people.
func writeProgress(w io.Writer, pr rollout.Progress) error {
	target := "query " + pr.TargetQuery
	if pr.TargetGroupID != "" {
		target = "group " + pr.TargetGroupID
	}
	fmt.Fprintf(w, "rollout %s  %s\n", pr.ID, pr.Name)
	fmt.Fprintf(w, "release %s (%s) → %s\n", pr.Version, pr.ReleaseID, target)
	state := pr.State
	if pr.StateReason != "" {
		state += ": " + pr.StateReason
	}
	fmt.Fprintf(w, "urgency %s, mode %s, state %s\n", pr.Urgency, pr.Mode, state)
	if pr.Deadline != nil {
		fmt.Fprintf(w, "deadline %s\n", timestamp(*pr.Deadline))
	}
	rate := "-"
	if pr.Offered > 0 {
		rate = fmt.Sprintf("%.1f%%", 100*float64(pr.Succeeded)/float64(pr.Offered))
	}
	fmt.Fprintf(w, "offered %d, succeeded %d (%s), failed %d\n\n", pr.Offered, pr.Succeeded, rate, pr.Failed)
	t := newTable(w, "PHASE", "PERCENT", "SOAK", "STARTED", "DEVICES")
	for _, ph := range pr.PhaseDetails {
		mark := " "
		if ph.Index == pr.Phase && pr.Live() {
			mark = "▶"
		}
		t.row(fmt.Sprintf("%s %d", mark, ph.Index+1), fmt.Sprintf("%v%%", ph.Percent),
			(time.Duration(ph.MinSoakSeconds) * time.Second).String(), optTime(ph.StartedAt, "-"), stateCounts(ph.Devices))
	}
	if err := t.flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "\ndevices by state: %s\n", stateCounts(pr.Devices))
	return err
}

// stateCounts lists counts in the order an update moves.
func stateCounts(m map[string]int) string {
	var parts []string
	for _, st := range rollout.DUStates {
		if n := m[st]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", st, n))
		}
	}
	var other []string
	for st, n := range m {
		if !slices.Contains(rollout.DUStates, st) {
			other = append(other, fmt.Sprintf("%s %d", st, n))
		}
	}
	sort.Strings(other)
	parts = append(parts, other...)
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

func rolloutWatchCommand(o *options) *cobra.Command {
	var every time.Duration
	watch := &cobra.Command{
		Use:   "watch ID",
		Short: "Redraw a rollout's progress until it ends (or Ctrl-C)",
		Args:  cobra.ExactArgs(1),
		RunE: o.run(func(s *session, args []string) error {
			if every < 200*time.Millisecond {
				return fmt.Errorf("--interval %v is too short; at least 200ms", every)
			}
			tty := isTerminal(s.out)
			for {
				pr, raw, err := s.rolloutProgress(args[0])
				if err != nil {
					return err
				}
				switch {
				case s.json:
					if err := s.printJSON(raw); err != nil {
						return err
					}
				case tty:
					fmt.Fprint(s.out, "\x1b[H\x1b[2J") // home and clear: redraw in place
					if err := writeProgress(s.out, pr); err != nil {
						return err
					}
				default:
					fmt.Fprintf(s.out, "%s phase %s %s offered %d succeeded %d failed %d\n", time.Now().UTC().Format(time.RFC3339),
						phaseLabel(pr.Rollout), pr.State, pr.Offered, pr.Succeeded, pr.Failed)
				}
				if !pr.Live() {
					return nil
				}
				t := time.NewTimer(every)
				select {
				case <-s.ctx.Done():
					t.Stop()
					return nil // Ctrl-C ends the watch, not the rollout
				case <-t.C:
				}
			}
		}),
	}
	watch.Flags().DurationVar(&every, "interval", 2*time.Second, "time between polls")
	return watch
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func rolloutDevicesCommand(o *options) *cobra.Command {
	var limit int
	var state string
	cmd := &cobra.Command{
		Use:   "devices ID",
		Short: "List the devices a rollout offered its release to, with their update state",
		Args:  cobra.ExactArgs(1),
		RunE: o.run(func(s *session, args []string) error {
			path, err := s.orgPath("/rollouts/" + url.PathEscape(args[0]) + "/devices")
			if err != nil {
				return err
			}
			q := url.Values{}
			if state != "" {
				q.Set("state", state)
			}
			raw, us, err := fetchAll[rollout.DeviceUpdate](s, path, q, limit)
			if err != nil {
				return err
			}
			if s.json {
				return s.printJSONList(raw)
			}
			t := newTable(s.out, "DEVICE", "PHASE", "STATE", "ATTEMPTS", "ARTIFACT", "BYTES", "REASON", "UPDATED")
			for _, u := range us {
				t.row(u.DeviceID, fmt.Sprint(u.Phase+1), u.State, fmt.Sprint(u.Attempts), u.Artifact, fmt.Sprint(u.Bytes),
					orDash(u.Reason), timestamp(u.UpdatedAt))
			}
			return t.flush()
		}),
	}
	cmd.Flags().IntVar(&limit, "limit", 0, "list at most this many (default: all)")
	cmd.Flags().StringVar(&state, "state", "", "only devices in this update state (e.g. failed)")
	return cmd
}

func rolloutActionCommand(o *options, action, short string) *cobra.Command {
	return &cobra.Command{
		Use:   action + " ID",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: o.run(func(s *session, args []string) error {
			path, err := s.orgPath("/rollouts/" + url.PathEscape(args[0]) + "/" + action)
			if err != nil {
				return err
			}
			var r rollout.Rollout
			raw, err := s.change(s.ctx, "POST", path, &r)
			if err != nil {
				return err
			}
			if s.json {
				return s.printJSON(raw)
			}
			_, err = fmt.Fprintf(s.out, "rollout %s is %s\n", r.ID, r.State)
			return err
		}),
	}
}

func rolloutWindowCommand(o *options) *cobra.Command {
	var w rollout.GroupWindow
	var dur time.Duration
	cmd := &cobra.Command{
		Use:   "window GROUP-ID --cron 'MIN HOUR DOM MON DOW' --duration 2h [--tz Europe/Berlin]",
		Short: "Set a group's maintenance window; scheduled rollouts update its devices only inside it",
		Long: `Set the maintenance window of a device group: it opens when the cron
expression fires (read in --tz) and stays open for --duration. Without
--cron the window is removed.`,
		Args: cobra.ExactArgs(1),
		RunE: o.run(func(s *session, args []string) error {
			path, err := s.orgPath("/groups/" + url.PathEscape(args[0]) + "/window")
			if err != nil {
				return err
			}
			w.DurationSeconds = int64(dur / time.Second)
			var got rollout.GroupWindow
			raw, err := s.sendJSON(s.ctx, "PUT", path, w, &got)
			if err != nil {
				return err
			}
			if s.json {
				return s.printJSON(raw)
			}
			if got.Cron == "" {
				_, err = fmt.Fprintf(s.out, "group %s has no maintenance window now\n", args[0])
				return err
			}
			_, err = fmt.Fprintf(s.out, "group %s: window opens at %q (%s) for %s\n", args[0], got.Cron, got.TimeZone,
				time.Duration(got.DurationSeconds)*time.Second)
			return err
		}),
	}
	cmd.Flags().StringVar(&w.Cron, "cron", "", "five-field cron expression of when the window opens, e.g. '0 2 * * *'")
	cmd.Flags().DurationVar(&dur, "duration", 0, "how long the window stays open, e.g. 2h")
	cmd.Flags().StringVar(&w.TimeZone, "tz", "", "IANA time zone of the cron expression (default UTC)")
	return cmd
}
