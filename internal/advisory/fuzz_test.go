package advisory_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/gocsaf/csaf/v3/csaf"

	"github.com/steward-iot/steward/internal/advisory"
	"github.com/steward-iot/steward/internal/problem"
)

// FuzzDraft feeds arbitrary draft JSON to validation and generation. A
// draft is either refused as Invalid (never a panic or another kind of
// error) or accepted, and then normalizing it again changes nothing and
// both profiles generate documents the CSAF schema accepts.
func FuzzDraft(f *testing.F) {
	seed, _ := json.Marshal(realisticDraft())
	f.Add(seed)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"title":"t","publisher":{"name":"a","namespace":"https://a.example"},"summary":"s",
		"products":[{"id":"p","vendor":"v","name":"n","version":"1"}],
		"vulnerabilities":[{"cve":"CVE-2026-0001","summary":"s","known_affected":["p"],
		"remediations":[{"category":"none_available","details":"d","product_ids":["p"]}],
		"cvss_v3":{"vector":"CVSS:3.0/AV:P/AC:H/PR:H/UI:R/S:U/C:N/I:N/A:N"}}]}`))
	f.Add([]byte(`{"tracking_id":"X-1","tlp":"amber","lang":"de-DE","title":"t","publisher":{"name":"a","namespace":"http://[::1]/x","category":"coordinator"},
		"summary":"s","products":[{"id":"p","vendor":"v","name":"n","version":"1.0 LTS","purl":"pkg:deb/debian/openssl@1.1.1n-0+deb11u4?arch=amd64","cpe":"cpe:/o:acme:fw:1.0"}],
		"vulnerabilities":[{"ids":[{"system_name":"OSV","text":"DSA-1"}],"summary":"s","known_not_affected":[{"product_id":"p","impact":"i"}],
		"cvss_v4":"CVSS:4.0/AV:L/AC:H/AT:P/PR:H/UI:A/VC:L/VI:N/VA:N/SC:N/SI:N/SA:N","discovery_date":"2026-01-02T03:04:05.678+02:00"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var d advisory.Draft
		if json.Unmarshal(data, &d) != nil {
			return
		}
		nd, err := d.Normalize()
		if err != nil {
			var pe *problem.Error
			if !errors.As(err, &pe) || pe.Kind != problem.KindInvalid || len(pe.Fields) == 0 {
				t.Fatalf("refused without naming a field: %v", err)
			}
			return
		}
		again, err := nd.Normalize()
		a, _ := json.Marshal(nd)
		b, _ := json.Marshal(again)
		if err != nil || string(a) != string(b) {
			t.Fatalf("normalizing twice differs: %v\n%s\n%s", err, a, b)
		}
		if nd.TrackingID == "" {
			nd.TrackingID = "FUZZ-1"
		}
		for _, prof := range advisory.Profiles {
			out, err := advisory.Generate(nd, finalTracking(3), prof)
			if err != nil {
				t.Fatalf("accepted draft does not generate %s: %v", prof, err)
			}
			var doc any
			if err := json.Unmarshal(out, &doc); err != nil {
				t.Fatal(err)
			}
			if msgs, err := csaf.ValidateCSAF(doc); err != nil || len(msgs) > 0 {
				t.Fatalf("%s does not validate: %v %v", prof, msgs, err)
			}
		}
	})
}
