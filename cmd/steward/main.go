// Command steward is the Steward server: `steward serve` runs every HTTP
// endpoint and the scheduler; `migrate`, `audit verify` and `admin-token`
// act on the database directly; `ctl` is the admin CLI over the API;
// `keys` makes and uses offline TUF keys without any server.
package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/steward-iot/steward/internal/audit"
	"github.com/steward-iot/steward/internal/config"
	"github.com/steward-iot/steward/internal/ctl"
	"github.com/steward-iot/steward/internal/inventory"
	"github.com/steward-iot/steward/internal/keys"
	"github.com/steward-iot/steward/internal/notify"
	"github.com/steward-iot/steward/internal/server"
	"github.com/steward-iot/steward/internal/store"
	"github.com/steward-iot/steward/internal/tenancy"
	"github.com/steward-iot/steward/internal/vuln"
	"github.com/steward-iot/steward/internal/wake"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRoot().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "steward",
		Short:         "Keep IoT fleets patched and safe for their whole life",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version,
	}
	root.PersistentFlags().String("config", "", "YAML config file whose keys are flag names (env STEWARD_CONFIG)")
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		return config.Bind(cmd, os.Getenv)
	}
	// ctl reads only its own variables (STEWARD_SERVER, STEWARD_TOKEN,
	// STEWARD_TOKEN_FILE): binding every flag to env would let a stray
	// STEWARD_ROLE or STEWARD_NAME silently change what a command does.
	ctlCmd := ctl.Command()
	ctlCmd.PersistentPreRunE = func(*cobra.Command, []string) error { return nil }
	root.AddCommand(serveCmd(), migrateCmd(), auditCmd(), adminTokenCmd(), ctlCmd, keys.Command())
	return root
}

// storeFlags are the flags every command that opens the database takes.
type storeFlags struct {
	data string
	db   string
}

func (f *storeFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.data, "data", "./steward-data", "folder for the embedded SQLite database, blobs and admin.token (env STEWARD_DATA)")
	cmd.Flags().StringVar(&f.db, "db", "", "PostgreSQL DSN postgres://… instead of SQLite; prefer env STEWARD_DB, since flags show in ps")
}

func (f *storeFlags) config() server.Config {
	return server.Config{Data: f.data, DB: f.db, Version: version}
}

func newLogger(format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: use debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: use text or json", format)
}

func serveCmd() *cobra.Command {
	var (
		sf                  storeFlags
		addr, org, public   string
		logFormat, logLevel string
		shutdown            time.Duration
		checkin             inventory.CheckinConfig
		demo                bool
		demoDevices         int
		disclosureOrg       string
		contacts            []string
		notes               notify.Config
		policyFile          string
		rolloutInterval     time.Duration
		mqtt                wake.Config
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the Steward server (admin API, device API, scheduler)",
		Long: "Run the Steward server. With no flags it uses the embedded default: a SQLite database and a blob folder in ./steward-data.\n" +
			"On an empty store it creates the first organization and writes an admin API token to <data>/admin.token.\n" +
			"Every flag can also be set by env STEWARD_<FLAG> (e.g. STEWARD_ADDR) or a --config YAML file.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(logFormat, logLevel)
			if err != nil {
				return err
			}
			cfg := sf.config()
			cfg.Addr, cfg.BootstrapOrg, cfg.ShutdownTimeout, cfg.Checkin = addr, org, shutdown, checkin
			cfg.PublicURL = public
			cfg.DisclosureOrg, cfg.SecurityContacts, cfg.Notify = disclosureOrg, contacts, notes
			cfg.RolloutInterval = rolloutInterval
			if err := mqtt.LoadPassword(wake.PasswordEnv, os.Getenv); err != nil {
				return fmt.Errorf("--mqtt-password-file: %w", err)
			}
			cfg.Wake = mqtt
			if policyFile != "" {
				if cfg.VulnPolicy, err = readPolicy(policyFile); err != nil {
					return err
				}
			}
			if demo {
				cfg.Demo = demoDevices
				// A demo should look alive: devices report every 30 s
				// unless told otherwise.
				if !cmd.Flags().Changed("checkin-interval") {
					cfg.Checkin.Interval = 30 * time.Second
				}
			}
			return server.Run(cmd.Context(), cfg, log)
		},
	}
	sf.add(cmd)
	cmd.Flags().StringVar(&addr, "addr", "127.0.0.1:8080", "listen address")
	cmd.Flags().StringVar(&public, "public-url", "", "the URL devices and people reach this server at, e.g. https://updates.example.com (default: http://ADDR)")
	cmd.Flags().StringVar(&policyFile, "vuln-policy", "", "YAML file with the vulnerability SLA and escalation policy (fields it leaves out keep their defaults; see docs/vulnerabilities.md)")
	cmd.Flags().StringVar(&disclosureOrg, "disclosure-org", "", "slug of the vendor organization whose security.txt, report form and CSAF advisories are public (default: the instance organization)")
	cmd.Flags().StringSliceVar(&contacts, "security-contact", nil, "a further security.txt Contact URI, e.g. mailto:security@example.com (repeatable)")
	cmd.Flags().StringVar(&notes.SMTP.Addr, "smtp-addr", "", "SMTP relay host:port for email notifications (password from env "+notify.PasswordEnv+" or --smtp-password-file)")
	cmd.Flags().StringVar(&notes.SMTP.From, "smtp-from", "", "sender address of notification email")
	cmd.Flags().StringVar(&notes.SMTP.Username, "smtp-username", "", "SMTP AUTH user name")
	cmd.Flags().StringVar(&notes.SMTP.PasswordFile, "smtp-password-file", "", "file holding the SMTP AUTH password")
	cmd.Flags().BoolVar(&notes.SMTP.ImplicitTLS, "smtp-implicit-tls", false, "connect to the relay with TLS at once (port 465) instead of STARTTLS")
	cmd.Flags().BoolVar(&notes.AllowPrivateNetworks, "webhooks-allow-private", false, "let webhooks reach loopback and private addresses (labs only)")
	cmd.Flags().BoolVar(&notes.AllowInsecureURLs, "webhooks-allow-http", false, "let webhooks use plain http (labs only)")
	cmd.Flags().DurationVar(&rolloutInterval, "rollout-interval", 10*time.Second, "how often the elected scheduler moves rollouts on (phases, thresholds, timeouts)")
	cmd.Flags().StringVar(&mqtt.URL, "mqtt-url", "", "MQTT broker for wake-ups of immediate rollouts, e.g. mqtts://broker:8883 (default: none; devices poll)")
	cmd.Flags().StringVar(&mqtt.Username, "mqtt-username", "", "MQTT user name")
	cmd.Flags().StringVar(&mqtt.PasswordFile, "mqtt-password-file", "", "file holding the MQTT password (or env "+wake.PasswordEnv+")")
	cmd.Flags().StringVar(&mqtt.CAFile, "mqtt-ca-file", "", "PEM file of the CA that signed the broker's certificate")
	cmd.Flags().StringVar(&mqtt.TopicPrefix, "mqtt-topic-prefix", "steward", "first level of wake-up topics; agents must use the same")
	cmd.Flags().StringVar(&org, "bootstrap-org", "steward", "slug of the organization created on an empty store")
	cmd.Flags().StringVar(&logFormat, "log-format", "text", "log format: text or json")
	cmd.Flags().StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	cmd.Flags().DurationVar(&shutdown, "shutdown-timeout", 20*time.Second, "how long SIGTERM waits for in-flight requests")
	cmd.Flags().BoolVar(&demo, "demo", false, "seed demo products and run a simulated fleet against this server")
	cmd.Flags().IntVar(&demoDevices, "demo-devices", 200, "size of the --demo fleet")
	cmd.Flags().DurationVar(&checkin.Interval, "checkin-interval", 5*time.Minute, "base interval between a device's check-ins")
	cmd.Flags().Float64Var(&checkin.MaxRate, "checkin-max-rate", 500, "fleet-wide check-ins per second the server aims to stay under; intervals stretch to fit")
	return cmd
}

func migrateCmd() *cobra.Command {
	var sf storeFlags
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Apply the embedded database migrations (serve also does this at start)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, _ := newLogger("text", "info")
			cfg := sf.config()
			if cfg.DB == "" {
				if err := os.MkdirAll(cfg.Data, 0o700); err != nil {
					return err
				}
			}
			db, err := server.OpenStore(cmd.Context(), cfg, log)
			if err != nil {
				return err
			}
			defer db.Close()
			fmt.Fprintf(cmd.OutOrStdout(), "database schema is at version %d\n", store.SchemaVersion())
			return nil
		},
	}
	sf.add(cmd)
	return cmd
}

// openExisting opens a database that must already exist, without migrating
// it: verification must not change what it verifies.
func openExisting(ctx context.Context, sf storeFlags) (*store.DB, error) {
	cfg := sf.config()
	if cfg.DB == "" {
		if _, err := os.Stat(cfg.DSN()); err != nil {
			return nil, fmt.Errorf("no Steward database at %s: pass --data DIR or --db postgres://…", cfg.DSN())
		}
	}
	return store.Open(ctx, cfg.DSN(), store.Options{})
}

func auditCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Work with the audit log directly in the database"}
	var sf storeFlags
	verify := &cobra.Command{
		Use:   "verify",
		Short: "Recompute every audit hash chain and name the first broken link",
		Long: "Recompute every organization's audit hash chain from the database and report the first broken link of each.\n" +
			"Exit status 0: intact; 1: broken or unreadable. Record the printed head hashes elsewhere: a later verify\n" +
			"that shows different heads for the same sequence numbers means the log was rewritten wholesale.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			db, err := openExisting(cmd.Context(), sf)
			if err != nil {
				return err
			}
			defer db.Close()
			res, err := audit.Verify(cmd.Context(), db.Audit())
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			var heads []audit.Head
			if err := db.Audit().Read(cmd.Context(), func(tx audit.Tx) error {
				heads, err = tx.AuditHeads(cmd.Context())
				return err
			}); err != nil {
				return err
			}
			for _, h := range heads {
				org := h.OrgID
				if org == "" {
					org = "(instance)"
				}
				fmt.Fprintf(out, "chain %s: %d events, head %s\n", org, h.Seq, h.Hash)
			}
			if len(res.Breaks) > 0 {
				for _, b := range res.Breaks {
					fmt.Fprintf(out, "BROKEN: %s\n", b)
				}
				return errors.New("the audit log was tampered with or damaged: see BROKEN lines")
			}
			fmt.Fprintf(out, "ok: %d chains, %d events, every link verified\n", res.Chains, res.Events)
			if res.Pending > 0 {
				fmt.Fprintf(out, "%d recorded device events await chaining; a running server seals them within a second\n", res.Pending)
			}
			return nil
		},
	}
	sf.add(verify)
	cmd.AddCommand(verify)
	return cmd
}

func adminTokenCmd() *cobra.Command {
	var (
		sf        storeFlags
		org, name string
	)
	cmd := &cobra.Command{
		Use:   "admin-token",
		Short: "Issue a new admin API token directly in the database (break-glass; audited)",
		Long: "Issue a new admin token for an organization by writing to the database directly, for when no admin token is left.\n" +
			"Whoever can run this already holds the database; the audit log records it as a system action. The secret is printed once.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			db, err := openExisting(cmd.Context(), sf)
			if err != nil {
				return err
			}
			defer db.Close()
			tok, err := tenancy.NewService(db.Tenancy(), nil).IssueAdminToken(cmd.Context(), org, name)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), tok.Secret)
			fmt.Fprintf(cmd.ErrOrStderr(), "issued admin token %s for org %s, expires %s\n", tok.ID, org, tok.ExpiresAt.Format(time.RFC3339))
			return nil
		},
	}
	sf.add(cmd)
	cmd.Flags().StringVar(&org, "org", "steward", "organization slug")
	cmd.Flags().StringVar(&name, "name", "break-glass admin", "token name")
	return cmd
}

// readPolicy reads a vulnerability policy over the defaults.
func readPolicy(path string) (*vuln.Policy, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	p := vuln.DefaultPolicy()
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&p); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("vulnerability policy %s: %w", path, err)
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("vulnerability policy %s: %w", path, err)
	}
	return &p, nil
}
