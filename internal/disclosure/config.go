package disclosure

import (
	"errors"
	"fmt"
	"net/mail"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"
)

// Rate is a token bucket: up to N requests at once, refilled at N per Per.
type Rate struct {
	N   int
	Per time.Duration
}

// Config is the disclosure programme of this instance: what the public
// pages promise and the limits on the public endpoints. The service and the
// handler share one Config so that the policy page can never promise an
// acknowledgement time other than the one the sweep enforces.
type Config struct {
	// OrgID is the organization (the vendor) whose reports the public
	// endpoints accept.
	OrgID string
	// OrgName names the vendor on the pages ("Acme"); optional.
	OrgName string
	// BaseURL is the instance's public origin, e.g. https://updates.example.com
	// (no path). security.txt's Canonical, Policy and form URLs derive from it.
	BaseURL string
	// AllowHTTP permits an http:// BaseURL and http contact URLs (labs only:
	// RFC 9116 requires security.txt over HTTPS).
	AllowHTTP bool
	// Contacts are further security.txt Contact URIs (mailto:, https:, tel:).
	Contacts []string
	// OmitFormContact leaves the report form out of security.txt's Contact
	// fields (it is listed first by default).
	OmitFormContact bool
	// Encryption (a key URI: https:, dns:, openpgp4fpr:), Acknowledgments
	// and Hiring (https URLs) are optional security.txt fields.
	Encryption      string
	Acknowledgments string
	Hiring          string
	// PreferredLanguages are BCP 47 tags (default ["en"]).
	PreferredLanguages []string
	// Validity is how far ahead security.txt's Expires lies (default 180
	// days, at most a year). It is computed per request, so it never lapses.
	Validity time.Duration
	// Scope describes in plain text what is in scope (paragraphs separated
	// by blank lines); a generic text is used when empty.
	Scope string

	// AckWithin is how soon a person acknowledges a report (default 48h).
	AckWithin time.Duration
	// StatusUpdateEvery is the longest the team stays silent on an open
	// report (default 14 days).
	StatusUpdateEvery time.Duration
	// DisclosureAfter is the target time from report to public disclosure
	// (default 90 days).
	DisclosureAfter time.Duration

	// Per-client rate limits: new reports (default 5/h), status reads
	// (60/h) and reporter messages (20/h).
	ReportRate  Rate
	StatusRate  Rate
	MessageRate Rate
	// TrustedProxies are addresses or CIDR prefixes of reverse proxies
	// whose X-Forwarded-For is believed; empty means the peer address is
	// the client.
	TrustedProxies []string
	// MaxBody bounds a request body (default 256 KiB: a 64 KiB description
	// may grow sixfold as JSON \u escapes).
	MaxBody int64
}

// Defaults.
const (
	DefaultValidity          = 180 * 24 * time.Hour
	MaxValidity              = 365 * 24 * time.Hour
	DefaultAckWithin         = 48 * time.Hour
	DefaultStatusUpdateEvery = 14 * 24 * time.Hour
	DefaultDisclosureAfter   = 90 * 24 * time.Hour
	DefaultMaxBody           = 256 << 10
)

// WithDefaults fills unset fields with their defaults.
func (c Config) WithDefaults() Config {
	c.BaseURL = strings.TrimRight(strings.TrimSpace(c.BaseURL), "/")
	if len(c.PreferredLanguages) == 0 {
		c.PreferredLanguages = []string{"en"}
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.Validity, DefaultValidity)
	def(&c.AckWithin, DefaultAckWithin)
	def(&c.StatusUpdateEvery, DefaultStatusUpdateEvery)
	def(&c.DisclosureAfter, DefaultDisclosureAfter)
	rate := func(r *Rate, n int) {
		if r.N == 0 && r.Per == 0 {
			*r = Rate{N: n, Per: time.Hour}
		}
	}
	rate(&c.ReportRate, 5)
	rate(&c.StatusRate, 60)
	rate(&c.MessageRate, 20)
	if c.MaxBody == 0 {
		c.MaxBody = DefaultMaxBody
	}
	return c
}

// validateTimers checks what the service itself relies on.
func (c Config) validateTimers() error {
	var errs []error
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"AckWithin", c.AckWithin}, {"StatusUpdateEvery", c.StatusUpdateEvery}, {"DisclosureAfter", c.DisclosureAfter}} {
		if d.v <= 0 {
			errs = append(errs, fmt.Errorf("disclosure: %s must be positive, not %v", d.name, d.v))
		}
	}
	return errors.Join(errs...)
}

var langTag = regexp.MustCompile(`^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$`)

// Validate checks a defaulted Config for serving the public endpoints.
func (c Config) Validate() error {
	errs := []error{c.validateTimers()}
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("disclosure: "+format, args...)) }
	if c.OrgID == "" {
		bad("OrgID must name the organization whose reports the public endpoints accept")
	}
	if u, err := url.Parse(c.BaseURL); c.BaseURL == "" || err != nil || u.Host == "" || u.User != nil ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		bad("BaseURL %q must be an origin such as https://updates.example.com", c.BaseURL)
	} else if u.Scheme != "https" && !(u.Scheme == "http" && c.AllowHTTP) {
		bad("BaseURL %q must use https (RFC 9116); AllowHTTP permits http in a lab", c.BaseURL)
	}
	for _, s := range c.Contacts {
		if err := c.checkURI(s, "mailto", "https", "tel"); err != nil {
			bad("Contact %q: %v", s, err)
		}
	}
	if len(c.Contacts) == 0 && c.OmitFormContact {
		bad("security.txt needs at least one Contact: add Contacts or keep the report form listed")
	}
	for name, v := range map[string]string{"Encryption": c.Encryption, "Acknowledgments": c.Acknowledgments, "Hiring": c.Hiring} {
		if v == "" {
			continue
		}
		schemes := []string{"https"}
		if name == "Encryption" {
			schemes = append(schemes, "dns", "openpgp4fpr")
		}
		if err := c.checkURI(v, schemes...); err != nil {
			bad("%s %q: %v", name, v, err)
		}
	}
	for _, l := range c.PreferredLanguages {
		if !langTag.MatchString(l) || len(l) > 35 {
			bad("PreferredLanguages: %q is not a language tag such as en or de-AT", l)
		}
	}
	if c.Validity <= 0 || c.Validity > MaxValidity {
		bad("Validity %v must be positive and at most a year (RFC 9116)", c.Validity)
	}
	if !utf8.ValidString(c.Scope) || !utf8.ValidString(c.OrgName) || hasControl(c.OrgName) {
		bad("Scope and OrgName must be valid UTF-8 text (OrgName on one line)")
	}
	for name, r := range map[string]Rate{"ReportRate": c.ReportRate, "StatusRate": c.StatusRate, "MessageRate": c.MessageRate} {
		if r.N <= 0 || r.Per <= 0 {
			bad("%s must allow a positive number per positive period, not %d per %v", name, r.N, r.Per)
		}
	}
	if _, err := parsePrefixes(c.TrustedProxies); err != nil {
		bad("TrustedProxies: %v", err)
	}
	if c.MaxBody < 1024 {
		bad("MaxBody %d is too small to hold a report", c.MaxBody)
	}
	return errors.Join(errs...)
}

// checkURI accepts an absolute URI of one of schemes with nothing that
// could break a security.txt line.
func (c Config) checkURI(s string, schemes ...string) error {
	if s == "" || strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return errors.New("must be a URI without spaces or control characters")
	}
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	ok := false
	for _, sc := range schemes {
		ok = ok || u.Scheme == sc || (sc == "https" && u.Scheme == "http" && c.AllowHTTP)
	}
	if !ok {
		return fmt.Errorf("scheme must be one of %v", schemes)
	}
	switch u.Scheme {
	case "https", "http":
		if u.Host == "" {
			return errors.New("has no host")
		}
	case "mailto":
		if _, err := mail.ParseAddress(u.Opaque); err != nil {
			return fmt.Errorf("not an email address: %v", err)
		}
	}
	return nil
}

func parsePrefixes(ss []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range ss {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q is neither an address nor a CIDR prefix", s)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// URL paths, relative to BaseURL.
const (
	pathSecurityTxt = "/.well-known/security.txt"
	pathPolicy      = "/security/policy"
	pathForm        = "/security/report"
	pathStatusPage  = "/security/report/status"
	pathAPIReports  = "/api/v1/reports"
	pathAPIStatus   = "/api/v1/reports/status"
	pathAPIMessages = "/api/v1/reports/messages"
)
