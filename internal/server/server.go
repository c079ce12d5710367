// Package server assembles a running Steward: it opens the store and blob
// folder, applies migrations, bootstraps an empty installation, and serves
// the HTTP endpoints until its context ends, then shuts down gracefully.
package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/steward-iot/steward/agent/atomicfile"
	"github.com/steward-iot/steward/internal/api"
	"github.com/steward-iot/steward/internal/audit"
	"github.com/steward-iot/steward/internal/blob"
	"github.com/steward-iot/steward/internal/clock"
	"github.com/steward-iot/steward/internal/deviceapi"
	"github.com/steward-iot/steward/internal/idempotency"
	"github.com/steward-iot/steward/internal/identity"
	"github.com/steward-iot/steward/internal/inventory"
	"github.com/steward-iot/steward/internal/notify"
	"github.com/steward-iot/steward/internal/release"
	"github.com/steward-iot/steward/internal/rollout"
	"github.com/steward-iot/steward/internal/store"
	"github.com/steward-iot/steward/internal/suit"
	"github.com/steward-iot/steward/internal/tenancy"
	"github.com/steward-iot/steward/internal/trust"
	"github.com/steward-iot/steward/internal/vuln"
	"github.com/steward-iot/steward/internal/wake"
)

// Config is what `steward serve` is told.
type Config struct {
	Addr string // listen address
	Data string // folder for the SQLite database, blobs and admin.token
	// DB, when set, is a PostgreSQL DSN used instead of the SQLite file.
	DB           string
	BootstrapOrg string // slug of the first organization
	Version      string
	// ShutdownTimeout bounds the graceful drain on SIGTERM.
	ShutdownTimeout time.Duration
	Clock           clock.Clock
	// Checkin paces device check-ins.
	Checkin inventory.CheckinConfig
	// MaxArtifact bounds one uploaded artifact (bytes; default 4 GiB).
	MaxArtifact int64
	// PublicURL is where devices and people reach this server (SUIT URIs,
	// security.txt, CSAF provider metadata); default http://Addr.
	PublicURL string
	// DisclosureOrg is the slug of the vendor organization whose
	// security.txt, report form and CSAF advisories are public (default:
	// the instance organization).
	DisclosureOrg string
	// SecurityContacts are further security.txt Contact URIs (mailto:…).
	SecurityContacts []string
	// Notify configures webhook and email delivery (SMTP relay).
	Notify notify.Config
	// VulnPolicy sets SLA clocks, escalation and risk acceptance limits;
	// nil means vuln.DefaultPolicy.
	VulnPolicy *vuln.Policy
	// Demo, when positive, seeds demo products and runs a simulated fleet
	// of this many devices against the server.
	Demo int
	// RolloutInterval is how often the elected rollout scheduler moves
	// rollouts on (default 10s; env STEWARD_ROLLOUT_INTERVAL when unset).
	RolloutInterval time.Duration
	// Wake publishes MQTT wake-ups for immediate rollouts; an empty URL
	// sends none and devices learn of rollouts when they poll.
	Wake wake.Config
}

// rolloutInterval is the configured scheduler interval; when Config leaves
// it zero (tests building a Config), the env variable of the
// --rollout-interval flag applies, then 10 s.
func (c Config) rolloutInterval() (time.Duration, error) {
	if c.RolloutInterval > 0 {
		return c.RolloutInterval, nil
	}
	v := os.Getenv("STEWARD_ROLLOUT_INTERVAL")
	if v == "" {
		return 10 * time.Second, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 100*time.Millisecond {
		return 0, fmt.Errorf("STEWARD_ROLLOUT_INTERVAL=%q: want a duration of at least 100ms, like 10s", v)
	}
	return d, nil
}

// DSN returns the database the config selects.
func (c Config) DSN() string {
	if c.DB != "" {
		return c.DB
	}
	return filepath.Join(c.Data, "steward.db")
}

func (c Config) publicURL() string {
	if c.PublicURL != "" {
		return strings.TrimSuffix(c.PublicURL, "/")
	}
	addr := c.Addr
	if addr == "" {
		addr = "127.0.0.1:8080"
	}
	return "http://" + addr
}

func (c Config) vulnPolicy() vuln.Policy {
	if c.VulnPolicy != nil {
		return *c.VulnPolicy
	}
	return vuln.DefaultPolicy()
}

// TokenFile is where the bootstrap admin token is written.
func (c Config) TokenFile() string { return filepath.Join(c.Data, "admin.token") }

// Server is an assembled, not yet serving, Steward.
type Server struct {
	cfg       Config
	log       *slog.Logger
	db        *store.DB
	blobs     *blob.Dir
	api       *api.Server
	checkins  *inventory.Checkins
	tenancy   *tenancy.Service
	trust     *trust.Service
	inventory *inventory.Service
	identity  *identity.Service
	suit      *suit.Emitter
	vp        *vulnProcess
	vulns     *vuln.Service
	scheduler *rollout.Scheduler
	wake      wake.Publisher
}

// OpenStore opens and migrates the configured database.
func OpenStore(ctx context.Context, cfg Config, log *slog.Logger) (*store.DB, error) {
	db, err := store.Open(ctx, cfg.DSN(), store.Options{Clock: cfg.Clock})
	if err != nil {
		return nil, err
	}
	n, err := db.Migrate(ctx)
	if err != nil {
		db.Close()
		return nil, err
	}
	log.Info("database ready", "dialect", db.Dialect(), "migrations_applied", n, "schema_version", store.SchemaVersion())
	return db, nil
}

// New opens the store, migrates, bootstraps and builds the API.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Server, error) {
	if cfg.Clock == nil {
		cfg.Clock = clock.Real
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.Data, 0o700); err != nil {
		return nil, fmt.Errorf("create data folder %s: %w", cfg.Data, err)
	}
	db, err := OpenStore(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: log, db: db}
	if s.blobs, err = blob.NewDir(filepath.Join(cfg.Data, "blobs")); err != nil {
		db.Close()
		return nil, err
	}
	ten := tenancy.NewService(db.Tenancy(), cfg.Clock)
	s.tenancy = ten
	if err := s.bootstrap(ctx, ten); err != nil {
		db.Close()
		return nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for name, pool := range db.Pools() {
		reg.MustRegister(collectors.NewDBStatsCollector(pool, name))
	}
	ident, err := identity.NewService(ctx, db.Identity(), cfg.Clock)
	if err != nil {
		db.Close()
		return nil, err
	}
	s.checkins = inventory.NewCheckins(db.Inventory(), cfg.Clock, cfg.Checkin, log)
	s.identity, s.inventory = ident, inventory.NewService(db.Inventory(), cfg.Clock)
	logs := newTLogs(db, cfg.Clock)
	s.trust = trust.NewService(logs.metaStores(db.TUFMeta), db, blobTargets{s.blobs}, cfg.Clock, log)
	s.trust.SetAudit(db.Audit())
	rel := release.NewService(db.Release(), s.blobs, cfg.Clock, cfg.MaxArtifact)
	s.suit = suit.NewEmitter(db)
	rel.SetPublisher(publisher{trust: s.trust, suit: s.suit, db: db, publicURL: cfg.publicURL()})
	rel.SetTransparencyLog(logs)
	deploy := rollout.NewService(db.Rollout(), cfg.Clock)
	deploy.SetLogger(log)
	deploy.SetPollInterval(cfg.Checkin.Interval)
	deploy.SetCheckinBudget(cfg.Checkin.MaxRate)
	interval, err := cfg.rolloutInterval()
	if err != nil {
		db.Close()
		return nil, err
	}
	s.scheduler = rollout.NewScheduler(deploy, db.Elector(interval), interval, log)
	if s.wake, err = wake.Open(cfg.Wake, wake.Options{Logger: log}); err != nil {
		db.Close()
		return nil, fmt.Errorf("MQTT wake-ups: %w", err)
	}
	if cfg.Wake.Enabled() {
		deploy.SetWaker(orgWaker{pub: s.wake, db: db})
		// Give the broker a moment, so that a rollout made right after the
		// start does not find the publisher still connecting; a broker that
		// is down only costs wake-ups (devices still poll).
		if m, ok := s.wake.(*wake.MQTT); ok {
			for end := time.Now().Add(3 * time.Second); !m.Connected() && time.Now().Before(end); {
				time.Sleep(20 * time.Millisecond)
			}
			if !m.Connected() {
				log.Warn("the MQTT broker is not reachable yet; wake-ups fail until it is, devices still poll", "url", cfg.Wake.URL)
			}
		}
	}
	director := trust.NewDirector(db.DirectorRoots, db, cfg.Clock, 0, log)
	devices := deviceapi.New(ident, s.checkins, cfg.Clock, log)
	devices.SetUpdates(updates{rollout: deploy, director: director, suit: s.suit})
	devices.SetStatusRecorder(deploy)
	if s.vp, err = s.buildVulnProcess(ctx, db, ten, vulnChecker{db}); err != nil {
		db.Close()
		return nil, err
	}
	if s.vulns, err = vuln.NewService(db.Vuln(), cfg.Clock).WithNotifier(s.vp.notify).WithPolicy(cfg.vulnPolicy()); err != nil {
		db.Close()
		return nil, fmt.Errorf("vulnerability policy: %w", err)
	}
	s.checkins.OnSoftwareChange(s.exposureHook)
	mounts := map[string]http.Handler{"GET /tuf/{org}/": s.tufHandler(), "GET /tlog/{org}/": logs.handler(ten)}
	maps.Copy(mounts, s.vp.mounts)
	s.api, err = api.New(api.Deps{
		Tenancy: ten, Audit: audit.NewService(db.Audit()), Idempotency: db.Idempotency(),
		Inventory: s.inventory, Identity: ident,
		Release: rel, Vuln: s.vulns, Trust: s.trust,
		Mounts: mounts, Notify: s.vp.notify, Reports: s.vp.reports,
		Advisories: s.vp.advisories, PublicURL: cfg.publicURL(),
		Rollout: deploy, Director: director, SUIT: s.suit,
		Device: devices,
		Ready:  s.ready, Log: log, Clock: cfg.Clock, Registry: reg, Version: cfg.Version,
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// bootstrap creates the first organization and admin token on an empty
// store. The token goes to a 0600 file; only its path is logged.
func (s *Server) bootstrap(ctx context.Context, ten *tenancy.Service) error {
	org, secret, created, err := ten.Bootstrap(ctx, s.cfg.BootstrapOrg, s.cfg.BootstrapOrg)
	if err != nil || !created {
		return err
	}
	path := s.cfg.TokenFile()
	if err := atomicfile.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		return fmt.Errorf("bootstrap created org %q but could not write its admin token to %s (%w); run `steward admin-token --org %s` to issue another",
			org.Slug, path, err, org.Slug)
	}
	s.log.Warn("bootstrapped a new installation: the admin API token is in the file below; keep it secret and create per-person tokens with `steward ctl tokens create`",
		"org", org.Slug, "token_file", path)
	return nil
}

func (s *Server) ready(ctx context.Context) error {
	return errors.Join(s.db.Ping(ctx), s.blobs.Ping(ctx))
}

// Handler is the root HTTP handler.
func (s *Server) Handler() http.Handler { return s.api.Handler() }

// Close releases the store.
func (s *Server) Close() error {
	if s.wake != nil {
		_ = s.wake.Close()
	}
	return s.db.Close()
}

// orgWaker names organizations by slug in wake-up topics, as devices
// subscribe to them; the rollout engine knows them by id.
type orgWaker struct {
	pub wake.Publisher
	db  *store.DB
}

func (w orgWaker) slug(ctx context.Context, orgID string) (string, error) {
	var slug string
	err := w.db.Read(ctx, func(tx *store.Tx) error {
		o, err := tx.OrgByID(ctx, orgID)
		slug = o.Slug
		return err
	})
	return slug, err
}

func (w orgWaker) WakeDevices(ctx context.Context, orgID string, deviceIDs []string, reason, rolloutID string) error {
	slug, err := w.slug(ctx, orgID)
	if err != nil {
		return err
	}
	return w.pub.WakeDevices(ctx, slug, deviceIDs, reason, rolloutID)
}

func (w orgWaker) WakeOrg(ctx context.Context, orgID string, spread time.Duration, reason, rolloutID string) error {
	slug, err := w.slug(ctx, orgID)
	if err != nil {
		return err
	}
	return w.pub.WakeOrg(ctx, slug, spread, reason, rolloutID)
}

// Serve serves on ln until ctx ends, then drains in-flight requests.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	// Background work stops, and is waited for, on every way out of Serve,
	// so the caller may close the store once Serve returns.
	bg, stopBG := context.WithCancel(ctx)
	var wg sync.WaitGroup
	run := func(fn func(context.Context)) {
		wg.Add(1)
		go func() { defer wg.Done(); fn(bg) }()
	}
	defer func() { stopBG(); wg.Wait() }()
	run(s.housekeeping)
	run(s.checkins.Run) // its last batch of last-seen updates is written on the way out
	run(func(c context.Context) { s.trust.RunRefresher(c, 10*time.Minute) })
	run(s.vp.notify.Run) // attempts in flight are recorded
	run(func(c context.Context) { s.runSweeps(c, time.Minute) })
	// One rollout scheduler among replicas: it waits to be elected.
	run(s.scheduler.Run)
	run(func(c context.Context) { audit.RunSealer(c, s.db.Audit(), 200*time.Millisecond, s.log) }) // every recorded event is chained
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	s.log.Info("serving", "addr", ln.Addr().String(), "version", s.cfg.Version)
	if s.cfg.Demo > 0 {
		run(func(c context.Context) { s.runDemo(c, ln.Addr()) })
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	timeout := s.cfg.ShutdownTimeout
	if timeout <= 0 {
		timeout = 20 * time.Second
	}
	s.log.Info("shutting down: draining in-flight requests", "timeout", timeout)
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return fmt.Errorf("graceful shutdown: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	stopBG()
	wg.Wait()
	s.log.Info("stopped")
	return nil
}

// housekeeping prunes expired idempotency keys.
func (s *Server) housekeeping(ctx context.Context) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		idem := s.db.Idempotency()
		err := idem.Write(ctx, func(tx idempotency.Tx) error {
			n, err := tx.PruneIdempotencyKeys(ctx, s.cfg.Clock.Now().Add(-idempotency.TTL))
			if n > 0 {
				s.log.Debug("pruned idempotency keys", "count", n)
			}
			return err
		})
		if err != nil && ctx.Err() == nil {
			s.log.Warn("pruning idempotency keys failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Run assembles a server and serves on cfg.Addr until ctx ends.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	s, err := New(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer s.Close()
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (is another steward running? choose another with --addr)", cfg.Addr, err)
	}
	return s.Serve(ctx, ln)
}

// tufHandler serves each vendor organization's TUF image repository at
// /tuf/{org}/metadata/ and /tuf/{org}/targets/. It is public: the metadata
// is signed, and clients must be able to fetch it without credentials.
func (s *Server) tufHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		slug := r.PathValue("org")
		orgID, err := s.tenancy.PublicOrgID(r.Context(), slug)
		if err != nil {
			http.NotFound(w, r) // TUF clients expect 404, never 403
			return
		}
		http.StripPrefix("/tuf/"+slug, s.trust.Handler(orgID)).ServeHTTP(w, r)
	})
}

// blobTargets serves TUF target files from the blob store.
type blobTargets struct{ blobs *blob.Dir }

func (b blobTargets) Open(ctx context.Context, sha256hex string) (io.ReadSeekCloser, int64, error) {
	f, info, err := b.blobs.Open(ctx, sha256hex)
	if errors.Is(err, blob.ErrNotFound) || errors.Is(err, blob.ErrInvalidDigest) {
		return nil, 0, fmt.Errorf("%w: %v", trust.ErrNotFound, err)
	}
	if err != nil {
		return nil, 0, err
	}
	return f, info.Size, nil
}
