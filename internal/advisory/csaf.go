package advisory

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/gocsaf/csaf/v3/csaf"

	"github.com/steward-iot/steward/internal/problem"
)

// Tracking states a document can be generated in.
const (
	TrackingDraft = "draft" // a preview; never signed or served
	TrackingFinal = "final"
)

// Tracking is the part of /document/tracking that a draft does not hold.
type Tracking struct {
	Status             string // TrackingDraft or TrackingFinal
	Version            int
	InitialReleaseDate time.Time
	CurrentReleaseDate time.Time
	// Revisions is the revision history, oldest first, ending with Version.
	Revisions []Revision
	// Engine is Steward's version, written in /document/tracking/generator.
	Engine string
}

// Revision is one revision_history entry.
type Revision struct {
	Number  int       `json:"number"`
	Date    time.Time `json:"date"`
	Summary string    `json:"summary"`
}

// csafTime is how every date is written: RFC 3339 in UTC, whole seconds.
// changes.csv repeats current_release_date in the same form, and the
// checker compares the two.
func csafTime(t time.Time) string { return t.UTC().Truncate(time.Second).Format(time.RFC3339) }

// The CSAF 2.0 document, as much of it as Steward writes. The bytes are
// re-encoded with sorted keys (canonical), so field order here is free.
type (
	csafDoc struct {
		Document        csafDocument `json:"document"`
		ProductTree     csafTree     `json:"product_tree"`
		Vulnerabilities []csafVuln   `json:"vulnerabilities"`
	}
	csafDocument struct {
		AggregateSeverity *csafText     `json:"aggregate_severity,omitempty"`
		Category          Profile       `json:"category"`
		CSAFVersion       string        `json:"csaf_version"`
		Distribution      csafDist      `json:"distribution"`
		Lang              string        `json:"lang"`
		Notes             []csafNote    `json:"notes,omitempty"`
		Publisher         csafPublisher `json:"publisher"`
		References        []csafRef     `json:"references,omitempty"`
		Title             string        `json:"title"`
		Tracking          csafTracking  `json:"tracking"`
	}
	csafText struct {
		Text string `json:"text"`
	}
	csafDist struct {
		TLP struct {
			Label string `json:"label"`
			URL   string `json:"url"`
		} `json:"tlp"`
	}
	csafNote struct {
		Category string `json:"category"`
		Text     string `json:"text"`
		Title    string `json:"title,omitempty"`
	}
	csafPublisher struct {
		Category         string `json:"category"`
		ContactDetails   string `json:"contact_details,omitempty"`
		IssuingAuthority string `json:"issuing_authority,omitempty"`
		Name             string `json:"name"`
		Namespace        string `json:"namespace"`
	}
	csafRef struct {
		Category string `json:"category"`
		Summary  string `json:"summary"`
		URL      string `json:"url"`
	}
	csafTracking struct {
		CurrentReleaseDate string         `json:"current_release_date"`
		Generator          csafGenerator  `json:"generator"`
		ID                 string         `json:"id"`
		InitialReleaseDate string         `json:"initial_release_date"`
		RevisionHistory    []csafRevision `json:"revision_history"`
		Status             string         `json:"status"`
		Version            string         `json:"version"`
	}
	csafGenerator struct {
		Date   string `json:"date"`
		Engine struct {
			Name    string `json:"name"`
			Version string `json:"version,omitempty"`
		} `json:"engine"`
	}
	csafRevision struct {
		Date    string `json:"date"`
		Number  string `json:"number"`
		Summary string `json:"summary"`
	}
	csafTree struct {
		Branches []csafBranch `json:"branches"`
	}
	csafBranch struct {
		Branches []csafBranch `json:"branches,omitempty"`
		Category string       `json:"category"`
		Name     string       `json:"name"`
		Product  *csafProduct `json:"product,omitempty"`
	}
	csafProduct struct {
		Name      string      `json:"name"`
		ProductID string      `json:"product_id"`
		Helper    *csafHelper `json:"product_identification_helper,omitempty"`
	}
	csafHelper struct {
		CPE          string   `json:"cpe,omitempty"`
		ModelNumbers []string `json:"model_numbers,omitempty"`
		PURL         string   `json:"purl,omitempty"`
	}
	csafVuln struct {
		CVE           string            `json:"cve,omitempty"`
		CWE           *CWE              `json:"cwe,omitempty"`
		DiscoveryDate string            `json:"discovery_date,omitempty"`
		Flags         []csafFlag        `json:"flags,omitempty"`
		IDs           []VulnID          `json:"ids,omitempty"`
		Notes         []csafNote        `json:"notes"`
		ProductStatus csafStatus        `json:"product_status"`
		References    []csafRef         `json:"references,omitempty"`
		Remediations  []csafRemediation `json:"remediations,omitempty"`
		Scores        []csafScore       `json:"scores,omitempty"`
		Threats       []csafThreat      `json:"threats,omitempty"`
		Title         string            `json:"title,omitempty"`
	}
	csafStatus struct {
		Fixed              []string `json:"fixed,omitempty"`
		KnownAffected      []string `json:"known_affected,omitempty"`
		KnownNotAffected   []string `json:"known_not_affected,omitempty"`
		UnderInvestigation []string `json:"under_investigation,omitempty"`
	}
	csafFlag struct {
		Label      string   `json:"label"`
		ProductIDs []string `json:"product_ids"`
	}
	csafRemediation struct {
		Category   string   `json:"category"`
		Details    string   `json:"details"`
		ProductIDs []string `json:"product_ids"`
		URL        string   `json:"url,omitempty"`
	}
	csafScore struct {
		CVSS3    map[string]any `json:"cvss_v3"`
		Products []string       `json:"products"`
	}
	csafThreat struct {
		Category   string   `json:"category"`
		Details    string   `json:"details"`
		ProductIDs []string `json:"product_ids,omitempty"`
	}
)

// Generate writes a normalized draft as a CSAF 2.0 document of profile p:
// canonical JSON (sorted keys, two-space indent, no HTML escaping), checked
// against the CSAF 2.0 JSON schema. A document that does not validate is
// refused with the failing paths.
func Generate(d Draft, t Tracking, p Profile) ([]byte, error) {
	if p != ProfileSecurityAdvisory && p != ProfileVEX {
		return nil, problem.Invalid("unknown CSAF profile %q", p)
	}
	if t.Status != TrackingDraft && t.Status != TrackingFinal {
		return nil, fmt.Errorf("generate: tracking status %q", t.Status)
	}
	doc := csafDoc{Document: csafDocument{
		Category:    p,
		CSAFVersion: "2.0",
		Lang:        d.Lang,
		Publisher: csafPublisher{Category: d.Publisher.Category, ContactDetails: d.Publisher.ContactDetails,
			IssuingAuthority: d.Publisher.IssuingAuthority, Name: d.Publisher.Name, Namespace: d.Publisher.Namespace},
		Title: d.Title,
		Tracking: csafTracking{
			CurrentReleaseDate: csafTime(t.CurrentReleaseDate),
			ID:                 documentTrackingID(d.TrackingID, p),
			InitialReleaseDate: csafTime(t.InitialReleaseDate),
			Status:             t.Status,
			Version:            strconv.Itoa(t.Version),
		},
	}}
	doc.Document.Distribution.TLP.Label = d.TLP
	doc.Document.Distribution.TLP.URL = "https://www.first.org/tlp/"
	doc.Document.Tracking.Generator.Date = csafTime(t.CurrentReleaseDate)
	doc.Document.Tracking.Generator.Engine.Name = "Steward"
	doc.Document.Tracking.Generator.Engine.Version = t.Engine
	for _, r := range t.Revisions {
		doc.Document.Tracking.RevisionHistory = append(doc.Document.Tracking.RevisionHistory,
			csafRevision{Date: csafTime(r.Date), Number: strconv.Itoa(r.Number), Summary: r.Summary})
	}
	doc.Document.Notes = append(doc.Document.Notes, csafNote{Category: "summary", Title: "Summary", Text: d.Summary})
	if d.Details != "" {
		doc.Document.Notes = append(doc.Document.Notes, csafNote{Category: "details", Title: "Details", Text: d.Details})
	}
	doc.Document.References = csafRefs(d.References)
	doc.ProductTree = productTree(d.Products)

	worst := ""
	for _, v := range d.Vulnerabilities {
		cv, sev, err := csafVulnerability(v)
		if err != nil {
			return nil, err
		}
		if severityRank(sev) > severityRank(worst) {
			worst = sev
		}
		doc.Vulnerabilities = append(doc.Vulnerabilities, cv)
	}
	if worst != "" {
		doc.Document.AggregateSeverity = &csafText{Text: titleCase(worst)}
	}
	return canonicalCSAF(doc)
}

func csafRefs(refs []Reference) []csafRef {
	var out []csafRef
	for _, r := range refs {
		out = append(out, csafRef{Category: "external", Summary: r.Summary, URL: r.URL})
	}
	return out
}

// productTree builds vendor → product_name → product_version branches,
// keeping the order in which the draft lists products.
func productTree(products []Product) csafTree {
	var tree csafTree
	vendor := map[string]int{}
	name := map[[2]string]int{}
	for _, p := range products {
		vi, ok := vendor[p.Vendor]
		if !ok {
			vi = len(tree.Branches)
			vendor[p.Vendor] = vi
			tree.Branches = append(tree.Branches, csafBranch{Category: "vendor", Name: p.Vendor})
		}
		vb := &tree.Branches[vi]
		ni, ok := name[[2]string{p.Vendor, p.Name}]
		if !ok {
			ni = len(vb.Branches)
			name[[2]string{p.Vendor, p.Name}] = ni
			vb.Branches = append(vb.Branches, csafBranch{Category: "product_name", Name: p.Name})
		}
		nb := &vb.Branches[ni]
		prod := &csafProduct{Name: p.Vendor + " " + p.Name + " " + p.Version, ProductID: p.ID}
		if p.Purl != "" || p.CPE != "" || p.HardwareID != "" {
			prod.Helper = &csafHelper{CPE: p.CPE, PURL: p.Purl}
			if p.HardwareID != "" {
				prod.Helper.ModelNumbers = []string{p.HardwareID}
			}
		}
		nb.Branches = append(nb.Branches, csafBranch{Category: "product_version", Name: p.Version, Product: prod})
	}
	return tree
}

// csafVulnerability writes one vulnerability and returns its severity.
func csafVulnerability(v Vulnerability) (csafVuln, string, error) {
	cv := csafVuln{CVE: v.CVE, CWE: v.CWE, IDs: v.IDs, Title: v.Title, References: csafRefs(v.References)}
	if v.DiscoveryDate != nil {
		cv.DiscoveryDate = csafTime(*v.DiscoveryDate)
	}
	cv.Notes = append(cv.Notes, csafNote{Category: "summary", Title: "Summary", Text: v.Summary})
	if v.Details != "" {
		cv.Notes = append(cv.Notes, csafNote{Category: "description", Title: "Details", Text: v.Details})
	}
	severity := ""
	if v.CVSS4 != "" {
		r, err := rateCVSS4(v.CVSS4)
		if err != nil {
			return cv, "", problem.Invalid("cvss_v4: %v", err)
		}
		severity = r.severity
		// CSAF 2.0 has no cvss_v4 score; a note keeps the rating in the document.
		cv.Notes = append(cv.Notes, csafNote{Category: "other", Title: "CVSS v4.0",
			Text: fmt.Sprintf("%s (base score %.1f, %s)", r.vector, r.score, titleCase(r.severity))})
	}

	cv.ProductStatus = csafStatus{Fixed: v.Fixed, KnownAffected: v.KnownAffected, UnderInvestigation: v.UnderInvestigation}
	flags := map[string]int{}
	impacts := map[string]int{}
	var threats []csafThreat
	for _, n := range v.KnownNotAffected {
		cv.ProductStatus.KnownNotAffected = append(cv.ProductStatus.KnownNotAffected, n.ProductID)
		if n.Justification != "" {
			i, ok := flags[n.Justification]
			if !ok {
				i = len(cv.Flags)
				flags[n.Justification] = i
				cv.Flags = append(cv.Flags, csafFlag{Label: n.Justification})
			}
			cv.Flags[i].ProductIDs = append(cv.Flags[i].ProductIDs, n.ProductID)
		}
		if n.Impact != "" {
			i, ok := impacts[n.Impact]
			if !ok {
				i = len(threats)
				impacts[n.Impact] = i
				threats = append(threats, csafThreat{Category: "impact", Details: n.Impact})
			}
			threats[i].ProductIDs = append(threats[i].ProductIDs, n.ProductID)
		}
	}
	for _, t := range v.Threats {
		cv.Threats = append(cv.Threats, csafThreat(t))
	}
	cv.Threats = append(cv.Threats, threats...)
	for _, r := range v.Remediations {
		cv.Remediations = append(cv.Remediations, csafRemediation{Category: r.Category, Details: r.Details, ProductIDs: r.ProductIDs, URL: r.URL})
	}

	if v.CVSS3 != nil {
		r, err := rateCVSS3(*v.CVSS3)
		if err != nil {
			return cv, "", problem.Invalid("cvss_v3: %v", err)
		}
		if severityRank(r.severity) > severityRank(severity) {
			severity = r.severity
		}
		// The score rates the vulnerability in the products it affects
		// and in those the fix resolves it in; not-affected products
		// carry none.
		products := append(append([]string{}, v.KnownAffected...), v.Fixed...)
		if len(products) > 0 {
			m := map[string]any{"version": r.version, "vectorString": r.vector, "baseScore": r.score, "baseSeverity": r.severity}
			for k, val := range r.metrics {
				m[k] = val
			}
			cv.Scores = []csafScore{{CVSS3: m, Products: products}}
		}
	}
	return cv, severity, nil
}

// canonicalCSAF encodes doc canonically and validates it against the CSAF
// 2.0 schema, as csaf_checker does.
func canonicalCSAF(doc any) ([]byte, error) {
	b, parsed, err := canonicalJSON(doc)
	if err != nil {
		return nil, err
	}
	msgs, err := csaf.ValidateCSAF(parsed)
	if err != nil {
		return nil, fmt.Errorf("CSAF schema validation: %w", err)
	}
	if len(msgs) > 0 {
		var e fieldErrors
		for _, m := range msgs {
			path, detail, _ := cutPath(m)
			e.add("csaf:"+path, "%s", detail)
		}
		return nil, e.err("the generated CSAF document does not validate against the CSAF 2.0 schema")
	}
	return b, nil
}

// cutPath splits a validator message "/json/pointer: message".
func cutPath(m string) (string, string, bool) {
	for i := 0; i+1 < len(m); i++ {
		if m[i] == ':' && m[i+1] == ' ' {
			return m[:i], m[i+2:], true
		}
	}
	return "", m, false
}

// canonicalJSON encodes v with sorted keys, two-space indentation and no
// HTML escaping, and returns the parsed value (numbers as json.Number) too.
func canonicalJSON(v any) ([]byte, any, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var parsed any
	if err := dec.Decode(&parsed); err != nil {
		return nil, nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(parsed); err != nil {
		return nil, nil, err
	}
	return buf.Bytes(), parsed, nil
}
