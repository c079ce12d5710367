package notify

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"os"
	"strings"
	"time"
)

// DefaultSchedule is the delay before each attempt, following the
// Standard Webhooks retry guidance: immediately, then 5 s, 5 min, 30 min,
// 2 h, 5 h, 10 h and 10 h (about 28 hours in all). Each delay gets up to
// ±10 % jitter so that a receiver's outage does not end in a stampede.
var DefaultSchedule = []time.Duration{0, 5 * time.Second, 5 * time.Minute, 30 * time.Minute,
	2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour}

// Config tunes notifications. The zero value is usable: https webhooks to
// public addresses only, no email, defaults below.
type Config struct {
	SMTP SMTPConfig
	// AllowInsecureURLs accepts http:// webhook URLs (labs and tests).
	AllowInsecureURLs bool
	// AllowPrivateNetworks lets webhooks reach loopback, private and
	// link-local addresses (labs and tests). Off, such destinations are
	// refused at creation and at every connection.
	AllowPrivateNetworks bool
	// Timeout bounds one delivery attempt, HTTP or SMTP (default 15 s;
	// the spec recommends 15 to 30 s).
	Timeout time.Duration
	// MaxAttempts is how many times a delivery is tried before it fails
	// (default len(DefaultSchedule) = 8).
	MaxAttempts int
	// Schedule is the delay before each attempt; Schedule[0] applies to
	// the first (normally 0). Attempts past its end reuse the last delay.
	// Default DefaultSchedule.
	Schedule []time.Duration
	// PollInterval is how often Run looks for due deliveries when
	// nothing woke it (default 1 s).
	PollInterval time.Duration
	// BatchSize bounds the deliveries one DeliverDue claims (default 50).
	BatchSize int
	// Workers bounds concurrent sends within a batch (default 8).
	Workers int
	// RotationOverlap is how long the previous secret keeps signing
	// after RotateSecret (default 24 h), so receivers can switch without
	// rejecting anything.
	RotationOverlap time.Duration
	// Retention is how long finished deliveries and their attempts stay
	// in the log (default 30 days).
	Retention time.Duration
	// RootCAs verifies webhook and SMTP servers (nil: the system pool).
	RootCAs *x509.CertPool `json:"-" yaml:"-"`
	// Resolver resolves webhook hosts at creation (nil: the default).
	Resolver *net.Resolver `json:"-" yaml:"-"`
}

// SMTPConfig is the mail relay. Email is disabled when Addr is empty.
type SMTPConfig struct {
	Addr string // host:port of the relay
	// From is the sender, e.g. "Steward <steward@example.com>".
	From string
	// Username enables AUTH PLAIN, which net/smtp sends only over TLS
	// (or to localhost).
	Username string
	// Password is never a flag: set it with LoadPassword from the
	// STEWARD_SMTP_PASSWORD environment variable or PasswordFile.
	Password string `json:"-" yaml:"-"`
	// PasswordFile names a file holding the password (trailing newline
	// ignored).
	PasswordFile string
	// ImplicitTLS speaks TLS from the first byte (port 465). Otherwise
	// STARTTLS is used whenever the relay offers it.
	ImplicitTLS bool
	// HelloName is the EHLO name (default "localhost").
	HelloName string
}

// PasswordEnv is the environment variable holding the SMTP password.
const PasswordEnv = "STEWARD_SMTP_PASSWORD"

// Enabled reports whether email can be sent.
func (c SMTPConfig) Enabled() bool { return c.Addr != "" }

// LoadPassword fills Password from the environment (getenv, os.Getenv in
// production) or else from PasswordFile, unless it is already set.
func (c *SMTPConfig) LoadPassword(getenv func(string) string) error {
	if c.Password != "" {
		return nil
	}
	if v := getenv(PasswordEnv); v != "" {
		c.Password = v
		return nil
	}
	if c.PasswordFile != "" {
		b, err := os.ReadFile(c.PasswordFile)
		if err != nil {
			return fmt.Errorf("read SMTP password file: %w", err)
		}
		c.Password = strings.TrimRight(string(b), "\r\n")
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Timeout == 0 {
		c.Timeout = 15 * time.Second
	}
	if len(c.Schedule) == 0 {
		c.Schedule = DefaultSchedule
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = len(c.Schedule)
	}
	if c.PollInterval == 0 {
		c.PollInterval = time.Second
	}
	if c.BatchSize == 0 {
		c.BatchSize = 50
	}
	if c.Workers == 0 {
		c.Workers = 8
	}
	if c.RotationOverlap == 0 {
		c.RotationOverlap = 24 * time.Hour
	}
	if c.Retention == 0 {
		c.Retention = 30 * 24 * time.Hour
	}
	if c.SMTP.HelloName == "" {
		c.SMTP.HelloName = "localhost"
	}
	return c
}

// Validate reports every problem with c (after defaults are applied).
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if c.Timeout < time.Second || c.Timeout > 2*time.Minute {
		errs = append(errs, fmt.Errorf("notify timeout %s: must be between 1s and 2m", c.Timeout))
	}
	if c.MaxAttempts < 1 || c.MaxAttempts > 50 {
		errs = append(errs, fmt.Errorf("notify max attempts %d: must be between 1 and 50", c.MaxAttempts))
	}
	for _, d := range c.Schedule {
		if d < 0 || d > 7*24*time.Hour {
			errs = append(errs, fmt.Errorf("notify retry delay %s: must be between 0 and 168h", d))
			break
		}
	}
	if c.PollInterval < 10*time.Millisecond {
		errs = append(errs, fmt.Errorf("notify poll interval %s: must be at least 10ms", c.PollInterval))
	}
	if c.BatchSize < 1 || c.BatchSize > 1000 {
		errs = append(errs, fmt.Errorf("notify batch size %d: must be between 1 and 1000", c.BatchSize))
	}
	if c.Workers < 1 || c.Workers > 256 {
		errs = append(errs, fmt.Errorf("notify workers %d: must be between 1 and 256", c.Workers))
	}
	if c.RotationOverlap < 0 {
		errs = append(errs, fmt.Errorf("notify rotation overlap %s: must not be negative", c.RotationOverlap))
	}
	if c.Retention < time.Hour {
		errs = append(errs, fmt.Errorf("notify retention %s: must be at least 1h", c.Retention))
	}
	if c.SMTP.Enabled() {
		if host, port, err := net.SplitHostPort(c.SMTP.Addr); err != nil || host == "" || port == "" {
			errs = append(errs, fmt.Errorf("SMTP address %q: must be host:port", c.SMTP.Addr))
		}
		if a, err := mail.ParseAddress(c.SMTP.From); err != nil {
			errs = append(errs, fmt.Errorf("SMTP from address %q: %v", c.SMTP.From, err))
		} else if !strings.Contains(a.Address, "@") {
			errs = append(errs, fmt.Errorf("SMTP from address %q: needs a domain", c.SMTP.From))
		}
		if c.SMTP.Username != "" && c.SMTP.Password == "" {
			errs = append(errs, fmt.Errorf("SMTP username %q has no password: set %s or the SMTP password file", c.SMTP.Username, PasswordEnv))
		}
		if strings.ContainsAny(c.SMTP.HelloName, " \r\n") {
			errs = append(errs, fmt.Errorf("SMTP hello name %q: must be one word", c.SMTP.HelloName))
		}
	} else if c.SMTP.From != "" || c.SMTP.Username != "" {
		errs = append(errs, errors.New("SMTP from/username are set but the SMTP address is empty"))
	}
	return errors.Join(errs...)
}
