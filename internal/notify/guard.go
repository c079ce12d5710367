package notify

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/steward-iot/steward/internal/problem"
)

// Webhook URLs come from tenants, and the server calls them: without a
// guard, a tenant could make Steward reach its own network (cloud metadata
// at 169.254.169.254, databases on 10.x, admin ports on loopback). URLs
// are checked when a subscription is created, and every connection is
// checked again as it is dialed, so a name that resolved to a public
// address at creation and to a private one later (DNS rebinding) is still
// refused.

// blockedPrefixes are ranges outside netip's predicates that are not the
// public internet.
var blockedPrefixes = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),      // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),  // carrier-grade NAT, often internal
	netip.MustParsePrefix("192.0.0.0/24"),   // IETF protocol assignments
	netip.MustParsePrefix("198.18.0.0/15"),  // benchmarking
	netip.MustParsePrefix("240.0.0.0/4"),    // reserved, and broadcast
	netip.MustParsePrefix("100::/64"),       // discard-only
	netip.MustParsePrefix("2001:db8::/32"),  // documentation
	netip.MustParsePrefix("fec0::/10"),      // deprecated site-local
	netip.MustParsePrefix("64:ff9b:1::/48"), // local-use NAT64
}

// nat64 embeds an IPv4 address in its last 32 bits.
var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// blockedAddr says why a destination address is not allowed, or "" if it is.
func blockedAddr(a netip.Addr) string {
	a = a.Unmap()
	if nat64.Contains(a) {
		b := a.As16()
		if why := blockedAddr(netip.AddrFrom4([4]byte(b[12:]))); why != "" {
			return why + " (through NAT64)"
		}
		return ""
	}
	switch {
	case !a.IsValid():
		return "not an address"
	case a.IsLoopback():
		return "a loopback address"
	case a.IsPrivate():
		return "a private network address"
	case a.IsLinkLocalUnicast():
		return "a link-local address"
	case a.IsUnspecified():
		return "the unspecified address"
	case a.IsMulticast(), a.IsLinkLocalMulticast(), a.IsInterfaceLocalMulticast():
		return "a multicast address"
	}
	for _, p := range blockedPrefixes {
		if p.Contains(a) {
			return "a reserved address (" + p.String() + ")"
		}
	}
	return ""
}

// errBlocked is a refused destination; it fails a delivery at once,
// since retrying would only probe the internal address again.
type errBlocked struct{ addr, why string }

func (e *errBlocked) Error() string {
	return fmt.Sprintf("destination %s is %s; webhooks may only reach the public internet", e.addr, e.why)
}

// dialControl refuses connections to blocked addresses; it runs after
// name resolution, for every address Go tries.
func dialControl(network, address string, _ syscall.RawConn) error {
	if network != "tcp4" && network != "tcp6" {
		return fmt.Errorf("network %s not allowed for webhooks", network)
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("unexpected dial address %q: %w", address, err)
	}
	if why := blockedAddr(ap.Addr()); why != "" {
		return &errBlocked{addr: ap.Addr().String(), why: why}
	}
	return nil
}

// MaxURLLength bounds a webhook URL.
const MaxURLLength = 2048

// checkWebhookURL validates a webhook URL for creation and returns its
// normalized form. Names are resolved, and every address must be allowed.
func (s *Service) checkWebhookURL(ctx context.Context, raw string) (string, error) {
	const field = "url"
	if raw == "" {
		return "", problem.InvalidField(field, "a webhook needs an https URL")
	}
	if len(raw) > MaxURLLength {
		return "", problem.InvalidField(field, "longer than %d characters", MaxURLLength)
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Opaque != "" {
		return "", problem.InvalidField(field, "%q is not an absolute URL", raw)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !s.cfg.AllowInsecureURLs {
			return "", problem.InvalidField(field, "must use https (plain http is allowed only when the server is configured for a lab)")
		}
	default:
		return "", problem.InvalidField(field, "scheme %q is not allowed; use https", u.Scheme)
	}
	if u.User != nil {
		return "", problem.InvalidField(field, "must not carry credentials; webhooks are authenticated by their signature")
	}
	if u.Fragment != "" {
		return "", problem.InvalidField(field, "must not have a #fragment")
	}
	host := u.Hostname()
	if host == "" {
		return "", problem.InvalidField(field, "has no host")
	}
	if !s.cfg.AllowPrivateNetworks {
		addrs, err := s.resolve(ctx, host)
		if err != nil {
			return "", problem.InvalidField(field, "host %q does not resolve: %v", host, err)
		}
		for _, a := range addrs {
			if why := blockedAddr(a); why != "" {
				return "", problem.InvalidField(field, "host %q is %s; webhooks may only reach the public internet", host, why)
			}
		}
	}
	return u.String(), nil
}

func (s *Service) resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		return []netip.Addr{a}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	r := s.cfg.Resolver
	if r == nil {
		r = net.DefaultResolver
	}
	addrs, err := r.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil, err
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("no addresses")
	}
	return addrs, nil
}
