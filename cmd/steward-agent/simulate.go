package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/steward-iot/steward/agent/simulator"
)

func newSimulateCmd() *cobra.Command {
	var (
		cfg                           simulator.Config
		hardwareIDs, versions, linkCs []string
		asJSON                        bool
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
	return cmd
}
