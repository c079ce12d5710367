package advisory_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gocsaf/csaf/v3/csaf"

	"github.com/steward-iot/steward/internal/advisory"
	"github.com/steward-iot/steward/internal/problem"
)

func finalTracking(version int) advisory.Tracking {
	first := time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)
	t := advisory.Tracking{Status: advisory.TrackingFinal, Version: version, InitialReleaseDate: first, Engine: "test"}
	for n := 1; n <= version; n++ {
		d := first.Add(time.Duration(n-1) * 48 * time.Hour)
		t.Revisions = append(t.Revisions, advisory.Revision{Number: n, Date: d, Summary: "revision " + string(rune('0'+n))})
		t.CurrentReleaseDate = d
	}
	return t
}

// TestGenerateBothProfiles turns a realistic draft into both profiles and
// checks them with gocsaf's schema validation and field by field.
func TestGenerateBothProfiles(t *testing.T) {
	d, err := realisticDraft().Normalize()
	if err != nil {
		t.Fatal(err)
	}
	d.TrackingID = "ACME-SA-2026-0007"
	for _, prof := range advisory.Profiles {
		t.Run(string(prof), func(t *testing.T) {
			b, err := advisory.Generate(d, finalTracking(2), prof)
			if err != nil {
				t.Fatal(err)
			}
			doc := decode(t, b)
			msgs, err := csaf.ValidateCSAF(doc)
			if err != nil || len(msgs) > 0 {
				t.Fatalf("schema validation: %v %v", msgs, err)
			}
			again, _ := advisory.Generate(d, finalTracking(2), prof)
			if !bytes.Equal(b, again) {
				t.Fatal("generation is not deterministic")
			}
			// Canonical: re-encoding the parsed document with sorted keys
			// gives the same bytes.
			var re bytes.Buffer
			enc := json.NewEncoder(&re)
			enc.SetEscapeHTML(false)
			enc.SetIndent("", "  ")
			_ = enc.Encode(doc)
			if !bytes.Equal(b, re.Bytes()) {
				t.Fatalf("not canonical:\n%s", b)
			}

			wantID := "ACME-SA-2026-0007"
			if prof == advisory.ProfileVEX {
				wantID += "-VEX"
			}
			for path, want := range map[string]any{
				"document.category":                           string(prof),
				"document.csaf_version":                       "2.0",
				"document.tracking.id":                        wantID,
				"document.tracking.status":                    "final",
				"document.tracking.version":                   "2",
				"document.tracking.initial_release_date":      "2026-11-20T09:00:00Z",
				"document.tracking.current_release_date":      "2026-11-22T09:00:00Z",
				"document.distribution.tlp.label":             "WHITE", // CLEAR in, WHITE out
				"document.aggregate_severity.text":            "Critical",
				"document.publisher.category":                 "vendor",
				"document.lang":                               "en",
				"document.tracking.revision_history.1.number": "2",
			} {
				var p []any
				for _, s := range strings.Split(path, ".") {
					if s == "1" {
						p = append(p, 1)
					} else {
						p = append(p, s)
					}
				}
				if got := at(t, doc, p...); got != want {
					t.Errorf("%s = %v, want %v", path, got, want)
				}
			}

			// Product tree: vendor → product name → product version.
			vendor := at(t, doc, "product_tree", "branches", 0)
			if at(t, vendor, "category") != "vendor" || at(t, vendor, "name") != "Acme Industrial" {
				t.Fatalf("vendor branch: %v", vendor)
			}
			gw := at(t, vendor, "branches", 0)
			if at(t, gw, "category") != "product_name" || at(t, gw, "name") != "GW-100" || len(at(t, gw, "branches").([]any)) != 3 {
				t.Fatalf("product branch: %v", gw)
			}
			leaf := at(t, gw, "branches", 1)
			if at(t, leaf, "category") != "product_version" || at(t, leaf, "name") != "2.3.0" ||
				at(t, leaf, "product", "product_id") != "gw100-2.3.0" ||
				at(t, leaf, "product", "product_identification_helper", "purl") != "pkg:generic/acme/gw100-firmware@2.3.0" ||
				at(t, leaf, "product", "product_identification_helper", "model_numbers", 0) != "GW100-A" {
				t.Fatalf("version leaf: %v", leaf)
			}
			sensor := at(t, vendor, "branches", 1, "branches", 0, "product", "product_identification_helper", "cpe")
			if sensor != "cpe:2.3:o:acme:s10_firmware:1.4.0:*:*:*:*:*:*:*" {
				t.Fatalf("sensor cpe: %v", sensor)
			}

			v := at(t, doc, "vulnerabilities", 0)
			if at(t, v, "cve") != "CVE-2026-21001" || at(t, v, "cwe", "id") != "CWE-787" || at(t, v, "ids", 0, "text") != "ACME-2026-7" {
				t.Fatalf("vulnerability ids: %v", v)
			}
			status := at(t, v, "product_status").(map[string]any)
			for group, want := range map[string][]string{"fixed": {"gw100-2.3.1"}, "known_affected": {"gw100-2.3.0", "gw100-2.2.5"},
				"known_not_affected": {"s10-1.4.0"}, "under_investigation": {"gw200-3.0.0"}} {
				if got := strs(status[group]); !slices.Equal(got, want) {
					t.Errorf("product_status.%s = %v, want %v", group, got, want)
				}
			}
			if at(t, v, "flags", 0, "label") != "component_not_present" || !slices.Equal(strs(at(t, v, "flags", 0, "product_ids")), []string{"s10-1.4.0"}) {
				t.Errorf("VEX justification flag: %v", at(t, v, "flags"))
			}
			cvss := at(t, v, "scores", 0, "cvss_v3")
			if at(t, cvss, "baseScore") != 9.8 || at(t, cvss, "baseSeverity") != "CRITICAL" || at(t, cvss, "version") != "3.1" ||
				at(t, cvss, "vectorString") != "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H" || at(t, cvss, "attackVector") != "NETWORK" {
				t.Errorf("cvss_v3: %v", cvss)
			}
			if got := strs(at(t, v, "scores", 0, "products")); !slices.Equal(got, []string{"gw100-2.3.0", "gw100-2.2.5", "gw100-2.3.1"}) {
				t.Errorf("score products: %v", got)
			}
			rem := at(t, v, "remediations", 0)
			if at(t, rem, "category") != "vendor_fix" || at(t, rem, "url") != "https://acme.example/releases/gw100/2.3.1" {
				t.Errorf("vendor fix: %v", rem)
			}
			if at(t, v, "remediations", 1, "category") != "no_fix_planned" {
				t.Errorf("end-of-life remediation: %v", at(t, v, "remediations", 1))
			}
			var cvss4 bool
			for _, n := range at(t, v, "notes").([]any) {
				if at(t, n, "title") == "CVSS v4.0" && strings.HasPrefix(at(t, n, "text").(string), "CVSS:4.0/AV:N/") &&
					strings.Contains(at(t, n, "text").(string), "9.3") {
					cvss4 = true
				}
			}
			if !cvss4 {
				t.Errorf("CVSS 4.0 vector not recorded as a note: %v", at(t, v, "notes"))
			}
			// The second vulnerability has no CVE: its GHSA id names it, and
			// its not-affected product carries an impact statement.
			v2 := at(t, doc, "vulnerabilities", 1)
			if _, ok := v2.(map[string]any)["cve"]; ok {
				t.Error("second vulnerability has a cve")
			}
			if at(t, v2, "threats", 0, "category") != "impact" || !slices.Equal(strs(at(t, v2, "threats", 0, "product_ids")), []string{"gw200-3.0.0"}) {
				t.Errorf("impact statement: %v", at(t, v2, "threats"))
			}
			if at(t, v2, "scores", 0, "cvss_v3", "baseScore") != 4.8 {
				t.Errorf("computed base score: %v", at(t, v2, "scores", 0, "cvss_v3"))
			}
		})
	}
}

func strs(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

// TestInvalidDraftsRefused: each broken draft is refused as Invalid, and
// the error names the field.
func TestInvalidDraftsRefused(t *testing.T) {
	tests := []struct {
		name, field string
		edit        func(d *advisory.Draft)
	}{
		{"no title", "title", func(d *advisory.Draft) { d.Title = "  " }},
		{"relative namespace", "publisher.namespace", func(d *advisory.Draft) { d.Publisher.Namespace = "acme.example" }},
		{"unknown TLP", "tlp", func(d *advisory.Draft) { d.TLP = "PURPLE" }},
		{"bad language", "lang", func(d *advisory.Draft) { d.Lang = "english!" }},
		{"script URL", "references[0].url", func(d *advisory.Draft) { d.References[0].URL = "javascript:alert(1)" }},
		{"tracking id with spaces", "tracking_id", func(d *advisory.Draft) { d.TrackingID = "ACME 1" }},
		{"tracking id naming a VEX file", "tracking_id", func(d *advisory.Draft) { d.TrackingID = "ACME-1-vex" }},
		{"no products", "products", func(d *advisory.Draft) { d.Products = nil }},
		{"duplicate product id", "products[1].id", func(d *advisory.Draft) { d.Products[1].ID = d.Products[0].ID }},
		{"version range", "products[1].version", func(d *advisory.Draft) { d.Products[1].Version = "< 2.3.1" }},
		{"version range in words", "products[1].version", func(d *advisory.Draft) { d.Products[1].Version = "all versions before 2.3.1" }},
		{"bad purl", "products[0].purl", func(d *advisory.Draft) { d.Products[0].Purl = "gw100@2.2.5" }},
		{"bad cpe", "products[3].cpe", func(d *advisory.Draft) { d.Products[3].CPE = "cpe:acme" }},
		{"no vulnerabilities", "vulnerabilities", func(d *advisory.Draft) { d.Vulnerabilities = nil }},
		{"bad CVE", "vulnerabilities[0].cve", func(d *advisory.Draft) { d.Vulnerabilities[0].CVE = "CVE-26-1" }},
		{"same CVE twice", "vulnerabilities[1].cve", func(d *advisory.Draft) { d.Vulnerabilities[1].CVE = "CVE-2026-21001" }},
		{"no id at all", "vulnerabilities[1]", func(d *advisory.Draft) { d.Vulnerabilities[1].IDs = nil }},
		{"no vulnerability summary", "vulnerabilities[0].summary", func(d *advisory.Draft) { d.Vulnerabilities[0].Summary = "" }},
		{"bad CWE", "vulnerabilities[0].cwe.id", func(d *advisory.Draft) { d.Vulnerabilities[0].CWE.ID = "787" }},
		{"score not matching vector", "vulnerabilities[0].cvss_v3", func(d *advisory.Draft) { d.Vulnerabilities[0].CVSS3.BaseScore = 7.5 }},
		{"severity not matching vector", "vulnerabilities[0].cvss_v3", func(d *advisory.Draft) { d.Vulnerabilities[0].CVSS3.Severity = "LOW" }},
		{"CVSS 4 vector as v3", "vulnerabilities[0].cvss_v3", func(d *advisory.Draft) {
			d.Vulnerabilities[0].CVSS3 = &advisory.CVSS3{Vector: d.Vulnerabilities[0].CVSS4}
		}},
		{"broken CVSS 4 vector", "vulnerabilities[0].cvss_v4", func(d *advisory.Draft) { d.Vulnerabilities[0].CVSS4 = "CVSS:4.0/AV:N" }},
		{"unknown product in status", "vulnerabilities[0].known_affected[0]", func(d *advisory.Draft) {
			d.Vulnerabilities[0].KnownAffected[0] = "gw999"
		}},
		{"fixed and affected", "vulnerabilities[0].known_affected[0]", func(d *advisory.Draft) {
			d.Vulnerabilities[0].KnownAffected[0] = "gw100-2.3.1"
		}},
		{"no status at all", "vulnerabilities[1]", func(d *advisory.Draft) {
			v := &d.Vulnerabilities[1]
			v.KnownAffected, v.Fixed, v.KnownNotAffected, v.Remediations = nil, nil, nil, nil
		}},
		{"not affected without reason", "vulnerabilities[0].known_not_affected[0]", func(d *advisory.Draft) {
			d.Vulnerabilities[0].KnownNotAffected[0].Justification = ""
		}},
		{"unknown justification", "vulnerabilities[0].known_not_affected[0].justification", func(d *advisory.Draft) {
			d.Vulnerabilities[0].KnownNotAffected[0].Justification = "not_our_problem"
		}},
		{"affected without remediation", "vulnerabilities[0].known_affected[1]", func(d *advisory.Draft) {
			d.Vulnerabilities[0].Remediations = d.Vulnerabilities[0].Remediations[:1]
		}},
		{"remediation without products", "vulnerabilities[1].remediations[0].product_ids", func(d *advisory.Draft) {
			d.Vulnerabilities[1].Remediations[0].ProductIDs = nil
		}},
		{"unknown remediation category", "vulnerabilities[1].remediations[0].category", func(d *advisory.Draft) {
			d.Vulnerabilities[1].Remediations[0].Category = "pray"
		}},
		{"control characters", "summary", func(d *advisory.Draft) { d.Summary = "bell\x07" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := realisticDraft()
			tc.edit(&d)
			_, err := d.Normalize()
			var pe *problem.Error
			if !errors.As(err, &pe) || pe.Kind != problem.KindInvalid {
				t.Fatalf("Normalize accepted it or failed otherwise: %v", err)
			}
			if !slices.ContainsFunc(pe.Fields, func(f problem.FieldError) bool { return f.Field == tc.field }) {
				t.Fatalf("error does not name %s: %v (fields %v)", tc.field, err, pe.Fields)
			}
		})
	}
	// Normalize must not edit the caller's draft.
	d := realisticDraft()
	if _, err := d.Normalize(); err != nil {
		t.Fatal(err)
	}
	if d.TLP != "CLEAR" || d.Vulnerabilities[0].CVSS3.Severity != "critical" {
		t.Fatal("Normalize changed its input")
	}
}

// TestSchemaRefusalNamesPath: what the draft checks miss, the schema
// check catches, naming the path in the document.
func TestSchemaRefusalNamesPath(t *testing.T) {
	d, err := realisticDraft().Normalize()
	if err != nil {
		t.Fatal(err)
	}
	d.TrackingID = "ACME-1"
	d.Title = ""                             // Generate trusts a normalized draft; the schema does not
	d.Vulnerabilities[0].CWE.ID = "CWE-0787" // leading zero: not a CWE id
	_, err = advisory.Generate(d, finalTracking(1), advisory.ProfileSecurityAdvisory)
	var pe *problem.Error
	if !errors.As(err, &pe) || pe.Kind != problem.KindInvalid {
		t.Fatalf("schema-invalid document generated: %v", err)
	}
	var paths []string
	for _, f := range pe.Fields {
		paths = append(paths, f.Field)
	}
	for _, want := range []string{"csaf:/document/title", "csaf:/vulnerabilities/0/cwe/id"} {
		if !slices.Contains(paths, want) {
			t.Errorf("refusal does not name %s: %v", want, paths)
		}
	}
}

func TestFileStem(t *testing.T) {
	for in, want := range map[string]string{
		"STEWARD-2026-0001": "steward-2026-0001",
		"Acme_SA.2026+1":    "acme_sa_2026+1",
		"a..b":              "a_b",
	} {
		if got := advisory.FileStem(in); got != want {
			t.Errorf("FileStem(%q) = %q, want %q", in, got, want)
		}
	}
}
