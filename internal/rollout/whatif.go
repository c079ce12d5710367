package rollout

import (
	"context"
	"time"

	"github.com/steward-iot/steward/internal/access"
	"github.com/steward-iot/steward/internal/clock"
	"github.com/steward-iot/steward/internal/inventory"
	"github.com/steward-iot/steward/internal/problem"
	"github.com/steward-iot/steward/internal/release"
	"github.com/steward-iot/steward/internal/rollout/plan"
)

// DefaultPollInterval is the check-in interval a plan assumes until the
// server tells the service its own (SetPollInterval).
const DefaultPollInterval = 5 * time.Minute

// planInstallTime is the install-and-reboot time a plan assumes per device.
const planInstallTime = 2 * time.Minute

// SetPollInterval sets the devices' check-in interval plans assume.
func (s *Service) SetPollInterval(d time.Duration) {
	if d > 0 {
		s.poll = d
	}
}

// LinkPlan is the what-if of one link class.
type LinkPlan struct {
	Devices             int     `json:"devices"`
	DevicesDelta        int     `json:"devices_delta" doc:"devices that would get a delta"`
	Bytes               int64   `json:"bytes"`
	RadioSeconds        float64 `json:"radio_seconds" doc:"radio-on time summed over devices"`
	RadioP50Seconds     float64 `json:"radio_p50_seconds"`
	RadioP95Seconds     float64 `json:"radio_p95_seconds"`
	DownloadP50Seconds  float64 `json:"download_p50_seconds" doc:"wall time of one device's download"`
	DownloadP95Seconds  float64 `json:"download_p95_seconds"`
	EnergyJoules        float64 `json:"energy_joules"`
	BatteryDevices      int     `json:"battery_devices"`
	BatterySharePctMean float64 `json:"battery_share_pct_mean" doc:"share of battery capacity one download takes"`
	BatterySharePctMax  float64 `json:"battery_share_pct_max"`
	BatteryShort        int     `json:"battery_short" doc:"devices whose reported charge is below what the download needs"`
}

// PhasePlan is one phase on the estimated timeline, in seconds from launch.
type PhasePlan struct {
	Percent        float64 `json:"percent"`
	Devices        int     `json:"devices"`
	StartSeconds   float64 `json:"start_seconds"`
	DoneSeconds    float64 `json:"done_seconds" doc:"the success ratio of its devices finished"`
	AllDoneSeconds float64 `json:"all_done_seconds"`
}

// Plan is a rollout's what-if: what it would send and how long it would
// take, for the target as it is now (docs/rollouts.md, "What-if").
type Plan struct {
	Devices             int                 `json:"devices"`
	DevicesDelta        int                 `json:"devices_delta"`
	DevicesFull         int                 `json:"devices_full"`
	TotalBytes          int64               `json:"total_bytes"`
	DeltaBytes          int64               `json:"delta_bytes"`
	FullBytes           int64               `json:"full_bytes"`
	SavedBytes          int64               `json:"saved_bytes" doc:"full-image bytes the deltas avoid"`
	MeteredBytes        int64               `json:"metered_bytes"`
	EnergyJoules        float64             `json:"energy_joules"`
	Reached95           bool                `json:"reaches_95"`
	TimeTo95Seconds     float64             `json:"time_to_95_seconds"`
	TimeTo50Seconds     float64             `json:"time_to_50_seconds"`
	TimeToAllSeconds    float64             `json:"time_to_all_seconds"`
	PollIntervalSeconds float64             `json:"poll_interval_seconds" doc:"the check-in interval assumed"`
	Wakeups             bool                `json:"wakeups" doc:"devices woken at each phase (immediate urgency with wake-ups on)"`
	PerLink             map[string]LinkPlan `json:"per_link"`
	Phases              []PhasePlan         `json:"phases"`
}

// PlanNew estimates a rollout before it is created, from the same request
// Create takes.
func (s *Service) PlanNew(ctx context.Context, p access.Principal, req CreateRequest) (Plan, error) {
	if err := p.Require(access.DeviceRead); err != nil {
		return Plan{}, err
	}
	now := clock.Norm(s.clock.Now())
	req.Deadline = nil // a plan has no clock to run against
	req, err := req.normalize(now)
	if err != nil {
		return Plan{}, err
	}
	if req.TargetQuery, err = canonicalQuery(req.TargetQuery); err != nil {
		return Plan{}, err
	}
	r := Rollout{ID: "plan", OrgID: p.OrgID, ReleaseID: req.ReleaseID, TargetGroupID: req.TargetGroupID, TargetQuery: req.TargetQuery,
		Phases: req.Phases, Urgency: req.Urgency, Mode: req.Mode, SuccessRatio: req.SuccessRatio}
	return s.plan(ctx, r, true)
}

// PlanOf estimates an existing rollout over its whole target.
func (s *Service) PlanOf(ctx context.Context, p access.Principal, rolloutID string) (Plan, error) {
	if err := p.Require(access.DeviceRead); err != nil {
		return Plan{}, err
	}
	var r Rollout
	if err := s.store.Read(ctx, func(tx Tx) error {
		var err error
		r, err = tx.RolloutByID(ctx, p.OrgID, rolloutID)
		return err
	}); err != nil {
		return Plan{}, err
	}
	return s.plan(ctx, r, false)
}

func (s *Service) plan(ctx context.Context, r Rollout, fresh bool) (Plan, error) {
	var l *live
	var prod inventory.Product
	err := s.store.Read(ctx, func(tx Tx) error {
		rel, err := tx.ReleaseByID(ctx, r.OrgID, r.ReleaseID)
		if fresh && problem.Is(err, problem.KindNotFound) {
			return problem.InvalidField("release_id", "no release %s in this organization", r.ReleaseID)
		} else if err != nil {
			return err
		}
		r.ProductID = rel.ProductID
		if fresh && r.TargetGroupID != "" {
			if _, err := tx.GroupByID(ctx, r.OrgID, r.TargetGroupID); problem.Is(err, problem.KindNotFound) {
				return problem.InvalidField("target_group_id", "no group %s in this organization", r.TargetGroupID)
			}
		}
		if l, err = s.prepare(ctx, tx, r); err != nil {
			return err
		}
		prod, err = tx.ProductByID(ctx, r.OrgID, r.ProductID)
		return err
	})
	if err != nil {
		return Plan{}, err
	}
	cond, err := s.targetCond(ctx, r)
	if err != nil {
		return Plan{}, err
	}
	installed := map[string]*release.Release{}
	var devs []plan.Device
	after := ""
	const page = 500
	for {
		var batch []inventory.Device
		err := s.store.Read(ctx, func(tx Tx) error {
			var err error
			if batch, err = tx.TargetDevices(ctx, r.OrgID, r.ProductID, cond, after, page); err != nil {
				return err
			}
			for _, d := range batch {
				if _, seen := installed[d.InstalledVersion]; seen || d.InstalledVersion == "" {
					continue
				}
				rel, err := tx.ReleaseByVersion(ctx, r.OrgID, r.ProductID, d.InstalledVersion)
				if err == nil {
					installed[d.InstalledVersion] = &rel
				} else if problem.Is(err, problem.KindNotFound) {
					installed[d.InstalledVersion] = nil
				} else {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return Plan{}, err
		}
		for _, d := range batch {
			if d.InstalledVersion == l.release.Version {
				continue // already there
			}
			pd := plan.Device{Link: d.State.Link, Metered: d.State.Metered, BatteryPowered: prod.BatteryPowered,
				BatteryPercent: d.State.BatteryPercent, FullBytes: l.fullBytes}
			if pd.Link == "" {
				pd.Link = prod.LinkClass
			}
			if artifact, n := l.sends(installed[d.InstalledVersion]); artifact == release.KindDelta {
				pd.DeltaBytes = n
			}
			devs = append(devs, pd)
		}
		if len(batch) < page {
			break
		}
		after = batch[len(batch)-1].ID
	}
	in := plan.Input{Devices: devs, Wakeups: r.Urgency == UrgencyImmediate && s.waker != nil, InstallTime: planInstallTime,
		SuccessRatio: r.SuccessRatio, PollInterval: s.pollInterval()}
	for i, ph := range r.Phases {
		rr := r
		rr.Phase, rr.PhaseStartedAt, rr.Deadline = i, time.Time{}, nil
		in.Phases = append(in.Phases, plan.Phase{Percent: ph.Percent, MinDuration: EffectiveSoak(rr, time.Time{})})
	}
	res, err := plan.Estimate(in)
	if err != nil {
		return Plan{}, err
	}
	return planOf(res, in), nil
}

func (s *Service) pollInterval() time.Duration {
	if s.poll > 0 {
		return s.poll
	}
	return DefaultPollInterval
}

func planOf(res plan.Result, in plan.Input) Plan {
	sec := func(d time.Duration) float64 { return d.Seconds() }
	p := Plan{Devices: res.Devices, DevicesDelta: res.DevicesDelta, DevicesFull: res.DevicesFull, TotalBytes: res.TotalBytes,
		DeltaBytes: res.DeltaBytes, FullBytes: res.FullBytes, SavedBytes: res.SavedBytes, MeteredBytes: res.MeteredBytes,
		EnergyJoules: res.EnergyJ, Reached95: res.Reached95, TimeTo95Seconds: sec(res.TimeTo95), TimeTo50Seconds: sec(res.TimeTo50),
		TimeToAllSeconds: sec(res.TimeToAll), PollIntervalSeconds: sec(in.PollInterval), Wakeups: in.Wakeups,
		PerLink: map[string]LinkPlan{}, Phases: []PhasePlan{}}
	for name, l := range res.PerLink {
		p.PerLink[name] = LinkPlan{Devices: l.Devices, DevicesDelta: l.DevicesDelta, Bytes: l.Bytes, RadioSeconds: sec(l.RadioTime),
			RadioP50Seconds: sec(l.RadioTimeP50), RadioP95Seconds: sec(l.RadioTimeP95), DownloadP50Seconds: sec(l.DownloadTimeP50),
			DownloadP95Seconds: sec(l.DownloadTimeP95), EnergyJoules: l.EnergyJ, BatteryDevices: l.BatteryDevices,
			BatterySharePctMean: l.BatterySharePctMean, BatterySharePctMax: l.BatterySharePctMax, BatteryShort: l.BatteryShort}
	}
	for _, ph := range res.PhaseTimeline {
		p.Phases = append(p.Phases, PhasePlan{Percent: ph.Percent, Devices: ph.Devices, StartSeconds: sec(ph.Start),
			DoneSeconds: sec(ph.Done), AllDoneSeconds: sec(ph.AllDone)})
	}
	return p
}
