package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/steward-iot/steward/agent/simulator"
)

func newSimulateCmd() *cobra.Command {
	var (
		cfg                           simulator.Config
		hardwareIDs, versions, linkCs []string
		asJSON                        bool
		upd                           simUpdateFlags
	)
	cmd := &cobra.Command{
		Use:   "simulate",
		Short: "Run a fleet of virtual devices against a server, for load tests",
		Long: `Run --devices virtual devices in this process. Each has its own in-memory
Ed25519 key and serial, enrolls (at most --enroll-rate per second, retried on
failure) and checks in at the server's interval, or every --interval-override
for load tests (a tiny override checks in as fast as possible, up to
--max-rate check-ins per second over all devices).

--hardware-ids, --versions and --links are spread over the devices; give
weights as VALUE=WEIGHT, e.g. --versions 2.3.0=3,2.4.0=1. Cellular, nb-iot
and lora links report metered. --battery-share of the devices run on a
battery that drains and recharges. Every --churn-period, --offline-churn of
the devices goes offline for one to two periods.

At most --concurrency requests are in flight, over as many connections. A
summary line goes to stderr every --report-every; the final summary to
stdout, as JSON with --json.

Updates: with --director-root and --image-root (the roots devices are
provisioned with; --org names the organization, whose image repository is
/tuf/<org>), a device whose check-in answers "update" runs the agent's own
update code: TUF refresh of the director and the image repository, the
agreement check, the resumable download (a delta when it runs the delta's
precursor), install into a simulated A/B slot, trial boot, health check,
commit or rollback, with status reports to the server. At most
--update-concurrency devices update at once; the others wait their turn
while check-ins go on. Each updating device has a state directory under
--work-dir only until its update ends.

  --install-failure-rate P   probability that an install fails (reported
                             install-failed)
  --health-failure-rate P    probability that the new image fails its health
                             checks: it is rebooted --max-boots times, then
                             the bootloader goes back (reported rolled-back)
  --image VERSION=FILE       the image of a version devices run (repeatable);
                             devices on it can use deltas, the others get
                             full images
  --seed N                   seeds the injected failures and link losses, so
                             a run can be repeated

Update traffic (metadata, images, status reports) crosses a simulated link
of the device's class; check-ins are not slowed, so that they measure the
server. Defaults, each overridable with --link-profile
CLASS=BANDWIDTH,LATENCY,LOSS (repeatable; an empty field keeps the default):

` + linkDefaultsHelp() + `
Bandwidth is per device, latency is waited once per request, and loss is
the probability that a request fails or its answer breaks off at a random
byte (the downloader then resumes with a Range request). --time-scale 100
runs the links 100 times faster than real time, so that slow links can be
tried quickly. The summary adds updates started, committed, rolled back and
failed by reason (as the server acknowledged them), image bytes full and
delta, the offer-to-commit time (p50, p95) and the devices on each version.

--server and --enroll-token default to $` + serverEnv + ` and $` + tokenEnv + `.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg.ServerURL = firstSet(cfg.ServerURL, os.Getenv(serverEnv))
			cfg.EnrollmentToken = firstSet(cfg.EnrollmentToken, os.Getenv(tokenEnv))
			var err error
			for _, c := range []struct {
				flag  string
				items []string
				dst   *[]simulator.Choice
			}{{"--hardware-ids", hardwareIDs, &cfg.HardwareIDs}, {"--versions", versions, &cfg.Versions}, {"--links", linkCs, &cfg.Links}} {
				if *c.dst, err = simulator.ParseChoices(c.items); err != nil {
					return fmt.Errorf("%s: %w", c.flag, err)
				}
			}
			if cfg.Updates, err = upd.build(); err != nil {
				return err
			}
			cfg.Out = cmd.ErrOrStderr()
			sim, err := simulator.New(cfg)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			runErr := sim.Run(ctx)
			st := sim.Stats()
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				err = enc.Encode(st)
			} else {
				_, err = fmt.Fprintln(out, st)
			}
			if runErr != nil {
				return runErr
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.ServerURL, "server", "", "Steward server `URL` (default $"+serverEnv+")")
	f.IntVar(&cfg.Devices, "devices", 100, "number of virtual devices")
	f.StringVar(&cfg.EnrollmentToken, "enroll-token", "", "enrollment `TOKEN` (default $"+tokenEnv+")")
	f.StringVar(&cfg.Org, "org", "", "`SLUG` of the organization to enroll into")
	f.StringSliceVar(&hardwareIDs, "hardware-ids", []string{"sim-device"}, "hardware ids, optionally weighted: gw-100=3,sensor-7")
	f.StringSliceVar(&versions, "versions", []string{"1.0.0"}, "installed versions, optionally weighted: 2.3.0=3,2.4.0")
	f.StringSliceVar(&linkCs, "links", []string{"wifi"}, "links, optionally weighted: wifi,cellular,nb-iot")
	f.Float64Var(&cfg.BatteryShare, "battery-share", 0, "fraction of devices on battery")
	f.Float64Var(&cfg.OfflineChurn, "offline-churn", 0, "fraction of devices going offline each churn period")
	f.DurationVar(&cfg.ChurnPeriod, "churn-period", 10*time.Second, "period of offline churn")
	f.DurationVar(&cfg.Duration, "duration", time.Minute, "how long to run; 0 until interrupted")
	f.Float64Var(&cfg.MaxRate, "max-rate", 0, "cap on check-ins per second over all devices; 0 for none")
	f.DurationVar(&cfg.IntervalOverride, "interval-override", 0, "check-in interval instead of the server's; 0 for the server's")
	f.Float64Var(&cfg.EnrollRate, "enroll-rate", 200, "cap on enrollments per second; 0 for none")
	f.DurationVar(&cfg.ReportEvery, "report-every", 10*time.Second, "interval of summary lines on stderr; 0 for none")
	f.IntVar(&cfg.Concurrency, "concurrency", 64, "requests in flight at most")
	f.BoolVar(&asJSON, "json", false, "print the final summary as JSON")
	upd.register(f)
	return cmd
}

// simUpdateFlags configure the simulated fleet's updates.
type simUpdateFlags struct {
	directorRoot, imageRoot, workDir string
	images, links                    []string
	installFail, healthFail          float64
	timeScale                        float64
	concurrency, maxBoots            int
	seed                             uint64
}

func (u *simUpdateFlags) register(f *pflag.FlagSet) {
	f.StringVar(&u.directorRoot, "director-root", "", "the director's root metadata `FILE` devices are provisioned with (enables updates)")
	f.StringVar(&u.imageRoot, "image-root", "", "the image repository's 1.root.json `FILE` devices are provisioned with (enables updates)")
	f.StringArrayVar(&u.images, "image", nil, "the image of a version devices run, as `VERSION=FILE`, for deltas (repeatable)")
	f.Float64Var(&u.installFail, "install-failure-rate", 0, "probability that an install fails")
	f.Float64Var(&u.healthFail, "health-failure-rate", 0, "probability that a new image fails its health checks and is rolled back")
	f.IntVar(&u.maxBoots, "max-boots", 3, "trial boots a new image gets before the bootloader goes back")
	f.StringArrayVar(&u.links, "link-profile", nil, "a link class's profile, as `CLASS=BANDWIDTH,LATENCY,LOSS`, e.g. cellular=1Mbit/s,120ms,2% (repeatable)")
	f.Float64Var(&u.timeScale, "time-scale", 1, "run the simulated links this many times faster than real time")
	f.IntVar(&u.concurrency, "update-concurrency", 64, "devices updating at once at most")
	f.StringVar(&u.workDir, "work-dir", "", "`DIR` for the state of updating devices (default: a temporary directory)")
	f.Uint64Var(&u.seed, "seed", 1, "seed of the injected failures and link losses")
}

// build returns the simulator's update config, or nil without the roots.
func (u *simUpdateFlags) build() (*simulator.UpdateConfig, error) {
	if u.directorRoot == "" && u.imageRoot == "" {
		if len(u.images) > 0 || len(u.links) > 0 || u.installFail != 0 || u.healthFail != 0 {
			return nil, errors.New("--image, --link-profile and the failure rates simulate updates, which need --director-root and --image-root")
		}
		return nil, nil
	}
	if u.directorRoot == "" || u.imageRoot == "" {
		return nil, errors.New("updates need both --director-root and --image-root: the trusted roots devices are provisioned with")
	}
	if !(u.timeScale > 0) {
		return nil, fmt.Errorf("--time-scale %v: must be positive (100 runs the links 100 times faster)", u.timeScale)
	}
	if u.concurrency <= 0 || u.maxBoots <= 0 {
		return nil, errors.New("--update-concurrency and --max-boots must be positive")
	}
	cfg := &simulator.UpdateConfig{InstallFailureRate: u.installFail, HealthFailureRate: u.healthFail,
		MaxAttempts: u.maxBoots, TimeScale: u.timeScale, Concurrency: u.concurrency, WorkDir: u.workDir, Seed: u.seed,
		Images: map[string]string{}, Links: map[string]simulator.LinkProfile{}}
	var err error
	if cfg.DirectorRoot, err = os.ReadFile(u.directorRoot); err != nil {
		return nil, fmt.Errorf("--director-root: %w", err)
	}
	if cfg.ImageRoot, err = os.ReadFile(u.imageRoot); err != nil {
		return nil, fmt.Errorf("--image-root: %w", err)
	}
	for _, it := range u.images {
		version, file, ok := strings.Cut(it, "=")
		if !ok || version == "" || file == "" {
			return nil, fmt.Errorf("--image %q: want VERSION=FILE", it)
		}
		if _, dup := cfg.Images[version]; dup {
			return nil, fmt.Errorf("--image: version %s given twice", version)
		}
		cfg.Images[version] = file
	}
	defaults := simulator.DefaultLinkProfiles()
	for _, it := range u.links {
		class, p, err := simulator.ParseLinkProfile(it, func(class string) simulator.LinkProfile {
			if p, ok := cfg.Links[class]; ok {
				return p // a later flag refines an earlier one
			}
			return defaults[class]
		})
		if err != nil {
			return nil, fmt.Errorf("--link-profile %w", err)
		}
		cfg.Links[class] = p
	}
	return cfg, nil
}

// linkDefaultsHelp lists the default link profiles for the help text.
func linkDefaultsHelp() string {
	var b strings.Builder
	defaults := simulator.DefaultLinkProfiles()
	for _, class := range slices.Sorted(maps.Keys(defaults)) {
		fmt.Fprintf(&b, "  %-9s %s\n", class, defaults[class])
	}
	return b.String()
}
