package advisory

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/steward-iot/steward/internal/problem"
)

//go:embed templates/*.html
var templateFS embed.FS

// html/template escapes every value for its context, and refuses
// non-http(s) URLs in href attributes (they are validated on input too).
var templates = template.Must(template.ParseFS(templateFS, "templates/*.html"))

type link struct {
	Name string
	Note string
}

// listing answers with the HTML directory listing of a folder: CSAF 7.1.14
// wants every document linked from its folder's page.
func (h *provider) listing(w http.ResponseWriter, r *http.Request, path string, links []link, modified time.Time) {
	h.render(w, r, "listing.html", map[string]any{"Path": path, "Links": links}, modified)
}

func (h *provider) render(w http.ResponseWriter, r *http.Request, name string, data any, modified time.Time) {
	var b bytes.Buffer
	if err := templates.ExecuteTemplate(&b, name, data); err != nil {
		h.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	serve(w, r, b.Bytes(), "text/html; charset=utf-8", "", modified)
}

type indexRow struct {
	Href, TrackingID, Title, Severity, Updated string
	Version                                    int
}

// pageIndex lists the public advisories, newest first.
func (h *provider) pageIndex(w http.ResponseWriter, r *http.Request) {
	s, err := h.load(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	rows := []indexRow{}
	for _, d := range s.docs {
		if d.Profile != ProfileSecurityAdvisory {
			continue
		}
		rows = append(rows, indexRow{Href: "/advisories/" + strings.TrimSuffix(d.FileName, ".json"), TrackingID: d.TrackingID,
			Title: d.Title, Severity: d.Severity, Version: d.Version, Updated: humanTime(d.ReleasedAt)})
	}
	h.render(w, r, "index.html", map[string]any{"Publisher": h.cfg.Publisher.Name, "MetadataURL": h.cfg.MetadataURL(), "Advisories": rows}, s.updated)
}

func humanTime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") }

type (
	pageView struct {
		Lang, Title, TrackingID, Initial, Current, Severity, TLP, Summary, Details, AdvisoryJSON string
		Version                                                                                  int
		Publisher                                                                                Publisher
		Vulns                                                                                    []vulnView
		References                                                                               []Reference
		Documents                                                                                []docLink
		Revisions                                                                                []revisionView
	}
	ratingView struct {
		Version, Vector, Severity string
		Score                     string
	}
	vulnView struct {
		Heading, Title, Summary, Details string
		IDs                              []string
		CWE                              *CWE
		CVSS3, CVSS4                     *ratingView
		Status                           []statusRow
		Remediations                     []remediationView
		Threats                          []threatView
		References                       []Reference
	}
	statusRow       struct{ Product, Status, Note string }
	remediationView struct {
		Category, Details, URL string
		Products               []string
	}
	threatView struct {
		Category, Details string
		Products          []string
	}
	docLink      struct{ Label, Name, Href string }
	revisionView struct {
		Number        int
		Date, Summary string
	}
)

var labels = map[string]string{
	"component_not_present":                             "Component not present",
	"vulnerable_code_not_present":                       "Vulnerable code not present",
	"vulnerable_code_not_in_execute_path":               "Vulnerable code not in execute path",
	"vulnerable_code_cannot_be_controlled_by_adversary": "Vulnerable code cannot be controlled by adversary",
	"inline_mitigations_already_exist":                  "Inline mitigations already exist",
	RemediationVendorFix:                                "Vendor fix",
	RemediationMitigation:                               "Mitigation",
	RemediationWorkaround:                               "Workaround",
	RemediationNoneAvailable:                            "No fix available",
	RemediationNoFixPlanned:                             "No fix planned",
	"impact":                                            "Impact",
	"exploit_status":                                    "Exploit status",
	"target_set":                                        "Target set",
}

func label(s string) string {
	if l, ok := labels[s]; ok {
		return l
	}
	return s
}

// page renders the latest public version of one advisory.
func (h *provider) page(w http.ResponseWriter, r *http.Request) {
	stem := strings.ToLower(strings.TrimSuffix(r.PathValue("name"), ".html"))
	if strings.HasSuffix(stem, "-vex") || stem == "" {
		http.NotFound(w, r)
		return
	}
	var v Version
	var history []Version
	err := h.svc.store.Read(r.Context(), func(tx Tx) error {
		a, err := tx.AdvisoryByID(r.Context(), h.cfg.OrgID, stem)
		if err != nil {
			return err
		}
		if a.FileStem != stem || a.Version == 0 {
			return problem.NotFound("no such advisory")
		}
		if v, err = tx.AdvisoryVersion(r.Context(), h.cfg.OrgID, a.ID, a.Version); err != nil {
			return err
		}
		if v.TLP != PublicTLP || v.Draft == nil {
			return problem.NotFound("no such advisory")
		}
		history, err = tx.AdvisoryVersions(r.Context(), h.cfg.OrgID, a.ID)
		return err
	})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.render(w, r, "advisory.html", h.view(v, history), v.ReleasedAt)
}

func (h *provider) view(v Version, history []Version) pageView {
	d := *v.Draft
	pv := pageView{Lang: d.Lang, Title: d.Title, TrackingID: v.TrackingID, Version: v.Version, Initial: humanTime(v.InitialReleaseDate),
		Current: humanTime(v.ReleasedAt), Severity: aggregateSeverity(d), TLP: "TLP:" + d.TLP, Summary: d.Summary, Details: d.Details,
		Publisher: d.Publisher, References: d.References}
	for _, doc := range v.Documents {
		l := docLink{Label: "CSAF security advisory", Name: doc.FileName, Href: wellKnown + "/" + doc.Path}
		if doc.Profile == ProfileVEX {
			l.Label = "CSAF VEX"
		} else {
			pv.AdvisoryJSON = l.Href
		}
		pv.Documents = append(pv.Documents, l)
	}
	for _, hv := range history {
		pv.Revisions = append(pv.Revisions, revisionView{Number: hv.Version, Date: humanTime(hv.ReleasedAt), Summary: hv.Summary})
	}
	names := map[string]string{}
	for _, p := range d.Products {
		names[p.ID] = p.Vendor + " " + p.Name + " " + p.Version
	}
	productNames := func(ids []string) []string {
		out := make([]string, len(ids))
		for i, id := range ids {
			out[i] = names[id]
		}
		return out
	}
	for _, vu := range d.Vulnerabilities {
		vv := vulnView{Heading: vu.CVE, Title: vu.Title, Summary: vu.Summary, Details: vu.Details, CWE: vu.CWE, References: vu.References}
		for _, i := range vu.IDs {
			vv.IDs = append(vv.IDs, i.System+" "+i.Text)
			if vv.Heading == "" {
				vv.Heading = i.Text
			}
		}
		if vu.CVSS3 != nil {
			if r, err := rateCVSS3(*vu.CVSS3); err == nil {
				vv.CVSS3 = &ratingView{Version: r.version, Vector: r.vector, Severity: titleCase(r.severity), Score: fmt.Sprintf("%.1f", r.score)}
			}
		}
		if vu.CVSS4 != "" {
			if r, err := rateCVSS4(vu.CVSS4); err == nil {
				vv.CVSS4 = &ratingView{Version: r.version, Vector: r.vector, Severity: titleCase(r.severity), Score: fmt.Sprintf("%.1f", r.score)}
			}
		}
		for _, id := range vu.KnownAffected {
			vv.Status = append(vv.Status, statusRow{Product: names[id], Status: "Affected"})
		}
		for _, id := range vu.Fixed {
			vv.Status = append(vv.Status, statusRow{Product: names[id], Status: "Fixed"})
		}
		for _, n := range vu.KnownNotAffected {
			note := label(n.Justification)
			if n.Impact != "" {
				note = strings.TrimSpace(note + "\n" + n.Impact)
			}
			vv.Status = append(vv.Status, statusRow{Product: names[n.ProductID], Status: "Not affected", Note: note})
		}
		for _, id := range vu.UnderInvestigation {
			vv.Status = append(vv.Status, statusRow{Product: names[id], Status: "Under investigation"})
		}
		for _, rm := range vu.Remediations {
			vv.Remediations = append(vv.Remediations, remediationView{Category: label(rm.Category), Details: rm.Details, URL: rm.URL,
				Products: productNames(rm.ProductIDs)})
		}
		for _, t := range vu.Threats {
			vv.Threats = append(vv.Threats, threatView{Category: label(t.Category), Details: t.Details, Products: productNames(t.ProductIDs)})
		}
		pv.Vulns = append(pv.Vulns, vv)
	}
	return pv
}
