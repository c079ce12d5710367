package advisory

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/package-url/packageurl-go"

	"github.com/steward-iot/steward/internal/problem"
)

// Bounds on one draft, so that a document stays a document (the admin API
// also caps request bodies at 1 MiB).
const (
	maxShort           = 500      // titles, names, versions
	maxText            = 64 << 10 // notes, details
	maxProducts        = 2000
	maxVulnerabilities = 500
	maxList            = 500 // references, remediations, threats, ids
)

var (
	// Tracking ids are kept to characters that survive file names and
	// URLs unchanged (the CSAF file name rule lower-cases them).
	trackingIDRe = regexp.MustCompile(`^[A-Za-z0-9](?:[A-Za-z0-9._+-]{0,98}[A-Za-z0-9])?$`)
	productIDRe  = regexp.MustCompile(`^[\x21-\x7e]{1,128}$`)
	cveRe        = regexp.MustCompile(`^CVE-[0-9]{4}-[0-9]{4,}$`)
	cweRe        = regexp.MustCompile(`^CWE-[1-9][0-9]{0,5}$`)
	// The CSAF 2.0 schema's lang_t and CPE patterns, so that errors name
	// the draft's field rather than a path in the generated document.
	langRe = regexp.MustCompile(`^(([A-Za-z]{2,3}(-[A-Za-z]{3}(-[A-Za-z]{3}){0,2})?|[A-Za-z]{4,8})(-[A-Za-z]{4})?(-([A-Za-z]{2}|[0-9]{3}))?(-([A-Za-z0-9]{5,8}|[0-9][A-Za-z0-9]{3}))*(-[A-WY-Za-wy-z0-9](-[A-Za-z0-9]{2,8})+)*(-[Xx](-[A-Za-z0-9]{1,8})+)?|[Xx](-[A-Za-z0-9]{1,8})+|[Ii]-[Dd][Ee][Ff][Aa][Uu][Ll][Tt]|[Ii]-[Mm][Ii][Nn][Gg][Oo])$`)
	cpeRe  = regexp.MustCompile(`^(cpe:2\.3:[aho\*\-](:(((\?*|\*?)([a-zA-Z0-9\-\._]|(\\[\\\*\?!"#\$%&'\(\)\+,/:;<=>@\[\]\^` + "`" + `\{\|\}~]))+(\?*|\*?))|[\*\-])){5}(:(([a-zA-Z]{2,3}(-([a-zA-Z]{2}|[0-9]{3}))?)|[\*\-]))(:(((\?*|\*?)([a-zA-Z0-9\-\._]|(\\[\\\*\?!"#\$%&'\(\)\+,/:;<=>@\[\]\^` + "`" + `\{\|\}~]))+(\?*|\*?))|[\*\-])){4})|([c][pP][eE]:/[AHOaho]?(:[A-Za-z0-9\._\-~%]*){0,6})$`)
	purlRe = regexp.MustCompile(`^pkg:[A-Za-z\.\-\+][A-Za-z0-9\.\-\+]*/.+`)
	// invalidFileRune is the CSAF 2.0 file name rule (section 5.1): runs
	// of anything but [+\-a-z0-9] become one underscore.
	invalidFileRune = regexp.MustCompile(`[^+\-a-z0-9]+`)
)

// rangeWords are the CSAF 2.0 test 6.1.31 keywords: a product_version
// names one version, never a range.
var rangeWords = []string{"after", "all", "before", "earlier", "later", "prior", "versions"}

var (
	publisherCategories = []string{"coordinator", "discoverer", "other", "translator", "user", "vendor"}
	tlpLabels           = []string{"WHITE", "GREEN", "AMBER", "RED"}
	justifications      = []string{"component_not_present", "inline_mitigations_already_exist",
		"vulnerable_code_cannot_be_controlled_by_adversary", "vulnerable_code_not_in_execute_path", "vulnerable_code_not_present"}
	remediationCategories = []string{RemediationMitigation, RemediationNoFixPlanned, RemediationNoneAvailable,
		RemediationVendorFix, RemediationWorkaround}
	threatCategories = []string{"exploit_status", "impact", "target_set"}
)

// FileStem is a tracking id as a CSAF file name without ".json": lower
// case, every run of characters other than [+\-a-z0-9] replaced by "_".
func FileStem(trackingID string) string {
	return invalidFileRune.ReplaceAllString(strings.ToLower(trackingID), "_")
}

// vexTrackingID is the VEX document's own tracking id: the combination of
// publisher namespace and tracking id names one document, so the two
// profiles cannot share it.
func vexTrackingID(trackingID string) string { return trackingID + "-VEX" }

func documentTrackingID(trackingID string, p Profile) string {
	if p == ProfileVEX {
		return vexTrackingID(trackingID)
	}
	return trackingID
}

// fieldErrors collects every problem of a draft so that one answer lists
// them all.
type fieldErrors []problem.FieldError

func (e *fieldErrors) add(field, format string, args ...any) {
	if len(*e) < 100 {
		*e = append(*e, problem.FieldError{Field: field, Detail: fmt.Sprintf(format, args...)})
	}
}

func (e fieldErrors) err(what string) error {
	if len(e) == 0 {
		return nil
	}
	detail := what + ": " + e[0].Field + ": " + e[0].Detail
	if len(e) > 1 {
		detail += fmt.Sprintf(" (and %d more)", len(e)-1)
	}
	return &problem.Error{Kind: problem.KindInvalid, Detail: detail, Fields: e}
}

// text trims s and checks it: required or not, bounded, valid UTF-8
// without control characters other than tab and newlines.
func (e *fieldErrors) text(field string, s *string, required bool, limit int) {
	*s = strings.TrimSpace(*s)
	switch {
	case *s == "":
		if required {
			e.add(field, "is required")
		}
	case len(*s) > limit:
		e.add(field, "is longer than %d bytes", limit)
	case !utf8.ValidString(*s):
		e.add(field, "is not valid UTF-8")
	case strings.ContainsFunc(*s, func(r rune) bool { return unicode.IsControl(r) && r != '\n' && r != '\r' && r != '\t' }):
		e.add(field, "contains control characters")
	}
}

func (e *fieldErrors) url(field string, s *string, required bool) {
	e.text(field, s, required, 2000)
	if *s == "" {
		return
	}
	u, err := url.Parse(*s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Hostname() == "" {
		e.add(field, "must be an absolute http(s) URL")
	}
}

func (e *fieldErrors) oneOf(field string, s *string, def string, allowed []string) {
	*s = strings.TrimSpace(*s)
	if *s == "" {
		*s = def
	}
	if !slices.Contains(allowed, *s) {
		e.add(field, "must be one of %s", strings.Join(allowed, ", "))
	}
}

func (e *fieldErrors) references(field string, refs []Reference) {
	if len(refs) > maxList {
		e.add(field, "has more than %d entries", maxList)
		return
	}
	seen := map[string]bool{}
	for i := range refs {
		f := fmt.Sprintf("%s[%d]", field, i)
		e.url(f+".url", &refs[i].URL, true)
		e.text(f+".summary", &refs[i].Summary, true, maxShort)
		if seen[refs[i].URL] {
			e.add(f+".url", "is listed twice")
		}
		seen[refs[i].URL] = true
	}
}

// Normalize returns d in canonical form (trimmed, defaults filled, CVSS
// scores computed) or an Invalid problem naming every bad field. A draft it
// accepts generates schema-valid documents in both profiles.
func (d Draft) Normalize() (Draft, error) {
	d = d.clone()
	var e fieldErrors
	if d.TrackingID = strings.TrimSpace(d.TrackingID); d.TrackingID != "" {
		switch {
		case !trackingIDRe.MatchString(d.TrackingID):
			e.add("tracking_id", "must be 1–100 letters, digits, '.', '_', '+' or '-', starting and ending with a letter or digit")
		case strings.HasSuffix(FileStem(d.TrackingID), "-vex"):
			e.add("tracking_id", "must not end in -VEX: that suffix names the VEX document of an advisory")
		}
	}
	e.text("title", &d.Title, true, maxShort)
	e.text("publisher.name", &d.Publisher.Name, true, maxShort)
	e.url("publisher.namespace", &d.Publisher.Namespace, true)
	e.oneOf("publisher.category", &d.Publisher.Category, "vendor", publisherCategories)
	e.text("publisher.contact_details", &d.Publisher.ContactDetails, false, maxShort)
	e.text("publisher.issuing_authority", &d.Publisher.IssuingAuthority, false, maxText)
	d.TLP = strings.ToUpper(strings.TrimSpace(d.TLP))
	if d.TLP == "CLEAR" {
		d.TLP = "WHITE" // TLP 2.0's CLEAR is TLP 1.0's WHITE; CSAF 2.0 knows only the latter
	}
	e.oneOf("tlp", &d.TLP, "WHITE", tlpLabels)
	if d.Lang = strings.TrimSpace(d.Lang); d.Lang == "" {
		d.Lang = "en"
	}
	if !langRe.MatchString(d.Lang) {
		e.add("lang", "is not a BCP 47 language tag")
	}
	e.text("summary", &d.Summary, true, maxText)
	e.text("details", &d.Details, false, maxText)
	e.references("references", d.References)

	products := d.checkProducts(&e)
	if len(d.Vulnerabilities) == 0 {
		e.add("vulnerabilities", "at least one vulnerability is required")
	} else if len(d.Vulnerabilities) > maxVulnerabilities {
		e.add("vulnerabilities", "has more than %d entries", maxVulnerabilities)
	}
	seenCVE := map[string]int{}
	for i := range d.Vulnerabilities {
		if i >= maxVulnerabilities {
			break
		}
		checkVulnerability(&e, fmt.Sprintf("vulnerabilities[%d]", i), &d.Vulnerabilities[i], products, seenCVE, i)
	}
	if err := e.err("invalid advisory draft"); err != nil {
		return d, err
	}
	// The schema has the last word: both profiles must validate.
	trackingID := d.TrackingID
	if trackingID == "" {
		trackingID = "DRAFT"
	}
	// Any dates do for the trial: validity does not depend on them.
	now := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, p := range Profiles {
		dd := d
		dd.TrackingID = trackingID
		if _, err := Generate(dd, Tracking{Status: TrackingDraft, Version: 1, InitialReleaseDate: now, CurrentReleaseDate: now,
			Revisions: []Revision{{Number: 1, Date: now, Summary: "Draft"}}}, p); err != nil {
			return d, err
		}
	}
	return d, nil
}

// clone copies the slices Normalize edits in place, so the caller's draft
// stays as it was.
func (d Draft) clone() Draft {
	d.References = slices.Clone(d.References)
	d.Products = slices.Clone(d.Products)
	d.Vulnerabilities = slices.Clone(d.Vulnerabilities)
	for i := range d.Vulnerabilities {
		v := &d.Vulnerabilities[i]
		v.IDs = slices.Clone(v.IDs)
		if v.CWE != nil {
			c := *v.CWE
			v.CWE = &c
		}
		if v.CVSS3 != nil {
			c := *v.CVSS3
			v.CVSS3 = &c
		}
		if v.DiscoveryDate != nil {
			t := v.DiscoveryDate.UTC().Truncate(time.Second)
			v.DiscoveryDate = &t
		}
		v.Fixed = slices.Clone(v.Fixed)
		v.KnownAffected = slices.Clone(v.KnownAffected)
		v.KnownNotAffected = slices.Clone(v.KnownNotAffected)
		v.UnderInvestigation = slices.Clone(v.UnderInvestigation)
		v.Remediations = slices.Clone(v.Remediations)
		for j := range v.Remediations {
			v.Remediations[j].ProductIDs = slices.Clone(v.Remediations[j].ProductIDs)
		}
		v.Threats = slices.Clone(v.Threats)
		for j := range v.Threats {
			v.Threats[j].ProductIDs = slices.Clone(v.Threats[j].ProductIDs)
		}
		v.References = slices.Clone(v.References)
	}
	return d
}

// checkProducts validates the product list and returns the known ids.
func (d *Draft) checkProducts(e *fieldErrors) map[string]bool {
	ids := map[string]bool{}
	if len(d.Products) == 0 {
		e.add("products", "at least one product is required")
		return ids
	}
	if len(d.Products) > maxProducts {
		e.add("products", "has more than %d entries", maxProducts)
		return ids
	}
	leaves := map[[3]string]bool{}
	for i := range d.Products {
		p := &d.Products[i]
		f := fmt.Sprintf("products[%d]", i)
		p.ID = strings.TrimSpace(p.ID)
		if !productIDRe.MatchString(p.ID) {
			e.add(f+".id", "must be 1–128 printable ASCII characters without spaces")
		} else if ids[p.ID] {
			e.add(f+".id", "%q is used by another product", p.ID)
		}
		ids[p.ID] = true
		e.text(f+".vendor", &p.Vendor, true, maxShort)
		e.text(f+".name", &p.Name, true, maxShort)
		e.text(f+".version", &p.Version, true, maxShort)
		if isVersionRange(p.Version) {
			e.add(f+".version", "names a range; list each version as its own product")
		}
		leaf := [3]string{p.Vendor, p.Name, p.Version}
		if leaves[leaf] {
			e.add(f, "another product has the same vendor, name and version")
		}
		leaves[leaf] = true
		e.text(f+".purl", &p.Purl, false, 2000)
		if p.Purl != "" {
			if _, err := packageurl.FromString(p.Purl); err != nil || !purlRe.MatchString(p.Purl) {
				e.add(f+".purl", "is not a package URL")
			}
		}
		e.text(f+".cpe", &p.CPE, false, 2000)
		if p.CPE != "" && !cpeRe.MatchString(p.CPE) {
			e.add(f+".cpe", "is not a CPE 2.3 or 2.2 name")
		}
		e.text(f+".hardware_id", &p.HardwareID, false, maxShort)
	}
	return ids
}

func isVersionRange(v string) bool {
	if strings.ContainsAny(v, "<>") {
		return true
	}
	for _, w := range strings.FieldsFunc(strings.ToLower(v), func(r rune) bool { return !unicode.IsLetter(r) }) {
		if slices.Contains(rangeWords, w) {
			return true
		}
	}
	return false
}

func checkVulnerability(e *fieldErrors, f string, v *Vulnerability, products map[string]bool, seenCVE map[string]int, i int) {
	if v.CVE = strings.TrimSpace(v.CVE); v.CVE != "" {
		if !cveRe.MatchString(v.CVE) {
			e.add(f+".cve", "must look like CVE-2026-12345")
		} else if j, dup := seenCVE[v.CVE]; dup {
			e.add(f+".cve", "is also vulnerabilities[%d]: one entry per CVE", j)
		} else {
			seenCVE[v.CVE] = i
		}
	}
	if len(v.IDs) > maxList {
		e.add(f+".ids", "has more than %d entries", maxList)
	}
	seenID := map[VulnID]bool{}
	for j := range v.IDs {
		g := fmt.Sprintf("%s.ids[%d]", f, j)
		e.text(g+".system_name", &v.IDs[j].System, true, maxShort)
		e.text(g+".text", &v.IDs[j].Text, true, maxShort)
		if seenID[v.IDs[j]] {
			e.add(g, "is listed twice")
		}
		seenID[v.IDs[j]] = true
	}
	if v.CVE == "" && len(v.IDs) == 0 {
		e.add(f, "needs a cve or at least one id (CSAF VEX requires one)")
	}
	e.text(f+".title", &v.Title, false, maxShort)
	e.text(f+".summary", &v.Summary, true, maxText)
	e.text(f+".details", &v.Details, false, maxText)
	if v.CWE != nil {
		v.CWE.ID = strings.ToUpper(strings.TrimSpace(v.CWE.ID))
		if !cweRe.MatchString(v.CWE.ID) {
			e.add(f+".cwe.id", "must look like CWE-787")
		}
		e.text(f+".cwe.name", &v.CWE.Name, true, maxShort)
	}
	if v.CVSS3 != nil {
		r, err := rateCVSS3(*v.CVSS3)
		if err != nil {
			e.add(f+".cvss_v3", "%v", err)
		} else {
			v.CVSS3 = &CVSS3{Vector: r.vector, BaseScore: r.score, Severity: r.severity}
		}
	}
	if v.CVSS4 = strings.TrimSpace(v.CVSS4); v.CVSS4 != "" {
		if r, err := rateCVSS4(v.CVSS4); err != nil {
			e.add(f+".cvss_v4", "%v", err)
		} else {
			v.CVSS4 = r.vector
		}
	}

	// Product status: every id known, each product in one group only
	// (CSAF tests 6.1.1 and 6.1.6), and at least one group (VEX 6.1.27.7).
	status := map[string]string{}
	mark := func(field, group string, ids []string) {
		if len(ids) > maxProducts {
			e.add(field, "has more than %d entries", maxProducts)
			return
		}
		for j, pid := range ids {
			g := fmt.Sprintf("%s[%d]", field, j)
			switch {
			case !products[pid]:
				e.add(g, "unknown product id %q", pid)
			case status[pid] == group:
				e.add(g, "product %q is listed twice", pid)
			case status[pid] != "":
				e.add(g, "product %q is already %s", pid, status[pid])
			default:
				status[pid] = group
			}
		}
	}
	mark(f+".fixed", "fixed", v.Fixed)
	mark(f+".known_affected", "known_affected", v.KnownAffected)
	notAffected := make([]string, len(v.KnownNotAffected))
	for j := range v.KnownNotAffected {
		n := &v.KnownNotAffected[j]
		g := fmt.Sprintf("%s.known_not_affected[%d]", f, j)
		n.ProductID = strings.TrimSpace(n.ProductID)
		notAffected[j] = n.ProductID
		if n.Justification = strings.TrimSpace(n.Justification); n.Justification != "" {
			e.oneOf(g+".justification", &n.Justification, "", justifications)
		}
		e.text(g+".impact", &n.Impact, false, maxText)
		if n.Justification == "" && n.Impact == "" {
			e.add(g, "needs a justification or an impact statement (CSAF VEX requires one)")
		}
	}
	mark(f+".known_not_affected", "known_not_affected", notAffected)
	mark(f+".under_investigation", "under_investigation", v.UnderInvestigation)
	if len(status) == 0 {
		e.add(f, "needs at least one product in fixed, known_affected, known_not_affected or under_investigation")
	}

	known := func(field string, ids []string, required bool) {
		if required && len(ids) == 0 {
			e.add(field, "at least one product id is required")
		}
		seen := map[string]bool{}
		for j, pid := range ids {
			if !products[pid] {
				e.add(fmt.Sprintf("%s[%d]", field, j), "unknown product id %q", pid)
			} else if seen[pid] {
				e.add(fmt.Sprintf("%s[%d]", field, j), "product %q is listed twice", pid)
			}
			seen[pid] = true
		}
	}
	if len(v.Remediations) > maxList {
		e.add(f+".remediations", "has more than %d entries", maxList)
	}
	remedied := map[string]bool{}
	for j := range v.Remediations {
		r := &v.Remediations[j]
		g := fmt.Sprintf("%s.remediations[%d]", f, j)
		e.oneOf(g+".category", &r.Category, "", remediationCategories)
		e.text(g+".details", &r.Details, true, maxText)
		e.url(g+".url", &r.URL, false)
		known(g+".product_ids", r.ProductIDs, true)
		for _, pid := range r.ProductIDs {
			remedied[pid] = true
		}
	}
	for j, pid := range v.KnownAffected {
		if products[pid] && !remedied[pid] {
			e.add(fmt.Sprintf("%s.known_affected[%d]", f, j),
				"product %q has no remediation (CSAF VEX requires an action statement: vendor_fix, none_available, no_fix_planned, …)", pid)
		}
	}
	if len(v.Threats) > maxList {
		e.add(f+".threats", "has more than %d entries", maxList)
	}
	for j := range v.Threats {
		t := &v.Threats[j]
		g := fmt.Sprintf("%s.threats[%d]", f, j)
		e.oneOf(g+".category", &t.Category, "", threatCategories)
		e.text(g+".details", &t.Details, true, maxText)
		known(g+".product_ids", t.ProductIDs, false)
	}
	e.references(f+".references", v.References)
}
