package disclosure

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/mail"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/steward-iot/steward/internal/problem"
)

// Limits on what a reporter and the team may send. Sizes are in bytes of
// UTF-8 after cleaning, except MaxTitle, which counts characters.
const (
	MaxTitle            = 200
	MaxDescription      = 64 << 10
	MaxShortField       = 200 // product, version, names
	MaxEmail            = 254 // RFC 5321 path limit
	MaxLanguage         = 35
	MaxReporterMessage  = 16 << 10
	MaxReporterMessages = 100 // per report, so a token cannot fill the database
	MaxTeamMessage      = 64 << 10
	MaxReason           = 2000
	MaxVulnerabilityID  = 200
)

// TokenPrefix marks tracking tokens so secret scanners can find leaked ones.
const TokenPrefix = "rpt_"

// newToken returns a tracking token with 256 bits of entropy. Like API
// tokens it needs no slow hash: SHA-256 of a random 256-bit secret cannot
// be reversed, and it lets the store find the report by an indexed lookup
// instead of comparing secrets.
func newToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
}

// hashToken returns the stored form of a tracking token.
func hashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// plausibleToken rejects what cannot be a token before any lookup.
func plausibleToken(s string) bool {
	if len(s) != len(TokenPrefix)+43 || !strings.HasPrefix(s, TokenPrefix) {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(s[len(TokenPrefix):])
	return err == nil
}

// bidiControl reports the invisible direction controls that can make a
// one-line field read differently from what it says ("Trojan Source").
func bidiControl(r rune) bool {
	return (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069) || r == 0x200e || r == 0x200f || r == 0x061c
}

// hasControl reports C0/C1 control characters and DEL.
func hasControl(s string) bool { return strings.ContainsFunc(s, unicode.IsControl) }

// cleanLine makes a one-line field safe to store and show: control and
// direction characters go, whitespace runs become one space.
func cleanLine(s string) string {
	s = strings.Map(func(r rune) rune {
		switch {
		case r == '\t' || r == '\n' || r == '\r' || unicode.IsSpace(r):
			return ' '
		case unicode.IsControl(r) || bidiControl(r):
			return -1
		}
		return r
	}, s)
	return strings.Join(strings.Fields(s), " ")
}

// cleanText makes a multi-line text safe to store: line ends become \n,
// other control characters (NUL above all, which PostgreSQL refuses) go.
// Direction controls stay: a report about Trojan Source needs them, and
// pages show text inside an isolating element.
func cleanText(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.Map(func(r rune) rune {
		switch {
		case r == '\r':
			return '\n'
		case r == '\n' || r == '\t':
			return r
		case unicode.IsControl(r):
			return -1
		}
		return r
	}, s)
	return strings.TrimSpace(s)
}

// fields collects field errors so a form can show them all at once.
type fields []problem.FieldError

func (f *fields) add(field, detail string) {
	*f = append(*f, problem.FieldError{Field: field, Detail: detail})
}

func (f fields) err() error {
	if len(f) == 0 {
		return nil
	}
	e := problem.Invalid("%s: %s", f[0].Field, f[0].Detail)
	if len(f) > 1 {
		e = problem.Invalid("%s: %s (and %d more problems)", f[0].Field, f[0].Detail, len(f)-1)
	}
	e.Fields = f
	return e
}

// line validates and cleans a one-line field.
func (f *fields) line(field, s string, required bool, maxRunes int) string {
	if !utf8.ValidString(s) {
		f.add(field, "must be valid UTF-8 text")
		return ""
	}
	s = cleanLine(s)
	switch {
	case s == "" && required:
		f.add(field, "is required")
	case utf8.RuneCountInString(s) > maxRunes:
		f.add(field, "is too long; the limit is "+strconv.Itoa(maxRunes)+" characters")
	}
	return s
}

// text validates and cleans a multi-line field.
func (f *fields) text(field, s string, required bool, maxBytes int) string {
	if !utf8.ValidString(s) {
		f.add(field, "must be valid UTF-8 text")
		return ""
	}
	s = cleanText(s)
	switch {
	case s == "" && required:
		f.add(field, "is required")
	case len(s) > maxBytes:
		f.add(field, "is "+strconv.Itoa(len(s))+" bytes long; the limit is "+strconv.Itoa(maxBytes))
	}
	return s
}

// cleanRequest validates a new report and returns it cleaned.
func cleanRequest(in ReportRequest) (ReportRequest, error) {
	var f fields
	out := ReportRequest{
		Title:        f.line("title", in.Title, true, MaxTitle),
		Description:  f.text("description", in.Description, true, MaxDescription),
		Product:      f.line("product", in.Product, false, MaxShortField),
		Version:      f.line("version", in.Version, false, MaxShortField),
		ReporterName: f.line("reporter_name", in.ReporterName, false, MaxShortField),
		CreditWanted: in.CreditWanted,
		CreditName:   f.line("credit_name", in.CreditName, false, MaxShortField),
	}
	if email := strings.TrimSpace(in.ReporterEmail); email != "" {
		a, err := mail.ParseAddress(email)
		switch {
		case len(email) > MaxEmail || !utf8.ValidString(email):
			f.add("reporter_email", "is not a usable email address")
		case err != nil || a.Address != email || a.Name != "" || hasControl(email):
			// Only a bare address: a display name or comments could smuggle
			// header text into the mails sent to it.
			f.add("reporter_email", "must be a plain address such as name@example.com")
		default:
			out.ReporterEmail = email
		}
	}
	if lang := strings.TrimSpace(in.Language); lang != "" {
		if len(lang) > MaxLanguage || !langTag.MatchString(lang) {
			f.add("language", "must be a language tag such as en or de-AT")
		} else {
			out.Language = lang
		}
	}
	// Keep only what the reporter asked us to keep: no credit name without
	// credit, and the reporter's name as the default credit.
	if !out.CreditWanted {
		out.CreditName = ""
	} else if out.CreditName == "" {
		out.CreditName = out.ReporterName
	}
	return out, f.err()
}
