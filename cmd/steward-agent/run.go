package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/steward-iot/steward/agent/client"
	"github.com/steward-iot/steward/agent/identity"
	"github.com/steward-iot/steward/agent/proto"
	"github.com/steward-iot/steward/agent/runner"
	"github.com/steward-iot/steward/agent/wake"
)

const (
	serverEnv = "STEWARD_AGENT_SERVER"
	tokenEnv  = "STEWARD_AGENT_ENROLL_TOKEN"
)

// exitRefused is the exit status when the server refuses the device for
// good, so that a service manager can stop restarting the agent
// (systemd: RestartPreventExitStatus=3).
const exitRefused = 3

// machineIDFile is read for a default serial; tests point it elsewhere.
var machineIDFile = "/etc/machine-id"

func newRunCmd() *cobra.Command {
	var (
		server, state, alg                     string
		token, tokenFile, org, hardwareID      string
		serial, ver, verFile, components, link string
		window                                 string
		metered                                bool
		upd                                    updateFlags
		mqtt                                   wake.Config
		busyFile                               string
		memLimitMiB                            int64
	)
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Enroll the device and check in with the server until stopped",
		Long: `Enroll the device with the Steward server (once), then check in at the
interval the server asks for, reporting the installed version and components
and the device's state (battery from /sys/class/power_supply, link, free
storage in the state directory). Failures are retried with exponential
backoff. SIGINT or SIGTERM stop it cleanly.

Enrollment needs --hardware-id and an enrollment token (the device is active
at once) or --org (it waits until an operator accepts it). Prefer passing the
token in $` + tokenEnv + ` or --enroll-token-file: a --enroll-token
flag is visible to every user in the process list. Once enrolled, the device
needs neither.

--serial defaults to a hash of /etc/machine-id (the raw id must not leave the
machine), else to the start of the key id.

--server and --state default to $` + serverEnv + ` and $` + stateEnv + `.

Exits with status 3 when the server refuses the device (rejected or revoked):
restarting will not help until an operator acts.

Updates: with --installer the agent installs what the server assigns. It
refreshes the director and the image repository (TUF, from the roots given by
--director-root and --image-root, the files the device was provisioned with),
installs only what both sign alike, downloads resumably (through a delta when
one applies), writes the inactive slot, reboots into it on trial, runs
--health-check, and commits or lets the bootloader go back. Every step is
reported to the server. Installers:

  ab-dir       A/B slots as directories under --slots, with an emulated
               U-Boot-style bootloader (each agent start counts as a boot);
               --factory-image provisions slot a on first start
  single-slot  one image under --slots, replaced by the emulated bootloader
               from a verified staging copy; no way back after the boot
  ab-hooks     A/B on a real bootloader through the vendor's hook programs in
               --hooks (state, write, arm, commit, rollback, reboot)
  script       application updates through one --script program
               (install, needs-reboot, reboot, commit, rollback)

See docs/agent.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			server = firstSet(server, os.Getenv(serverEnv))
			state = firstSet(state, os.Getenv(stateEnv))
			if server == "" || state == "" {
				return fmt.Errorf("--server and --state are required (or set %s and %s)", serverEnv, stateEnv)
			}
			token, err := enrollmentToken(token, tokenFile)
			if err != nil {
				return err
			}
			if ver == "" && verFile == "" {
				return errors.New("--version or --version-file is required")
			}
			updates, err := upd.build(state, hardwareID, org, ver, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if mqtt.Enabled() && org == "" {
				return errors.New("--mqtt-url needs --org: wake-up topics name the organization")
			}
			if err := mqtt.LoadPassword(wake.PasswordEnv, os.Getenv); err != nil {
				return fmt.Errorf("--mqtt-password-file: %w", err)
			}
			if os.Getenv("GOMEMLIMIT") == "" && memLimitMiB > 0 {
				// A soft limit: the GC works harder near it instead of
				// letting the heap double, which keeps a delta apply
				// within small devices' memory.
				debug.SetMemoryLimit(memLimitMiB << 20)
			}
			var busy func() bool
			if busyFile != "" {
				busy = func() bool { _, err := os.Stat(busyFile); return err == nil }
			}
			if !slices.Contains(links, link) {
				return fmt.Errorf("--link %q: want one of %s", link, strings.Join(links, ", "))
			}
			if !cmd.Flags().Changed("metered") {
				metered = runner.MeteredLink(link)
			}
			if serial == "" {
				serial = machineSerial()
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runner.Run(ctx, runner.Config{
				ServerURL: server,
				StateDir:  state,
				Algorithm: identity.Algorithm(alg),
				Enroll:    client.EnrollParams{Org: org, HardwareID: hardwareID, Serial: serial, EnrollmentToken: token},
				Reporter: &runner.FileReporter{
					Version: ver, VersionFile: verFile, ComponentsFile: components,
					Link: link, Metered: metered, MaintenanceWindow: window, StorageDir: state,
				},
				Updates:   updates,
				Wake:      mqtt,
				WakeOrg:   org,
				Busy:      busy,
				UserAgent: fmt.Sprintf("steward-agent/%s", version),
				Logger:    slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil)),
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&server, "server", "", "Steward server `URL` (default $"+serverEnv+")")
	f.StringVar(&state, "state", "", "state `DIR` holding the device key and agent state (default $"+stateEnv+")")
	f.StringVar(&alg, "algorithm", string(identity.Ed25519), "algorithm of a new device key, ed25519 or ecdsa-p256")
	f.StringVar(&token, "enroll-token", "", "enrollment `TOKEN` (default $"+tokenEnv+"; prefer that or --enroll-token-file)")
	f.StringVar(&tokenFile, "enroll-token-file", "", "`FILE` holding the enrollment token")
	f.StringVar(&org, "org", "", "`SLUG` of the organization to enroll into, for enrollment without a token")
	f.StringVar(&hardwareID, "hardware-id", "", "the product's hardware `ID`, e.g. gw-100-rev-b")
	f.StringVar(&serial, "serial", "", "the device's serial number (default: from /etc/machine-id or the key id)")
	f.StringVar(&ver, "version", "", "installed release `VERSION`")
	f.StringVar(&verFile, "version-file", "", "`FILE` holding the installed release version, reread at each check-in")
	f.StringVar(&components, "components", "", "`FILE` with a JSON array of installed components: [{\"purl\": ..., \"version\": ...}]")
	f.StringVar(&link, "link", proto.LinkEthernet, "network link: "+strings.Join(links, ", "))
	f.BoolVar(&metered, "metered", false, "the link is paid by volume (default: true for cellular, nb-iot and lora)")
	f.StringVar(&window, "maintenance-window", "", `local maintenance window, e.g. "02:00-04:00 Europe/Berlin"`)
	upd.register(f)
	f.StringVar(&mqtt.URL, "mqtt-url", "", "MQTT broker `URL` to receive wake-ups from (immediate rollouts), e.g. mqtts://broker:8883")
	f.StringVar(&mqtt.Username, "mqtt-username", "", "MQTT user name (the device id, with the documented broker ACL)")
	f.StringVar(&mqtt.PasswordFile, "mqtt-password-file", "", "`FILE` holding the MQTT password (or env "+wake.PasswordEnv+")")
	f.StringVar(&mqtt.CAFile, "mqtt-ca-file", "", "PEM `FILE` of the CA that signed the broker's certificate")
	f.StringVar(&mqtt.TopicPrefix, "mqtt-topic-prefix", "steward", "first level of wake-up topics, as the server's")
	f.Int64Var(&memLimitMiB, "memory-limit-mib", 8, "soft limit of the Go heap in MiB (0: Go's default; env GOMEMLIMIT wins)")
	f.StringVar(&busyFile, "busy-file", "", "while this `FILE` exists, soft updates are only downloaded, not installed, until their deadline")
	return cmd
}

var links = []string{proto.LinkEthernet, proto.LinkWiFi, proto.LinkCellular, proto.LinkNBIoT, proto.LinkLoRa}

// firstSet returns the first non-empty string.
func firstSet(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// enrollmentToken returns the token from --enroll-token-file,
// --enroll-token or the environment, in that order of preference.
func enrollmentToken(flag, file string) (string, error) {
	if flag != "" && file != "" {
		return "", errors.New("use either --enroll-token or --enroll-token-file, not both")
	}
	if file == "" {
		return firstSet(flag, os.Getenv(tokenEnv)), nil
	}
	f, err := os.Open(file)
	if err != nil {
		return "", fmt.Errorf("--enroll-token-file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 4<<10))
	if err != nil {
		return "", fmt.Errorf("--enroll-token-file: %w", err)
	}
	t := strings.TrimSpace(string(b))
	if t == "" {
		return "", fmt.Errorf("--enroll-token-file: %s is empty", file)
	}
	return t, nil
}

// machineSerial derives a serial from the systemd machine id, or returns
// "" without one. machine-id(5) asks not to expose the id itself on the
// network but a keyed hash of it, as sd_id128_get_machine_app_specific
// does.
func machineSerial() string {
	b, err := os.ReadFile(machineIDFile)
	id := strings.TrimSpace(string(b))
	if err != nil || id == "" {
		return ""
	}
	mac := hmac.New(sha256.New, []byte(id))
	mac.Write([]byte("steward-agent serial"))
	return hex.EncodeToString(mac.Sum(nil))[:32]
}

// exitCode maps an error of the command to the process exit status.
func exitCode(err error) int {
	if errors.Is(err, runner.ErrRefused) {
		return exitRefused
	}
	return 1
}
