package advisory

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/steward-iot/steward/internal/inventory"
	"github.com/steward-iot/steward/internal/release"
	"github.com/steward-iot/steward/internal/vuln"
)

// Source is what Steward knows about one vulnerability when it drafts the
// advisory: the vulnerability with its assessment, what it affects (from
// release SBOMs), and the organization's products and releases.
type Source struct {
	Publisher     Publisher
	Vulnerability vuln.Vulnerability
	Affected      vuln.Affected
	Products      []inventory.Product
	Releases      []release.Release
	// Now decides whether a product is past its end of support.
	Now time.Time
}

var cvePattern = regexp.MustCompile(`^CVE-\d{4}-\d{4,}$`)

// DraftFrom drafts an advisory from what Steward knows, for a person to
// review before publishing. For each product with an affected release:
// releases whose SBOM matched are known_affected; later releases of the
// product that did not match (or that declare the fix) are fixed, and the
// first of them after the last affected one is the vendor_fix remediation;
// earlier releases that did not match are known_not_affected (the
// vulnerable code came later); releases without an SBOM are
// under_investigation unless they declare the fix. A product
// with no fixed release gets no_fix_planned when past its end of support,
// else none_available. Products with no affected release are
// known_not_affected (component_not_present) for releases with an SBOM and
// under_investigation for releases without one.
func DraftFrom(src Source) Draft {
	v := src.Vulnerability
	affected := map[string]bool{}
	for _, r := range src.Affected.Releases {
		affected[r.ID] = true
	}
	byProduct := map[string][]release.Release{}
	for _, r := range src.Releases {
		byProduct[r.ProductID] = append(byProduct[r.ProductID], r)
	}
	names := append([]string{v.VulnID}, v.Aliases...)
	fixes := func(r release.Release) bool {
		for _, f := range r.Fixes {
			if slices.Contains(names, f) {
				return true
			}
		}
		return false
	}

	var d Draft
	d.Publisher = src.Publisher
	d.TLP = "CLEAR"
	var av Vulnerability
	var hit []string
	// CSAF names products by vendor, name and version: qualify display
	// names that two products share with their slugs.
	nameCount := map[string]int{}
	for _, p := range src.Products {
		nameCount[p.Name]++
	}
	for _, p := range src.Products {
		if nameCount[p.Name] > 1 {
			p.Name += " (" + p.Slug + ")"
		}
		rels := byProduct[p.ID]
		if len(rels) == 0 {
			continue
		}
		slices.SortFunc(rels, func(a, b release.Release) int { return int(a.Counter - b.Counter) })
		lastAffected := int64(-1)
		for _, r := range rels {
			if affected[r.ID] {
				lastAffected = max(lastAffected, r.Counter)
			}
		}
		var firstFix *release.Release
		var hitIDs []string
		for i, r := range rels {
			pid := productID(p.Slug, r.Version)
			d.Products = append(d.Products, Product{ID: pid, Vendor: src.Publisher.Name, Name: p.Name, Version: r.Version, HardwareID: p.HardwareID})
			switch {
			case affected[r.ID] && !fixes(r):
				av.KnownAffected = append(av.KnownAffected, pid)
				hitIDs = append(hitIDs, pid)
			case r.SBOMArtifact == "" && !fixes(r):
				// Without an SBOM nothing says either way.
				av.UnderInvestigation = append(av.UnderInvestigation, pid)
			case lastAffected < 0:
				av.KnownNotAffected = append(av.KnownNotAffected, NotAffected{ProductID: pid, Justification: "component_not_present"})
			case r.Counter > lastAffected || fixes(r):
				av.Fixed = append(av.Fixed, pid)
				// "Update to X or later" must not send anyone to a later
				// affected release.
				if firstFix == nil && r.Counter > lastAffected {
					firstFix = &rels[i]
				}
			default:
				av.KnownNotAffected = append(av.KnownNotAffected, NotAffected{ProductID: pid, Justification: "vulnerable_code_not_present"})
			}
		}
		if len(hitIDs) == 0 {
			continue
		}
		hit = append(hit, p.Name)
		switch {
		case firstFix != nil:
			av.Remediations = append(av.Remediations, Remediation{Category: RemediationVendorFix, ProductIDs: hitIDs,
				Details: fmt.Sprintf("Update %s to release %s (release counter %d) or later.", p.Name, firstFix.Version, firstFix.Counter)})
		case p.EndOfSupport != nil && !src.Now.Before(*p.EndOfSupport):
			av.Remediations = append(av.Remediations, Remediation{Category: RemediationNoFixPlanned, ProductIDs: hitIDs,
				Details: fmt.Sprintf("%s reached its end of security support on %s; no fix is planned. Replace the device or isolate it.",
					p.Name, p.EndOfSupport.Format(time.DateOnly))})
		default:
			av.Remediations = append(av.Remediations, Remediation{Category: RemediationNoneAvailable, ProductIDs: hitIDs,
				Details: "No fixed release is available yet; this advisory will be updated when one is."})
		}
	}

	for _, id := range names {
		switch {
		case cvePattern.MatchString(id) && av.CVE == "":
			av.CVE = id
		case !cvePattern.MatchString(id):
			av.IDs = append(av.IDs, VulnID{System: idSystem(id), Text: id})
		}
	}
	summary := strings.TrimSpace(v.Summary)
	if summary == "" {
		summary = "A vulnerability identified as " + v.VulnID + "."
	}
	av.Title, av.Summary = truncate(summary, 200), summary
	if a := v.Assessment; a != nil {
		for _, c := range a.CVSS {
			switch {
			case strings.HasPrefix(c.Version, "3") && av.CVSS3 == nil:
				av.CVSS3 = &CVSS3{Vector: c.Vector}
			case c.Version == "4.0" && av.CVSS4 == "":
				av.CVSS4 = c.Vector
			}
		}
	}
	if len(av.KnownAffected) > 0 {
		status := "No exploitation is known."
		if v.KnownExploited {
			status = "This vulnerability is known to be exploited."
		}
		av.Threats = append(av.Threats, Threat{Category: "exploit_status", Details: status, ProductIDs: av.KnownAffected})
	}
	d.Vulnerabilities = []Vulnerability{av}
	d.Title = v.VulnID + ": " + truncate(summary, 120)
	if len(hit) > 0 {
		d.Title += " in " + strings.Join(hit, ", ")
	}
	d.Summary = summary
	return d
}

var productIDUnsafe = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

func productID(slug, version string) string {
	return productIDUnsafe.ReplaceAllString(slug+"-"+version, "_")
}

func idSystem(id string) string {
	switch {
	case strings.HasPrefix(id, "GHSA-"):
		return "GitHub Security Advisory"
	case strings.HasPrefix(id, "DLA-"), strings.HasPrefix(id, "DSA-"):
		return "Debian Security Advisory"
	case strings.HasPrefix(id, "USN-"):
		return "Ubuntu Security Notice"
	default:
		return "OSV"
	}
}

func truncate(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
