package disclosure

import (
	"strings"
	"time"
)

// SecurityTxt renders RFC 9116 security.txt for cfg (defaulted and
// validated) at time now. Expires is computed from now, so the file served
// is never expired and never claims more than cfg.Validity (≤ a year).
// Lines end in LF, which the RFC's ABNF allows.
func SecurityTxt(cfg Config, now time.Time) string {
	var b strings.Builder
	field := func(name, value string) {
		if value != "" {
			b.WriteString(name + ": " + value + "\n")
		}
	}
	org := cfg.OrgName
	if org == "" {
		org = "this service"
	}
	b.WriteString("# Security contacts and disclosure policy of " + org + ".\n")
	b.WriteString("# Report vulnerabilities through the form (no account needed) or by the contacts below.\n")
	if !cfg.OmitFormContact {
		field("Contact", cfg.BaseURL+pathForm)
	}
	for _, c := range cfg.Contacts {
		field("Contact", c)
	}
	field("Expires", now.Add(cfg.Validity).UTC().Truncate(time.Second).Format(time.RFC3339))
	field("Encryption", cfg.Encryption)
	field("Acknowledgments", cfg.Acknowledgments)
	field("Preferred-Languages", strings.Join(cfg.PreferredLanguages, ", "))
	field("Canonical", cfg.BaseURL+pathSecurityTxt)
	field("Policy", cfg.BaseURL+pathPolicy)
	field("Hiring", cfg.Hiring)
	return b.String()
}
